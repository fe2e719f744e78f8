//! The log's writer: appends the events of every command that is waiting, in
//! one transaction, and gives them their log positions as it inserts them
//! (group commit).
//!
//! Before, each command inserted its events in a transaction of its own, and
//! the sequencer stamped them afterwards with an `UPDATE`. That wrote every
//! event row twice: a second row version with new entries in every index, a
//! dead one for vacuum to clean, and each command waited for a stamping round
//! after its commit (BENCHMARKS.md, "Placement lifecycle", runs I).
//!
//! Positions stay dense and in commit order because every batch takes the
//! sequencer's advisory lock (`log::SEQUENCER_LOCK`, the lock the sequencer
//! takes to stamp rows written elsewhere), reads the head in a statement after
//! the lock is granted, numbers its events on from it, and commits durably
//! while it holds the lock. PostgreSQL makes a commit visible before it
//! releases the transaction's locks, so the next holder's head includes the
//! batch before it, and a reader that sees a batch sees every batch before it:
//! "after N" stays a complete cursor. Because the commit waits for its WAL
//! flush before it becomes visible, no reader sees a position a crash could
//! take back.
//!
//! Within an aggregate the log keeps sequence order: a command appends event
//! k+1 only after deciding on a state that includes event k, so k was
//! committed, and positioned, first. Rows written outside the appender (by a
//! process of an earlier version during a rolling upgrade, or a tool) get
//! their positions from the sequencer later, so an aggregate with such a row
//! still unstamped takes no new events: the command is answered as a lost race
//! and decides again once the row has its place.
//!
//! A batch is refused whole when one of its commands lost the race for a
//! sequence number (the events' primary key): it is rolled back, the losers are
//! told, and the others are appended again at once. A batch the database
//! refuses for another reason is split into its commands, so that one
//! command's bad value fails that command alone.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::StoreError;
use crate::log::{HEAD_CHANNEL, HeadWatch, TYPES_CHANNEL};

/// Appending tasks, each with its connection. Two, so that the next batch
/// waits for the lock while the one before it flushes: it goes ahead the
/// moment the lock is free, one round trip sooner.
pub(crate) const APPENDERS: usize = 2;
/// Most commands in one batch.
const MAX_COMMANDS: usize = 500;
/// Most events in one batch (a batch stops taking commands once it has these).
const MAX_EVENTS: usize = 5_000;
/// Commands waiting for an appender; a command beyond them waits to be queued.
const QUEUE: usize = 4_096;

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
    /// Starts the appending tasks on connections made with `options`. They
    /// end when the appender is dropped.
    pub(crate) fn start(options: PgConnectOptions, heads: Arc<HeadWatch>) -> Self {
        let (queue, received) = mpsc::channel(QUEUE);
        let received = Arc::new(Mutex::new(received));
        for _ in 0..APPENDERS {
            let task =
                Task { options: options.clone(), heads: Arc::clone(&heads), connection: None };
            tokio::spawn(task.run(Arc::clone(&received)));
        }
        Self { queue }
    }

    /// Appends one command's events and waits until they are committed.
    pub(crate) async fn append(&self, events: NewEvents) -> Result<Appended, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Pending { events, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The appending tasks are gone (the runtime is shutting down).
fn stopped() -> StoreError {
    StoreError::Unavailable(sqlx::Error::PoolClosed)
}

/// One appending task and its connection.
struct Task {
    options: PgConnectOptions,
    heads: Arc<HeadWatch>,
    connection: Option<PgConnection>,
}

impl Task {
    async fn run(mut self, received: Arc<Mutex<mpsc::Receiver<Pending>>>) {
        while let Some(batch) = next_batch(&received).await {
            self.write(batch).await;
        }
    }

    /// Appends `batch`, answering every command in it.
    async fn write(&mut self, batch: Vec<Pending>) {
        let mut batch = refuse_overlaps(batch);
        while !batch.is_empty() {
            match self.attempt(batch).await {
                // Committed (nothing left), or the losers were answered and
                // the others go again.
                Ok(rest) => batch = rest,
                Err((error, failed)) => {
                    if failed.len() > 1 && !matches!(error, StoreError::Unavailable(_)) {
                        // Find the command the database refused: one at a time.
                        for pending in failed {
                            let mut alone = vec![pending];
                            while !alone.is_empty() {
                                alone = match self.attempt(alone).await {
                                    Ok(rest) => rest,
                                    Err((error, failed)) => {
                                        answer_all(failed, error);
                                        Vec::new()
                                    }
                                };
                            }
                        }
                    } else {
                        answer_all(failed, error);
                    }
                    batch = Vec::new();
                }
            }
        }
    }

    /// One transaction over `batch`. When every event went in it commits,
    /// answers everyone and returns nothing; otherwise it rolls back,
    /// answers the commands that lost their race and returns the others for
    /// another attempt. On an error it returns the batch unanswered, and drops
    /// the connection (the server rolls back what it had begun).
    async fn attempt(
        &mut self,
        batch: Vec<Pending>,
    ) -> Result<Vec<Pending>, (StoreError, Vec<Pending>)> {
        match self.try_attempt(&batch).await {
            Ok(Outcome::Committed { head, last }) => {
                let mut types = Vec::new();
                for (pending, position) in batch.into_iter().zip(last) {
                    if !types.contains(&pending.events.aggregate_type) {
                        types.push(pending.events.aggregate_type);
                    }
                    let _ = pending.reply.send(Ok(Appended::At(position)));
                }
                self.heads.advance(head, Some(types));
                Ok(Vec::new())
            }
            Ok(Outcome::RolledBack { won }) => {
                let mut rest = Vec::with_capacity(batch.len());
                for (pending, won) in batch.into_iter().zip(won) {
                    if won {
                        rest.push(pending);
                    } else {
                        let _ = pending.reply.send(Ok(Appended::Taken));
                    }
                }
                Ok(rest)
            }
            // The connection is gone with the error (see `try_attempt`).
            Err(error) => Err((StoreError::from(error), batch)),
        }
    }

    async fn try_attempt(&mut self, batch: &[Pending]) -> Result<Outcome, sqlx::Error> {
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => PgConnection::connect_with(&self.options).await?,
        };
        let outcome = transact(&mut connection, batch).await?;
        self.connection = Some(connection);
        Ok(outcome)
    }
}

