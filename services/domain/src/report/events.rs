//! The events of a report (melding) at the school's reporting point.

use chrono::NaiveDate;
use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::protected::Sealed;
use crate::values::{CompanyId, SchoolId, StudentNumber};

/// What a student reports (D1, S3, C4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// Internship discrimination (stagediscriminatie) on one of the D2 grounds.
    Discrimination,
    /// Improper use of an intern as a worker (S3).
    Misuse,
    /// An unsafe learning or working environment.
    UnsafeEnvironment,
    /// The company asked a fee for taking the student (C4: never allowed).
    PlacementFeeRequested,
}

impl ReportKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Discrimination => "discrimination",
            Self::Misuse => "misuse",
            Self::UnsafeEnvironment => "unsafe_environment",
            Self::PlacementFeeRequested => "placement_fee_requested",
        }
    }
}

/// A ground of discrimination (D2, from the pact's notes and the Dutch equal
/// treatment law). Special-category data: only ever stored sealed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Ground {
    /// Religion (godsdienst).
    Religion,
    /// Belief (levensovertuiging).
    Belief,
    /// Political opinion (politieke gezindheid).
    PoliticalOpinion,
    /// Race or origin (ras, afkomst).
    Origin,
    /// Sex (geslacht).
    Sex,
    /// Gender identity (genderidentiteit).
    GenderIdentity,
    /// Nationality (nationaliteit).
    Nationality,
    /// Sexual orientation (seksuele gerichtheid).
    SexualOrientation,
    /// Civil status (burgerlijke staat).
    CivilStatus,
    /// Disability or chronic illness (handicap of chronische ziekte).
    DisabilityOrIllness,
    /// Age (leeftijd).
    Age,
    /// Another ground.
    Other,
}

impl Ground {
    /// Every ground, in the order of the pact's list.
    pub const ALL: [Ground; 12] = [
        Self::Religion,
        Self::Belief,
        Self::PoliticalOpinion,
        Self::Origin,
        Self::Sex,
        Self::GenderIdentity,
        Self::Nationality,
        Self::SexualOrientation,
        Self::CivilStatus,
        Self::DisabilityOrIllness,
        Self::Age,
        Self::Other,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Religion => "religion",
            Self::Belief => "belief",
            Self::PoliticalOpinion => "political_opinion",
            Self::Origin => "origin",
            Self::Sex => "sex",
            Self::GenderIdentity => "gender_identity",
            Self::Nationality => "nationality",
            Self::SexualOrientation => "sexual_orientation",
            Self::CivilStatus => "civil_status",
            Self::DisabilityOrIllness => "disability_or_illness",
            Self::Age => "age",
            Self::Other => "other",
        }
    }
}

/// A student filed a report at their school's reporting point (D1). The
/// description and the grounds are sealed under the student's key (DESIGN §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportFiled {
    /// The student's school, which follows the report up.
    pub school: SchoolId,
    /// The reporting student.
    pub student_id: StudentNumber,
    /// The company reported.
    pub company_id: CompanyId,
    /// The student's placement at that company, if the report concerns one
    /// (students may also report discrimination when applying).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_id: Option<Uuid>,
    /// What is reported.
    pub kind: ReportKind,
    /// The student's account, sealed: a string.
    pub description: Sealed,
    /// The grounds, sealed: a list of [`Ground`] (empty for other kinds than
    /// discrimination when none were given).
    pub grounds: Sealed,
    /// Whether the student wants a replacement placement (D1: always offered).
    pub wants_replacement_placement: bool,
    /// Whether the student consents to an anonymised signal to SBB (D4).
    pub consent_to_forward: bool,
    /// The day it was filed.
    pub filed_on: NaiveDate,
}

/// The school acknowledged the report (D4: every report is followed up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportAcknowledged {
    /// The day.
    pub acknowledged_on: NaiveDate,
}

/// Who took part in a conversation about a report (D3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationForm {
    /// Student, company and school together: only where that is safe for the student.
    Triangle,
    /// School and company without the student.
    SchoolAndCompany,
}

/// The school held a conversation about the report (D3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportConversationRecorded {
    /// Who took part.
    pub form: ConversationForm,
    /// The day it was held.
    pub held_on: NaiveDate,
    /// The school's check that the conversation was safe for the student.
    pub safe_for_student: bool,
}

/// The school offered the student a replacement placement (D1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplacementPlacementOffered {
    /// The new placement, made with the placement operations.
    pub placement_id: Uuid,
}

/// The student gave or withdrew consent to forward an anonymised signal (D4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardingConsentSet {
    /// The consent now.
    pub consent: bool,
}

/// The school forwarded an anonymised signal to SBB (D4). Only the signal's id is
/// kept here: the signal itself carries nothing that leads back to the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalForwarded {
    /// The signal SBB received.
    pub signal_id: Uuid,
}

/// The school escalated the report to SBB's complaint desk (D5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportEscalated {
    /// The complaint SBB receives.
    pub complaint_id: Uuid,
    /// The school's summary for SBB, sealed under the student's key: it is
    /// about the student's report, so it is erased with their data.
    pub summary: Sealed,
}

/// How the school closed a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportOutcome {
    /// Resolved with the company.
    Resolved,
    /// The student continues at a replacement placement.
    Replaced,
    /// Handed over to SBB: its investigation follows it up.
    HandedToSbb,
    /// The student wanted no further action.
    NoFurtherAction,
    /// Looked into and found unfounded.
    Unfounded,
}

/// The school closed the report after following it up (D4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportClosed {
    /// The outcome.
    pub outcome: ReportOutcome,
    /// The day.
    pub closed_on: NaiveDate,
}

/// Everything that can happen to a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReportEvent {
    /// See [`ReportFiled`].
    ReportFiled(ReportFiled),
    /// See [`ReportAcknowledged`].
    ReportAcknowledged(ReportAcknowledged),
    /// See [`ReportConversationRecorded`].
    ReportConversationRecorded(ReportConversationRecorded),
    /// See [`ReplacementPlacementOffered`].
    ReplacementPlacementOffered(ReplacementPlacementOffered),
    /// See [`ForwardingConsentSet`].
    ForwardingConsentSet(ForwardingConsentSet),
    /// See [`SignalForwarded`].
    SignalForwarded(SignalForwarded),
    /// See [`ReportEscalated`].
    ReportEscalated(ReportEscalated),
    /// See [`ReportClosed`].
    ReportClosed(ReportClosed),
}

impl DomainEvent for ReportEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ReportFiled(_) => "ReportFiled",
            Self::ReportAcknowledged(_) => "ReportAcknowledged",
            Self::ReportConversationRecorded(_) => "ReportConversationRecorded",
            Self::ReplacementPlacementOffered(_) => "ReplacementPlacementOffered",
            Self::ForwardingConsentSet(_) => "ForwardingConsentSet",
            Self::SignalForwarded(_) => "SignalForwarded",
            Self::ReportEscalated(_) => "ReportEscalated",
            Self::ReportClosed(_) => "ReportClosed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
