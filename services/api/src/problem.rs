//! RFC 9457 problem details: every error the API returns, mapped in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stagepact_domain::company::CompanyError;
use stagepact_domain::complaint::ComplaintError;
use stagepact_domain::investigation::InvestigationError;
use stagepact_domain::matching_round::MatchingRoundError;
use stagepact_domain::offer::OfferError;
use stagepact_domain::placement::PlacementError;
use stagepact_domain::report::ReportError;
use stagepact_domain::shortage::ShortageError;
use stagepact_domain::signal::SignalError;
use stagepact_domain::student::StudentError;
use stagepact_store::{CommandError, Denial, StoreError};
use utoipa::ToSchema;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field, as a JSON pointer-like dotted path (e.g. `location.lat`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// An error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`urn:stagepact:problem:<slug>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The pact rule behind a refusal (e.g. `S1`, `D5`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// For validation problems: each invalid field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For version mismatches: the aggregate's current version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No usable credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource (or not visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// The request could not be read (syntax, content type, query).
    #[error("{0}")]
    BadRequest(String),
    /// The method is not defined on this resource.
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
    /// The body is larger than allowed (`STAGEPACT_BODY_LIMIT`).
    #[error("the request body is larger than this API accepts")]
    PayloadTooLarge,
    /// The content type is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The caller's token or address sent more requests than its rate
    /// allows; it may send again after this many seconds.
    #[error("too many requests; retry after {0} s")]
    RateLimited(u64),
    /// Fields failed validation.
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>, Option<&'static str>),
    /// The domain refused the command in the current state.
    #[error("{detail}")]
    Refused {
        /// Problem slug.
        slug: &'static str,
        /// HTTP status.
        status: StatusCode,
        /// Why.
        detail: String,
        /// Rule id.
        rule: Option<&'static str>,
    },
    /// `If-Match` did not match the current version.
    #[error("{0}")]
    VersionMismatch(String, i64),
    /// Concurrent writers kept winning.
    #[error("the resource kept changing concurrently; retry")]
    Conflict,
    /// An `Idempotency-Key` was reused with a different request.
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` is still running.
    #[error("a request with this Idempotency-Key is still in progress")]
    IdempotencyInProgress,
    /// Projections did not reach `min_position` in time.
    #[error("read models have not yet reached position {0}; retry shortly")]
    NotYetVisible(i64),
    /// The database is out of reach.
    #[error("the service is temporarily unavailable")]
    Unavailable(#[source] StoreError),
    /// A bug or an unexpected failure: logged in full, opaque to the client.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            Self::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed")
            }
            Self::PayloadTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Request body too large")
            }
            Self::RateLimited(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests")
            }
            Self::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Self::Validation(..) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation", "Invalid request")
            }
            Self::Refused { slug, status, .. } => (*status, slug, "Refused by the pact's rules"),
            Self::VersionMismatch(..) => {
                (StatusCode::PRECONDITION_FAILED, "version-mismatch", "Version mismatch")
            }
            Self::Conflict => (StatusCode::CONFLICT, "concurrent-update", "Concurrent update"),
            Self::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
            ),
            Self::IdempotencyInProgress => {
                (StatusCode::CONFLICT, "idempotency-in-progress", "Request in progress")
            }
            Self::NotYetVisible(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "not-yet-visible", "Not yet visible")
            }
            Self::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable")
            }
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        let (rule, errors, current_version) = match self {
            Self::Validation(errors, rule) => (rule.map(str::to_owned), errors.clone(), None),
            Self::Refused { rule, .. } => (rule.map(str::to_owned), Vec::new(), None),
            Self::VersionMismatch(_, current) => (None, Vec::new(), Some(*current)),
            _ => (None, Vec::new(), None),
        };
        Problem {
            kind: format!("urn:stagepact:problem:{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            rule,
            errors,
            current_version,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        match &self {
            Self::Internal(error) => {
                tracing::error!(error = %error_chain(error.as_ref()), "internal error")
            }
            Self::Unavailable(error) => tracing::warn!(%error, "database unavailable"),
            _ => {
                tracing::debug!(status = problem.status, detail = %problem.detail, "request refused")
            }
        }
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, problem_json(&problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        match self {
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::NotYetVisible(_) | Self::Unavailable(_) | Self::IdempotencyInProgress => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::RateLimited(seconds) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            _ => {}
        }
        response
    }
}

fn problem_json(problem: &Problem) -> String {
    // Serialising a struct of strings and numbers cannot fail.
    serde_json::to_string(problem).unwrap_or_else(|_| String::from("{}"))
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => Self::Unavailable(error),
            StoreError::InvalidValue(cause) => {
                Self::BadRequest(format!("a value in the request cannot be stored: {cause}"))
            }
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl ApiError {
    /// A refusal in the current state (409 unless said otherwise), naming its rule.
    fn refused(
        slug: &'static str,
        error: &dyn std::fmt::Display,
        rule: Option<&'static str>,
    ) -> Self {
        Self::Refused { slug, status: StatusCode::CONFLICT, detail: error.to_string(), rule }
    }

    /// An invalid field (422), naming its rule.
    fn invalid(field: &str, error: &dyn std::fmt::Display, rule: Option<&'static str>) -> Self {
        Self::Validation(vec![FieldError::new(field, error.to_string())], rule)
    }
}

impl From<CompanyError> for ApiError {
    fn from(error: CompanyError) -> Self {
        let rule = error.rule();
        match error {
            CompanyError::NotRegistered => Self::NotFound(error.to_string()),
            CompanyError::ValidUntilNotAfterGrant | CompanyError::RecognitionTermTooLong => {
                Self::invalid("valid_until", &error, rule)
            }
            CompanyError::RecognitionNotHeld(_) => {
                Self::refused("recognition-not-held", &error, rule)
            }
            CompanyError::AlreadyRegistered => Self::refused("already-registered", &error, rule),
            CompanyError::Revoked
            | CompanyError::AlreadySuspended
            | CompanyError::NotSuspended
            | CompanyError::SuspendedCannotGrant => {
                Self::refused("invalid-transition", &error, rule)
            }
        }
    }
}

impl From<StudentError> for ApiError {
    fn from(error: StudentError) -> Self {
        match error {
            StudentError::AlreadyEnrolled => Self::refused("already-enrolled", &error, None),
            StudentError::NotEnrolled => Self::NotFound(error.to_string()),
        }
    }
}

impl From<OfferError> for ApiError {
    fn from(error: OfferError) -> Self {
        let rule = error.rule();
        match error {
            OfferError::AlreadyPublished => Self::refused("already-published", &error, rule),
            OfferError::NotPublished => Self::NotFound(error.to_string()),
            OfferError::CompanyMayNotHost => Self::refused("company-may-not-host", &error, rule),
            OfferError::PeriodEnded | OfferError::Withdrawn => {
                Self::refused("offer-not-current", &error, rule)
            }
            OfferError::NoFreeSlot => Self::refused("no-free-slot", &error, rule),
        }
    }
}

impl From<PlacementError> for ApiError {
    fn from(error: PlacementError) -> Self {
        use PlacementError as E;
        let rule = error.rule();
        match error {
            E::NotFound | E::UnknownContactMoment(_) => Self::NotFound(error.to_string()),
            E::AlreadyExists => Self::refused("already-exists", &error, rule),
            E::InvalidTransition { .. } => Self::refused("invalid-transition", &error, rule),
            E::QualificationMismatch { .. } | E::LevelMismatch(_) => {
                Self::refused("not-eligible", &error, rule)
            }
            E::CompanyMayNotHost => Self::refused("company-may-not-host", &error, rule),
            E::AlreadySigned(_) => Self::refused("already-signed", &error, rule),
            E::SignaturesMissing(_) => Self::refused("signatures-missing", &error, rule),
            E::CannotConfirm => Self::refused("cannot-confirm", &error, rule),
            E::ContactMomentsMissing(_) => Self::refused("contact-moments-missing", &error, rule),
            E::ReasonsRequired => Self::invalid("reasons", &error, rule),
            E::ExpenseAllowanceTooLow { .. } => {
                Self::invalid("compensation.expense_allowance_eur", &error, rule)
            }
            E::WageMissing(_) | E::WageBelowMinimum { .. } => {
                Self::invalid("compensation.hourly_wage_eur", &error, rule)
            }
            E::NoWageTable(_) => Self::invalid("start_date", &error, rule),
            E::SignatureNotRequired(_) => Self::invalid("party", &error, rule),
            E::HeldInFuture | E::HeldBeforeStart => Self::invalid("held_on", &error, rule),
            E::RecorderNotParticipant => Self::invalid("participants", &error, rule),
            E::ScoreOutOfRange => Self::invalid("school_score", &error, rule),
        }
    }
}

impl From<ReportError> for ApiError {
    fn from(error: ReportError) -> Self {
        use ReportError as E;
        let rule = error.rule();
        match error {
            E::NotFound => Self::NotFound(error.to_string()),
            E::AlreadyFiled => Self::refused("already-exists", &error, rule),
            E::GroundsRequired => Self::invalid("grounds", &error, rule),
            E::PlacementAtOtherCompany => Self::invalid("placement_id", &error, rule),
            E::ConversationNotSafe => Self::invalid("safe_for_student", &error, rule),
            E::HeldInFuture | E::HeldBeforeFiling => Self::invalid("held_on", &error, rule),
            E::OutcomeNotBacked => Self::invalid("outcome", &error, rule),
            E::ReplacementOfOtherStudent
            | E::ReplacementAtReportedCompany
            | E::ReplacementMustReplace(_)
            | E::ReplacementEnded
            | E::ReplacementDelays(_) => Self::invalid("placement_id", &error, rule),
            E::Closed(_) => Self::refused("report-closed", &error, rule),
            E::ConsentMissing => Self::refused("consent-missing", &error, rule),
            E::AlreadyForwarded => Self::refused("already-forwarded", &error, rule),
            E::ContentErased => Self::refused("content-erased", &error, rule),
            E::AlreadyEscalated => Self::refused("already-escalated", &error, rule),
            E::NoFollowUp => Self::refused("no-follow-up", &error, rule),
        }
    }
}

impl From<InvestigationError> for ApiError {
    fn from(error: InvestigationError) -> Self {
        use InvestigationError as E;
        let rule = error.rule();
        match error {
            E::NotFound => Self::NotFound(error.to_string()),
            E::AlreadyOpened => Self::refused("already-exists", &error, rule),
            E::EvidenceOfOtherCompany => Self::invalid("signal_ids", &error, rule),
            E::AlreadyConcluded => Self::refused("already-concluded", &error, rule),
            E::NotHeard(_) => Self::refused("not-heard", &error, rule),
            E::NothingToReinstate => Self::refused("nothing-to-reinstate", &error, rule),
            E::HeldInFuture => Self::invalid("held_on", &error, rule),
        }
    }
}

impl From<MatchingRoundError> for ApiError {
    fn from(error: MatchingRoundError) -> Self {
        use MatchingRoundError as E;
        let rule = error.rule();
        match error {
            E::NotFound => Self::NotFound(error.to_string()),
            E::AlreadyOpened => Self::refused("already-exists", &error, rule),
            E::Published => Self::refused("round-published", &error, rule),
            E::NotRun => Self::refused("round-not-run", &error, rule),
            E::NothingProposed => Self::refused("nothing-proposed", &error, rule),
            E::NotSettleable => Self::refused("round-not-settleable", &error, rule),
            E::NotIntroduced { .. } => Self::invalid("settlements", &error, rule),
            E::AlreadySettled(_) => Self::refused("already-settled", &error, rule),
            E::Lapsed { .. } => Self::refused("match-lapsed", &error, rule),
            E::NoSettlements => Self::invalid("settlements", &error, rule),
        }
    }
}

impl From<SignalError> for ApiError {
    fn from(error: SignalError) -> Self {
        Self::refused("already-exists", &error, None)
    }
}

impl From<ShortageError> for ApiError {
    fn from(error: ShortageError) -> Self {
        Self::refused("no-shortage", &error, Some(error.rule()))
    }
}

impl From<ComplaintError> for ApiError {
    fn from(error: ComplaintError) -> Self {
        Self::refused("already-exists", &error, None)
    }
}

impl From<Denial> for ApiError {
    fn from(denial: Denial) -> Self {
        match denial {
            Denial::NotFound(detail) => Self::NotFound(detail),
            Denial::Forbidden(detail) => Self::Forbidden(detail),
        }
    }
}

impl<E> From<CommandError<E>> for ApiError
where
    E: std::error::Error,
    ApiError: From<E>,
{
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Rejected(refusal) => refusal.into(),
            CommandError::VersionMismatch { expected, current } => Self::VersionMismatch(
                format!("If-Match expected version {expected}, the current version is {current}"),
                current,
            ),
            CommandError::Conflict => Self::Conflict,
            CommandError::Denied(denial) => denial.into(),
            CommandError::Store(store) => store.into(),
        }
    }
}
