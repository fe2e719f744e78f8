//! The reporting point (meldpunt): a student reports internship discrimination,
//! misuse, an unsafe environment or a placement fee; the school follows it up
//! (rules D1-D6, C4). And the erasure of a student's sensitive data.
//!
//! Who may act: the reporting student and their school, each only on their own
//! reports; never the company, never SBB (SBB gets an anonymised signal or a
//! complaint, see `sbb.rs`). The description and grounds are sealed under the
//! student's key in the log and the read model; they are opened here, for the
//! two readers allowed, and read as `{"erased": true}` once erased.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use stagepact_domain::company::Company;
use stagepact_domain::placement::{Placement, PlacementRecord, PlacementStatus};
use stagepact_domain::protected::{Protected, Sealed};
use stagepact_domain::report::*;
use stagepact_domain::student::student_key;
use stagepact_domain::values::{CompanyId, Description, SchoolId, StudentNumber};
use stagepact_store::Denial;
use stagepact_store::cases::{self, CaseEntry, ReportFilter};
use stagepact_store::vault::Opener;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::companies::ReadQuery;
use super::{
    CommandContext, CommandHeaders, CommandProblems, Erased, IdempotencyHeader, ProtectedText,
    ReadProblems, accepted, page, page_limit, tagged, today,
};
use crate::auth::{Principal, Role};
use crate::delivery;
use crate::extract::{AppJson, AppQuery, Fields};
use crate::problem::{ApiError, FieldError};
use crate::server::AppState;

// ---------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------

/// Body of `fileReport`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileReportRequest {
    /// What is reported.
    #[schema(value_type = String, pattern = "^(discrimination|misuse|unsafe_environment|placement_fee_requested)$")]
    pub kind: ReportKind,
    /// The grounds (required for discrimination, D2).
    #[serde(default)]
    #[schema(value_type = Vec<String>, max_items = 12)]
    pub grounds: Vec<Ground>,
    /// The company (SBB's id).
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub company_id: String,
    /// The student's placement at that company, if the report concerns one.
    #[serde(default)]
    pub placement_id: Option<Uuid>,
    /// What happened, in the student's words. Stored encrypted.
    #[schema(min_length = 1, max_length = 10000)]
    pub description: String,
    /// Whether the student wants a replacement placement.
    pub wants_replacement_placement: bool,
    /// Whether the school may forward an anonymised signal to SBB.
    pub consent_to_forward: bool,
}

/// Body of `recordReportConversation`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationRequest {
    /// `triangle` (student, company, school) or `school_and_company`.
    #[schema(value_type = String, pattern = "^(triangle|school_and_company)$")]
    pub form: ConversationForm,
    /// The day it was held.
    pub held_on: NaiveDate,
    /// The school's check that the conversation is safe for the student
    /// (required `true` for a triangle, D3).
    pub safe_for_student: bool,
}

/// Body of `offerReplacementPlacement`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplacementRequest {
    /// The new placement, proposed with `proposeMatch` or
    /// `proposeSelfFoundPlacement` naming the reported placement in `replaces`.
    pub placement_id: Uuid,
}

/// Body of `setForwardingConsent`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// The consent.
    pub consent: bool,
}

/// Body of `escalateToSbb`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalateRequest {
    /// The school's summary for SBB's complaint desk: no name or number of the student.
    #[schema(min_length = 1, max_length = 10000)]
    pub summary: String,
}

/// Body of `closeReport`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// How it ended.
    #[schema(value_type = String, pattern = "^(resolved|replaced|handed_to_sbb|no_further_action|unfounded)$")]
    pub outcome: ReportOutcome,
}

/// Body of `eraseStudentData`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// The school's number for the student.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub student_id: String,
}

// ---------------------------------------------------------------------------
// Answers and views
// ---------------------------------------------------------------------------

/// Where else a student can report (D6).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OutsideChannel {
    /// Which.
    pub name: &'static str,
    /// What it does for the student.
    pub description: &'static str,
}

