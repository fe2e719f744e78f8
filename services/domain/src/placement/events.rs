//! The placement lifecycle events (DESIGN §3): names are the contract.

use chrono::NaiveDate;
use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{
    Allowance, Cents, CompanyId, ContactRef, Crebo, LearningGoal, Level, Note, Pathway, Period,
    Reason, SchoolId, StudentNumber,
};

/// One of the three parties of a placement (the triangle of G2).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Participant {
    /// The student.
    Student,
    /// The school (the BPV-begeleider).
    School,
    /// The company (the praktijkopleider).
    Company,
}

/// Who signs the practice agreement (G1).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Signatory {
    /// The student.
    Student,
    /// The school.
    School,
    /// The company.
    Company,
    /// A legal representative (wettelijk vertegenwoordiger), when the student is
    /// under 18 at the start; the school records this signature.
    LegalRepresentative,
    /// The company as employer, signing the BBL employment contract
    /// (arbeidsovereenkomst) that a leerbaan needs besides the agreement.
    Employer,
}

/// The student as a placement knows them: pseudonymous, and without the date
/// of birth (companies read placements).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementStudent {
    /// The school.
    pub school: SchoolId,
    /// The school's number for the student.
    pub student_id: StudentNumber,
    /// The student's level.
    pub level: Level,
    /// The student's pathway.
    pub pathway: Pathway,
}

/// The school proposed a match of a student with an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchProposed {
    /// The placement.
    pub placement_id: Uuid,
    /// The student.
    pub student: PlacementStudent,
    /// The company.
    pub company_id: CompanyId,
    /// The offer.
    pub offer_id: Uuid,
    /// The qualification.
    pub qualification: Crebo,
    /// The offer's period.
    pub period: Period,
    /// Why this match, in the school's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Note>,
    /// The placement this one replaces (an alternative after a revocation or a report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Uuid>,
    /// The matching round that proposed it (stagematching), when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matching_round_id: Option<Uuid>,
}

/// A student (or the school for them) proposed a placement they found
/// themselves (M2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfFoundPlacementProposed {
    /// The placement.
    pub placement_id: Uuid,
    /// The student.
    pub student: PlacementStudent,
    /// The company.
    pub company_id: CompanyId,
    /// The qualification.
    pub qualification: Crebo,
    /// A note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
    /// Who proposed it: the student or the school.
    pub proposed_by: Participant,
    /// The placement this one replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Uuid>,
}

/// The school approved a self-found placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfFoundPlacementApproved {
    /// The day of approval.
    pub approved_on: NaiveDate,
}

/// The student accepted the match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchAccepted {
    /// The day of acceptance.
    pub accepted_on: NaiveDate,
}

/// The student or the company objected to the match, with reasons (M3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchObjected {
    /// Who objected.
    pub by: Participant,
    /// Why.
    pub reasons: Vec<Reason>,
}

/// The school withdrew the match before the placement started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchWithdrawn {
    /// Why.
    pub reason: Reason,
}

/// A cost the student makes for the placement (C1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CostKind {
    /// Travel not otherwise reimbursed.
    Travel,
    /// Certificate of conduct (verklaring omtrent het gedrag).
    Vog,
    /// Work clothes.
    WorkClothes,
    /// Materials.
    Materials,
    /// Tools.
    Tools,
    /// Phone.
    Phone,
    /// Housing.
    Housing,
    /// Anything else the placement costs the student.
    Other,
}

/// One cost and its amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    /// What for.
    pub kind: CostKind,
    /// How much.
    pub amount: Cents,
}

/// The compensation terms of an agreement (C1-C3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Compensation {
    /// The costs the student makes.
    pub costs: Vec<Cost>,
    /// The expense allowance (onkostenvergoeding): at least the sum of the costs (C1).
    pub expense_allowance: Cents,
    /// The internship allowance (stagevergoeding), C2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internship_allowance: Option<Allowance>,
    /// The hourly wage of a BBL student: at least the statutory minimum (C3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_wage: Option<Cents>,
}

impl Compensation {
    /// The sum of the costs.
    pub fn total_costs(&self) -> Cents {
        Cents(self.costs.iter().map(|c| c.amount.0).sum())
    }
}

/// A kind of contact moment (G2).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    /// At the start.
    Start,
    /// Midway.
    Midway,
    /// At the end.
    End,
    /// Any other.
    Extra,
}

