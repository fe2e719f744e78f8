//! Placement reactions: a process manager driven from the global log (never
//! from in-process callbacks), so each reaction happens exactly once, also
//! across a crash.
//!
//! - A company's recognition is suspended (D5): every open placement there
//!   notices it (at risk, cannot start). Reinstated: the risk clears. Revoked
//!   (S1): an active placement is interrupted and the school asked for an
//!   alternative; a pending one is flagged the same way.
//! - A placement names the one it replaces: the old one records the alternative.
//! - A placement ends early (objection, withdrawal, interruption): its offer's
//!   slot is released.
//!
//! Exactly once: the process manager's decisions go to an outbox in the same
//! transaction as its checkpoint, keyed by the triggering event; the dispatcher
//! carries them out after commit, and the target aggregate records each
//! triggering event at most once (`reactions` on the placement; a released slot
//! is released once), so a repeat after a crash records nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use stagepact_domain::company::{Company, CompanyEvent};
use stagepact_domain::offer::{Offer, OfferCommand};
use stagepact_domain::placement::{Placement, PlacementCommand, PlacementEvent, RecognitionChange};
use stagepact_domain::values::Reason;
use tokio::sync::watch;
use uuid::Uuid;

use crate::log::{EventLog, LoggedEvent};
use crate::{CommandBus, CommandError, StoreError};

/// The process manager's name (its checkpoint).
pub const NAME: &str = "placement_reactions";
/// Outbox rows carried out per round.
const DISPATCH_BATCH: i64 = 100;
/// How often an idle dispatcher looks at the outbox anyway.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// A command the process manager decided, as stored in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reaction")]
pub enum Reaction {
    /// The company's recognition was suspended or revoked.
    RecognitionChanged {
        /// Which.
        change: RecognitionChange,
        /// SBB's reason.
        reason: Reason,
        /// The day of the company event.
        on: NaiveDate,
    },
    /// The company's recognition was reinstated.
    RecognitionReinstated,
    /// A new placement replaces this one.
    AlternativeOffered {
        /// The new placement.
        alternative_placement_id: Uuid,
    },
    /// Give back the offer's slot held by this placement.
    ReleaseSlot {
        /// The placement.
        placement_id: Uuid,
    },
}

/// The placement-reactions process manager (a `Projection` whose "read model"
/// is its own placement index and the outbox).
#[derive(Debug, Default, Clone, Copy)]
pub struct PlacementReactions;

/// A decided reaction: (target type, target id, reaction).
type Decided = (&'static str, String, Reaction);

async fn enqueue(
    tx: &mut PgConnection,
    cause: &LoggedEvent,
    (aggregate_type, aggregate_id, reaction): Decided,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO reaction_outbox (reaction_to, aggregate_type, aggregate_id, command)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(event_key(cause))
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(serde_json::to_value(&reaction)?)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The reason a revocation's interruption records.
fn revocation_reason() -> Reason {
    // Invariant: a fixed, non-empty text within the bounds of `Reason`.
    Reason::parse("SBB revoked the company's recognition")
        .unwrap_or_else(|_| unreachable!("a valid fixed reason"))
}

/// `<aggregate type>:<id>:<sequence>`: names one event (also the feed's id).
pub fn event_key(event: &LoggedEvent) -> String {
    format!("{}:{}:{}", event.aggregate_type, event.aggregate_id, event.sequence)
}

/// The open placements at `company` (for one qualification, or all).
async fn open_at(
    tx: &mut PgConnection,
    company: &str,
    qualification: Option<String>,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT placement_id FROM reaction_placements
          WHERE company_id = $1 AND ($2::text IS NULL OR qualification = $2)
          ORDER BY placement_id",
    )
    .bind(company)
    .bind(qualification)
    .fetch_all(&mut *tx)
    .await?)
}

