//! SBB's side of the reporting chain (D4, D5, D7): anonymised signals from
//! schools, complaints escalated to SBB's complaint desk, and investigations of
//! a learning company with their hearings and conclusion.
//!
//! Only SBB acts here. SBB never learns a student's identity: a signal carries
//! the company, the kind, the grounds and the quarter; a complaint names the
//! school. SBB sees signals only as counts: suppressed below
//! [`SUPPRESS_BELOW`] (with the other cells of a breakdown when one is), a
//! company's signal ids listed only when its count is shown, and no signal in
//! SBB's event feed — so a single signal cannot be singled out.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use stagepact_domain::company::Company;
use stagepact_domain::complaint::Complaint;
use stagepact_domain::investigation::*;
use stagepact_domain::report::Ground;
use stagepact_domain::signal::Signal;
use stagepact_domain::values::CompanyId;
use stagepact_store::cases;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::companies::{ReadQuery, SbbCommand};
use super::{
    CommandContext, CommandHeaders, CommandProblems, ProtectedText, ReadProblems, accepted, page,
    page_limit, tagged, today,
};
use crate::auth::{Principal, Role};
use crate::delivery;
use crate::extract::{AppJson, AppQuery, Fields};
use crate::problem::{ApiError, FieldError};
use crate::server::AppState;

/// Published counts below this are shown as suppressed (DESIGN §6).
pub const SUPPRESS_BELOW: usize = stagepact_domain::monitoring::SMALLEST_CELL;

// ---------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------

/// A count, or `"suppressed"` when it is 1 to 4 (never shown as 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Count {
    /// The count.
    Shown(usize),
    /// Fewer than five.
    Suppressed(Suppressed),
}

/// The marker of a suppressed count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Suppressed {
    /// Fewer than five.
    Suppressed,
}

impl Count {
    /// `n`, or suppressed when it is 1 to 4.
    pub fn of(n: usize) -> Self {
        if stagepact_domain::monitoring::shown(n) {
            Self::Shown(n)
        } else {
            Self::Suppressed(Suppressed::Suppressed)
        }
    }

    pub(crate) fn shown(self) -> bool {
        matches!(self, Self::Shown(_))
    }
}

/// One cell of a breakdown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Cell {
    /// The kind, ground or quarter.
    pub key: String,
    /// How many signals.
    pub count: Count,
}

/// The signals about one company.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CompanySignals {
    /// The company.
    pub company_id: String,
    /// All its signals.
    pub signals: Count,
    /// By kind of report.
    pub by_kind: Vec<Cell>,
    /// By ground (a signal can name several).
    pub by_ground: Vec<Cell>,
    /// By quarter.
    pub by_quarter: Vec<Cell>,
    /// The signals, for `openInvestigation`; only when `signals` is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal_ids: Option<Vec<Uuid>>,
}

/// Anonymised signals, by company.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignalOverview {
    /// Counts from 1 to this minus one are suppressed.
    pub suppressed_below: usize,
    /// Companies with at least one signal, by id.
    pub companies: Vec<CompanySignals>,
}

/// Filters of `listSignals`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SignalQuery {
    /// One company.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub company_id: Option<String>,
    /// Wait (bounded) until the case files reflect the log up to this position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

/// A breakdown's cells. When one cell is suppressed, all are: otherwise the
/// shown total minus the shown cells would give the suppressed one away.
pub(crate) fn cells(counts: BTreeMap<String, usize>) -> Vec<Cell> {
    let any_small = counts.values().any(|n| !Count::of(*n).shown());
    let suppressed = Count::Suppressed(Suppressed::Suppressed);
    counts
        .into_iter()
        .map(|(key, n)| Cell { key, count: if any_small { suppressed } else { Count::of(n) } })
        .collect()
}

/// Anonymised signals from schools, counted per company by kind, ground and
/// quarter; counts under five are suppressed (SBB).
#[utoipa::path(get, path = "/v1/signals", operation_id = "listSignals", tag = "sbb",
    params(SignalQuery),
    responses((status = 200, description = "Signals by company", body = SignalOverview), ReadProblems),
    security(("bearer" = ["sbb"])))]
