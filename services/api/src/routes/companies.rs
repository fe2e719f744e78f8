//! Company recognition: SBB registers learning companies and grants, suspends,
//! reinstates and revokes their recognition (S1, D5); the registry serves them.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use stagepact_domain::company::{
    Company, CompanyCommand, CompanyRecord, CompanyRegistered, MatchingParticipationSet,
    RecognitionGranted, RecognitionReinstated, RecognitionRevoked, RecognitionSuspended,
};
use stagepact_domain::values::{CompanyId, CompanyName, Crebo, Location, Reason, Region, Sector};
use stagepact_store::company_registry::{self, RegistryEntry, RegistryFilter};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    CommandContext, CommandHeaders, CommandProblems, ReadProblems, accepted, page, page_limit,
    tagged,
};
use crate::auth::{Principal, Role};
use crate::extract::{AppJson, AppQuery, Fields};
use crate::problem::ApiError;
use crate::server::AppState;

/// A point on the map (WGS84).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationBody {
    /// Latitude, -90 to 90.
    #[schema(minimum = -90, maximum = 90)]
    pub lat: f64,
    /// Longitude, -180 to 180.
    #[schema(minimum = -180, maximum = 180)]
    pub lon: f64,
}

/// Body of `registerCompany`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterCompanyRequest {
    /// SBB's id of the company: 1-64 letters, digits, `-`, `_`.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", example = "100012345")]
    pub company_id: String,
    /// Trade name.
    #[schema(min_length = 1, max_length = 200, example = "Bakkerij Jansen")]
    pub name: String,
    /// Economic sector.
    #[schema(min_length = 1, max_length = 100, example = "Voedsel")]
    pub sector: String,
    /// Labour-market region.
    #[schema(min_length = 1, max_length = 100, example = "Utrecht")]
    pub region: String,
    /// Where the company is.
    #[serde(default)]
    pub location: Option<LocationBody>,
}

/// Body of `grantRecognition`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRecognitionRequest {
    /// Qualification code (crebo): five digits.
    #[schema(pattern = "^[0-9]{5}$", example = "25180")]
    pub qualification: String,
    /// Last day of the recognition: after today, at most four years ahead (S1).
    pub valid_until: NaiveDate,
}

/// Body of `suspendRecognition`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendRecognitionRequest {
    /// Why.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
    /// The SBB investigation this suspension belongs to.
    #[serde(default)]
    pub investigation_id: Option<Uuid>,
}

/// Body of `reinstateRecognition`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReinstateRecognitionRequest {
    /// Why.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

/// Body of `revokeRecognition`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRecognitionRequest {
    /// Why.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
    /// The one qualification to revoke; absent revokes the whole company.
    #[serde(default)]
    #[schema(pattern = "^[0-9]{5}$")]
    pub qualification: Option<String>,
}

/// What a command recorded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommandAccepted {
    /// The company.
    pub company_id: String,
    /// Its version now: send it as `If-Match` to change it again.
    pub version: i64,
    /// The log position of the last event recorded: pass it as `min_position`
    /// to read your own write. Absent if stamping took unusually long.
    pub position: Option<i64>,
}

/// One qualification's recognition.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecognitionView {
    /// Qualification code (crebo).
    pub qualification: String,
    /// Last day without reassessment.
    pub valid_until: NaiveDate,
    /// `active`, `suspended` or `revoked`.
    #[schema(pattern = "^(active|suspended|revoked)$")]
    pub status: String,
}

/// A running suspension (visible to SBB and the company itself).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SuspensionView {
    /// SBB's reason.
    pub reason: String,
    /// The investigation it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub investigation_id: Option<Uuid>,
}

/// A company in the registry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CompanyView {
    /// SBB's id.
    pub company_id: String,
    /// Trade name.
    pub name: String,
    /// Economic sector.
    pub sector: String,
    /// Labour-market region.
    pub region: String,
    /// Where it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationBody>,
    /// `active`, `suspended`, `revoked` or `unrecognised`.
    #[schema(pattern = "^(active|suspended|revoked|unrecognised)$")]
    pub status: String,
    /// Recognitions by qualification.
    pub recognitions: Vec<RecognitionView>,
    /// The running suspension, for SBB and the company itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspension: Option<SuspensionView>,
    /// Whether its offers are in play in schools' matching rounds (M4).
    pub participates_in_matching: bool,
    /// The aggregate version (also the `ETag`): send it as `If-Match`.
    pub version: i64,
    /// The log position of the last event this view reflects.
    pub position: i64,
    /// When that event was recorded.
    pub updated_at: DateTime<Utc>,
}