impl PlacementReactions {
    async fn on_company(
        tx: &mut PgConnection,
        event: &LoggedEvent,
    ) -> Result<Vec<Decided>, StoreError> {
        let company_event: CompanyEvent = crate::fold::event(event)?;
        let on = event.recorded_at.date_naive();
        let (reaction, qualification) = match company_event {
            CompanyEvent::RecognitionSuspended(suspended) => (
                Reaction::RecognitionChanged {
                    change: RecognitionChange::Suspended,
                    reason: suspended.reason,
                    on,
                },
                None,
            ),
            CompanyEvent::RecognitionRevoked(revoked) => (
                Reaction::RecognitionChanged {
                    change: RecognitionChange::Revoked,
                    // SBB's own words stay with SBB and the company (they may
                    // concern an investigation); schools and students read this.
                    reason: revocation_reason(),
                    on,
                },
                revoked.qualification.map(|q| q.to_string()),
            ),
            CompanyEvent::RecognitionReinstated(_) => (Reaction::RecognitionReinstated, None),
            CompanyEvent::CompanyRegistered(_)
            | CompanyEvent::RecognitionGranted(_)
            | CompanyEvent::MatchingParticipationSet(_) => {
                return Ok(Vec::new());
            }
        };
        // The company's standing as of this event, for placements proposed
        // after it but decided on an earlier look (see `on_placement`).
        let standing = match &reaction {
            Reaction::RecognitionChanged { change: RecognitionChange::Revoked, .. }
                if qualification.is_some() =>
            {
                None
            }
            Reaction::RecognitionChanged { change: RecognitionChange::Revoked, .. } => {
                Some("revoked")
            }
            Reaction::RecognitionChanged { .. } => Some("suspended"),
            _ => Some("active"),
        };
        if let Some(standing) = standing {
            sqlx::query(
                "INSERT INTO reaction_companies (company_id, standing, cause, on_day)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (company_id) DO UPDATE
                   SET standing = CASE WHEN reaction_companies.standing = 'revoked'
                                       THEN 'revoked' ELSE excluded.standing END,
                       cause = excluded.cause, on_day = excluded.on_day",
            )
            .bind(&event.aggregate_id)
            .bind(standing)
            .bind(event_key(event))
            .bind(on)
            .execute(&mut *tx)
            .await?;
        }
        let targets = open_at(tx, &event.aggregate_id, qualification).await?;
        Ok(targets
            .into_iter()
            .map(|id| (Placement::TYPE, id.to_string(), reaction.clone()))
            .collect())
    }

    /// A run of placement events with no company event between them, in log
    /// order: what each decides. Their rows change with three statements for
    /// the whole run rather than two or three per event: every proposal's
    /// row goes in, then every ended placement's row goes out (a placement is
    /// proposed once and ends after, so that is the order of the log for each
    /// one), and the standings are read once (only company events change
    /// them, and none lies inside the run).
    async fn on_placements(
        tx: &mut PgConnection,
        run: &[LoggedEvent],
    ) -> Result<Vec<Vec<Decided>>, StoreError> {
        let decoded: Vec<PlacementEvent> =
            run.iter().map(crate::fold::event).collect::<Result<_, _>>()?;
        let mut proposed = Proposed::default();
        let mut ended = Vec::new();
        for (event, placement_event) in run.iter().zip(&decoded) {
            match placement_event {
                PlacementEvent::MatchProposed(p) => {
                    proposed.push(
                        &event.aggregate_id,
                        &p.company_id,
                        p.qualification,
                        Some(p.offer_id),
                    );
                }
                PlacementEvent::SelfFoundPlacementProposed(p) => {
                    proposed.push(&event.aggregate_id, &p.company_id, p.qualification, None);
                }
                PlacementEvent::MatchObjected(_)
                | PlacementEvent::MatchWithdrawn(_)
                | PlacementEvent::PlacementInterrupted(_)
                | PlacementEvent::PlacementCompleted(_) => ended.push(event.aggregate_id.as_str()),
                _ => {}
            }
        }
        if !proposed.placements.is_empty() {
            sqlx::query(
                "INSERT INTO reaction_placements (placement_id, company_id, qualification, offer_id)
                 SELECT p::uuid, c, q, o FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[])
                        AS r(p, c, q, o)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&proposed.placements)
            .bind(&proposed.companies)
            .bind(&proposed.qualifications)
            .bind(&proposed.offers)
            .execute(&mut *tx)
            .await?;
        }
        // The offer each ended placement held, if its row was still there.
        let released: HashMap<String, Option<Uuid>> = if ended.is_empty() {
            HashMap::new()
        } else {
            let rows: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as(
                "DELETE FROM reaction_placements WHERE placement_id = ANY($1::text[]::uuid[])
                 RETURNING placement_id, offer_id",
            )
            .bind(&ended)
            .fetch_all(&mut *tx)
            .await?;
            rows.into_iter().map(|(id, offer)| (id.to_string(), offer)).collect()
        };
        // A proposal decided on the company's standing just before SBB
        // suspended or revoked it lands after that event in the log: it
        // notices the change now, keyed by its own proposal event.
        let standings: HashMap<String, (String, NaiveDate)> = if proposed.companies.is_empty() {
            HashMap::new()
        } else {
            let rows: Vec<(String, String, NaiveDate)> = sqlx::query_as(
                "SELECT company_id, standing, on_day FROM reaction_companies
                  WHERE company_id = ANY($1) AND standing <> 'active'",
            )
            .bind(&proposed.companies)
            .fetch_all(&mut *tx)
            .await?;
            rows.into_iter().map(|(company, standing, on)| (company, (standing, on))).collect()
        };
        let mut released = released;
        run.iter()
            .zip(decoded)
            .map(|(event, placement_event)| {
                let placement_id = &event.aggregate_id;
                let mut decided = Vec::new();
                let (company, replaces) = match placement_event {
                    PlacementEvent::MatchProposed(p) => (p.company_id, p.replaces),
                    PlacementEvent::SelfFoundPlacementProposed(p) => (p.company_id, p.replaces),
                    PlacementEvent::MatchObjected(_)
                    | PlacementEvent::MatchWithdrawn(_)
                    | PlacementEvent::PlacementInterrupted(_) => {
                        // Its slot goes back to the offer (the first end of a
                        // placement takes the row; a later one finds none).
                        if let Some(Some(offer_id)) = released.remove(placement_id) {
                            decided.push((
                                Offer::TYPE,
                                offer_id.to_string(),
                                Reaction::ReleaseSlot { placement_id: uuid_of(placement_id)? },
                            ));
                        }
                        return Ok(decided);
                    }
                    PlacementEvent::PlacementCompleted(_) => {
                        released.remove(placement_id);
                        return Ok(decided);
                    }
                    _ => return Ok(decided),
                };
                if let Some((standing, on)) = standings.get(company.as_str()) {
                    let change = if standing == "revoked" {
                        RecognitionChange::Revoked
                    } else {
                        RecognitionChange::Suspended
                    };
                    decided.push((
                        Placement::TYPE,
                        placement_id.clone(),
                        Reaction::RecognitionChanged {
                            change,
                            reason: revocation_reason(),
                            on: *on,
                        },
                    ));
                }
                if let Some(old) = replaces {
                    decided.push((
                        Placement::TYPE,
                        old.to_string(),
                        Reaction::AlternativeOffered {
                            alternative_placement_id: uuid_of(placement_id)?,
                        },
                    ));
                }
                Ok(decided)
            })
            .collect()
    }
}

