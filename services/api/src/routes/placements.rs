//! The placement lifecycle: a proposed match (or a self-found placement), the
//! student's answer, the practice agreement and its signatures, the start,
//! contact moments, and the end (rules G1-G4, S1, M1-M3, C1, C3).
//!
//! Who may act: the placement's school, its company and its student, each only
//! on placements they are party to; every command checks that on the state it
//! decides on (`run_guarded`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use stagepact_domain::company::Company;
use stagepact_domain::offer::{Offer, OfferCommand};
use stagepact_domain::placement::*;
use stagepact_domain::student::{Student, student_key};
use stagepact_domain::values::{
    Cents, CompanyId, ContactRef, Crebo, LearningGoal, Note, Period, Reason, SchoolId,
    StudentNumber, parse_list,
};
use stagepact_store::placements::{self, PlacementEntry, PlacementFilter};
use stagepact_store::{Denial, Loaded};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::companies::ReadQuery;
use super::offers::{AllowanceBody, PeriodBody};
use super::{
    CommandContext, CommandHeaders, CommandProblems, ReadProblems, accepted, page, page_limit,
    today,
};
use crate::auth::{Principal, Role};
use crate::extract::{AppJson, AppQuery, Fields};
use crate::problem::{ApiError, FieldError};
use crate::server::AppState;

// ---------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------

/// Body of `proposeMatch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeMatchRequest {
    /// The school's number for the student.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub student_id: String,
    /// The offer.
    pub offer_id: Uuid,
    /// Why this match (the criteria that matched).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 2000)]
    pub explanation: Option<String>,
    /// The placement this one replaces (an alternative after a revocation).
    #[serde(default)]
    pub replaces: Option<Uuid>,
}

/// Body of `proposeSelfFoundPlacement`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeSelfFoundRequest {
    /// The company (SBB's id).
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub company_id: String,
    /// Qualification (crebo): the student's.
    #[schema(pattern = "^[0-9]{5}$")]
    pub qualification: String,
    /// A note.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 2000)]
    pub note: Option<String>,
    /// The student: required when a school proposes, absent for a student.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub student_id: Option<String>,
    /// The placement this one replaces.
    #[serde(default)]
    pub replaces: Option<Uuid>,
}

/// Body of `objectToMatch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectRequest {
    /// Why (at least one; M3).
    #[schema(min_items = 1, max_items = 10)]
    pub reasons: Vec<String>,
}

/// A body with a reason (`withdrawMatch`, `interruptPlacement`, `waiveContactMomentRequirement`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Why.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

/// One cost the student makes (C1).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CostBody {
    /// `travel`, `vog`, `work_clothes`, `materials`, `tools`, `phone`, `housing` or `other`.
    #[schema(value_type = String, pattern = "^(travel|vog|work_clothes|materials|tools|phone|housing|other)$")]
    pub kind: CostKind,
    /// Euros.
    #[schema(minimum = 0, maximum = 1000000)]
    pub amount_eur: f64,
}

/// Compensation terms (C1-C3).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompensationBody {
    /// The costs the student makes (up to 20).
    #[schema(max_items = 20)]
    pub costs: Vec<CostBody>,
    /// The expense allowance: at least the sum of the costs (C1).
    #[schema(minimum = 0, maximum = 1000000)]
    pub expense_allowance_eur: f64,
    /// The internship allowance (C2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internship_allowance: Option<AllowanceBody>,
    /// BBL: the hourly wage, at least the statutory minimum for the student's age (C3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1000)]
    pub hourly_wage_eur: Option<f64>,
}

/// A planned contact moment.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlannedContactBody {
    /// `start`, `midway`, `end` or `extra`.
    #[schema(value_type = String, pattern = "^(start|midway|end|extra)$")]
    pub kind: ContactKind,
    /// When.
    pub planned_on: NaiveDate,
}

/// Body of `draftAgreement`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftAgreementRequest {
    /// First day.
    pub start_date: NaiveDate,
    /// Last day.
    pub end_date: NaiveDate,
    /// Hours per week (1-60).
    #[schema(minimum = 1, maximum = 60)]
    pub hours_per_week: i64,
    /// Learning goals (up to 20).
    #[schema(max_items = 20)]
    pub learning_goals: Vec<String>,
    /// The school's contact (BPV-begeleider): a staff code, not a name (G4).
    #[schema(min_length = 1, max_length = 100)]
    pub school_contact: String,
    /// The company trainer (praktijkopleider): a staff code, not a name (G4).
    #[schema(min_length = 1, max_length = 100)]
    pub company_trainer: String,
    /// Compensation (C1-C3).
    pub compensation: CompensationBody,
    /// When the contact moments are planned (G2).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub contact_plan: Option<Vec<PlannedContactBody>>,
}

/// Body of `signAgreement`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Whose signature: by default the caller's own. A school records a legal
    /// representative's (`legal_representative`); a company the employment
    /// contract of a BBL leerbaan (`employer`).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(student|school|company|legal_representative|employer)$")]
    pub party: Option<Signatory>,
}

/// Body of `recordContactMoment`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactMomentRequest {
    /// `start`, `midway`, `end` or `extra`.
    #[schema(value_type = String, pattern = "^(start|midway|end|extra)$")]
    pub kind: ContactKind,
    /// `on_site`, `video` or `phone`.
    #[schema(value_type = String, pattern = "^(on_site|video|phone)$")]
    pub mode: ContactMode,
    /// The day (not in the future).
    pub held_on: NaiveDate,
    /// Who took part: `student`, `school`, `company`.
    #[schema(value_type = Vec<String>, min_items = 1, max_items = 3)]
    pub participants: Vec<Participant>,
}

/// Body of `recordWarmHandover`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarmHandoverRequest {
    /// The day (not in the future).
    pub held_on: NaiveDate,
}

/// Body of `rateGuidance`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingRequest {
    /// The school's guidance, 1-5.
    #[schema(minimum = 1, maximum = 5)]
    pub school_score: i64,
    /// The company's guidance, 1-5.
    #[schema(minimum = 1, maximum = 5)]
    pub company_score: i64,
}

/// What a placement command recorded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlacementAccepted {
    /// The placement.
    pub placement_id: Uuid,
    /// Its version now (send as `If-Match`).
    pub version: i64,
    /// The log position of the last event recorded (absent if nothing was).
    pub position: Option<i64>,
    /// For `recordContactMoment`: the moment's id, for confirmations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moment_id: Option<Uuid>,
}

