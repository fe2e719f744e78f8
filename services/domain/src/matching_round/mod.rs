//! A matching round (stagematching): a school's objective matching of its
//! students to placement offers, kept as an auditable record (M1-M5).
//!
//! The school opens a round, runs it (the engine's result is recorded with the
//! digest of its input, so the same input is not recorded twice), and
//! publishes it. A single round's proposals then become placements
//! (`MatchProposed`); a two-and-two round's proposals are introductions: each
//! student meets two companies and each offer up to two students per slot, and
//! the school settles each student with one of them afterwards (M4). Carrying
//! the matches out happens beside the round and is recorded on it; a match
//! that cannot become a placement lapses, and its student is back in the pool.
//!
//! Which students and offers are in play is decided by the caller from the
//! read models (rules M2, M4, S1, S2); the engine (M1, M5) decides the
//! proposals; this aggregate keeps the record straight.

mod events;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use stagepact_matching::Variant;
use uuid::Uuid;

pub use events::{
    LapsedMatch, LeftOut, LeftOutReason, MatchingRoundCarriedOut, MatchingRoundEvent,
    MatchingRoundOpened, MatchingRoundPublished, MatchingRoundRun, MatchingRoundSettled,
    RoundMatch,
};

use crate::Visibility;
use crate::values::StudentNumber;

/// The placement a round's match becomes: the same round, student and offer
/// always give the same id, so a retry cannot propose a match twice.
pub fn placement_id(round_id: Uuid, student_id: &StudentNumber, offer_id: Uuid) -> Uuid {
    Uuid::new_v5(&round_id, format!("{student_id}/{offer_id}").as_bytes())
}

/// A command on a matching round.
#[derive(Debug, Clone, PartialEq)]
pub enum MatchingRoundCommand {
    /// The school opens the round.
    Open(MatchingRoundOpened),
    /// Record a run of the engine: its input digest, result and time. On the
    /// digest of the latest run, nothing is recorded.
    RecordRun {
        /// The digest of the engine's input.
        input_digest: String,
        /// The settings the engine ran with.
        settings: stagepact_matching::Settings,
        /// Named students not in the run.
        left_out: Vec<LeftOut>,
        /// The engine's result.
        outcome: Box<stagepact_matching::MatchingOutcome>,
        /// The engine's time.
        run_time_ms: u64,
    },
    /// The school publishes the latest run.
    Publish {
        /// Today.
        today: NaiveDate,
    },
    /// The school settles two-and-two students with one of their introductions.
    Settle {
        /// (student, offer) pairs.
        settlements: Vec<(StudentNumber, Uuid)>,
    },
    /// Record how pending matches were carried out; nothing when none of them
    /// is pending any more.
    RecordCarriedOut(MatchingRoundCarriedOut),
}

/// Why a matching-round command was refused. Each refusal names its rule
/// where a pact rule is behind it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchingRoundError {
    /// The round id is taken.
    #[error("the matching round already exists")]
    AlreadyOpened,
    /// No such round.
    #[error("no such matching round")]
    NotFound,
    /// Published rounds are final: open a new round for the students left.
    #[error("the round is published; open a new round for the students still without a placement")]
    Published,
    /// Publishing needs a run.
    #[error("the round has not been run")]
    NotRun,
    /// Nothing to publish.
    #[error("the latest run proposed no match")]
    NothingProposed,
    /// Settling is for published two-and-two rounds.
    #[error("only a published two-and-two round is settled")]
    NotSettleable,
    /// M4: a student is settled with a company they were introduced to.
    #[error("student {student} was not introduced to offer {offer} in this round")]
    NotIntroduced {
        /// The student.
        student: String,
        /// The offer.
        offer: Uuid,
    },
    /// A student is settled once (again only after their match lapsed).
    #[error("student {0} is settled already")]
    AlreadySettled(String),
    /// The settled match lapsed: the other introduction remains.
    #[error(
        "the match of student {student} with offer {offer} lapsed; settle with another introduction"
    )]
    Lapsed {
        /// The student.
        student: String,
        /// The offer.
        offer: Uuid,
    },
    /// No settlements.
    #[error("name at least one settlement")]
    NoSettlements,
}

impl MatchingRoundError {
    /// The pact rule behind the refusal.
    pub fn rule(&self) -> Option<&'static str> {
        match self {
            Self::NotSettleable
            | Self::NotIntroduced { .. }
            | Self::AlreadySettled(_)
            | Self::Lapsed { .. } => Some("M4"),
            _ => None,
        }
    }
}

