//! Given/when/then tests of the placement rules, named after the rule they prove.

use std::sync::Arc;

use chrono::NaiveDate;
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;
use crate::values::{
    CompanyId, ContactRef, Crebo, Level, Pathway, Period, Reason, SchoolId, StudentNumber,
};
use crate::wage::WageTable;

type PlacementTest = TestFramework<Placement>;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
}

fn reason(text: &str) -> Reason {
    Reason::parse(text).expect("valid reason")
}

const PLACEMENT: Uuid = Uuid::from_u128(1);
const OFFER: Uuid = Uuid::from_u128(2);

fn student(pathway: Pathway) -> StudentFacts {
    StudentFacts {
        student: PlacementStudent {
            school: SchoolId::parse("25XX").expect("valid"),
            student_id: StudentNumber::parse("s-1").expect("valid"),
            level: Level::parse(2).expect("valid"),
            pathway,
        },
        qualification: Crebo::parse("25180").expect("valid"),
    }
}

fn period() -> Period {
    Period::parse(day(2027, 2, 1), day(2027, 6, 30)).expect("valid")
}

fn offer() -> OfferFacts {
    OfferFacts {
        offer_id: OFFER,
        company_id: CompanyId::parse("100012345").expect("valid"),
        qualification: Crebo::parse("25180").expect("valid"),
        levels: vec![Level::parse(2).expect("valid"), Level::parse(3).expect("valid")],
        period: period(),
    }
}

fn propose(pathway: Pathway) -> PlacementCommand {
    PlacementCommand::ProposeMatch {
        placement_id: PLACEMENT,
        student: student(pathway),
        offer: offer(),
        company_may_host: true,
        explanation: None,
        replaces: None,
        matching_round_id: None,
    }
}

fn proposed(pathway: Pathway) -> PlacementEvent {
    let mut events = Placement::default().decide(propose(pathway)).expect("a valid proposal");
    events.remove(0)
}

fn accepted() -> PlacementEvent {
    PlacementEvent::MatchAccepted(MatchAccepted { accepted_on: day(2026, 12, 1) })
}

fn terms(expense_allowance: i64, hourly_wage: Option<i64>) -> AgreementTerms {
    AgreementTerms {
        period: period(),
        hours_per_week: 32,
        learning_goals: vec![],
        school_contact: ContactRef::parse("BPV-017").expect("valid"),
        company_trainer: ContactRef::parse("PO-3").expect("valid"),
        compensation: Compensation {
            costs: vec![
                Cost { kind: CostKind::Travel, amount: Cents(4_000) },
                Cost { kind: CostKind::Vog, amount: Cents(4_100) },
            ],
            expense_allowance: Cents(expense_allowance),
            internship_allowance: None,
            hourly_wage: hourly_wage.map(Cents),
        },
        contact_plan: vec![],
    }
}

/// Born so the student is 20 at the start (1 Feb 2027).
const ADULT_ENOUGH: (i32, u32, u32) = (2006, 6, 1);
/// Born so the student is 17 at the start.
const MINOR: (i32, u32, u32) = (2009, 6, 1);

fn draft_command(born: (i32, u32, u32), expense: i64, wage: Option<i64>) -> PlacementCommand {
    PlacementCommand::DraftAgreement {
        terms: terms(expense, wage),
        date_of_birth: day(born.0, born.1, born.2),
        // A wage is given exactly for the BBL tests.
        pathway: if wage.is_some() { Pathway::Bbl } else { Pathway::Bol },
        wages: Arc::new(WageTable::embedded()),
    }
}

fn drafted(version: u32, signatures: &[Signatory], minimum: Option<i64>) -> PlacementEvent {
    PlacementEvent::AgreementDrafted(AgreementDrafted {
        agreement_version: version,
        terms: terms(8_100, minimum),
        required_signatures: signatures.to_vec(),
        minimum_hourly_wage: minimum.map(Cents),
    })
}

const TRIANGLE: [Signatory; 3] = [Signatory::Student, Signatory::School, Signatory::Company];