pub async fn list_signals(
    State(state): State<AppState>,
    principal: Principal,
    AppQuery(query): AppQuery<SignalQuery>,
) -> Result<Json<SignalOverview>, ApiError> {
    principal.require(&[Role::Sbb])?;
    state.await_projection(cases::NAME, query.min_position).await?;
    let signals =
        cases::all_signals(&state.pool, super::company_filter(query.company_id.as_deref())?)
            .await?;
    let opener = state.vault.opener(signals.iter().map(|s| s.record.grounds.sealed)).await?;
    #[derive(Default)]
    struct Tally {
        ids: Vec<Uuid>,
        kinds: BTreeMap<String, usize>,
        grounds: BTreeMap<String, usize>,
        quarters: BTreeMap<String, usize>,
    }
    let mut companies: BTreeMap<String, Tally> = BTreeMap::new();
    for signal in signals {
        let tally = companies.entry(signal.record.company_id.to_string()).or_default();
        tally.ids.push(signal.id);
        *tally.kinds.entry(signal.record.kind.as_str().to_owned()).or_default() += 1;
        *tally.quarters.entry(signal.record.quarter.to_string()).or_default() += 1;
        // Signal grounds are sealed under SBB's own key, which is never erased.
        for ground in
            opener.open::<Vec<Ground>>(&signal.record.grounds).readable().unwrap_or_default()
        {
            *tally.grounds.entry(ground.as_str().to_owned()).or_default() += 1;
        }
    }
    let companies = companies
        .into_iter()
        .map(|(company_id, tally)| {
            let signals = Count::of(tally.ids.len());
            CompanySignals {
                company_id,
                signal_ids: signals.shown().then_some(tally.ids),
                signals,
                by_kind: cells(tally.kinds),
                by_ground: cells(tally.grounds),
                by_quarter: cells(tally.quarters),
            }
        })
        .collect();
    Ok(Json(SignalOverview { suppressed_below: SUPPRESS_BELOW, companies }))
}

// ---------------------------------------------------------------------------
// Complaints
// ---------------------------------------------------------------------------

/// A complaint at SBB's complaint desk.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComplaintView {
    /// The complaint.
    pub complaint_id: Uuid,
    /// The company.
    pub company_id: String,
    /// The escalating school.
    pub school: String,
    /// What was reported.
    pub kind: String,
    /// The school's summary; `{"erased": true}` once the student's data is erased.
    pub summary: ProtectedText,
    /// When SBB received it.
    pub received_on: NaiveDate,
}

/// A page of complaints.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComplaintPage {
    /// The complaints.
    pub items: Vec<ComplaintView>,
    /// The cursor of the next page.
    pub next: Option<Uuid>,
}

/// Filters and cursor of SBB's lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CaseQuery {
    /// One company.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub company_id: Option<String>,
    /// The last item of the previous page.
    pub after: Option<Uuid>,
    /// Page size, 1-500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Wait (bounded) until the case files reflect the log up to this position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

/// Complaints escalated by schools (SBB's complaint desk).
#[utoipa::path(get, path = "/v1/complaints", operation_id = "listComplaints", tag = "sbb",
    params(CaseQuery),
    responses((status = 200, description = "A page of complaints", body = ComplaintPage), ReadProblems),
    security(("bearer" = ["sbb"])))]
pub async fn list_complaints(
    State(state): State<AppState>,
    principal: Principal,
    AppQuery(query): AppQuery<CaseQuery>,
) -> Result<Json<ComplaintPage>, ApiError> {
    principal.require(&[Role::Sbb])?;
    let limit = page_limit(query.limit)?;
    state.await_projection(cases::NAME, query.min_position).await?;
    let rows = cases::list::<Complaint>(
        &state.pool,
        super::company_filter(query.company_id.as_deref())?,
        query.after,
        limit + 1,
    )
    .await?;
    let (entries, next) = page(rows, limit, |e| e.id);
    let opener = state.vault.opener(entries.iter().map(|e| e.record.summary.sealed)).await?;
    let items = entries
        .into_iter()
        .map(|e| ComplaintView {
            complaint_id: e.id,
            company_id: e.record.company_id.to_string(),
            school: e.record.school.to_string(),
            kind: e.record.kind.as_str().to_owned(),
            summary: ProtectedText::of(opener.open(&e.record.summary)),
            received_on: e.record.received_on,
        })
        .collect();
    Ok(Json(ComplaintPage { items, next }))
}

// ---------------------------------------------------------------------------
// Investigations
// ---------------------------------------------------------------------------

/// Body of `openInvestigation`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenInvestigationRequest {
    /// The company.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub company_id: String,
    /// Signals about it that led here.
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub signal_ids: Vec<Uuid>,
    /// The complaint that led here.
    #[serde(default)]
    pub complaint_id: Option<Uuid>,
}

/// Body of `recordHearing`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HearingRequest {
    /// `company` or `school`.
    #[schema(value_type = String, pattern = "^(company|school)$")]
    pub party: HearingParty,
    /// When.
    pub held_on: NaiveDate,
}

/// Body of `concludeInvestigation`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConcludeRequest {
    /// The outcome; revoked and reinstated change the company's recognition.
    #[schema(value_type = String, pattern = "^(recognition_revoked|recognition_reinstated|measures_agreed|unfounded)$")]
    pub outcome: InvestigationOutcome,
}

