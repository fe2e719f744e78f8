//! Checkpointed projectors: each read model applies the log in order and records
//! how far it got in the same transaction as its update, so a crash can neither
//! lose nor double an update. One worker per projection is active at a time
//! across processes (a transaction-level advisory lock per projection); the
//! others stand by.
//!
//! cqrs-es's in-process query dispatch is not used for delivery: events can be
//! lost between commit and dispatch; the log cannot lose them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::StoreError;
use crate::log::{EventLog, FeedFilter, LoggedEvent};

/// Events applied per projector transaction. Kept moderate: the transaction
/// holds an id while it writes, and the event log stamps no later transaction
/// until it ends (see `log`), so a long batch would delay every command.
const BATCH: i64 = 500;
/// Events applied per transaction of a rebuild. Larger: a rebuild replays the
/// whole log, and each batch folds the records it touches once (a record
/// touched by ten events of one batch is decoded and written once, not ten
/// times). The price is that commands wait up to one such transaction for
/// their log position while an operator rebuilds (about a tenth of a second
/// at a million events on two cores; see BENCHMARKS.md).
const REBUILD_BATCH: i64 = 4_000;
/// The first key of the projectors' advisory locks (the second is the
/// projection's name hashed): "STAG".
const PROJECTOR_LOCKS: i32 = 0x5354_4147;
/// How often a standby worker checks whether the active one went away.
const STANDBY_POLL: Duration = Duration::from_millis(250);

/// A read model built from the log.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Its name: the checkpoint key and the argument of `projections rebuild`.
    fn name(&self) -> &'static str;
    /// The aggregate types whose events it reads.
    fn aggregate_types(&self) -> &'static [&'static str];
    /// Applies a batch of events, in log order, inside the projector's
    /// transaction. Batches let a read model fold many events per row into one
    /// write, which keeps the projector ahead of a busy command path.
    async fn apply(&self, tx: &mut PgConnection, events: &[LoggedEvent]) -> Result<(), StoreError>;
    /// Empties the read model before a rebuild, inside the rebuild's transaction.
    async fn reset(&self, tx: &mut PgConnection) -> Result<(), StoreError>;
}

/// What one projector round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Applied events up to this checkpoint; there may be more.
    Advanced(i64),
    /// Up to date at this checkpoint.
    UpToDate(i64),
    /// Another worker is active.
    Standby,
}

/// The projections this process runs, and how far each has got.
pub struct Projections {
    log: Arc<EventLog>,
    entries: Vec<(Arc<dyn Projection>, watch::Sender<i64>)>,
}

impl std::fmt::Debug for Projections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.entries.iter().map(|(p, _)| p.name()).collect();
        f.debug_struct("Projections").field("names", &names).finish()
    }
}

impl Projections {
    /// The given projections over `log`.
    pub fn new(log: Arc<EventLog>, projections: Vec<Arc<dyn Projection>>) -> Arc<Self> {
        let entries = projections.into_iter().map(|p| (p, watch::Sender::new(0))).collect();
        Arc::new(Self { log, entries })
    }

