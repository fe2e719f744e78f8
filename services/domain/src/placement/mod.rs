//! The placement (stage or leerbaan): every step from a proposed match to its
//! completion, with the pact's guidance and compensation rules.
//!
//! Rules: G1 (signatures before the start), G2 (three contact moments, one on
//! site, or a recorded waiver), G3 (warm handover), G4 (named contacts and a
//! rating), S1 (recognised, non-suspended company), M1-M3 (objective match,
//! self-found placements, objections with reasons), C1 and C3 (expense
//! allowance covers the costs; BBL minimum wage).

mod commands;
mod events;
mod record;
#[cfg(test)]
mod tests;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use commands::{OfferFacts, PlacementCommand, StudentFacts};
pub use events::*;
pub use record::{
    Agreement, Alternative, CONTACT_GRACE_DAYS, Compliance, ContactCounts, ContactMoment,
    NextAction, Origin, PlacementRecord, PlacementStatus,
};

use crate::Visibility;
use crate::student::student_key;
use crate::values::{Cents, Pathway, age_on};

/// The age below which a legal representative signs too (G1).
pub const AGE_OF_MAJORITY: u32 = 18;

/// Why a placement command was refused. Each refusal names its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// The placement id is taken.
    #[error("the placement already exists")]
    AlreadyExists,
    /// No such placement.
    #[error("no such placement")]
    NotFound,
    /// The step does not fit where the placement stands.
    #[error("the placement is {status}: {action} is not possible now")]
    InvalidTransition {
        /// Where it stands.
        status: &'static str,
        /// What was asked.
        action: &'static str,
        /// The rule that orders these steps.
        rule: Option<&'static str>,
    },
    /// M1: the offer is for another qualification than the student's.
    #[error("the offer is for qualification {offer}, the student is enrolled in {student}")]
    QualificationMismatch {
        /// The offer's.
        offer: String,
        /// The student's.
        student: String,
    },
    /// M1: the offer does not suit the student's level.
    #[error("the offer does not take students of level {0}")]
    LevelMismatch(u8),
    /// S1: the company is not recognised for the qualification, suspended or revoked.
    #[error(
        "the company is not recognised for this qualification, or its recognition is suspended or revoked"
    )]
    CompanyMayNotHost,
    /// M3: an objection needs reasons.
    #[error("an objection needs at least one reason")]
    ReasonsRequired,
    /// C1: the expense allowance does not cover the costs.
    #[error("the expense allowance ({allowance}) must cover at least the costs ({costs})")]
    ExpenseAllowanceTooLow {
        /// The allowance.
        allowance: Cents,
        /// The sum of the costs.
        costs: Cents,
    },
    /// C3: a BBL agreement needs the hourly wage.
    #[error("a BBL leerbaan needs the hourly wage (at least the statutory minimum of {0})")]
    WageMissing(Cents),
    /// C3: the wage is below the statutory minimum for the student's age.
    #[error(
        "the hourly wage {wage} is below the statutory minimum {minimum} for a student of {age} at the start"
    )]
    WageBelowMinimum {
        /// The wage.
        wage: Cents,
        /// The minimum.
        minimum: Cents,
        /// The student's age at the start.
        age: u32,
    },
    /// C3: the wage table has no figures for the start date.
    #[error("the minimum wage table has no figures for {0}; the wage cannot be checked")]
    NoWageTable(chrono::NaiveDate),
    /// G1: this party does not sign this agreement.
    #[error("the agreement does not need a signature of the {0}")]
    SignatureNotRequired(&'static str),
    /// G1: signed already.
    #[error("the {0} has already signed this agreement")]
    AlreadySigned(&'static str),
    /// G1: signatures are missing.
    #[error("the agreement lacks the signatures of: {0}")]
    SignaturesMissing(String),
    /// G2: a contact moment must not lie in the future.
    #[error("held_on must not be in the future")]
    HeldInFuture,
    /// G2: a contact moment belongs to the placement's time.
    #[error("held_on must not be before the placement started")]
    HeldBeforeStart,
    /// G2: the recorder takes part.
    #[error("the party recording a contact moment must be one of its participants")]
    RecorderNotParticipant,
    /// G2: no such contact moment.
    #[error("no contact moment {0}")]
    UnknownContactMoment(Uuid),
    /// G2: only another participant confirms.
    #[error("a contact moment is confirmed by another participant than its recorder")]
    CannotConfirm,
    /// G2: completion needs the contact moments or a waiver.
    #[error("G2 is not met: missing {0}; hold them or record a waiver with its reason")]
    ContactMomentsMissing(String),
    /// G4: scores are 1-5.
    #[error("scores must be 1 to 5")]
    ScoreOutOfRange,
}

impl PlacementError {
    /// The pact rule behind the refusal.
    pub fn rule(&self) -> Option<&'static str> {
        match self {
            Self::AlreadyExists | Self::NotFound => None,
            Self::InvalidTransition { rule, .. } => *rule,
            Self::QualificationMismatch { .. } | Self::LevelMismatch(_) => Some("M1"),
            Self::CompanyMayNotHost => Some("S1"),
            Self::ReasonsRequired => Some("M3"),
            Self::ExpenseAllowanceTooLow { .. } => Some("C1"),
            Self::WageMissing(_) | Self::WageBelowMinimum { .. } | Self::NoWageTable(_) => {
                Some("C3")
            }
            Self::SignatureNotRequired(_) | Self::AlreadySigned(_) | Self::SignaturesMissing(_) => {
                Some("G1")
            }
            Self::HeldInFuture
            | Self::HeldBeforeStart
            | Self::RecorderNotParticipant
            | Self::UnknownContactMoment(_)
            | Self::CannotConfirm
            | Self::ContactMomentsMissing(_) => Some("G2"),
            Self::ScoreOutOfRange => Some("G4"),
        }
    }
}

