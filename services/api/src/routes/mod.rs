//! The operations, one module per resource.

pub mod companies;
pub mod events;
pub mod health;
pub mod indicators;
pub mod matching;
pub mod me;
pub mod offers;
pub mod placements;
pub mod reports;
pub mod sbb;
pub mod students;

use std::collections::HashMap;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use cqrs_es::Aggregate;
use serde::Serialize;
use stagepact_domain::Visibility;
use stagepact_store::{Committed, Denial, Loaded};
use utoipa::ToSchema;
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder, ResponsesBuilder};

use crate::auth::Principal;
use crate::extract::IfMatch;
use crate::problem::{ApiError, Problem};
use crate::server::AppState;

/// What every command needs before its body is read: the caller, the
/// `If-Match` version, and the metadata stored with the events (who acted, and
/// the request id that ties them to the logs).
pub struct CommandContext {
    /// The application.
    pub state: AppState,
    /// The caller.
    pub principal: Principal,
    expected: Option<i64>,
    metadata: HashMap<String, String>,
}

impl FromRequestParts<AppState> for CommandContext {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let IfMatch(expected) = IfMatch::from_request_parts(parts, state).await?;
        let mut metadata = HashMap::from([
            ("actor_role".to_owned(), principal.role.to_string()),
            ("actor".to_owned(), principal.subject.clone()),
        ]);
        if let Some(request_id) = parts.headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
            metadata.insert("request_id".to_owned(), request_id.to_owned());
        }
        Ok(Self { state: state.clone(), principal, expected, metadata })
    }
}

impl CommandContext {
    /// Runs `command` on aggregate `id`.
    pub async fn run<A>(&self, id: &str, command: A::Command) -> Result<Committed, ApiError>
    where
        A: Aggregate<Services = ()> + Clone + Visibility + 'static,
        A::Command: Clone,
        ApiError: From<A::Error>,
    {
        self.run_guarded::<A>(id, command, |_| Ok(())).await
    }

    /// Runs `command` on aggregate `id` if `guard` lets the caller act on it as loaded.
    pub async fn run_guarded<A>(
        &self,
        id: &str,
        command: A::Command,
        guard: impl Fn(&A) -> Result<(), Denial>,
    ) -> Result<Committed, ApiError>
    where
        A: Aggregate<Services = ()> + Clone + Visibility + 'static,
        A::Command: Clone,
        ApiError: From<A::Error>,
    {
        self.run_guarded_from::<A>(id, None, command, guard).await
    }

    /// `run_guarded`, deciding first on the state the handler already loaded
    /// (see [`Loaded`]) instead of loading it again.
    pub async fn run_guarded_from<A>(
        &self,
        id: &str,
        loaded: Option<Loaded<A>>,
        command: A::Command,
        guard: impl Fn(&A) -> Result<(), Denial>,
    ) -> Result<Committed, ApiError>
    where
        A: Aggregate<Services = ()> + Clone + Visibility + 'static,
        A::Command: Clone,
        ApiError: From<A::Error>,
    {
        Ok(self
            .state
            .bus
            .execute_from::<A>(id, loaded, command, self.expected, self.metadata.clone(), guard)
            .await?)
    }
}

impl CommandContext {
    /// The metadata stored with the events of this request.
    pub fn metadata(&self) -> HashMap<String, String> {
        self.metadata.clone()
    }

    /// Runs `command` on another aggregate than the one the request is about:
    /// the request's `If-Match` does not apply to it. It is decided first on
    /// `loaded`, where the handler already loaded that aggregate.
    pub async fn run_beside<A>(
        &self,
        id: &str,
        loaded: Option<Loaded<A>>,
        command: A::Command,
    ) -> Result<Committed, ApiError>
    where
        A: Aggregate<Services = ()> + Clone + Visibility + 'static,
        A::Command: Clone,
        ApiError: From<A::Error>,
    {
        Ok(self
            .state
            .bus
            .execute_from::<A>(id, loaded, command, None, self.metadata.clone(), |_| Ok(()))
            .await?)
    }
}

/// The headers every command takes (documentation: the idempotency layer and
/// `IfMatch` read them).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(
    dead_code,
    reason = "documents the headers for OpenAPI; read by the idempotency layer and `IfMatch`"
)]
pub struct CommandHeaders {
    /// Makes a retry of this POST return the first response (kept 24 hours); the
    /// same key with another body is refused.
    #[param(rename = "Idempotency-Key", value_type = String, required = false, pattern = r"^[!-~]{1,255}$")]
    idempotency_key: Option<String>,
    /// The aggregate version the command expects, as an entity tag (`"3"`; `"0"`:
    /// must not exist yet); 412 when it differs.
    #[param(
        rename = "If-Match",
        value_type = String,
        required = false,
        pattern = r#"^(\*|(W/)?"[0-9]{1,18}"|[0-9]{1,18})$"#
    )]
    if_match: Option<String>,
}

/// The header of commands that are not on one aggregate's version (an
/// erasure, a bulk import): only `Idempotency-Key`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code, reason = "documents the header for OpenAPI; read by the idempotency layer")]
pub struct IdempotencyHeader {
    /// Makes a retry of this POST return the first response (kept 24 hours); the
    /// same key with another body is refused.
    #[param(rename = "Idempotency-Key", value_type = String, required = false, pattern = r"^[!-~]{1,255}$")]
    idempotency_key: Option<String>,
}

