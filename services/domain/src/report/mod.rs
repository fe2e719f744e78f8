//! A report (melding) at the school's low-threshold reporting point: internship
//! discrimination, misuse of an intern as a worker, an unsafe environment, or a
//! fee asked for a placement; and how the school follows it up.
//!
//! Rules: D1 (a replacement placement is always offered), D2 (grounds of a
//! discrimination report), D3 (a triangle conversation only where safe), D4
//! (every report followed up; anonymised signals only with consent), D5
//! (escalation to SBB), C4 (a placement fee is reportable).
//!
//! The description and the grounds are sealed under the student's key
//! ([`crate::protected`]): the aggregate decides on who, what and when, never on
//! the content, so it still replays after the student's data is erased.

mod events;
#[cfg(test)]
mod tests;

use chrono::{Datelike, NaiveDate, Weekday};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use events::*;

use crate::Visibility;
use crate::protected::{Cipher, Protected, Sealed};
use crate::student::student_key;
use crate::values::{CompanyId, Description, SchoolId, StudentNumber};

/// The report as the student files it, in the clear: the command seals it.
#[derive(Debug, Clone, PartialEq)]
pub struct Filing {
    /// The student's school.
    pub school: SchoolId,
    /// The student.
    pub student_id: StudentNumber,
    /// The company reported.
    pub company_id: CompanyId,
    /// The student's placement there, if any.
    pub placement_id: Option<Uuid>,
    /// What is reported.
    pub kind: ReportKind,
    /// The student's account.
    pub description: Description,
    /// The grounds (required for discrimination, D2).
    pub grounds: Vec<Ground>,
    /// Whether the student wants a replacement placement.
    pub wants_replacement_placement: bool,
    /// Whether the student consents to an anonymised signal to SBB.
    pub consent_to_forward: bool,
    /// Today.
    pub filed_on: NaiveDate,
}

/// What the report needs to know of a placement offered as its replacement.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplacementFacts {
    /// The placement.
    pub placement_id: Uuid,
    /// The placement's student: school and number.
    pub school: SchoolId,
    /// The school's number for the student.
    pub student_id: StudentNumber,
    /// The placement's company.
    pub company_id: CompanyId,
    /// The placement it replaces, if any.
    pub replaces: Option<Uuid>,
    /// Whether it is still under way (not withdrawn, objected, completed or interrupted).
    pub under_way: bool,
    /// The last day of its agreement, once drafted.
    pub ends_on: Option<NaiveDate>,
    /// The last day of the reported placement's agreement, if it had one: the
    /// replacement keeps it, so the student has no study delay.
    pub reported_ends_on: Option<NaiveDate>,
}

/// A command on the report aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportCommand {
    /// The student files a report; `placement_company` is the company of the
    /// named placement, looked up by the caller.
    File {
        /// The report in the clear.
        filing: Filing,
        /// The student's cipher, to seal it.
        cipher: Cipher,
        /// The company of `filing.placement_id`.
        placement_company: Option<CompanyId>,
    },
    /// The school acknowledges the report; a repeat records nothing.
    Acknowledge {
        /// Today.
        on: NaiveDate,
    },
    /// The school records a conversation about it (D3).
    RecordConversation {
        /// The conversation.
        conversation: ReportConversationRecorded,
        /// Today.
        today: NaiveDate,
    },
    /// The school links a replacement placement (D1).
    OfferReplacement(ReplacementFacts),
    /// The student gives or withdraws consent to forward (D4); no change records nothing.
    SetForwardingConsent(bool),
    /// The school forwards an anonymised signal (D4).
    ForwardSignal {
        /// The new signal's id.
        signal_id: Uuid,
        /// The report's grounds as the caller opened them: erased grounds
        /// cannot be forwarded.
        grounds: Protected<Vec<Ground>>,
    },
    /// The school escalates to SBB's complaint desk (D5).
    Escalate {
        /// The new complaint's id.
        complaint_id: Uuid,
        /// The school's summary for SBB.
        summary: Description,
        /// The student's cipher, to seal it.
        cipher: Cipher,
    },
    /// The school closes the report (D4).
    Close {
        /// The outcome.
        outcome: ReportOutcome,
        /// Today.
        on: NaiveDate,
    },
}