fn signed(party: Signatory) -> PlacementEvent {
    PlacementEvent::AgreementSigned(AgreementSigned {
        party,
        agreement_version: 1,
        signed_on: day(2027, 1, 10),
    })
}

fn ready_to_start() -> Vec<PlacementEvent> {
    let mut events = vec![proposed(Pathway::Bol), accepted(), drafted(1, &TRIANGLE, None)];
    events.extend(TRIANGLE.map(signed));
    events
}

fn started() -> Vec<PlacementEvent> {
    let mut events = ready_to_start();
    events.push(PlacementEvent::PlacementStarted(PlacementStarted { started_on: day(2027, 2, 1) }));
    events
}

fn moment(n: u128, kind: ContactKind, mode: ContactMode) -> ContactMomentHeld {
    ContactMomentHeld {
        moment_id: Uuid::from_u128(100 + n),
        kind,
        mode,
        held_on: day(2027, 2, 1) + chrono::Duration::days(i64::try_from(n).unwrap_or(0) * 30),
        participants: vec![Participant::Student, Participant::School, Participant::Company],
        recorded_by: Participant::School,
    }
}

fn held(n: u128, kind: ContactKind, mode: ContactMode) -> PlacementEvent {
    PlacementEvent::ContactMomentHeld(moment(n, kind, mode))
}

fn start(company_may_host: bool) -> PlacementCommand {
    PlacementCommand::Start {
        company_may_host,
        today: day(2027, 2, 1),
        date_of_birth: day(ADULT_ENOUGH.0, ADULT_ENOUGH.1, ADULT_ENOUGH.2),
    }
}

fn transition_refused(
    action: &'static str,
    status: &'static str,
    rule: Option<&'static str>,
) -> PlacementError {
    PlacementError::InvalidTransition { status, action, rule }
}

// Proposals and answers (M1-M3, S1)

#[test]
fn m1_a_match_records_the_student_offer_and_period() {
    PlacementTest::with(())
        .given_no_previous_events()
        .when(propose(Pathway::Bol))
        .then_expect_events(vec![proposed(Pathway::Bol)]);
}

#[test]
fn m1_a_match_needs_the_students_qualification() {
    let mut command = propose(Pathway::Bol);
    if let PlacementCommand::ProposeMatch { offer, .. } = &mut command {
        offer.qualification = Crebo::parse("25181").expect("valid");
    }
    PlacementTest::with(()).given_no_previous_events().when(command).then_expect_error(
        PlacementError::QualificationMismatch { offer: "25181".into(), student: "25180".into() },
    );
}

#[test]
fn m1_a_match_needs_a_level_the_offer_takes() {
    let mut command = propose(Pathway::Bol);
    if let PlacementCommand::ProposeMatch { offer, .. } = &mut command {
        offer.levels = vec![Level::parse(4).expect("valid")];
    }
    PlacementTest::with(())
        .given_no_previous_events()
        .when(command)
        .then_expect_error(PlacementError::LevelMismatch(2));
}

#[test]
fn s1_no_match_with_a_company_that_may_not_host() {
    let mut command = propose(Pathway::Bol);
    if let PlacementCommand::ProposeMatch { company_may_host, .. } = &mut command {
        *company_may_host = false;
    }
    PlacementTest::with(())
        .given_no_previous_events()
        .when(command)
        .then_expect_error(PlacementError::CompanyMayNotHost);
}

#[test]
fn m2_a_self_found_placement_needs_the_schools_approval() {
    let self_found = PlacementCommand::ProposeSelfFound {
        placement_id: PLACEMENT,
        student: student(Pathway::Bol),
        company_id: CompanyId::parse("100012345").expect("valid"),
        qualification: Crebo::parse("25180").expect("valid"),
        company_may_host: true,
        note: None,
        proposed_by: Participant::Student,
        replaces: None,
    };
    let events = Placement::default().decide(self_found).expect("valid proposal");
    PlacementTest::with(())
        .given(events.clone())
        .when(PlacementCommand::Accept { today: day(2026, 12, 1) })
        .then_expect_error(transition_refused(
            "accepting the match",
            "self_found_proposed",
            Some("M3"),
        ));
    PlacementTest::with(())
        .given(events.clone())
        .when(PlacementCommand::ApproveSelfFound {
            company_may_host: false,
            today: day(2026, 12, 1),
        })
        .then_expect_error(PlacementError::CompanyMayNotHost);
    PlacementTest::with(())
        .given(events)
        .when(PlacementCommand::ApproveSelfFound {
            company_may_host: true,
            today: day(2026, 12, 1),
        })
        .then_expect_events(vec![PlacementEvent::SelfFoundPlacementApproved(
            SelfFoundPlacementApproved { approved_on: day(2026, 12, 1) },
        )]);
}

