//! Given/when/then tests of the offer rules (S1, S2).

use chrono::NaiveDate;
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;
use crate::values::{CompanyId, Crebo, Level, Period, Region};

type OfferTest = TestFramework<Offer>;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
}

fn offer(slots: u32) -> OfferPublished {
    OfferPublished {
        offer_id: Uuid::from_u128(7),
        company_id: CompanyId::parse("100012345").expect("valid"),
        qualification: Crebo::parse("25180").expect("valid"),
        levels: vec![Level::parse(2).expect("valid")],
        slots,
        period: Period::parse(day(2027, 2, 1), day(2027, 6, 30)).expect("valid"),
        hours_per_week: 32,
        region: Region::parse("Utrecht").expect("valid"),
        location: None,
        learning_opportunities: vec![],
        internship_allowance: None,
        open_for_matching: true,
        published_on: day(2026, 11, 1),
    }
}

fn published(slots: u32) -> OfferEvent {
    OfferEvent::OfferPublished(offer(slots))
}

fn reserved(n: u128) -> OfferEvent {
    OfferEvent::OfferSlotReserved(OfferSlotReserved { placement_id: Uuid::from_u128(n) })
}

fn reserve(n: u128, today: NaiveDate) -> OfferCommand {
    OfferCommand::ReserveSlot { placement_id: Uuid::from_u128(n), today }
}

#[test]
fn a_recognised_company_publishes() {
    OfferTest::with(())
        .given_no_previous_events()
        .when(OfferCommand::Publish { offer: offer(2), company_may_host: true })
        .then_expect_events(vec![published(2)]);
}

#[test]
fn s1_an_unrecognised_or_suspended_company_cannot_publish() {
    OfferTest::with(())
        .given_no_previous_events()
        .when(OfferCommand::Publish { offer: offer(2), company_may_host: false })
        .then_expect_error(OfferError::CompanyMayNotHost);
}

#[test]
fn s2_an_offer_whose_period_has_ended_is_refused() {
    let mut stale = offer(2);
    stale.published_on = day(2027, 7, 1);
    OfferTest::with(())
        .given_no_previous_events()
        .when(OfferCommand::Publish { offer: stale, company_may_host: true })
        .then_expect_error(OfferError::PeriodEnded);
}

#[test]
fn s2_a_match_takes_a_free_slot() {
    OfferTest::with(())
        .given(vec![published(2), reserved(1)])
        .when(reserve(2, day(2026, 12, 1)))
        .then_expect_events(vec![reserved(2)]);
}

#[test]
fn s2_a_match_for_an_offer_with_no_free_slot_is_refused() {
    OfferTest::with(())
        .given(vec![published(1), reserved(1)])
        .when(reserve(2, day(2026, 12, 1)))
        .then_expect_error(OfferError::NoFreeSlot);
}

#[test]
fn s2_a_stale_or_withdrawn_offer_takes_no_match() {
    OfferTest::with(())
        .given(vec![published(2)])
        .when(reserve(1, day(2027, 7, 1)))
        .then_expect_error(OfferError::PeriodEnded);
    OfferTest::with(())
        .given(vec![published(2), OfferEvent::OfferWithdrawn(OfferWithdrawn { reason: None })])
        .when(reserve(1, day(2026, 12, 1)))
        .then_expect_error(OfferError::Withdrawn);
}

#[test]
fn reserving_twice_for_one_placement_records_once() {
    OfferTest::with(())
        .given(vec![published(1), reserved(1)])
        .when(reserve(1, day(2026, 12, 1)))
        .then_expect_events(vec![]);
}

#[test]
fn a_released_slot_is_free_again_and_release_is_idempotent() {
    OfferTest::with(())
        .given(vec![published(1), reserved(1)])
        .when(OfferCommand::ReleaseSlot { placement_id: Uuid::from_u128(1) })
        .then_expect_events(vec![OfferEvent::OfferSlotReleased(OfferSlotReleased {
            placement_id: Uuid::from_u128(1),
        })]);
    OfferTest::with(())
        .given(vec![published(1)])
        .when(OfferCommand::ReleaseSlot { placement_id: Uuid::from_u128(1) })
        .then_expect_events(vec![]);
}

#[test]
fn s2_open_means_current_with_a_free_slot() {
    let mut record = OfferRecord::published(offer(1));
    assert!(record.is_open(day(2027, 6, 30)));
    assert!(!record.is_open(day(2027, 7, 1)));
    record.apply(&reserved(1));
    assert!(!record.is_open(day(2026, 12, 1)));
}