/// The placement aggregate.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    record: Option<PlacementRecord>,
}

fn signatory_name(party: Signatory) -> &'static str {
    match party {
        Signatory::Student => "student",
        Signatory::School => "school",
        Signatory::Company => "company",
        Signatory::LegalRepresentative => "legal_representative",
        Signatory::Employer => "employer",
    }
}

fn kind_name(kind: ContactKind) -> &'static str {
    match kind {
        ContactKind::Start => "start",
        ContactKind::Midway => "midway",
        ContactKind::End => "end",
        ContactKind::Extra => "extra",
    }
}

impl Placement {
    /// The record, once proposed.
    pub fn record(&self) -> Option<&PlacementRecord> {
        self.record.as_ref()
    }

    /// Decides a command: the events it records (none for a replayed reaction or
    /// a repeated confirmation), or why it is refused. Pure, so the API can also
    /// check a proposal before it reserves an offer's slot.
    pub fn decide(&self, command: PlacementCommand) -> Result<Vec<PlacementEvent>, PlacementError> {
        use PlacementCommand as C;
        let Some(record) = &self.record else {
            return Self::propose(command);
        };
        let status = record.status;
        let refuse = |action: &'static str, rule: Option<&'static str>| {
            Err(PlacementError::InvalidTransition { status: status.as_str(), action, rule })
        };
        use PlacementStatus as S;
        let event = match command {
            C::ProposeMatch { .. } | C::ProposeSelfFound { .. } => {
                return Err(PlacementError::AlreadyExists);
            }
            C::ApproveSelfFound { company_may_host, today } => match status {
                S::SelfFoundProposed if !company_may_host => {
                    return Err(PlacementError::CompanyMayNotHost);
                }
                S::SelfFoundProposed => {
                    PlacementEvent::SelfFoundPlacementApproved(SelfFoundPlacementApproved {
                        approved_on: today,
                    })
                }
                _ => return refuse("approving a self-found placement", Some("M2")),
            },
            C::Accept { today } => match status {
                S::Proposed => PlacementEvent::MatchAccepted(MatchAccepted { accepted_on: today }),
                _ => return refuse("accepting the match", Some("M3")),
            },
            C::Object(objection) => {
                if objection.reasons.is_empty() {
                    return Err(PlacementError::ReasonsRequired);
                }
                match status {
                    S::Proposed | S::SelfFoundProposed | S::Accepted => {
                        PlacementEvent::MatchObjected(objection)
                    }
                    _ => return refuse("objecting to the match", Some("M3")),
                }
            }
            C::Withdraw(withdrawn) => match status {
                _ if status.is_pending() => PlacementEvent::MatchWithdrawn(withdrawn),
                _ => return refuse("withdrawing the match", None),
            },
            C::DraftAgreement { terms, date_of_birth, pathway, wages } => match status {
                S::Accepted | S::Agreed if record.risk.is_some() => {
                    return Err(PlacementError::CompanyMayNotHost);
                }
                S::Accepted | S::Agreed => {
                    let version =
                        record.agreement.as_ref().map_or(0, |a| a.drafted.agreement_version) + 1;
                    PlacementEvent::AgreementDrafted(draft(
                        terms,
                        date_of_birth,
                        pathway,
                        &wages,
                        version,
                    )?)
                }
                _ => return refuse("drafting the agreement", Some("G1")),
            },
            C::Sign { party, today } => {
                let Some(agreement) = record.agreement.as_ref().filter(|_| status == S::Agreed)
                else {
                    return refuse("signing the agreement", Some("G1"));
                };
                if !agreement.drafted.required_signatures.contains(&party) {
                    return Err(PlacementError::SignatureNotRequired(signatory_name(party)));
                }
                if agreement.signed.contains(&party) {
                    return Err(PlacementError::AlreadySigned(signatory_name(party)));
                }
                PlacementEvent::AgreementSigned(AgreementSigned {
                    party,
                    agreement_version: agreement.drafted.agreement_version,
                    signed_on: today,
                })
            }
            C::Start { company_may_host, today, date_of_birth } => {
                if status != S::Agreed {
                    return refuse("starting the placement", Some("G1"));
                }
                let mut missing = record.missing_signatures();
                // G1 by the age on the day it really starts, which may come
                // before the agreement's first day.
                let signed_by_representative = record
                    .agreement
                    .as_ref()
                    .is_some_and(|a| a.signed.contains(&Signatory::LegalRepresentative));
                if age_on(date_of_birth, today) < AGE_OF_MAJORITY
                    && !signed_by_representative
                    && !missing.contains(&Signatory::LegalRepresentative)
                {
                    missing.push(Signatory::LegalRepresentative);
                }
                if !missing.is_empty() {
                    let names: Vec<_> = missing.into_iter().map(signatory_name).collect();
                    return Err(PlacementError::SignaturesMissing(names.join(", ")));
                }
                if !company_may_host || record.risk.is_some() {
                    return Err(PlacementError::CompanyMayNotHost);
                }
                PlacementEvent::PlacementStarted(PlacementStarted { started_on: today })
            }
            C::RecordContactMoment { held, today } => {
                if status != S::Active {
                    return refuse("recording a contact moment", Some("G2"));
                }
                if held.held_on > today {
                    return Err(PlacementError::HeldInFuture);
                }
                if record.started_on.is_some_and(|started| held.held_on < started) {
                    return Err(PlacementError::HeldBeforeStart);
                }
                if !held.participants.contains(&held.recorded_by) {
                    return Err(PlacementError::RecorderNotParticipant);
                }
                PlacementEvent::ContactMomentHeld(held)
            }
            C::ConfirmContactMoment(confirmed) => {
                let moment = record
                    .contact_moments
                    .iter()
                    .find(|m| m.held.moment_id == confirmed.moment_id)
                    .ok_or(PlacementError::UnknownContactMoment(confirmed.moment_id))?;
                if moment.held.recorded_by == confirmed.party
                    || !moment.held.participants.contains(&confirmed.party)
                {
                    return Err(PlacementError::CannotConfirm);
                }
                if moment.confirmed_by.contains(&confirmed.party) {
                    return Ok(Vec::new());
                }
                PlacementEvent::ContactMomentConfirmed(confirmed)
            }
            C::WaiveContactMoments(waiver) => match status {
                S::Agreed | S::Active => PlacementEvent::ContactMomentRequirementWaived(waiver),
                _ => return refuse("waiving the contact moments", Some("G2")),
            },
            C::RecordWarmHandover(handover) => match status {
                S::Accepted | S::Agreed | S::Active => PlacementEvent::WarmHandoverHeld(handover),
                _ => return refuse("recording a warm handover", Some("G3")),
            },
            C::Complete { today } => {
                if status != S::Active {
                    return refuse("completing the placement", Some("G2"));
                }
                if record.waiver.is_none() && !record.g2_met() {
                    let mut missing: Vec<_> =
                        record.missing_moments().into_iter().map(kind_name).collect();
                    if missing.is_empty() {
                        missing.push("a moment on site");
                    }
                    return Err(PlacementError::ContactMomentsMissing(missing.join(", ")));
                }
                PlacementEvent::PlacementCompleted(PlacementCompleted { completed_on: today })
            }
            C::Interrupt { reason, today } => match status {
                S::Active => PlacementEvent::PlacementInterrupted(PlacementInterrupted {
                    reason,
                    cause: InterruptionCause::School,
                    interrupted_on: today,
                    reaction_to: None,
                }),
                _ => {
                    return refuse(
                        "interrupting the placement (withdraw it before the start)",
                        None,
                    );
                }
            },
            C::Rate(rating) => {
                if !(1..=5).contains(&rating.school_score)
                    || !(1..=5).contains(&rating.company_score)
                {
                    return Err(PlacementError::ScoreOutOfRange);
                }
                match status {
                    S::Active | S::Completed | S::Interrupted if record.started_on.is_some() => {
                        PlacementEvent::GuidanceRated(rating)
                    }
                    _ => return refuse("rating the guidance before the start", Some("G4")),
                }
            }
            C::NoticeRecognitionChange { reaction_to, .. }
            | C::NoticeReinstatement { reaction_to }
            | C::NoticeAlternative { reaction_to, .. }
                if record.reactions.contains(&reaction_to) =>
            {
                return Ok(Vec::new());
            }
            C::NoticeRecognitionChange { change, reason, reaction_to, today } => {
                match (status, change) {
                    (S::Active, RecognitionChange::Revoked) => {
                        PlacementEvent::PlacementInterrupted(PlacementInterrupted {
                            reason,
                            cause: InterruptionCause::RecognitionRevoked,
                            interrupted_on: today,
                            reaction_to: Some(reaction_to),
                        })
                    }
                    (S::Active, _) | (_, _) if status.is_pending() || status == S::Active => {
                        // A suspension does not deepen a revocation already noticed,
                        // and a change already noticed (by another path to the
                        // same decision) is not noticed twice.
                        if record.risk == Some(RecognitionChange::Revoked)
                            || record.risk == Some(change)
                        {
                            return Ok(Vec::new());
                        }
                        PlacementEvent::RecognitionSuspensionNoticed(RecognitionSuspensionNoticed {
                            change,
                            reaction_to,
                        })
                    }
                    _ => return Ok(Vec::new()),
                }
            }
            C::NoticeReinstatement { reaction_to } => {
                if record.risk != Some(RecognitionChange::Suspended) || status.is_closed() {
                    return Ok(Vec::new());
                }
                PlacementEvent::RecognitionReinstatementNoticed(RecognitionReinstatementNoticed {
                    reaction_to,
                })
            }
            C::NoticeAlternative { alternative_placement_id, reaction_to } => {
                PlacementEvent::AlternativePlacementOffered(AlternativePlacementOffered {
                    alternative_placement_id,
                    reaction_to,
                })
            }
        };
        Ok(vec![event])
    }

