//! Given/when/then tests of matching rounds (M3, M4) and their record.

use chrono::NaiveDate;
use cqrs_es::test::TestFramework;
use stagepact_matching::{MatchingInput, Offer, Settings, Student};
use uuid::Uuid;

use super::*;
use crate::values::{Period, SchoolId};

type RoundTest = TestFramework<MatchingRound>;

const ROUND: Uuid = Uuid::from_u128(7);
const OFFER_A: Uuid = Uuid::from_u128(0xa);
const OFFER_B: Uuid = Uuid::from_u128(0xb);

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
}

fn number(raw: &str) -> StudentNumber {
    StudentNumber::parse(raw).expect("valid")
}

fn opened(variant: Variant) -> MatchingRoundEvent {
    MatchingRoundEvent::MatchingRoundOpened(MatchingRoundOpened {
        round_id: ROUND,
        school: SchoolId::parse("25LX").expect("valid"),
        cohort: 2026,
        period: Period::parse(day(2027, 2, 1), day(2027, 6, 30)).expect("valid"),
        qualification: None,
        variant,
        student_ids: None,
        opened_on: day(2026, 11, 24),
    })
}

fn student(id: &str) -> Student {
    Student {
        id: id.into(),
        qualification: "25180".into(),
        level: 2,
        learning_goals: vec!["koken".into()],
        competences: vec![],
        sectors: vec![],
        region: "Utrecht".into(),
        location: None,
        max_travel_km: None,
        excluded_companies: vec![],
    }
}

fn offer(id: Uuid, company: &str) -> Offer {
    Offer {
        id: id.to_string().as_str().into(),
        company: company.into(),
        qualification: "25180".into(),
        levels: vec![2],
        slots: 1,
        learning_opportunities: vec!["koken".into()],
        sector: "horeca".into(),
        region: "Utrecht".into(),
        location: None,
    }
}

/// The engine's result for two students and two offers at two companies.
fn run_command(variant: Variant, digest: &str) -> MatchingRoundCommand {
    let input = MatchingInput {
        students: vec![student("s1"), student("s2")],
        offers: vec![offer(OFFER_A, "c1"), offer(OFFER_B, "c2")],
        settings: Settings { variant, ..Settings::default() },
    };
    let outcome = stagepact_matching::run(&input).expect("a valid round");
    MatchingRoundCommand::RecordRun {
        input_digest: digest.to_owned(),
        settings: input.settings,
        left_out: vec![],
        outcome: Box::new(outcome),
        run_time_ms: 3,
    }
}

/// The event the first run records.
fn ran(variant: Variant) -> MatchingRoundEvent {
    let mut round = MatchingRound::default();
    round.apply(opened(variant));
    round.decide(run_command(variant, "d1")).expect("a run").expect("an event")
}

fn published(variant: Variant) -> MatchingRoundEvent {
    let mut round = MatchingRound::default();
    round.apply(opened(variant));
    round.apply(ran(variant));
    round
        .decide(MatchingRoundCommand::Publish { today: day(2026, 11, 25) })
        .expect("ok")
        .expect("ev")
}

/// The event that settles `student` with `offer`.
fn settled_with(student: &str, offer: Uuid) -> MatchingRoundEvent {
    MatchingRoundEvent::MatchingRoundSettled(MatchingRoundSettled {
        matches: vec![RoundMatch {
            student_id: number(student),
            offer_id: offer,
            placement_id: placement_id(ROUND, &number(student), offer),
        }],
    })
}

/// A two-and-two round, run and published: its students introduced.
fn introduced() -> Vec<MatchingRoundEvent> {
    vec![opened(Variant::TwoAndTwo), ran(Variant::TwoAndTwo), published(Variant::TwoAndTwo)]
}

#[test]
fn a_run_on_the_same_input_is_not_recorded_again() {
    RoundTest::with(())
        .given(vec![opened(Variant::Single), ran(Variant::Single)])
        .when(run_command(Variant::Single, "d1"))
        .then_expect_events(vec![]);
}

#[test]
fn a_run_on_changed_input_is_the_next_run() {
    let events = RoundTest::with(())
        .given(vec![opened(Variant::Single), ran(Variant::Single)])
        .when(run_command(Variant::Single, "d2"))
        .inspect_result()
        .expect("a second run is recorded");
    let [MatchingRoundEvent::MatchingRoundRun(run)] = events.as_slice() else {
        panic!("one run event: {events:?}")
    };
    assert_eq!((run.run, run.input_digest.as_str()), (2, "d2"));
}

