//! The global event log: one dense, strictly increasing `log_position` per event,
//! and readers that never skip an event.
//!
//! Why not a `bigserial` filled in on insert: numbers are handed out before
//! commit and transactions commit out of number order, so a reader that saw 7
//! and saved "after 7" would skip a 6 committed a moment later, for good.
//!
//! Instead positions are given under one lock, the lock of the log's head row
//! (`log_head`, migration 0015), held until the transaction that gives them
//! has committed durably: each giver moves the row past the positions it
//! gives. An update waits for the row's lock and then reads the row as the
//! last holder committed it, and PostgreSQL makes a commit visible before it
//! releases the transaction's locks; so the next giver numbers on from every
//! position given before, and a reader that sees a position sees every one
//! below it: "after N" is a complete cursor. Two kinds of giver:
//!
//! - the *appender* (`appender`), through which every command of this service
//!   appends: it inserts the events of all commands waiting at that moment in
//!   one statement, with their positions;
//! - the *sequencer*, for rows inserted by anyone else (a process of an
//!   earlier version during a rolling upgrade, a tool, a benchmark's
//!   baseline): it stamps their positions after they commit. One sequencer is
//!   active at a time (a transaction-level advisory lock, `SEQUENCER_LOCK`).
//!
//! For the sequencer every event row carries the id of the transaction that
//! wrote it (`pg_current_xact_id()`, filled in by PostgreSQL). It takes only
//! unstamped rows whose transaction id is below the *frontier*, the oldest
//! transaction still running that may append events — every such transaction
//! below it has ended, so no row can still appear there — in (transaction id,
//! aggregate, sequence) order. A slow writer holds back stamping of later
//! transactions until it ends: the log waits for it rather than skipping it.
//! Statement and idle-transaction timeouts (see `db`) bound how long that can
//! be for our own sessions; the frontier is server-wide, so the database
//! server should serve Stagepact alone, and the sequencer logs the
//! transaction that holds it back for long.
//!
//! Only a transaction that may still append events needs to hold the frontier.
//! Two kinds of transaction never do, and they are the ones that held it most:
//! autovacuum's (its `ANALYZE` of `events` keeps an id for seconds) and this
//! service's background sessions (`BACKGROUND_APPLICATION`: the sequencer, the
//! projectors and rebuilds, the reaction dispatcher's outbox, the idempotency
//! purge), whose read-model rounds otherwise made every command wait for the
//! round in flight. The frontier is therefore the oldest running transaction
//! id that belongs to neither, as `pg_stat_activity` names them. For the
//! background sessions that is a promise the database keeps: a trigger refuses
//! any insert into `events` from a session of that name (migration 0012). A
//! role that may not see other roles' session types (neither superuser nor
//! `pg_read_all_stats`) does not recognise autovacuum and waits for it, as
//! before; session names and transaction ids are visible to every role.
//!
//! Within one aggregate the log keeps sequence order: a command appends event
//! k+1 after deciding on a state that holds event k, so k was committed, and
//! positioned, first; and an aggregate with an event still waiting for the
//! sequencer takes no new one through the appender until it is stamped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde_json::Value;
use sqlx::postgres::{PgListener, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Row};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::StoreError;
use crate::appender::Appender;
pub use crate::appender::{Appended, NewEvent, NewEvents};

