//! What the parties (and the reactions) can ask of a placement. Facts the
//! placement cannot know itself — the student's enrolment, the offer, the
//! company's standing, the wage table — are looked up by the caller and carried
//! in the command, so the rules stay here and stay testable without I/O.

use std::sync::Arc;

use chrono::NaiveDate;
use uuid::Uuid;

use super::events::*;
use crate::values::{CompanyId, Crebo, Level, Note, Pathway, Period, Reason};
use crate::wage::WageTable;

/// The student's enrolment, as the placement rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentFacts {
    /// The student as a placement records them.
    pub student: PlacementStudent,
    /// The enrolled qualification.
    pub qualification: Crebo,
}

/// The offer, as a match needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferFacts {
    /// The offer.
    pub offer_id: Uuid,
    /// Its company.
    pub company_id: CompanyId,
    /// Its qualification.
    pub qualification: Crebo,
    /// The levels it suits.
    pub levels: Vec<Level>,
    /// Its period.
    pub period: Period,
}

/// A command on a placement.
#[derive(Debug, Clone)]
pub enum PlacementCommand {
    /// The school proposes a match with an offer.
    ProposeMatch {
        /// The new placement's id.
        placement_id: Uuid,
        /// The student.
        student: StudentFacts,
        /// The offer.
        offer: OfferFacts,
        /// S1: the company may host this qualification today.
        company_may_host: bool,
        /// The school's explanation.
        explanation: Option<Note>,
        /// The placement this one replaces.
        replaces: Option<Uuid>,
        /// The matching round that proposes it.
        matching_round_id: Option<Uuid>,
    },
    /// The student or school proposes a placement the student found (M2).
    ProposeSelfFound {
        /// The new placement's id.
        placement_id: Uuid,
        /// The student.
        student: StudentFacts,
        /// The company.
        company_id: CompanyId,
        /// The qualification.
        qualification: Crebo,
        /// S1: the company may host this qualification today.
        company_may_host: bool,
        /// A note.
        note: Option<Note>,
        /// Who proposes.
        proposed_by: Participant,
        /// The placement this one replaces.
        replaces: Option<Uuid>,
    },
    /// The school approves a self-found placement.
    ApproveSelfFound {
        /// S1: the company may host this qualification today.
        company_may_host: bool,
        /// Today.
        today: NaiveDate,
    },
    /// The student accepts the match.
    Accept {
        /// Today.
        today: NaiveDate,
    },
    /// The student or company objects, with reasons (M3).
    Object(MatchObjected),
    /// The school withdraws the match.
    Withdraw(MatchWithdrawn),
    /// The school drafts the agreement.
    DraftAgreement {
        /// The terms.
        terms: AgreementTerms,
        /// The student's date of birth (G1: a legal representative under 18;
        /// C3: the youth wage by age). It is not recorded on the placement.
        date_of_birth: NaiveDate,
        /// The student's pathway now (C3 and the employment contract of G1
        /// follow it, also when it changed since the proposal).
        pathway: Pathway,
        /// The statutory minimum wage table (C3).
        wages: Arc<WageTable>,
    },
    /// A party signs the current draft.
    Sign {
        /// Who.
        party: Signatory,
        /// Today.
        today: NaiveDate,
    },
    /// The school starts the placement.
    Start {
        /// S1: the company may host this qualification today.
        company_may_host: bool,
        /// Today.
        today: NaiveDate,
        /// G1: a student under 18 on the day it starts needs a legal
        /// representative's signature.
        date_of_birth: NaiveDate,
    },
    /// School or company records a contact moment.
    RecordContactMoment {
        /// The moment.
        held: ContactMomentHeld,
        /// Today.
        today: NaiveDate,
    },
    /// Another party confirms a contact moment.
    ConfirmContactMoment(ContactMomentConfirmed),
    /// The school deviates from G2, with a reason.
    WaiveContactMoments(ContactMomentRequirementWaived),
    /// The school records a warm handover (G3).
    RecordWarmHandover(WarmHandoverHeld),
    /// The school completes the placement.
    Complete {
        /// Today.
        today: NaiveDate,
    },
    /// The school interrupts the placement.
    Interrupt {
        /// Why.
        reason: Reason,
        /// Today.
        today: NaiveDate,
    },
    /// The student rates the guidance (G4).
    Rate(GuidanceRated),
    /// Reaction: the company's recognition was suspended or revoked.
    NoticeRecognitionChange {
        /// Suspended or revoked.
        change: RecognitionChange,
        /// SBB's reason, for an interruption.
        reason: Reason,
        /// The company event (`company:<id>:<sequence>`).
        reaction_to: String,
        /// The day of the company event.
        today: NaiveDate,
    },
    /// Reaction: the company's recognition was reinstated.
    NoticeReinstatement {
        /// The company event.
        reaction_to: String,
    },
    /// Reaction: a new placement names this one as the one it replaces.
    NoticeAlternative {
        /// The new placement.
        alternative_placement_id: Uuid,
        /// The proposal event.
        reaction_to: String,
    },
}
