//! Checkpointed projectors: each read model applies the log in order and records
//! how far it got in the same transaction as its update, so a crash can neither
//! lose nor double an update. One worker per projection is active at a time
//! across processes (each round locks its projection's checkpoint row); the
//! others stand by.
//!
//! cqrs-es's in-process query dispatch is not used for delivery: events can be
//! lost between commit and dispatch; the log cannot lose them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::StoreError;
use crate::log::{EventLog, FeedFilter, Heads, LoggedEvent};

/// Events applied per projector transaction. Kept moderate: a round's locks
/// and its read models' row versions are held until it commits, and readers
/// waiting for a position see nothing of it before.
const BATCH: i64 = 500;
/// Events applied per transaction of a rebuild. Larger: a rebuild replays the
/// whole log, and each batch folds the records it touches once (a record
/// touched by ten events of one batch is decoded and written once, not ten
/// times). Bounded all the same, so that each batch stays far inside the
/// statement timeout and a rebuild shows progress (about a tenth of a second
/// per batch at a million events on two cores; see BENCHMARKS.md).
const REBUILD_BATCH: i64 = 4_000;
/// Most log positions one round reads through: about a tenth of a second of
/// scanning on two cores, whatever share of them the projection's types hold.
const SCAN_WINDOW: i64 = 100_000;
/// Whether projection `$1` reflects the log up to position `$2` (see
/// `await_position`). The type filter is kept from the primary key's index,
/// so the check costs at most the range (see `log::READ_RANGE`).
pub(crate) const REACHED: &str = "SELECT c.position >= $2 OR (
        $2 - c.position <= $4
        AND $2 <= (SELECT coalesce(max(log_position), 0) FROM events)
        AND NOT EXISTS (
            SELECT 1 FROM events e
             WHERE e.log_position > c.position AND e.log_position <= $2
               AND array_position($3, e.aggregate_type) IS NOT NULL))
   FROM projection_checkpoints c WHERE c.name = $1";
/// How often a standby worker checks whether the active one went away.
const STANDBY_POLL: Duration = Duration::from_millis(250);
/// The longest an up-to-date worker sleeps without a round. Stamps of other
/// aggregates' events move its checkpoint at most this often while the log is
/// busy, and a missed wake-up costs at most this long.
const QUIET_ROUND: Duration = Duration::from_secs(1);
/// How long the log must pause before an up-to-date worker moves its
/// checkpoint past other aggregates' events.
const QUIET_PAUSE: Duration = Duration::from_millis(50);
/// The longest stretch of the log behind a checkpoint that `await_position`
/// searches for a projection's events: more than a quiet second holds, far
/// less than a rebuild has to go.
const SKIPPABLE_RANGE: i64 = 50_000;
/// The least time from one round's start to the next one's while the worker
/// keeps up. Under load each stamp holds a few events, and a round per stamp
/// costs the same statements for two events as for twenty; waiting this
/// long lets a round take what several stamps brought. A read model is that
/// much later at most (a first event after a pause is applied at once), well
/// under the tenth of a second a person notices after pressing a button.
///
/// It was 10 ms: under a steady load each projector whose types were stamped
/// then ran a round of about seven statements every 10 ms, hundreds of rounds
/// a second in all, whatever the rate. A saturated server shares them among
/// many commands; at 70 % of that rate each command paid a third more CPU than
/// at the maximum, and the machine was 96 % busy (BENCHMARKS.md, "Soak", run P).
const ROUND_SPACING: Duration = Duration::from_millis(50);

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
    /// This process's round committed: the read model is at `checkpoint`,
    /// and every change up to there was made by this process's rounds since
    /// the last [`lost_track`](Projection::lost_track).
    fn committed(&self, _checkpoint: i64) {}
    /// The read model may have changed in ways this process did not make or
    /// cannot tell (another process's worker applied rounds, a round's
    /// commit failed without an answer, a rebuild).
    fn lost_track(&self) {}
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
    entries: Vec<Entry>,
    quiet: Quiet,
}

/// One projection this process runs.
struct Entry {
    projection: Arc<dyn Projection>,
    /// How far this process's rounds have got.
    checkpoint: watch::Sender<i64>,
    /// The stored checkpoint as this process's last round left or found it
    /// ([`UNKNOWN`] after a round of unknown outcome): a round that finds
    /// another tells the projection it lost track (see `Projection::lost_track`).
    known: AtomicI64,
}

impl Entry {
    fn lost_track(&self) {
        self.known.store(UNKNOWN, Ordering::SeqCst);
        self.projection.lost_track();
    }
}

/// No checkpoint: this process does not know where the read model is.
const UNKNOWN: i64 = -1;