#[test]
fn m3_a_second_accept_is_refused() {
    PlacementTest::with(())
        .given(vec![proposed(Pathway::Bol), accepted()])
        .when(PlacementCommand::Accept { today: day(2026, 12, 2) })
        .then_expect_error(transition_refused("accepting the match", "accepted", Some("M3")));
}

#[test]
fn m3_an_objection_needs_reasons() {
    PlacementTest::with(())
        .given(vec![proposed(Pathway::Bol)])
        .when(PlacementCommand::Object(MatchObjected { by: Participant::Company, reasons: vec![] }))
        .then_expect_error(PlacementError::ReasonsRequired);
    let objection =
        MatchObjected { by: Participant::Student, reasons: vec![reason("too far to travel")] };
    PlacementTest::with(())
        .given(vec![proposed(Pathway::Bol)])
        .when(PlacementCommand::Object(objection.clone()))
        .then_expect_events(vec![PlacementEvent::MatchObjected(objection)]);
}

// The agreement (C1, C3, G1, G4)

#[test]
fn c1_the_expense_allowance_must_cover_the_costs() {
    PlacementTest::with(())
        .given(vec![proposed(Pathway::Bol), accepted()])
        .when(draft_command(ADULT_ENOUGH, 8_099, None))
        .then_expect_error(PlacementError::ExpenseAllowanceTooLow {
            allowance: Cents(8_099),
            costs: Cents(8_100),
        });
}

#[test]
fn g1_an_adult_bol_student_signs_with_school_and_company() {
    PlacementTest::with(())
        .given(vec![proposed(Pathway::Bol), accepted()])
        .when(draft_command(ADULT_ENOUGH, 8_100, None))
        .then_expect_events(vec![drafted(1, &TRIANGLE, None)]);
}

#[test]
fn g1_a_student_under_18_at_the_start_needs_a_legal_representative() {
    let mut parties = TRIANGLE.to_vec();
    parties.push(Signatory::LegalRepresentative);
    PlacementTest::with(())
        .given(vec![proposed(Pathway::Bol), accepted()])
        .when(draft_command(MINOR, 8_100, None))
        .then_expect_events(vec![drafted(1, &parties, None)]);
}

#[test]
fn c3_a_bbl_wage_below_the_youth_minimum_is_refused() {
    // 20 at the start on the BBL scale: 61.5% of 14.71 = 9.05.
    PlacementTest::with(())
        .given(vec![proposed(Pathway::Bbl), accepted()])
        .when(draft_command(ADULT_ENOUGH, 8_100, Some(904)))
        .then_expect_error(PlacementError::WageBelowMinimum {
            wage: Cents(904),
            minimum: Cents(905),
            age: 20,
        });
    let mut without_wage = draft_command(ADULT_ENOUGH, 8_100, None);
    if let PlacementCommand::DraftAgreement { pathway, .. } = &mut without_wage {
        *pathway = Pathway::Bbl;
    }
    PlacementTest::with(())
        .given(vec![proposed(Pathway::Bbl), accepted()])
        .when(without_wage)
        .then_expect_error(PlacementError::WageMissing(Cents(905)));
}

#[test]
fn c3_g1_a_bbl_wage_at_the_minimum_is_accepted_and_needs_the_employment_contract() {
    let mut parties = TRIANGLE.to_vec();
    parties.push(Signatory::Employer);
    PlacementTest::with(())
        .given(vec![proposed(Pathway::Bbl), accepted()])
        .when(draft_command(ADULT_ENOUGH, 8_100, Some(905)))
        .then_expect_events(vec![drafted(1, &parties, Some(905))]);
}

