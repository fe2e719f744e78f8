//! The facts of a matching round (a public contract, like every event).

use chrono::NaiveDate;
use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use stagepact_matching::{MatchingOutcome, Settings, Variant};
use uuid::Uuid;

use crate::values::{Crebo, Period, SchoolId, StudentNumber};

/// A school opened a matching round (stagematching): who is matched, for which
/// period, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchingRoundOpened {
    /// The round (placement ids derive from it).
    pub round_id: Uuid,
    /// The school.
    pub school: SchoolId,
    /// The cohort matched: the school year the students started.
    pub cohort: u16,
    /// The placement period: offers in play overlap it.
    pub period: Period,
    /// Only this qualification, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualification: Option<Crebo>,
    /// One proposal per student, or two introductions each (M4).
    pub variant: Variant,
    /// The candidates the school named; when absent, its first-year BOL
    /// students of the cohort with a learning wish and no placement for the
    /// period (M2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student_ids: Option<Vec<StudentNumber>>,
    /// The day.
    pub opened_on: NaiveDate,
}

/// Why a student the school named is not in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeftOutReason {
    /// The student recorded no learning wish: matching has nothing to go on (M1).
    NoLearningWish,
    /// The student has a placement (or a pending one) for the round's period.
    HasPlacement,
    /// The student is enrolled in another qualification than the round's.
    OtherQualification,
}

impl LeftOutReason {
    /// The reason as the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoLearningWish => "no_learning_wish",
            Self::HasPlacement => "has_placement",
            Self::OtherQualification => "other_qualification",
        }
    }
}

/// A named student who is not in a run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeftOut {
    /// The school's number for the student.
    pub student_id: StudentNumber,
    /// Why.
    pub reason: LeftOutReason,
}

/// The engine ran the round on the input of the moment and this is its result.
/// The students are the school's numbers and the offers their ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchingRoundRun {
    /// 1 for the first run of the round, then 2, …
    pub run: u32,
    /// SHA-256 (hex) of the engine's input: a run on the same input gives
    /// the same result, so it is not recorded again.
    pub input_digest: String,
    /// How fit was weighed.
    pub settings: Settings,
    /// Named students not in the run, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<LeftOut>,
    /// The proposals with their explanations, the unmatched students with the
    /// reason, and the metrics.
    pub outcome: MatchingOutcome,
    /// How long the engine took, in milliseconds.
    pub run_time_ms: u64,
}

/// A proposal of the round that becomes a placement (`MatchProposed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoundMatch {
    /// The school's number for the student.
    pub student_id: StudentNumber,
    /// The offer.
    pub offer_id: Uuid,
    /// The placement it becomes: derived from the round, student and offer, so
    /// carrying it out twice proposes it once.
    pub placement_id: Uuid,
}

/// The school published the round's latest run. A single round's proposals
/// become placements at once; a two-and-two round's proposals are
/// introductions, settled afterwards (M4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchingRoundPublished {
    /// The run published.
    pub run: u32,
    /// The matches to propose (none for two-and-two: see `MatchingRoundSettled`).
    pub matches: Vec<RoundMatch>,
    /// The day.
    pub published_on: NaiveDate,
}

/// After the introductions of a two-and-two round, the school settled these
/// students with one of the two companies they met (M4; no click interview:
/// the company does not choose).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchingRoundSettled {
    /// The matches to propose.
    pub matches: Vec<RoundMatch>,
}

/// A match that could not become a placement when it was carried out: the
/// offer filled up or was withdrawn, or the company may no longer host (S1,
/// S2). The student is back in the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LapsedMatch {
    /// The placement it would have been.
    pub placement_id: Uuid,
    /// Why, in words.
    pub reason: String,
    /// The rule that refused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// The published (or settled) matches were carried out: these placements
/// were proposed, these lapsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchingRoundCarriedOut {
    /// The placements proposed (`MatchProposed`).
    pub placed: Vec<Uuid>,
    /// The matches that lapsed.
    pub lapsed: Vec<LapsedMatch>,
}

/// Everything that can happen to a matching round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MatchingRoundEvent {
    /// See [`MatchingRoundOpened`].
    MatchingRoundOpened(MatchingRoundOpened),
    /// See [`MatchingRoundRun`].
    MatchingRoundRun(Box<MatchingRoundRun>),
    /// See [`MatchingRoundPublished`].
    MatchingRoundPublished(MatchingRoundPublished),
    /// See [`MatchingRoundSettled`].
    MatchingRoundSettled(MatchingRoundSettled),
    /// See [`MatchingRoundCarriedOut`].
    MatchingRoundCarriedOut(MatchingRoundCarriedOut),
}

impl DomainEvent for MatchingRoundEvent {
    fn event_type(&self) -> String {
        match self {
            Self::MatchingRoundOpened(_) => "MatchingRoundOpened",
            Self::MatchingRoundRun(_) => "MatchingRoundRun",
            Self::MatchingRoundPublished(_) => "MatchingRoundPublished",
            Self::MatchingRoundSettled(_) => "MatchingRoundSettled",
            Self::MatchingRoundCarriedOut(_) => "MatchingRoundCarriedOut",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