/// A round's record: the state the aggregate decides on and the read model serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchingRoundRecord {
    /// As opened.
    pub opened: MatchingRoundOpened,
    /// The latest run.
    pub latest_run: Option<MatchingRoundRun>,
    /// When published, and which run.
    pub published: Option<(u32, NaiveDate)>,
    /// The matches to carry out (published or settled), by placement id.
    pub matches: BTreeMap<Uuid, RoundMatch>,
    /// The placements proposed.
    pub placed: BTreeSet<Uuid>,
    /// The matches that lapsed.
    pub lapsed: BTreeMap<Uuid, LapsedMatch>,
}

impl MatchingRoundRecord {
    /// The record an aggregate's first event starts; `None` for any other
    /// event (which `decide` never records first).
    pub fn start(event: &MatchingRoundEvent) -> Option<Self> {
        match event {
            MatchingRoundEvent::MatchingRoundOpened(started) => {
                Some(MatchingRoundRecord::opened(started))
            }
            _ => None,
        }
    }

    /// The record an opening starts.
    pub fn opened(event: &MatchingRoundOpened) -> Self {
        Self {
            opened: event.clone(),
            latest_run: None,
            published: None,
            matches: BTreeMap::new(),
            placed: BTreeSet::new(),
            lapsed: BTreeMap::new(),
        }
    }

    /// Folds one event into the record (the first event starts it).
    pub fn apply(&mut self, event: &MatchingRoundEvent) {
        match event {
            MatchingRoundEvent::MatchingRoundOpened(_) => {}
            MatchingRoundEvent::MatchingRoundRun(run) => self.latest_run = Some((**run).clone()),
            MatchingRoundEvent::MatchingRoundPublished(published) => {
                self.published = Some((published.run, published.published_on));
                self.add(&published.matches);
            }
            MatchingRoundEvent::MatchingRoundSettled(settled) => self.add(&settled.matches),
            MatchingRoundEvent::MatchingRoundCarriedOut(done) => {
                self.placed.extend(done.placed.iter().copied());
                for lapsed in &done.lapsed {
                    self.lapsed.insert(lapsed.placement_id, lapsed.clone());
                }
            }
        }
    }

    fn add(&mut self, matches: &[RoundMatch]) {
        for m in matches {
            self.matches.insert(m.placement_id, m.clone());
        }
    }

    /// The students with a match that has not lapsed: placed or pending.
    pub fn settled_students(&self) -> BTreeSet<&str> {
        self.matches
            .values()
            .filter(|m| !self.lapsed.contains_key(&m.placement_id))
            .map(|m| m.student_id.as_str())
            .collect()
    }

    /// The matches not carried out yet.
    pub fn pending(&self) -> Vec<&RoundMatch> {
        self.matches
            .values()
            .filter(|m| !self.placed.contains(&m.placement_id))
            .filter(|m| !self.lapsed.contains_key(&m.placement_id))
            .collect()
    }

    /// `open`, `run`, `published` or (two-and-two, once every introduced
    /// student is settled) `settled`.
    pub fn status(&self) -> &'static str {
        match (&self.published, &self.latest_run) {
            (Some(_), Some(run)) if self.opened.variant == Variant::TwoAndTwo => {
                let introduced: BTreeSet<&str> =
                    run.outcome.proposals.iter().map(|p| p.student.0.as_str()).collect();
                let settled = self.settled_students();
                if introduced.len() == settled.len() { "settled" } else { "published" }
            }
            (Some(_), _) => "published",
            (None, Some(_)) => "run",
            (None, None) => "open",
        }
    }
}

/// The matching-round aggregate.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchingRound {
    record: Option<MatchingRoundRecord>,
}

impl MatchingRound {
    /// The record, once opened.
    pub fn record(&self) -> Option<&MatchingRoundRecord> {
        self.record.as_ref()
    }