/// Why a report command was refused. Each refusal names its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The report id is taken.
    #[error("the report already exists")]
    AlreadyFiled,
    /// No such report.
    #[error("no such report")]
    NotFound,
    /// D2: a discrimination report names its grounds.
    #[error("a discrimination report names at least one ground")]
    GroundsRequired,
    /// The named placement is at another company.
    #[error("the placement is at another company than the one reported")]
    PlacementAtOtherCompany,
    /// D4: the report is closed.
    #[error("the report is closed: {0} is not possible now")]
    Closed(&'static str),
    /// D3: a conversation with the student present only when that is safe.
    #[error(
        "a triangle conversation needs the school's recorded check that it is safe for the student"
    )]
    ConversationNotSafe,
    /// D3: a conversation cannot be recorded before it happened.
    #[error("held_on must not be in the future")]
    HeldInFuture,
    /// D3: a conversation about a report follows the report.
    #[error("held_on must not be before the report was filed")]
    HeldBeforeFiling,
    /// D4: `replaced` needs a replacement placement, `handed_to_sbb` an escalation.
    #[error(
        "the outcome is not backed by the steps recorded: `replaced` needs a replacement placement, `handed_to_sbb` an escalation"
    )]
    OutcomeNotBacked,
    /// D1: the replacement is for the reporting student.
    #[error("the replacement placement is not the reporting student's")]
    ReplacementOfOtherStudent,
    /// D1: the replacement is at another company.
    #[error("a replacement placement is at another company than the one reported")]
    ReplacementAtReportedCompany,
    /// D1: it replaces the reported placement, so the student keeps their period.
    #[error("the replacement placement must name placement {0} in `replaces`")]
    ReplacementMustReplace(Uuid),
    /// D1: the replacement is under way.
    #[error("the replacement placement has ended or was withdrawn")]
    ReplacementEnded,
    /// D1: the replacement ends by the reported placement's end.
    #[error(
        "the replacement placement's agreement ends after {0}, the end of the reported placement: the student would be delayed"
    )]
    ReplacementDelays(NaiveDate),
    /// D4: no signal without the student's consent.
    #[error("the student has not consented to forwarding a signal to SBB")]
    ConsentMissing,
    /// D4: one signal per report.
    #[error("a signal for this report was already forwarded")]
    AlreadyForwarded,
    /// The student's data was erased: the content can no longer be forwarded.
    #[error("the report's content was erased with the student's data")]
    ContentErased,
    /// D5: one escalation per report.
    #[error("the report was already escalated to SBB")]
    AlreadyEscalated,
    /// D4: a report is closed only after a follow-up step.
    #[error(
        "the report has no follow-up step yet: record a conversation, offer a replacement placement, forward a signal or escalate to SBB first"
    )]
    NoFollowUp,
}

impl ReportError {
    /// The pact rule behind the refusal.
    pub fn rule(&self) -> Option<&'static str> {
        match self {
            Self::AlreadyFiled | Self::NotFound | Self::ContentErased => None,
            Self::GroundsRequired => Some("D2"),
            Self::ConversationNotSafe | Self::HeldInFuture | Self::HeldBeforeFiling => Some("D3"),
            Self::PlacementAtOtherCompany
            | Self::ReplacementOfOtherStudent
            | Self::ReplacementAtReportedCompany
            | Self::ReplacementMustReplace(_)
            | Self::ReplacementEnded
            | Self::ReplacementDelays(_) => Some("D1"),
            Self::Closed(_)
            | Self::ConsentMissing
            | Self::AlreadyForwarded
            | Self::NoFollowUp
            | Self::OutcomeNotBacked => Some("D4"),
            Self::AlreadyEscalated => Some("D5"),
        }
    }
}