#[test]
fn g1_placement_cannot_start_without_all_signatures() {
    let mut events = vec![proposed(Pathway::Bol), accepted(), drafted(1, &TRIANGLE, None)];
    events.push(signed(Signatory::Student));
    PlacementTest::with(())
        .given(events)
        .when(start(true))
        .then_expect_error(PlacementError::SignaturesMissing("school, company".into()));
}

#[test]
fn g1_a_student_still_17_on_the_day_it_really_starts_needs_the_legal_representative() {
    // Drafted for a start on 1 Feb 2027, when the student is 18; started a
    // day before their birthday.
    PlacementTest::with(())
        .given(ready_to_start())
        .when(PlacementCommand::Start {
            company_may_host: true,
            today: day(2027, 1, 14),
            date_of_birth: day(2009, 1, 15),
        })
        .then_expect_error(PlacementError::SignaturesMissing("legal_representative".into()));
}

#[test]
fn c3_g1_the_pathway_now_decides_not_the_one_at_the_proposal() {
    // Proposed as BOL, since changed to BBL: the wage check and the
    // employment contract apply.
    let mut command = draft_command(ADULT_ENOUGH, 8_100, None);
    if let PlacementCommand::DraftAgreement { pathway, .. } = &mut command {
        *pathway = Pathway::Bbl;
    }
    PlacementTest::with(())
        .given(vec![proposed(Pathway::Bol), accepted()])
        .when(command)
        .then_expect_error(PlacementError::WageMissing(Cents(905)));
}

#[test]
fn g1_a_placement_without_an_agreement_cannot_start() {
    PlacementTest::with(())
        .given(vec![proposed(Pathway::Bol), accepted()])
        .when(start(true))
        .then_expect_error(transition_refused("starting the placement", "accepted", Some("G1")));
}

#[test]
fn g1_a_signature_the_agreement_does_not_need_is_refused_and_so_is_a_second_one() {
    PlacementTest::with(())
        .given(vec![proposed(Pathway::Bol), accepted(), drafted(1, &TRIANGLE, None)])
        .when(PlacementCommand::Sign { party: Signatory::Employer, today: day(2027, 1, 10) })
        .then_expect_error(PlacementError::SignatureNotRequired("employer"));
    PlacementTest::with(())
        .given(vec![
            proposed(Pathway::Bol),
            accepted(),
            drafted(1, &TRIANGLE, None),
            signed(Signatory::School),
        ])
        .when(PlacementCommand::Sign { party: Signatory::School, today: day(2027, 1, 10) })
        .then_expect_error(PlacementError::AlreadySigned("school"));
}

#[test]
fn g1_a_redraft_lapses_the_earlier_signatures() {
    let mut events = ready_to_start();
    events.push(drafted(2, &TRIANGLE, None));
    PlacementTest::with(())
        .given(events)
        .when(start(true))
        .then_expect_error(PlacementError::SignaturesMissing("student, school, company".into()));
}

#[test]
fn g1_s1_a_signed_agreement_at_a_recognised_company_starts() {
    PlacementTest::with(()).given(ready_to_start()).when(start(true)).then_expect_events(vec![
        PlacementEvent::PlacementStarted(PlacementStarted { started_on: day(2027, 2, 1) }),
    ]);
}

#[test]
fn s1_a_placement_at_a_suspended_company_cannot_start() {
    PlacementTest::with(())
        .given(ready_to_start())
        .when(start(false))
        .then_expect_error(PlacementError::CompanyMayNotHost);
    let mut at_risk = ready_to_start();
    at_risk.push(PlacementEvent::RecognitionSuspensionNoticed(RecognitionSuspensionNoticed {
        change: RecognitionChange::Suspended,
        reaction_to: "company:100012345:3".into(),
    }));
    PlacementTest::with(())
        .given(at_risk)
        .when(start(true))
        .then_expect_error(PlacementError::CompanyMayNotHost);
}