/// A page of companies.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CompanyPage {
    /// The companies, in id order.
    pub items: Vec<CompanyView>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `min_position` of reads.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// Wait (bounded) until the registry reflects the log up to this position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

/// Filters and cursor of `listCompanies`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Companies holding a recognition (in any state) for this crebo code.
    #[param(pattern = "^[0-9]{5}$")]
    pub qualification: Option<String>,
    /// Companies in this region.
    pub region: Option<String>,
    /// Companies with this status.
    #[param(inline)]
    pub status: Option<StatusFilter>,
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// Page size, 1-500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Wait (bounded) until the registry reflects the log up to this position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

/// Company status filter.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    /// Recognised, not suspended.
    Active,
    /// Suspended.
    Suspended,
    /// Revoked.
    Revoked,
    /// Registered without recognition.
    Unrecognised,
}

impl StatusFilter {
    fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
            Self::Unrecognised => "unrecognised",
        }
    }
}

fn company_id(raw: &str) -> Result<CompanyId, ApiError> {
    CompanyId::parse(raw).map_err(|_| ApiError::NotFound(format!("no company {raw:?}")))
}

fn reason(fields: &mut Fields, raw: &str) -> Option<Reason> {
    fields.parse("reason", Reason::parse(raw))
}

/// A recognition command's context: an SBB caller (else 403).
pub struct SbbCommand(pub(crate) CommandContext);

impl FromRequestParts<AppState> for SbbCommand {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let context = CommandContext::from_request_parts(parts, state).await?;
        context.principal.require(&[Role::Sbb])?;
        Ok(Self(context))
    }
}

impl SbbCommand {
    /// Runs `command` on company `id` and answers with what it recorded.
    async fn run(
        self,
        id: &CompanyId,
        command: CompanyCommand,
        status: StatusCode,
    ) -> Result<Response, ApiError> {
        run_on_company(&self.0, id, command, status).await
    }
}

/// Runs `command` on company `id` for an authorised caller and answers with
/// what it recorded.
async fn run_on_company(
    context: &CommandContext,
    id: &CompanyId,
    command: CompanyCommand,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let committed = context.run::<Company>(id.as_str(), command).await?;
    let body = CommandAccepted {
        company_id: id.to_string(),
        version: committed.version,
        position: committed.position,
    };
    let location = (status == StatusCode::CREATED).then(|| format!("/v1/companies/{id}"));
    Ok(accepted(status, body, committed, location))
}

/// Register a learning company (SBB).
#[utoipa::path(post, path = "/v1/companies", operation_id = "registerCompany", tag = "companies",
    request_body = RegisterCompanyRequest,
    params(CommandHeaders),
    responses((status = 201, description = "Registered", body = CommandAccepted), CommandProblems),
    security(("bearer" = ["sbb"])))]
pub async fn register_company(
    command: SbbCommand,
    AppJson(body): AppJson<RegisterCompanyRequest>,
) -> Result<Response, ApiError> {
    let mut fields = Fields::default();
    let id = fields.parse("company_id", CompanyId::parse(&body.company_id));
    let name = fields.parse("name", CompanyName::parse(&body.name));
    let sector = fields.parse("sector", Sector::parse(&body.sector));
    let region = fields.parse("region", Region::parse(&body.region));
    let location = match body.location {
        Some(l) => fields.parse("location", Location::parse(l.lat, l.lon)).map(Some),
        None => Some(None),
    };
    let event = fields.finish((|| {
        Some(CompanyRegistered {
            company_id: id?,
            name: name?,
            sector: sector?,
            region: region?,
            location: location?,
        })
    })())?;
    let id = event.company_id.clone();
    command.run(&id, CompanyCommand::RegisterCompany(event), StatusCode::CREATED).await
}

/// Recognise a company for a qualification until a date (SBB; rule S1).
#[utoipa::path(post, path = "/v1/companies/{company_id}/recognitions", operation_id = "grantRecognition",
    tag = "companies", request_body = GrantRecognitionRequest,
    params(("company_id" = String, Path, description = "SBB's company id"),
           CommandHeaders),
    responses((status = 202, description = "Recorded", body = CommandAccepted), CommandProblems),
    security(("bearer" = ["sbb"])))]
