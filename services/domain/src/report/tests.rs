//! Given/when/then tests of the report rules, named after the rule they prove.

use chrono::NaiveDate;
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;
use crate::protected::Protected;
use crate::protected::testing::cipher;
use crate::values::{CompanyId, Description, SchoolId, StudentNumber};

type ReportTest = TestFramework<Report>;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
}

fn company() -> CompanyId {
    CompanyId::parse("100012345").expect("valid")
}

fn other_company() -> CompanyId {
    CompanyId::parse("100067890").expect("valid")
}

const PLACEMENT: Uuid = Uuid::from_u128(7);
const SIGNAL: Uuid = Uuid::from_u128(8);

fn filing(kind: ReportKind, grounds: Vec<Ground>) -> Filing {
    Filing {
        school: SchoolId::parse("25XX").expect("valid"),
        student_id: StudentNumber::parse("s-1").expect("valid"),
        company_id: company(),
        placement_id: Some(PLACEMENT),
        kind,
        description: Description::parse("They said they do not take interns like me.")
            .expect("valid"),
        grounds,
        wants_replacement_placement: true,
        consent_to_forward: true,
        filed_on: day(2026, 11, 20),
    }
}

fn file(kind: ReportKind, grounds: Vec<Ground>) -> ReportCommand {
    ReportCommand::File {
        filing: filing(kind, grounds),
        cipher: cipher(),
        placement_company: Some(company()),
    }
}

fn filed() -> ReportEvent {
    Report::default()
        .decide(file(ReportKind::Discrimination, vec![Ground::Origin, Ground::Religion]))
        .expect("a valid report")
        .expect("an event")
}

fn conversation(form: ConversationForm, safe: bool) -> ReportCommand {
    ReportCommand::RecordConversation {
        conversation: ReportConversationRecorded {
            form,
            held_on: day(2026, 11, 23),
            safe_for_student: safe,
        },
        today: day(2026, 11, 24),
    }
}

fn replacement() -> ReplacementFacts {
    ReplacementFacts {
        placement_id: Uuid::from_u128(9),
        school: SchoolId::parse("25XX").expect("valid"),
        student_id: StudentNumber::parse("s-1").expect("valid"),
        company_id: other_company(),
        replaces: Some(PLACEMENT),
        under_way: true,
        ends_on: Some(day(2027, 6, 30)),
        reported_ends_on: Some(day(2027, 6, 30)),
    }
}

fn summary() -> Description {
    Description::parse("Two refusals on origin this quarter.").expect("valid")
}

fn escalate(complaint_id: Uuid) -> ReportCommand {
    ReportCommand::Escalate { complaint_id, summary: summary(), cipher: cipher() }
}

fn escalated() -> ReportEvent {
    ReportEvent::ReportEscalated(ReportEscalated {
        complaint_id: SIGNAL,
        summary: cipher().seal(&summary()),
    })
}

fn readable() -> Protected<Vec<Ground>> {
    Protected::Readable(vec![Ground::Origin])
}

#[test]
fn d1_a_filed_report_seals_its_description_and_grounds() {
    let ReportEvent::ReportFiled(event) = filed() else { panic!("expected ReportFiled") };
    let json = serde_json::to_string(&event).expect("serialises");
    assert!(!json.contains("interns like me"), "description in the clear: {json}");
    assert!(!json.contains("origin") && !json.contains("religion"), "grounds in the clear: {json}");
    assert_eq!(
        cipher().open::<Vec<Ground>>(&event.grounds),
        Protected::Readable(vec![Ground::Religion, Ground::Origin])
    );
    assert_eq!(
        cipher().open::<String>(&event.description),
        Protected::Readable("They said they do not take interns like me.".into())
    );
}

#[test]
fn d2_a_discrimination_report_needs_grounds() {
    ReportTest::with(())
        .given_no_previous_events()
        .when(file(ReportKind::Discrimination, vec![]))
        .then_expect_error(ReportError::GroundsRequired);
}

