//! An SBB investigation (onderzoek) of a learning company after signals or a
//! complaint (D5): both sides are heard, then SBB concludes. A suspension during
//! the investigation is a recognition operation on the company that names the
//! investigation; a conclusion of revoked or reinstated leads to the matching
//! recognition event (the API records it on the company beside the conclusion).

#[cfg(test)]
mod tests;

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Visibility;
use crate::values::CompanyId;

/// SBB opened an investigation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvestigationOpened {
    /// The company investigated.
    pub company_id: CompanyId,
    /// The anonymised signals that led to it.
    pub signal_ids: Vec<Uuid>,
    /// The complaint that led to it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complaint_id: Option<Uuid>,
    /// The day.
    pub opened_on: NaiveDate,
}

/// A side SBB hears (D5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HearingParty {
    /// The company.
    Company,
    /// The school that escalated.
    School,
}

/// SBB heard one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HearingRecorded {
    /// Who was heard.
    pub party: HearingParty,
    /// The day.
    pub held_on: NaiveDate,
}

/// How SBB concluded an investigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvestigationOutcome {
    /// The company loses its recognition.
    RecognitionRevoked,
    /// The suspension is lifted.
    RecognitionReinstated,
    /// The company agreed to measures.
    MeasuresAgreed,
    /// The signals or complaint were unfounded.
    Unfounded,
}

/// SBB concluded the investigation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvestigationConcluded {
    /// The outcome.
    pub outcome: InvestigationOutcome,
    /// The day.
    pub concluded_on: NaiveDate,
}

/// Everything that can happen to an investigation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InvestigationEvent {
    /// See [`InvestigationOpened`].
    InvestigationOpened(InvestigationOpened),
    /// See [`HearingRecorded`].
    HearingRecorded(HearingRecorded),
    /// See [`InvestigationConcluded`].
    InvestigationConcluded(InvestigationConcluded),
}

impl DomainEvent for InvestigationEvent {
    fn event_type(&self) -> String {
        match self {
            Self::InvestigationOpened(_) => "InvestigationOpened",
            Self::HearingRecorded(_) => "HearingRecorded",
            Self::InvestigationConcluded(_) => "InvestigationConcluded",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// A command on the investigation aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum InvestigationCommand {
    /// SBB opens it; `evidence_companies` are the companies of the named signals
    /// and complaint, as looked up by the caller.
    Open {
        /// The event to record.
        opened: InvestigationOpened,
        /// The company of each named signal and of the complaint.
        evidence_companies: Vec<CompanyId>,
    },
    /// SBB records a hearing.
    RecordHearing {
        /// The hearing.
        hearing: HearingRecorded,
        /// Today.
        today: NaiveDate,
    },
    /// SBB concludes; `suspended_by_it` says whether the company's running
    /// suspension names this investigation (looked up by the caller).
    Conclude {
        /// The conclusion.
        concluded: InvestigationConcluded,
        /// Whether the company is suspended for this investigation.
        suspended_by_it: bool,
    },
}

/// Why an investigation command was refused. Each refusal names its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvestigationError {
    /// The investigation id is taken.
    #[error("the investigation already exists")]
    AlreadyOpened,
    /// No such investigation.
    #[error("no such investigation")]
    NotFound,
    /// A named signal or complaint is about another company.
    #[error("a signal or complaint named is about another company")]
    EvidenceOfOtherCompany,
    /// D5: concluded already.
    #[error("the investigation is already concluded")]
    AlreadyConcluded,
    /// D5: both sides are heard before SBB concludes.
    #[error("both sides are heard before concluding: no hearing of the {0} is recorded")]
    NotHeard(&'static str),
    /// D5: reinstatement lifts a suspension made for this investigation.
    #[error("the company is not suspended for this investigation: there is nothing to reinstate")]
    NothingToReinstate,
    /// A hearing cannot be recorded before it happened.
    #[error("held_on must not be in the future")]
    HeldInFuture,
}

impl InvestigationError {
    /// The pact rule behind the refusal.
    pub fn rule(&self) -> Option<&'static str> {
        match self {
            Self::AlreadyOpened | Self::NotFound => None,
            _ => Some("D5"),
        }
    }
}

/// An investigation's record: the state the aggregate decides on and the read
/// model serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvestigationRecord {
    /// As opened.
    pub opened: InvestigationOpened,
    /// The hearings.
    pub hearings: Vec<HearingRecorded>,
    /// The conclusion.
    pub concluded: Option<InvestigationConcluded>,
}