/// A report's record: the state the aggregate decides on and the read model serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRecord {
    /// As filed (content sealed).
    pub filed: ReportFiled,
    /// When the school acknowledged it.
    pub acknowledged_on: Option<NaiveDate>,
    /// Conversations held (D3).
    pub conversations: Vec<ReportConversationRecorded>,
    /// Replacement placements offered (D1).
    pub replacement_placements: Vec<Uuid>,
    /// The current consent to forward (D4).
    pub consent_to_forward: bool,
    /// The signal forwarded, if any.
    pub signal_id: Option<Uuid>,
    /// The escalation to SBB's complaint desk, if any.
    pub escalation: Option<ReportEscalated>,
    /// The closure.
    pub closed: Option<ReportClosed>,
}

impl ReportRecord {
    /// The record an aggregate's first event starts; `None` for any other
    /// event (which `decide` never records first).
    pub fn start(event: &ReportEvent) -> Option<Self> {
        match event {
            ReportEvent::ReportFiled(started) => Some(ReportRecord::filed(started)),
            _ => None,
        }
    }

    /// The record a filing starts.
    pub fn filed(event: &ReportFiled) -> Self {
        Self {
            consent_to_forward: event.consent_to_forward,
            filed: event.clone(),
            acknowledged_on: None,
            conversations: vec![],
            replacement_placements: vec![],
            signal_id: None,
            escalation: None,
            closed: None,
        }
    }

    /// Folds one event into the record (the first event starts it).
    pub fn apply(&mut self, event: &ReportEvent) {
        match event {
            ReportEvent::ReportFiled(_) => {}
            ReportEvent::ReportAcknowledged(e) => self.acknowledged_on = Some(e.acknowledged_on),
            ReportEvent::ReportConversationRecorded(e) => self.conversations.push(e.clone()),
            ReportEvent::ReplacementPlacementOffered(e) => {
                self.replacement_placements.push(e.placement_id)
            }
            ReportEvent::ForwardingConsentSet(e) => self.consent_to_forward = e.consent,
            ReportEvent::SignalForwarded(e) => self.signal_id = Some(e.signal_id),
            ReportEvent::ReportEscalated(e) => self.escalation = Some(e.clone()),
            ReportEvent::ReportClosed(e) => self.closed = Some(e.clone()),
        }
    }

    /// The student's aggregate id, which is also the data subject whose key seals
    /// the content.
    pub fn subject(&self) -> String {
        student_key(&self.filed.school, &self.filed.student_id)
    }

    /// Whether a follow-up step is recorded (D4): a conversation, a replacement
    /// placement, a forwarded signal or an escalation. An acknowledgement alone
    /// is not one.
    pub fn followed_up(&self) -> bool {
        !self.conversations.is_empty()
            || !self.replacement_placements.is_empty()
            || self.signal_id.is_some()
            || self.escalation.is_some()
    }

    /// The last day to acknowledge the report: `working_days` working days
    /// (Monday to Friday) after it was filed. Public holidays are not counted
    /// out: the deadline errs on the side of the student.
    pub fn acknowledge_by(&self, working_days: u32) -> NaiveDate {
        add_working_days(self.filed.filed_on, working_days)
    }

    /// Whether it is overdue on `today`: not acknowledged after the deadline.
    pub fn overdue(&self, working_days: u32, today: NaiveDate) -> bool {
        self.closed.is_none()
            && self.acknowledged_on.is_none()
            && today > self.acknowledge_by(working_days)
    }
}

/// The last filing day whose report is overdue on `today` when unacknowledged:
/// reports filed on or before it have passed their `working_days`.
pub fn overdue_if_filed_by(today: NaiveDate, working_days: u32) -> NaiveDate {
    // `add_working_days` never decreases with its start, so walk back from
    // today to the first day whose deadline lies before today.
    let mut day = today;
    while add_working_days(day, working_days) >= today {
        match day.pred_opt() {
            Some(previous) => day = previous,
            None => return day,
        }
    }
    day
}