    /// The names of the projections, for the CLI.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|(p, _)| p.name()).collect()
    }

    fn find(&self, name: &str) -> Result<&(Arc<dyn Projection>, watch::Sender<i64>), StoreError> {
        self.entries
            .iter()
            .find(|(p, _)| p.name() == name)
            .ok_or_else(|| StoreError::UnknownProjection(name.to_owned()))
    }

    /// Starts one worker per projection. Abort the handles to stop them.
    pub fn spawn(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        (0..self.entries.len())
            .map(|index| {
                let this = Arc::clone(self);
                tokio::spawn(async move { this.run_worker(index).await })
            })
            .collect()
    }

    async fn run_worker(&self, index: usize) {
        let (projection, checkpoint) = &self.entries[index];
        let mut head = self.log.subscribe();
        let mut failures = 0u32;
        loop {
            match self.round(projection.as_ref(), BATCH).await {
                Ok(Round::Advanced(position)) => {
                    failures = 0;
                    checkpoint.send_replace(position);
                }
                Ok(Round::UpToDate(position)) => {
                    failures = 0;
                    checkpoint.send_replace(position);
                    head.borrow_and_update();
                    if *head.borrow() <= position {
                        let _ = tokio::time::timeout(Duration::from_secs(1), head.changed()).await;
                    }
                }
                Ok(Round::Standby) => tokio::time::sleep(STANDBY_POLL).await,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(projection = projection.name(), %error, "projector round failed");
                    let backoff = Duration::from_millis(100 * u64::from(failures.min(30)));
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    /// One transaction: lock the checkpoint, apply the next batch, move the
    /// checkpoint, commit.
    async fn round(&self, projection: &dyn Projection, batch: i64) -> Result<Round, StoreError> {
        let pool = self.log.background();
        let mut tx = pool.begin().await?;
        // One active worker per projection: a transaction-level advisory lock,
        // not `FOR UPDATE`, because a row lock gives the transaction an id at
        // once, and the event log stamps nothing newer until that id ends (see
        // `log`) — the whole round would delay every command.
        //
        // Read models are derived data and move with their checkpoint in one
        // transaction: if a crash loses the last commits, both roll back
        // together and the events are applied again. So they need not wait for
        // the WAL flush.
        let active: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_xact_lock($2, hashtext($1))
                AND set_config('synchronous_commit', 'off', true) = 'off'",
        )
        .bind(projection.name())
        .bind(PROJECTOR_LOCKS)
        .fetch_one(&mut *tx)
        .await?;
        if !active {
            tx.rollback().await?;
            return Ok(Round::Standby);
        }
        let checkpoint: Option<i64> =
            sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1")
                .bind(projection.name())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(checkpoint) = checkpoint else {
            // A projection added after its migration: give it a checkpoint.
            tx.rollback().await?;
            ensure_checkpoint(pool, projection.name()).await?;
            return Ok(Round::Advanced(0));
        };
        let upto: i64 = sqlx::query_scalar("SELECT coalesce(max(log_position), 0) FROM events")
            .fetch_one(&mut *tx)
            .await?;
        if upto <= checkpoint {
            tx.rollback().await?;
            return Ok(Round::UpToDate(checkpoint));
        }
        let filter = FeedFilter {
            aggregate_types: Some(
                projection.aggregate_types().iter().map(|t| (*t).to_owned()).collect(),
            ),
            ..FeedFilter::default()
        };
        let events = self.log.read_range(&mut tx, checkpoint, upto, batch, &filter).await?;
        projection.apply(&mut tx, &events).await?;
        // A full batch may stop short of `upto`; otherwise every position up to
        // `upto` has been seen (the rest belong to other aggregate types).
        let reached = match events.last() {
            Some(last) if events.len() as i64 == batch => last.position,
            _ => upto,
        };
        sqlx::query(
            "UPDATE projection_checkpoints SET position = $2, updated_at = now() WHERE name = $1",
        )
        .bind(projection.name())
        .bind(reached)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(if reached < upto { Round::Advanced(reached) } else { Round::UpToDate(reached) })
    }

    /// Applies the log until the projection is up to date (or another worker
    /// holds it). Used by the CLI and by tests.
    pub async fn catch_up(&self, name: &str) -> Result<i64, StoreError> {
        self.catch_up_by(name, BATCH).await
    }

    async fn catch_up_by(&self, name: &str, batch: i64) -> Result<i64, StoreError> {
        let (projection, checkpoint) = self.find(name)?;
        loop {
            match self.round(projection.as_ref(), batch).await? {
                Round::Advanced(position) => {
                    checkpoint.send_replace(position);
                }
                Round::UpToDate(position) => {
                    checkpoint.send_replace(position);
                    return Ok(position);
                }
                Round::Standby => tokio::time::sleep(STANDBY_POLL).await,
            }
        }
    }

    /// Empties the read model and its checkpoint, then replays the whole log into
    /// it. Returns the position reached.
    pub async fn rebuild(&self, name: &str) -> Result<i64, StoreError> {
        let (projection, checkpoint) = self.find(name)?;
        let pool = self.log.background();
        ensure_checkpoint(pool, projection.name()).await?;
        let mut tx = pool.begin().await?;
        // Waits for an active worker's round to finish, then holds it off.
        sqlx::query("SELECT pg_advisory_xact_lock($2, hashtext($1))")
            .bind(projection.name())
            .bind(PROJECTOR_LOCKS)
            .execute(&mut *tx)
            .await?;
        projection.reset(&mut tx).await?;
        sqlx::query(
            "UPDATE projection_checkpoints SET position = 0, updated_at = now() WHERE name = $1",
        )
        .bind(projection.name())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        checkpoint.send_replace(0);
        // The replay runs in bounded batches: one long transaction would hold back
        // the event log's sequencer for its whole length.
        self.catch_up_by(name, REBUILD_BATCH).await
    }

    /// Waits, at most `timeout`, until `name` has applied the log up to
    /// `position`. True when reached.
    pub async fn await_position(
        &self,
        name: &str,
        position: i64,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        let (_, checkpoint) = self.find(name)?;
        let mut local = checkpoint.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            local.borrow_and_update();
            // The stored checkpoint decides, not this process's last round: the
            // active worker may run elsewhere, and a rebuild started elsewhere
            // may have reset it. The local one only wakes us early.
            if stored_checkpoint(self.log.pool(), name).await? >= position {
                return Ok(true);
            }
            let step = tokio::time::Instant::now() + Duration::from_millis(50);
            match tokio::time::timeout_at(deadline.min(step), local.changed()).await {
                Err(_) if tokio::time::Instant::now() >= deadline => return Ok(false),
                _ => {}
            }
        }
    }

    /// Every projection's checkpoint as stored, by name.
    pub async fn checkpoints(&self) -> Result<HashMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, position FROM projection_checkpoints")
                .fetch_all(self.log.background())
                .await?;
        Ok(rows.into_iter().collect())
    }
}

async fn ensure_checkpoint(pool: &PgPool, name: &str) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(())
}

async fn stored_checkpoint(pool: &PgPool, name: &str) -> Result<i64, StoreError> {
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(position.unwrap_or(0))
}