/// The NOTIFY channel the sequencer announces the new head on: `<head>`.
pub(crate) const HEAD_CHANNEL: &str = "stagepact_log";
/// The channel it announces the head on with the aggregate types it stamped,
/// `<head> <type> <type>...`, for the projectors. A channel of its own, so a
/// process of an earlier version, which reads a bare head on the first one,
/// still follows the head during a rolling upgrade (its projectors, not told
/// the types, then wait for a pause or a second: see `projector`). A dozen
/// fixed type names stay far below NOTIFY's 8,000-byte payload.
pub(crate) const TYPES_CHANNEL: &str = "stagepact_log_types";
/// Most events stamped in one sequencer transaction.
const STAMP_BATCH: i64 = 5_000;
/// Key of the advisory lock that keeps one sequencer active across processes.
const SEQUENCER_LOCK: i64 = 0x5354_4147_5345_5131; // "STAGSEQ1"
/// How often an idle sequencer looks for rows written outside the appender.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long the frontier may be held back before the sequencer says who holds it.
const HELD_BACK_WARNING: Duration = Duration::from_secs(5);
/// Connections of the background pool: sequencer, listener, projectors,
/// reaction dispatcher, purges.
const BACKGROUND_CONNECTIONS: u32 = 6;
/// The `application_name` of the background pool's sessions. No transaction
/// of theirs appends events (the database refuses it), so the sequencer does
/// not wait for them (see above). Events are appended through the request
/// pool only.
pub const BACKGROUND_APPLICATION: &str = "stagepact background";
/// How soon the sequencer looks again while an older transaction holds it back.
const BLOCKED_POLL: Duration = Duration::from_millis(2);
/// The least time from the start of one sequencer round to the next while
/// rows written elsewhere keep coming. A round costs about five statements
/// whether it stamps one row or fifty, and without a floor a busy log gets
/// one round per commit or two (when every command's events were stamped
/// this way: some 800 rounds a second at 1,100–1,300 commands a second,
/// BENCHMARKS.md, "Soak", runs P and Q). The first rows after a pause are
/// stamped at once.
const STAMP_SPACING: Duration = Duration::from_millis(4);

/// How far the log is stamped, overall and for each aggregate type: a
/// projector sleeps through stamps that hold none of its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heads {
    /// The highest stamped position.
    pub head: i64,
    /// Stamped up to here with the types unknown (events stamped while the
    /// listener was away, or announced without their types): counts as every
    /// type.
    any: i64,
    /// Per aggregate type, the head of the last stamping that held one of its
    /// events (an upper bound of that type's last position).
    by_type: HashMap<String, i64>,
}

impl Heads {
    /// Up to where events of one of `types` may have been stamped: no event
    /// of theirs lies above it.
    pub fn of(&self, types: &[&str]) -> i64 {
        types.iter().filter_map(|t| self.by_type.get(*t)).copied().fold(self.any, i64::max)
    }

    /// Records a stamping up to `head` of events of `types` (`None`: unknown).
    /// False when it tells nothing new.
    fn advance<'t>(&mut self, head: i64, types: Option<impl IntoIterator<Item = &'t str>>) -> bool {
        let mut moved = raise(&mut self.head, head);
        match types {
            None => moved |= raise(&mut self.any, head),
            Some(types) => {
                for aggregate_type in types {
                    match self.by_type.get_mut(aggregate_type) {
                        Some(at) => moved |= raise(at, head),
                        None => {
                            self.by_type.insert(aggregate_type.to_owned(), head);
                            moved = true;
                        }
                    }
                }
            }
        }
        moved
    }
}

/// Raises `at` to `to`; true when it moved.
fn raise(at: &mut i64, to: i64) -> bool {
    let moved = to > *at;
    if moved {
        *at = to;
    }
    moved
}

/// Reads a range of the log, filtered. Each filter is written so that no index
/// but the positions' serves it: the read costs at most the range, whatever
/// the planner believes. An `aggregate_type = ANY(..)` the primary key could
/// serve, and with statistics from before a type's events arrived (a fresh
/// database, a bulk import) the planner did: it read every event of the type,
/// then sorted, for a range of a few hundred (100-280 ms a projector round in
/// the soak's maximum phase, BENCHMARKS.md).
pub(crate) const READ_RANGE: &str =
    "SELECT log_position, aggregate_type, aggregate_id, sequence, event_type,
        event_version, payload, metadata, recorded_at
   FROM events
  WHERE log_position > $1 AND log_position <= $2
    AND ($4::text[] IS NULL OR array_position($4, aggregate_type) IS NOT NULL)
    AND ($5::text[] IS NULL OR (aggregate_type, event_type) IN
          (SELECT * FROM unnest($5::text[], $6::text[])))
    AND ($7::text[] IS NULL OR array_position($7, aggregate_id) IS NOT NULL)
    AND ($8::text[] IS NULL OR array_position($8, aggregate_type) IS NOT NULL
         OR $10 = ANY(string_to_array(metadata->>$9, ' ')))
  ORDER BY log_position
  LIMIT $3";