/// The working days (Monday to Friday) after `from` up to and including `to`:
/// how late a step taken on `to` is for a report filed on `from` (0 on the day
/// itself or before it). `add_working_days(from, n) >= to` exactly when `n` is
/// at least this.
pub fn working_days_between(from: NaiveDate, to: NaiveDate) -> u32 {
    let days = (to - from).num_days();
    if days <= 0 {
        return 0;
    }
    let weeks = days / 7;
    let rest = (1..=days % 7)
        .filter_map(|offset| from.checked_add_signed(chrono::Duration::days(weeks * 7 + offset)))
        .filter(|day| !matches!(day.weekday(), Weekday::Sat | Weekday::Sun))
        .count() as i64;
    u32::try_from(weeks * 5 + rest).unwrap_or(u32::MAX)
}

/// `day` plus `n` working days (Monday to Friday).
pub fn add_working_days(day: NaiveDate, n: u32) -> NaiveDate {
    let mut current = day;
    let mut left = n;
    while left > 0 {
        match current.succ_opt() {
            Some(next) => current = next,
            // The calendar's end: nothing lies beyond it to wait for.
            None => return current,
        }
        if !matches!(current.weekday(), Weekday::Sat | Weekday::Sun) {
            left -= 1;
        }
    }
    current
}

/// The report aggregate.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    record: Option<ReportRecord>,
}

impl Report {
    /// The record, once filed.
    pub fn record(&self) -> Option<&ReportRecord> {
        self.record.as_ref()
    }

    /// Decides a command: the event it records (none for a repeat), or why it is refused.
    pub fn decide(&self, command: ReportCommand) -> Result<Option<ReportEvent>, ReportError> {
        use ReportCommand as C;
        let Some(record) = &self.record else {
            return match command {
                C::File { filing, cipher, placement_company } => {
                    file(filing, &cipher, placement_company).map(Some)
                }
                _ => Err(ReportError::NotFound),
            };
        };
        if let Some(action) = record.closed.as_ref().and_then(|_| closed_action(&command)) {
            return Err(ReportError::Closed(action));
        }
        let event = match command {
            C::File { .. } => return Err(ReportError::AlreadyFiled),
            C::Acknowledge { on } => {
                if record.acknowledged_on.is_some() {
                    return Ok(None);
                }
                ReportEvent::ReportAcknowledged(ReportAcknowledged { acknowledged_on: on })
            }
            C::RecordConversation { conversation, today } => {
                if conversation.held_on > today {
                    return Err(ReportError::HeldInFuture);
                }
                if conversation.held_on < record.filed.filed_on {
                    return Err(ReportError::HeldBeforeFiling);
                }
                if conversation.form == ConversationForm::Triangle && !conversation.safe_for_student
                {
                    return Err(ReportError::ConversationNotSafe);
                }
                ReportEvent::ReportConversationRecorded(conversation)
            }
            C::OfferReplacement(facts) => {
                check_replacement(record, &facts)?;
                if record.replacement_placements.contains(&facts.placement_id) {
                    return Ok(None);
                }
                ReportEvent::ReplacementPlacementOffered(ReplacementPlacementOffered {
                    placement_id: facts.placement_id,
                })
            }
            C::SetForwardingConsent(consent) => {
                if record.consent_to_forward == consent {
                    return Ok(None);
                }
                ReportEvent::ForwardingConsentSet(ForwardingConsentSet { consent })
            }
            C::ForwardSignal { signal_id, grounds } => {
                if record.signal_id.is_some() {
                    return Err(ReportError::AlreadyForwarded);
                }
                if !record.consent_to_forward {
                    return Err(ReportError::ConsentMissing);
                }
                if grounds.readable().is_none() {
                    return Err(ReportError::ContentErased);
                }
                ReportEvent::SignalForwarded(SignalForwarded { signal_id })
            }
            C::Escalate { complaint_id, summary, cipher } => {
                if record.escalation.is_some() {
                    return Err(ReportError::AlreadyEscalated);
                }
                ReportEvent::ReportEscalated(ReportEscalated {
                    complaint_id,
                    summary: cipher.seal(&summary),
                })
            }
            C::Close { outcome, on } => {
                if !record.followed_up() {
                    return Err(ReportError::NoFollowUp);
                }
                let backed = match outcome {
                    ReportOutcome::Replaced => !record.replacement_placements.is_empty(),
                    ReportOutcome::HandedToSbb => record.escalation.is_some(),
                    _ => true,
                };
                if !backed {
                    return Err(ReportError::OutcomeNotBacked);
                }
                ReportEvent::ReportClosed(ReportClosed { outcome, closed_on: on })
            }
        };
        Ok(Some(event))
    }
}

