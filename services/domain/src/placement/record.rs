//! A placement's record: the state the aggregate decides on and the fold the
//! placements read model serves, with the compliance every view shows.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::events::*;
use crate::values::{CompanyId, Crebo, Note, Period, Reason};

/// Days after a contact moment is due before it counts as overdue.
pub const CONTACT_GRACE_DAYS: i64 = 14;

/// Where a placement stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlacementStatus {
    /// The school proposed a match; the student has not answered.
    Proposed,
    /// A self-found placement awaits the school's approval.
    SelfFoundProposed,
    /// Accepted (or approved): the agreement can be drafted.
    Accepted,
    /// An agreement is drafted: signatures are being collected.
    Agreed,
    /// Started.
    Active,
    /// Ended as planned.
    Completed,
    /// Ended early.
    Interrupted,
    /// The student or company objected (M3).
    Objected,
    /// The school withdrew the match.
    Withdrawn,
}

impl PlacementStatus {
    /// The status as it appears in the API and the read model.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::SelfFoundProposed => "self_found_proposed",
            Self::Accepted => "accepted",
            Self::Agreed => "agreed",
            Self::Active => "active",
            Self::Completed => "completed",
            Self::Interrupted => "interrupted",
            Self::Objected => "objected",
            Self::Withdrawn => "withdrawn",
        }
    }

    /// Not started and still going somewhere.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Proposed | Self::SelfFoundProposed | Self::Accepted | Self::Agreed)
    }

    /// The statuses in which the student has a placement now (S2: is not
    /// seeking one): accepted or approved, agreed, or started. A proposal the
    /// student has not answered does not place them yet; a completed one no
    /// longer holds them (see the indicators for when it still counts).
    pub const HOLDING: [PlacementStatus; 3] = [Self::Accepted, Self::Agreed, Self::Active];

    /// Over, one way or another.
    pub fn is_closed(self) -> bool {
        matches!(self, Self::Completed | Self::Interrupted | Self::Objected | Self::Withdrawn)
    }
}

/// How the placement came about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Origin {
    /// Matched by the school to an offer.
    Match {
        /// The offer.
        offer_id: Uuid,
        /// The school's explanation.
        explanation: Option<Note>,
    },
    /// Found by the student (M2).
    SelfFound {
        /// Who proposed it.
        proposed_by: Participant,
        /// A note.
        note: Option<Note>,
    },
}

/// The draft the parties sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreement {
    /// The draft.
    pub drafted: AgreementDrafted,
    /// Who signed this draft.
    pub signed: BTreeSet<Signatory>,
}

/// A held contact moment and who confirmed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactMoment {
    /// As recorded.
    pub held: ContactMomentHeld,
    /// Parties other than the recorder that confirmed.
    pub confirmed_by: BTreeSet<Participant>,
}

/// What an alternative placement is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "placement_id")]
pub enum Alternative {
    /// The school must propose one (the company's recognition was revoked).
    Needed,
    /// The school proposed this placement.
    Offered(Uuid),
}

/// The record of one placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementRecord {
    /// The placement's id.
    pub placement_id: Uuid,
    /// The student.
    pub student: PlacementStudent,
    /// The company.
    pub company_id: CompanyId,
    /// The qualification.
    pub qualification: Crebo,
    /// How it came about.
    pub origin: Origin,
    /// The period known before an agreement (the offer's), if any.
    pub proposed_period: Option<Period>,
    /// The placement it replaces.
    pub replaces: Option<Uuid>,
    /// Where it stands.
    pub status: PlacementStatus,
    /// The current agreement draft and its signatures.
    pub agreement: Option<Agreement>,
    /// The objection, if any.
    pub objection: Option<MatchObjected>,
    /// Why it was withdrawn or interrupted.
    pub end_reason: Option<Reason>,
    /// How it was interrupted.
    pub interruption: Option<InterruptionCause>,
    /// When it started.
    pub started_on: Option<NaiveDate>,
    /// When it ended (completed or interrupted).
    pub ended_on: Option<NaiveDate>,
    /// Contact moments, in the order recorded.
    pub contact_moments: Vec<ContactMoment>,
    /// The school's reason for deviating from G2.
    pub waiver: Option<Reason>,
    /// The warm handover (G3).
    pub warm_handover: Option<NaiveDate>,
    /// The student's latest rating (G4).
    pub rating: Option<GuidanceRated>,
    /// Set while the company's recognition is suspended or revoked.
    pub risk: Option<RecognitionChange>,
    /// An alternative placement, when one is needed or offered.
    pub alternative: Option<Alternative>,
    /// The triggering events of reactions already recorded, so a replayed
    /// reaction records nothing (exactly once).
    pub reactions: BTreeSet<String>,
}