// ---------------------------------------------------------------------------
// Who may act
// ---------------------------------------------------------------------------

/// Whether `principal` is a party to the placement: its school, its company,
/// its student.
fn is_party(principal: &Principal, record: &PlacementRecord) -> bool {
    let school = record.student.school.as_str();
    match principal.role {
        Role::School => principal.is_school(school),
        Role::Company => principal.is_company(record.company_id.as_str()),
        Role::Student => principal.is_student(school, record.student.student_id.as_str()),
        Role::Sbb | Role::Monitor => false,
    }
}

fn party_check(principal: &Principal, placement: &Placement, id: Uuid) -> Result<(), Denial> {
    match placement.record() {
        None => Err(Denial::NotFound(format!("no placement {id}"))),
        Some(record) if !is_party(principal, record) => Err(Denial::Forbidden(
            "only the placement's school, company and student act on it".into(),
        )),
        Some(_) => Ok(()),
    }
}

/// S1: whether `company` may host `qualification` on `day`.
fn may_host(company: &Company, qualification: Crebo, day: NaiveDate) -> bool {
    company.record().is_some_and(|r| r.may_host(qualification, day))
}

/// The student's enrolment as the placement rules need it, and the date of
/// birth (G1, C3).
fn enrolment_facts(
    student: &Student,
    school: &SchoolId,
    student_id: &StudentNumber,
) -> Result<(StudentFacts, NaiveDate), ApiError> {
    let record = student
        .record()
        .ok_or_else(|| ApiError::NotFound(format!("no student {student_id} at your school")))?;
    let facts = StudentFacts {
        student: PlacementStudent {
            school: school.clone(),
            student_id: student_id.clone(),
            level: record.enrolment.level,
            pathway: record.enrolment.pathway,
        },
        qualification: record.enrolment.qualification,
    };
    Ok((facts, record.enrolment.date_of_birth))
}

fn placement_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("no placement {raw:?}")))
}

impl CommandContext {
    /// Runs `command` on placement `id` if the caller is one of `roles` and a party to it.
    async fn on_placement(
        &self,
        id: Uuid,
        roles: &[Role],
        command: PlacementCommand,
        status: StatusCode,
    ) -> Result<Response, ApiError> {
        self.on_placement_from(id, None, roles, command, status).await
    }

    /// `on_placement`, deciding first on the placement as the handler loaded it.
    async fn on_placement_from(
        &self,
        id: Uuid,
        loaded: Option<Loaded<Placement>>,
        roles: &[Role],
        command: PlacementCommand,
        status: StatusCode,
    ) -> Result<Response, ApiError> {
        self.principal.require(roles)?;
        let principal = self.principal.clone();
        let committed = self
            .run_guarded_from::<Placement>(&id.to_string(), loaded, command, move |p| {
                party_check(&principal, p, id)
            })
            .await?;
        let body = PlacementAccepted {
            placement_id: id,
            version: committed.version,
            position: committed.position,
            moment_id: None,
        };
        Ok(accepted(status, body, committed, None))
    }

    /// The placement as its events make it now, if the caller is a party to
    /// it: its record, and the loaded state to decide the command on.
    /// The parties and terms read here never change once proposed, so the
    /// state may be this process's last append (a placement's next command
    /// usually follows its last one); a refusal is given on a fresh load.
    async fn placement(&self, id: Uuid) -> Result<(PlacementRecord, Loaded<Placement>), ApiError> {
        let bus = &self.state.bus;
        let mut loaded = bus.load_recent_for_command::<Placement>(&id.to_string()).await?;
        if loaded.is_cached() && party_check(&self.principal, loaded.aggregate(), id).is_err() {
            loaded = bus.load_for_command::<Placement>(&id.to_string()).await?;
        }
        party_check(&self.principal, loaded.aggregate(), id)?;
        let record = loaded
            .aggregate()
            .record()
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("no placement {id}")))?;
        Ok((record, loaded))
    }

    /// S1: whether `company` may host `qualification` on `day`, from its own events.
    async fn company_may_host(
        &self,
        company: &CompanyId,
        qualification: Crebo,
        day: NaiveDate,
    ) -> Result<bool, ApiError> {
        let (company, _) = self.state.bus.load::<Company>(company.as_str()).await?;
        Ok(may_host(&company, qualification, day))
    }

    /// The student's enrolment as the placement rules need it.
    async fn student_facts(
        &self,
        school: &SchoolId,
        student_id: &StudentNumber,
    ) -> Result<(StudentFacts, NaiveDate), ApiError> {
        let (student, _) = self.state.bus.load::<Student>(&student_key(school, student_id)).await?;
        enrolment_facts(&student, school, student_id)
    }

    /// `student_facts` and `company_may_host` at once: one round trip.
    async fn student_facts_and_host(
        &self,
        (school, student_id): (&SchoolId, &StudentNumber),
        (company, qualification, day): (&CompanyId, Crebo, NaiveDate),
    ) -> Result<((StudentFacts, NaiveDate), bool), ApiError> {
        let ((student, _), (company, _)) = self
            .state
            .bus
            .load_both::<Student, Company>(&student_key(school, student_id), company.as_str())
            .await?;
        Ok((enrolment_facts(&student, school, student_id)?, may_host(&company, qualification, day)))
    }

    /// A replaced placement must be the same student's, at the caller's school.
    async fn check_replaces(
        &self,
        replaces: Option<Uuid>,
        student: &StudentFacts,
    ) -> Result<(), ApiError> {
        let Some(old) = replaces else { return Ok(()) };
        let (placement, _) = self.state.bus.load::<Placement>(&old.to_string()).await?;
        match placement.record() {
            Some(r)
                if r.student.school == student.student.school
                    && r.student.student_id == student.student.student_id =>
            {
                Ok(())
            }
            Some(_) => Err(ApiError::Validation(
                vec![FieldError::new("replaces", "must be a placement of the same student")],
                None,
            )),
            None => Err(ApiError::Validation(
                vec![FieldError::new("replaces", "no such placement")],
                None,
            )),
        }
    }
}

fn created(id: Uuid, committed: stagepact_store::Committed) -> Response {
    let body = PlacementAccepted {
        placement_id: id,
        version: committed.version,
        position: committed.position,
        moment_id: None,
    };
    accepted(StatusCode::CREATED, body, committed, Some(format!("/v1/placements/{id}")))
}