#[test]
fn a_published_round_is_not_run_again() {
    RoundTest::with(())
        .given(vec![opened(Variant::Single), ran(Variant::Single), published(Variant::Single)])
        .when(run_command(Variant::Single, "d2"))
        .then_expect_error(MatchingRoundError::Published);
}

#[test]
fn publishing_needs_a_run() {
    RoundTest::with(())
        .given(vec![opened(Variant::Single)])
        .when(MatchingRoundCommand::Publish { today: day(2026, 11, 25) })
        .then_expect_error(MatchingRoundError::NotRun);
}

#[test]
fn a_single_round_publishes_every_proposal_as_a_match_with_a_derived_placement_id() {
    let MatchingRoundEvent::MatchingRoundPublished(event) = published(Variant::Single) else {
        panic!("a publication")
    };
    assert_eq!(event.run, 1);
    assert_eq!(event.matches.len(), 2, "both students placed");
    for m in &event.matches {
        assert_eq!(m.placement_id, placement_id(ROUND, &m.student_id, m.offer_id));
    }
    let ids: BTreeSet<Uuid> = event.matches.iter().map(|m| m.placement_id).collect();
    assert_eq!(ids.len(), 2, "distinct placements");
}

#[test]
fn m4_a_two_and_two_round_publishes_introductions_and_settles_later() {
    let MatchingRoundEvent::MatchingRoundPublished(event) = published(Variant::TwoAndTwo) else {
        panic!("a publication")
    };
    assert!(event.matches.is_empty(), "introductions first, placements after settling");
    let MatchingRoundEvent::MatchingRoundRun(run) = ran(Variant::TwoAndTwo) else {
        panic!("a run")
    };
    let of_s1: BTreeSet<&str> = run
        .outcome
        .proposals
        .iter()
        .filter(|p| p.student.0 == "s1")
        .map(|p| p.company.0.as_str())
        .collect();
    assert_eq!(of_s1, BTreeSet::from(["c1", "c2"]), "each student meets two companies");
    RoundTest::with(())
        .given(introduced())
        .when(MatchingRoundCommand::Settle { settlements: vec![(number("s1"), OFFER_B)] })
        .then_expect_events(vec![settled_with("s1", OFFER_B)]);
}

#[test]
fn m4_a_student_is_settled_with_an_introduced_offer_only() {
    let elsewhere = Uuid::from_u128(0xc);
    RoundTest::with(())
        .given(introduced())
        .when(MatchingRoundCommand::Settle { settlements: vec![(number("s1"), elsewhere)] })
        .then_expect_error(MatchingRoundError::NotIntroduced {
            student: "s1".into(),
            offer: elsewhere,
        });
}

#[test]
fn m4_a_student_is_settled_once() {
    let settled = MatchingRoundEvent::MatchingRoundSettled(MatchingRoundSettled {
        matches: vec![RoundMatch {
            student_id: number("s1"),
            offer_id: OFFER_A,
            placement_id: placement_id(ROUND, &number("s1"), OFFER_A),
        }],
    });
    RoundTest::with(())
        .given([introduced(), vec![settled]].concat())
        .when(MatchingRoundCommand::Settle { settlements: vec![(number("s1"), OFFER_B)] })
        .then_expect_error(MatchingRoundError::AlreadySettled("s1".into()));
}

#[test]
fn m4_a_single_round_is_not_settled() {
    RoundTest::with(())
        .given(vec![opened(Variant::Single), ran(Variant::Single), published(Variant::Single)])
        .when(MatchingRoundCommand::Settle { settlements: vec![(number("s1"), OFFER_A)] })
        .then_expect_error(MatchingRoundError::NotSettleable);
}