impl PlacementRecord {
    fn new(
        placement_id: Uuid,
        student: PlacementStudent,
        company_id: CompanyId,
        qualification: Crebo,
        origin: Origin,
        status: PlacementStatus,
    ) -> Self {
        Self {
            placement_id,
            student,
            company_id,
            qualification,
            origin,
            proposed_period: None,
            replaces: None,
            status,
            agreement: None,
            objection: None,
            end_reason: None,
            interruption: None,
            started_on: None,
            ended_on: None,
            contact_moments: Vec::new(),
            waiver: None,
            warm_handover: None,
            rating: None,
            risk: None,
            alternative: None,
            reactions: BTreeSet::new(),
        }
    }

    /// The record a proposal starts; `None` for any other event.
    pub fn proposed(event: &PlacementEvent) -> Option<Self> {
        match event {
            PlacementEvent::MatchProposed(e) => {
                let mut record = Self::new(
                    e.placement_id,
                    e.student.clone(),
                    e.company_id.clone(),
                    e.qualification,
                    Origin::Match { offer_id: e.offer_id, explanation: e.explanation.clone() },
                    PlacementStatus::Proposed,
                );
                record.proposed_period = Some(e.period);
                record.replaces = e.replaces;
                Some(record)
            }
            PlacementEvent::SelfFoundPlacementProposed(e) => {
                let mut record = Self::new(
                    e.placement_id,
                    e.student.clone(),
                    e.company_id.clone(),
                    e.qualification,
                    Origin::SelfFound { proposed_by: e.proposed_by, note: e.note.clone() },
                    PlacementStatus::SelfFoundProposed,
                );
                record.replaces = e.replaces;
                Some(record)
            }
            _ => None,
        }
    }

    /// Folds one later event into the record.
    pub fn apply(&mut self, event: &PlacementEvent) {
        use PlacementEvent as E;
        match event {
            E::MatchProposed(_) | E::SelfFoundPlacementProposed(_) => {}
            E::SelfFoundPlacementApproved(_) | E::MatchAccepted(_) => {
                self.status = PlacementStatus::Accepted;
            }
            E::MatchObjected(objection) => {
                self.status = PlacementStatus::Objected;
                self.objection = Some(objection.clone());
            }
            E::MatchWithdrawn(withdrawn) => {
                self.status = PlacementStatus::Withdrawn;
                self.end_reason = Some(withdrawn.reason.clone());
            }
            E::AgreementDrafted(drafted) => {
                self.status = PlacementStatus::Agreed;
                self.agreement =
                    Some(Agreement { drafted: drafted.clone(), signed: BTreeSet::new() });
            }
            E::AgreementSigned(signed) => {
                if let Some(agreement) = &mut self.agreement
                    && agreement.drafted.agreement_version == signed.agreement_version
                {
                    agreement.signed.insert(signed.party);
                }
            }
            E::PlacementStarted(started) => {
                self.status = PlacementStatus::Active;
                self.started_on = Some(started.started_on);
            }
            E::WarmHandoverHeld(handover) => self.warm_handover = Some(handover.held_on),
            E::ContactMomentHeld(held) => self
                .contact_moments
                .push(ContactMoment { held: held.clone(), confirmed_by: BTreeSet::new() }),
            E::ContactMomentConfirmed(confirmed) => {
                if let Some(moment) = self
                    .contact_moments
                    .iter_mut()
                    .find(|m| m.held.moment_id == confirmed.moment_id)
                {
                    moment.confirmed_by.insert(confirmed.party);
                }
            }
            E::ContactMomentRequirementWaived(waived) => self.waiver = Some(waived.reason.clone()),
            E::PlacementCompleted(completed) => {
                self.status = PlacementStatus::Completed;
                self.ended_on = Some(completed.completed_on);
            }
            E::PlacementInterrupted(interrupted) => {
                self.status = PlacementStatus::Interrupted;
                self.ended_on = Some(interrupted.interrupted_on);
                self.end_reason = Some(interrupted.reason.clone());
                self.interruption = Some(interrupted.cause);
                if let Some(reaction) = &interrupted.reaction_to {
                    self.reactions.insert(reaction.clone());
                }
                if interrupted.cause == InterruptionCause::RecognitionRevoked {
                    self.risk = Some(RecognitionChange::Revoked);
                    self.alternative.get_or_insert(Alternative::Needed);
                }
            }
            E::GuidanceRated(rating) => self.rating = Some(rating.clone()),
            E::RecognitionSuspensionNoticed(noticed) => {
                self.reactions.insert(noticed.reaction_to.clone());
                self.risk = Some(noticed.change);
                if noticed.change == RecognitionChange::Revoked {
                    self.alternative.get_or_insert(Alternative::Needed);
                }
            }
            E::RecognitionReinstatementNoticed(noticed) => {
                self.reactions.insert(noticed.reaction_to.clone());
                self.risk = None;
            }
            E::AlternativePlacementOffered(offered) => {
                self.reactions.insert(offered.reaction_to.clone());
                self.alternative = Some(Alternative::Offered(offered.alternative_placement_id));
            }
        }
    }