/// One event as the log serves it, upcast to its current version.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// Its place in the global log.
    pub position: i64,
    /// The aggregate type, e.g. `company`.
    pub aggregate_type: String,
    /// The aggregate id.
    pub aggregate_id: String,
    /// Its sequence number within the aggregate, from 1.
    pub sequence: i64,
    /// The event type, e.g. `RecognitionSuspended`.
    pub event_type: String,
    /// The event version after upcasting.
    pub event_version: String,
    /// The stored payload after upcasting: `{"<EventType>": {..data..}}`.
    pub payload: Value,
    /// Metadata recorded with the command (request id, caller).
    pub metadata: Value,
    /// When the writing transaction started.
    pub recorded_at: DateTime<Utc>,
}

impl LoggedEvent {
    /// The event's data without the enum tag cqrs-es stores around it.
    pub fn data(&self) -> &Value {
        self.payload.get(&self.event_type).unwrap_or(&self.payload)
    }
}

/// Which events a reader wants. Every list is "any of"; `None` is "all".
#[derive(Debug, Clone, Default)]
pub struct FeedFilter {
    /// Only these aggregate types.
    pub aggregate_types: Option<Vec<String>>,
    /// Only these (aggregate type, event type) pairs.
    pub event_types: Option<Vec<(String, String)>>,
    /// Only these aggregate ids.
    pub aggregate_ids: Option<Vec<String>>,
    /// Only what this audience may see.
    pub audience: Option<Audience>,
}

/// What one caller may see of the log: every event of some aggregate types,
/// plus the events whose metadata names the caller as a party (the command
/// path stores the parties with each event, see `stagepact_domain::Visibility`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    /// Aggregate types whose every event is visible.
    pub whole_types: Vec<String>,
    /// (metadata key, value): events naming this party are visible too, also
    /// among several parties under one key (space-separated).
    pub party: Option<(String, String)>,
}

/// (pid, database, state, query) of a transaction holding the frontier back.
type Blocker = (i32, Option<String>, Option<String>, Option<String>);

/// How far this process knows the log to be positioned, overall and per
/// aggregate type; the appender and the sequencer move it, and so does the
/// listener when another process did.
pub(crate) struct HeadWatch {
    head: watch::Sender<i64>,
    heads: watch::Sender<Heads>,
}

impl HeadWatch {
    /// Moves the heads to `position`, reached with events of `types` (`None`:
    /// not known which).
    pub(crate) fn advance<'t>(
        &self,
        position: i64,
        types: Option<impl IntoIterator<Item = &'t str>>,
    ) {
        // Types first: a projector woken by the head finds its types there.
        self.heads.send_if_modified(|heads| heads.advance(position, types));
        self.head.send_if_modified(|head| raise(head, position));
    }
}

/// The log: appends, reads, the head position, and the sequencer that stamps
/// rows written outside the appender.
pub struct EventLog {
    pool: PgPool,
    /// The sequencer's, the listener's and the projectors' own connections, so
    /// they never queue behind requests that are waiting for them.
    background: PgPool,
    /// The head, overall and per aggregate type (for the projectors).
    heads: Arc<HeadWatch>,
    /// Where commands append their events (see `appender`).
    appender: Appender,
    wake: Notify,
    upcasters: Vec<Box<dyn EventUpcaster>>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").field("head", &self.head()).finish_non_exhaustive()
    }
}

/// The upcasters applied to every event read, in order. Empty while every event
/// type is at its first version; a new version adds its upcaster here.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    Vec::new()
}