fn optional_text<T>(
    fields: &mut Fields,
    name: &str,
    raw: Option<&str>,
    parse: impl Fn(&str) -> Result<T, stagepact_domain::values::InvalidValue>,
) -> Option<Option<T>> {
    match raw {
        Some(text) => fields.parse(name, parse(text)).map(Some),
        None => Some(None),
    }
}

fn reason(raw: &str) -> Result<Reason, ApiError> {
    Reason::parse(raw)
        .map_err(|e| ApiError::Validation(vec![FieldError::new("reason", e.to_string())], None))
}

// ---------------------------------------------------------------------------
// Proposals and answers
// ---------------------------------------------------------------------------

/// Propose a match of a student with an offer (school; rules M1, S1, S2).
#[utoipa::path(post, path = "/v1/placements", operation_id = "proposeMatch", tag = "placements",
    request_body = ProposeMatchRequest,
    params(CommandHeaders),
    responses((status = 201, description = "Proposed", body = PlacementAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn propose_match(
    command: CommandContext,
    AppJson(body): AppJson<ProposeMatchRequest>,
) -> Result<Response, ApiError> {
    command.principal.require(&[Role::School])?;
    let school = SchoolId::parse(command.principal.org()?)
        .map_err(|e| ApiError::Forbidden(format!("the token's org is not a school code: {e}")))?;
    let mut fields = Fields::default();
    let student_id = fields.parse("student_id", StudentNumber::parse(&body.student_id));
    let explanation =
        optional_text(&mut fields, "explanation", body.explanation.as_deref(), Note::parse);
    let (student_id, explanation) = fields.finish((|| Some((student_id?, explanation?)))())?;
    let offer_id = body.offer_id.to_string();
    // The offer's company, qualification, levels and period never change, and
    // the slot is reserved on this state (or on a fresh load if it is stale).
    let mut loaded_offer = command.state.bus.load_recent_for_command::<Offer>(&offer_id).await?;
    if loaded_offer.is_cached() && loaded_offer.aggregate().record().is_none() {
        loaded_offer = command.state.bus.load_for_command::<Offer>(&offer_id).await?;
    }
    let today = today();
    let Some(offer) = loaded_offer.aggregate().record() else {
        // Refusals in the order the request is read: the student, the
        // placement it replaces, then the offer.
        let (student, _) = command.student_facts(&school, &student_id).await?;
        command.check_replaces(body.replaces, &student).await?;
        return Err(ApiError::Validation(vec![FieldError::new("offer_id", "no such offer")], None));
    };
    let offer_facts = OfferFacts {
        offer_id: body.offer_id,
        company_id: offer.offer.company_id.clone(),
        qualification: offer.offer.qualification,
        levels: offer.offer.levels.clone(),
        period: offer.offer.period,
    };
    let ((student, _), company_may_host) = command
        .student_facts_and_host(
            (&school, &student_id),
            (&offer_facts.company_id, offer_facts.qualification, today),
        )
        .await?;
    command.check_replaces(body.replaces, &student).await?;
    let id = super::new_id();
    let proposal = PlacementCommand::ProposeMatch {
        placement_id: id,
        student,
        offer: offer_facts,
        company_may_host,
        explanation,
        replaces: body.replaces,
        matching_round_id: None,
    };
    // Decide first (pure), so a refused match takes no slot; then take the
    // slot (the offer refuses when none is free, S2); then record the match.
    Placement::default().decide(proposal.clone())?;
    command
        .run_beside::<Offer>(
            &offer_id,
            Some(loaded_offer),
            OfferCommand::ReserveSlot { placement_id: id, today },
        )
        .await?;
    let placement = id.to_string();
    let fresh = Loaded::new_aggregate(&placement);
    match command.run_guarded_from::<Placement>(&placement, Some(fresh), proposal, |_| Ok(())).await
    {
        Ok(committed) => Ok(created(id, committed)),
        Err(error) => {
            // Only a store failure gets here (the proposal was decided above):
            // give the slot back now; if that fails too, the slot stays held by
            // a placement that does not exist, which `free_slots` then shows.
            if let Err(release) = command
                .run_beside::<Offer>(
                    &offer_id,
                    None,
                    OfferCommand::ReleaseSlot { placement_id: id },
                )
                .await
            {
                tracing::error!(%release, offer_id, "could not release a slot after a failed match");
            }
            Err(error)
        }
    }
}

/// Propose a placement the student found themselves (student, or the school
/// for a student; rules M2, S1).
#[utoipa::path(post, path = "/v1/placements/self-found", operation_id = "proposeSelfFoundPlacement",
    tag = "placements", request_body = ProposeSelfFoundRequest,
    params(CommandHeaders),
    responses((status = 201, description = "Proposed", body = PlacementAccepted), CommandProblems),
    security(("bearer" = ["student", "school"])))]
pub async fn propose_self_found(
    command: CommandContext,
    AppJson(body): AppJson<ProposeSelfFoundRequest>,
) -> Result<Response, ApiError> {
    let principal = &command.principal;
    principal.require(&[Role::Student, Role::School])?;
    let school = SchoolId::parse(principal.org()?)
        .map_err(|e| ApiError::Forbidden(format!("the token's org is not a school code: {e}")))?;
    let mut fields = Fields::default();
    let company_id = fields.parse("company_id", CompanyId::parse(&body.company_id));
    let qualification = fields.parse("qualification", Crebo::parse(&body.qualification));
    let note = optional_text(&mut fields, "note", body.note.as_deref(), Note::parse);
    let raw_student = match (principal.role, &body.student_id) {
        (Role::Student, None) => principal.student.clone(),
        (Role::Student, Some(_)) => {
            fields.parse::<(), _>(
                "student_id",
                Err("a student proposes for themselves; leave it out"),
            );
            None
        }
        (_, Some(id)) => Some(id.clone()),
        (_, None) => {
            fields.parse::<(), _>("student_id", Err("required when a school proposes"));
            None
        }
    };
    let student_id =
        raw_student.and_then(|raw| fields.parse("student_id", StudentNumber::parse(&raw)));
    let (company_id, qualification, note, student_id) =
        fields.finish((|| Some((company_id?, qualification?, note?, student_id?)))())?;
    let (student, _) = command.student_facts(&school, &student_id).await?;
    command.check_replaces(body.replaces, &student).await?;
    let company_may_host = command.company_may_host(&company_id, qualification, today()).await?;
    let id = super::new_id();
    let proposed_by =
        if principal.role == Role::Student { Participant::Student } else { Participant::School };
    let placement = id.to_string();
    let committed = command
        .run_guarded_from::<Placement>(
            &placement,
            Some(Loaded::new_aggregate(&placement)),
            PlacementCommand::ProposeSelfFound {
                placement_id: id,
                student,
                company_id,
                qualification,
                company_may_host,
                note,
                proposed_by,
                replaces: body.replaces,
            },
            |_| Ok(()),
        )
        .await?;
    Ok(created(id, committed))
}