/// What an investigation command recorded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvestigationAccepted {
    /// The investigation.
    pub investigation_id: Uuid,
    /// Its version now (send as `If-Match`).
    pub version: i64,
    /// The log position of the last event recorded.
    pub position: Option<i64>,
}

/// A hearing.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HearingView {
    /// Who was heard.
    #[schema(value_type = String)]
    pub party: HearingParty,
    /// When.
    pub held_on: NaiveDate,
}

/// An investigation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvestigationView {
    /// The investigation.
    pub investigation_id: Uuid,
    /// Its version.
    pub version: i64,
    /// The company.
    pub company_id: String,
    /// The signals that led to it (SBB only; empty for the company).
    pub signal_ids: Vec<Uuid>,
    /// The complaint that led to it (SBB only).
    pub complaint_id: Option<Uuid>,
    /// When it was opened.
    pub opened_on: NaiveDate,
    /// The hearings.
    pub hearings: Vec<HearingView>,
    /// `open` or `concluded`.
    pub status: &'static str,
    /// The outcome.
    #[schema(value_type = Option<String>)]
    pub outcome: Option<InvestigationOutcome>,
    /// When it was concluded.
    pub concluded_on: Option<NaiveDate>,
}

fn investigation_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("no investigation {raw:?}")))
}

fn answer(id: Uuid, committed: stagepact_store::Committed, status: StatusCode) -> Response {
    let body = InvestigationAccepted {
        investigation_id: id,
        version: committed.version,
        position: committed.position,
    };
    let location = (status == StatusCode::CREATED).then(|| format!("/v1/investigations/{id}"));
    accepted(status, body, committed, location)
}

/// A suspension names an investigation: it must exist, concern the company and
/// be open (D5).
pub(crate) async fn check_open_investigation(
    command: &CommandContext,
    id: Uuid,
    company: &CompanyId,
) -> Result<(), ApiError> {
    let (investigation, _) = command.state.bus.load::<Investigation>(&id.to_string()).await?;
    let problem = match investigation.record() {
        None => "no such investigation",
        Some(r) if r.opened.company_id != *company => "the investigation concerns another company",
        Some(r) if r.concluded.is_some() => "the investigation is concluded",
        Some(_) => return Ok(()),
    };
    Err(ApiError::Validation(vec![FieldError::new("investigation_id", problem)], Some("D5")))
}

/// SBB opens an investigation of a company after signals or a complaint (D5).
#[utoipa::path(post, path = "/v1/investigations", operation_id = "openInvestigation", tag = "sbb",
    request_body = OpenInvestigationRequest, params(CommandHeaders),
    responses((status = 201, description = "Opened", body = InvestigationAccepted), CommandProblems),
    security(("bearer" = ["sbb"])))]
pub async fn open_investigation(
    SbbCommand(command): SbbCommand,
    AppJson(body): AppJson<OpenInvestigationRequest>,
) -> Result<Response, ApiError> {
    let mut fields = Fields::default();
    let company_id = fields.parse("company_id", CompanyId::parse(&body.company_id));
    let company_id = fields.finish(company_id)?;
    let (company, _) = command.state.bus.load::<Company>(company_id.as_str()).await?;
    if company.record().is_none() {
        return Err(ApiError::Validation(
            vec![FieldError::new("company_id", "no such company")],
            None,
        ));
    }
    // The evidence as its own events record it (the read model may lag).
    let mut evidence_companies = Vec::new();
    let mut missing = Vec::new();
    for (index, id) in body.signal_ids.iter().enumerate() {
        let (signal, _) = command.state.bus.load::<Signal>(&id.to_string()).await?;
        match signal.received() {
            Some(s) => evidence_companies.push(s.company_id.clone()),
            None => missing.push(FieldError::new(format!("signal_ids[{index}]"), "no such signal")),
        }
    }
    if let Some(id) = body.complaint_id {
        let (complaint, _) = command.state.bus.load::<Complaint>(&id.to_string()).await?;
        match complaint.received() {
            Some(c) => evidence_companies.push(c.company_id.clone()),
            None => missing.push(FieldError::new("complaint_id", "no such complaint")),
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::Validation(missing, None));
    }
    let mut signal_ids = body.signal_ids;
    signal_ids.sort_unstable();
    signal_ids.dedup();
    let opened = InvestigationOpened {
        company_id,
        signal_ids,
        complaint_id: body.complaint_id,
        opened_on: today(),
    };
    let id = Uuid::new_v4();
    let committed = command
        .run::<Investigation>(
            &id.to_string(),
            InvestigationCommand::Open { opened, evidence_companies },
        )
        .await?;
    Ok(answer(id, committed, StatusCode::CREATED))
}

/// SBB records that it heard one side (D5).
#[utoipa::path(post, path = "/v1/investigations/{investigation_id}/hearings", operation_id = "recordHearing", tag = "sbb",
    request_body = HearingRequest,
    params(("investigation_id" = String, Path, description = "The investigation"), CommandHeaders),
    responses((status = 202, description = "Recorded", body = InvestigationAccepted), CommandProblems),
    security(("bearer" = ["sbb"])))]
