//! Objective matching rounds (stagematching, rules M1-M5, S1, S2): a school
//! opens a round for a cohort and period, runs the engine on the students and
//! offers in play, reads the proposals with their explanations, and publishes
//! them as placements (`MatchProposed`); a two-and-two round publishes
//! introductions and settles each student afterwards (M4).
//!
//! Who is in play is decided here, from the read models, after they caught up
//! with the log, so a run sees every command answered before it:
//!
//! - **Students** (M2): the ones the school named, or else its first-year BOL
//!   students of the cohort; either way only with a learning wish and without
//!   a placement (pending, agreed, running or completed) overlapping the
//!   period, and for the round's qualification when it names one. A student
//!   is not proposed again to a company that objected to them, or they to it
//!   (M3).
//! - **Offers** (M4, S1, S2): open for matching, not withdrawn, current and
//!   overlapping the period, with a free slot, of a company that takes part
//!   in matching and may host the qualification today. An offer without a
//!   location is placed at its company's.
//!
//! The engine's input holds nothing personal (M1, M5): no date of birth, no
//! support need, no report, no name. Only the school reads its rounds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use stagepact_domain::company::Company;
use stagepact_domain::matching_round::*;
use stagepact_domain::offer::{Offer, OfferCommand};
use stagepact_domain::placement::{
    OfferFacts, Placement, PlacementCommand, PlacementError, PlacementStatus, PlacementStudent,
    StudentFacts,
};
use stagepact_domain::student::{Student, StudentRecord, student_key};
use stagepact_domain::values::{Crebo, Note, Pathway, Period, SchoolId, StudentNumber};
use stagepact_matching as engine;
use stagepact_matching::{Explanation, Metrics, Settings, UnmatchedReason, Variant};
use stagepact_store::{
    CommandError, Denial, StoreError, company_registry, matching_rounds, offers, placements,
    students,
};
use utoipa::ToSchema;
use uuid::Uuid;

use super::companies::ReadQuery;
use super::offers::PeriodBody;
use super::students::own_school;
use super::{
    CommandContext, CommandHeaders, CommandProblems, ReadProblems, accepted, tagged, today,
};
use crate::auth::Principal;
use crate::extract::{AppJson, AppQuery, Fields};
use crate::problem::{ApiError, FieldError};
use crate::server::AppState;

// ---------------------------------------------------------------------------
// Bodies and views
// ---------------------------------------------------------------------------

/// Body of `openMatchingRound`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenRoundRequest {
    /// The cohort: the school year the students started, e.g. 2026.
    #[schema(minimum = 2000, maximum = 2100)]
    pub cohort: u16,
    /// The placement period.
    pub period: PeriodBody,
    /// Only this qualification (crebo code).
    #[serde(default)]
    #[schema(pattern = "^[0-9]{5}$")]
    pub qualification: Option<String>,
    /// `single` (one proposal each) or `two_and_two` (two introductions each, M4).
    #[schema(value_type = String, pattern = "^(single|two_and_two)$")]
    pub variant: Variant,
    /// The candidates, by the school's numbers; without it, the school's
    /// first-year BOL students of the cohort (M2).
    #[serde(default)]
    #[schema(min_items = 1, max_items = 20000)]
    pub student_ids: Option<Vec<String>>,
}

/// One settlement of a two-and-two round.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settlement {
    /// The school's number for the student.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub student_id: String,
    /// One of the two offers the student was introduced to.
    pub offer_id: Uuid,
}

/// Body of `settleMatchingRound`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleRequest {
    /// The students settled now, each with one of their introductions.
    #[schema(min_items = 1, max_items = 20000)]
    pub settlements: Vec<Settlement>,
}

/// What a round command recorded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoundAccepted {
    /// The round.
    pub round_id: Uuid,
    /// Its version now (send as `If-Match`).
    pub version: i64,
    /// The log position of the last event recorded; null when nothing was
    /// recorded (a run on unchanged input).
    pub position: Option<i64>,
    /// After a run: its number (an unchanged input keeps the latest run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<u32>,
    /// After publishing or settling: the placements proposed and the matches
    /// that lapsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carried_out: Option<CarriedOutView>,
}

/// How the matches were carried out.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct CarriedOutView {
    /// Placements proposed (`MatchProposed`).
    pub placed: usize,
    /// Matches that lapsed (the offer filled up or closed, or the company may
    /// no longer host); their students are back in the pool.
    pub lapsed: usize,
    /// Matches still to carry out (retried in the background).
    pub pending: usize,
}

/// What became of a proposal.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProposalPlacement {
    /// The placement it is (or would have been).
    pub placement_id: Uuid,
    /// `pending` (not carried out yet), `lapsed`, or the placement's status
    /// (`proposed`, `accepted`, `objected`, …).
    pub status: String,
    /// Why it lapsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A proposal (or, in a two-and-two round, an introduction).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProposalView {
    /// The school's number for the student.
    pub student_id: String,
    /// The offer.
    pub offer_id: String,
    /// The offer's company.
    pub company_id: String,
    /// The fit in thousandths: the sum of the explanation's points.
    pub fit: u32,
    /// Which criteria matched and what each weighed.
    pub explanation: Explanation,
    /// Once published (or settled): the placement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<ProposalPlacement>,
}

