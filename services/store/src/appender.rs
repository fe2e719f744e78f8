//! The log's writer: appends the events of every command that is waiting, in
//! one statement, and gives them their log positions as it inserts them
//! (group commit).
//!
//! Before, each command inserted its events in a transaction of its own, and
//! the sequencer stamped them afterwards with an `UPDATE`. That wrote every
//! event row twice: a second row version with new entries in every index, a
//! dead one for vacuum to clean, and each command waited for a stamping round
//! after its commit (BENCHMARKS.md, "Placement lifecycle", runs I).
//!
//! Positions stay dense and in commit order because every batch moves the
//! log's head row (`log_head`, migration 0015) in the statement that inserts
//! its events, and numbers them on from it. The update waits for the row's
//! lock and then reads the row as the last holder committed it; the lock is
//! held until this batch has committed durably, and PostgreSQL makes a commit
//! visible before it releases the transaction's locks. So the next batch
//! numbers on from this one, and a reader that sees a batch sees every batch
//! before it: "after N" stays a complete cursor. Because the commit waits for
//! its WAL flush before it becomes visible, no reader sees a position a crash
//! could take back. The sequencer moves the same row when it stamps rows
//! written elsewhere.
//!
//! Within an aggregate the log keeps sequence order: a command appends event
//! k+1 only after deciding on a state that includes event k, so k was
//! committed, and positioned, first. Rows written outside the appender (by a
//! process of an earlier version during a rolling upgrade, or a tool) get
//! their positions from the sequencer later, so an aggregate with such a row
//! still unstamped takes no new events: the command is answered as a lost race
//! and decides again once the row has its place.
//!
//! The statement undoes itself when fewer events went in than it was given
//! (a command lost the race for a sequence number: the events' primary key),
//! and the batch's commands are then appended one by one, which tells the
//! losers apart; so does a batch the database refuses for another reason, so
//! that one command's bad value fails that command alone.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;
use crate::log::{HEAD_CHANNEL, HeadWatch, TYPES_CHANNEL};

/// Most commands in one batch.
const MAX_COMMANDS: usize = 500;
/// Most events in one batch (a batch stops taking commands once it has these).
const MAX_EVENTS: usize = 5_000;
/// Commands waiting for an appender; a command beyond them waits to be queued.
const QUEUE: usize = 4_096;
/// A session idle this long is checked before a batch is sent on it.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The events one command appends to one aggregate.
#[derive(Debug, Clone)]
pub struct NewEvents {
    /// The aggregate type, e.g. `placement`.
    pub aggregate_type: &'static str,
    /// The aggregate id.
    pub aggregate_id: String,
    /// The aggregate's version the command was decided on: the events take
    /// the sequence numbers after it.
    pub after: i64,
    /// The events, in order.
    pub events: Vec<NewEvent>,
    /// Stored with every event: a JSON object, as text.
    pub metadata: String,
}

/// One event to append, in postgres-es's encoding (see `SerializedEvent`).
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event type.
    pub event_type: String,
    /// The event version.
    pub event_version: String,
    /// `{"<EventType>": {..data..}}`, as JSON text: serialised once, straight
    /// from the event, and parsed once, by PostgreSQL.
    pub payload: String,
}

/// What became of one command's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Recorded; the log position of the last of them.
    At(i64),
    /// Another writer took one of the sequence numbers first (or the
    /// aggregate has events still waiting for their position): nothing was
    /// recorded.
    Taken,
}

/// A command waiting for its batch.
struct Pending {
    events: NewEvents,
    reply: oneshot::Sender<Result<Appended, StoreError>>,
}

/// The handle commands append through.
pub(crate) struct Appender {
    queue: mpsc::Sender<Pending>,
}

impl Appender {
    /// Starts the appending task on a connection made with `options`. It
    /// ends when the appender is dropped.
    pub(crate) fn start(options: PgConnectOptions, heads: Arc<HeadWatch>) -> Self {
        // One plan for the one statement this session runs. PostgreSQL would
        // plan it anew on every call: a custom plan knows the arrays' lengths
        // and so looks cheaper than the generic one, whose plan is the same.
        // Planning cost about a quarter of a millisecond, a third of the
        // statement's own time (BENCHMARKS.md, "Placement lifecycle", runs I).
        let options = options.options([("plan_cache_mode", "force_generic_plan")]);
        // One task, on one session. A second one, sending the next batch while
        // the one before it flushes, answered no sooner and cost more: at a
        // given load the commands split into twice the batches, each a
        // statement and a WAL flush of its own (0.74 transactions and 0.28
        // flushes per command against 0.48 and 0.17; commands/s +25 %:
        // BENCHMARKS.md, "Placement lifecycle", runs J).
        let (queue, received) = mpsc::channel(QUEUE);
        let task = Task { options, heads, connection: None };
        tokio::spawn(task.run(received));
        Self { queue }
    }