/// When an up-to-date worker runs a round without events of its own (see
/// `until_round_due`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quiet {
    /// The longest it sleeps without a round.
    pub round: Duration,
    /// How long the log must pause before it moves its checkpoint past
    /// other aggregates' events.
    pub pause: Duration,
}

impl Default for Quiet {
    fn default() -> Self {
        Self { round: QUIET_ROUND, pause: QUIET_PAUSE }
    }
}

impl std::fmt::Debug for Projections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.entries.iter().map(|e| e.projection.name()).collect();
        f.debug_struct("Projections").field("names", &names).finish()
    }
}

impl Projections {
    /// The given projections over `log`.
    pub fn new(log: Arc<EventLog>, projections: Vec<Arc<dyn Projection>>) -> Arc<Self> {
        Self::with_quiet(log, projections, Quiet::default())
    }

    /// The given projections, with other quiet rounds (tests).
    pub fn with_quiet(
        log: Arc<EventLog>,
        projections: Vec<Arc<dyn Projection>>,
        quiet: Quiet,
    ) -> Arc<Self> {
        let entries = projections
            .into_iter()
            .map(|projection| Entry {
                projection,
                checkpoint: watch::Sender::new(0),
                known: AtomicI64::new(UNKNOWN),
            })
            .collect();
        Arc::new(Self { log, entries, quiet })
    }