/// A student without a proposal.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnmatchedView {
    /// The school's number for the student.
    pub student_id: String,
    /// Why.
    pub reason: UnmatchedReason,
}

/// A named student left out of the run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeftOutView {
    /// The school's number for the student.
    pub student_id: String,
    /// `no_learning_wish`, `has_placement` or `other_qualification`.
    pub reason: String,
}

/// A run's figures: the engine's metrics and its time.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunView {
    /// The run's number.
    pub run: u32,
    /// SHA-256 of the engine's input.
    pub input_digest: String,
    /// How fit was weighed.
    pub settings: Settings,
    /// Matched share, mean fit, slots left, blocking pairs, …
    pub metrics: Metrics,
    /// The engine's time, in milliseconds.
    pub run_time_ms: u64,
}

/// A matching round.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoundView {
    /// The round.
    pub round_id: Uuid,
    /// Its version.
    pub version: i64,
    /// `open`, `run`, `published` or (two-and-two, everyone settled) `settled`.
    pub status: &'static str,
    /// The cohort.
    pub cohort: u16,
    /// The placement period.
    pub period: PeriodBody,
    /// The qualification, when the round is for one.
    pub qualification: Option<String>,
    /// `single` or `two_and_two`.
    pub variant: Variant,
    /// The students the school named, if it did.
    pub student_ids: Option<Vec<String>>,
    /// When it was opened.
    pub opened_on: NaiveDate,
    /// When it was published.
    pub published_on: Option<NaiveDate>,
    /// The latest run's figures.
    pub run: Option<RunView>,
    /// The latest run's proposals, by student and offer.
    pub proposals: Vec<ProposalView>,
    /// Students in the run without a proposal, and why.
    pub unmatched: Vec<UnmatchedView>,
    /// Named students not in the run, and why.
    pub left_out: Vec<LeftOutView>,
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The most students a request names (`student_ids`, `settlements`).
const MAX_LISTED: usize = 20_000;

fn round_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("no matching round {raw:?}")))
}

/// Only the round's school acts on it.
fn own_round<'a>(
    principal: &Principal,
    round: &'a MatchingRound,
    id: Uuid,
) -> Result<&'a MatchingRoundRecord, Denial> {
    match round.record() {
        None => Err(Denial::NotFound(format!("no matching round {id}"))),
        Some(r) if !principal.is_school(r.opened.school.as_str()) => {
            Err(Denial::Forbidden("only the school that opened a round acts on it".into()))
        }
        Some(r) => Ok(r),
    }
}

impl CommandContext {
    /// Runs `command` on round `id` if the caller is its school.
    async fn on_round(
        &self,
        id: Uuid,
        command: MatchingRoundCommand,
    ) -> Result<stagepact_store::Committed, ApiError> {
        let principal = self.principal.clone();
        self.run_guarded::<MatchingRound>(&id.to_string(), command, move |r| {
            own_round(&principal, r, id).map(drop)
        })
        .await
    }
}

fn answer(id: Uuid, committed: stagepact_store::Committed) -> RoundAccepted {
    RoundAccepted {
        round_id: id,
        version: committed.version,
        position: committed.position,
        run: None,
        carried_out: None,
    }
}

fn respond(
    status: StatusCode,
    body: RoundAccepted,
    committed: stagepact_store::Committed,
) -> Response {
    let location =
        (status == StatusCode::CREATED).then(|| format!("/v1/matching-rounds/{}", body.round_id));
    accepted(status, body, committed, location)
}

// ---------------------------------------------------------------------------
// Open
// ---------------------------------------------------------------------------

