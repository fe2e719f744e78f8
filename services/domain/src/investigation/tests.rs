//! Given/when/then tests of the investigation rules (D5).

use chrono::NaiveDate;
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;

type InvestigationTest = TestFramework<Investigation>;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
}

fn company() -> CompanyId {
    CompanyId::parse("100012345").expect("valid")
}

fn opened(complaint: bool) -> InvestigationEvent {
    InvestigationEvent::InvestigationOpened(InvestigationOpened {
        company_id: company(),
        signal_ids: vec![Uuid::from_u128(1)],
        complaint_id: complaint.then(|| Uuid::from_u128(2)),
        opened_on: day(2026, 11, 2),
    })
}

fn heard(party: HearingParty) -> InvestigationEvent {
    InvestigationEvent::HearingRecorded(HearingRecorded { party, held_on: day(2026, 11, 10) })
}

fn conclude() -> InvestigationCommand {
    InvestigationCommand::Conclude {
        concluded: InvestigationConcluded {
            outcome: InvestigationOutcome::RecognitionRevoked,
            concluded_on: day(2026, 11, 24),
        },
        suspended_by_it: true,
    }
}

#[test]
fn d5_an_investigation_concerns_the_company_of_its_evidence() {
    let InvestigationEvent::InvestigationOpened(event) = opened(false) else { unreachable!() };
    InvestigationTest::with(())
        .given_no_previous_events()
        .when(InvestigationCommand::Open {
            opened: event,
            evidence_companies: vec![CompanyId::parse("100067890").expect("valid")],
        })
        .then_expect_error(InvestigationError::EvidenceOfOtherCompany);
}

#[test]
fn d5_both_sides_are_heard_before_concluding() {
    InvestigationTest::with(())
        .given(vec![opened(true), heard(HearingParty::School)])
        .when(conclude())
        .then_expect_error(InvestigationError::NotHeard("company"));
    InvestigationTest::with(())
        .given(vec![opened(true), heard(HearingParty::Company)])
        .when(conclude())
        .then_expect_error(InvestigationError::NotHeard("school"));
    InvestigationTest::with(())
        .given(vec![opened(true), heard(HearingParty::Company), heard(HearingParty::School)])
        .when(conclude())
        .then_expect_events(vec![InvestigationEvent::InvestigationConcluded(
            InvestigationConcluded {
                outcome: InvestigationOutcome::RecognitionRevoked,
                concluded_on: day(2026, 11, 24),
            },
        )]);
}

#[test]
fn d5_an_investigation_from_signals_hears_the_company() {
    InvestigationTest::with(())
        .given(vec![opened(false), heard(HearingParty::Company)])
        .when(conclude())
        .then_expect_events(vec![InvestigationEvent::InvestigationConcluded(
            InvestigationConcluded {
                outcome: InvestigationOutcome::RecognitionRevoked,
                concluded_on: day(2026, 11, 24),
            },
        )]);
}

#[test]
fn d5_an_investigation_is_concluded_once() {
    let concluded = InvestigationEvent::InvestigationConcluded(InvestigationConcluded {
        outcome: InvestigationOutcome::Unfounded,
        concluded_on: day(2026, 11, 20),
    });
    InvestigationTest::with(())
        .given(vec![opened(false), heard(HearingParty::Company), concluded.clone()])
        .when(conclude())
        .then_expect_error(InvestigationError::AlreadyConcluded);
    InvestigationTest::with(())
        .given(vec![opened(false), heard(HearingParty::Company), concluded])
        .when(InvestigationCommand::RecordHearing {
            hearing: HearingRecorded { party: HearingParty::School, held_on: day(2026, 11, 21) },
            today: day(2026, 11, 24),
        })
        .then_expect_error(InvestigationError::AlreadyConcluded);
}

#[test]
fn d5_reinstatement_lifts_only_a_suspension_made_for_the_investigation() {
    let reinstate = |suspended_by_it| InvestigationCommand::Conclude {
        concluded: InvestigationConcluded {
            outcome: InvestigationOutcome::RecognitionReinstated,
            concluded_on: day(2026, 11, 24),
        },
        suspended_by_it,
    };
    InvestigationTest::with(())
        .given(vec![opened(false), heard(HearingParty::Company)])
        .when(reinstate(false))
        .then_expect_error(InvestigationError::NothingToReinstate);
    InvestigationTest::with(())
        .given(vec![opened(false), heard(HearingParty::Company)])
        .when(reinstate(true))
        .then_expect_events(vec![InvestigationEvent::InvestigationConcluded(
            InvestigationConcluded {
                outcome: InvestigationOutcome::RecognitionReinstated,
                concluded_on: day(2026, 11, 24),
            },
        )]);
}