// Guidance (G2, G3, G4)

#[test]
fn g2_a_contact_moment_needs_a_started_placement() {
    PlacementTest::with(())
        .given(ready_to_start())
        .when(PlacementCommand::RecordContactMoment {
            held: moment(0, ContactKind::Start, ContactMode::OnSite),
            today: day(2027, 2, 1),
        })
        .then_expect_error(transition_refused("recording a contact moment", "agreed", Some("G2")));
}

#[test]
fn g2_a_contact_moment_is_not_in_the_future_and_its_recorder_took_part() {
    PlacementTest::with(())
        .given(started())
        .when(PlacementCommand::RecordContactMoment {
            held: moment(1, ContactKind::Start, ContactMode::OnSite),
            today: day(2027, 2, 1),
        })
        .then_expect_error(PlacementError::HeldInFuture);
    let mut absent = moment(0, ContactKind::Start, ContactMode::OnSite);
    absent.participants = vec![Participant::Student, Participant::Company];
    PlacementTest::with(())
        .given(started())
        .when(PlacementCommand::RecordContactMoment { held: absent, today: day(2027, 2, 1) })
        .then_expect_error(PlacementError::RecorderNotParticipant);
}

#[test]
fn g2_a_contact_moment_is_not_before_the_start() {
    let mut early = moment(0, ContactKind::Start, ContactMode::OnSite);
    early.held_on = day(2027, 1, 31);
    PlacementTest::with(())
        .given(started())
        .when(PlacementCommand::RecordContactMoment { held: early, today: day(2027, 2, 1) })
        .then_expect_error(PlacementError::HeldBeforeStart);
}

#[test]
fn g2_completion_needs_start_midway_and_end_with_one_on_site() {
    let mut events = started();
    events.push(held(0, ContactKind::Start, ContactMode::Video));
    events.push(held(1, ContactKind::Midway, ContactMode::Phone));
    PlacementTest::with(())
        .given(events.clone())
        .when(PlacementCommand::Complete { today: day(2027, 6, 30) })
        .then_expect_error(PlacementError::ContactMomentsMissing("end".into()));
    events.push(held(2, ContactKind::End, ContactMode::Video));
    PlacementTest::with(())
        .given(events.clone())
        .when(PlacementCommand::Complete { today: day(2027, 6, 30) })
        .then_expect_error(PlacementError::ContactMomentsMissing("a moment on site".into()));
    events.push(held(3, ContactKind::End, ContactMode::OnSite));
    PlacementTest::with(())
        .given(events)
        .when(PlacementCommand::Complete { today: day(2027, 6, 30) })
        .then_expect_events(vec![PlacementEvent::PlacementCompleted(PlacementCompleted {
            completed_on: day(2027, 6, 30),
        })]);
}

#[test]
fn g2_a_moment_without_the_whole_triangle_does_not_count() {
    let mut events = started();
    let mut pair = moment(0, ContactKind::Start, ContactMode::OnSite);
    pair.participants = vec![Participant::School, Participant::Company];
    events.push(PlacementEvent::ContactMomentHeld(pair));
    events.push(held(1, ContactKind::Midway, ContactMode::OnSite));
    events.push(held(2, ContactKind::End, ContactMode::OnSite));
    PlacementTest::with(())
        .given(events)
        .when(PlacementCommand::Complete { today: day(2027, 6, 30) })
        .then_expect_error(PlacementError::ContactMomentsMissing("start".into()));
}

#[test]
fn g2_a_recorded_waiver_allows_completion() {
    let mut events = started();
    events.push(PlacementEvent::ContactMomentRequirementWaived(ContactMomentRequirementWaived {
        reason: reason("student abroad for the second half; guidance by video with the trainer"),
    }));
    PlacementTest::with(())
        .given(events)
        .when(PlacementCommand::Complete { today: day(2027, 6, 30) })
        .then_expect_events(vec![PlacementEvent::PlacementCompleted(PlacementCompleted {
            completed_on: day(2027, 6, 30),
        })]);
}

