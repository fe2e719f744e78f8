//! The facts of an offer's history.

use chrono::NaiveDate;
use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{
    Allowance, CompanyId, Crebo, LearningOpportunity, Level, Location, Period, Reason, Region,
};

/// A company published a placement offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferPublished {
    /// The offer's id.
    pub offer_id: Uuid,
    /// The company.
    pub company_id: CompanyId,
    /// The qualification (crebo code) it is for.
    pub qualification: Crebo,
    /// The levels it suits.
    pub levels: Vec<Level>,
    /// How many students it can take.
    pub slots: u32,
    /// When.
    pub period: Period,
    /// Hours per week.
    pub hours_per_week: u8,
    /// The labour-market region.
    pub region: Region,
    /// Where, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// What a student can learn there.
    pub learning_opportunities: Vec<LearningOpportunity>,
    /// The internship allowance offered (C2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internship_allowance: Option<Allowance>,
    /// Whether objective matching may propose it (M4).
    pub open_for_matching: bool,
    /// The day it was published.
    pub published_on: NaiveDate,
}

/// The company withdrew the offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferWithdrawn {
    /// Why, if the company says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

/// A proposed placement took one of the offer's slots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferSlotReserved {
    /// The placement.
    pub placement_id: Uuid,
}

/// A placement that ended early gave its slot back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferSlotReleased {
    /// The placement.
    pub placement_id: Uuid,
}

/// Everything that can happen to an offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OfferEvent {
    /// See [`OfferPublished`].
    OfferPublished(OfferPublished),
    /// See [`OfferWithdrawn`].
    OfferWithdrawn(OfferWithdrawn),
    /// See [`OfferSlotReserved`].
    OfferSlotReserved(OfferSlotReserved),
    /// See [`OfferSlotReleased`].
    OfferSlotReleased(OfferSlotReleased),
}

impl DomainEvent for OfferEvent {
    fn event_type(&self) -> String {
        match self {
            Self::OfferPublished(_) => "OfferPublished",
            Self::OfferWithdrawn(_) => "OfferWithdrawn",
            Self::OfferSlotReserved(_) => "OfferSlotReserved",
            Self::OfferSlotReleased(_) => "OfferSlotReleased",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
