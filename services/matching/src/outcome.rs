//! What a run returns: proposals with their explanations, the students left
//! unmatched and why, and the round's metrics.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fit::Explanation;
use crate::model::{CompanyId, OfferId, StudentId};

/// The result of a matching round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MatchingOutcome {
    /// The proposed matches, by student id and then offer id.
    pub proposals: Vec<Proposal>,
    /// The students without a proposal, by id, each with the reason.
    pub unmatched: Vec<Unmatched>,
    /// The round's figures.
    pub metrics: Metrics,
}

/// A proposed match (the start of a `MatchProposed` placement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Proposal {
    /// The student.
    pub student: StudentId,
    /// The offer.
    pub offer: OfferId,
    /// The offer's company.
    pub company: CompanyId,
    /// The fit in thousandths: the sum of the explanation's points.
    pub fit: u32,
    /// Why: the criteria that matched and what each weighed.
    pub explanation: Explanation,
}

/// A student the round could not place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Unmatched {
    /// The student.
    pub student: StudentId,
    /// Why.
    pub reason: UnmatchedReason,
}

/// Why a student got no proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UnmatchedReason {
    /// No offer in the round is for the student's qualification.
    NoOfferForQualification,
    /// Offers for the qualification exist, but none accepts the student's level.
    NoOfferAtLevel,
    /// Offers for the qualification and level exist, but none within the
    /// student's travel limit (or, without a location, in their region).
    NoOfferWithinReach,
    /// Every eligible offer is at a company the student is not proposed to
    /// again after an objection (M3).
    OnlyObjectedCompanies,
    /// The student had eligible offers, but every placement of as many students
    /// as possible gives their slots to others.
    SlotsTaken,
}

/// The figures of a round (M4: the number of matched students is monitored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Metrics {
    /// Students in the round.
    pub students: u32,
    /// Offers in the round.
    pub offers: u32,
    /// Free slots in the round's offers.
    pub slots: u64,
    /// Eligible student–offer pairs.
    pub candidate_pairs: u64,
    /// Proposals made.
    pub proposals: u32,
    /// Students with at least one proposal.
    pub matched_students: u32,
    /// `matched_students / students` (0 for an empty round).
    pub matched_share: f64,
    /// The sum of the proposals' fits.
    pub total_fit: u64,
    /// The mean fit of a proposal, in thousandths (0 without proposals).
    pub mean_fit: f64,
    /// Slots no proposal takes.
    pub slots_left: u64,
    /// Pairs of a student and an offer that would both rather have each other:
    /// the student's fit there beats a proposal of theirs (or they have room
    /// for one more), and the offer has a free slot or a proposal with a lower
    /// fit. Placing the most students first can leave some.
    pub blocking_pairs: u64,
}