/// D6: the channels outside the school, from the pact ([001] and its note 11).
pub const OUTSIDE_CHANNELS: [OutsideChannel; 4] = [
    OutsideChannel {
        name: "Regional anti-discrimination service (antidiscriminatievoorziening)",
        description: "Takes reports of discrimination in your municipality and can support you, also in reporting to the organisations below.",
    },
    OutsideChannel {
        name: "Confidential inspector of the Education Inspectorate (vertrouwensinspecteur, Inspectie van het Onderwijs)",
        description: "Gives advice in confidence when you do not feel safe enough to report at school.",
    },
    OutsideChannel {
        name: "Netherlands Institute for Human Rights (College voor de Rechten van de Mens)",
        description: "Judges whether you were treated unequally, free of charge.",
    },
    OutsideChannel {
        name: "Police (politie)",
        description: "Discrimination can be a criminal offence: you can report it to the police.",
    },
];

/// D1: what every reporting student is told.
pub const REPLACEMENT_RIGHT: &str = "You have the right to a replacement placement without study delay. Your school arranges it with you.";

/// What `fileReport` recorded, and what the student should know now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportFiledAnswer {
    /// The report.
    pub report_id: Uuid,
    /// Its version now (send as `If-Match`).
    pub version: i64,
    /// The log position of the filing.
    pub position: Option<i64>,
    /// D1: the right to a replacement placement.
    pub replacement_placement_right: &'static str,
    /// D6: where else to report.
    pub outside_channels: Vec<OutsideChannel>,
}

/// What a report command recorded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportAccepted {
    /// The report.
    pub report_id: Uuid,
    /// Its version now (send as `If-Match`).
    pub version: i64,
    /// The log position of the last event recorded (absent if nothing was).
    pub position: Option<i64>,
    /// `forwardSignal`: the signal SBB received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal_id: Option<Uuid>,
    /// `escalateToSbb`: the complaint SBB received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complaint_id: Option<Uuid>,
}

/// The grounds: the list, or `{"erased": true}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ProtectedGrounds {
    /// The grounds.
    Readable(Vec<String>),
    /// Erased with the student's data.
    Erased(Erased),
}

/// A conversation held (D3).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationView {
    /// `triangle` or `school_and_company`.
    #[schema(value_type = String)]
    pub form: ConversationForm,
    /// When.
    pub held_on: NaiveDate,
    /// The safety check.
    pub safe_for_student: bool,
}

/// The closure.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClosedView {
    /// How it ended.
    #[schema(value_type = String)]
    pub outcome: ReportOutcome,
    /// When.
    pub closed_on: NaiveDate,
}

/// A report as its student and their school read it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportView {
    /// The report.
    pub report_id: Uuid,
    /// Its version (send as `If-Match`).
    pub version: i64,
    /// The school.
    pub school: String,
    /// The school's number for the student.
    pub student_id: String,
    /// The company reported.
    pub company_id: String,
    /// The placement it concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement_id: Option<Uuid>,
    /// What is reported.
    #[schema(value_type = String)]
    pub kind: ReportKind,
    /// The student's account, or `{"erased": true}`.
    pub description: ProtectedText,
    /// The grounds, or `{"erased": true}`.
    pub grounds: ProtectedGrounds,
    /// Whether the student wants a replacement placement.
    pub wants_replacement_placement: bool,
    /// The current consent to forward a signal.
    pub consent_to_forward: bool,
    /// When it was filed.
    pub filed_on: NaiveDate,
    /// When the school acknowledged it.
    pub acknowledged_on: Option<NaiveDate>,
    /// The last day to acknowledge it (the configured working days after filing).
    pub acknowledge_by: NaiveDate,
    /// Open and not acknowledged in time (D4).
    pub overdue: bool,
    /// `open` or `closed`.
    pub status: &'static str,
    /// Conversations held (D3).
    pub conversations: Vec<ConversationView>,
    /// Replacement placements offered (D1).
    pub replacement_placements: Vec<Uuid>,
    /// Whether an anonymised signal went to SBB (D4).
    pub signal_forwarded: bool,
    /// Whether the school escalated to SBB's complaint desk (D5).
    pub escalated: bool,
    /// The closure.
    pub closed: Option<ClosedView>,
    /// D1: the right to a replacement placement.
    pub replacement_placement_right: &'static str,
    /// D6: where else to report.
    pub outside_channels: Vec<OutsideChannel>,
}