#[test]
fn g2_another_participant_confirms_a_contact_moment_once() {
    let mut events = started();
    events.push(held(0, ContactKind::Start, ContactMode::OnSite));
    let confirm = |party| {
        PlacementCommand::ConfirmContactMoment(ContactMomentConfirmed {
            moment_id: Uuid::from_u128(100),
            party,
        })
    };
    PlacementTest::with(())
        .given(events.clone())
        .when(confirm(Participant::School))
        .then_expect_error(PlacementError::CannotConfirm);
    PlacementTest::with(())
        .given(events.clone())
        .when(confirm(Participant::Student))
        .then_expect_events(vec![PlacementEvent::ContactMomentConfirmed(ContactMomentConfirmed {
            moment_id: Uuid::from_u128(100),
            party: Participant::Student,
        })]);
    events.push(PlacementEvent::ContactMomentConfirmed(ContactMomentConfirmed {
        moment_id: Uuid::from_u128(100),
        party: Participant::Student,
    }));
    PlacementTest::with(())
        .given(events)
        .when(confirm(Participant::Student))
        .then_expect_events(vec![]);
}

#[test]
fn g2_overdue_moments_make_the_placement_need_attention() {
    let mut placement = Placement::default();
    for event in started() {
        placement.apply(event);
    }
    let record = placement.record().expect("proposed");
    // The start moment is due 14 days after the start (1 Feb 2027).
    assert!(!record.needs_attention(day(2027, 2, 15)));
    assert!(record.needs_attention(day(2027, 2, 16)));
    let compliance = record.compliance(day(2027, 2, 16));
    assert_eq!(compliance.overdue, vec![ContactKind::Start]);
    assert_eq!(compliance.signatures_missing, vec![]);
    assert!(!compliance.g2_met);
    placement.apply(held(0, ContactKind::Start, ContactMode::OnSite));
    let record = placement.record().expect("proposed");
    assert!(!record.needs_attention(day(2027, 2, 16)));
    assert_eq!(record.compliance(day(2027, 2, 16)).contact_moments.on_site, 1);
}

#[test]
fn g1_missing_signatures_make_the_placement_need_attention() {
    let mut placement = Placement::default();
    for event in [proposed(Pathway::Bol), accepted(), drafted(1, &TRIANGLE, None)] {
        placement.apply(event);
    }
    let record = placement.record().expect("proposed");
    assert!(record.needs_attention(day(2026, 12, 1)));
    assert_eq!(record.next_action_for_student(), Some(NextAction::SignAgreement));
}

#[test]
fn g3_a_warm_handover_is_recorded_before_or_during_the_placement() {
    let handover = WarmHandoverHeld { held_on: day(2027, 1, 20) };
    PlacementTest::with(())
        .given(ready_to_start())
        .when(PlacementCommand::RecordWarmHandover(handover.clone()))
        .then_expect_events(vec![PlacementEvent::WarmHandoverHeld(handover.clone())]);
    PlacementTest::with(())
        .given(vec![proposed(Pathway::Bol)])
        .when(PlacementCommand::RecordWarmHandover(handover))
        .then_expect_error(transition_refused("recording a warm handover", "proposed", Some("G3")));
}

#[test]
fn g4_a_rating_needs_a_started_placement_and_scores_of_1_to_5() {
    let rating = GuidanceRated { school_score: 4, company_score: 5 };
    PlacementTest::with(())
        .given(ready_to_start())
        .when(PlacementCommand::Rate(rating.clone()))
        .then_expect_error(transition_refused(
            "rating the guidance before the start",
            "agreed",
            Some("G4"),
        ));
    PlacementTest::with(())
        .given(started())
        .when(PlacementCommand::Rate(GuidanceRated { school_score: 6, company_score: 5 }))
        .then_expect_error(PlacementError::ScoreOutOfRange);
    PlacementTest::with(())
        .given(started())
        .when(PlacementCommand::Rate(rating.clone()))
        .then_expect_events(vec![PlacementEvent::GuidanceRated(rating)]);
}

// Reactions to the company's recognition (S1, D5), exactly once