    /// The names of the projections, for the CLI.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.projection.name()).collect()
    }

    fn find(&self, name: &str) -> Result<&Entry, StoreError> {
        self.entries
            .iter()
            .find(|e| e.projection.name() == name)
            .ok_or_else(|| StoreError::UnknownProjection(name.to_owned()))
    }

    /// A receiver that changes after each round this process's worker of
    /// `name` runs.
    pub fn subscribe(&self, name: &str) -> Result<watch::Receiver<i64>, StoreError> {
        Ok(self.find(name)?.checkpoint.subscribe())
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
        let entry = &self.entries[index];
        let (projection, checkpoint) = (&entry.projection, &entry.checkpoint);
        let mut heads = self.log.subscribe_heads();
        let mut failures = 0u32;
        loop {
            let started = tokio::time::Instant::now();
            match self.round(entry, BATCH).await {
                Ok(Round::Advanced(position)) => {
                    failures = 0;
                    checkpoint.send_replace(position);
                }
                Ok(Round::UpToDate(position)) => {
                    failures = 0;
                    checkpoint.send_replace(position);
                    let types = projection.aggregate_types();
                    until_round_due(&mut heads, types, position, self.quiet).await;
                    tokio::time::sleep_until(started + ROUND_SPACING).await;
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
    async fn round(&self, entry: &Entry, batch: i64) -> Result<Round, StoreError> {
        let round = self.try_round(entry, batch).await;
        match &round {
            Ok(Round::Advanced(at) | Round::UpToDate(at)) => {
                entry.known.store(*at, Ordering::SeqCst)
            }
            // Another worker is applying, or this round's outcome is not
            // known (a failed commit may have committed).
            Ok(Round::Standby) | Err(_) => entry.lost_track(),
        }
        round
    }

    async fn try_round(&self, entry: &Entry, batch: i64) -> Result<Round, StoreError> {
        let projection = entry.projection.as_ref();
        let pool = self.log.background();
        let mut tx = pool.begin().await?;
        // One active worker per projection: the round locks its checkpoint's
        // row, and a worker that finds it locked stands by. Lock, checkpoint
        // and head in one round trip: a row lock (unlike an advisory lock
        // taken in the same statement) reads the checkpoint as the last
        // holder committed it, not as the statement's snapshot saw it. The
        // lock gives the round a transaction id at once; that no longer holds
        // back stamping (background sessions are not waited for, see `log`),
        // and rounds without events of their own are rare (`until_round_due`).
        // The round's transaction id, once it writes, does not hold back the
        // event log's stamping: it runs on the background pool (see `log`).
        //
        // Read models are derived data and move with their checkpoint in one
        // transaction: if a crash loses the last commits, both roll back
        // together and the events are applied again. So they need not wait for
        // the WAL flush.
        let locked: Option<(i64, i64)> = sqlx::query_as(
            "SELECT c.position, (SELECT coalesce(max(log_position), 0) FROM events)
               FROM projection_checkpoints c
              WHERE c.name = $1 AND set_config('synchronous_commit', 'off', true) = 'off'
                FOR UPDATE OF c SKIP LOCKED",
        )
        .bind(projection.name())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((checkpoint, head)) = locked else {
            tx.rollback().await?;
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM projection_checkpoints WHERE name = $1)",
            )
            .bind(projection.name())
            .fetch_one(pool)
            .await?;
            if exists {
                return Ok(Round::Standby);
            }
            // A projection added after its migration: give it a checkpoint.
            ensure_checkpoint(pool, projection.name()).await?;
            return Ok(Round::Advanced(0));
        };
        // Moved by rounds this process did not run: what this process
        // derived from the read model no longer follows it.
        if checkpoint != entry.known.load(Ordering::SeqCst) {
            entry.lost_track();
        }
        if head <= checkpoint {
            tx.rollback().await?;
            projection.committed(checkpoint);
            return Ok(Round::UpToDate(checkpoint));
        }
        // A round reads at most a window of the log: the read scans positions
        // (see `log::READ_RANGE`), and a projection of a rare type would
        // otherwise scan the whole log in one statement to fill its batch.
        let upto = head.min(checkpoint.saturating_add(SCAN_WINDOW));
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
        projection.committed(reached);
        Ok(if reached < head { Round::Advanced(reached) } else { Round::UpToDate(reached) })
    }

    /// Applies the log until the projection is up to date (or another worker
    /// holds it). Used by the CLI and by tests.
    pub async fn catch_up(&self, name: &str) -> Result<i64, StoreError> {
        self.catch_up_by(name, BATCH).await
    }

    async fn catch_up_by(&self, name: &str, batch: i64) -> Result<i64, StoreError> {
        let entry = self.find(name)?;
        let checkpoint = &entry.checkpoint;
        loop {
            match self.round(entry, batch).await? {
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
        let entry = self.find(name)?;
        let (projection, checkpoint) = (&entry.projection, &entry.checkpoint);
        let pool = self.log.background();
        ensure_checkpoint(pool, projection.name()).await?;
        let mut tx = pool.begin().await?;
        // Waits for an active worker's round to finish, then holds it off.
        sqlx::query("SELECT 1 FROM projection_checkpoints WHERE name = $1 FOR UPDATE")
            .bind(projection.name())
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
        entry.lost_track();
        checkpoint.send_replace(0);
        // The replay runs in bounded batches (see `REBUILD_BATCH`).
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
        let entry = self.find(name)?;
        let (projection, checkpoint) = (&entry.projection, &entry.checkpoint);
        if position <= 0 {
            return Ok(true);
        }
        let mut local = checkpoint.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            local.borrow_and_update();
            // The stored checkpoint decides, not this process's last round: the
            // active worker may run elsewhere, and a rebuild started elsewhere
            // may have reset it. The local one only wakes us early.
            //
            // A read model also reflects the log up to `position` when none
            // of its events lie between its checkpoint and `position`: a quiet
            // worker moves its checkpoint past other aggregates' events only
            // now and then (see `until_round_due`).
            // (Only up to the head: events committed but not yet stamped
            // may still get a position up to `position`. And only over a
            // short range, which is what a quiet worker leaves: a projection
            // that is far behind, as in a rebuild, is waited for.)
            let reached: Option<bool> = sqlx::query_scalar(REACHED)
                .bind(name)
                .bind(position)
                .bind(projection.aggregate_types())
                .bind(SKIPPABLE_RANGE)
                .fetch_optional(self.log.pool())
                .await?;
            if reached == Some(true) {
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

/// Waits until a worker up to date at `position` has a round worth its
/// statements. Every stamp moves the head, but most hold none of a given
/// projection's events, and a round for those would only move its checkpoint:
/// a transaction of six statements, times every projection, for each stamp.
/// So a round is due when events of `types` were stamped; when only others were, once the log pauses
/// or a second has passed (readers that wait for a position do not wait for
/// this: see `await_position`); and after a second without news at all.
async fn until_round_due(
    heads: &mut watch::Receiver<Heads>,
    types: &[&str],
    position: i64,
    quiet: Quiet,
) {
    let since = tokio::time::Instant::now();
    loop {
        let (ours, head) = {
            let heads = heads.borrow_and_update();
            (heads.of(types), heads.head)
        };
        let quiet_until = since + quiet.round;
        if ours > position || tokio::time::Instant::now() >= quiet_until {
            return;
        }
        let wait = if head > position {
            (tokio::time::Instant::now() + quiet.pause).min(quiet_until)
        } else {
            quiet_until
        };
        match tokio::time::timeout_at(wait, heads.changed()).await {
            Ok(Ok(())) => {}
            // The log paused past others' events: record the progress now.
            Err(_) if head > position => return,
            Err(_) => {}
            // The log is gone (shutting down): nothing will wake us.
            Ok(Err(_)) => tokio::time::sleep_until(wait).await,
        }
    }
}

async fn ensure_checkpoint(pool: &PgPool, name: &str) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(())
}
