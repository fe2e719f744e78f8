//! What the engine reads: students' learning wishes and companies' offers, and the
//! round's settings. Nothing else can be passed (every object refuses unknown
//! fields), so nothing personal can reach a proposal (M1, M5, DESIGN §6).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Declares a string id newtype; its serde form is the plain string.
macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(raw: &str) -> Self {
                Self(raw.to_owned())
            }
        }
    };
}

id!(
    /// A student's pseudonymous id (DESIGN §6: no names are needed to match).
    StudentId
);
id!(
    /// A placement offer's id.
    OfferId
);
id!(
    /// The id of the recognised learning company (leerbedrijf) that publishes an offer.
    CompanyId
);

/// The input of one matching round (stagematching).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchingInput {
    /// The candidates: students with a learning wish and no placement yet (M2).
    pub students: Vec<Student>,
    /// The offers in play: open for matching, of participating recognised
    /// companies (M4, S1), with their free slots.
    pub offers: Vec<Offer>,
    /// How fit is weighed and how the round runs.
    #[serde(default)]
    pub settings: Settings,
}

/// A student as matching sees them: the learning wish (leerwens) and the
/// enrolment's qualification and level, nothing personal (M1). There is no field
/// for a D2 ground, personality, date of birth or support need (M5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Student {
    /// The student's pseudonymous id; ties are broken by it.
    pub id: StudentId,
    /// The qualification (crebo code) the student is enrolled in.
    pub qualification: String,
    /// The level of the qualification, 1-4.
    #[schemars(range(min = 1, max = 4))]
    pub level: u8,
    /// What the student wants to learn.
    #[serde(default)]
    pub learning_goals: Vec<String>,
    /// What the student can already do.
    #[serde(default)]
    pub competences: Vec<String>,
    /// Sectors the student would like to work in.
    #[serde(default)]
    pub sectors: Vec<String>,
    /// Where the student wants a placement; used when a location is missing.
    pub region: String,
    /// Where the student travels from; without it only offers in the same
    /// region are within reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// How far the student is willing to travel, in km; without it, the round's
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_travel_km: Option<u32>,
    /// Companies the student is not proposed to again: the student or the
    /// company objected to an earlier match between them (M3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_companies: Vec<CompanyId>,
}

/// A placement offer as matching sees it: what the company can offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    /// The offer's id; ties are broken by it.
    pub id: OfferId,
    /// The company that publishes it.
    pub company: CompanyId,
    /// The qualification (crebo code) the company is recognised for (S1).
    pub qualification: String,
    /// The levels the offer accepts, 1-4.
    pub levels: Vec<u8>,
    /// Free slots: how many students the offer can still take.
    pub slots: u32,
    /// What a student can learn there; matched against learning goals and
    /// competences.
    #[serde(default)]
    pub learning_opportunities: Vec<String>,
    /// The company's sector.
    pub sector: String,
    /// The region the offer is in.
    pub region: String,
    /// Where the placement is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// A point on the map, in degrees (WGS 84).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Latitude, -90 to 90.
    #[schemars(range(min = -90.0, max = 90.0))]
    pub lat: f64,
    /// Longitude, -180 to 180.
    #[schemars(range(min = -180.0, max = 180.0))]
    pub lon: f64,
}

/// How a round weighs fit and which variant it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The weight of each fit criterion.
    pub weights: FitWeights,
    /// The travel limit of a student who gave none, in km.
    pub default_max_travel_km: u32,
    /// One proposal per student, or the two-and-two variant (M4).
    pub variant: Variant,
}

impl Default for Settings {
    fn default() -> Self {
        Self { weights: FitWeights::default(), default_max_travel_km: 40, variant: Variant::Single }
    }
}

/// The points each fit criterion can earn; they add up to 1000, so a fit is in
/// thousandths of a perfect fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FitWeights {
    /// Earned in proportion to the learning goals the offer's learning
    /// opportunities cover.
    pub learning_goals: u16,
    /// Earned in proportion to the competences the offer's learning
    /// opportunities build on.
    pub competences: u16,
    /// Earned when the offer's sector is one the student wishes.
    pub sector: u16,
    /// Earned in proportion to how much of the travel limit is left unused.
    pub distance: u16,
}

impl FitWeights {
    /// What the weights must add up to.
    pub const TOTAL: u32 = 1000;

    /// The sum of the weights.
    pub fn total(&self) -> u32 {
        u32::from(self.learning_goals)
            + u32::from(self.competences)
            + u32::from(self.sector)
            + u32::from(self.distance)
    }
}

impl Default for FitWeights {
    /// Learning goals first (the pact matches on the learning wish), then
    /// competences, sector and distance alike.
    fn default() -> Self {
        Self { learning_goals: 400, competences: 200, sector: 200, distance: 200 }
    }
}

/// Which kind of round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// Each student gets at most one proposal; an offer at most one per slot.
    #[default]
    Single,
    /// M4's variant: each student meets up to two companies, and each offer up
    /// to two students per slot.
    TwoAndTwo,
}