/// Approve a self-found placement (school; rules M2, S1).
#[utoipa::path(post, path = "/v1/placements/{placement_id}/approve", operation_id = "approveSelfFoundPlacement",
    tag = "placements",
    params(("placement_id" = String, Path, description = "The placement"),
           CommandHeaders),
    responses((status = 202, description = "Approved", body = PlacementAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn approve_self_found(
    command: CommandContext,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    command.principal.require(&[Role::School])?;
    let id = placement_id(&raw_id)?;
    let (record, loaded) = command.placement(id).await?;
    let today = today();
    let company_may_host =
        command.company_may_host(&record.company_id, record.qualification, today).await?;
    command
        .on_placement_from(
            id,
            Some(loaded),
            &[Role::School],
            PlacementCommand::ApproveSelfFound { company_may_host, today },
            StatusCode::ACCEPTED,
        )
        .await
}

/// Accept a proposed match (the student).
#[utoipa::path(post, path = "/v1/placements/{placement_id}/accept", operation_id = "acceptMatch",
    tag = "placements",
    params(("placement_id" = String, Path, description = "The placement"),
           CommandHeaders),
    responses((status = 202, description = "Accepted", body = PlacementAccepted), CommandProblems),
    security(("bearer" = ["student"])))]
pub async fn accept_match(
    command: CommandContext,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = placement_id(&raw_id)?;
    command
        .on_placement(
            id,
            &[Role::Student],
            PlacementCommand::Accept { today: today() },
            StatusCode::ACCEPTED,
        )
        .await
}

/// Object to a match, with reasons (the student or the company; rule M3).
#[utoipa::path(post, path = "/v1/placements/{placement_id}/object", operation_id = "objectToMatch",
    tag = "placements", request_body = ObjectRequest,
    params(("placement_id" = String, Path, description = "The placement"),
           CommandHeaders),
    responses((status = 202, description = "Objection recorded", body = PlacementAccepted), CommandProblems),
    security(("bearer" = ["student", "company"])))]
pub async fn object_to_match(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<ObjectRequest>,
) -> Result<Response, ApiError> {
    command.principal.require(&[Role::Student, Role::Company])?;
    let id = placement_id(&raw_id)?;
    let mut fields = Fields::default();
    let reasons = fields.parse("reasons", parse_list(&body.reasons, 10, true, Reason::parse));
    let reasons = fields.finish(reasons).map_err(|e| match e {
        ApiError::Validation(errors, _) => ApiError::Validation(errors, Some("M3")),
        other => other,
    })?;
    let by = if command.principal.role == Role::Student {
        Participant::Student
    } else {
        Participant::Company
    };
    command
        .on_placement(
            id,
            &[Role::Student, Role::Company],
            PlacementCommand::Object(MatchObjected { by, reasons }),
            StatusCode::ACCEPTED,
        )
        .await
}