/// A list's optional `company_id` filter, parsed like every company id.
pub fn company_filter(raw: Option<&str>) -> Result<Option<&str>, ApiError> {
    raw.map(|raw| {
        stagepact_domain::values::CompanyId::parse(raw).map(|_| raw).map_err(|error| {
            ApiError::Validation(
                vec![crate::FieldError::new("company_id", error.to_string())],
                None,
            )
        })
    })
    .transpose()
}

/// A list's optional `student_id` filter, parsed at the edge like every
/// student number (an empty or malformed one is a 422, not an empty list).
pub fn student_filter(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    raw.map(|raw| {
        stagepact_domain::values::StudentNumber::parse(raw)
            .map(|number| number.to_string())
            .map_err(|error| {
                ApiError::Validation(
                    vec![crate::FieldError::new("student_id", error.to_string())],
                    None,
                )
            })
    })
    .transpose()
}

/// The calendar day commands are dated with. Dates in the pact are Dutch days;
/// the server's UTC day differs from it only around midnight, which no rule
/// here is sensitive to.
pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// A new id for a placement or an offer: a UUIDv7, whose first 48 bits are
/// the time in milliseconds. The log's primary key, the read models and their
/// `(school|company, id)` indexes all take these ids; random (v4) ids spread
/// a steady load's inserts over every leaf page of those indexes, so the pages
/// it dirties (and the full-page images in the WAL after each checkpoint) grow
/// with the tables, where time-ordered ids keep them at the right edge.
/// The time an id gives away is its record's creation, which every party that
/// may read the record also sees in its events. Reports, signals and
/// complaints keep random ids: when one was filed can point to who filed it.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// The answer to a command: `body` with the version as `ETag`, the log position
/// as `X-Log-Position`, and `Location` for a created resource.
pub fn accepted<T: Serialize>(
    status: StatusCode,
    body: T,
    committed: Committed,
    location: Option<String>,
) -> Response {
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(tag) = HeaderValue::from_str(&format!("\"{}\"", committed.version)) {
        headers.insert(header::ETAG, tag);
    }
    if let Some(position) = committed.position {
        headers.insert("x-log-position", HeaderValue::from(position));
    }
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    response
}

/// A read answered with its version as `ETag`.
pub fn tagged<T: Serialize>(version: i64, body: T) -> Response {
    let mut response = Json(body).into_response();
    if let Ok(tag) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

/// Cuts a list read with `limit + 1` rows to one page: the rows, and the
/// cursor of the next page when there is one.
pub fn page<T, K>(mut rows: Vec<T>, limit: i64, cursor: impl Fn(&T) -> K) -> (Vec<T>, Option<K>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(cursor) } else { None };
    (rows, next)
}

/// Checks a page size: 1-500, default 100.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(100);
    if (1..=500).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::Validation(vec![crate::FieldError::new("limit", "must be 1-500")], None))
    }
}

/// Documents the problem responses an operation can give, so every operation
/// lists them without repeating them by hand.
fn problems(
    statuses: &[(u16, &str)],
) -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    let mut responses = ResponsesBuilder::new();
    for (status, description) in statuses {
        let content = ContentBuilder::new()
            .schema(Some(utoipa::openapi::schema::Ref::from_schema_name("Problem")))
            .build();
        responses = responses.response(
            status.to_string(),
            ResponseBuilder::new()
                .description(*description)
                .content("application/problem+json", content),
        );
    }
    let _ = std::any::type_name::<Problem>();
    responses.build().responses.into_iter().collect()
}

/// Problems of every authenticated operation.
const AUTH: [(u16, &str); 4] = [
    (400, "The request could not be read"),
    (401, "Missing, expired or invalid token"),
    (403, "The caller's role or organisation may not do this"),
    (429, "Too many requests from this token or address; retry after the Retry-After delay"),
];

/// Problem responses of commands.
pub struct CommandProblems;

impl utoipa::IntoResponses for CommandProblems {
    fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut statuses = AUTH.to_vec();
        statuses.extend([
            (404, "No such object (company, student, offer, placement, report, investigation or round) in the caller's reach"),
            (409, "Refused by the pact's rules in the current state, or a concurrent update, or an idempotent request still in progress"),
            (412, "If-Match does not match the current version"),
            (413, "Request body too large"),
            (415, "The body is not JSON"),
            (422, "Invalid fields, or an Idempotency-Key reused for another request"),
            (503, "Temporarily unavailable; retry after the Retry-After delay"),
        ]);
        problems(&statuses)
    }
}

/// Problem responses of reads.
pub struct ReadProblems;

impl utoipa::IntoResponses for ReadProblems {
    fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut statuses = AUTH.to_vec();
        statuses.extend([
            (404, "Not found"),
            (422, "Invalid query parameters, each named in `errors`"),
            (
                503,
                "Read models have not reached min_position in time, or the database is unavailable",
            ),
        ]);
        problems(&statuses)
    }
}

/// What erased content reads as.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Erased {
    /// Always true.
    pub erased: bool,
}

/// Sealed text as its reader gets it: the text, or `{"erased": true}` once
/// the student's data is erased.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ProtectedText {
    /// The text.
    Readable(String),
    /// Erased with the student's data.
    Erased(Erased),
}

impl ProtectedText {
    /// Opened content as the API shows it.
    pub fn of(protected: stagepact_domain::protected::Protected<String>) -> Self {
        match protected {
            stagepact_domain::protected::Protected::Readable(text) => Self::Readable(text),
            stagepact_domain::protected::Protected::Erased(_) => {
                Self::Erased(Erased { erased: true })
            }
        }
    }
}