/// The proposals of a run, as the columns of their rows.
#[derive(Default)]
struct Proposed {
    placements: Vec<String>,
    companies: Vec<String>,
    qualifications: Vec<String>,
    offers: Vec<Option<Uuid>>,
}

impl Proposed {
    fn push(
        &mut self,
        placement: &str,
        company: &impl ToString,
        qualification: impl ToString,
        offer: Option<Uuid>,
    ) {
        self.placements.push(placement.to_owned());
        self.companies.push(company.to_string());
        self.qualifications.push(qualification.to_string());
        self.offers.push(offer);
    }
}

/// A placement's id as a uuid (placements have uuid ids).
fn uuid_of(placement_id: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(placement_id)
        .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))
}

#[async_trait]
impl crate::Projection for PlacementReactions {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[Company::TYPE, Placement::TYPE]
    }

    async fn apply(&self, tx: &mut PgConnection, events: &[LoggedEvent]) -> Result<(), StoreError> {
        // In log order: a recognition event must see the placements proposed
        // before it in the same batch. So a company event is applied alone,
        // and the placement events between two of them as one run.
        let mut rest = events;
        while let Some(first) = rest.first() {
            let (applied, decided) = if first.aggregate_type == Placement::TYPE {
                let length =
                    rest.iter().take_while(|e| e.aggregate_type == Placement::TYPE).count();
                (&rest[..length], Self::on_placements(tx, &rest[..length]).await?)
            } else if first.aggregate_type == Company::TYPE {
                (&rest[..1], vec![Self::on_company(tx, first).await?])
            } else {
                (&rest[..1], vec![Vec::new()])
            };
            for (event, reactions) in applied.iter().zip(decided) {
                for reaction in reactions {
                    enqueue(tx, event, reaction).await?;
                }
            }
            rest = &rest[applied.len()..];
        }
        Ok(())
    }

    async fn reset(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        // The outbox stays: its rows are decisions not yet carried out, and a
        // replay decides the same ones again (which the outbox key absorbs).
        sqlx::query("TRUNCATE reaction_placements, reaction_companies").execute(&mut *tx).await?;
        Ok(())
    }
}

/// Carries out the outbox: runs each decided command, then deletes its row.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    log: Arc<EventLog>,
    bus: CommandBus,
}

/// What a dispatch round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dispatched {
    /// Rows carried out (recorded, or nothing left to record).
    pub done: usize,
    /// Rows left for a later round because the store failed.
    pub failed: usize,
}

impl Dispatcher {
    /// A dispatcher over the log's database.
    pub fn new(log: Arc<EventLog>, bus: CommandBus) -> Self {
        Self { log, bus }
    }

