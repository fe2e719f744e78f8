//! Students: the school enrols them (one by one, or in bulk from its student
//! information system) and records their learning wish with them (M1).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use stagepact_domain::protected::Protected;
use stagepact_domain::student::{
    Enrolment, LearningWishRecorded, Student, StudentCommand, StudentEnrolled, StudentError,
    StudentRecord, student_key,
};
use stagepact_domain::values::{
    Competence, Crebo, Description, LearningGoal, Level, Location, Pathway, Region, SchoolId,
    Sector, StudentNumber, age_on, parse_list,
};
use stagepact_store::Opener;
use stagepact_store::students::{self, StudentEntry};
use utoipa::ToSchema;

use super::companies::{LocationBody, ReadQuery};
use super::{
    CommandContext, CommandHeaders, CommandProblems, Erased, IdempotencyHeader, ProtectedText,
    ReadProblems, accepted, tagged, today,
};
use crate::auth::{Principal, Role};
use crate::extract::{AppJson, AppQuery, BulkJson, Fields, from_json_value};
use crate::problem::{ApiError, FieldError};
use crate::server::AppState;

/// Most students per import.
const MAX_IMPORT: usize = 1_000;

/// Body of `enrollStudent`, and one item of `importStudents`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollStudentRequest {
    /// The school's own number for the student: 1-64 letters, digits, `-`, `_`.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", example = "s-2026-0042")]
    pub student_id: String,
    /// Qualification code (crebo): five digits.
    #[schema(pattern = "^[0-9]{5}$", example = "25180")]
    pub qualification: String,
    /// Level, 1-4.
    #[schema(minimum = 1, maximum = 4)]
    pub level: i64,
    /// `bol`, `bbl` or `derde`.
    #[schema(value_type = String, pattern = "^(bol|bbl|derde)$")]
    pub pathway: Pathway,
    /// The school year the student started, e.g. 2026.
    #[schema(minimum = 2000, maximum = 2100)]
    pub cohort: i64,
    /// Whether this is the student's first year.
    pub first_year: bool,
    /// Date of birth (G1, C3); never shown to companies.
    pub date_of_birth: NaiveDate,
}

/// Body of `importStudents`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportStudentsRequest {
    /// Up to 1000 students, each like the body of `enrollStudent` (the body may
    /// be up to 2 MiB). Each item is checked on its own: a bad item gets its
    /// errors, the others are imported.
    #[schema(value_type = Vec<EnrollStudentRequest>, max_items = 1000)]
    pub students: Vec<serde_json::Value>,
}

/// Body of `recordLearningWish`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LearningWishRequest {
    /// What the student wants to learn (up to 20).
    #[schema(max_items = 20)]
    pub learning_goals: Vec<String>,
    /// What the student can already do (up to 50).
    #[schema(max_items = 50)]
    pub competences: Vec<String>,
    /// Sectors the student would like (up to 10).
    #[schema(max_items = 10)]
    pub sectors: Vec<String>,
    /// Where the student wants a placement.
    #[schema(min_length = 1, max_length = 100)]
    pub region: String,
    /// How far the student will travel, in km (1-500).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 500)]
    pub max_travel_km: Option<i64>,
    /// Where the student travels from: a neighbourhood, village or station
    /// rather than the home address. Stored rounded to 0.01° (about a
    /// kilometre). Matching then weighs the distance against `max_travel_km`;
    /// without it, it keeps to `region`.
    #[serde(default)]
    pub travel_from: Option<LocationBody>,
}

/// What a student command recorded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StudentAccepted {
    /// The school's number for the student.
    pub student_id: String,
    /// The student's version now (send as `If-Match`).
    pub version: i64,
    /// The log position of the last event recorded (absent if nothing was).
    pub position: Option<i64>,
}

/// What became of one imported student.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    /// Enrolled now.
    Created,
    /// Its enrolment changed.
    Updated,
    /// Already as sent: nothing recorded.
    Unchanged,
    /// Refused: see `errors`.
    Invalid,
}

/// One imported student's result.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportItemResult {
    /// The item's index in the request.
    pub index: usize,
    /// The student's number, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub student_id: Option<String>,
    /// What happened.
    pub outcome: ImportOutcome,
    /// For an invalid item: each invalid field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The student's version after the import.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// The log position of the event recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
}

/// The result of `importStudents`: one entry per item, in request order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportResult {
    /// Per item.
    pub results: Vec<ImportItemResult>,
    /// Items created.
    pub created: usize,
    /// Items updated.
    pub updated: usize,
    /// Items unchanged.
    pub unchanged: usize,
    /// Items refused.
    pub invalid: usize,
}