#[test]
fn d2_other_kinds_need_no_grounds() {
    let event = Report::default().decide(file(ReportKind::PlacementFeeRequested, vec![]));
    assert!(matches!(event, Ok(Some(ReportEvent::ReportFiled(_)))), "{event:?}");
}

#[test]
fn d1_a_named_placement_is_at_the_reported_company() {
    let command = ReportCommand::File {
        filing: filing(ReportKind::Misuse, vec![]),
        cipher: cipher(),
        placement_company: Some(other_company()),
    };
    ReportTest::with(())
        .given_no_previous_events()
        .when(command)
        .then_expect_error(ReportError::PlacementAtOtherCompany);
}

#[test]
fn d1_a_report_without_a_placement_is_accepted() {
    let mut applying = filing(ReportKind::Discrimination, vec![Ground::Age]);
    applying.placement_id = None;
    let event = Report::default().decide(ReportCommand::File {
        filing: applying,
        cipher: cipher(),
        placement_company: None,
    });
    assert!(matches!(event, Ok(Some(ReportEvent::ReportFiled(_)))), "{event:?}");
}

#[test]
fn d4_acknowledging_twice_records_once() {
    let on = day(2026, 11, 23);
    ReportTest::with(())
        .given(vec![
            filed(),
            ReportEvent::ReportAcknowledged(ReportAcknowledged { acknowledged_on: on }),
        ])
        .when(ReportCommand::Acknowledge { on })
        .then_expect_events(vec![]);
}

#[test]
fn d3_a_triangle_conversation_needs_a_safety_check() {
    ReportTest::with(())
        .given(vec![filed()])
        .when(conversation(ConversationForm::Triangle, false))
        .then_expect_error(ReportError::ConversationNotSafe);
}

#[test]
fn d3_a_safe_triangle_conversation_is_recorded() {
    ReportTest::with(())
        .given(vec![filed()])
        .when(conversation(ConversationForm::Triangle, true))
        .then_expect_events(vec![ReportEvent::ReportConversationRecorded(
            ReportConversationRecorded {
                form: ConversationForm::Triangle,
                held_on: day(2026, 11, 23),
                safe_for_student: true,
            },
        )]);
}

#[test]
fn d3_school_and_company_talk_without_the_student_when_unsafe() {
    ReportTest::with(())
        .given(vec![filed()])
        .when(conversation(ConversationForm::SchoolAndCompany, false))
        .then_expect_events(vec![ReportEvent::ReportConversationRecorded(
            ReportConversationRecorded {
                form: ConversationForm::SchoolAndCompany,
                held_on: day(2026, 11, 23),
                safe_for_student: false,
            },
        )]);
}

#[test]
fn d3_a_conversation_is_not_recorded_ahead() {
    let command = ReportCommand::RecordConversation {
        conversation: ReportConversationRecorded {
            form: ConversationForm::SchoolAndCompany,
            held_on: day(2026, 11, 25),
            safe_for_student: true,
        },
        today: day(2026, 11, 24),
    };
    ReportTest::with(())
        .given(vec![filed()])
        .when(command)
        .then_expect_error(ReportError::HeldInFuture);
}

#[test]
fn d1_a_replacement_placement_is_linked() {
    ReportTest::with(())
        .given(vec![filed()])
        .when(ReportCommand::OfferReplacement(replacement()))
        .then_expect_events(vec![ReportEvent::ReplacementPlacementOffered(
            ReplacementPlacementOffered { placement_id: Uuid::from_u128(9) },
        )]);
}