/// How a contact moment was held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContactMode {
    /// Physically at the company (G2 needs at least one).
    OnSite,
    /// By video.
    Video,
    /// By phone.
    Phone,
}

/// A planned contact moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlannedContact {
    /// Which.
    pub kind: ContactKind,
    /// When.
    pub planned_on: NaiveDate,
}

/// The terms of a practice agreement (praktijkovereenkomst).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgreementTerms {
    /// First and last day.
    pub period: Period,
    /// Hours per week.
    pub hours_per_week: u8,
    /// What the student will learn.
    pub learning_goals: Vec<LearningGoal>,
    /// The school's contact (BPV-begeleider), G4.
    pub school_contact: ContactRef,
    /// The company's trainer (praktijkopleider), G4.
    pub company_trainer: ContactRef,
    /// Compensation (C1-C3).
    pub compensation: Compensation,
    /// When the contact moments are planned (G2); otherwise start, midway and end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contact_plan: Vec<PlannedContact>,
}

/// The school drafted (or redrafted) the agreement; earlier signatures lapse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgreementDrafted {
    /// 1 for the first draft, then counting.
    pub agreement_version: u32,
    /// The terms.
    pub terms: AgreementTerms,
    /// Who must sign before the start (G1).
    pub required_signatures: Vec<Signatory>,
    /// For BBL: the statutory minimum hourly wage the wage was held against (C3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_hourly_wage: Option<Cents>,
}

/// A party signed the current draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgreementSigned {
    /// Who.
    pub party: Signatory,
    /// Which draft.
    pub agreement_version: u32,
    /// When.
    pub signed_on: NaiveDate,
}

/// The placement started (G1 and S1 held).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementStarted {
    /// The day.
    pub started_on: NaiveDate,
}

/// School and company held a warm handover for a student with a support need (G3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WarmHandoverHeld {
    /// The day.
    pub held_on: NaiveDate,
}

/// A contact moment was held (G2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactMomentHeld {
    /// The moment's id, for confirmations.
    pub moment_id: Uuid,
    /// Start, midway, end or extra.
    pub kind: ContactKind,
    /// On site, video or phone.
    pub mode: ContactMode,
    /// The day.
    pub held_on: NaiveDate,
    /// Who took part.
    pub participants: Vec<Participant>,
    /// Who recorded it.
    pub recorded_by: Participant,
}

/// Another party confirmed it took part in a contact moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactMomentConfirmed {
    /// The moment.
    pub moment_id: Uuid,
    /// Who confirmed.
    pub party: Participant,
}

/// The school deviated from G2 in an exceptional case, and recorded why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactMomentRequirementWaived {
    /// Why.
    pub reason: Reason,
}

/// The placement ended as planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementCompleted {
    /// The day.
    pub completed_on: NaiveDate,
}

/// Why a placement was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InterruptionCause {
    /// The school decided.
    School,
    /// SBB revoked the company's recognition (S1, D5).
    RecognitionRevoked,
}

/// The placement ended early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementInterrupted {
    /// Why, in words.
    pub reason: Reason,
    /// The cause.
    pub cause: InterruptionCause,
    /// The day.
    pub interrupted_on: NaiveDate,
    /// The event that triggered it, when it was a reaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction_to: Option<String>,
}

/// The student rated the guidance of school and company (G4), 1-5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuidanceRated {
    /// The school's guidance.
    #[schemars(range(min = 1, max = 5))]
    pub school_score: u8,
    /// The company's guidance.
    #[schemars(range(min = 1, max = 5))]
    pub company_score: u8,
}

/// What happened to the company's recognition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecognitionChange {
    /// Suspended (D5): at risk, cannot start.
    Suspended,
    /// Revoked (S1): cannot start; an alternative is needed.
    Revoked,
}

/// The placement noticed that its company's recognition was suspended or
/// revoked: it is at risk and cannot start (S1, D5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecognitionSuspensionNoticed {
    /// Suspended or revoked.
    pub change: RecognitionChange,
    /// The company event that triggered it (`company:<id>:<sequence>`).
    pub reaction_to: String,
}

/// The company's recognition was reinstated: the risk cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecognitionReinstatementNoticed {
    /// The company event that triggered it.
    pub reaction_to: String,
}