    fn propose(command: PlacementCommand) -> Result<Vec<PlacementEvent>, PlacementError> {
        match command {
            PlacementCommand::ProposeMatch {
                placement_id,
                student,
                offer,
                company_may_host,
                explanation,
                replaces,
                matching_round_id,
            } => {
                if offer.qualification != student.qualification {
                    return Err(PlacementError::QualificationMismatch {
                        offer: offer.qualification.to_string(),
                        student: student.qualification.to_string(),
                    });
                }
                if !offer.levels.contains(&student.student.level) {
                    return Err(PlacementError::LevelMismatch(student.student.level.get()));
                }
                if !company_may_host {
                    return Err(PlacementError::CompanyMayNotHost);
                }
                Ok(vec![PlacementEvent::MatchProposed(MatchProposed {
                    placement_id,
                    student: student.student,
                    company_id: offer.company_id,
                    offer_id: offer.offer_id,
                    qualification: offer.qualification,
                    period: offer.period,
                    explanation,
                    replaces,
                    matching_round_id,
                })])
            }
            PlacementCommand::ProposeSelfFound {
                placement_id,
                student,
                company_id,
                qualification,
                company_may_host,
                note,
                proposed_by,
                replaces,
            } => {
                if qualification != student.qualification {
                    return Err(PlacementError::QualificationMismatch {
                        offer: qualification.to_string(),
                        student: student.qualification.to_string(),
                    });
                }
                if !company_may_host {
                    return Err(PlacementError::CompanyMayNotHost);
                }
                Ok(vec![PlacementEvent::SelfFoundPlacementProposed(SelfFoundPlacementProposed {
                    placement_id,
                    student: student.student,
                    company_id,
                    qualification,
                    note,
                    proposed_by,
                    replaces,
                })])
            }
            _ => Err(PlacementError::NotFound),
        }
    }
}