/// Open a matching round for a cohort and period (school; M2, M4).
#[utoipa::path(post, path = "/v1/matching-rounds", operation_id = "openMatchingRound", tag = "matching",
    request_body = OpenRoundRequest, params(CommandHeaders),
    responses((status = 201, description = "Opened", body = RoundAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn open_matching_round(
    command: CommandContext,
    AppJson(body): AppJson<OpenRoundRequest>,
) -> Result<Response, ApiError> {
    let school = own_school(&command.principal)?;
    let mut fields = Fields::default();
    let period = fields.parse("period.end", Period::parse(body.period.start, body.period.end));
    let qualification = match &body.qualification {
        Some(raw) => fields.parse("qualification", Crebo::parse(raw)).map(Some),
        None => Some(None),
    };
    if !(2000..=2100).contains(&body.cohort) {
        fields.parse::<(), _>("cohort", Err("must be a school year, 2000-2100"));
    }
    let named = match &body.student_ids {
        None => Some(None),
        Some(ids) if ids.is_empty() => fields
            .parse::<(), _>("student_ids", Err("name at least one student, or leave it out"))
            .map(|()| None),
        Some(ids) if ids.len() > MAX_LISTED => fields
            .parse::<(), _>("student_ids", Err(format!("name at most {MAX_LISTED} students")))
            .map(|()| None),
        Some(ids) => {
            let mut parsed = BTreeSet::new();
            for (index, raw) in ids.iter().enumerate() {
                if let Some(id) =
                    fields.parse(&format!("student_ids[{index}]"), StudentNumber::parse(raw))
                {
                    parsed.insert(id);
                }
            }
            Some(Some(parsed.into_iter().collect::<Vec<_>>()))
        }
    };
    let (period, qualification, named) =
        fields.finish((|| Some((period?, qualification?, named?)))())?;
    if let Some(named) = &named {
        check_enrolled(&command, &school, named).await?;
    }
    let id = Uuid::new_v4();
    let opened = MatchingRoundOpened {
        round_id: id,
        school,
        cohort: body.cohort,
        period,
        qualification,
        variant: body.variant,
        student_ids: named,
        opened_on: today(),
    };
    let committed =
        command.run::<MatchingRound>(&id.to_string(), MatchingRoundCommand::Open(opened)).await?;
    Ok(respond(StatusCode::CREATED, answer(id, committed), committed))
}

/// Every named student must be one of the school's (by their own events when
/// the directory has not caught up yet).
async fn check_enrolled(
    command: &CommandContext,
    school: &SchoolId,
    named: &[StudentNumber],
) -> Result<(), ApiError> {
    let raw: Vec<String> = named.iter().map(ToString::to_string).collect();
    let known: BTreeSet<String> =
        matching_rounds::students(&command.state.pool, school.as_str(), 0, Some(&raw))
            .await?
            .into_iter()
            .map(|s| s.student_id.to_string())
            .collect();
    let mut missing = Vec::new();
    for (index, id) in named.iter().enumerate() {
        if known.contains(id.as_str()) {
            continue;
        }
        let (student, _) = command.state.bus.load::<Student>(&student_key(school, id)).await?;
        if student.record().is_none() {
            missing.push(FieldError::new(
                format!("student_ids[{index}]"),
                "no such student at your school",
            ));
        }
    }
    if missing.is_empty() { Ok(()) } else { Err(ApiError::Validation(missing, None)) }
}

// ---------------------------------------------------------------------------
// Run
// ---------------------------------------------------------------------------

/// The engine's input for a round, as things stand, and the named students
/// left out.
pub struct RoundInput {
    /// What the engine reads.
    pub input: engine::MatchingInput,
    /// Named students not in play.
    pub left_out: Vec<LeftOut>,
}

/// Statuses of a placement that hold its student for its period.
fn holds(status: PlacementStatus) -> bool {
    !matches!(
        status,
        PlacementStatus::Objected | PlacementStatus::Withdrawn | PlacementStatus::Interrupted
    )
}

/// Assembles the input of a round from the read models (see the module notes).
pub async fn round_input(
    state: &AppState,
    opened: &MatchingRoundOpened,
    today: NaiveDate,
) -> Result<RoundInput, ApiError> {
    let school = opened.school.as_str();
    let named: Option<Vec<String>> =
        opened.student_ids.as_ref().map(|ids| ids.iter().map(ToString::to_string).collect());
    let records =
        matching_rounds::students(&state.pool, school, opened.cohort, named.as_deref()).await?;
    let mut held: BTreeSet<String> = BTreeSet::new();
    let mut objected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for placement in matching_rounds::placements(&state.pool, school).await? {
        let student = placement.student.student_id.to_string();
        if placement.status == PlacementStatus::Objected {
            objected.entry(student).or_default().insert(placement.company_id.to_string());
        } else if holds(placement.status)
            && placement.period().is_none_or(|p| p.overlaps(&opened.period))
        {
            held.insert(student);
        }
    }
    let mut left_out = Vec::new();
    let mut students = Vec::new();
    for record in records {
        let id = record.student_id.to_string();
        let leave = |reason| LeftOut { student_id: record.student_id.clone(), reason };
        let enrolment = &record.enrolment;
        if named.is_none()
            && !(enrolment.pathway == Pathway::Bol
                && enrolment.first_year
                && enrolment.cohort == opened.cohort)
        {
            continue;
        }
        let reason = if opened.qualification.is_some_and(|q| q != enrolment.qualification) {
            Some(LeftOutReason::OtherQualification)
        } else if record.learning_wish.is_none() {
            Some(LeftOutReason::NoLearningWish)
        } else if held.contains(&id) {
            Some(LeftOutReason::HasPlacement)
        } else {
            None
        };
        match reason {
            // Defaults that do not qualify are simply not candidates.
            Some(reason) if named.is_some() => left_out.push(leave(reason)),
            Some(_) => {}
            None => students.push(engine_student(&record, objected.remove(&id))),
        }
    }
    let qualifications: BTreeSet<String> =
        students.iter().map(|s| s.qualification.clone()).collect();
    let qualifications: Vec<String> = qualifications.into_iter().collect();
    let mut offers = Vec::new();
    for in_play in
        matching_rounds::offers(&state.pool, &qualifications, opened.period, today).await?
    {
        let (offer, company) = (&in_play.offer.offer, &in_play.company);
        // M4: companies take part unless they opted out; S1: recognised for
        // the qualification, not suspended or revoked.
        if company.opted_out_of_matching || !company.may_host(offer.qualification, today) {
            continue;
        }
        offers.push(engine::Offer {
            id: offer.offer_id.to_string().as_str().into(),
            company: offer.company_id.as_str().into(),
            qualification: offer.qualification.to_string(),
            levels: offer.levels.iter().map(|l| l.get()).collect(),
            slots: in_play.offer.free_slots(),
            learning_opportunities: offer
                .learning_opportunities
                .iter()
                .map(|o| o.as_str().to_owned())
                .collect(),
            sector: company.sector.to_string(),
            region: offer.region.to_string(),
            location: offer
                .location
                .or(company.location)
                .map(|l| engine::Location { lat: l.lat, lon: l.lon }),
        });
    }
    // The digest reads the input in order: the order of Rust's, not of a
    // database collation.
    students.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    offers.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    left_out.sort_unstable_by(|a, b| a.student_id.cmp(&b.student_id));
    let settings = Settings { variant: opened.variant, ..Settings::default() };
    Ok(RoundInput { input: engine::MatchingInput { students, offers, settings }, left_out })
}

/// A student as the engine sees them: the learning wish, nothing personal.
fn engine_student(record: &StudentRecord, objected: Option<BTreeSet<String>>) -> engine::Student {
    let wish = record.learning_wish.as_ref();
    let strings = |items: Option<Vec<String>>| items.unwrap_or_default();
    engine::Student {
        id: record.student_id.as_str().into(),
        qualification: record.enrolment.qualification.to_string(),
        level: record.enrolment.level.get(),
        learning_goals: strings(
            wish.map(|w| w.learning_goals.iter().map(|g| g.as_str().to_owned()).collect()),
        ),
        competences: strings(
            wish.map(|w| w.competences.iter().map(|c| c.as_str().to_owned()).collect()),
        ),
        sectors: strings(wish.map(|w| w.sectors.iter().map(|s| s.as_str().to_owned()).collect())),
        region: wish.map(|w| w.region.to_string()).unwrap_or_default(),
        // Without a place to travel from, the engine keeps to the region.
        location: wish
            .and_then(|w| w.travel_from)
            .map(|l| engine::Location { lat: l.lat, lon: l.lon }),
        max_travel_km: wish.and_then(|w| w.max_travel_km),
        excluded_companies: objected
            .unwrap_or_default()
            .into_iter()
            .map(engine::CompanyId)
            .collect(),
    }
}

/// SHA-256, in hex, of what decides a run: the engine's decision version,
/// its input and the named students left out. The input is built in a fixed
/// order (students and offers by id), so the same state gives the same digest.
fn digest(input: &engine::MatchingInput, left_out: &[LeftOut]) -> Result<String, ApiError> {
    let decided = (engine::DECISION_VERSION, input, left_out);
    let bytes = serde_json::to_vec(&decided).map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

/// Waits until the read models a run reads reflect every event stamped so far.
async fn catch_up(state: &AppState) -> Result<(), ApiError> {
    let head = state.log.head();
    for name in [students::NAME, offers::NAME, placements::NAME, company_registry::NAME] {
        state.await_projection(name, Some(head)).await?;
    }
    Ok(())
}

/// Run the engine on the students and offers in play now, and record the
/// result (school). The same input gives the same result and records nothing new.
#[utoipa::path(post, path = "/v1/matching-rounds/{round_id}/runs", operation_id = "runMatchingRound", tag = "matching",
    params(("round_id" = String, Path, description = "The round"), CommandHeaders),
    responses((status = 202, description = "Run recorded, or unchanged", body = RoundAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn run_matching_round(
    command: CommandContext,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    own_school(&command.principal)?;
    let id = round_id(&raw_id)?;
    let (round, loaded) = command.state.bus.load::<MatchingRound>(&id.to_string()).await?;
    let record = own_round(&command.principal, &round, id)?;
    if record.published.is_some() {
        return Err(MatchingRoundError::Published.into());
    }
    catch_up(&command.state).await?;
    let RoundInput { input, left_out } =
        round_input(&command.state, &record.opened, today()).await?;
    let input_digest = digest(&input, &left_out)?;
    let settings = input.settings;
    // The engine is CPU work: off the async workers.
    let (outcome, run_time_ms) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let outcome = engine::run(&input);
        (outcome, u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))
    })
    .await
    .map_err(|e| ApiError::Internal(Box::new(e)))?;
    // The input is built by this module, so the engine refusing it is a bug.
    let outcome = outcome.map_err(|e| ApiError::Internal(Box::new(e)))?;
    let run = MatchingRoundCommand::RecordRun {
        input_digest,
        settings,
        left_out,
        outcome: Box::new(outcome),
        run_time_ms,
    };
    let latest = record.latest_run.as_ref().map_or(0, |r| r.run);
    let committed = command.on_round(id, run).await?;
    let mut body = answer(id, committed);
    // A new run is the next number; an unchanged input keeps the latest. (A
    // run another request recorded meanwhile is the next number too.)
    body.run = Some(if committed.version > loaded { latest + 1 } else { latest });
    Ok(respond(StatusCode::ACCEPTED, body, committed))
}

// ---------------------------------------------------------------------------
// Publish, settle, carry out
// ---------------------------------------------------------------------------

/// Publish the latest run (school): a single round's proposals become
/// placements (`MatchProposed`, with their explanation); a two-and-two round's
/// become introductions, settled with `settleMatchingRound` (M4).
#[utoipa::path(post, path = "/v1/matching-rounds/{round_id}/publication", operation_id = "publishMatchingRound", tag = "matching",
    params(("round_id" = String, Path, description = "The round"), CommandHeaders),
    responses((status = 202, description = "Published", body = RoundAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn publish_matching_round(
    command: CommandContext,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    own_school(&command.principal)?;
    let id = round_id(&raw_id)?;
    let committed = command.on_round(id, MatchingRoundCommand::Publish { today: today() }).await?;
    finish(&command, id, committed).await
}

/// Settle students of a published two-and-two round, each with one of the two
/// offers they were introduced to (school; M4). The company does not choose:
/// there is no click interview (M1).
#[utoipa::path(post, path = "/v1/matching-rounds/{round_id}/settlements", operation_id = "settleMatchingRound", tag = "matching",
    request_body = SettleRequest,
    params(("round_id" = String, Path, description = "The round"), CommandHeaders),
    responses((status = 202, description = "Settled", body = RoundAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn settle_matching_round(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<SettleRequest>,
) -> Result<Response, ApiError> {
    own_school(&command.principal)?;
    let id = round_id(&raw_id)?;
    let mut fields = Fields::default();
    if body.settlements.len() > MAX_LISTED {
        fields.parse::<(), _>("settlements", Err(format!("at most {MAX_LISTED} at once")));
    }
    let mut settlements = Vec::with_capacity(body.settlements.len());
    for (index, s) in body.settlements.iter().enumerate() {
        let student = StudentNumber::parse(&s.student_id);
        if let Some(student) = fields.parse(&format!("settlements[{index}].student_id"), student) {
            settlements.push((student, s.offer_id));
        }
    }
    let settlements = fields.finish(Some(settlements))?;
    let committed = command.on_round(id, MatchingRoundCommand::Settle { settlements }).await?;
    finish(&command, id, committed).await
}

/// Carries out what was just published or settled, and answers with it.
async fn finish(
    command: &CommandContext,
    id: Uuid,
    committed: stagepact_store::Committed,
) -> Result<Response, ApiError> {
    let mut committed = committed;
    let carried = match carry_out(&command.state, id, command.metadata()).await {
        Ok((carried, recorded)) => {
            // The answer names the last event, so a read at its position
            // shows the placements too.
            if let Some(recorded) = recorded.filter(|r| r.position.is_some()) {
                committed = recorded;
            }
            carried
        }
        Err(error) => {
            // Recorded already: the background round finishes it.
            tracing::warn!(%error, round = %id, "matches wait for the next carry-out round");
            let (round, _) = command.state.bus.load::<MatchingRound>(&id.to_string()).await?;
            let pending = round.record().map_or(0, |r| r.pending().len());
            CarriedOutView { placed: 0, lapsed: 0, pending }
        }
    };
    let mut body = answer(id, committed);
    body.carried_out = Some(carried);
    Ok(respond(StatusCode::ACCEPTED, body, committed))
}

/// The placement's explanation: the engine's reasons, in words (M1).
fn explanation_note(round: Uuid, fit: u32, e: &Explanation) -> Option<Note> {
    let list = |items: &[String]| {
        if items.is_empty() { "none".to_owned() } else { items.join(", ") }
    };
    // Whole kilometres and no travel limit: the company reads this too.
    let distance = match e.distance.distance_m {
        Some(m) => format!("about {} km, within the student's travel limit", (m + 500) / 1000),
        None => "same region".to_owned(),
    };
    let mut text = format!(
        "Matching round {round}: fit {fit}/1000. Qualification {} at level {}. \
         Learning goals {}/{} ({}): {}/{} points. Competences {}/{} ({}): {}/{} points. \
         Sector {}{}: {}/{} points. Distance {distance}: {}/{} points.",
        e.qualification,
        e.level,
        e.learning_goals.matched.len(),
        e.learning_goals.of,
        list(&e.learning_goals.matched),
        e.learning_goals.points,
        e.learning_goals.weight,
        e.competences.matched.len(),
        e.competences.of,
        list(&e.competences.matched),
        e.competences.points,
        e.competences.weight,
        e.sector.sector,
        if e.sector.wished { " (wished)" } else { " (not wished)" },
        e.sector.points,
        e.sector.weight,
        e.distance.points,
        e.distance.weight,
    );
    if text.chars().count() > Note::MAX_CHARS {
        text = text.chars().take(Note::MAX_CHARS - 3).collect::<String>() + "...";
    }
    Note::parse(&text).ok()
}

/// The outcome of carrying out one match.
enum Done {
    Placed(Uuid),
    Lapsed(LapsedMatch),
}

/// A lapse for `reason` under `rule`.
fn lapse(placement_id: Uuid, reason: impl Into<String>, rule: Option<&str>) -> Done {
    Done::Lapsed(LapsedMatch { placement_id, reason: reason.into(), rule: rule.map(str::to_owned) })
}

/// A lapse for a refusal of the placement or offer rules.
fn refused(placement_id: Uuid, error: &ApiError) -> Done {
    match error {
        ApiError::Refused { detail, rule, .. } => lapse(placement_id, detail.clone(), *rule),
        ApiError::Validation(fields, rule) => {
            let fields: Vec<String> =
                fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect();
            lapse(placement_id, fields.join("; "), *rule)
        }
        other => lapse(placement_id, other.to_string(), None),
    }
}

/// What carrying out one round's matches shares.
#[derive(Clone)]
struct Carrier {
    state: AppState,
    metadata: HashMap<String, String>,
    round: Uuid,
    school: SchoolId,
    /// The periods of the placements that hold each student (M2), as the
    /// placement board shows them when the carry-out starts.
    held: Arc<HashMap<String, Vec<Period>>>,
}

impl Carrier {
    /// Proposes one match as a placement, the way `proposeMatch` does: the
    /// placement's own rules first, then the offer's slot, then the placement.
    /// What changed since the run is checked again: the student got another
    /// placement for the period (M2), the company opted out or the offer
    /// closed for matching (M4), the offer was withdrawn or ended (S2), the
    /// company may no longer host (S1). A lapse gives back a slot an earlier,
    /// interrupted attempt may have reserved.
    async fn one(&self, m: &RoundMatch, explanation: Option<Note>) -> Result<Done, ApiError> {
        let id = m.placement_id;
        let (existing, _) = self.state.bus.load::<Placement>(&id.to_string()).await?;
        if existing.record().is_some() {
            return Ok(Done::Placed(id));
        }
        let done = self.propose(m, explanation).await?;
        if matches!(done, Done::Lapsed(_)) {
            let release = OfferCommand::ReleaseSlot { placement_id: id };
            let offer = m.offer_id.to_string();
            match self
                .state
                .bus
                .execute::<Offer>(&offer, release, None, self.metadata.clone())
                .await
            {
                Ok(_) | Err(CommandError::Rejected(_)) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(done)
    }

    async fn propose(&self, m: &RoundMatch, explanation: Option<Note>) -> Result<Done, ApiError> {
        let (state, id, day) = (&self.state, m.placement_id, today());
        let key = student_key(&self.school, &m.student_id);
        let (student, _) = state.bus.load::<Student>(&key).await?;
        let Some(student) = student.record() else {
            return Ok(lapse(id, "the student is no longer enrolled", None));
        };
        let (offer, _) = state.bus.load::<Offer>(&m.offer_id.to_string()).await?;
        let Some(offer) = offer.record() else {
            return Ok(lapse(id, "the offer does not exist", None));
        };
        let period = offer.offer.period;
        let held = self.held.get(m.student_id.as_str());
        if held.is_some_and(|periods| periods.iter().any(|p| p.overlaps(&period))) {
            return Ok(lapse(id, "the student has a placement for this period", Some("M2")));
        }
        if offer.withdrawn || period.end < day {
            return Ok(lapse(id, "the offer was withdrawn or has ended", Some("S2")));
        }
        let (company, _) = state.bus.load::<Company>(offer.offer.company_id.as_str()).await?;
        let company = company.record();
        if !offer.offer.open_for_matching || company.is_some_and(|c| c.opted_out_of_matching) {
            return Ok(lapse(id, "the company no longer takes part in matching", Some("M4")));
        }
        let proposal = PlacementCommand::ProposeMatch {
            placement_id: id,
            student: StudentFacts {
                student: PlacementStudent {
                    school: self.school.clone(),
                    student_id: m.student_id.clone(),
                    level: student.enrolment.level,
                    pathway: student.enrolment.pathway,
                },
                qualification: student.enrolment.qualification,
            },
            company_may_host: company.is_some_and(|c| c.may_host(offer.offer.qualification, day)),
            offer: OfferFacts {
                offer_id: m.offer_id,
                company_id: offer.offer.company_id.clone(),
                qualification: offer.offer.qualification,
                levels: offer.offer.levels.clone(),
                period,
            },
            explanation,
            replaces: None,
            matching_round_id: Some(self.round),
        };
        if let Err(error) = Placement::default().decide(proposal.clone()) {
            return Ok(refused(id, &error.into()));
        }
        let (offer_id, metadata) = (m.offer_id.to_string(), self.metadata.clone());
        let reserve = OfferCommand::ReserveSlot { placement_id: id, today: day };
        match state.bus.execute::<Offer>(&offer_id, reserve, None, metadata.clone()).await {
            Ok(_) => {}
            Err(CommandError::Rejected(error)) => return Ok(refused(id, &error.into())),
            Err(error) => return Err(error.into()),
        }
        match state.bus.execute::<Placement>(&id.to_string(), proposal, None, metadata).await {
            Ok(_) | Err(CommandError::Rejected(PlacementError::AlreadyExists)) => {
                Ok(Done::Placed(id))
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// How many matches are carried out at once.
const CONCURRENCY: usize = 8;

/// A session of its own holding an advisory lock on round `id`: one carry-out
/// of a round at a time, across processes (a request's and the background
/// round's). Closing the session, or losing it, releases the lock.
async fn lock_round(state: &AppState, id: Uuid) -> Result<sqlx::PgConnection, ApiError> {
    let mut session = state.pool.acquire().await.map_err(StoreError::from)?.detach();
    sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
        .bind(format!("matching_round:{id}"))
        .execute(&mut session)
        .await
        .map_err(StoreError::from)?;
    Ok(session)
}

/// The periods of the placements that hold each of `school`'s students.
async fn held_periods(
    state: &AppState,
    school: &SchoolId,
) -> Result<HashMap<String, Vec<Period>>, ApiError> {
    let mut held: HashMap<String, Vec<Period>> = HashMap::new();
    for placement in matching_rounds::placements(&state.pool, school.as_str()).await? {
        if let Some(period) = placement.period().filter(|_| holds(placement.status)) {
            held.entry(placement.student.student_id.to_string()).or_default().push(period);
        }
    }
    Ok(held)
}

/// Carries out every pending match of round `id` and records how; idempotent
/// (placement ids derive from the round), so a retry after a crash proposes
/// nothing twice. Returns what it did, and what it recorded on the round.
pub async fn carry_out(
    state: &AppState,
    id: Uuid,
    metadata: HashMap<String, String>,
) -> Result<(CarriedOutView, Option<stagepact_store::Committed>), ApiError> {
    let session = lock_round(state, id).await?;
    let result = carry_out_locked(state, id, metadata).await;
    // Dropping the session would release the lock as well; closing says goodbye.
    if let Err(error) = sqlx::Connection::close(session).await {
        tracing::debug!(%error, "closing a round's lock session");
    }
    result
}

async fn carry_out_locked(
    state: &AppState,
    id: Uuid,
    metadata: HashMap<String, String>,
) -> Result<(CarriedOutView, Option<stagepact_store::Committed>), ApiError> {
    let (round, _) = state.bus.load::<MatchingRound>(&id.to_string()).await?;
    let Some(record) = round.record() else {
        return Ok((CarriedOutView { placed: 0, lapsed: 0, pending: 0 }, None));
    };
    let pending: Vec<RoundMatch> = record.pending().into_iter().cloned().collect();
    if pending.is_empty() {
        return Ok((CarriedOutView { placed: 0, lapsed: 0, pending: 0 }, None));
    }
    let explanations: HashMap<(String, String), Option<Note>> = record
        .latest_run
        .iter()
        .flat_map(|run| &run.outcome.proposals)
        .map(|p| {
            ((p.student.0.clone(), p.offer.0.clone()), explanation_note(id, p.fit, &p.explanation))
        })
        .collect();
    catch_up(state).await?;
    let carrier = Carrier {
        state: state.clone(),
        metadata: metadata.clone(),
        round: id,
        school: record.opened.school.clone(),
        held: Arc::new(held_periods(state, &record.opened.school).await?),
    };
    let mut done = MatchingRoundCarriedOut { placed: Vec::new(), lapsed: Vec::new() };
    let mut failure = None;
    for chunk in pending.chunks(CONCURRENCY) {
        let mut tasks = tokio::task::JoinSet::new();
        for m in chunk {
            let (carrier, m) = (carrier.clone(), m.clone());
            let explanation = explanations
                .get(&(m.student_id.to_string(), m.offer_id.to_string()))
                .cloned()
                .flatten();
            tasks.spawn(async move { carrier.one(&m, explanation).await });
        }
        while let Some(result) = tasks.join_next().await {
            match result.map_err(|e| ApiError::Internal(Box::new(e))) {
                Ok(Ok(Done::Placed(placement))) => done.placed.push(placement),
                Ok(Ok(Done::Lapsed(lapsed))) => done.lapsed.push(lapsed),
                Ok(Err(error)) | Err(error) => failure = Some(error),
            }
        }
    }
    done.placed.sort_unstable();
    done.lapsed.sort_unstable_by_key(|l| l.placement_id);
    let view = CarriedOutView {
        placed: done.placed.len(),
        lapsed: done.lapsed.len(),
        pending: pending.len() - done.placed.len() - done.lapsed.len(),
    };
    // Record what was done even when some failed: the rest is retried.
    let recorded = state
        .bus
        .execute::<MatchingRound>(
            &id.to_string(),
            MatchingRoundCommand::RecordCarriedOut(done),
            None,
            metadata,
        )
        .await?;
    match failure {
        Some(error) => Err(error),
        None => Ok((view, Some(recorded))),
    }
}

/// Carries out what a crash or a failure left pending, in every round; a
/// round that fails again is logged and left for the next turn, and the
/// others go on.
pub async fn carry_out_pending(state: &AppState) -> Result<usize, ApiError> {
    let mut placed = 0;
    for id in matching_rounds::pending(&state.pool).await? {
        let system = HashMap::from([("actor_role".to_owned(), "system".to_owned())]);
        match carry_out(state, id, system).await {
            Ok((view, _)) => placed += view.placed,
            Err(error) => tracing::warn!(%error, round = %id, "carrying out a round failed"),
        }
    }
    Ok(placed)
}

// ---------------------------------------------------------------------------
// Read
// ---------------------------------------------------------------------------

/// One matching round: the latest run's proposals with their explanations and
/// what became of them, the students left unmatched and why, and the metrics
/// (the round's school).
#[utoipa::path(get, path = "/v1/matching-rounds/{round_id}", operation_id = "getMatchingRound", tag = "matching",
    params(("round_id" = String, Path, description = "The round"), ReadQuery),
    responses((status = 200, description = "The round", body = RoundView), ReadProblems),
    security(("bearer" = ["school"])))]
pub async fn get_matching_round(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    AppQuery(query): AppQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    own_school(&principal)?;
    let id = round_id(&raw_id)?;
    // What became of the proposals is read from the placement board.
    for name in [matching_rounds::NAME, placements::NAME] {
        state.await_projection(name, query.min_position).await?;
    }
    let entry = matching_rounds::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no matching round {id}")))?;
    let record = entry.record;
    if !principal.is_school(record.opened.school.as_str()) {
        return Err(ApiError::Forbidden("a school reads only its own matching rounds".into()));
    }
    let placed: Vec<Uuid> = record.placed.iter().copied().collect();
    let statuses = matching_rounds::placement_statuses(&state.pool, &placed).await?;
    let by_pair: HashMap<(String, String), Uuid> = record
        .matches
        .values()
        .map(|m| ((m.student_id.to_string(), m.offer_id.to_string()), m.placement_id))
        .collect();
    let placement = |student: &str, offer: &str| {
        let placement_id = *by_pair.get(&(student.to_owned(), offer.to_owned()))?;
        let (status, reason) = match record.lapsed.get(&placement_id) {
            Some(lapsed) => ("lapsed".to_owned(), Some(lapsed.reason.clone())),
            None => match statuses.get(&placement_id) {
                Some(status) => (status.clone(), None),
                None => ("pending".to_owned(), None),
            },
        };
        Some(ProposalPlacement { placement_id, status, reason })
    };
    let (proposals, unmatched, left_out, run) = match &record.latest_run {
        None => (Vec::new(), Vec::new(), Vec::new(), None),
        Some(run) => (
            run.outcome
                .proposals
                .iter()
                .map(|p| ProposalView {
                    student_id: p.student.0.clone(),
                    offer_id: p.offer.0.clone(),
                    company_id: p.company.0.clone(),
                    fit: p.fit,
                    explanation: p.explanation.clone(),
                    placement: placement(&p.student.0, &p.offer.0),
                })
                .collect(),
            run.outcome
                .unmatched
                .iter()
                .map(|u| UnmatchedView { student_id: u.student.0.clone(), reason: u.reason })
                .collect(),
            run.left_out
                .iter()
                .map(|l| LeftOutView {
                    student_id: l.student_id.to_string(),
                    reason: l.reason.as_str().to_owned(),
                })
                .collect(),
            Some(RunView {
                run: run.run,
                input_digest: run.input_digest.clone(),
                settings: run.settings,
                metrics: run.outcome.metrics.clone(),
                run_time_ms: run.run_time_ms,
            }),
        ),
    };
    let opened = &record.opened;
    let view = RoundView {
        round_id: id,
        version: entry.version,
        status: record.status(),
        cohort: opened.cohort,
        period: PeriodBody { start: opened.period.start, end: opened.period.end },
        qualification: opened.qualification.map(|q| q.to_string()),
        variant: opened.variant,
        student_ids: opened
            .student_ids
            .as_ref()
            .map(|ids| ids.iter().map(ToString::to_string).collect()),
        opened_on: opened.opened_on,
        published_on: record.published.map(|(_, on)| on),
        run,
        proposals,
        unmatched,
        left_out,
    };
    Ok(tagged(entry.version, view))
}