/// What a command on a closed report would have done; `None` for the commands
/// that stay open to the student after closure (consent is theirs to change).
fn closed_action(command: &ReportCommand) -> Option<&'static str> {
    match command {
        ReportCommand::File { .. } | ReportCommand::SetForwardingConsent(_) => None,
        ReportCommand::Acknowledge { .. } => Some("acknowledging"),
        ReportCommand::RecordConversation { .. } => Some("recording a conversation"),
        ReportCommand::OfferReplacement(_) => Some("offering a replacement placement"),
        ReportCommand::ForwardSignal { .. } => Some("forwarding a signal"),
        ReportCommand::Escalate { .. } => Some("escalating"),
        ReportCommand::Close { .. } => Some("closing"),
    }
}

impl Filing {
    /// The rules a filing must meet, decided before anything is sealed (so a
    /// refused filing does not even create the student's key).
    pub fn check(&self, placement_company: Option<&CompanyId>) -> Result<(), ReportError> {
        if self.kind == ReportKind::Discrimination && self.grounds.is_empty() {
            return Err(ReportError::GroundsRequired);
        }
        if placement_company.is_some_and(|company| *company != self.company_id) {
            return Err(ReportError::PlacementAtOtherCompany);
        }
        Ok(())
    }
}

fn file(
    filing: Filing,
    cipher: &Cipher,
    placement_company: Option<CompanyId>,
) -> Result<ReportEvent, ReportError> {
    filing.check(placement_company.as_ref())?;
    let mut grounds = filing.grounds;
    grounds.sort();
    grounds.dedup();
    Ok(ReportEvent::ReportFiled(ReportFiled {
        school: filing.school,
        student_id: filing.student_id,
        company_id: filing.company_id,
        placement_id: filing.placement_id,
        kind: filing.kind,
        description: cipher.seal(&filing.description),
        grounds: cipher.seal(&grounds),
        wants_replacement_placement: filing.wants_replacement_placement,
        consent_to_forward: filing.consent_to_forward,
        filed_on: filing.filed_on,
    }))
}

fn check_replacement(record: &ReportRecord, facts: &ReplacementFacts) -> Result<(), ReportError> {
    let filed = &record.filed;
    if facts.school != filed.school || facts.student_id != filed.student_id {
        return Err(ReportError::ReplacementOfOtherStudent);
    }
    if facts.company_id == filed.company_id {
        return Err(ReportError::ReplacementAtReportedCompany);
    }
    if let Some(reported) = filed.placement_id
        && facts.replaces != Some(reported)
    {
        return Err(ReportError::ReplacementMustReplace(reported));
    }
    if !facts.under_way {
        return Err(ReportError::ReplacementEnded);
    }
    // Dates are compared once both agreements exist; before that the school
    // drafts the replacement's agreement with the reported one's end in view.
    if let (Some(ends), Some(reported)) = (facts.ends_on, facts.reported_ends_on)
        && ends > reported
    {
        return Err(ReportError::ReplacementDelays(reported));
    }
    Ok(())
}

impl Aggregate for Report {
    const TYPE: &'static str = "report";
    type Command = ReportCommand;
    type Event = ReportEvent;
    type Error = ReportError;
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
        crate::fold_record(&mut self.record, &event, ReportRecord::start, ReportRecord::apply);
    }
}

impl Visibility for Report {
    // The student and their school only: never the company, never SBB (they
    // get an anonymised signal or a complaint, each an aggregate of its own).
    fn audience(&self) -> Vec<(&'static str, String)> {
        self.record()
            .map(|r| vec![("school", r.filed.school.to_string()), ("student", r.subject())])
            .unwrap_or_default()
    }
}

/// The sealed fields of a report, for readers that open them.
impl ReportFiled {
    /// The description and grounds, sealed.
    pub fn sealed(&self) -> [&Sealed; 2] {
        [&self.description, &self.grounds]
    }
}