    /// The offer, for a matched placement.
    pub fn offer_id(&self) -> Option<Uuid> {
        match self.origin {
            Origin::Match { offer_id, .. } => Some(offer_id),
            Origin::SelfFound { .. } => None,
        }
    }

    /// The period: the agreement's once drafted, else the offer's.
    pub fn period(&self) -> Option<Period> {
        self.agreement.as_ref().map(|a| a.drafted.terms.period).or(self.proposed_period)
    }

    /// G1: the signatures the current draft still lacks.
    pub fn missing_signatures(&self) -> Vec<Signatory> {
        match &self.agreement {
            Some(agreement) => agreement
                .drafted
                .required_signatures
                .iter()
                .filter(|s| !agreement.signed.contains(s))
                .copied()
                .collect(),
            None => Vec::new(),
        }
    }

    /// The compliance every view shows (G1, G2).
    pub fn compliance(&self, today: NaiveDate) -> Compliance {
        let required = self
            .agreement
            .as_ref()
            .map(|a| a.drafted.required_signatures.clone())
            .unwrap_or_default();
        let present =
            self.agreement.as_ref().map(|a| a.signed.iter().copied().collect()).unwrap_or_default();
        let mut counts = ContactCounts::default();
        for moment in &self.contact_moments {
            counts.total += 1;
            if moment.held.mode == ContactMode::OnSite {
                counts.on_site += 1;
            }
            if counts_for_g2(&moment.held) {
                match moment.held.kind {
                    ContactKind::Start => counts.start += 1,
                    ContactKind::Midway => counts.midway += 1,
                    ContactKind::End => counts.end += 1,
                    ContactKind::Extra => {}
                }
            }
        }
        let overdue = if self.status == PlacementStatus::Active && self.waiver.is_none() {
            self.missing_moments()
                .into_iter()
                .filter(|kind| self.due_on(*kind).is_some_and(|due| due < today))
                .collect()
        } else {
            Vec::new()
        };
        Compliance {
            signatures_required: required,
            signatures_present: present,
            signatures_missing: self.missing_signatures(),
            contact_moments: counts,
            waived: self.waiver.is_some(),
            overdue,
            g2_met: self.g2_met(),
        }
    }

    /// G2: the required kinds not yet held by the whole triangle; and on-site
    /// is missing while none of the three was at the company.
    pub fn missing_moments(&self) -> Vec<ContactKind> {
        [ContactKind::Start, ContactKind::Midway, ContactKind::End]
            .into_iter()
            .filter(|kind| {
                !self.contact_moments.iter().any(|m| m.held.kind == *kind && counts_for_g2(&m.held))
            })
            .collect()
    }

    /// G2: start, midway and end held with all three parties, one of them on site.
    pub fn g2_met(&self) -> bool {
        let on_site = self.contact_moments.iter().any(|m| {
            counts_for_g2(&m.held)
                && m.held.kind != ContactKind::Extra
                && m.held.mode == ContactMode::OnSite
        });
        self.missing_moments().is_empty() && on_site
    }

    /// The day a required contact moment becomes overdue: its planned day (or
    /// the start, the midpoint, the end of the period) plus the grace days.
    pub fn due_on(&self, kind: ContactKind) -> Option<NaiveDate> {
        let agreement = self.agreement.as_ref()?;
        let terms = &agreement.drafted.terms;
        let planned = terms.contact_plan.iter().find(|p| p.kind == kind).map(|p| p.planned_on);
        let default = match kind {
            ContactKind::Start => Some(self.started_on.unwrap_or(terms.period.start)),
            ContactKind::Midway => Some(terms.period.midpoint()),
            ContactKind::End => Some(terms.period.end),
            ContactKind::Extra => None,
        };
        // Dates are bounded at the edge; at the end of the calendar the grace
        // days are simply not added.
        planned.or(default).map(|day| {
            day.checked_add_signed(chrono::Duration::days(CONTACT_GRACE_DAYS)).unwrap_or(day)
        })
    }