    /// Appends one command's events and waits until they are committed.
    pub(crate) async fn append(&self, events: NewEvents) -> Result<Appended, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Pending { events, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The appending task is gone (the runtime is shutting down).
fn stopped() -> StoreError {
    StoreError::Unavailable(sqlx::Error::PoolClosed)
}

/// One appending task and its connection.
struct Task {
    options: PgConnectOptions,
    heads: Arc<HeadWatch>,
    /// The session, and when it last answered.
    connection: Option<(PgConnection, Instant)>,
}

impl Task {
    async fn run(mut self, mut received: mpsc::Receiver<Pending>) {
        while let Some(batch) = next_batch(&mut received).await {
            self.write(batch).await;
        }
    }

    /// Appends `batch`, answering every command in it.
    async fn write(&mut self, batch: Vec<Pending>) {
        let batch = refuse_overlaps(batch);
        if batch.is_empty() {
            return;
        }
        match self.append(&batch).await {
            Ok(head) => answer_appended(batch, head, &self.heads),
            Err(Failure::Store(error)) if matches!(error, StoreError::Unavailable(_)) => {
                answer_all(batch, error);
            }
            // One command lost its race, or the database refused one: find
            // which, one command at a time.
            Err(_) if batch.len() > 1 => {
                for pending in batch {
                    let alone = vec![pending];
                    match self.append(&alone).await {
                        Ok(head) => answer_appended(alone, head, &self.heads),
                        Err(Failure::Taken) => answer_taken(alone),
                        Err(Failure::Store(error)) => answer_all(alone, error),
                    }
                }
            }
            Err(Failure::Taken) => answer_taken(batch),
            Err(Failure::Store(error)) => answer_all(batch, error),
        }
    }

    /// Appends every event of `batch` in one statement, or none; the head it
    /// numbered on from. A position another giver took meanwhile (a process
    /// of an earlier version stamping by `max(log_position)`) is taken again
    /// from the new head.
    async fn append(&mut self, batch: &[Pending]) -> Result<i64, Failure> {
        let columns = Columns::of(batch);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match self.statement(&columns).await {
                Ok(head) => return Ok(head),
                Err(error) => error,
            };
            let code = match &error {
                sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
                _ => None,
            };
            match code.as_deref() {
                Some(INCOMPLETE) => return Err(Failure::Taken),
                Some(UNIQUE_VIOLATION) if attempts < 3 => continue,
                _ => {}
            }
            // The connection may be in any state after another error.
            self.connection = None;
            return Err(Failure::Store(StoreError::from(error)));
        }
    }

    async fn statement(&mut self, columns: &Columns<'_>) -> Result<i64, sqlx::Error> {
        let mut connection = match self.connection.take() {
            // A session that was idle may have been closed meanwhile (a
            // restarted server, an idle timeout): check before sending a
            // batch on it, so that its commands do not fail for that.
            Some((mut connection, used)) if used.elapsed() >= IDLE_CHECK => {
                match connection.ping().await {
                    Ok(()) => connection,
                    Err(_) => PgConnection::connect_with(&self.options).await?,
                }
            }
            Some((connection, _)) => connection,
            None => PgConnection::connect_with(&self.options).await?,
        };
        let head = sqlx::query_scalar(APPEND)
            .bind(&columns.aggregate_types)
            .bind(&columns.aggregate_ids)
            .bind(&columns.sequences)
            .bind(&columns.event_types)
            .bind(&columns.event_versions)
            .bind(&columns.payloads)
            .bind(&columns.metadata)
            .bind(HEAD_CHANNEL)
            .bind(TYPES_CHANNEL)
            .bind(i64::try_from(columns.sequences.len()).unwrap_or(i64::MAX))
            .fetch_one(&mut connection)
            .await;
        // A statement the server refused leaves the session as it was,
        // unless the server is ending it (shutting down, class 57P or 08).
        let usable = match &head {
            Ok(_) => true,
            Err(error @ sqlx::Error::Database(_)) => !crate::unavailable(error),
            Err(_) => false,
        };
        if usable {
            self.connection = Some((connection, Instant::now()));
        }
        head
    }
}

/// Why a batch was not appended.
enum Failure {
    /// A sequence number of it was taken (or an aggregate of it has an
    /// unstamped event): nothing was recorded.
    Taken,
    /// The store failed.
    Store(StoreError),
}

/// The SQLSTATE with which the statement undoes itself (migration 0015).
const INCOMPLETE: &str = "SPL01";
/// A unique violation: here, a position another giver took meanwhile.
const UNIQUE_VIOLATION: &str = "23505";

/// Tells every command of an appended batch its last position, and this
/// process's heads the new one.
fn answer_appended(batch: Vec<Pending>, head: i64, heads: &HeadWatch) {
    let mut last = head;
    let mut types = Vec::new();
    for pending in batch {
        last += i64::try_from(pending.events.events.len()).unwrap_or(i64::MAX);
        if !types.contains(&pending.events.aggregate_type) {
            types.push(pending.events.aggregate_type);
        }
        let _ = pending.reply.send(Ok(Appended::At(last)));
    }
    heads.advance(last, Some(types));
}

/// Tells every command in `batch` that it lost its race: nothing recorded.
fn answer_taken(batch: Vec<Pending>) {
    for pending in batch {
        let _ = pending.reply.send(Ok(Appended::Taken));
    }
}

/// The commands waiting now (at least one: it waits for the first), up to
/// a batch's limits. `None` once the appender is gone.
async fn next_batch(received: &mut mpsc::Receiver<Pending>) -> Option<Vec<Pending>> {
    let first = received.recv().await?;
    let mut events = first.events.events.len();
    let mut batch = vec![first];
    while batch.len() < MAX_COMMANDS && events < MAX_EVENTS {
        let Ok(next) = received.try_recv() else { break };
        events += next.events.events.len();
        batch.push(next);
    }
    Some(batch)
}

/// A command whose sequence numbers an earlier command of the same batch
/// claims too lost the race to it (both were decided on the same version).
fn refuse_overlaps(batch: Vec<Pending>) -> Vec<Pending> {
    let mut claimed = HashSet::new();
    let (kept, lost): (Vec<_>, Vec<_>) = batch.into_iter().partition(|pending| {
        let events = &pending.events;
        let keys: Vec<_> = (1..=events.events.len() as i64)
            .map(|n| (events.aggregate_type, events.aggregate_id.clone(), events.after + n))
            .collect();
        let free = !keys.iter().any(|key| claimed.contains(key));
        if free {
            claimed.extend(keys);
        }
        free
    });
    answer_taken(lost);
    kept
}

/// Answers every command in `batch` with `error` (each with a copy of it).
fn answer_all(batch: Vec<Pending>, error: StoreError) {
    let message = error.to_string();
    let unavailable = matches!(error, StoreError::Unavailable(_));
    let invalid = matches!(error, StoreError::InvalidValue(_));
    let mut error = Some(error);
    for pending in batch {
        let copy = error.take().unwrap_or_else(|| {
            let cause = sqlx::Error::Protocol(message.clone());
            if unavailable {
                StoreError::Unavailable(cause)
            } else if invalid {
                StoreError::InvalidValue(cause)
            } else {
                StoreError::Database(cause)
            }
        });
        let _ = pending.reply.send(Err(copy));
    }
}

/// Moves the head past a batch's events and inserts them with the positions
/// after it; leaves out every event whose sequence number is taken or whose
/// aggregate still has events without a position, and then undoes itself
/// (`log_append_complete`); announces the new head with the types it holds;
/// returns the head it numbered on from.
///
/// The head is the row's, or the highest position in the log where that is
/// higher: rows stamped meanwhile by a giver that does not know the row (a
/// process of an earlier version), or written with their positions by a tool.
const APPEND: &str = "WITH head AS (
         UPDATE log_head
            SET position = greatest(position,
                                    (SELECT coalesce(max(log_position), 0) FROM events)) + $10
         RETURNING position - $10 AS at
     ),
     appended AS (
         INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
                             event_version, payload, metadata, log_position)
         SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.event_type,
                e.event_version, e.payload::jsonb, e.metadata::jsonb, head.at + e.n
           FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[],
                       $6::text[], $7::text[])
                WITH ORDINALITY AS e(aggregate_type, aggregate_id, sequence, event_type,
                                     event_version, payload, metadata, n),
                head
          WHERE NOT EXISTS (SELECT 1 FROM events u
                             WHERE u.log_position IS NULL
                               AND u.aggregate_type = e.aggregate_type
                               AND u.aggregate_id = e.aggregate_id)
         ON CONFLICT (aggregate_type, aggregate_id, sequence) DO NOTHING
         RETURNING log_position, aggregate_type
     ),
     complete AS (
         SELECT log_append_complete(count(*), $10) FROM appended
     ),
     announced AS (
         SELECT pg_notify($8, max(log_position)::text),
                pg_notify($9, max(log_position)::text || ' '
                              || string_agg(DISTINCT aggregate_type, ' '))
           FROM appended, complete HAVING count(*) > 0
     )
