//! The facts a company's history is made of. Their names and payloads are a
//! public contract: the feed serves them and `schemas/` describes each version.

use chrono::NaiveDate;
use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{CompanyId, CompanyName, Crebo, Location, Reason, Region, Sector};

/// SBB registered a learning company.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompanyRegistered {
    /// SBB's id of the company.
    pub company_id: CompanyId,
    /// Trade name.
    pub name: CompanyName,
    /// Economic sector.
    pub sector: Sector,
    /// Labour-market region.
    pub region: Region,
    /// Where the company is, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// SBB recognised the company for a qualification (erkenning), or renewed that
/// recognition after reassessment (S1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecognitionGranted {
    /// The qualification (crebo code).
    pub qualification: Crebo,
    /// The day SBB granted it.
    pub granted_on: NaiveDate,
    /// The last day the recognition holds without reassessment.
    pub valid_until: NaiveDate,
}

/// SBB suspended all of the company's recognitions (D5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecognitionSuspended {
    /// Why, in SBB's words.
    pub reason: Reason,
    /// The SBB investigation this suspension belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub investigation_id: Option<Uuid>,
}

/// SBB lifted the suspension (D5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecognitionReinstated {
    /// Why, in SBB's words.
    pub reason: Reason,
}

/// SBB revoked the recognition for one qualification, or for all of them when
/// no qualification is named (D5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecognitionRevoked {
    /// Why, in SBB's words.
    pub reason: Reason,
    /// The one qualification revoked; absent means the whole company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualification: Option<Crebo>,
}

/// The company declared whether it takes part in objective matching rounds
/// (M4: a company may opt out; the number that do is monitored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchingParticipationSet {
    /// Whether its open offers are in play in schools' matching rounds.
    pub participates: bool,
}

/// Everything that can happen to a company.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CompanyEvent {
    /// See [`CompanyRegistered`].
    CompanyRegistered(CompanyRegistered),
    /// See [`RecognitionGranted`].
    RecognitionGranted(RecognitionGranted),
    /// See [`RecognitionSuspended`].
    RecognitionSuspended(RecognitionSuspended),
    /// See [`RecognitionReinstated`].
    RecognitionReinstated(RecognitionReinstated),
    /// See [`RecognitionRevoked`].
    RecognitionRevoked(RecognitionRevoked),
    /// See [`MatchingParticipationSet`].
    MatchingParticipationSet(MatchingParticipationSet),
}

impl DomainEvent for CompanyEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CompanyRegistered(_) => "CompanyRegistered",
            Self::RecognitionGranted(_) => "RecognitionGranted",
            Self::RecognitionSuspended(_) => "RecognitionSuspended",
            Self::RecognitionReinstated(_) => "RecognitionReinstated",
            Self::RecognitionRevoked(_) => "RecognitionRevoked",
            Self::MatchingParticipationSet(_) => "MatchingParticipationSet",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        // Every company event is at its first version; the catalog lists each
        // version that has a schema, and upcasters lift older ones on read.
        "1".to_owned()
    }
}