/// Withdraw a match before the placement starts (school).
#[utoipa::path(post, path = "/v1/placements/{placement_id}/withdraw", operation_id = "withdrawMatch",
    tag = "placements", request_body = ReasonRequest,
    params(("placement_id" = String, Path, description = "The placement"),
           CommandHeaders),
    responses((status = 202, description = "Withdrawn", body = PlacementAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn withdraw_match(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<ReasonRequest>,
) -> Result<Response, ApiError> {
    let id = placement_id(&raw_id)?;
    let reason = reason(&body.reason)?;
    command
        .on_placement(
            id,
            &[Role::School],
            PlacementCommand::Withdraw(MatchWithdrawn { reason }),
            StatusCode::ACCEPTED,
        )
        .await
}

// ---------------------------------------------------------------------------
// The agreement
// ---------------------------------------------------------------------------

fn cents(fields: &mut Fields, name: &str, euros: f64) -> Option<Cents> {
    fields.parse(name, Cents::from_euros(euros))
}

/// A placement's period lies at most three years back and six years ahead:
/// this also keeps every date arithmetic on it far from the calendar's end.
pub fn within_reach(period: Period) -> Result<Period, &'static str> {
    let today = today();
    let earliest = today.checked_sub_days(chrono::Days::new(3 * 366));
    let latest = today.checked_add_days(chrono::Days::new(6 * 366));
    if earliest.is_some_and(|e| period.start >= e) && latest.is_some_and(|l| period.end <= l) {
        Ok(period)
    } else {
        Err("the period must lie within three years back and six years ahead")
    }
}

fn parse_terms(body: &DraftAgreementRequest) -> Result<AgreementTerms, ApiError> {
    let mut fields = Fields::default();
    let period = fields
        .parse("end_date", Period::parse(body.start_date, body.end_date))
        .and_then(|period| fields.parse("start_date", within_reach(period)));
    let hours = fields.parse(
        "hours_per_week",
        u8::try_from(body.hours_per_week)
            .ok()
            .filter(|h| (1..=60).contains(h))
            .ok_or("must be 1-60"),
    );
    let goals = fields
        .parse("learning_goals", parse_list(&body.learning_goals, 20, false, LearningGoal::parse));
    let school_contact = fields.parse("school_contact", ContactRef::parse(&body.school_contact));
    let company_trainer = fields.parse("company_trainer", ContactRef::parse(&body.company_trainer));
    let compensation = &body.compensation;
    if compensation.costs.len() > 20 {
        fields.parse::<(), _>("compensation.costs", Err("at most 20 costs"));
    }
    let costs: Option<Vec<Cost>> = compensation
        .costs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cents(&mut fields, &format!("compensation.costs.{i}.amount_eur"), c.amount_eur)
                .map(|amount| Cost { kind: c.kind, amount })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    let expense = cents(
        &mut fields,
        "compensation.expense_allowance_eur",
        compensation.expense_allowance_eur,
    );
    let allowance = match &compensation.internship_allowance {
        Some(a) => {
            fields.parse("compensation.internship_allowance.amount_eur", a.parse()).map(Some)
        }
        None => Some(None),
    };
    let wage = match compensation.hourly_wage_eur {
        Some(euros) => cents(&mut fields, "compensation.hourly_wage_eur", euros).map(Some),
        None => Some(None),
    };
    let plan: Vec<PlannedContact> = body
        .contact_plan
        .iter()
        .flatten()
        .map(|p| PlannedContact { kind: p.kind, planned_on: p.planned_on })
        .collect();
    let slack = chrono::Days::new(31);
    if let Some(period) = period
        && plan
            .iter()
            .any(|p| p.planned_on < period.start - slack || p.planned_on > period.end + slack)
    {
        fields.parse::<(), _>(
            "contact_plan",
            Err("planned days must lie within the period (give or take a month)"),
        );
    }
    if plan.len() > 20 {
        fields.parse::<(), _>("contact_plan", Err("at most 20 planned moments"));
    }
    fields.finish((|| {
        Some(AgreementTerms {
            period: period?,
            hours_per_week: hours?,
            learning_goals: goals?,
            school_contact: school_contact?,
            company_trainer: company_trainer?,
            compensation: Compensation {
                costs: costs?,
                expense_allowance: expense?,
                internship_allowance: allowance?,
                hourly_wage: wage?,
            },
            contact_plan: plan,
        })
    })())
}

/// Draft (or redraft) the practice agreement (school; rules G1, G4, C1, C3).
/// A redraft lapses the signatures of the earlier draft.
#[utoipa::path(post, path = "/v1/placements/{placement_id}/agreement", operation_id = "draftAgreement",
    tag = "placements", request_body = DraftAgreementRequest,
    params(("placement_id" = String, Path, description = "The placement"),
           CommandHeaders),
    responses((status = 202, description = "Drafted", body = PlacementAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn draft_agreement(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<DraftAgreementRequest>,
) -> Result<Response, ApiError> {
    command.principal.require(&[Role::School])?;
    let id = placement_id(&raw_id)?;
    let terms = parse_terms(&body)?;
    let (record, loaded) = command.placement(id).await?;
    let (student, date_of_birth) =
        command.student_facts(&record.student.school, &record.student.student_id).await?;
    let wages = Arc::clone(&command.state.wages);
    let pathway = student.student.pathway;
    command
        .on_placement_from(
            id,
            Some(loaded),
            &[Role::School],
            PlacementCommand::DraftAgreement { terms, date_of_birth, pathway, wages },
            StatusCode::ACCEPTED,
        )
        .await
}

/// Sign the agreement (student, school, company; the school records a legal
/// representative's signature, the company a BBL employment contract; rule G1).
#[utoipa::path(post, path = "/v1/placements/{placement_id}/agreement/signatures", operation_id = "signAgreement",
    tag = "placements", request_body = SignRequest,
    params(("placement_id" = String, Path, description = "The placement"),
           CommandHeaders),
    responses((status = 202, description = "Signed", body = PlacementAccepted), CommandProblems),
    security(("bearer" = ["student", "school", "company"])))]
pub async fn sign_agreement(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<SignRequest>,
) -> Result<Response, ApiError> {
    let id = placement_id(&raw_id)?;
    let role = command.principal.role;
    let own = match role {
        Role::Student => Signatory::Student,
        Role::School => Signatory::School,
        Role::Company => Signatory::Company,
        Role::Sbb | Role::Monitor => {
            return Err(ApiError::Forbidden(format!("the {role} role does not sign agreements")));
        }
    };
    let party = body.party.unwrap_or(own);
    let allowed = party == own
        || matches!(
            (role, party),
            (Role::School, Signatory::LegalRepresentative) | (Role::Company, Signatory::Employer)
        );
    if !allowed {
        return Err(ApiError::Forbidden(format!("the {role} role cannot sign for that party")));
    }
    command
        .on_placement(
            id,
            &[Role::Student, Role::School, Role::Company],
            PlacementCommand::Sign { party, today: today() },
            StatusCode::ACCEPTED,
        )
        .await
}

/// Start the placement (school; refused unless all signatures exist, G1, and
/// the company is recognised and not suspended, S1).
#[utoipa::path(post, path = "/v1/placements/{placement_id}/start", operation_id = "startPlacement",
    tag = "placements",
    params(("placement_id" = String, Path, description = "The placement"),
           CommandHeaders),
    responses((status = 202, description = "Started", body = PlacementAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn start_placement(
    command: CommandContext,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    command.principal.require(&[Role::School])?;
    let id = placement_id(&raw_id)?;
    let (record, loaded) = command.placement(id).await?;
    let today = today();
    let ((_, date_of_birth), company_may_host) = command
        .student_facts_and_host(
            (&record.student.school, &record.student.student_id),
            (&record.company_id, record.qualification, today),
        )
        .await?;
    command
        .on_placement_from(
            id,
            Some(loaded),
            &[Role::School],
            PlacementCommand::Start { company_may_host, today, date_of_birth },
            StatusCode::ACCEPTED,
        )
        .await
}

// ---------------------------------------------------------------------------
// Guidance
// ---------------------------------------------------------------------------

fn participant_of(role: Role) -> Option<Participant> {
    match role {
        Role::Student => Some(Participant::Student),
        Role::School => Some(Participant::School),
        Role::Company => Some(Participant::Company),
        Role::Sbb | Role::Monitor => None,
    }
}

/// Record a contact moment (school or company; rule G2).
#[utoipa::path(post, path = "/v1/placements/{placement_id}/contact-moments", operation_id = "recordContactMoment",
    tag = "placements", request_body = ContactMomentRequest,
    params(("placement_id" = String, Path, description = "The placement"),
           CommandHeaders),
    responses((status = 201, description = "Recorded; `moment_id` names it", body = PlacementAccepted), CommandProblems),
    security(("bearer" = ["school", "company"])))]
pub async fn record_contact_moment(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<ContactMomentRequest>,
) -> Result<Response, ApiError> {
    command.principal.require(&[Role::School, Role::Company])?;
    let id = placement_id(&raw_id)?;
    let mut participants = body.participants.clone();
    participants.sort_unstable();
    participants.dedup();
    if participants.is_empty() {
        return Err(ApiError::Validation(
            vec![FieldError::new("participants", "must name at least one participant")],
            Some("G2"),
        ));
    }
    let recorded_by = participant_of(command.principal.role).unwrap_or(Participant::School);
    let moment_id = Uuid::new_v4();
    let held = ContactMomentHeld {
        moment_id,
        kind: body.kind,
        mode: body.mode,
        held_on: body.held_on,
        participants,
        recorded_by,
    };
    let principal = command.principal.clone();
    let committed = command
        .run_guarded::<Placement>(
            &id.to_string(),
            PlacementCommand::RecordContactMoment { held, today: today() },
            move |p| party_check(&principal, p, id),
        )
        .await?;
    let body = PlacementAccepted {
        placement_id: id,
        version: committed.version,
        position: committed.position,
        moment_id: Some(moment_id),
    };
    Ok(accepted(StatusCode::CREATED, body, committed, None))
}

/// Confirm taking part in a contact moment (another participant than its recorder; rule G2).
#[utoipa::path(post, path = "/v1/placements/{placement_id}/contact-moments/{moment_id}/confirm",
    operation_id = "confirmContactMoment", tag = "placements",
    params(("placement_id" = String, Path, description = "The placement"),
           ("moment_id" = String, Path, description = "The contact moment"),
           CommandHeaders),
    responses((status = 202, description = "Confirmed", body = PlacementAccepted), CommandProblems),
    security(("bearer" = ["student", "school", "company"])))]
