//! Value types parsed once at the edge: inside the domain a value of one of these
//! types is valid by construction.

use std::fmt;

use schemars::{JsonSchema, json_schema};
use serde::{Deserialize, Serialize};

/// Implements `JsonSchema` for a string newtype whose serde form is a plain
/// string (schemars cannot derive through `try_from`).
macro_rules! string_schema {
    ($name:ident, $schema:expr) => {
        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                $schema
            }
        }
    };
}
pub(crate) use string_schema;

/// Why a raw value was refused; the API names the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

/// Defines a trimmed, length-bounded text newtype.
macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        bounded_text!($(#[$doc])* $name, $max, |c: char| c.is_control());
    };
    ($(#[$doc:meta])* $name:ident, $max:expr, multiline) => {
        // Line breaks and tabs are part of an account in a person's own words.
        bounded_text!($(#[$doc])* $name, $max, |c: char| c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
    };
    ($(#[$doc:meta])* $name:ident, $max:expr, $refused:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        string_schema!($name, json_schema!({ "type": "string", "minLength": 1, "maxLength": $max }));

        impl $name {
            /// Longest accepted value, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Trims the value and refuses an empty or overlong one.
            pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
                let trimmed = raw.trim();
                if trimmed.is_empty() {
                    return Err(InvalidValue("must not be empty".into()));
                }
                if trimmed.chars().count() > Self::MAX_CHARS {
                    return Err(InvalidValue(format!("must be at most {} characters", Self::MAX_CHARS)));
                }
                if trimmed.chars().any($refused) {
                    return Err(InvalidValue("must not contain control characters".into()));
                }
                Ok(Self(trimmed.to_owned()))
            }

            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

bounded_text!(
    /// A learning company's trade name as SBB registered it.
    CompanyName,
    200
);
bounded_text!(
    /// The economic sector a company belongs to (SBB's sector names).
    Sector,
    100
);
bounded_text!(
    /// The labour-market region a company or student is in.
    Region,
    100
);
bounded_text!(
    /// The reason someone gives for a decision: SBB for a recognition decision,
    /// a student or company for an objection, a school for a withdrawal.
    Reason,
    2000
);

/// Defines a path-safe identifier newtype: 1–64 ASCII letters, digits, `-` and
/// `_`, starting with a letter or digit, so it can stand in a URL path unescaped
/// and be joined with `:` into a compound aggregate id.
macro_rules! path_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        string_schema!(
            $name,
            json_schema!({ "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]*$" })
        );

        impl $name {
            /// Accepts 1–64 ASCII letters, digits, `-` and `_`, starting with a
            /// letter or digit.
            pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
                let ok_start = raw.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
                let ok_chars = raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !ok_start || !ok_chars || raw.len() > 64 {
                    return Err(InvalidValue(
                        "must be 1-64 letters, digits, '-' or '_', starting with a letter or digit".into(),
                    ));
                }
                Ok(Self(raw.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

path_id!(
    /// SBB's id of a learning company (erkend leerbedrijf); it is also the
    /// aggregate id of the company and appears in API paths.
    CompanyId
);
path_id!(
    /// A school's code (BRIN), the `org` of a school's tokens.
    SchoolId
);
path_id!(
    /// The school's own number for a student (studentnummer): pseudonymous
    /// outside the school, unique only within it (DESIGN §6).
    StudentNumber
);

/// A qualification code from the CREBO register (Centraal Register
/// Beroepsopleidingen): exactly five digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Crebo([u8; 5]);

string_schema!(Crebo, json_schema!({ "type": "string", "pattern": "^[0-9]{5}$" }));

impl Crebo {
    /// Accepts exactly five ASCII digits (leading zeros are significant).
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let bytes: [u8; 5] = raw
            .as_bytes()
            .try_into()
            .map_err(|_| InvalidValue("must be a 5-digit crebo code".into()))?;
        if !bytes.iter().all(u8::is_ascii_digit) {
            return Err(InvalidValue("must be a 5-digit crebo code".into()));
        }
        Ok(Self(bytes))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Invariant: only ASCII digits are ever stored (see `parse`).
        std::str::from_utf8(&self.0).unwrap_or("00000")
    }
}

impl TryFrom<String> for Crebo {
    type Error = InvalidValue;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Crebo> for String {
    fn from(value: Crebo) -> Self {
        value.as_str().to_owned()
    }
}

impl fmt::Display for Crebo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A point on the map (WGS84), used later for travel distances.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Latitude in degrees, -90 to 90.
    #[schemars(range(min = -90.0, max = 90.0))]
    pub lat: f64,
    /// Longitude in degrees, -180 to 180.
    #[schemars(range(min = -180.0, max = 180.0))]
    pub lon: f64,
}

impl Location {
    /// Refuses coordinates outside the globe (and NaN).
    pub fn parse(lat: f64, lon: f64) -> Result<Self, InvalidValue> {
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            return Err(InvalidValue("lat must be within -90..90 and lon within -180..180".into()));
        }
        Ok(Self { lat, lon })
    }

    /// The point rounded to 0.01° (about 1.1 km north-south, 0.7 km east-west
    /// here): precise enough to weigh a journey, too coarse to be an address.
    pub fn coarse(self) -> Self {
        let round = |degrees: f64| (degrees * 100.0).round() / 100.0;
        Self { lat: round(self.lat), lon: round(self.lon) }
    }
}

bounded_text!(
    /// Free text that explains or annotates a step (an explanation of a match,
    /// a note on a self-found placement).
    Note,
    2000
);
bounded_text!(
    /// A student's own account in a report, or a school's summary for SBB's
    /// complaint desk. A report's description is sealed before it is stored.
    Description,
    10000,
    multiline
);
bounded_text!(
    /// One learning goal (leerdoel) of a student or an agreement.
    LearningGoal,
    200
);
bounded_text!(
    /// One competence (competentie) a student has or wants to develop.
    Competence,
    200
);
bounded_text!(
    /// One thing a company offers to learn (leermogelijkheid).
    LearningOpportunity,
    200
);
bounded_text!(
    /// A reference to a person in an organisation's own systems — a staff code,
    /// never a name (DESIGN §6: no names are stored). Used for the school contact
    /// (BPV-begeleider) and the company trainer (praktijkopleider), G4.
    ContactRef,
    100
);

/// The level of an mbo programme (niveau), 1 to 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Level(u8);

impl JsonSchema for Level {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Level".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        json_schema!({ "type": "integer", "minimum": 1, "maximum": 4 })
    }
}

impl Level {
    /// Accepts 1 to 4.
    pub fn parse(raw: i64) -> Result<Self, InvalidValue> {
        match u8::try_from(raw) {
            Ok(level @ 1..=4) => Ok(Self(level)),
            _ => Err(InvalidValue("must be a level from 1 to 4".into())),
        }
    }

    /// The level as a number.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Level {
    type Error = InvalidValue;
    fn try_from(raw: u8) -> Result<Self, Self::Error> {
        Self::parse(i64::from(raw))
    }
}

impl From<Level> for u8 {
    fn from(level: Level) -> Self {
        level.0
    }
}

/// How a student learns: the learning pathway (leerweg).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pathway {
    /// School-based, with internships (beroepsopleidende leerweg).
    Bol,
    /// Work-based: a job with an employment contract plus school (beroepsbegeleidende leerweg).
    Bbl,
    /// Contract education for third parties (derde leerweg).
    Derde,
}

impl Pathway {
    /// The pathway as it appears in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bol => "bol",
            Self::Bbl => "bbl",
            Self::Derde => "derde",
        }
    }
}

/// An amount of money in euro cents: never a float inside the domain.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(transparent)]
pub struct Cents(pub i64);

impl Cents {
    /// The largest amount accepted anywhere: one million euro.
    pub const MAX: Cents = Cents(100_000_000);

    /// Parses a euro amount as sent in JSON (a number with at most two decimals),
    /// refusing negative, fractional-cent, non-finite and absurdly large amounts.
    pub fn from_euros(euros: f64) -> Result<Self, InvalidValue> {
        if !euros.is_finite() || euros < 0.0 {
            return Err(InvalidValue("must be an amount in euros, 0 or more".into()));
        }
        let cents = (euros * 100.0).round();
        if (euros * 100.0 - cents).abs() > 1e-6 {
            return Err(InvalidValue("must have at most two decimals".into()));
        }
        if cents > Self::MAX.0 as f64 {
            return Err(InvalidValue("must be at most 1000000 euros".into()));
        }
        // In range by the checks above, so the conversion is exact.
        Ok(Self(cents as i64))
    }

    /// The amount in euros, for JSON.
    pub fn euros(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "€{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// A span of days, both ends included, the start not after the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// First day.
    pub start: chrono::NaiveDate,
    /// Last day.
    pub end: chrono::NaiveDate,
}

impl Period {
    /// Refuses a period that ends before it starts.
    pub fn parse(start: chrono::NaiveDate, end: chrono::NaiveDate) -> Result<Self, InvalidValue> {
        if end < start {
            return Err(InvalidValue("end must not be before start".into()));
        }
        Ok(Self { start, end })
    }

    /// Whether the two periods share a day.
    pub fn overlaps(&self, other: &Period) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    /// The day halfway through.
    pub fn midpoint(&self) -> chrono::NaiveDate {
        self.start + (self.end - self.start) / 2
    }
}

/// How often an internship allowance is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AllowancePer {
    /// Per week.
    Week,
    /// Per month.
    Month,
}

/// An internship allowance (stagevergoeding) on top of the expense allowance (C2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Allowance {
    /// The amount per period.
    pub amount: Cents,
    /// The period.
    pub per: AllowancePer,
}

/// Parses a list of values, refusing an empty or overlong list and naming the
/// first bad item by its index.
pub fn parse_list<T>(
    raw: &[String],
    max_items: usize,
    required: bool,
    parse: impl Fn(&str) -> Result<T, InvalidValue>,
) -> Result<Vec<T>, InvalidValue> {
    if required && raw.is_empty() {
        return Err(InvalidValue("must have at least one item".into()));
    }
    if raw.len() > max_items {
        return Err(InvalidValue(format!("must have at most {max_items} items")));
    }
    raw.iter()
        .enumerate()
        .map(|(i, item)| parse(item).map_err(|e| InvalidValue(format!("item {i}: {e}"))))
        .collect()
}

/// The age in whole years on `day` of someone born on `born`.
pub fn age_on(born: chrono::NaiveDate, day: chrono::NaiveDate) -> u32 {
    day.years_since(born).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crebo_needs_exactly_five_digits() {
        assert_eq!(Crebo::parse("25180").map(|c| c.to_string()), Ok("25180".to_owned()));
        assert_eq!(Crebo::parse("01234").map(|c| c.to_string()), Ok("01234".to_owned()));
        for bad in ["", "1234", "123456", "12a45", "１２３４５", " 2518"] {
            assert!(Crebo::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn company_id_is_path_safe() {
        assert!(CompanyId::parse("100012345").is_ok());
        assert!(CompanyId::parse("lb-42_x").is_ok());
        for bad in ["", "-x", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(CompanyId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(
            CompanyName::parse("  Bakkerij Jansen ").map(String::from),
            Ok("Bakkerij Jansen".to_owned())
        );
        assert!(CompanyName::parse("   ").is_err());
        assert!(CompanyName::parse(&"a".repeat(201)).is_err());
        assert!(Reason::parse("line\u{0}break").is_err());
    }

    #[test]
    fn cents_parse_euros_exactly() {
        assert_eq!(Cents::from_euros(12.5), Ok(Cents(1250)));
        assert_eq!(Cents::from_euros(0.1 + 0.2), Ok(Cents(30)));
        assert!(Cents::from_euros(1.005).is_err());
        assert!(Cents::from_euros(-1.0).is_err());
        assert!(Cents::from_euros(f64::INFINITY).is_err());
        assert!(Cents::from_euros(2e6).is_err());
    }

    #[test]
    fn age_counts_whole_years() {
        let born = chrono::NaiveDate::from_ymd_opt(2008, 3, 1).expect("date");
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).expect("date");
        assert_eq!(age_on(born, day(2026, 2, 28)), 17);
        assert_eq!(age_on(born, day(2026, 3, 1)), 18);
        assert_eq!(age_on(born, day(2000, 1, 1)), 0);
    }

    #[test]
    fn levels_are_one_to_four() {
        assert!(Level::parse(1).is_ok() && Level::parse(4).is_ok());
        assert!(Level::parse(0).is_err() && Level::parse(5).is_err() && Level::parse(-1).is_err());
    }

    #[test]
    fn location_stays_on_the_globe() {
        assert!(Location::parse(52.1, 5.1).is_ok());
        assert!(Location::parse(91.0, 5.1).is_err());
        assert!(Location::parse(f64::NAN, 5.1).is_err());
    }
}

/// A calendar quarter, `2026-Q4`: the finest time an anonymised signal to SBB
/// carries (D4: nothing that leads back to the student, no date finer than a month).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Quarter {
    year: i32,
    quarter: u8,
}

string_schema!(Quarter, json_schema!({ "type": "string", "pattern": "^[0-9]{4}-Q[1-4]$" }));

impl Quarter {
    /// The quarter a day falls in.
    pub fn of(day: chrono::NaiveDate) -> Self {
        use chrono::Datelike;
        // month0 is 0..=11, so the quotient is 0..=3 and fits a u8.
        Self { year: day.year(), quarter: (day.month0() / 3) as u8 + 1 }
    }

    /// Parses `YYYY-Qn`.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let invalid = || InvalidValue("must look like 2026-Q4".into());
        let (year, quarter) = raw.split_once("-Q").ok_or_else(invalid)?;
        let year: i32 = year.parse().map_err(|_| invalid())?;
        let quarter: u8 = quarter.parse().map_err(|_| invalid())?;
        if year.to_string().len() != 4 || !(1..=4).contains(&quarter) {
            return Err(invalid());
        }
        Ok(Self { year, quarter })
    }
}

impl fmt::Display for Quarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-Q{}", self.year, self.quarter)
    }
}

impl TryFrom<String> for Quarter {
    type Error = InvalidValue;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Quarter> for String {
    fn from(value: Quarter) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod multiline_tests {
    use super::*;

    #[test]
    fn d1_a_students_account_keeps_its_paragraphs_but_no_other_control_characters() {
        let account = "First they asked where I am from.\n\nThen:\tno place for me.";
        assert_eq!(Description::parse(account).map(|d| d.to_string()), Ok(account.to_owned()));
        assert!(Description::parse("a\u{0}b").is_err());
        assert!(Reason::parse("one\nline").is_err(), "single-line texts stay single-line");
    }
}