#[test]
fn d1_a_replacement_is_elsewhere_for_the_same_student_replaces_the_reported_placement_and_keeps_its_end()
 {
    let cases = [
        (
            ReplacementFacts { company_id: company(), ..replacement() },
            ReportError::ReplacementAtReportedCompany,
        ),
        (
            ReplacementFacts {
                student_id: StudentNumber::parse("s-2").expect("valid"),
                ..replacement()
            },
            ReportError::ReplacementOfOtherStudent,
        ),
        (
            ReplacementFacts { replaces: None, ..replacement() },
            ReportError::ReplacementMustReplace(PLACEMENT),
        ),
        (ReplacementFacts { under_way: false, ..replacement() }, ReportError::ReplacementEnded),
        (
            ReplacementFacts { ends_on: Some(day(2027, 7, 1)), ..replacement() },
            ReportError::ReplacementDelays(day(2027, 6, 30)),
        ),
    ];
    for (facts, error) in cases {
        ReportTest::with(())
            .given(vec![filed()])
            .when(ReportCommand::OfferReplacement(facts))
            .then_expect_error(error);
    }
}

#[test]
fn d4_no_signal_without_consent() {
    ReportTest::with(())
        .given(vec![
            filed(),
            ReportEvent::ForwardingConsentSet(ForwardingConsentSet { consent: false }),
        ])
        .when(ReportCommand::ForwardSignal { signal_id: SIGNAL, grounds: readable() })
        .then_expect_error(ReportError::ConsentMissing);
}

#[test]
fn d4_a_signal_is_forwarded_once_with_consent() {
    ReportTest::with(())
        .given(vec![filed()])
        .when(ReportCommand::ForwardSignal { signal_id: SIGNAL, grounds: readable() })
        .then_expect_events(vec![ReportEvent::SignalForwarded(SignalForwarded {
            signal_id: SIGNAL,
        })]);
    ReportTest::with(())
        .given(vec![filed(), ReportEvent::SignalForwarded(SignalForwarded { signal_id: SIGNAL })])
        .when(ReportCommand::ForwardSignal { signal_id: Uuid::from_u128(10), grounds: readable() })
        .then_expect_error(ReportError::AlreadyForwarded);
}

#[test]
fn d4_erased_grounds_cannot_be_forwarded_but_the_report_still_replays() {
    ReportTest::with(())
        .given(vec![filed()])
        .when(ReportCommand::ForwardSignal { signal_id: SIGNAL, grounds: Protected::erased() })
        .then_expect_error(ReportError::ContentErased);
}

#[test]
fn d4_a_report_is_closed_only_after_a_follow_up_step() {
    let close = || ReportCommand::Close { outcome: ReportOutcome::Resolved, on: day(2026, 11, 24) };
    ReportTest::with(())
        .given(vec![
            filed(),
            ReportEvent::ReportAcknowledged(ReportAcknowledged {
                acknowledged_on: day(2026, 11, 23),
            }),
        ])
        .when(close())
        .then_expect_error(ReportError::NoFollowUp);
    ReportTest::with(()).given(vec![filed(), escalated()]).when(close()).then_expect_events(vec![
        ReportEvent::ReportClosed(ReportClosed {
            outcome: ReportOutcome::Resolved,
            closed_on: day(2026, 11, 24),
        }),
    ]);
}

#[test]
fn d4_a_closed_report_takes_no_more_steps_but_consent_stays_the_students() {
    let closed = ReportEvent::ReportClosed(ReportClosed {
        outcome: ReportOutcome::NoFurtherAction,
        closed_on: day(2026, 11, 24),
    });
    let history = vec![
        filed(),
        ReportEvent::ReportConversationRecorded(ReportConversationRecorded {
            form: ConversationForm::SchoolAndCompany,
            held_on: day(2026, 11, 23),
            safe_for_student: false,
        }),
        closed,
    ];
    ReportTest::with(())
        .given(history.clone())
        .when(escalate(SIGNAL))
        .then_expect_error(ReportError::Closed("escalating"));
    ReportTest::with(())
        .given(history)
        .when(ReportCommand::SetForwardingConsent(false))
        .then_expect_events(vec![ReportEvent::ForwardingConsentSet(ForwardingConsentSet {
            consent: false,
        })]);
}

#[test]
fn d5_a_report_is_escalated_once() {
    ReportTest::with(())
        .given(vec![filed(), escalated()])
        .when(escalate(Uuid::from_u128(11)))
        .then_expect_error(ReportError::AlreadyEscalated);
}