pub async fn confirm_contact_moment(
    command: CommandContext,
    Path((raw_id, raw_moment)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = placement_id(&raw_id)?;
    let moment_id = Uuid::parse_str(&raw_moment)
        .map_err(|_| ApiError::NotFound(format!("no contact moment {raw_moment:?}")))?;
    let party = participant_of(command.principal.role)
        .ok_or_else(|| ApiError::Forbidden("only the placement's parties confirm".into()))?;
    command
        .on_placement(
            id,
            &[Role::Student, Role::School, Role::Company],
            PlacementCommand::ConfirmContactMoment(ContactMomentConfirmed { moment_id, party }),
            StatusCode::ACCEPTED,
        )
        .await
}

/// Deviate from the three contact moments in an exceptional case, recording why (school; rule G2).
#[utoipa::path(post, path = "/v1/placements/{placement_id}/contact-moments/waiver",
    operation_id = "waiveContactMomentRequirement", tag = "placements", request_body = ReasonRequest,
    params(("placement_id" = String, Path, description = "The placement"),
           CommandHeaders),
    responses((status = 202, description = "Waived", body = PlacementAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn waive_contact_moments(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<ReasonRequest>,
) -> Result<Response, ApiError> {
    let id = placement_id(&raw_id)?;
    let reason = reason(&body.reason)?;
    command
        .on_placement(
            id,
            &[Role::School],
            PlacementCommand::WaiveContactMoments(ContactMomentRequirementWaived { reason }),
            StatusCode::ACCEPTED,
        )
        .await
}

/// Record the warm handover between school and company (school; rule G3).
#[utoipa::path(post, path = "/v1/placements/{placement_id}/warm-handover", operation_id = "recordWarmHandover",
    tag = "placements", request_body = WarmHandoverRequest,
    params(("placement_id" = String, Path, description = "The placement"),
           CommandHeaders),
    responses((status = 202, description = "Recorded", body = PlacementAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn record_warm_handover(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<WarmHandoverRequest>,
) -> Result<Response, ApiError> {
    let id = placement_id(&raw_id)?;
    if body.held_on > today() || body.held_on < today() - chrono::Days::new(3 * 366) {
        return Err(ApiError::Validation(
            vec![FieldError::new("held_on", "must not be in the future, nor years ago")],
            Some("G3"),
        ));
    }
    command
        .on_placement(
            id,
            &[Role::School],
            PlacementCommand::RecordWarmHandover(WarmHandoverHeld { held_on: body.held_on }),
            StatusCode::ACCEPTED,
        )
        .await
}

/// Complete the placement (school; refused while G2 is unmet and not waived).
#[utoipa::path(post, path = "/v1/placements/{placement_id}/complete", operation_id = "completePlacement",
    tag = "placements",
    params(("placement_id" = String, Path, description = "The placement"),
           CommandHeaders),
    responses((status = 202, description = "Completed", body = PlacementAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn complete_placement(
    command: CommandContext,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = placement_id(&raw_id)?;
    command
        .on_placement(
            id,
            &[Role::School],
            PlacementCommand::Complete { today: today() },
            StatusCode::ACCEPTED,
        )
        .await
}

/// Interrupt an active placement (school).
#[utoipa::path(post, path = "/v1/placements/{placement_id}/interrupt", operation_id = "interruptPlacement",
    tag = "placements", request_body = ReasonRequest,
    params(("placement_id" = String, Path, description = "The placement"),
           CommandHeaders),
    responses((status = 202, description = "Interrupted", body = PlacementAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn interrupt_placement(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<ReasonRequest>,
) -> Result<Response, ApiError> {
    let id = placement_id(&raw_id)?;
    let reason = reason(&body.reason)?;
    command
        .on_placement(
            id,
            &[Role::School],
            PlacementCommand::Interrupt { reason, today: today() },
            StatusCode::ACCEPTED,
        )
        .await
}

/// Rate the guidance of school and company, 1-5 each (the student, after the start; rule G4).
#[utoipa::path(post, path = "/v1/placements/{placement_id}/rating", operation_id = "rateGuidance",
    tag = "placements", request_body = RatingRequest,
    params(("placement_id" = String, Path, description = "The placement"),
           CommandHeaders),
    responses((status = 202, description = "Rated", body = PlacementAccepted), CommandProblems),
    security(("bearer" = ["student"])))]
pub async fn rate_guidance(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<RatingRequest>,
) -> Result<Response, ApiError> {
    let id = placement_id(&raw_id)?;
    let score = |field: &str, raw: i64, errors: &mut Vec<FieldError>| match u8::try_from(raw) {
        Ok(score @ 1..=5) => score,
        _ => {
            errors.push(FieldError::new(field, "must be 1 to 5"));
            0
        }
    };
    let mut errors = Vec::new();
    let school_score = score("school_score", body.school_score, &mut errors);
    let company_score = score("company_score", body.company_score, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors, Some("G4")));
    }
    command
        .on_placement(
            id,
            &[Role::Student],
            PlacementCommand::Rate(GuidanceRated { school_score, company_score }),
            StatusCode::ACCEPTED,
        )
        .await
}

// ---------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------

/// One cost.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CostView {
    /// What for.
    pub kind: String,
    /// Euros.
    pub amount_eur: f64,
}

/// The agreement as drafted, and who signed it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgreementView {
    /// The draft's number.
    pub agreement_version: u32,
    /// First day.
    pub start_date: NaiveDate,
    /// Last day.
    pub end_date: NaiveDate,
    /// Hours per week.
    pub hours_per_week: u8,
    /// Learning goals.
    pub learning_goals: Vec<String>,
    /// The school's contact (G4).
    pub school_contact: String,
    /// The company trainer (G4).
    pub company_trainer: String,
    /// Costs (C1).
    pub costs: Vec<CostView>,
    /// Expense allowance (C1).
    pub expense_allowance_eur: f64,
    /// Internship allowance (C2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internship_allowance: Option<AllowanceBody>,
    /// BBL hourly wage (C3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hourly_wage_eur: Option<f64>,
    /// The statutory minimum it was held against (C3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_hourly_wage_eur: Option<f64>,
    /// Planned contact moments.
    pub contact_plan: Vec<PlannedContactBody>,
}

/// A contact moment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContactMomentView {
    /// Its id.
    pub moment_id: Uuid,
    /// Kind.
    pub kind: String,
    /// Mode.
    pub mode: String,
    /// The day.
    pub held_on: NaiveDate,
    /// Who took part.
    pub participants: Vec<String>,
    /// Who recorded it.
    pub recorded_by: String,
    /// Who confirmed it.
    pub confirmed_by: Vec<String>,
}

/// Contact moments held (G2).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContactCountsView {
    /// All.
    pub total: u32,
    /// On site.
    pub on_site: u32,
    /// Start, with the whole triangle.
    pub start: u32,
    /// Midway, with the whole triangle.
    pub midway: u32,
    /// End, with the whole triangle.
    pub end: u32,
}

/// A placement's compliance with G1 and G2.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComplianceView {
    /// Who must sign.
    pub signatures_required: Vec<String>,
    /// Who signed.
    pub signatures_present: Vec<String>,
    /// Who has not.
    pub signatures_missing: Vec<String>,
    /// Contact moments held.
    pub contact_moments: ContactCountsView,
    /// G2 waived by the school (with a reason).
    pub waived: bool,
    /// Required moments past their due day.
    pub overdue: Vec<String>,
    /// G2 met.
    pub g2_met: bool,
}