fn notice(change: RecognitionChange, reaction: &str) -> PlacementCommand {
    PlacementCommand::NoticeRecognitionChange {
        change,
        reason: reason("recognition revoked after investigation"),
        reaction_to: reaction.into(),
        today: day(2027, 3, 1),
    }
}

#[test]
fn s1_a_suspension_puts_a_pending_placement_at_risk_once() {
    let noticed = PlacementEvent::RecognitionSuspensionNoticed(RecognitionSuspensionNoticed {
        change: RecognitionChange::Suspended,
        reaction_to: "company:c:4".into(),
    });
    PlacementTest::with(())
        .given(vec![proposed(Pathway::Bol)])
        .when(notice(RecognitionChange::Suspended, "company:c:4"))
        .then_expect_events(vec![noticed.clone()]);
    PlacementTest::with(())
        .given(vec![proposed(Pathway::Bol), noticed.clone()])
        .when(notice(RecognitionChange::Suspended, "company:c:4"))
        .then_expect_events(vec![]);
    // The same suspension reached by another path (a proposal decided just
    // before it) is not noticed twice either.
    PlacementTest::with(())
        .given(vec![proposed(Pathway::Bol), noticed.clone()])
        .when(notice(RecognitionChange::Suspended, "placement:p:1"))
        .then_expect_events(vec![]);
    PlacementTest::with(())
        .given(vec![proposed(Pathway::Bol), noticed])
        .when(PlacementCommand::NoticeReinstatement { reaction_to: "company:c:5".into() })
        .then_expect_events(vec![PlacementEvent::RecognitionReinstatementNoticed(
            RecognitionReinstatementNoticed { reaction_to: "company:c:5".into() },
        )]);
}

#[test]
fn s1_a_revocation_interrupts_an_active_placement_and_asks_for_an_alternative() {
    let mut placement = Placement::default();
    for event in started() {
        placement.apply(event);
    }
    let events = placement
        .decide(notice(RecognitionChange::Revoked, "company:c:6"))
        .expect("a reaction is never refused");
    assert!(matches!(
        events.as_slice(),
        [PlacementEvent::PlacementInterrupted(PlacementInterrupted {
            cause: InterruptionCause::RecognitionRevoked,
            ..
        })]
    ));
    for event in events {
        placement.apply(event);
    }
    let record = placement.record().expect("proposed");
    assert_eq!(record.status, PlacementStatus::Interrupted);
    assert_eq!(record.alternative, Some(Alternative::Needed));
    assert!(record.needs_attention(day(2027, 3, 1)));
    // Replayed after a crash: nothing more.
    assert_eq!(placement.decide(notice(RecognitionChange::Revoked, "company:c:6")), Ok(vec![]));
    let offered = placement
        .decide(PlacementCommand::NoticeAlternative {
            alternative_placement_id: Uuid::from_u128(9),
            reaction_to: "placement:9:1".into(),
        })
        .expect("recorded");
    for event in offered {
        placement.apply(event);
    }
    let record = placement.record().expect("proposed");
    assert_eq!(record.alternative, Some(Alternative::Offered(Uuid::from_u128(9))));
    assert!(!record.needs_attention(day(2027, 3, 1)));
}

#[test]
fn s1_a_closed_placement_ignores_recognition_changes() {
    let mut events = started();
    events.push(PlacementEvent::PlacementInterrupted(PlacementInterrupted {
        reason: reason("student moved"),
        cause: InterruptionCause::School,
        interrupted_on: day(2027, 2, 20),
        reaction_to: None,
    }));
    PlacementTest::with(())
        .given(events)
        .when(notice(RecognitionChange::Suspended, "company:c:7"))
        .then_expect_events(vec![]);
}

#[test]
fn event_types_match_their_serde_names() {
    let event = proposed(Pathway::Bol);
    let json = serde_json::to_value(&event).expect("serialises");
    let name = json.as_object().and_then(|o| o.keys().next().cloned()).expect("tagged");
    assert_eq!(cqrs_es::DomainEvent::event_type(&event), name);
}