/// A page of reports.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportPage {
    /// The reports.
    pub items: Vec<ReportView>,
    /// The cursor of the next page.
    pub next: Option<Uuid>,
}

/// Filters and cursor of `listReports`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Only open (`true`) or closed (`false`) reports.
    pub open: Option<bool>,
    /// Only reports not acknowledged within the configured working days (the worklist, D4).
    pub overdue: Option<bool>,
    /// One student's reports (schools).
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub student_id: Option<String>,
    /// The last report of the previous page.
    pub after: Option<Uuid>,
    /// Page size, 1-500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Wait (bounded) until reports reflect the log up to this position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

/// What `eraseStudentData` did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErasureAnswer {
    /// The student.
    pub student_id: String,
    /// Whether a key was deleted now (false: nothing sealed, or erased before).
    pub key_deleted: bool,
}

// ---------------------------------------------------------------------------
// Who may act
// ---------------------------------------------------------------------------

/// Whether `principal` is the report's student or their school.
fn is_party(principal: &Principal, record: &ReportRecord) -> bool {
    let school = record.filed.school.as_str();
    principal.is_school(school) || principal.is_student(school, record.filed.student_id.as_str())
}

fn party_check(
    principal: &Principal,
    report: &Report,
    id: Uuid,
    roles: &[Role],
) -> Result<(), Denial> {
    match report.record() {
        None => Err(Denial::NotFound(format!("no report {id}"))),
        Some(record) if !is_party(principal, record) || !roles.contains(&principal.role) => {
            Err(Denial::Forbidden("only the report's student and their school act on it".into()))
        }
        Some(_) => Ok(()),
    }
}

fn report_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("no report {raw:?}")))
}

fn school_of(principal: &Principal) -> Result<SchoolId, ApiError> {
    SchoolId::parse(principal.org()?)
        .map_err(|e| ApiError::Forbidden(format!("the token's org is not a school code: {e}")))
}

impl CommandContext {
    /// Runs `command` on report `id` if the caller is one of `roles` and its
    /// student or school.
    async fn on_report(
        &self,
        id: Uuid,
        roles: &[Role],
        command: ReportCommand,
    ) -> Result<stagepact_store::Committed, ApiError> {
        self.principal.require(roles)?;
        let principal = self.principal.clone();
        let roles = roles.to_vec();
        self.run_guarded::<Report>(&id.to_string(), command, move |r| {
            party_check(&principal, r, id, &roles)
        })
        .await
    }

    /// The report as its events make it now, if the caller is one of `roles`
    /// and its student or school.
    async fn report(&self, id: Uuid, roles: &[Role]) -> Result<(ReportRecord, i64), ApiError> {
        self.principal.require(roles)?;
        let (report, version) = self.state.bus.load::<Report>(&id.to_string()).await?;
        party_check(&self.principal, &report, id, roles)?;
        let record = report.record().cloned();
        record.map(|r| (r, version)).ok_or_else(|| ApiError::NotFound(format!("no report {id}")))
    }
}

fn answer(
    id: Uuid,
    committed: stagepact_store::Committed,
    signal_id: Option<Uuid>,
    complaint_id: Option<Uuid>,
) -> Response {
    let body = ReportAccepted {
        report_id: id,
        version: committed.version,
        position: committed.position,
        signal_id,
        complaint_id,
    };
    accepted(StatusCode::ACCEPTED, body, committed, None)
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

/// A student files a report (D1): about a company, with or without a placement
/// there. The answer lists where else to report (D6) and confirms the right to
/// a replacement placement (D1).
#[utoipa::path(post, path = "/v1/reports", operation_id = "fileReport", tag = "reports",
    request_body = FileReportRequest, params(CommandHeaders),
    responses((status = 201, description = "Filed", body = ReportFiledAnswer), CommandProblems),
    security(("bearer" = ["student"])))]
