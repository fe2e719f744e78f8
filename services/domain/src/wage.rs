//! The statutory minimum (youth) wage table (wettelijk minimum(jeugd)loon) that
//! C3 holds a BBL student's hourly wage against. The table is configuration with
//! its source and date (`config/minimum-wage.json`, embedded as the default and
//! replaceable at run time), because it changes every January and July.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::values::{Cents, Pathway};

/// The table shipped with this build.
const EMBEDDED: &str = include_str!("../../../config/minimum-wage.json");

/// One table, valid from a day until the next table's first day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WagePeriod {
    /// First day this table applies.
    pub valid_from: NaiveDate,
    /// The age from which the adult minimum applies.
    pub adult_age: u32,
    /// The adult minimum per hour.
    pub adult_hourly_cents: i64,
    /// Youth percentages of the adult minimum by age, in per mille.
    pub youth_permille: BTreeMap<u32, i64>,
    /// The lower scale for BBL students by age, in per mille; where an age is
    /// missing the youth scale applies.
    #[serde(default)]
    pub bbl_permille: BTreeMap<u32, i64>,
}

/// The minimum wage table: dated periods with their source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WageTable {
    /// Where the figures come from.
    pub source: String,
    /// When they were recorded here.
    pub recorded_on: NaiveDate,
    /// The tables, in any order.
    pub periods: Vec<WagePeriod>,
}

/// A table that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WageTableError {
    /// The JSON does not have the table's shape.
    #[error("the minimum wage table is not valid JSON of the expected shape: {0}")]
    Shape(#[from] serde_json::Error),
    /// A period is inconsistent.
    #[error("the minimum wage table is inconsistent: {0}")]
    Inconsistent(String),
}

impl WageTable {
    /// The table shipped with this build.
    pub fn embedded() -> Self {
        // Invariant: the embedded file is checked by `embedded_table_is_valid`.
        Self::parse(EMBEDDED).unwrap_or_else(|error| panic!("embedded wage table: {error}"))
    }

    /// Reads and checks a table.
    pub fn parse(json: &str) -> Result<Self, WageTableError> {
        let table: Self = serde_json::from_str(json)?;
        if table.periods.is_empty() {
            return Err(WageTableError::Inconsistent("it has no periods".into()));
        }
        for period in &table.periods {
            let scales = period.youth_permille.values().chain(period.bbl_permille.values());
            if period.adult_hourly_cents <= 0 || scales.clone().any(|p| !(1..=1000).contains(p)) {
                return Err(WageTableError::Inconsistent(format!(
                    "the period from {} has an amount or percentage out of range",
                    period.valid_from
                )));
            }
        }
        Ok(table)
    }

    /// The minimum hourly wage on `day` for a student of `age` on `pathway`, or
    /// `None` when no period of the table covers that day.
    pub fn minimum_hourly(&self, age: u32, pathway: Pathway, day: NaiveDate) -> Option<Cents> {
        let period =
            self.periods.iter().filter(|p| p.valid_from <= day).max_by_key(|p| p.valid_from)?;
        if age >= period.adult_age {
            return Some(Cents(period.adult_hourly_cents));
        }
        let scale = |table: &BTreeMap<u32, i64>| {
            // Below the youngest age in the table its percentage applies.
            table.range(..=age).next_back().or_else(|| table.iter().next()).map(|(_, p)| *p)
        };
        let bbl =
            (pathway == Pathway::Bbl).then(|| period.bbl_permille.get(&age).copied()).flatten();
        let permille = bbl.or_else(|| scale(&period.youth_permille))?;
        // Rounded half up to whole cents.
        Some(Cents((period.adult_hourly_cents * permille + 500) / 1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    #[test]
    fn embedded_table_is_valid() {
        let table = WageTable::parse(EMBEDDED).expect("the embedded table parses");
        assert!(!table.source.is_empty());
    }

    #[test]
    fn c3_minimum_follows_age_and_pathway() {
        let table = WageTable::embedded();
        let on = day(2026, 9, 1);
        assert_eq!(table.minimum_hourly(21, Pathway::Bbl, on), Some(Cents(1471)));
        assert_eq!(table.minimum_hourly(40, Pathway::Bol, on), Some(Cents(1471)));
        // 80% of 14.71 = 11.768 -> 11.77.
        assert_eq!(table.minimum_hourly(20, Pathway::Bol, on), Some(Cents(1177)));
        // BBL scale at 20: 61.5% of 14.71 = 9.04665 -> 9.05.
        assert_eq!(table.minimum_hourly(20, Pathway::Bbl, on), Some(Cents(905)));
        // Under 18 the youth scale applies to BBL as well: 39.5% -> 5.81.
        assert_eq!(table.minimum_hourly(17, Pathway::Bbl, on), Some(Cents(581)));
        // Below the youngest age in the table, its percentage applies.
        assert_eq!(table.minimum_hourly(14, Pathway::Bbl, on), Some(Cents(441)));
        assert_eq!(table.minimum_hourly(21, Pathway::Bbl, day(2025, 12, 31)), None);
    }

    #[test]
    fn a_table_out_of_range_is_refused() {
        let bad = EMBEDDED.replace("\"20\": 800", "\"20\": 1800");
        assert!(WageTable::parse(&bad).is_err());
        assert!(WageTable::parse("{}").is_err());
    }
}
