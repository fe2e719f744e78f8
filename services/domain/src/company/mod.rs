//! The learning company (leerbedrijf) and its recognitions (erkenningen) per
//! qualification, as SBB registers, grants, suspends, reinstates and revokes them.
//!
//! Rules: S1 (only recognised companies host placements; recognition is per
//! qualification and reassessed every four years) and D5 (SBB may suspend
//! recognition during an investigation, then revokes or reinstates it).

mod commands;
mod events;
mod record;
#[cfg(test)]
mod tests;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

pub use commands::CompanyCommand;
pub use events::{
    CompanyEvent, CompanyRegistered, MatchingParticipationSet, RecognitionGranted,
    RecognitionReinstated, RecognitionRevoked, RecognitionSuspended,
};
pub use record::{CompanyRecord, CompanyStatus, Recognition, RecognitionStatus};

use crate::values::Crebo;

/// The longest a recognition may run before SBB reassesses it (S1).
pub const RECOGNITION_TERM_YEARS: u32 = 4;

/// The company aggregate: nothing until SBB registers it, then its registry record.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Company {
    record: Option<CompanyRecord>,
}

/// Why a company command was refused. Each refusal names the pact rule behind it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompanyError {
    /// The company id is already registered.
    #[error("company is already registered")]
    AlreadyRegistered,
    /// No company is registered under this id.
    #[error("company is not registered")]
    NotRegistered,
    /// Revocation of the whole company is final for this registration (S1).
    #[error("the company's recognition has been revoked")]
    Revoked,
    /// A suspension is already running (D5).
    #[error("the company's recognition is already suspended")]
    AlreadySuspended,
    /// Only a suspended company can be reinstated (D5).
    #[error("the company's recognition is not suspended")]
    NotSuspended,
    /// No new recognition while an investigation has the company suspended (D5).
    #[error("the company's recognition is suspended; reinstate it before granting a new one")]
    SuspendedCannotGrant,
    /// The company holds no recognition for this qualification that could be revoked.
    #[error("the company holds no recognition for qualification {0}")]
    RecognitionNotHeld(Crebo),
    /// A recognition must end after the day it is granted (S1).
    #[error("valid_until must be after the grant date")]
    ValidUntilNotAfterGrant,
    /// Recognition is reassessed every four years (S1).
    #[error("valid_until may be at most {RECOGNITION_TERM_YEARS} years after the grant date")]
    RecognitionTermTooLong,
}

impl CompanyError {
    /// The pact rule this refusal enforces, if it enforces one.
    pub fn rule(&self) -> Option<&'static str> {
        match self {
            Self::AlreadyRegistered | Self::NotRegistered => None,
            Self::Revoked | Self::RecognitionNotHeld(_) => Some("S1"),
            Self::ValidUntilNotAfterGrant | Self::RecognitionTermTooLong => Some("S1"),
            Self::AlreadySuspended | Self::NotSuspended | Self::SuspendedCannotGrant => Some("D5"),
        }
    }
}

impl Company {
    /// The registry record, once the company is registered.
    pub fn record(&self) -> Option<&CompanyRecord> {
        self.record.as_ref()
    }

    fn registered(&self) -> Result<&CompanyRecord, CompanyError> {
        self.record.as_ref().ok_or(CompanyError::NotRegistered)
    }

    /// A registered company that has not been revoked as a whole.
    fn not_revoked(&self) -> Result<&CompanyRecord, CompanyError> {
        let record = self.registered()?;
        if record.revoked {
            return Err(CompanyError::Revoked);
        }
        Ok(record)
    }

    fn decide(&self, command: CompanyCommand) -> Result<Option<CompanyEvent>, CompanyError> {
        if let CompanyCommand::SetMatchingParticipation(set) = command {
            let participates_now = !self.registered()?.opted_out_of_matching;
            let changes = participates_now != set.participates;
            return Ok(changes.then_some(CompanyEvent::MatchingParticipationSet(set)));
        }
        self.decide_recognition(command).map(Some)
    }

    fn decide_recognition(&self, command: CompanyCommand) -> Result<CompanyEvent, CompanyError> {
        match command {
            CompanyCommand::SetMatchingParticipation(set) => {
                Ok(CompanyEvent::MatchingParticipationSet(set))
            }
            CompanyCommand::RegisterCompany(registered) => {
                if self.record.is_some() {
                    return Err(CompanyError::AlreadyRegistered);
                }
                Ok(CompanyEvent::CompanyRegistered(registered))
            }
            CompanyCommand::GrantRecognition(grant) => {
                let record = self.not_revoked()?;
                if record.suspension.is_some() {
                    return Err(CompanyError::SuspendedCannotGrant);
                }
                if grant.valid_until <= grant.granted_on {
                    return Err(CompanyError::ValidUntilNotAfterGrant);
                }
                let latest_end = grant
                    .granted_on
                    .checked_add_months(chrono::Months::new(12 * RECOGNITION_TERM_YEARS));
                if latest_end.is_none_or(|end| grant.valid_until > end) {
                    return Err(CompanyError::RecognitionTermTooLong);
                }
                Ok(CompanyEvent::RecognitionGranted(grant))
            }
            CompanyCommand::SuspendRecognition(suspension) => {
                if self.not_revoked()?.suspension.is_some() {
                    return Err(CompanyError::AlreadySuspended);
                }
                Ok(CompanyEvent::RecognitionSuspended(suspension))
            }
            CompanyCommand::ReinstateRecognition(reinstatement) => {
                if self.not_revoked()?.suspension.is_none() {
                    return Err(CompanyError::NotSuspended);
                }
                Ok(CompanyEvent::RecognitionReinstated(reinstatement))
            }
            CompanyCommand::RevokeRecognition(revocation) => {
                let record = self.not_revoked()?;
                if let Some(qualification) = revocation.qualification {
                    let held = record
                        .recognitions
                        .get(&qualification)
                        .is_some_and(|r| r.status != RecognitionStatus::Revoked);
                    if !held {
                        return Err(CompanyError::RecognitionNotHeld(qualification));
                    }
                }
                Ok(CompanyEvent::RecognitionRevoked(revocation))
            }
        }
    }
}

impl Aggregate for Company {
    const TYPE: &'static str = "company";
    type Command = CompanyCommand;
    type Event = CompanyEvent;
    type Error = CompanyError;
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
        crate::fold_record(&mut self.record, &event, CompanyRecord::start, CompanyRecord::apply);
    }
}