impl EventLog {
    /// A log on `pool` with the standard upcasters, and its appender running.
    /// Call [`EventLog::spawn`] to run its sequencer and head listener.
    pub async fn open(pool: PgPool) -> Result<Arc<Self>, StoreError> {
        Self::with_upcasters(pool, upcasters()).await
    }

    /// A log with the given upcasters (tests register their own).
    pub async fn with_upcasters(
        pool: PgPool,
        upcasters: Vec<Box<dyn EventUpcaster>>,
    ) -> Result<Arc<Self>, StoreError> {
        let head = current_head(&pool).await?;
        let background = PgPoolOptions::new()
            .max_connections(BACKGROUND_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(
                (*pool.connect_options()).clone().application_name(BACKGROUND_APPLICATION),
            );
        let heads = Arc::new(HeadWatch {
            head: watch::Sender::new(head),
            heads: watch::Sender::new(Heads { head, any: head, by_type: HashMap::new() }),
        });
        // The appender's sessions are request sessions (they append events),
        // with the request pool's settings.
        let appender = Appender::start((*pool.connect_options()).clone(), Arc::clone(&heads));
        Ok(Arc::new(Self { pool, background, heads, appender, wake: Notify::new(), upcasters }))
    }

    /// The pool the log reads from (shared with requests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The background workers' own pool.
    pub fn background(&self) -> &PgPool {
        &self.background
    }

    /// Starts the sequencer and the listener that follows other processes'
    /// sequencers. Abort the handles to stop them.
    pub fn spawn(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        vec![
            tokio::spawn(Arc::clone(self).run_sequencer()),
            tokio::spawn(Arc::clone(self).follow_head()),
        ]
    }

    /// The highest stamped position this process knows of.
    pub fn head(&self) -> i64 {
        *self.heads.head.borrow()
    }

    /// A receiver that changes whenever the head moves.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.heads.head.subscribe()
    }

    /// A receiver of the heads per aggregate type; it changes whenever the
    /// head moves.
    pub fn subscribe_heads(&self) -> watch::Receiver<Heads> {
        self.heads.heads.subscribe()
    }

    /// Tells the sequencer that rows were just committed outside the
    /// appender (tools, tests), so that it stamps them now.
    pub fn wake_sequencer(&self) {
        self.wake.notify_one();
    }

    /// Appends one command's events and waits until they are committed with
    /// their positions (see `appender`).
    pub async fn append(&self, events: NewEvents) -> Result<Appended, StoreError> {
        self.appender.append(events).await
    }

    /// Names the oldest transaction that holds the log's frontier back.
    async fn warn_held_back(&self, for_how_long: Duration) {
        let oldest: Result<Option<Blocker>, _> = sqlx::query_as(
            "SELECT pid, datname, state, left(query, 200) FROM pg_stat_activity
              WHERE backend_xid IS NOT NULL
                AND backend_type IS DISTINCT FROM 'autovacuum worker'
                AND application_name IS DISTINCT FROM $1
              ORDER BY xact_start LIMIT 1",
        )
        .bind(BACKGROUND_APPLICATION)
        .fetch_optional(&self.background)
        .await;
        match oldest {
            Ok(Some((pid, database, state, query))) => tracing::warn!(
                held_for = ?for_how_long, pid, ?database, ?state, ?query,
                "the event log is held back by an open writing transaction"
            ),
            _ => tracing::warn!(held_for = ?for_how_long, "the event log is held back"),
        }
    }