pub async fn file_report(
    command: CommandContext,
    AppJson(body): AppJson<FileReportRequest>,
) -> Result<Response, ApiError> {
    command.principal.require(&[Role::Student])?;
    let school = school_of(&command.principal)?;
    let student = command.principal.student.as_deref().unwrap_or_default();
    let mut fields = Fields::default();
    let student_id = fields.parse("student", StudentNumber::parse(student));
    let company_id = fields.parse("company_id", CompanyId::parse(&body.company_id));
    let description = fields.parse("description", Description::parse(&body.description));
    let (student_id, company_id, description) =
        fields.finish((|| Some((student_id?, company_id?, description?)))())?;
    let (company, _) = command.state.bus.load::<Company>(company_id.as_str()).await?;
    if company.record().is_none() {
        return Err(ApiError::Validation(
            vec![FieldError::new("company_id", "no such company")],
            None,
        ));
    }
    let placement_company = match body.placement_id {
        None => None,
        Some(placement_id) => {
            let (placement, _) =
                command.state.bus.load::<Placement>(&placement_id.to_string()).await?;
            let record = placement.record().ok_or_else(|| {
                ApiError::Validation(
                    vec![FieldError::new("placement_id", "no such placement")],
                    None,
                )
            })?;
            if record.student.school != school || record.student.student_id != student_id {
                return Err(ApiError::Forbidden(
                    "placement_id names another student's placement".into(),
                ));
            }
            Some(record.company_id.clone())
        }
    };
    let subject = student_key(&school, &student_id);
    let id = Uuid::new_v4();
    let filing = Filing {
        school,
        student_id,
        company_id,
        placement_id: body.placement_id,
        kind: body.kind,
        description,
        grounds: body.grounds,
        wants_replacement_placement: body.wants_replacement_placement,
        consent_to_forward: body.consent_to_forward,
        filed_on: today(),
    };
    // The rules first: a refused filing does not even create the student's key.
    filing.check(placement_company.as_ref())?;
    let cipher = command.state.vault.cipher_for(&subject).await?;
    let committed = command
        .run::<Report>(&id.to_string(), ReportCommand::File { filing, cipher, placement_company })
        .await?;
    let body = ReportFiledAnswer {
        report_id: id,
        version: committed.version,
        position: committed.position,
        replacement_placement_right: REPLACEMENT_RIGHT,
        outside_channels: OUTSIDE_CHANNELS.to_vec(),
    };
    Ok(accepted(StatusCode::CREATED, body, committed, Some(format!("/v1/reports/{id}"))))
}

