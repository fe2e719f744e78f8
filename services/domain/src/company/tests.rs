//! Given/when/then tests of the company rules, one per rule and refusal.

use chrono::NaiveDate;
use cqrs_es::test::TestFramework;

use super::*;
use crate::values::{CompanyId, CompanyName, Reason, Region, Sector};

type CompanyTest = TestFramework<Company>;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
}

fn crebo(code: &str) -> Crebo {
    Crebo::parse(code).expect("valid test crebo")
}

fn reason(text: &str) -> Reason {
    Reason::parse(text).expect("valid test reason")
}

fn registered() -> CompanyEvent {
    CompanyEvent::CompanyRegistered(CompanyRegistered {
        company_id: CompanyId::parse("100012345").expect("valid test id"),
        name: CompanyName::parse("Bakkerij Jansen").expect("valid"),
        sector: Sector::parse("Voedsel").expect("valid"),
        region: Region::parse("Utrecht").expect("valid"),
        location: None,
    })
}

fn grant(code: &str) -> RecognitionGranted {
    RecognitionGranted {
        qualification: crebo(code),
        granted_on: day(2026, 9, 1),
        valid_until: day(2030, 8, 31),
    }
}

fn granted(code: &str) -> CompanyEvent {
    CompanyEvent::RecognitionGranted(grant(code))
}

fn suspension() -> RecognitionSuspended {
    RecognitionSuspended { reason: reason("signals of discrimination"), investigation_id: None }
}

fn suspended() -> CompanyEvent {
    CompanyEvent::RecognitionSuspended(suspension())
}

fn reinstatement() -> RecognitionReinstated {
    RecognitionReinstated { reason: reason("investigation closed: unfounded") }
}

fn revocation(qualification: Option<&str>) -> RecognitionRevoked {
    RecognitionRevoked {
        reason: reason("measures not taken"),
        qualification: qualification.map(crebo),
    }
}

fn register_command() -> CompanyCommand {
    let CompanyEvent::CompanyRegistered(event) = registered() else {
        unreachable!("registered() builds a registration")
    };
    CompanyCommand::RegisterCompany(event)
}

#[test]
fn registering_a_new_company_records_it() {
    CompanyTest::with(())
        .given_no_previous_events()
        .when(register_command())
        .then_expect_events(vec![registered()]);
}

#[test]
fn registering_twice_is_refused() {
    CompanyTest::with(())
        .given(vec![registered()])
        .when(register_command())
        .then_expect_error(CompanyError::AlreadyRegistered);
}

#[test]
fn s1_recognition_is_granted_per_qualification() {
    CompanyTest::with(())
        .given(vec![registered(), granted("25180")])
        .when(CompanyCommand::GrantRecognition(grant("25655")))
        .then_expect_events(vec![granted("25655")]);
}

#[test]
fn s1_granting_to_an_unknown_company_is_refused() {
    CompanyTest::with(())
        .given_no_previous_events()
        .when(CompanyCommand::GrantRecognition(grant("25180")))
        .then_expect_error(CompanyError::NotRegistered);
}

#[test]
fn s1_granting_to_a_revoked_company_is_refused() {
    CompanyTest::with(())
        .given(vec![
            registered(),
            granted("25180"),
            CompanyEvent::RecognitionRevoked(revocation(None)),
        ])
        .when(CompanyCommand::GrantRecognition(grant("25655")))
        .then_expect_error(CompanyError::Revoked);
}

#[test]
fn s1_recognition_is_reassessed_within_four_years() {
    let too_long = RecognitionGranted { valid_until: day(2030, 9, 2), ..grant("25180") };
    CompanyTest::with(())
        .given(vec![registered()])
        .when(CompanyCommand::GrantRecognition(too_long))
        .then_expect_error(CompanyError::RecognitionTermTooLong);
    let exactly_four = RecognitionGranted { valid_until: day(2030, 9, 1), ..grant("25180") };
    CompanyTest::with(())
        .given(vec![registered()])
        .when(CompanyCommand::GrantRecognition(exactly_four.clone()))
        .then_expect_events(vec![CompanyEvent::RecognitionGranted(exactly_four)]);
}

#[test]
fn s1_recognition_must_end_after_it_is_granted() {
    let backwards = RecognitionGranted { valid_until: day(2026, 9, 1), ..grant("25180") };
    CompanyTest::with(())
        .given(vec![registered()])
        .when(CompanyCommand::GrantRecognition(backwards))
        .then_expect_error(CompanyError::ValidUntilNotAfterGrant);
}

#[test]
fn d5_sbb_suspends_a_recognised_company() {
    CompanyTest::with(())
        .given(vec![registered(), granted("25180")])
        .when(CompanyCommand::SuspendRecognition(suspension()))
        .then_expect_events(vec![suspended()]);
}

#[test]
fn d5_suspending_an_unknown_company_is_refused() {
    CompanyTest::with(())
        .given_no_previous_events()
        .when(CompanyCommand::SuspendRecognition(suspension()))
        .then_expect_error(CompanyError::NotRegistered);
}

#[test]
fn d5_suspending_a_revoked_company_is_refused() {
    CompanyTest::with(())
        .given(vec![
            registered(),
            granted("25180"),
            CompanyEvent::RecognitionRevoked(revocation(None)),
        ])
        .when(CompanyCommand::SuspendRecognition(suspension()))
        .then_expect_error(CompanyError::Revoked);
}

#[test]
fn d5_suspending_an_already_suspended_company_is_refused() {
    CompanyTest::with(())
        .given(vec![registered(), granted("25180"), suspended()])
        .when(CompanyCommand::SuspendRecognition(suspension()))
        .then_expect_error(CompanyError::AlreadySuspended);
}

