//! An anonymised signal (signaal) a school passes to SBB about a recognised
//! company (D4): the company, the kind, the grounds and the quarter. Nothing
//! else: not the student, not the school, not the report it came from, no date
//! finer than a quarter. A signal is an aggregate of its own so that not even
//! its id or its place in the log ties it to the report.

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Visibility;
use crate::protected::{Cipher, Sealed};
use crate::report::{Ground, ReportKind};
use crate::values::{CompanyId, Quarter};

/// SBB received an anonymised signal. The grounds are sealed like every ground
/// in the log (under SBB's signals key, not the student's: a signal is not the
/// student's data and stays when the student's data is erased).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalReceived {
    /// The company it is about.
    pub company_id: CompanyId,
    /// What was reported.
    pub kind: ReportKind,
    /// The grounds, sealed: a list of [`Ground`].
    pub grounds: Sealed,
    /// The quarter the report was filed in.
    pub quarter: Quarter,
}

/// Everything that can happen to a signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SignalEvent {
    /// See [`SignalReceived`].
    SignalReceived(SignalReceived),
}

impl DomainEvent for SignalEvent {
    fn event_type(&self) -> String {
        "SignalReceived".to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// The school forwards a signal (the report records that it did, with consent).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiveSignal {
    /// The company.
    pub company_id: CompanyId,
    /// The kind.
    pub kind: ReportKind,
    /// The grounds in the clear.
    pub grounds: Vec<Ground>,
    /// The day the report was filed: only its quarter is kept.
    pub filed_on: NaiveDate,
    /// SBB's signals cipher.
    pub cipher: Cipher,
}

/// Why a signal command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// The signal id is taken.
    #[error("the signal already exists")]
    AlreadyReceived,
}

/// The signal aggregate.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    received: Option<SignalReceived>,
}

impl Signal {
    /// The signal, once received.
    pub fn received(&self) -> Option<&SignalReceived> {
        self.received.as_ref()
    }
}

impl Aggregate for Signal {
    const TYPE: &'static str = "signal";
    type Command = ReceiveSignal;
    type Event = SignalEvent;
    type Error = SignalError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if self.received.is_some() {
            return Err(SignalError::AlreadyReceived);
        }
        let event = SignalReceived {
            company_id: command.company_id,
            kind: command.kind,
            grounds: command.cipher.seal(&command.grounds),
            quarter: Quarter::of(command.filed_on),
        };
        sink.write(SignalEvent::SignalReceived(event), self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        let SignalEvent::SignalReceived(received) = event;
        self.received = Some(received);
    }
}

impl Visibility for Signal {
    // SBB only: no party is named, so no school, company or student sees it.
    fn audience(&self) -> Vec<(&'static str, String)> {
        vec![]
    }
}