/// The school acknowledges a report (D4); a repeat records nothing.
#[utoipa::path(post, path = "/v1/reports/{report_id}/acknowledge", operation_id = "acknowledgeReport", tag = "reports",
    params(("report_id" = String, Path, description = "The report"), CommandHeaders),
    responses((status = 202, description = "Acknowledged", body = ReportAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn acknowledge_report(
    command: CommandContext,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = report_id(&raw_id)?;
    let committed =
        command.on_report(id, &[Role::School], ReportCommand::Acknowledge { on: today() }).await?;
    Ok(answer(id, committed, None, None))
}

/// The school records a conversation about the report (D3): a triangle
/// conversation only with a recorded check that it is safe for the student.
#[utoipa::path(post, path = "/v1/reports/{report_id}/conversations", operation_id = "recordReportConversation", tag = "reports",
    request_body = ConversationRequest,
    params(("report_id" = String, Path, description = "The report"), CommandHeaders),
    responses((status = 202, description = "Recorded", body = ReportAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn record_conversation(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<ConversationRequest>,
) -> Result<Response, ApiError> {
    let id = report_id(&raw_id)?;
    let conversation = ReportConversationRecorded {
        form: body.form,
        held_on: body.held_on,
        safe_for_student: body.safe_for_student,
    };
    let committed = command
        .on_report(
            id,
            &[Role::School],
            ReportCommand::RecordConversation { conversation, today: today() },
        )
        .await?;
    Ok(answer(id, committed, None, None))
}

/// The school links the replacement placement it offers the student (D1): a
/// placement of the same student at another company, which names the reported
/// placement (if any) in `replaces`, and whose agreement (once drafted) ends by
/// the reported one's end, so the student has no study delay.
#[utoipa::path(post, path = "/v1/reports/{report_id}/replacement", operation_id = "offerReplacementPlacement", tag = "reports",
    request_body = ReplacementRequest,
    params(("report_id" = String, Path, description = "The report"), CommandHeaders),
    responses((status = 202, description = "Linked", body = ReportAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn offer_replacement(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<ReplacementRequest>,
) -> Result<Response, ApiError> {
    let id = report_id(&raw_id)?;
    command.principal.require(&[Role::School])?;
    let (placement, _) =
        command.state.bus.load::<Placement>(&body.placement_id.to_string()).await?;
    let record = placement.record().ok_or_else(|| {
        ApiError::Validation(vec![FieldError::new("placement_id", "no such placement")], None)
    })?;
    if !command.principal.is_school(record.student.school.as_str()) {
        return Err(ApiError::Forbidden("placement_id names another school's placement".into()));
    }
    let agreement_end =
        |r: &PlacementRecord| r.agreement.as_ref().map(|a| a.drafted.terms.period.end);
    let reported_ends_on = match record.replaces {
        Some(reported) => {
            let (placement, _) = command.state.bus.load::<Placement>(&reported.to_string()).await?;
            placement.record().and_then(agreement_end)
        }
        None => None,
    };
    let facts = ReplacementFacts {
        placement_id: body.placement_id,
        school: record.student.school.clone(),
        student_id: record.student.student_id.clone(),
        company_id: record.company_id.clone(),
        replaces: record.replaces,
        under_way: record.status.is_pending() || record.status == PlacementStatus::Active,
        ends_on: agreement_end(record),
        reported_ends_on,
    };
    let committed =
        command.on_report(id, &[Role::School], ReportCommand::OfferReplacement(facts)).await?;
    Ok(answer(id, committed, None, None))
}

/// The student gives or withdraws consent to forward an anonymised signal (D4).
#[utoipa::path(post, path = "/v1/reports/{report_id}/consent", operation_id = "setForwardingConsent", tag = "reports",
    request_body = ConsentRequest,
    params(("report_id" = String, Path, description = "The report"), CommandHeaders),
    responses((status = 202, description = "Recorded (nothing when unchanged)", body = ReportAccepted), CommandProblems),
    security(("bearer" = ["student"])))]
pub async fn set_forwarding_consent(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<ConsentRequest>,
) -> Result<Response, ApiError> {
    let id = report_id(&raw_id)?;
    let committed = command
        .on_report(id, &[Role::Student], ReportCommand::SetForwardingConsent(body.consent))
        .await?;
    Ok(answer(id, committed, None, None))
}

/// The school forwards an anonymised signal to SBB (D4), only with the
/// student's consent: the company, the kind, the grounds and the quarter —
/// nothing that leads back to the student. SBB receives it with the next
/// release of signals (see `delivery`), in a batch, so its time and place in
/// the log do not point back to this report; if the student withdraws consent
/// before then, it is not sent.
#[utoipa::path(post, path = "/v1/reports/{report_id}/signal", operation_id = "forwardSignal", tag = "reports",
    params(("report_id" = String, Path, description = "The report"), CommandHeaders),
    responses((status = 202, description = "Forwarded: released to SBB with the next batch", body = ReportAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn forward_signal(
    command: CommandContext,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = report_id(&raw_id)?;
    let (record, _) = command.report(id, &[Role::School]).await?;
    let opener = command.state.vault.opener([record.filed.grounds.sealed]).await?;
    let grounds: Protected<Vec<Ground>> = opener.open(&record.filed.grounds);
    let signal_id = Uuid::new_v4();
    let forward = ReportCommand::ForwardSignal { signal_id, grounds };
    let committed = command.on_report(id, &[Role::School], forward).await?;
    Ok(answer(id, committed, Some(signal_id), None))
}

/// The school escalates the report to SBB's complaint desk (D5) with a
/// summary for SBB; SBB gets a complaint that names the school, never the
/// student. The summary is sealed under the student's key, like the report.
#[utoipa::path(post, path = "/v1/reports/{report_id}/escalation", operation_id = "escalateToSbb", tag = "reports",
    request_body = EscalateRequest,
    params(("report_id" = String, Path, description = "The report"), CommandHeaders),
    responses((status = 202, description = "Escalated", body = ReportAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn escalate_to_sbb(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<EscalateRequest>,
) -> Result<Response, ApiError> {
    let id = report_id(&raw_id)?;
    let mut fields = Fields::default();
    let summary = fields.parse("summary", Description::parse(&body.summary));
    let summary = fields.finish(summary)?;
    let (record, _) = command.report(id, &[Role::School]).await?;
    if record.escalation.is_some() {
        return Err(ReportError::AlreadyEscalated.into());
    }
    let cipher = command.state.vault.cipher_for(&record.subject()).await?;
    let complaint_id = Uuid::new_v4();
    let escalate = ReportCommand::Escalate { complaint_id, summary, cipher };
    let committed = command.on_report(id, &[Role::School], escalate).await?;
    // SBB's desk gets it now; should that fail, the delivery round does it.
    if let Err(error) = delivery::deliver_complaint(&command.state, id).await {
        tracing::warn!(%error, "a complaint waits for the next delivery round");
    }
    Ok(answer(id, committed, None, Some(complaint_id)))
}

/// The school closes a report (D4): only after a follow-up step.
#[utoipa::path(post, path = "/v1/reports/{report_id}/close", operation_id = "closeReport", tag = "reports",
    request_body = CloseRequest,
    params(("report_id" = String, Path, description = "The report"), CommandHeaders),
    responses((status = 202, description = "Closed", body = ReportAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn close_report(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<CloseRequest>,
) -> Result<Response, ApiError> {
    let id = report_id(&raw_id)?;
    let committed = command
        .on_report(id, &[Role::School], ReportCommand::Close { outcome: body.outcome, on: today() })
        .await?;
    Ok(answer(id, committed, None, None))
}

/// The school erases a student's sensitive data (crypto-shredding, DESIGN §6):
/// the student's key is deleted, so every report description and ground sealed
/// under it reads as erased everywhere — in every view, in the feed, after a
/// rebuild — while the events stay and still replay. Idempotent.
#[utoipa::path(post, path = "/v1/erasures", operation_id = "eraseStudentData", tag = "reports",
    request_body = EraseRequest, params(IdempotencyHeader),
    responses((status = 202, description = "Erased", body = ErasureAnswer), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn erase_student_data(
    State(state): State<AppState>,
    principal: Principal,
    AppJson(body): AppJson<EraseRequest>,
) -> Result<(StatusCode, Json<ErasureAnswer>), ApiError> {
    principal.require(&[Role::School])?;
    let school = school_of(&principal)?;
    let mut fields = Fields::default();
    let student_id = fields.parse("student_id", StudentNumber::parse(&body.student_id));
    let student_id = fields.finish(student_id)?;
    // The key is the school's student: another school's student of the same
    // number is another subject, out of this caller's reach by construction.
    let key_deleted = state.vault.erase(&student_key(&school, &student_id)).await?;
    tracing::info!(school = %school, key_deleted, "erased a student's sensitive data");
    Ok((
        StatusCode::ACCEPTED,
        Json(ErasureAnswer { student_id: student_id.to_string(), key_deleted }),
    ))
}

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

fn view(
    entry: CaseEntry<ReportRecord>,
    opener: &Opener,
    working_days: u32,
    today: NaiveDate,
) -> ReportView {
    let record = entry.record;
    let filed = &record.filed;
    let description = ProtectedText::of(opener.open::<String>(&filed.description));
    let grounds = match opener.open::<Vec<Ground>>(&filed.grounds) {
        Protected::Readable(grounds) => {
            ProtectedGrounds::Readable(grounds.iter().map(|g| g.as_str().to_owned()).collect())
        }
        Protected::Erased(_) => ProtectedGrounds::Erased(Erased { erased: true }),
    };
    ReportView {
        report_id: entry.id,
        version: entry.version,
        school: filed.school.to_string(),
        student_id: filed.student_id.to_string(),
        company_id: filed.company_id.to_string(),
        placement_id: filed.placement_id,
        kind: filed.kind,
        description,
        grounds,
        wants_replacement_placement: filed.wants_replacement_placement,
        consent_to_forward: record.consent_to_forward,
        filed_on: filed.filed_on,
        acknowledged_on: record.acknowledged_on,
        acknowledge_by: record.acknowledge_by(working_days),
        overdue: record.overdue(working_days, today),
        status: if record.closed.is_some() { "closed" } else { "open" },
        conversations: record
            .conversations
            .iter()
            .map(|c| ConversationView {
                form: c.form,
                held_on: c.held_on,
                safe_for_student: c.safe_for_student,
            })
            .collect(),
        replacement_placements: record.replacement_placements.clone(),
        signal_forwarded: record.signal_id.is_some(),
        escalated: record.escalation.is_some(),
        closed: record
            .closed
            .as_ref()
            .map(|c| ClosedView { outcome: c.outcome, closed_on: c.closed_on }),
        replacement_placement_right: REPLACEMENT_RIGHT,
        outside_channels: OUTSIDE_CHANNELS.to_vec(),
    }
}

/// The sealed values of reports, for one opener.
fn sealed_of(records: &[&ReportRecord]) -> Vec<Uuid> {
    records.iter().flat_map(|r| r.filed.sealed()).map(|s: &Sealed| s.sealed).collect()
}

/// One report (its student and their school).
#[utoipa::path(get, path = "/v1/reports/{report_id}", operation_id = "getReport", tag = "reports",
    params(("report_id" = String, Path, description = "The report"), ReadQuery),
    responses((status = 200, description = "The report", body = ReportView), ReadProblems),
    security(("bearer" = ["school", "student"])))]
pub async fn get_report(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    AppQuery(query): AppQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    principal.require(&[Role::School, Role::Student])?;
    let id = report_id(&raw_id)?;
    state.await_projection(cases::NAME, query.min_position).await?;
    let entry = cases::get::<Report>(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no report {id}")))?;
    if !is_party(&principal, &entry.record) {
        return Err(ApiError::Forbidden(
            "only the report's student and their school read it".into(),
        ));
    }
    let opener = state.vault.opener(sealed_of(&[&entry.record])).await?;
    let version = entry.version;
    let view = view(entry, &opener, state.config.report_ack_working_days, today());
    Ok(tagged(version, view))
}

/// Reports in pages: a school its own (its worklist with `open` and
/// `overdue`), a student their own.
#[utoipa::path(get, path = "/v1/reports", operation_id = "listReports", tag = "reports",
    params(ReportQuery),
    responses((status = 200, description = "A page of reports", body = ReportPage), ReadProblems),
    security(("bearer" = ["school", "student"])))]
pub async fn list_reports(
    State(state): State<AppState>,
    principal: Principal,
    AppQuery(query): AppQuery<ReportQuery>,
) -> Result<Json<ReportPage>, ApiError> {
    principal.require(&[Role::School, Role::Student])?;
    let limit = page_limit(query.limit)?;
    state.await_projection(cases::NAME, query.min_position).await?;
    let today = today();
    let working_days = state.config.report_ack_working_days;
    let mut filter = ReportFilter {
        school: Some(principal.org()?.to_owned()),
        student_id: super::student_filter(query.student_id.as_deref())?,
        open: query.open,
        overdue_if_filed_by: None,
    };
    if principal.role == Role::Student {
        filter.student_id = principal.student.clone();
    }
    match query.overdue {
        Some(true) => filter.overdue_if_filed_by = Some(overdue_if_filed_by(today, working_days)),
        Some(false) => {
            return Err(ApiError::Validation(
                vec![FieldError::new("overdue", "only overdue=true filters; leave it out for all")],
                None,
            ));
        }
        None => {}
    }
    let rows = cases::reports(&state.pool, &filter, query.after, limit + 1).await?;
    let (entries, next) = page(rows, limit, |e| e.id);
    let opener = state
        .vault
        .opener(sealed_of(&entries.iter().map(|e| &e.record).collect::<Vec<_>>()))
        .await?;
    Ok(Json(ReportPage {
        items: entries.into_iter().map(|e| view(e, &opener, working_days, today)).collect(),
        next,
    }))
}
