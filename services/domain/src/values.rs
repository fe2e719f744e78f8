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

/// Why a raw value was refused; the API names the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

/// Defines a trimmed, length-bounded text newtype.
macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
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
                if trimmed.chars().any(char::is_control) {
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
    /// The reason SBB gives for a recognition decision.
    Reason,
    2000
);

/// SBB's id of a learning company (erkend leerbedrijf); it is also the
/// aggregate id of the company and appears in API paths.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CompanyId(String);

string_schema!(
    CompanyId,
    json_schema!({ "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]*$" })
);

impl CompanyId {
    /// Accepts 1–64 ASCII letters, digits, `-` and `_`, starting with a letter or
    /// digit: safe in a URL path without escaping.
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

impl TryFrom<String> for CompanyId {
    type Error = InvalidValue;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<CompanyId> for String {
    fn from(value: CompanyId) -> Self {
        value.0
    }
}

impl fmt::Display for CompanyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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
    fn location_stays_on_the_globe() {
        assert!(Location::parse(52.1, 5.1).is_ok());
        assert!(Location::parse(91.0, 5.1).is_err());
        assert!(Location::parse(f64::NAN, 5.1).is_err());
    }
}