/// A learning wish.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LearningWishView {
    /// Learning goals.
    pub learning_goals: Vec<String>,
    /// Competences.
    pub competences: Vec<String>,
    /// Sectors.
    pub sectors: Vec<String>,
    /// Region.
    pub region: String,
    /// Travel limit in km.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_travel_km: Option<u32>,
    /// Where the student travels from, rounded to about a kilometre.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub travel_from: Option<LocationBody>,
}

/// A student as the school and the student themselves see them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StudentView {
    /// The school (BRIN).
    pub school: String,
    /// The school's number for the student.
    pub student_id: String,
    /// Qualification (crebo).
    pub qualification: String,
    /// Level.
    pub level: u8,
    /// `bol`, `bbl` or `derde`.
    pub pathway: String,
    /// Cohort.
    pub cohort: u16,
    /// First year.
    pub first_year: bool,
    /// Date of birth.
    pub date_of_birth: NaiveDate,
    /// The learning wish, once recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning_wish: Option<LearningWishView>,
    /// The extra support need (G3), if any; `{"erased": true}` once erased.
    /// Stored encrypted; shown to the school and the student only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub support_need: Option<ProtectedText>,
    /// Version (also the `ETag`).
    pub version: i64,
    /// The log position of the last event reflected.
    pub position: i64,
}

/// Parses an enrolment; `school` is the caller's.
fn enrolment(school: &SchoolId, body: &EnrollStudentRequest) -> Result<StudentEnrolled, ApiError> {
    let mut fields = Fields::default();
    let student_id = fields.parse("student_id", StudentNumber::parse(&body.student_id));
    let qualification = fields.parse("qualification", Crebo::parse(&body.qualification));
    let level = fields.parse("level", Level::parse(body.level));
    let cohort = fields.parse(
        "cohort",
        u16::try_from(body.cohort)
            .ok()
            .filter(|c| (2000..=2100).contains(c))
            .ok_or("must be a year from 2000 to 2100"),
    );
    let age = age_on(body.date_of_birth, today());
    let born = fields.parse(
        "date_of_birth",
        if body.date_of_birth > today() || !(10..=100).contains(&age) {
            Err("must be a date of birth 10 to 100 years ago")
        } else {
            Ok(body.date_of_birth)
        },
    );
    fields.finish((|| {
        Some(StudentEnrolled {
            school: school.clone(),
            student_id: student_id?,
            enrolment: Enrolment {
                qualification: qualification?,
                level: level?,
                pathway: body.pathway,
                cohort: cohort?,
                first_year: body.first_year,
                date_of_birth: born?,
            },
        })
    })())
}

pub(crate) fn own_school(principal: &Principal) -> Result<SchoolId, ApiError> {
    principal.require(&[Role::School])?;
    SchoolId::parse(principal.org()?)
        .map_err(|e| ApiError::Forbidden(format!("the token's org is not a school code: {e}")))
}

/// Gives newly enrolled students their data keys (DESIGN §6), all in one
/// statement: a key's life follows its subject's, and the commands that seal a
/// student's content (a report, a support need) then only read it. A failure
/// here costs nothing but speed: the first sealing creates the key instead.
async fn issue_keys(command: &CommandContext, subjects: &[String]) {
    if subjects.is_empty() {
        return;
    }
    if let Err(error) = command.state.vault.issue_keys(subjects).await {
        tracing::warn!(%error, "students' keys are created on first use instead");
    }
}

