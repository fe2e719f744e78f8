//! A complaint (klacht) at SBB's complaint desk: a school escalates a report
//! (D5). Unlike a signal it comes from a named school, which SBB hears; it
//! never names the student.

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Visibility;
use crate::protected::Sealed;
use crate::report::ReportKind;
use crate::values::{CompanyId, SchoolId};

/// SBB's complaint desk received a school's escalation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplaintReceived {
    /// The company it is about.
    pub company_id: CompanyId,
    /// The escalating school, which SBB hears (D5).
    pub school: SchoolId,
    /// What was reported.
    pub kind: ReportKind,
    /// The school's summary for SBB, sealed under the student's key (a copy of
    /// the escalation's): SBB reads it, and it is erased with the student's data.
    pub summary: Sealed,
    /// The day.
    pub received_on: NaiveDate,
}

/// Everything that can happen to a complaint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ComplaintEvent {
    /// See [`ComplaintReceived`].
    ComplaintReceived(ComplaintReceived),
}

impl DomainEvent for ComplaintEvent {
    fn event_type(&self) -> String {
        "ComplaintReceived".to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// Why a complaint command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComplaintError {
    /// The complaint id is taken.
    #[error("the complaint already exists")]
    AlreadyReceived,
}

/// The complaint aggregate.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Complaint {
    received: Option<ComplaintReceived>,
}

impl Complaint {
    /// The complaint, once received.
    pub fn received(&self) -> Option<&ComplaintReceived> {
        self.received.as_ref()
    }
}

impl Aggregate for Complaint {
    const TYPE: &'static str = "complaint";
    type Command = ComplaintReceived;
    type Event = ComplaintEvent;
    type Error = ComplaintError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if self.received.is_some() {
            return Err(ComplaintError::AlreadyReceived);
        }
        sink.write(ComplaintEvent::ComplaintReceived(command), self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        let ComplaintEvent::ComplaintReceived(received) = event;
        self.received = Some(received);
    }
}

impl Visibility for Complaint {
    // SBB and the escalating school; the company learns of it through SBB's
    // investigation, not from the school's summary.
    fn audience(&self) -> Vec<(&'static str, String)> {
        self.received.iter().map(|r| ("school", r.school.to_string())).collect()
    }
}