/// Checks C1 and C3 and works out who signs (G1).
fn draft(
    terms: AgreementTerms,
    date_of_birth: chrono::NaiveDate,
    pathway: Pathway,
    wages: &crate::wage::WageTable,
    agreement_version: u32,
) -> Result<AgreementDrafted, PlacementError> {
    let costs = terms.compensation.total_costs();
    if terms.compensation.expense_allowance < costs {
        return Err(PlacementError::ExpenseAllowanceTooLow {
            allowance: terms.compensation.expense_allowance,
            costs,
        });
    }
    let start = terms.period.start;
    let age = age_on(date_of_birth, start);
    let minimum_hourly_wage = if pathway == Pathway::Bbl {
        let minimum =
            wages.minimum_hourly(age, pathway, start).ok_or(PlacementError::NoWageTable(start))?;
        match terms.compensation.hourly_wage {
            None => return Err(PlacementError::WageMissing(minimum)),
            Some(wage) if wage < minimum => {
                return Err(PlacementError::WageBelowMinimum { wage, minimum, age });
            }
            Some(_) => Some(minimum),
        }
    } else {
        None
    };
    let mut required_signatures = vec![Signatory::Student, Signatory::School, Signatory::Company];
    if age < AGE_OF_MAJORITY {
        required_signatures.push(Signatory::LegalRepresentative);
    }
    if pathway == Pathway::Bbl {
        required_signatures.push(Signatory::Employer);
    }
    Ok(AgreementDrafted { agreement_version, terms, required_signatures, minimum_hourly_wage })
}

impl Aggregate for Placement {
    const TYPE: &'static str = "placement";
    type Command = PlacementCommand;
    type Event = PlacementEvent;
    type Error = PlacementError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        crate::fold_record(
            &mut self.record,
            &event,
            PlacementRecord::proposed,
            PlacementRecord::apply,
        );
    }
}

impl Visibility for Placement {
    fn audience(&self) -> Vec<(&'static str, String)> {
        self.record
            .as_ref()
            .map(|r| {
                vec![
                    ("school", r.student.school.to_string()),
                    ("company", r.company_id.to_string()),
                    ("student", student_key(&r.student.school, &r.student.student_id)),
                ]
            })
            .unwrap_or_default()
    }
}