/// Enrol a student (school, for its own students).
#[utoipa::path(post, path = "/v1/students", operation_id = "enrollStudent", tag = "students",
    request_body = EnrollStudentRequest,
    params(CommandHeaders),
    responses((status = 201, description = "Enrolled", body = StudentAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn enroll_student(
    command: CommandContext,
    AppJson(body): AppJson<EnrollStudentRequest>,
) -> Result<Response, ApiError> {
    let school = own_school(&command.principal)?;
    let enrolled = enrolment(&school, &body)?;
    let id = student_key(&school, &enrolled.student_id);
    let student_id = enrolled.student_id.to_string();
    let committed = command.run::<Student>(&id, StudentCommand::Enroll(enrolled)).await?;
    issue_keys(&command, &[id]).await;
    let location = format!("/v1/students/{student_id}");
    let body =
        StudentAccepted { student_id, version: committed.version, position: committed.position };
    Ok(accepted(StatusCode::CREATED, body, committed, Some(location)))
}

/// Enrol or update many students at once, e.g. from the school's student
/// information system (school). Idempotent: an unchanged student records nothing.
#[utoipa::path(post, path = "/v1/students/import", operation_id = "importStudents", tag = "students",
    request_body = ImportStudentsRequest,
    params(IdempotencyHeader),
    responses((status = 200, description = "A result per item", body = ImportResult), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn import_students(
    command: CommandContext,
    BulkJson(body): BulkJson<ImportStudentsRequest>,
) -> Result<Json<ImportResult>, ApiError> {
    let school = own_school(&command.principal)?;
    if body.students.len() > MAX_IMPORT {
        return Err(ApiError::Validation(
            vec![FieldError::new("students", format!("at most {MAX_IMPORT} per import"))],
            None,
        ));
    }
    let mut result =
        ImportResult { results: Vec::new(), created: 0, updated: 0, unchanged: 0, invalid: 0 };
    let mut created = Vec::new();
    for (index, item) in body.students.into_iter().enumerate() {
        let student_id = item.get("student_id").and_then(|v| v.as_str()).map(str::to_owned);
        let mut entry = ImportItemResult {
            index,
            student_id,
            outcome: ImportOutcome::Invalid,
            errors: Vec::new(),
            version: None,
            position: None,
        };
        let parsed = from_json_value::<EnrollStudentRequest>(item)
            .and_then(|body| enrolment(&school, &body));
        let enrolled = match parsed {
            Ok(enrolled) => enrolled,
            Err(ApiError::Validation(errors, _)) => {
                entry.errors = errors;
                result.invalid += 1;
                result.results.push(entry);
                continue;
            }
            Err(other) => return Err(other),
        };
        let id = student_key(&school, &enrolled.student_id);
        // Store failures fail the whole request (and a retry with the same
        // Idempotency-Key or body imports the rest); refusals cannot occur for a sync.
        let before = command.state.bus.version_of::<Student>(&id).await?;
        // Each item stands alone: the request's If-Match does not apply to it.
        let committed =
            command.run_beside::<Student>(&id, None, StudentCommand::Sync(enrolled)).await?;
        entry.outcome = match (before, committed.position) {
            (_, None) => ImportOutcome::Unchanged,
            (0, Some(_)) => ImportOutcome::Created,
            (_, Some(_)) => ImportOutcome::Updated,
        };
        if matches!(entry.outcome, ImportOutcome::Created) {
            created.push(id);
        }
        match entry.outcome {
            ImportOutcome::Created => result.created += 1,
            ImportOutcome::Updated => result.updated += 1,
            ImportOutcome::Unchanged => result.unchanged += 1,
            ImportOutcome::Invalid => result.invalid += 1,
        }
        entry.version = Some(committed.version);
        entry.position = committed.position;
        result.results.push(entry);
    }
    issue_keys(&command, &created).await;
    Ok(Json(result))
}

/// Who may act on or read student `student_id`: its school, or the student.
fn student_of(principal: &Principal, raw_id: &str) -> Result<(SchoolId, StudentNumber), ApiError> {
    principal.require(&[Role::School, Role::Student])?;
    let not_found = || ApiError::NotFound(format!("no student {raw_id:?} at your school"));
    let student_id = StudentNumber::parse(raw_id).map_err(|_| not_found())?;
    let school = SchoolId::parse(principal.org()?).map_err(|_| not_found())?;
    if principal.role == Role::Student && !principal.is_student(school.as_str(), raw_id) {
        return Err(ApiError::Forbidden("a student may only act on their own record".into()));
    }
    Ok((school, student_id))
}

/// Record the student's learning wish (the student, or their school; rule M1).
#[utoipa::path(post, path = "/v1/students/{student_id}/learning-wish", operation_id = "recordLearningWish",
    tag = "students", request_body = LearningWishRequest,
    params(("student_id" = String, Path, description = "The school's number for the student"),
           CommandHeaders),
    responses((status = 202, description = "Recorded", body = StudentAccepted), CommandProblems),
    security(("bearer" = ["student", "school"])))]
pub async fn record_learning_wish(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<LearningWishRequest>,
) -> Result<Response, ApiError> {
    let (school, student_id) = student_of(&command.principal, &raw_id)?;
    let mut fields = Fields::default();
    let goals = fields
        .parse("learning_goals", parse_list(&body.learning_goals, 20, false, LearningGoal::parse));
    let competences =
        fields.parse("competences", parse_list(&body.competences, 50, false, Competence::parse));
    let sectors = fields.parse("sectors", parse_list(&body.sectors, 10, false, Sector::parse));
    let region = fields.parse("region", Region::parse(&body.region));
    let travel = fields.parse(
        "max_travel_km",
        match body.max_travel_km {
            None => Ok(None),
            Some(km @ 1..=500) => Ok(u32::try_from(km).ok()),
            Some(_) => Err("must be 1-500 km"),
        },
    );
    let travel_from = match &body.travel_from {
        Some(l) => {
            fields.parse("travel_from", Location::parse(l.lat, l.lon)).map(|l| Some(l.coarse()))
        }
        None => Some(None),
    };
    let wish = fields.finish((|| {
        Some(LearningWishRecorded {
            learning_goals: goals?,
            competences: competences?,
            sectors: sectors?,
            region: region?,
            max_travel_km: travel?,
            travel_from: travel_from?,
        })
    })())?;
    let id = student_key(&school, &student_id);
    let committed = command.run::<Student>(&id, StudentCommand::RecordLearningWish(wish)).await?;
    let body = StudentAccepted {
        student_id: student_id.to_string(),
        version: committed.version,
        position: committed.position,
    };
    Ok(accepted(StatusCode::ACCEPTED, body, committed, None))
}

/// Body of `recordSupportNeed`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SupportNeedRequest {
    /// The extra support need, in the school's words; null when there is none
    /// (any more). Stored encrypted under the student's key.
    #[schema(min_length = 1, max_length = 10000)]
    pub support_need: Option<String>,
}