/// A placement as its parties see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlacementView {
    /// The placement.
    pub placement_id: Uuid,
    /// `proposed`, `self_found_proposed`, `accepted`, `agreed`, `active`,
    /// `completed`, `interrupted`, `objected` or `withdrawn`.
    pub status: String,
    /// The school.
    pub school: String,
    /// The school's number for the student. Absent for the company: a company
    /// knows its intern in person, never by the school's number (DESIGN §6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub student_id: Option<String>,
    /// The student's level.
    pub level: u8,
    /// The student's pathway.
    pub pathway: String,
    /// The company.
    pub company_id: String,
    /// Qualification (crebo).
    pub qualification: String,
    /// `match` or `self_found`.
    pub origin: String,
    /// The offer of a match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer_id: Option<Uuid>,
    /// The school's explanation of a match, or the note of a self-found placement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// The period: the agreement's, else the offer's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<PeriodBody>,
    /// The agreement, once drafted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<AgreementView>,
    /// Who objected (M3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objected_by: Option<String>,
    /// The objection's reasons (M3).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objection_reasons: Vec<String>,
    /// Why it was withdrawn or interrupted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    /// Started on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_on: Option<NaiveDate>,
    /// Ended on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_on: Option<NaiveDate>,
    /// Contact moments.
    pub contact_moments: Vec<ContactMomentView>,
    /// The school's reason for deviating from G2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiver_reason: Option<String>,
    /// The warm handover (G3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_handover_on: Option<NaiveDate>,
    /// The student's rating: shown to the student only, so it can be honest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<RatingView>,
    /// `suspended` or `revoked` while the company's recognition is in question.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_risk: Option<String>,
    /// `needed`, or the id of the alternative placement offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternative: Option<String>,
    /// The placement this one replaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Uuid>,
    /// Compliance with G1 and G2.
    pub compliance: ComplianceView,
    /// Missing signatures, overdue contact moments, at risk, or an alternative needed.
    pub needs_attention: bool,
    /// Version (also the `ETag`).
    pub version: i64,
    /// The log position of the last event reflected.
    pub position: i64,
}

/// A rating.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RatingView {
    /// School guidance, 1-5.
    pub school_score: u8,
    /// Company guidance, 1-5.
    pub company_score: u8,
}

