//! Given/when/then tests of the student aggregate.

use chrono::NaiveDate;
use cqrs_es::test::TestFramework;

use super::*;
use crate::values::{Crebo, Level, Pathway, Region};

type StudentTest = TestFramework<Student>;

fn enrolled(level: i64) -> StudentEnrolled {
    StudentEnrolled {
        school: SchoolId::parse("25XX").expect("valid"),
        student_id: StudentNumber::parse("s-1").expect("valid"),
        enrolment: Enrolment {
            qualification: Crebo::parse("25180").expect("valid"),
            level: Level::parse(level).expect("valid"),
            pathway: Pathway::Bol,
            cohort: 2026,
            first_year: true,
            date_of_birth: NaiveDate::from_ymd_opt(2009, 5, 1).expect("valid"),
        },
    }
}

fn wish() -> LearningWishRecorded {
    LearningWishRecorded {
        learning_goals: vec![],
        competences: vec![],
        sectors: vec![],
        region: Region::parse("Utrecht").expect("valid"),
        max_travel_km: Some(25),
        travel_from: None,
    }
}

#[test]
fn enrolling_records_the_student() {
    StudentTest::with(())
        .given_no_previous_events()
        .when(StudentCommand::Enroll(enrolled(2)))
        .then_expect_events(vec![StudentEvent::StudentEnrolled(enrolled(2))]);
}

#[test]
fn a_student_number_is_enrolled_once_per_school() {
    StudentTest::with(())
        .given(vec![StudentEvent::StudentEnrolled(enrolled(2))])
        .when(StudentCommand::Enroll(enrolled(3)))
        .then_expect_error(StudentError::AlreadyEnrolled);
}

#[test]
fn sync_of_an_unchanged_student_records_nothing() {
    StudentTest::with(())
        .given(vec![StudentEvent::StudentEnrolled(enrolled(2))])
        .when(StudentCommand::Sync(enrolled(2)))
        .then_expect_events(vec![]);
}

#[test]
fn sync_of_a_changed_student_records_the_new_enrolment() {
    StudentTest::with(())
        .given(vec![StudentEvent::StudentEnrolled(enrolled(2))])
        .when(StudentCommand::Sync(enrolled(3)))
        .then_expect_events(vec![StudentEvent::StudentEnrolmentUpdated(StudentEnrolmentUpdated {
            enrolment: enrolled(3).enrolment,
        })]);
}

#[test]
fn m1_a_learning_wish_needs_an_enrolled_student() {
    StudentTest::with(())
        .given_no_previous_events()
        .when(StudentCommand::RecordLearningWish(wish()))
        .then_expect_error(StudentError::NotEnrolled);
    StudentTest::with(())
        .given(vec![StudentEvent::StudentEnrolled(enrolled(2))])
        .when(StudentCommand::RecordLearningWish(wish()))
        .then_expect_events(vec![StudentEvent::LearningWishRecorded(wish())]);
}

#[test]
fn g3_a_support_need_is_sealed_even_as_to_whether_there_is_one() {
    use crate::protected::Protected;
    use crate::protected::testing::cipher;
    let need =
        Description::parse("needs a quiet workplace and written instructions").expect("valid");
    let mut student = Student::default();
    student.apply(StudentEvent::StudentEnrolled(enrolled(2)));
    let recorded = |need: Option<Description>| {
        let event = student
            .decide(StudentCommand::RecordSupportNeed(need, cipher()))
            .expect("recorded")
            .expect("an event");
        let StudentEvent::SupportNeedRecorded(recorded) = event else { panic!("{event:?}") };
        recorded
    };
    let some = recorded(Some(need.clone()));
    let none = recorded(None);
    let json = serde_json::to_string(&some).expect("serialises");
    assert!(!json.contains("quiet workplace"), "{json}");
    assert_eq!(
        cipher().open::<Option<String>>(&some.support_need),
        Protected::Readable(Some(need.to_string()))
    );
    assert_eq!(cipher().open::<Option<String>>(&none.support_need), Protected::Readable(None));
    // Sealed, "none" is as long as a need: its length does not give it away.
    assert_eq!(none.support_need.data.len(), some.support_need.data.len());
}

#[test]
fn g3_a_support_need_needs_an_enrolled_student() {
    StudentTest::with(())
        .given_no_previous_events()
        .when(StudentCommand::RecordSupportNeed(None, crate::protected::testing::cipher()))
        .then_expect_error(StudentError::NotEnrolled);
}
