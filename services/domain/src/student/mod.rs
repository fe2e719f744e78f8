//! The student (student) as the school enrols them: qualification, level,
//! pathway, cohort, and the learning wish that objective matching reads (M1).
//! The aggregate id joins the school's code and its own student number, so a
//! number is unique only within its school.

mod events;
#[cfg(test)]
mod tests;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

pub use events::{
    Enrolment, LearningWishRecorded, StudentEnrolled, StudentEnrolmentUpdated, StudentEvent,
    SupportNeedRecorded,
};

use crate::Visibility;
use crate::protected::{Cipher, Sealed};
use crate::values::{Description, Location, SchoolId, StudentNumber};

/// The aggregate id of a student: `<school>:<student number>`.
pub fn student_key(school: &SchoolId, student: &StudentNumber) -> String {
    format!("{school}:{student}")
}

/// A command on the student aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum StudentCommand {
    /// The school enrols a new student; refused when the number is taken.
    Enroll(StudentEnrolled),
    /// The school's system synchronises a student: enrols, updates, or (when
    /// nothing changed) records nothing, so a repeated import is idempotent.
    Sync(StudentEnrolled),
    /// The student or the school records the learning wish (M1).
    RecordLearningWish(LearningWishRecorded),
    /// The school records the student's extra support need (G3), or `None`
    /// for none any more; the cipher seals it under the student's key.
    RecordSupportNeed(Option<Description>, Cipher),
}

/// Why a student command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StudentError {
    /// The school already enrolled a student under this number.
    #[error("the school already enrolled a student with this number")]
    AlreadyEnrolled,
    /// No student is enrolled under this number.
    #[error("no student is enrolled with this number")]
    NotEnrolled,
}

/// A student's record: the state the aggregate decides on and the read model serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentRecord {
    /// The school.
    pub school: SchoolId,
    /// The school's number for the student.
    pub student_id: StudentNumber,
    /// The enrolment.
    pub enrolment: Enrolment,
    /// The latest learning wish, if any.
    pub learning_wish: Option<LearningWishRecorded>,
    /// The latest support need as recorded (sealed: it may say "none").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_need: Option<Sealed>,
}

impl StudentRecord {
    /// The record an aggregate's first event starts; `None` for any other
    /// event (which `decide` never records first).
    pub fn start(event: &StudentEvent) -> Option<Self> {
        match event {
            StudentEvent::StudentEnrolled(started) => Some(StudentRecord::enrolled(started)),
            _ => None,
        }
    }

    /// The aggregate id.
    pub fn key(&self) -> String {
        student_key(&self.school, &self.student_id)
    }

    /// Folds one event into the record (the first event starts it: see `Student::apply`).
    pub fn apply(&mut self, event: &StudentEvent) {
        match event {
            StudentEvent::StudentEnrolled(enrolled) => self.enrolment = enrolled.enrolment.clone(),
            StudentEvent::StudentEnrolmentUpdated(updated) => {
                self.enrolment = updated.enrolment.clone()
            }
            StudentEvent::LearningWishRecorded(wish) => self.learning_wish = Some(wish.clone()),
            StudentEvent::SupportNeedRecorded(need) => {
                self.support_need = Some(need.support_need.clone())
            }
        }
    }

    /// The record an enrolment starts.
    pub fn enrolled(event: &StudentEnrolled) -> Self {
        Self {
            school: event.school.clone(),
            student_id: event.student_id.clone(),
            enrolment: event.enrolment.clone(),
            learning_wish: None,
            support_need: None,
        }
    }
}

/// The student aggregate: nothing until enrolled.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Student {
    record: Option<StudentRecord>,
}

impl Student {
    /// The record, once enrolled.
    pub fn record(&self) -> Option<&StudentRecord> {
        self.record.as_ref()
    }

    fn decide(&self, command: StudentCommand) -> Result<Option<StudentEvent>, StudentError> {
        match (command, &self.record) {
            (StudentCommand::Enroll(_), Some(_)) => Err(StudentError::AlreadyEnrolled),
            (StudentCommand::Enroll(enrolled) | StudentCommand::Sync(enrolled), None) => {
                Ok(Some(StudentEvent::StudentEnrolled(enrolled)))
            }
            (StudentCommand::Sync(enrolled), Some(record)) => Ok((record.enrolment
                != enrolled.enrolment)
                .then_some(StudentEvent::StudentEnrolmentUpdated(StudentEnrolmentUpdated {
                    enrolment: enrolled.enrolment,
                }))),
            (
                StudentCommand::RecordLearningWish(_) | StudentCommand::RecordSupportNeed(..),
                None,
            ) => Err(StudentError::NotEnrolled),
            (StudentCommand::RecordSupportNeed(need, cipher), Some(_)) => {
                Ok(Some(StudentEvent::SupportNeedRecorded(SupportNeedRecorded {
                    support_need: cipher.seal(&need),
                })))
            }
            (StudentCommand::RecordLearningWish(mut wish), Some(_)) => {
                // Data minimisation: a place to travel from, never an address.
                wish.travel_from = wish.travel_from.map(Location::coarse);
                Ok(Some(StudentEvent::LearningWishRecorded(wish)))
            }
        }
    }
}

impl Aggregate for Student {
    const TYPE: &'static str = "student";
    type Command = StudentCommand;
    type Event = StudentEvent;
    type Error = StudentError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if let Some(event) = self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        crate::fold_record(&mut self.record, &event, StudentRecord::start, StudentRecord::apply);
    }
}

impl Visibility for Student {
    fn audience(&self) -> Vec<(&'static str, String)> {
        self.record
            .as_ref()
            .map(|r| vec![("school", r.school.to_string()), ("student", r.key())])
            .unwrap_or_default()
    }
}
