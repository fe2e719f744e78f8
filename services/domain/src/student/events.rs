//! The facts of a student's history (a public contract, like every event).

use chrono::NaiveDate;
use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::protected::Sealed;
use crate::values::{
    Competence, Crebo, LearningGoal, Level, Location, Pathway, Region, SchoolId, Sector,
    StudentNumber,
};

/// What the school enrolled the student in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Enrolment {
    /// The qualification (crebo code).
    pub qualification: Crebo,
    /// The level, 1-4.
    pub level: Level,
    /// BOL, BBL or derde leerweg.
    pub pathway: Pathway,
    /// The cohort: the school year the student started, e.g. 2026.
    pub cohort: u16,
    /// Whether this is the student's first year (M2: first-year BOL students
    /// are matched first).
    pub first_year: bool,
    /// Needed for G1 (a legal representative signs under 18) and C3 (youth
    /// wage by age). Never shown to companies.
    pub date_of_birth: NaiveDate,
}

/// A school enrolled a student.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StudentEnrolled {
    /// The school (BRIN).
    pub school: SchoolId,
    /// The school's own number for the student.
    pub student_id: StudentNumber,
    /// The enrolment.
    pub enrolment: Enrolment,
}

/// The school's system changed a student's enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StudentEnrolmentUpdated {
    /// The enrolment as it is now.
    pub enrolment: Enrolment,
}

/// The student's learning wish (leerwens): what matching reads, and nothing
/// personal (M1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LearningWishRecorded {
    /// What the student wants to learn.
    pub learning_goals: Vec<LearningGoal>,
    /// What the student can already do.
    pub competences: Vec<Competence>,
    /// Sectors the student would like to work in.
    pub sectors: Vec<Sector>,
    /// Where the student wants a placement.
    pub region: Region,
    /// How far the student is willing to travel, in km.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_travel_km: Option<u32>,
    /// Where the student travels from, rounded to about a kilometre (a
    /// neighbourhood or station, not an address); without it, matching keeps
    /// to the region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub travel_from: Option<Location>,
}

/// The school recorded the student's extra support need (G3), or that there is
/// none any more. Sealed under the student's key, including whether there is
/// one at all: the content is an optional text (DESIGN §6; M5: never used to
/// exclude, so matching never reads it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SupportNeedRecorded {
    /// The need, sealed: a text, or null for none.
    pub support_need: Sealed,
}

/// Everything that can happen to a student.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StudentEvent {
    /// See [`StudentEnrolled`].
    StudentEnrolled(StudentEnrolled),
    /// See [`StudentEnrolmentUpdated`].
    StudentEnrolmentUpdated(StudentEnrolmentUpdated),
    /// See [`LearningWishRecorded`].
    LearningWishRecorded(LearningWishRecorded),
    /// See [`SupportNeedRecorded`].
    SupportNeedRecorded(SupportNeedRecorded),
}

impl DomainEvent for StudentEvent {
    fn event_type(&self) -> String {
        match self {
            Self::StudentEnrolled(_) => "StudentEnrolled",
            Self::StudentEnrolmentUpdated(_) => "StudentEnrolmentUpdated",
            Self::LearningWishRecorded(_) => "LearningWishRecorded",
            Self::SupportNeedRecorded(_) => "SupportNeedRecorded",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