/// The school proposed an alternative placement for this one (D5, S1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlternativePlacementOffered {
    /// The new placement.
    pub alternative_placement_id: Uuid,
    /// The proposal that triggered it.
    pub reaction_to: String,
}

/// Everything that can happen to a placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PlacementEvent {
    /// See [`MatchProposed`].
    MatchProposed(MatchProposed),
    /// See [`SelfFoundPlacementProposed`].
    SelfFoundPlacementProposed(SelfFoundPlacementProposed),
    /// See [`SelfFoundPlacementApproved`].
    SelfFoundPlacementApproved(SelfFoundPlacementApproved),
    /// See [`MatchAccepted`].
    MatchAccepted(MatchAccepted),
    /// See [`MatchObjected`].
    MatchObjected(MatchObjected),
    /// See [`MatchWithdrawn`].
    MatchWithdrawn(MatchWithdrawn),
    /// See [`AgreementDrafted`].
    AgreementDrafted(AgreementDrafted),
    /// See [`AgreementSigned`].
    AgreementSigned(AgreementSigned),
    /// See [`PlacementStarted`].
    PlacementStarted(PlacementStarted),
    /// See [`WarmHandoverHeld`].
    WarmHandoverHeld(WarmHandoverHeld),
    /// See [`ContactMomentHeld`].
    ContactMomentHeld(ContactMomentHeld),
    /// See [`ContactMomentConfirmed`].
    ContactMomentConfirmed(ContactMomentConfirmed),
    /// See [`ContactMomentRequirementWaived`].
    ContactMomentRequirementWaived(ContactMomentRequirementWaived),
    /// See [`PlacementCompleted`].
    PlacementCompleted(PlacementCompleted),
    /// See [`PlacementInterrupted`].
    PlacementInterrupted(PlacementInterrupted),
    /// See [`GuidanceRated`].
    GuidanceRated(GuidanceRated),
    /// See [`RecognitionSuspensionNoticed`].
    RecognitionSuspensionNoticed(RecognitionSuspensionNoticed),
    /// See [`RecognitionReinstatementNoticed`].
    RecognitionReinstatementNoticed(RecognitionReinstatementNoticed),
    /// See [`AlternativePlacementOffered`].
    AlternativePlacementOffered(AlternativePlacementOffered),
}

/// Every placement event type, in lifecycle order (for the catalog and tests).
pub const PLACEMENT_EVENT_TYPES: [&str; 19] = [
    "MatchProposed",
    "SelfFoundPlacementProposed",
    "SelfFoundPlacementApproved",
    "MatchAccepted",
    "MatchObjected",
    "MatchWithdrawn",
    "AgreementDrafted",
    "AgreementSigned",
    "PlacementStarted",
    "WarmHandoverHeld",
    "ContactMomentHeld",
    "ContactMomentConfirmed",
    "ContactMomentRequirementWaived",
    "PlacementCompleted",
    "PlacementInterrupted",
    "GuidanceRated",
    "RecognitionSuspensionNoticed",
    "RecognitionReinstatementNoticed",
    "AlternativePlacementOffered",
];

impl DomainEvent for PlacementEvent {
    fn event_type(&self) -> String {
        let index = match self {
            Self::MatchProposed(_) => 0,
            Self::SelfFoundPlacementProposed(_) => 1,
            Self::SelfFoundPlacementApproved(_) => 2,
            Self::MatchAccepted(_) => 3,
            Self::MatchObjected(_) => 4,
            Self::MatchWithdrawn(_) => 5,
            Self::AgreementDrafted(_) => 6,
            Self::AgreementSigned(_) => 7,
            Self::PlacementStarted(_) => 8,
            Self::WarmHandoverHeld(_) => 9,
            Self::ContactMomentHeld(_) => 10,
            Self::ContactMomentConfirmed(_) => 11,
            Self::ContactMomentRequirementWaived(_) => 12,
            Self::PlacementCompleted(_) => 13,
            Self::PlacementInterrupted(_) => 14,
            Self::GuidanceRated(_) => 15,
            Self::RecognitionSuspensionNoticed(_) => 16,
            Self::RecognitionReinstatementNoticed(_) => 17,
            Self::AlternativePlacementOffered(_) => 18,
        };
        PLACEMENT_EVENT_TYPES[index].to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