    /// The first day a missing contact moment is overdue, for an active
    /// placement without a waiver (the read model stores it to filter on).
    pub fn overdue_from(&self) -> Option<NaiveDate> {
        if self.status != PlacementStatus::Active || self.waiver.is_some() {
            return None;
        }
        self.missing_moments().into_iter().filter_map(|kind| self.due_on(kind)).min()
    }

    /// Needs attention whatever the day: signatures missing, at risk, or an
    /// alternative needed (overdue contact moments come on top, by date).
    pub fn flagged(&self) -> bool {
        let unsigned =
            self.status == PlacementStatus::Agreed && !self.missing_signatures().is_empty();
        let at_risk = self.risk.is_some() && !self.status.is_closed();
        unsigned || at_risk || self.alternative == Some(Alternative::Needed)
    }

    /// Whether the school should look at it on `today`.
    pub fn needs_attention(&self, today: NaiveDate) -> bool {
        self.flagged() || self.overdue_from().is_some_and(|day| day < today)
    }

    /// What the student should do next, if anything.
    pub fn next_action_for_student(&self) -> Option<NextAction> {
        use PlacementStatus as S;
        let unconfirmed = self.contact_moments.iter().any(|m| {
            m.held.recorded_by != Participant::Student
                && m.held.participants.contains(&Participant::Student)
                && !m.confirmed_by.contains(&Participant::Student)
        });
        match self.status {
            _ if self.risk.is_some() && self.status.is_pending() => Some(NextAction::WaitForSchool),
            S::Proposed => Some(NextAction::RespondToMatch),
            S::SelfFoundProposed => Some(NextAction::WaitForApproval),
            S::Accepted => Some(NextAction::WaitForAgreement),
            S::Agreed if self.missing_signatures().contains(&Signatory::Student) => {
                Some(NextAction::SignAgreement)
            }
            S::Agreed => Some(NextAction::WaitForStart),
            S::Active if unconfirmed => Some(NextAction::ConfirmContactMoment),
            S::Active | S::Completed | S::Interrupted if self.rating.is_none() => {
                Some(NextAction::RateGuidance)
            }
            S::Active => Some(NextAction::FollowPlacement),
            S::Completed | S::Interrupted | S::Objected | S::Withdrawn => None,
        }
    }
}

/// G2 counts a moment only when the whole triangle took part.
fn counts_for_g2(held: &ContactMomentHeld) -> bool {
    [Participant::Student, Participant::School, Participant::Company]
        .iter()
        .all(|p| held.participants.contains(p))
}

/// Contact moments held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ContactCounts {
    /// All moments.
    pub total: u32,
    /// Moments on site.
    pub on_site: u32,
    /// Start moments with the whole triangle.
    pub start: u32,
    /// Midway moments with the whole triangle.
    pub midway: u32,
    /// End moments with the whole triangle.
    pub end: u32,
}

/// A placement's compliance with G1 and G2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compliance {
    /// Who must sign (G1).
    pub signatures_required: Vec<Signatory>,
    /// Who signed.
    pub signatures_present: Vec<Signatory>,
    /// Who has not.
    pub signatures_missing: Vec<Signatory>,
    /// Contact moments held (G2).
    pub contact_moments: ContactCounts,
    /// Whether the school waived G2.
    pub waived: bool,
    /// Required moments past their due day.
    pub overdue: Vec<ContactKind>,
    /// Whether G2 is met.
    pub g2_met: bool,
}

/// What a student should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NextAction {
    /// Accept the match or object with reasons.
    RespondToMatch,
    /// The school must approve the self-found placement.
    WaitForApproval,
    /// The school drafts the agreement.
    WaitForAgreement,
    /// Sign the agreement.
    SignAgreement,
    /// Others must sign, or the school must start the placement.
    WaitForStart,
    /// Confirm a contact moment you took part in.
    ConfirmContactMoment,
    /// Rate the guidance of school and company.
    RateGuidance,
    /// Nothing due: keep going.
    FollowPlacement,
    /// The company's recognition is in question: the school will contact you.
    WaitForSchool,
}

impl NextAction {
    /// As in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RespondToMatch => "respond_to_match",
            Self::WaitForApproval => "wait_for_approval",
            Self::WaitForAgreement => "wait_for_agreement",
            Self::SignAgreement => "sign_agreement",
            Self::WaitForStart => "wait_for_start",
            Self::ConfirmContactMoment => "confirm_contact_moment",
            Self::RateGuidance => "rate_guidance",
            Self::FollowPlacement => "follow_placement",
            Self::WaitForSchool => "wait_for_school",
        }
    }
}