pub async fn record_hearing(
    SbbCommand(command): SbbCommand,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<HearingRequest>,
) -> Result<Response, ApiError> {
    let id = investigation_id(&raw_id)?;
    let hearing = HearingRecorded { party: body.party, held_on: body.held_on };
    let committed = command
        .run_guarded::<Investigation>(
            &id.to_string(),
            InvestigationCommand::RecordHearing { hearing, today: today() },
            |i| exists(i, id),
        )
        .await?;
    Ok(answer(id, committed, StatusCode::ACCEPTED))
}

fn exists(investigation: &Investigation, id: Uuid) -> Result<(), stagepact_store::Denial> {
    match investigation.record() {
        Some(_) => Ok(()),
        None => Err(stagepact_store::Denial::NotFound(format!("no investigation {id}"))),
    }
}

/// SBB concludes an investigation once both sides are heard (D5). A
/// conclusion of revoked or reinstated leads to the matching recognition event
/// on the company (reinstated only lifts a suspension made for this
/// investigation), so the placement reactions for its other interns follow.
#[utoipa::path(post, path = "/v1/investigations/{investigation_id}/conclusion", operation_id = "concludeInvestigation", tag = "sbb",
    request_body = ConcludeRequest,
    params(("investigation_id" = String, Path, description = "The investigation"), CommandHeaders),
    responses((status = 202, description = "Concluded", body = InvestigationAccepted), CommandProblems),
    security(("bearer" = ["sbb"])))]
pub async fn conclude_investigation(
    SbbCommand(command): SbbCommand,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<ConcludeRequest>,
) -> Result<Response, ApiError> {
    let id = investigation_id(&raw_id)?;
    let (investigation, _) = command.state.bus.load::<Investigation>(&id.to_string()).await?;
    exists(&investigation, id)?;
    let suspended_by_it = match investigation.record() {
        Some(record) => {
            let company = record.opened.company_id.as_str();
            let (company, _) = command.state.bus.load::<Company>(company).await?;
            company
                .record()
                .and_then(|c| c.suspension.as_ref())
                .is_some_and(|s| s.investigation_id == Some(id))
        }
        None => false,
    };
    let conclusion = InvestigationCommand::Conclude {
        concluded: InvestigationConcluded { outcome: body.outcome, concluded_on: today() },
        suspended_by_it,
    };
    // The conclusion first (with If-Match); its recognition consequence
    // follows from it, now or, after a crash, in the next delivery round.
    let committed = command
        .run_guarded::<Investigation>(&id.to_string(), conclusion, |i| exists(i, id))
        .await?;
    if let Err(error) = delivery::apply_conclusion(&command.state, id).await {
        tracing::warn!(%error, "a conclusion's recognition change waits for the next delivery round");
    }
    Ok(answer(id, committed, StatusCode::ACCEPTED))
}

/// One investigation (SBB; the company investigated).
#[utoipa::path(get, path = "/v1/investigations/{investigation_id}", operation_id = "getInvestigation", tag = "sbb",
    params(("investigation_id" = String, Path, description = "The investigation"), ReadQuery),
    responses((status = 200, description = "The investigation", body = InvestigationView), ReadProblems),
    security(("bearer" = ["sbb", "company"])))]
pub async fn get_investigation(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    AppQuery(query): AppQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Sbb, Role::Company])?;
    let id = investigation_id(&raw_id)?;
    state.await_projection(cases::NAME, query.min_position).await?;
    let entry = cases::get::<Investigation>(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no investigation {id}")))?;
    let record = entry.record;
    if principal.role == Role::Company && !principal.is_company(record.opened.company_id.as_str()) {
        return Err(ApiError::Forbidden("a company reads only investigations of itself".into()));
    }
    // The company is heard, but learns nothing of the evidence's makeup: how
    // many signals, or that a complaint, could point to the students behind it.
    let sbb = principal.role == Role::Sbb;
    let view = InvestigationView {
        investigation_id: id,
        version: entry.version,
        company_id: record.opened.company_id.to_string(),
        signal_ids: if sbb { record.opened.signal_ids } else { Vec::new() },
        complaint_id: record.opened.complaint_id.filter(|_| sbb),
        opened_on: record.opened.opened_on,
        hearings: record
            .hearings
            .iter()
            .map(|h| HearingView { party: h.party, held_on: h.held_on })
            .collect(),
        status: if record.concluded.is_some() { "concluded" } else { "open" },
        outcome: record.concluded.as_ref().map(|c| c.outcome),
        concluded_on: record.concluded.as_ref().map(|c| c.concluded_on),
    };
    Ok(tagged(entry.version, view))
}