fn text<T: Serialize>(value: T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn texts<T: Serialize>(values: impl IntoIterator<Item = T>) -> Vec<String> {
    values.into_iter().map(text).collect()
}

/// The view of a placement for `principal`.
pub fn view(principal: &Principal, entry: PlacementEntry, today: NaiveDate) -> PlacementView {
    let PlacementEntry { record, version, last_position, .. } = entry;
    let compliance = record.compliance(today);
    let needs_attention = record.needs_attention(today);
    let (origin, offer_id, explanation) = match &record.origin {
        Origin::Match { offer_id, explanation } => ("match", Some(*offer_id), explanation.clone()),
        Origin::SelfFound { note, .. } => ("self_found", None, note.clone()),
    };
    let period = record.period().map(|p| PeriodBody { start: p.start, end: p.end });
    let agreement = record.agreement.as_ref().map(|a| {
        let d = &a.drafted;
        let t = &d.terms;
        AgreementView {
            agreement_version: d.agreement_version,
            start_date: t.period.start,
            end_date: t.period.end,
            hours_per_week: t.hours_per_week,
            learning_goals: t.learning_goals.iter().map(ToString::to_string).collect(),
            school_contact: t.school_contact.to_string(),
            company_trainer: t.company_trainer.to_string(),
            costs: t
                .compensation
                .costs
                .iter()
                .map(|c| CostView { kind: text(c.kind), amount_eur: c.amount.euros() })
                .collect(),
            expense_allowance_eur: t.compensation.expense_allowance.euros(),
            internship_allowance: t.compensation.internship_allowance.map(AllowanceBody::of),
            hourly_wage_eur: t.compensation.hourly_wage.map(Cents::euros),
            minimum_hourly_wage_eur: d.minimum_hourly_wage.map(Cents::euros),
            contact_plan: t
                .contact_plan
                .iter()
                .map(|p| PlannedContactBody { kind: p.kind, planned_on: p.planned_on })
                .collect(),
        }
    });
    let own_rating = principal.role == Role::Student;
    PlacementView {
        placement_id: record.placement_id,
        status: record.status.as_str().to_owned(),
        school: record.student.school.to_string(),
        student_id: (principal.role != Role::Company)
            .then(|| record.student.student_id.to_string()),
        level: record.student.level.get(),
        pathway: record.student.pathway.as_str().to_owned(),
        company_id: record.company_id.to_string(),
        qualification: record.qualification.to_string(),
        origin: origin.to_owned(),
        offer_id,
        explanation: explanation.map(String::from),
        period,
        agreement,
        objected_by: record.objection.as_ref().map(|o| text(o.by)),
        objection_reasons: record
            .objection
            .as_ref()
            .map(|o| o.reasons.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
        end_reason: record.end_reason.as_ref().map(ToString::to_string),
        started_on: record.started_on,
        ended_on: record.ended_on,
        contact_moments: record
            .contact_moments
            .iter()
            .map(|m| ContactMomentView {
                moment_id: m.held.moment_id,
                kind: text(m.held.kind),
                mode: text(m.held.mode),
                held_on: m.held.held_on,
                participants: texts(&m.held.participants),
                recorded_by: text(m.held.recorded_by),
                confirmed_by: texts(&m.confirmed_by),
            })
            .collect(),
        waiver_reason: record.waiver.as_ref().map(ToString::to_string),
        warm_handover_on: record.warm_handover,
        rating: record
            .rating
            .as_ref()
            .filter(|_| own_rating)
            .map(|r| RatingView { school_score: r.school_score, company_score: r.company_score }),
        at_risk: record
            .risk
            .filter(|_| !record.status.is_closed() || record.status == PlacementStatus::Interrupted)
            .map(text),
        alternative: record.alternative.map(|a| match a {
            Alternative::Needed => "needed".to_owned(),
            Alternative::Offered(id) => id.to_string(),
        }),
        replaces: record.replaces,
        compliance: ComplianceView {
            signatures_required: texts(&compliance.signatures_required),
            signatures_present: texts(&compliance.signatures_present),
            signatures_missing: texts(&compliance.signatures_missing),
            contact_moments: ContactCountsView {
                total: compliance.contact_moments.total,
                on_site: compliance.contact_moments.on_site,
                start: compliance.contact_moments.start,
                midway: compliance.contact_moments.midway,
                end: compliance.contact_moments.end,
            },
            waived: compliance.waived,
            overdue: texts(&compliance.overdue),
            g2_met: compliance.g2_met,
        },
        needs_attention,
        version,
        position: last_position,
    }
}

/// A page of placements.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlacementPage {
    /// The placements, in id order.
    pub items: Vec<PlacementView>,
    /// Pass as `after` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Uuid>,
}

/// Filters of `listPlacements`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlacementQuery {
    /// Only placements that need attention: missing signatures, overdue
    /// contact moments, at risk, or an alternative needed.
    pub needs_attention: Option<bool>,
    /// Only this status.
    #[param(
        pattern = "^(proposed|self_found_proposed|accepted|agreed|active|completed|interrupted|objected|withdrawn)$"
    )]
    pub status: Option<String>,
    /// Only this student (a school's filter).
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub student_id: Option<String>,
    /// The `next` of the previous page.
    pub after: Option<Uuid>,
    /// Page size, 1-500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Wait (bounded) until placements reflect the log up to this position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

const STATUSES: [&str; 9] = [
    "proposed",
    "self_found_proposed",
    "accepted",
    "agreed",
    "active",
    "completed",
    "interrupted",
    "objected",
    "withdrawn",
];

/// One placement (its school, company and student).
#[utoipa::path(get, path = "/v1/placements/{placement_id}", operation_id = "getPlacement", tag = "placements",
    params(("placement_id" = String, Path, description = "The placement"), ReadQuery,
           ("If-None-Match" = Option<String>, Header, description = "The ETag of a copy you hold")),
    responses((status = 200, description = "The placement with its compliance; its ETag is a hash of the body", body = PlacementView),
              (status = 304, description = "Not modified"), ReadProblems),
    security(("bearer" = ["school", "company", "student"])))]
pub async fn get_placement(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    AppQuery(query): AppQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    principal.require(&[Role::School, Role::Company, Role::Student])?;
    let id = placement_id(&raw_id)?;
    state.await_projection(placements::NAME, query.min_position).await?;
    let entry = placements::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no placement {id}")))?;
    if !is_party(&principal, &entry.record) {
        return Err(ApiError::Forbidden(
            "only the placement's school, company and student read it".into(),
        ));
    }
    let view = view(&principal, entry, today());
    // No version tag: `open`, compliance and attention also change with the
    // day and with other aggregates, so the tag is a hash of the body.
    Ok(Json(view).into_response())
}

/// Placements, filtered, in pages (a school its students'; a company its own;
/// a student their own).
#[utoipa::path(get, path = "/v1/placements", operation_id = "listPlacements", tag = "placements",
    params(PlacementQuery, ("If-None-Match" = Option<String>, Header, description = "The ETag of a page you hold")),
    responses((status = 200, description = "A page of placements", body = PlacementPage),
              (status = 304, description = "Not modified"), ReadProblems),
    security(("bearer" = ["school", "company", "student"])))]
pub async fn list_placements(
    State(state): State<AppState>,
    principal: Principal,
    AppQuery(query): AppQuery<PlacementQuery>,
) -> Result<Json<PlacementPage>, ApiError> {
    principal.require(&[Role::School, Role::Company, Role::Student])?;
    let limit = page_limit(query.limit)?;
    if let Some(status) = &query.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::Validation(vec![FieldError::new("status", "unknown status")], None));
    }
    state.await_projection(placements::NAME, query.min_position).await?;
    let org = principal.org()?.to_owned();
    let today = today();
    let mut filter = PlacementFilter {
        school: None,
        company_id: None,
        student_id: super::student_filter(query.student_id.as_deref())?,
        status: query.status.clone(),
        needs_attention: query.needs_attention,
        today,
    };
    match principal.role {
        Role::School => filter.school = Some(org),
        Role::Company => {
            if filter.student_id.is_some() {
                return Err(ApiError::Forbidden(
                    "a company does not look placements up by a student's number".into(),
                ));
            }
            filter.company_id = Some(org);
        }
        _ => {
            filter.school = Some(org);
            filter.student_id = principal.student.clone();
        }
    }
    let rows = placements::list(&state.pool, &filter, query.after, limit + 1).await?;
    let (entries, next) = page(rows, limit, |e| e.record.placement_id);
    Ok(Json(PlacementPage {
        items: entries.into_iter().map(|e| view(&principal, e, today)).collect(),
        next,
    }))
}