    /// Runs until aborted: a round whenever `rounds` changes (after each
    /// round of this process's `placement_reactions` worker, the only writer
    /// of the outbox: see [`Projections::subscribe`](crate::Projections::subscribe)),
    /// and every half second (the worker may be active in another process).
    /// Not on every move of the log: most moves hold no reaction, and a
    /// round per move cost a query per appended batch.
    pub async fn run(self, mut rounds: watch::Receiver<i64>) {
        loop {
            match self.round().await {
                Ok(Dispatched { done, .. }) if done as i64 == DISPATCH_BATCH => continue,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "reaction dispatch failed"),
            }
            if tokio::time::timeout(IDLE_POLL, rounds.changed()).await.is_ok_and(|r| r.is_err()) {
                // No worker here any more (shutting down): poll.
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }

    /// Carries out the outbox rows present now, oldest first.
    pub async fn round(&self) -> Result<Dispatched, StoreError> {
        let pool = self.log.background();
        let rows: Vec<(i64, String, String, String, serde_json::Value)> = sqlx::query_as(
            "SELECT id, reaction_to, aggregate_type, aggregate_id, command
               FROM reaction_outbox ORDER BY id LIMIT $1",
        )
        .bind(DISPATCH_BATCH)
        .fetch_all(pool)
        .await?;
        let mut outcome = Dispatched::default();
        // Reactions to one aggregate are carried out in log order: once one
        // fails, the later ones for the same aggregate wait for the next round
        // (a reinstatement must not overtake its suspension).
        let mut held_back: std::collections::HashSet<String> = std::collections::HashSet::new();
        for (id, reaction_to, aggregate_type, aggregate_id, command) in rows {
            if held_back.contains(&aggregate_id) {
                outcome.failed += 1;
                continue;
            }
            let result = match serde_json::from_value::<Reaction>(command) {
                Ok(reaction) => {
                    self.carry_out(&reaction_to, &aggregate_type, &aggregate_id, reaction).await
                }
                // A row this build cannot read stays for a build that can.
                Err(error) => Err(StoreError::Corrupt(error)),
            };
            match result {
                Ok(()) => {
                    sqlx::query("DELETE FROM reaction_outbox WHERE id = $1")
                        .bind(id)
                        .execute(pool)
                        .await?;
                    outcome.done += 1;
                }
                Err(error) => {
                    tracing::warn!(%error, reaction_to, aggregate_id, "reaction not carried out yet");
                    held_back.insert(aggregate_id.clone());
                    sqlx::query("UPDATE reaction_outbox SET attempts = attempts + 1 WHERE id = $1")
                        .bind(id)
                        .execute(pool)
                        .await?;
                    outcome.failed += 1;
                }
            }
        }
        Ok(outcome)
    }

    async fn carry_out(
        &self,
        reaction_to: &str,
        aggregate_type: &str,
        aggregate_id: &str,
        reaction: Reaction,
    ) -> Result<(), StoreError> {
        let metadata = HashMap::from([
            ("actor_role".to_owned(), "system".to_owned()),
            ("actor".to_owned(), NAME.to_owned()),
            ("reaction_to".to_owned(), reaction_to.to_owned()),
        ]);
        let reaction_to = reaction_to.to_owned();
        match (aggregate_type, reaction) {
            ("offer", Reaction::ReleaseSlot { placement_id }) => self
                .bus
                .execute::<Offer>(
                    aggregate_id,
                    OfferCommand::ReleaseSlot { placement_id },
                    None,
                    metadata,
                )
                .await
                .map(drop)
                .or_else(refused_is_done),
            (_, reaction) => {
                let command = match reaction {
                    Reaction::RecognitionChanged { change, reason, on } => {
                        PlacementCommand::NoticeRecognitionChange {
                            change,
                            reason,
                            reaction_to,
                            today: on,
                        }
                    }
                    Reaction::RecognitionReinstated => {
                        PlacementCommand::NoticeReinstatement { reaction_to }
                    }
                    Reaction::AlternativeOffered { alternative_placement_id } => {
                        PlacementCommand::NoticeAlternative {
                            alternative_placement_id,
                            reaction_to,
                        }
                    }
                    Reaction::ReleaseSlot { .. } => return Ok(()),
                };
                self.bus
                    .execute::<Placement>(aggregate_id, command, None, metadata)
                    .await
                    .map(drop)
                    .or_else(refused_is_done)
            }
        }
    }
}

/// A domain refusal of a reaction (e.g. the target does not exist) will not
/// change on a retry: the reaction is done. Store failures are retried.
fn refused_is_done<E: std::error::Error>(error: CommandError<E>) -> Result<(), StoreError> {
    match error {
        CommandError::Rejected(refusal) => {
            tracing::warn!(%refusal, "reaction refused by its target; dropped");
            Ok(())
        }
        CommandError::Store(store) => Err(store),
        other => Err(StoreError::Database(sqlx::Error::Protocol(other.to_string()))),
    }
}