impl InvestigationRecord {
    /// The record an aggregate's first event starts; `None` for any other
    /// event (which `decide` never records first).
    pub fn start(event: &InvestigationEvent) -> Option<Self> {
        match event {
            InvestigationEvent::InvestigationOpened(started) => {
                Some(InvestigationRecord::opened(started))
            }
            _ => None,
        }
    }

    /// Folds one event into the record (the first event starts it).
    pub fn apply(&mut self, event: &InvestigationEvent) {
        match event {
            InvestigationEvent::InvestigationOpened(_) => {}
            InvestigationEvent::HearingRecorded(e) => self.hearings.push(e.clone()),
            InvestigationEvent::InvestigationConcluded(e) => self.concluded = Some(e.clone()),
        }
    }

    /// The record an opening starts.
    pub fn opened(event: &InvestigationOpened) -> Self {
        Self { opened: event.clone(), hearings: vec![], concluded: None }
    }

    fn heard(&self, party: HearingParty) -> bool {
        self.hearings.iter().any(|h| h.party == party)
    }
}

/// The investigation aggregate.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Investigation {
    record: Option<InvestigationRecord>,
}

impl Investigation {
    /// The record, once opened.
    pub fn record(&self) -> Option<&InvestigationRecord> {
        self.record.as_ref()
    }

    /// Decides a command.
    pub fn decide(
        &self,
        command: InvestigationCommand,
    ) -> Result<InvestigationEvent, InvestigationError> {
        use InvestigationCommand as C;
        let Some(record) = &self.record else {
            return match command {
                C::Open { opened, evidence_companies } => {
                    if evidence_companies.iter().any(|company| *company != opened.company_id) {
                        return Err(InvestigationError::EvidenceOfOtherCompany);
                    }
                    Ok(InvestigationEvent::InvestigationOpened(opened))
                }
                _ => Err(InvestigationError::NotFound),
            };
        };
        if matches!(command, C::Open { .. }) {
            return Err(InvestigationError::AlreadyOpened);
        }
        if record.concluded.is_some() {
            return Err(InvestigationError::AlreadyConcluded);
        }
        match command {
            C::Open { .. } => Err(InvestigationError::AlreadyOpened),
            C::RecordHearing { hearing, today } => {
                if hearing.held_on > today {
                    return Err(InvestigationError::HeldInFuture);
                }
                Ok(InvestigationEvent::HearingRecorded(hearing))
            }
            C::Conclude { concluded, suspended_by_it } => {
                if concluded.outcome == InvestigationOutcome::RecognitionReinstated
                    && !suspended_by_it
                {
                    return Err(InvestigationError::NothingToReinstate);
                }
                if !record.heard(HearingParty::Company) {
                    return Err(InvestigationError::NotHeard("company"));
                }
                // A complaint comes from a school: the other side SBB hears.
                // Anonymised signals have no side to hear but the company.
                if record.opened.complaint_id.is_some() && !record.heard(HearingParty::School) {
                    return Err(InvestigationError::NotHeard("school"));
                }
                Ok(InvestigationEvent::InvestigationConcluded(concluded))
            }
        }
    }
}

impl Aggregate for Investigation {
    const TYPE: &'static str = "investigation";
    type Command = InvestigationCommand;
    type Event = InvestigationEvent;
    type Error = InvestigationError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = self.decide(command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        crate::fold_record(
            &mut self.record,
            &event,
            InvestigationRecord::start,
            InvestigationRecord::apply,
        );
    }
}

impl Visibility for Investigation {
    // SBB and the company investigated, which is heard (D5).
    fn audience(&self) -> Vec<(&'static str, String)> {
        self.record()
            .map(|r| vec![("company", r.opened.company_id.to_string())])
            .unwrap_or_default()
    }
}