pub async fn grant_recognition(
    command: SbbCommand,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<GrantRecognitionRequest>,
) -> Result<Response, ApiError> {
    let id = company_id(&raw_id)?;
    let mut fields = Fields::default();
    let qualification = fields.parse("qualification", Crebo::parse(&body.qualification));
    let grant = fields.finish(qualification.map(|qualification| RecognitionGranted {
        qualification,
        granted_on: Utc::now().date_naive(),
        valid_until: body.valid_until,
    }))?;
    command.run(&id, CompanyCommand::GrantRecognition(grant), StatusCode::ACCEPTED).await
}

/// Suspend all of a company's recognitions, e.g. during an investigation (SBB; rule D5).
#[utoipa::path(post, path = "/v1/companies/{company_id}/suspend", operation_id = "suspendRecognition",
    tag = "companies", request_body = SuspendRecognitionRequest,
    params(("company_id" = String, Path, description = "SBB's company id"),
           CommandHeaders),
    responses((status = 202, description = "Recorded", body = CommandAccepted), CommandProblems),
    security(("bearer" = ["sbb"])))]
pub async fn suspend_recognition(
    command: SbbCommand,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<SuspendRecognitionRequest>,
) -> Result<Response, ApiError> {
    let id = company_id(&raw_id)?;
    let mut fields = Fields::default();
    let reason = reason(&mut fields, &body.reason);
    let suspension =
        fields.finish(reason.map(|reason| RecognitionSuspended {
            reason,
            investigation_id: body.investigation_id,
        }))?;
    if let Some(investigation_id) = body.investigation_id {
        super::sbb::check_open_investigation(&command.0, investigation_id, &id).await?;
    }
    command.run(&id, CompanyCommand::SuspendRecognition(suspension), StatusCode::ACCEPTED).await
}

/// Lift a company's suspension (SBB; rule D5).
#[utoipa::path(post, path = "/v1/companies/{company_id}/reinstate", operation_id = "reinstateRecognition",
    tag = "companies", request_body = ReinstateRecognitionRequest,
    params(("company_id" = String, Path, description = "SBB's company id"),
           CommandHeaders),
    responses((status = 202, description = "Recorded", body = CommandAccepted), CommandProblems),
    security(("bearer" = ["sbb"])))]
pub async fn reinstate_recognition(
    command: SbbCommand,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<ReinstateRecognitionRequest>,
) -> Result<Response, ApiError> {
    let id = company_id(&raw_id)?;
    let mut fields = Fields::default();
    let reason = reason(&mut fields, &body.reason);
    let reinstatement = fields.finish(reason.map(|reason| RecognitionReinstated { reason }))?;
    command
        .run(&id, CompanyCommand::ReinstateRecognition(reinstatement), StatusCode::ACCEPTED)
        .await
}

/// Revoke one qualification's recognition, or the whole company's (SBB; rule D5).
#[utoipa::path(post, path = "/v1/companies/{company_id}/revoke", operation_id = "revokeRecognition",
    tag = "companies", request_body = RevokeRecognitionRequest,
    params(("company_id" = String, Path, description = "SBB's company id"),
           CommandHeaders),
    responses((status = 202, description = "Recorded", body = CommandAccepted), CommandProblems),
    security(("bearer" = ["sbb"])))]
pub async fn revoke_recognition(
    command: SbbCommand,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<RevokeRecognitionRequest>,
) -> Result<Response, ApiError> {
    let id = company_id(&raw_id)?;
    let mut fields = Fields::default();
    let reason = reason(&mut fields, &body.reason);
    let qualification = match body.qualification.as_deref() {
        Some(code) => fields.parse("qualification", Crebo::parse(code)).map(Some),
        None => Some(None),
    };
    let revocation = fields.finish((|| {
        Some(RecognitionRevoked { reason: reason?, qualification: qualification? })
    })())?;
    command.run(&id, CompanyCommand::RevokeRecognition(revocation), StatusCode::ACCEPTED).await
}

/// Body of `setMatchingParticipation`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipationRequest {
    /// Whether the company takes part in schools' matching rounds.
    pub participates: bool,
}

/// A company declares whether it takes part in objective matching rounds (the
/// company itself; rule M4: it may opt out, and the number that do is
/// monitored). No change records nothing.
#[utoipa::path(post, path = "/v1/companies/{company_id}/matching-participation",
    operation_id = "setMatchingParticipation", tag = "companies", request_body = ParticipationRequest,
    params(("company_id" = String, Path, description = "SBB's company id"), CommandHeaders),
    responses((status = 202, description = "Recorded", body = CommandAccepted), CommandProblems),
    security(("bearer" = ["company"])))]
