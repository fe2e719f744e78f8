//! The pact's monitoring (monitoring en bijsturing, [001]): the school year the
//! indicators are counted in, the small-cell rule every published aggregate
//! keeps (DESIGN §6), and the arithmetic of the compensation goal. Pure: the
//! store counts, these rules decide what a count means.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use schemars::{JsonSchema, json_schema};
use serde::{Deserialize, Serialize};

use crate::values::{Allowance, AllowancePer, Cents, InvalidValue};

/// A school year (schooljaar): 1 August to 31 July, written `2026-2027`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SchoolYear(i32);

crate::values::string_schema!(
    SchoolYear,
    json_schema!({ "type": "string", "pattern": "^[0-9]{4}-[0-9]{4}$" })
);

impl SchoolYear {
    /// The school year a day falls in.
    pub fn of(day: NaiveDate) -> Self {
        Self(if day.month() >= 8 { day.year() } else { day.year() - 1 })
    }

    /// The year it starts in, e.g. 2026 for `2026-2027`.
    pub fn starts_in(self) -> i32 {
        self.0
    }

    /// The school year starting in `year`.
    pub fn starting_in(year: i32) -> Self {
        Self(year)
    }

    /// Parses `2026-2027`: two four-digit years, the second the first plus one.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let invalid = || InvalidValue("must look like 2026-2027 (1 August to 31 July)".into());
        let (first, second) = raw.split_once('-').ok_or_else(invalid)?;
        let four_digits = |s: &str| s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit());
        if !four_digits(first) || !four_digits(second) {
            return Err(invalid());
        }
        let first: i32 = first.parse().map_err(|_| invalid())?;
        let second: i32 = second.parse().map_err(|_| invalid())?;
        if second != first + 1 {
            return Err(invalid());
        }
        Ok(Self(first))
    }
}

impl fmt::Display for SchoolYear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0, self.0 + 1)
    }
}

impl TryFrom<String> for SchoolYear {
    type Error = InvalidValue;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<SchoolYear> for String {
    fn from(value: SchoolYear) -> Self {
        value.to_string()
    }
}

/// The smallest count a published aggregate shows (DESIGN §6): a cell of one
/// to four people could point at one of them, so it is shown as suppressed,
/// never as 0. An empty cell points at nobody and is shown.
pub const SMALLEST_CELL: usize = 5;

/// Whether a count of people may be shown to someone outside the school they
/// belong to.
pub fn shown(count: usize) -> bool {
    count == 0 || count >= SMALLEST_CELL
}

/// An internship allowance as an amount per month, so weekly and monthly
/// allowances compare (C2): a week's amount times 52 weeks over 12 months,
/// rounded to the cent.
pub fn monthly(allowance: &Allowance) -> Cents {
    match allowance.per {
        AllowancePer::Month => allowance.amount,
        AllowancePer::Week => Cents((allowance.amount.0 * 52 + 6) / 12),
    }
}

/// S2's early warning: too few open slots for the students seeking one, with
/// `margin_percent` of headroom (a market with exactly as many slots as
/// students is already tight: one withdrawn offer leaves a student without a
/// place). A qualification and region nobody seeks in has no shortage.
pub fn is_shortage(seeking: i64, open_slots: i64, margin_percent: u32) -> bool {
    seeking > 0 && open_slots * 100 < seeking * (100 + i64::from(margin_percent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid day")
    }

    #[test]
    fn a_school_year_runs_from_1_august_to_31_july() {
        assert_eq!(SchoolYear::of(day(2026, 8, 1)).to_string(), "2026-2027");
        assert_eq!(SchoolYear::of(day(2027, 7, 31)).to_string(), "2026-2027");
        assert_eq!(SchoolYear::of(day(2026, 7, 31)).to_string(), "2025-2026");
        assert_eq!(SchoolYear::parse("2026-2027"), Ok(SchoolYear::starting_in(2026)));
        for bad in ["2026-2028", "2026", "26-27", "2026/2027", "2026-2027x", "+026-2027"] {
            assert!(SchoolYear::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn small_cells_are_suppressed_empty_ones_shown() {
        assert!(shown(0));
        assert!(!shown(1));
        assert!(!shown(4));
        assert!(shown(5));
    }

    #[test]
    fn c2_a_weekly_allowance_is_compared_per_month() {
        let weekly = Allowance { amount: Cents(12_000), per: AllowancePer::Week };
        assert_eq!(monthly(&weekly), Cents(52_000));
        let monthly_one = Allowance { amount: Cents(40_000), per: AllowancePer::Month };
        assert_eq!(monthly(&monthly_one), Cents(40_000));
    }

    #[test]
    fn s2_a_shortage_is_fewer_slots_than_seekers_with_headroom() {
        assert!(is_shortage(10, 9, 0));
        assert!(!is_shortage(10, 10, 0));
        assert!(is_shortage(10, 10, 10), "exactly enough is tight with 10% headroom");
        assert!(!is_shortage(10, 11, 10));
        assert!(!is_shortage(0, 0, 10), "nobody seeks: no shortage");
    }
}
