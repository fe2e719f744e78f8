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

    async fn on_placement(
        tx: &mut PgConnection,
        event: &LoggedEvent,
    ) -> Result<Vec<Decided>, StoreError> {
        let placement_event: PlacementEvent = crate::fold::event(event)?;
        let placement_id = &event.aggregate_id;
        let mut decided = Vec::new();
        let (company, qualification, offer, replaces) = match &placement_event {
            PlacementEvent::MatchProposed(p) => {
                (&p.company_id, p.qualification, Some(p.offer_id), p.replaces)
            }
            PlacementEvent::SelfFoundPlacementProposed(p) => {
                (&p.company_id, p.qualification, None, p.replaces)
            }
            PlacementEvent::MatchObjected(_)
            | PlacementEvent::MatchWithdrawn(_)
            | PlacementEvent::PlacementInterrupted(_)
            | PlacementEvent::PlacementCompleted(_) => {
                let released: Option<Option<Uuid>> = sqlx::query_scalar(
                    "DELETE FROM reaction_placements WHERE placement_id = $1::uuid RETURNING offer_id",
                )
                .bind(placement_id)
                .fetch_optional(&mut *tx)
                .await?;
                let ended_early = !matches!(placement_event, PlacementEvent::PlacementCompleted(_));
                if let (true, Some(Some(offer_id))) = (ended_early, released) {
                    let placement_id = Uuid::parse_str(placement_id)
                        .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?;
                    decided.push((
                        Offer::TYPE,
                        offer_id.to_string(),
                        Reaction::ReleaseSlot { placement_id },
                    ));
                }
                return Ok(decided);
            }
            _ => return Ok(decided),
        };
        sqlx::query(
            "INSERT INTO reaction_placements (placement_id, company_id, qualification, offer_id)
             VALUES ($1::uuid, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(placement_id)
        .bind(company.as_str())
        .bind(qualification.as_str())
        .bind(offer)
        .execute(&mut *tx)
        .await?;
        // A proposal decided on the company's standing just before SBB
        // suspended or revoked it lands after that event in the log: it
        // notices the change now, keyed by its own proposal event.
        let standing: Option<(String, NaiveDate)> = sqlx::query_as(
            "SELECT standing, on_day FROM reaction_companies
              WHERE company_id = $1 AND standing <> 'active'",
        )
        .bind(company.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((standing, on)) = standing {
            let change = if standing == "revoked" {
                RecognitionChange::Revoked
            } else {
                RecognitionChange::Suspended
            };
            decided.push((
                Placement::TYPE,
                placement_id.clone(),
                Reaction::RecognitionChanged { change, reason: revocation_reason(), on },
            ));
        }
        if let Some(old) = replaces {
            let alternative_placement_id = Uuid::parse_str(placement_id)
                .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?;
            decided.push((
                Placement::TYPE,
                old.to_string(),
                Reaction::AlternativeOffered { alternative_placement_id },
            ));
        }
        Ok(decided)
    }
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
        // One event at a time, in log order: a recognition event must see the
        // placements proposed before it in the same batch.
        for event in events {
            let decided = match event.aggregate_type.as_str() {
                "company" => Self::on_company(tx, event).await?,
                "placement" => Self::on_placement(tx, event).await?,
                _ => Vec::new(),
            };
            for reaction in decided {
                enqueue(tx, event, reaction).await?;
            }
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