pub async fn set_matching_participation(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<ParticipationRequest>,
) -> Result<Response, ApiError> {
    command.principal.require(&[Role::Company])?;
    let id = company_id(&raw_id)?;
    if !command.principal.is_company(id.as_str()) {
        return Err(ApiError::Forbidden("a company sets only its own participation".into()));
    }
    let set = CompanyCommand::SetMatchingParticipation(MatchingParticipationSet {
        participates: body.participates,
    });
    run_on_company(&command, &id, set, StatusCode::ACCEPTED).await
}

/// Who may read which registry entries: SBB and schools all, a company itself.
fn may_read(principal: &Principal) -> Result<(), ApiError> {
    principal.require(&[Role::Sbb, Role::School, Role::Company])
}

fn view(principal: &Principal, entry: RegistryEntry) -> CompanyView {
    let RegistryEntry { record, version, last_position, updated_at } = entry;
    let status = record.status().as_str().to_owned();
    let sees_reason =
        principal.role == Role::Sbb || principal.is_company(record.company_id.as_str());
    let participates_in_matching = !record.opted_out_of_matching;
    let CompanyRecord {
        company_id, name, sector, region, location, recognitions, suspension, ..
    } = record;
    CompanyView {
        company_id: company_id.into(),
        name: name.into(),
        sector: sector.into(),
        region: region.into(),
        location: location.map(|l| LocationBody { lat: l.lat, lon: l.lon }),
        status,
        recognitions: recognitions
            .into_values()
            .map(|r| RecognitionView {
                qualification: r.qualification.into(),
                valid_until: r.valid_until,
                status: r.status.as_str().to_owned(),
            })
            .collect(),
        suspension: suspension.filter(|_| sees_reason).map(|s| SuspensionView {
            reason: s.reason.into(),
            investigation_id: s.investigation_id,
        }),
        participates_in_matching,
        version,
        position: last_position,
        updated_at,
    }
}

/// One company's registry entry (SBB and schools: any; a company: itself).
#[utoipa::path(get, path = "/v1/companies/{company_id}", operation_id = "getCompany", tag = "companies",
    params(("company_id" = String, Path, description = "SBB's company id"), ReadQuery,
           ("If-None-Match" = Option<String>, Header, description = "The ETag of a copy you hold")),
    responses((status = 200, description = "The company; ETag is its version", body = CompanyView),
              (status = 304, description = "Not modified"), ReadProblems),
    security(("bearer" = ["sbb", "school", "company"])))]
pub async fn get_company(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    AppQuery(query): AppQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    may_read(&principal)?;
    let id = company_id(&raw_id)?;
    if principal.role == Role::Company && !principal.is_company(id.as_str()) {
        return Err(ApiError::Forbidden("a company may only read its own registry entry".into()));
    }
    state.await_projection(company_registry::NAME, query.min_position).await?;
    let entry = company_registry::get(&state.pool, id.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no company {id}")))?;
    let view = view(&principal, entry);
    Ok(tagged(view.version, view))
}

/// The company registry, filtered, in pages (SBB and schools: all; a company: itself).
#[utoipa::path(get, path = "/v1/companies", operation_id = "listCompanies", tag = "companies",
    params(ListQuery, ("If-None-Match" = Option<String>, Header, description = "The ETag of a page you hold")),
    responses((status = 200, description = "A page of companies", body = CompanyPage),
              (status = 304, description = "Not modified"), ReadProblems),
    security(("bearer" = ["sbb", "school", "company"])))]
pub async fn list_companies(
    State(state): State<AppState>,
    principal: Principal,
    AppQuery(query): AppQuery<ListQuery>,
) -> Result<Json<CompanyPage>, ApiError> {
    may_read(&principal)?;
    let limit = page_limit(query.limit)?;
    if let Some(code) = &query.qualification {
        Crebo::parse(code).map_err(|e| {
            ApiError::Validation(vec![crate::FieldError::new("qualification", e.to_string())], None)
        })?;
    }
    state.await_projection(company_registry::NAME, query.min_position).await?;
    let filter = RegistryFilter {
        qualification: query.qualification,
        region: query.region,
        status: query.status.map(|s| s.as_str().to_owned()),
        // A company sees only itself.
        company_id: if principal.role == Role::Company { principal.org.clone() } else { None },
    };
    let rows =
        company_registry::list(&state.pool, &filter, query.after.as_deref(), limit + 1).await?;
    let (entries, next) = page(rows, limit, |e| e.record.company_id.to_string());
    Ok(Json(CompanyPage {
        items: entries.into_iter().map(|e| view(&principal, e)).collect(),
        next,
    }))
}
