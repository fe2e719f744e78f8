//! A shortage (tekort) of placements for a qualification in a region in a
//! school year: S2's early warning to SBB and to the schools whose students
//! are seeking there. One aggregate per qualification, region and school year,
//! so the warning is given once however often supply and demand are counted.

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Visibility;
use crate::monitoring::{SchoolYear, is_shortage};
use crate::values::{Crebo, Region, SchoolId};

/// The namespace of shortage ids (a UUID v5 of qualification, region and year).
const SHORTAGES: Uuid = Uuid::from_u128(0x5c6f_7274_6167_4500_8000_0000_0000_0001);

/// The aggregate id of the shortage of `qualification` in `region` in `year`:
/// the same three always give the same id, which is what makes the warning
/// once-only.
pub fn shortage_id(qualification: &Crebo, region: &Region, year: SchoolYear) -> Uuid {
    Uuid::new_v5(&SHORTAGES, format!("{qualification}\n{region}\n{year}").as_bytes())
}

/// Fewer open slots than students seeking one, for a qualification in a region
/// in a school year (S2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShortageFlagged {
    /// The qualification (crebo code).
    pub qualification: Crebo,
    /// The labour-market region.
    pub region: Region,
    /// The school year.
    pub school_year: SchoolYear,
    /// Students seeking a placement when it was flagged.
    pub seeking: u32,
    /// Open slots when it was flagged.
    pub open_slots: u32,
    /// The headroom the count was held against, in percent.
    pub margin_percent: u32,
    /// The schools whose students are seeking there: they see the warning.
    pub schools: Vec<SchoolId>,
    /// The day.
    pub flagged_on: NaiveDate,
}

/// Everything that can happen to a shortage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShortageEvent {
    /// See [`ShortageFlagged`].
    ShortageFlagged(ShortageFlagged),
}

impl DomainEvent for ShortageEvent {
    fn event_type(&self) -> String {
        "ShortageFlagged".to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// Why a shortage was not flagged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShortageError {
    /// The counts are no shortage under their margin.
    #[error("{open_slots} open slots for {seeking} seeking students is no shortage")]
    NoShortage {
        /// Students seeking.
        seeking: u32,
        /// Open slots.
        open_slots: u32,
    },
}

impl ShortageError {
    /// The pact rule a refusal enforces.
    pub fn rule(&self) -> &'static str {
        "S2"
    }
}

/// The shortage aggregate: flagged or not.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shortage {
    flagged: Option<ShortageFlagged>,
}

impl Shortage {
    /// The warning, once given.
    pub fn flagged(&self) -> Option<&ShortageFlagged> {
        self.flagged.as_ref()
    }
}

impl Aggregate for Shortage {
    const TYPE: &'static str = "shortage";
    type Command = ShortageFlagged;
    type Event = ShortageEvent;
    type Error = ShortageError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        // Once per qualification, region and year: a later count that still
        // shows the shortage is the same warning, and records nothing.
        if self.flagged.is_some() {
            return Ok(());
        }
        let ShortageFlagged { seeking, open_slots, margin_percent, .. } = command;
        if !is_shortage(i64::from(seeking), i64::from(open_slots), margin_percent) {
            return Err(ShortageError::NoShortage { seeking, open_slots });
        }
        sink.write(ShortageEvent::ShortageFlagged(command), self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        let ShortageEvent::ShortageFlagged(flagged) = event;
        self.flagged = Some(flagged);
    }
}

impl Visibility for Shortage {
    // SBB sees every shortage; a school the ones its students seek in.
    fn audience(&self) -> Vec<(&'static str, String)> {
        self.flagged
            .iter()
            .flat_map(|f| f.schools.iter().map(|school| ("school", school.to_string())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    fn flag(seeking: u32, open_slots: u32) -> ShortageFlagged {
        ShortageFlagged {
            qualification: Crebo::parse("25180").expect("valid"),
            region: Region::parse("Rijnmond").expect("valid"),
            school_year: SchoolYear::starting_in(2026),
            seeking,
            open_slots,
            margin_percent: 10,
            schools: vec![SchoolId::parse("25PX").expect("valid")],
            flagged_on: NaiveDate::from_ymd_opt(2026, 9, 1).expect("valid"),
        }
    }

    #[test]
    fn s2_a_shortage_is_flagged() {
        TestFramework::<Shortage>::with(())
            .given_no_previous_events()
            .when(flag(12, 7))
            .then_expect_events(vec![ShortageEvent::ShortageFlagged(flag(12, 7))]);
    }

    #[test]
    fn s2_a_shortage_is_flagged_once_per_qualification_region_and_year() {
        TestFramework::<Shortage>::with(())
            .given(vec![ShortageEvent::ShortageFlagged(flag(12, 7))])
            .when(flag(14, 3))
            .then_expect_events(vec![]);
    }

    #[test]
    fn s2_enough_slots_is_no_shortage() {
        TestFramework::<Shortage>::with(())
            .given_no_previous_events()
            .when(flag(10, 11))
            .then_expect_error(ShortageError::NoShortage { seeking: 10, open_slots: 11 });
    }

    #[test]
    fn s2_the_id_is_the_same_for_the_same_qualification_region_and_year() {
        let q = Crebo::parse("25180").expect("valid");
        let r = Region::parse("Rijnmond").expect("valid");
        let year = SchoolYear::starting_in(2026);
        assert_eq!(shortage_id(&q, &r, year), shortage_id(&q, &r, year));
        assert_ne!(shortage_id(&q, &r, year), shortage_id(&q, &r, SchoolYear::starting_in(2027)));
        let other = Region::parse("Twente").expect("valid");
        assert_ne!(shortage_id(&q, &r, year), shortage_id(&q, &other, year));
    }
}