#[test]
fn d5_no_new_recognition_while_suspended() {
    CompanyTest::with(())
        .given(vec![registered(), granted("25180"), suspended()])
        .when(CompanyCommand::GrantRecognition(grant("25655")))
        .then_expect_error(CompanyError::SuspendedCannotGrant);
}

#[test]
fn d5_sbb_reinstates_a_suspended_company() {
    CompanyTest::with(())
        .given(vec![registered(), granted("25180"), suspended()])
        .when(CompanyCommand::ReinstateRecognition(reinstatement()))
        .then_expect_events(vec![CompanyEvent::RecognitionReinstated(reinstatement())]);
}

#[test]
fn d5_reinstating_a_company_that_is_not_suspended_is_refused() {
    CompanyTest::with(())
        .given(vec![registered(), granted("25180")])
        .when(CompanyCommand::ReinstateRecognition(reinstatement()))
        .then_expect_error(CompanyError::NotSuspended);
}

#[test]
fn d5_reinstating_a_revoked_company_is_refused() {
    CompanyTest::with(())
        .given(vec![
            registered(),
            granted("25180"),
            suspended(),
            CompanyEvent::RecognitionRevoked(revocation(None)),
        ])
        .when(CompanyCommand::ReinstateRecognition(reinstatement()))
        .then_expect_error(CompanyError::Revoked);
}

#[test]
fn d5_sbb_revokes_after_suspension() {
    CompanyTest::with(())
        .given(vec![registered(), granted("25180"), suspended()])
        .when(CompanyCommand::RevokeRecognition(revocation(None)))
        .then_expect_events(vec![CompanyEvent::RecognitionRevoked(revocation(None))]);
}

#[test]
fn d5_revoking_one_qualification_needs_a_held_recognition() {
    CompanyTest::with(())
        .given(vec![registered(), granted("25180")])
        .when(CompanyCommand::RevokeRecognition(revocation(Some("25655"))))
        .then_expect_error(CompanyError::RecognitionNotHeld(crebo("25655")));
    CompanyTest::with(())
        .given(vec![
            registered(),
            granted("25180"),
            CompanyEvent::RecognitionRevoked(revocation(Some("25180"))),
        ])
        .when(CompanyCommand::RevokeRecognition(revocation(Some("25180"))))
        .then_expect_error(CompanyError::RecognitionNotHeld(crebo("25180")));
}

#[test]
fn d5_revoking_a_revoked_company_is_refused() {
    CompanyTest::with(())
        .given(vec![registered(), CompanyEvent::RecognitionRevoked(revocation(None))])
        .when(CompanyCommand::RevokeRecognition(revocation(None)))
        .then_expect_error(CompanyError::Revoked);
}

/// The record both the aggregate and the registry projection serve.
fn record_after(events: Vec<CompanyEvent>) -> CompanyRecord {
    let mut company = Company::default();
    for event in events {
        company.apply(event);
    }
    company.record().cloned().expect("registered in every case here")
}

#[test]
fn s1_status_follows_the_recognitions() {
    assert_eq!(record_after(vec![registered()]).status(), CompanyStatus::Unrecognised);
    let active = record_after(vec![registered(), granted("25180")]);
    assert_eq!(active.status(), CompanyStatus::Active);
    assert!(active.may_host(crebo("25180"), day(2027, 1, 1)));
    assert!(!active.may_host(crebo("25180"), day(2030, 9, 1)), "expired recognition hosts nothing");
    assert!(!active.may_host(crebo("25655"), day(2027, 1, 1)), "recognition is per qualification");

    let on_hold = record_after(vec![registered(), granted("25180"), suspended()]);
    assert_eq!(on_hold.status(), CompanyStatus::Suspended);
    assert!(
        !on_hold.may_host(crebo("25180"), day(2027, 1, 1)),
        "a suspended company gets no starts"
    );
    assert_eq!(on_hold.recognitions[&crebo("25180")].status, RecognitionStatus::Suspended);

    let back = record_after(vec![
        registered(),
        granted("25180"),
        granted("25655"),
        CompanyEvent::RecognitionRevoked(revocation(Some("25655"))),
        suspended(),
        CompanyEvent::RecognitionReinstated(reinstatement()),
    ]);
    assert_eq!(back.status(), CompanyStatus::Active);
    assert_eq!(
        back.recognitions[&crebo("25655")].status,
        RecognitionStatus::Revoked,
        "reinstatement does not undo a revocation"
    );

    let gone = record_after(vec![
        registered(),
        granted("25180"),
        CompanyEvent::RecognitionRevoked(revocation(None)),
    ]);
    assert_eq!(gone.status(), CompanyStatus::Revoked);
    assert!(!gone.may_host(crebo("25180"), day(2027, 1, 1)));
}

fn participation(participates: bool) -> CompanyCommand {
    CompanyCommand::SetMatchingParticipation(MatchingParticipationSet { participates })
}

#[test]
fn m4_a_company_takes_part_in_matching_until_it_opts_out() {
    CompanyTest::with(())
        .given(vec![registered()])
        .when(participation(true))
        .then_expect_events(vec![]);
    CompanyTest::with(()).given(vec![registered()]).when(participation(false)).then_expect_events(
        vec![CompanyEvent::MatchingParticipationSet(MatchingParticipationSet {
            participates: false,
        })],
    );
    let out = record_after(vec![
        registered(),
        CompanyEvent::MatchingParticipationSet(MatchingParticipationSet { participates: false }),
    ]);
    assert!(out.opted_out_of_matching);
    CompanyTest::with(())
        .given_no_previous_events()
        .when(participation(false))
        .then_expect_error(CompanyError::NotRegistered);
}