/// The transaction of one attempt (see `Task::attempt`).
async fn transact(
    connection: &mut PgConnection,
    batch: &[Pending],
) -> Result<Outcome, sqlx::Error> {
    let columns = Columns::of(batch);
    // Lock first, in a statement of its own: the insert's snapshot, taken
    // after the lock is granted, sees the last holder's commit, so the
    // head it reads is the true one.
    (&mut *connection).execute(sqlx::raw_sql(LOCK)).await?;
    let rows: Vec<(i64, i64)> = sqlx::query_as(APPEND)
        .bind(&columns.aggregate_types)
        .bind(&columns.aggregate_ids)
        .bind(&columns.sequences)
        .bind(&columns.event_types)
        .bind(&columns.event_versions)
        .bind(&columns.payloads)
        .bind(&columns.metadata)
        .bind(HEAD_CHANNEL)
        .bind(TYPES_CHANNEL)
        .fetch_all(&mut *connection)
        .await?;
    let head = rows.first().map_or(0, |(head, _)| *head);
    // Each position is the head plus the event's ordinal in the batch.
    let mut written = vec![false; columns.sequences.len()];
    for (_, position) in &rows {
        let ordinal = usize::try_from(position - head - 1).ok();
        if let Some(slot) = ordinal.and_then(|i| written.get_mut(i)) {
            *slot = true;
        }
    }
    let mut ends = batch.iter().scan(0, |end, pending| {
        *end += pending.events.events.len();
        Some(*end)
    });
    if written.iter().all(|w| *w) {
        (&mut *connection).execute(sqlx::raw_sql("COMMIT")).await?;
        let last = ends.map(|end| head + i64::try_from(end).unwrap_or(i64::MAX)).collect();
        let head = head + i64::try_from(written.len()).unwrap_or(i64::MAX);
        return Ok(Outcome::Committed { head, last });
    }
    (&mut *connection).execute(sqlx::raw_sql("ROLLBACK")).await?;
    let mut start = 0;
    let won = ends
        .by_ref()
        .map(|end| {
            let won = written[start..end].iter().all(|w| *w);
            start = end;
            won
        })
        .collect();
    Ok(Outcome::RolledBack { won })
}

/// The commands waiting now (at least one: it waits for the first), up to
/// a batch's limits. `None` once the appender is gone.
async fn next_batch(received: &Mutex<mpsc::Receiver<Pending>>) -> Option<Vec<Pending>> {
    let mut received = received.lock().await;
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

/// What one transaction over a batch did.
enum Outcome {
    /// Every event went in: the new head, and each command's last position.
    Committed { head: i64, last: Vec<i64> },
    /// Some sequence number was taken: rolled back; which commands had every
    /// event go in.
    RolledBack { won: Vec<bool> },
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
    for pending in lost {
        let _ = pending.reply.send(Ok(Appended::Taken));
    }
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

/// Opens the batch's transaction and takes the sequencer's lock in it, in one
/// message: raw SQL takes no parameters, so the key is written out
/// (`SEQUENCER_LOCK`, checked by a test).
const LOCK: &str = "BEGIN; SELECT pg_advisory_xact_lock(6004495977787248945)";

/// Inserts a batch's events with positions after the head, leaves out every
/// event whose sequence number is taken or whose aggregate still has events
/// without a position, announces the new head with the types it holds, and
/// returns the head it started from with each position it gave.
const APPEND: &str = "WITH head AS (SELECT coalesce(max(log_position), 0) AS at FROM events),
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
     announced AS (
         SELECT pg_notify($8, max(log_position)::text),
                pg_notify($9, max(log_position)::text || ' '
                              || string_agg(DISTINCT aggregate_type, ' '))
           FROM appended HAVING count(*) > 0
     )
SELECT head.at, appended.log_position
  FROM head, appended LEFT JOIN announced ON true";

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::SEQUENCER_LOCK;

    #[test]
    fn the_batch_takes_the_sequencers_lock() {
        assert!(LOCK.ends_with(&format!("pg_advisory_xact_lock({SEQUENCER_LOCK})")), "{LOCK}");
    }
}