#[test]
fn d4_an_unacknowledged_report_is_overdue_after_the_working_days() {
    let ReportEvent::ReportFiled(event) = filed() else { panic!("expected ReportFiled") };
    let mut record = ReportRecord::filed(&event);
    // Filed on Friday 20 November 2026: three working days end on Wednesday the 25th.
    assert_eq!(record.acknowledge_by(3), day(2026, 11, 25));
    assert!(!record.overdue(3, day(2026, 11, 25)));
    assert!(record.overdue(3, day(2026, 11, 26)));
    record.apply(&ReportEvent::ReportAcknowledged(ReportAcknowledged {
        acknowledged_on: day(2026, 11, 26),
    }));
    assert!(!record.overdue(3, day(2026, 11, 30)));
}

#[test]
fn d4_overdue_cutoff_agrees_with_the_deadline() {
    for offset in 0..21 {
        let today = day(2026, 11, 1) + chrono::Duration::days(offset);
        for n in [1, 3, 5, 10] {
            let cutoff = overdue_if_filed_by(today, n);
            assert!(add_working_days(cutoff, n) < today, "{today} {n}: {cutoff} is not overdue");
            let next = cutoff.succ_opt().expect("a next day");
            assert!(add_working_days(next, n) >= today, "{today} {n}: {next} is overdue too");
        }
    }
}

#[test]
fn d3_a_conversation_follows_the_report() {
    let command = ReportCommand::RecordConversation {
        conversation: ReportConversationRecorded {
            form: ConversationForm::SchoolAndCompany,
            held_on: day(2026, 11, 19),
            safe_for_student: true,
        },
        today: day(2026, 11, 24),
    };
    ReportTest::with(())
        .given(vec![filed()])
        .when(command)
        .then_expect_error(ReportError::HeldBeforeFiling);
}

#[test]
fn d4_an_outcome_is_backed_by_the_steps_taken() {
    let talked = ReportEvent::ReportConversationRecorded(ReportConversationRecorded {
        form: ConversationForm::SchoolAndCompany,
        held_on: day(2026, 11, 23),
        safe_for_student: false,
    });
    for outcome in [ReportOutcome::Replaced, ReportOutcome::HandedToSbb] {
        ReportTest::with(())
            .given(vec![filed(), talked.clone()])
            .when(ReportCommand::Close { outcome, on: day(2026, 11, 24) })
            .then_expect_error(ReportError::OutcomeNotBacked);
    }
    ReportTest::with(())
        .given(vec![filed(), escalated()])
        .when(ReportCommand::Close { outcome: ReportOutcome::HandedToSbb, on: day(2026, 11, 24) })
        .then_expect_events(vec![ReportEvent::ReportClosed(ReportClosed {
            outcome: ReportOutcome::HandedToSbb,
            closed_on: day(2026, 11, 24),
        })]);
}

#[test]
fn d2_a_filing_is_checked_before_anything_is_sealed() {
    let bare = filing(ReportKind::Discrimination, vec![]);
    assert_eq!(bare.check(None), Err(ReportError::GroundsRequired));
    let elsewhere = filing(ReportKind::Misuse, vec![]);
    assert_eq!(elsewhere.check(Some(&other_company())), Err(ReportError::PlacementAtOtherCompany));
    assert_eq!(elsewhere.check(Some(&company())), Ok(()));
}

#[test]
fn d4_working_days_between_is_the_inverse_of_add_working_days() {
    let filed = NaiveDate::from_ymd_opt(2026, 11, 20).expect("valid"); // a Friday
    for n in 0..25 {
        let deadline = add_working_days(filed, n);
        assert_eq!(working_days_between(filed, deadline), n, "{n}");
    }
    let saturday = NaiveDate::from_ymd_opt(2026, 11, 21).expect("valid");
    assert_eq!(working_days_between(filed, saturday), 0, "a weekend day adds none");
    assert_eq!(working_days_between(saturday, filed), 0, "before the filing: none");
}