SELECT head.at FROM head, complete LEFT JOIN announced ON true";

/// A batch's events as the statement's columns, in batch order.
struct Columns<'a> {
    aggregate_types: Vec<&'a str>,
    aggregate_ids: Vec<&'a str>,
    sequences: Vec<i64>,
    event_types: Vec<&'a str>,
    event_versions: Vec<&'a str>,
    payloads: Vec<&'a str>,
    metadata: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    fn of(batch: &'a [Pending]) -> Self {
        let count = batch.iter().map(|p| p.events.events.len()).sum();
        let mut columns = Self {
            aggregate_types: Vec::with_capacity(count),
            aggregate_ids: Vec::with_capacity(count),
            sequences: Vec::with_capacity(count),
            event_types: Vec::with_capacity(count),
            event_versions: Vec::with_capacity(count),
            payloads: Vec::with_capacity(count),
            metadata: Vec::with_capacity(count),
        };
        for pending in batch {
            let command = &pending.events;
            for (sequence, event) in (command.after + 1..).zip(&command.events) {
                columns.aggregate_types.push(command.aggregate_type);
                columns.aggregate_ids.push(&command.aggregate_id);
                columns.sequences.push(sequence);
                columns.event_types.push(&event.event_type);
                columns.event_versions.push(&event.event_version);
                columns.payloads.push(&event.payload);
                columns.metadata.push(&command.metadata);
            }
        }
        columns
    }
}