/// The school records a student's extra support need (G3: a warm handover and
/// tailored guidance follow from it; M5: it never excludes, so matching never
/// reads it). Sealed under the student's key, and erased with their data.
#[utoipa::path(post, path = "/v1/students/{student_id}/support-need", operation_id = "recordSupportNeed",
    tag = "students", request_body = SupportNeedRequest,
    params(("student_id" = String, Path, description = "The school's number for the student"),
           CommandHeaders),
    responses((status = 202, description = "Recorded", body = StudentAccepted), CommandProblems),
    security(("bearer" = ["school"])))]
pub async fn record_support_need(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<SupportNeedRequest>,
) -> Result<Response, ApiError> {
    command.principal.require(&[Role::School])?;
    let (school, student_id) = student_of(&command.principal, &raw_id)?;
    let mut fields = Fields::default();
    let need = match body.support_need.as_deref() {
        Some(text) => fields.parse("support_need", Description::parse(text)).map(Some),
        None => Some(None),
    };
    let need = fields.finish(need)?;
    let id = student_key(&school, &student_id);
    // Enrolled first: a refused command must not create a key.
    let (student, _) = command.state.bus.load::<Student>(&id).await?;
    if student.record().is_none() {
        return Err(StudentError::NotEnrolled.into());
    }
    let cipher = command.state.vault.cipher_for(&id).await?;
    let committed =
        command.run::<Student>(&id, StudentCommand::RecordSupportNeed(need, cipher)).await?;
    let body = StudentAccepted {
        student_id: student_id.to_string(),
        version: committed.version,
        position: committed.position,
    };
    Ok(accepted(StatusCode::ACCEPTED, body, committed, None))
}

fn view(entry: StudentEntry, opener: &Opener) -> StudentView {
    let StudentEntry { record, version, last_position, .. } = entry;
    let StudentRecord { school, student_id, enrolment, learning_wish, support_need } = record;
    // The sealed content is an optional text: "none" opens as no need at all.
    let support_need =
        support_need.and_then(|sealed| match opener.open::<Option<String>>(&sealed) {
            Protected::Readable(need) => need.map(ProtectedText::Readable),
            Protected::Erased(_) => Some(ProtectedText::Erased(Erased { erased: true })),
        });
    StudentView {
        school: school.into(),
        student_id: student_id.into(),
        qualification: enrolment.qualification.into(),
        level: enrolment.level.get(),
        pathway: enrolment.pathway.as_str().to_owned(),
        cohort: enrolment.cohort,
        first_year: enrolment.first_year,
        date_of_birth: enrolment.date_of_birth,
        learning_wish: learning_wish.map(|w| LearningWishView {
            learning_goals: w.learning_goals.into_iter().map(String::from).collect(),
            competences: w.competences.into_iter().map(String::from).collect(),
            sectors: w.sectors.into_iter().map(String::from).collect(),
            region: w.region.into(),
            max_travel_km: w.max_travel_km,
            travel_from: w.travel_from.map(|l| LocationBody { lat: l.lat, lon: l.lon }),
        }),
        support_need,
        version,
        position: last_position,
    }
}

/// A student's record (their school, or the student themselves).
#[utoipa::path(get, path = "/v1/students/{student_id}", operation_id = "getStudent", tag = "students",
    params(("student_id" = String, Path, description = "The school's number for the student"), ReadQuery,
           ("If-None-Match" = Option<String>, Header, description = "The ETag of a copy you hold")),
    responses((status = 200, description = "The student; ETag is its version", body = StudentView),
              (status = 304, description = "Not modified"), ReadProblems),
    security(("bearer" = ["school", "student"])))]
pub async fn get_student(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    AppQuery(query): AppQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    let (school, student_id) = student_of(&principal, &raw_id)?;
    state.await_projection(students::NAME, query.min_position).await?;
    let entry = students::get(&state.pool, school.as_str(), student_id.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no student {raw_id:?} at your school")))?;
    let keys = entry.record.support_need.iter().map(|s| s.sealed);
    let opener = state.vault.opener(keys).await?;
    let view = view(entry, &opener);
    Ok(tagged(view.version, view))
}