    /// Decides a command; `None` when there is nothing to record.
    pub fn decide(
        &self,
        command: MatchingRoundCommand,
    ) -> Result<Option<MatchingRoundEvent>, MatchingRoundError> {
        use MatchingRoundCommand as C;
        let Some(record) = &self.record else {
            return match command {
                C::Open(opened) => Ok(Some(MatchingRoundEvent::MatchingRoundOpened(opened))),
                _ => Err(MatchingRoundError::NotFound),
            };
        };
        let round_id = record.opened.round_id;
        match command {
            C::Open(_) => Err(MatchingRoundError::AlreadyOpened),
            C::RecordRun { input_digest, settings, left_out, outcome, run_time_ms } => {
                if record.published.is_some() {
                    return Err(MatchingRoundError::Published);
                }
                let latest = record.latest_run.as_ref();
                // Deterministic engine: the same input gives the same result.
                if latest.is_some_and(|run| run.input_digest == input_digest) {
                    return Ok(None);
                }
                Ok(Some(MatchingRoundEvent::MatchingRoundRun(Box::new(MatchingRoundRun {
                    run: latest.map_or(1, |run| run.run + 1),
                    input_digest,
                    settings,
                    left_out,
                    outcome: *outcome,
                    run_time_ms,
                }))))
            }
            C::Publish { today } => {
                if record.published.is_some() {
                    return Err(MatchingRoundError::Published);
                }
                let run = record.latest_run.as_ref().ok_or(MatchingRoundError::NotRun)?;
                if run.outcome.proposals.is_empty() {
                    return Err(MatchingRoundError::NothingProposed);
                }
                let matches = match record.opened.variant {
                    Variant::TwoAndTwo => Vec::new(),
                    Variant::Single => run
                        .outcome
                        .proposals
                        .iter()
                        .filter_map(|p| round_match(round_id, &p.student.0, &p.offer.0))
                        .collect(),
                };
                Ok(Some(MatchingRoundEvent::MatchingRoundPublished(MatchingRoundPublished {
                    run: run.run,
                    matches,
                    published_on: today,
                })))
            }
            C::Settle { settlements } => {
                let run = match (&record.published, &record.latest_run) {
                    (Some(_), Some(run)) if record.opened.variant == Variant::TwoAndTwo => run,
                    _ => return Err(MatchingRoundError::NotSettleable),
                };
                if settlements.is_empty() {
                    return Err(MatchingRoundError::NoSettlements);
                }
                let introductions: BTreeSet<(&str, &str)> = run
                    .outcome
                    .proposals
                    .iter()
                    .map(|p| (p.student.0.as_str(), p.offer.0.as_str()))
                    .collect();
                let mut settled = record.settled_students();
                let mut matches = Vec::with_capacity(settlements.len());
                for (student, offer) in &settlements {
                    let (name, offer_text) = (student.to_string(), offer.to_string());
                    if !introductions.contains(&(student.as_str(), offer_text.as_str())) {
                        return Err(MatchingRoundError::NotIntroduced {
                            student: name,
                            offer: *offer,
                        });
                    }
                    if !settled.insert(student.as_str()) {
                        return Err(MatchingRoundError::AlreadySettled(name));
                    }
                    let placement_id = placement_id(round_id, student, *offer);
                    if record.lapsed.contains_key(&placement_id) {
                        return Err(MatchingRoundError::Lapsed { student: name, offer: *offer });
                    }
                    matches.push(RoundMatch {
                        student_id: student.clone(),
                        offer_id: *offer,
                        placement_id,
                    });
                }
                Ok(Some(MatchingRoundEvent::MatchingRoundSettled(MatchingRoundSettled { matches })))
            }
            C::RecordCarriedOut(done) => {
                let pending: BTreeSet<Uuid> =
                    record.pending().iter().map(|m| m.placement_id).collect();
                let placed: Vec<Uuid> =
                    done.placed.into_iter().filter(|id| pending.contains(id)).collect();
                let lapsed: Vec<LapsedMatch> =
                    done.lapsed.into_iter().filter(|l| pending.contains(&l.placement_id)).collect();
                if placed.is_empty() && lapsed.is_empty() {
                    return Ok(None);
                }
                Ok(Some(MatchingRoundEvent::MatchingRoundCarriedOut(MatchingRoundCarriedOut {
                    placed,
                    lapsed,
                })))
            }
        }
    }
}

/// A proposal as a match; the engine's ids are the school's numbers and offer
/// ids the round put in, so both parse (a proposal that would not is skipped
/// rather than recorded wrong).
fn round_match(round_id: Uuid, student: &str, offer: &str) -> Option<RoundMatch> {
    let student_id = StudentNumber::parse(student).ok()?;
    let offer_id = Uuid::parse_str(offer).ok()?;
    Some(RoundMatch {
        placement_id: placement_id(round_id, &student_id, offer_id),
        student_id,
        offer_id,
    })
}

impl Aggregate for MatchingRound {
    const TYPE: &'static str = "matching_round";
    type Command = MatchingRoundCommand;
    type Event = MatchingRoundEvent;
    type Error = MatchingRoundError;
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
        crate::fold_record(
            &mut self.record,
            &event,
            MatchingRoundRecord::start,
            MatchingRoundRecord::apply,
        );
    }
}

impl Visibility for MatchingRound {
    // The school's own process: the round lists other companies' offers and
    // the school's students, so neither companies nor students read it.
    fn audience(&self) -> Vec<(&'static str, String)> {
        self.record().map(|r| vec![("school", r.opened.school.to_string())]).unwrap_or_default()
    }
}