#[test]
fn carrying_out_records_each_match_once() {
    let MatchingRoundEvent::MatchingRoundPublished(event) = published(Variant::Single) else {
        panic!("a publication")
    };
    let (first, second) = (event.matches[0].placement_id, event.matches[1].placement_id);
    let lapsed = LapsedMatch { placement_id: second, reason: "no free slot".into(), rule: None };
    let done = MatchingRoundEvent::MatchingRoundCarriedOut(MatchingRoundCarriedOut {
        placed: vec![first],
        lapsed: vec![],
    });
    // A retry after a crash reports the first again: only the second is new.
    RoundTest::with(())
        .given(vec![
            opened(Variant::Single),
            ran(Variant::Single),
            published(Variant::Single),
            done.clone(),
        ])
        .when(MatchingRoundCommand::RecordCarriedOut(MatchingRoundCarriedOut {
            placed: vec![first],
            lapsed: vec![lapsed.clone()],
        }))
        .then_expect_events(vec![MatchingRoundEvent::MatchingRoundCarriedOut(
            MatchingRoundCarriedOut { placed: vec![], lapsed: vec![lapsed.clone()] },
        )]);
    let mut record = MatchingRoundRecord::opened(match &opened(Variant::Single) {
        MatchingRoundEvent::MatchingRoundOpened(o) => o,
        _ => unreachable!(),
    });
    for e in [ran(Variant::Single), published(Variant::Single), done] {
        record.apply(&e);
    }
    assert_eq!(record.pending().len(), 1);
    record.apply(&MatchingRoundEvent::MatchingRoundCarriedOut(MatchingRoundCarriedOut {
        placed: vec![],
        lapsed: vec![lapsed],
    }));
    assert!(record.pending().is_empty());
    assert_eq!(record.status(), "published");
}

#[test]
fn a_round_is_opened_once_and_nothing_else_happens_to_one_not_opened() {
    RoundTest::with(())
        .given(vec![opened(Variant::Single)])
        .when(match opened(Variant::Single) {
            MatchingRoundEvent::MatchingRoundOpened(o) => MatchingRoundCommand::Open(o),
            _ => unreachable!(),
        })
        .then_expect_error(MatchingRoundError::AlreadyOpened);
    RoundTest::with(())
        .given_no_previous_events()
        .when(MatchingRoundCommand::Publish { today: day(2026, 11, 25) })
        .then_expect_error(MatchingRoundError::NotFound);
}

#[test]
fn a_round_is_published_once_and_only_with_a_proposal() {
    RoundTest::with(())
        .given(vec![opened(Variant::Single), ran(Variant::Single), published(Variant::Single)])
        .when(MatchingRoundCommand::Publish { today: day(2026, 11, 26) })
        .then_expect_error(MatchingRoundError::Published);
    let mut empty = MatchingRound::default();
    empty.apply(opened(Variant::Single));
    let MatchingRoundCommand::RecordRun { settings, .. } = run_command(Variant::Single, "d") else {
        unreachable!()
    };
    let nothing = MatchingRoundCommand::RecordRun {
        input_digest: "empty".into(),
        settings,
        left_out: vec![],
        outcome: Box::new(
            stagepact_matching::run(&MatchingInput {
                students: vec![student("s1")],
                offers: vec![],
                settings,
            })
            .expect("a valid round"),
        ),
        run_time_ms: 0,
    };
    let run = empty.decide(nothing).expect("ok").expect("a run");
    RoundTest::with(())
        .given(vec![opened(Variant::Single), run])
        .when(MatchingRoundCommand::Publish { today: day(2026, 11, 25) })
        .then_expect_error(MatchingRoundError::NothingProposed);
}

#[test]
fn m4_a_settlement_names_someone() {
    RoundTest::with(())
        .given(introduced())
        .when(MatchingRoundCommand::Settle { settlements: vec![] })
        .then_expect_error(MatchingRoundError::NoSettlements);
}

#[test]
fn m4_after_a_lapse_the_student_is_settled_with_the_other_introduction_not_the_same() {
    let id = placement_id(ROUND, &number("s1"), OFFER_A);
    let settled = MatchingRoundEvent::MatchingRoundSettled(MatchingRoundSettled {
        matches: vec![RoundMatch { student_id: number("s1"), offer_id: OFFER_A, placement_id: id }],
    });
    let lapsed = MatchingRoundEvent::MatchingRoundCarriedOut(MatchingRoundCarriedOut {
        placed: vec![],
        lapsed: vec![LapsedMatch { placement_id: id, reason: "withdrawn".into(), rule: None }],
    });
    let given = || [introduced(), vec![settled.clone(), lapsed.clone()]].concat();
    RoundTest::with(())
        .given(given())
        .when(MatchingRoundCommand::Settle { settlements: vec![(number("s1"), OFFER_A)] })
        .then_expect_error(MatchingRoundError::Lapsed { student: "s1".into(), offer: OFFER_A });
    RoundTest::with(())
        .given(given())
        .when(MatchingRoundCommand::Settle { settlements: vec![(number("s1"), OFFER_B)] })
        .then_expect_events(vec![settled_with("s1", OFFER_B)]);
}