    async fn run_sequencer(self: Arc<Self>) {
        let mut failures = 0u32;
        let mut held_since: Option<tokio::time::Instant> = None;
        let mut last_warning: Option<tokio::time::Instant> = None;
        loop {
            let started = tokio::time::Instant::now();
            let round = stamp(&self.background).await;
            if !matches!(round, Ok((Stamp::HeldBack, _))) {
                held_since = None;
            }
            match round {
                Ok((Stamp::Stamped(head), stamped)) => {
                    failures = 0;
                    self.heads.advance(head, Some(stamped.iter().map(String::as_str)));
                    tokio::time::sleep_until(started + STAMP_SPACING).await;
                    continue;
                }
                Ok((Stamp::HeldBack, _)) => {
                    failures = 0;
                    let held = *held_since.get_or_insert_with(tokio::time::Instant::now);
                    if held.elapsed() >= HELD_BACK_WARNING
                        && last_warning.is_none_or(|w| w.elapsed() >= HELD_BACK_WARNING)
                    {
                        last_warning = Some(tokio::time::Instant::now());
                        self.warn_held_back(held.elapsed()).await;
                    }
                    // A writer's transaction holds it back: the short poll
                    // finds its end; a frontier held for longer is polled
                    // less often (each poll is a round of five statements).
                    let poll = if held.elapsed() > Duration::from_millis(50) {
                        BLOCKED_POLL * 10
                    } else {
                        BLOCKED_POLL
                    };
                    let _ = tokio::time::timeout(poll, self.wake.notified()).await;
                    tokio::time::sleep_until(started + STAMP_SPACING).await;
                    continue;
                }
                Ok((Stamp::Idle, _)) => {
                    failures = 0;
                    let _ = tokio::time::timeout(IDLE_POLL, self.wake.notified()).await;
                }
                // Another process's sequencer is active: rows written
                // elsewhere are rare, and looked for again after the idle
                // poll, should it go away.
                Ok((Stamp::OtherSequencer, _)) => {
                    let _ = tokio::time::timeout(IDLE_POLL, self.wake.notified()).await;
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, "sequencer could not stamp the log");
                    let backoff = Duration::from_millis(50 * u64::from(failures.min(20)));
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    /// Follows heads announced by any process's sequencer, so long-polls and
    /// read-your-writes work when another process stamped the events.
    async fn follow_head(self: Arc<Self>) {
        loop {
            if let Err(error) = self.listen_once().await {
                tracing::warn!(%error, "event-log listener lost its connection");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn listen_once(&self) -> Result<(), StoreError> {
        let mut listener = PgListener::connect_with(&self.background).await?;
        listener.listen_all([HEAD_CHANNEL, TYPES_CHANNEL]).await?;
        // Anything stamped while we were not listening, of any type.
        self.heads.advance(current_head(&self.pool).await?, None::<[&str; 0]>);
        loop {
            let notification = listener.recv().await?;
            // A bare head names no type: it moves the head only.
            if let Some((position, types)) = parse_announcement(notification.payload()) {
                self.heads.advance(position, Some(types));
            }
        }
    }

    /// Events after `after`, in log order, at most `limit`, matching `filter`.
    pub async fn read(
        &self,
        after: i64,
        limit: i64,
        filter: &FeedFilter,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        self.read_range(&mut conn, after, i64::MAX, limit, filter).await
    }

    /// Events after `after` up to the head as of the call, and that head: a
    /// page with fewer than `limit` events has seen every position up to it.
    pub async fn read_until_head(
        &self,
        after: i64,
        limit: i64,
        filter: &FeedFilter,
    ) -> Result<(Vec<LoggedEvent>, i64), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let upto: i64 = sqlx::query_scalar("SELECT coalesce(max(log_position), 0) FROM events")
            .fetch_one(&mut *conn)
            .await?;
        let events = self.read_range(&mut conn, after, upto, limit, filter).await?;
        Ok((events, upto))
    }

    /// Events with `after < position <= upto`, in log order, at most `limit`,
    /// read on `conn` (inside the caller's transaction when it has one).
    pub async fn read_range(
        &self,
        conn: &mut PgConnection,
        after: i64,
        upto: i64,
        limit: i64,
        filter: &FeedFilter,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let (event_aggregates, event_types): (Option<Vec<String>>, Option<Vec<String>>) =
            match &filter.event_types {
                Some(pairs) => {
                    let (a, e) = pairs.iter().cloned().unzip();
                    (Some(a), Some(e))
                }
                None => (None, None),
            };
        let rows = sqlx::query(READ_RANGE)
            .bind(after)
            .bind(upto)
            .bind(limit)
            .bind(&filter.aggregate_types)
            .bind(&event_aggregates)
            .bind(&event_types)
            .bind(&filter.aggregate_ids)
            .bind(filter.audience.as_ref().map(|a| &a.whole_types))
            .bind(filter.audience.as_ref().and_then(|a| a.party.as_ref()).map(|p| &p.0))
            .bind(filter.audience.as_ref().and_then(|a| a.party.as_ref()).map(|p| &p.1))
            .fetch_all(conn)
            .await?;
        rows.iter().map(|row| self.decode(row)).collect()
    }

    /// The events that name `student` (a student's aggregate id) as a party,
    /// after `after`, in log order: the student's own timeline.
    pub async fn timeline(
        &self,
        student: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT log_position, aggregate_type, aggregate_id, sequence, event_type,
                    event_version, payload, metadata, recorded_at
               FROM events
              WHERE metadata->>'student' = $1 AND log_position > $2
              ORDER BY log_position
              LIMIT $3",
        )
        .bind(student)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| self.decode(row)).collect()
    }

    /// Whether an event of this type and version is lifted on read (else it
    /// is at its current version and reads as stored).
    pub(crate) fn upcasts(&self, event_type: &str, event_version: &str) -> bool {
        self.upcasters.iter().any(|upcaster| upcaster.can_upcast(event_type, event_version))
    }

    /// Lifts a stored event to its current version.
    pub(crate) fn upcast(&self, serialized: SerializedEvent) -> SerializedEvent {
        self.upcasters.iter().fold(serialized, |event, upcaster| {
            if upcaster.can_upcast(&event.event_type, &event.event_version) {
                upcaster.upcast(event)
            } else {
                event
            }
        })
    }

    fn decode(&self, row: &PgRow) -> Result<LoggedEvent, StoreError> {
        let sequence: i64 = row.try_get("sequence")?;
        let serialized = SerializedEvent::new(
            row.try_get("aggregate_id")?,
            usize::try_from(sequence).unwrap_or_default(),
            row.try_get("aggregate_type")?,
            row.try_get("event_type")?,
            row.try_get("event_version")?,
            row.try_get("payload")?,
            row.try_get("metadata")?,
        );
        let upcast = self.upcast(serialized);
        Ok(LoggedEvent {
            position: row.try_get("log_position")?,
            aggregate_type: upcast.aggregate_type,
            aggregate_id: upcast.aggregate_id,
            sequence,
            event_type: upcast.event_type,
            event_version: upcast.event_version,
            payload: upcast.payload,
            metadata: upcast.metadata,
            recorded_at: row.try_get("recorded_at")?,
        })
    }

    /// The log position of one stored event, once it is stamped.
    pub async fn position_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: i64,
    ) -> Result<Option<i64>, StoreError> {
        let position = sqlx::query_scalar(
            "SELECT log_position FROM events
              WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(sequence)
        .fetch_optional(&self.pool)
        .await?;
        Ok(position.flatten())
    }

    /// Waits, at most `timeout`, until the head passes `after`; true if it did.
    pub async fn await_head_after(&self, after: i64, timeout: Duration) -> bool {
        let mut head = self.subscribe();
        let waited = tokio::time::timeout(timeout, head.wait_for(|h| *h > after)).await;
        matches!(waited, Ok(Ok(_)))
    }
}

/// A sequencer's announcement: `<head>`, or `<head> <aggregate type>...`.
fn parse_announcement(payload: &str) -> Option<(i64, std::str::SplitWhitespace<'_>)> {
    let mut words = payload.split_whitespace();
    let position = words.next()?.parse().ok()?;
    Some((position, words))
}

/// The highest stamped position (0 for an empty log).
pub async fn current_head(pool: &PgPool) -> Result<i64, StoreError> {
    let head: Option<i64> =
        sqlx::query_scalar("SELECT max(log_position) FROM events").fetch_one(pool).await?;
    Ok(head.unwrap_or(0))
}

/// What one sequencer round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// Stamped events; the new head.
    Stamped(i64),
    /// Unstamped events exist but an older transaction is still running.
    HeldBack,
    /// Nothing to stamp.
    Idle,
    /// Another process's sequencer holds the lock.
    OtherSequencer,
}

/// One sequencer round: stamps every event whose transaction is known to have
/// ended, in transaction order, with positions following the highest one.
pub async fn stamp_batch(pool: &PgPool) -> Result<Stamp, StoreError> {
    stamp(pool).await.map(|(outcome, _)| outcome)
}

/// A sequencer round, with the aggregate types it stamped.
async fn stamp(pool: &PgPool) -> Result<(Stamp, Vec<String>), StoreError> {
    let mut tx = pool.begin().await?;
    // The stamping commits durably, as the appender's batches do: a batch
    // may take the next positions the moment the lock is free, so a stamp
    // that a crash took back would not be given again to the same events.
    // Durable, it is visible only once it can no longer be lost.
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(SEQUENCER_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok((Stamp::OtherSequencer, Vec::new()));
    }
    // A statement of its own after the lock: its snapshot sees the previous
    // sequencer's commit.
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "WITH ready AS (
             SELECT aggregate_type, aggregate_id, sequence,
                    row_number() OVER (ORDER BY transaction_id, aggregate_type, aggregate_id, sequence) AS n
               FROM events
              WHERE log_position IS NULL
                -- The frontier: the oldest transaction id that may still
                -- append events, as of this statement's snapshot. Running
                -- transactions of autovacuum and of background sessions are
                -- left out; with none other running, the snapshot's xmax.
                -- Every id below it has ended; its events show if it committed.
                -- (The activity is read after the snapshot: a transaction
                -- that ended in between is not left out, which only waits.)
                AND transaction_id < (SELECT coalesce(
                      (SELECT running FROM pg_snapshot_xip(pg_current_snapshot()) AS running
                        WHERE NOT EXISTS (
                              SELECT 1 FROM pg_stat_get_activity(NULL) AS session
                               WHERE session.backend_xid = running::xid
                                 AND (session.backend_type = 'autovacuum worker'
                                      OR session.application_name = $4))
                        ORDER BY running LIMIT 1),
                      pg_snapshot_xmax(pg_current_snapshot())))
              ORDER BY transaction_id, aggregate_type, aggregate_id, sequence
              LIMIT $1
         ), base AS (
             -- The head row (migration 0015), moved past the rows stamped
             -- here: an appender's batch waits for it and numbers on from
             -- there. Its lock is held until this stamping has committed.
             UPDATE log_head
                SET position = greatest(position,
                                        (SELECT coalesce(max(log_position), 0) FROM events))
                               + (SELECT count(*) FROM ready)
              WHERE EXISTS (SELECT 1 FROM ready)
             RETURNING position - (SELECT count(*) FROM ready) AS head
         ), stamped AS (
             UPDATE events e
                SET log_position = base.head + ready.n
               FROM ready, base
              WHERE e.aggregate_type = ready.aggregate_type
                AND e.aggregate_id = ready.aggregate_id
                AND e.sequence = ready.sequence
             RETURNING e.aggregate_type, e.aggregate_id, e.sequence, e.log_position
         ), announced AS (
             SELECT pg_notify($2, max(log_position)::text),
                    pg_notify($3, max(log_position)::text || ' '
                                  || string_agg(DISTINCT aggregate_type, ' '))
               FROM stamped HAVING count(*) > 0
         )
         SELECT stamped.aggregate_type, max(stamped.log_position)
           FROM stamped LEFT JOIN announced ON true
          GROUP BY stamped.aggregate_type",
    )
    .bind(STAMP_BATCH)
    .bind(HEAD_CHANNEL)
    .bind(TYPES_CHANNEL)
    .bind(BACKGROUND_APPLICATION)
    .fetch_all(&mut *tx)
    .await?;
    if let Some(head) = rows.iter().map(|(_, position)| *position).max() {
        tx.commit().await?;
        return Ok((Stamp::Stamped(head), rows.into_iter().map(|(t, _)| t).collect()));
    }
    tx.rollback().await?;
    let pending: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE log_position IS NULL)")
            .fetch_one(pool)
            .await?;
    Ok((if pending { Stamp::HeldBack } else { Stamp::Idle }, Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan PostgreSQL chooses for a range read of (18,900, 19,900] by
    /// aggregate type (`by_type`) or as SBB's audience (`whole_types`).
    async fn range_plan(
        pool: &PgPool,
        by_type: Option<Vec<&str>>,
        whole_types: Option<Vec<&str>>,
    ) -> String {
        let plan: Value = sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {READ_RANGE}"))
            .bind(18_900_i64)
            .bind(19_900_i64)
            .bind(500_i64)
            .bind(by_type)
            .bind(None::<Vec<String>>)
            .bind(None::<Vec<String>>)
            .bind(None::<Vec<String>>)
            .bind(whole_types)
            .bind(None::<String>)
            .bind(None::<String>)
            .fetch_one(pool)
            .await
            .expect("explain");
        plan.to_string()
    }

    #[tokio::test]
    async fn a_range_read_costs_the_range_even_when_statistics_are_stale() {
        let pool = crate::testing::fresh_pool().await.expect("pool");
        // Statistics taken while the log held no placement event, as after a
        // fresh start or before a bulk import; then 20,000 of them arrive.
        crate::testing::insert_stamped(&pool, "company", 0, 100).await.expect("companies");
        sqlx::query("ANALYZE events").execute(&pool).await.expect("analyze");
        crate::testing::insert_stamped(&pool, "placement", 100, 20_000).await.expect("placements");

        let projector = range_plan(&pool, Some(vec!["placement"]), None).await;
        let sbb = range_plan(&pool, None, Some(vec!["placement"])).await;
        for read in [projector, sbb] {
            assert!(read.contains("events_log_position"), "{read}");
            assert!(!read.contains("events_pkey"), "read every placement event: {read}");
        }
        let check: Value =
            sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {}", crate::projector::REACHED))
                .bind("placements")
                .bind(19_900_i64)
                .bind(vec!["placement"])
                .bind(50_000_i64)
                .fetch_one(&pool)
                .await
                .expect("explain");
        let check = check.to_string();
        assert!(check.contains("events_log_position"), "{check}");
        assert!(!check.contains("events_pkey"), "read every placement event: {check}");
    }

    #[test]
    fn an_announcement_carries_the_head_and_the_types_stamped() {
        let (head, types) = parse_announcement("42 company placement").expect("parsed");
        assert_eq!(head, 42);
        assert_eq!(types.collect::<Vec<_>>(), ["company", "placement"]);
        let (head, types) = parse_announcement("7").expect("parsed");
        assert_eq!((head, types.count()), (7, 0));
        assert!(parse_announcement("seven company").is_none());
    }

    #[test]
    fn heads_per_type_count_an_unknown_stamping_for_every_type() {
        let mut heads = Heads::default();
        assert!(heads.advance(5, Some(["company"])));
        assert!(heads.advance(9, Some(["placement"])));
        assert_eq!(
            (heads.head, heads.of(&["company"]), heads.of(&["placement", "company"])),
            (9, 5, 9)
        );
        assert_eq!(heads.of(&["student"]), 0);
        assert!(!heads.advance(9, Some(["placement"])), "nothing new");
        assert!(heads.advance(12, None::<[&str; 0]>));
        assert_eq!((heads.of(&["student"]), heads.of(&["company"])), (12, 12));
        assert!(heads.advance(15, Some([])), "a bare head moves the head");
        assert_eq!((heads.head, heads.of(&["company"])), (15, 12));
    }
}
