//! The command path: load an aggregate from postgres-es, check the caller's
//! expected version, decide, and append through the log's appender, which
//! answers with the log position the new events got.
//!
//! `CqrsFramework::execute` is not used: it cannot take an expected version, so
//! an `If-Match` check outside it would race with a concurrent writer. Here the
//! check and the append see the same loaded state, and the append itself is
//! guarded by the events table's primary key (optimistic concurrency).
//!
//! Nor is postgres-es's commit: it spends a round trip on BEGIN, one per event
//! and one on COMMIT, and writes a snapshot in the events' transaction. Here
//! the events go in with those of every other command waiting at that moment
//! (see `appender`), and the snapshot (a cache: migration 0004) after them;
//! the tables and their encoding are postgres-es's, so its loads still read
//! what is written here.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventStore, SerializedEvent};
use cqrs_es::{Aggregate, AggregateError, DomainEvent, EventStore};
use postgres_es::PostgresEventRepository;
use sqlx::Row;
use sqlx::postgres::PgRow;
use stagepact_domain::Visibility;

use crate::StoreError;
use crate::log::{Appended, EventLog, NewEvent, NewEvents, upcasters};
use crate::recent::{RECENT_AGGREGATES, RecentAggregates};

/// How often a command is retried after losing a race to a concurrent writer,
/// when the caller did not pin a version. Each retry waits a little, with
/// jitter, so that a crowd of writers on one aggregate spreads out.
const CONFLICT_RETRIES: u32 = 30;
/// Events between aggregate snapshots: a command loads at most this many
/// events after the latest snapshot, whatever the aggregate's age.
const SNAPSHOT_EVERY: usize = 20;

/// A command that was recorded (or that changed nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The aggregate's version after the command: its number of events.
    pub version: i64,
    /// The log position of the last event recorded; `None` if the command
    /// recorded nothing.
    pub position: Option<i64>,
}

/// Why a command did not record anything.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The domain refused it.
    #[error(transparent)]
    Rejected(E),
    /// The caller expected another version (If-Match).
    #[error("expected version {expected}, the current version is {current}")]
    VersionMismatch {
        /// What the caller sent.
        expected: i64,
        /// What the aggregate is at.
        current: i64,
    },
    /// Concurrent writers kept winning the race.
    #[error("the aggregate kept changing concurrently")]
    Conflict,
    /// The caller's guard refused the aggregate as loaded (see `execute_from`).
    #[error(transparent)]
    Denied(Denial),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a caller may not run a command on an aggregate, decided on the state
/// the command itself loads (so the check and the decision see the same state).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// The aggregate does not exist (for this caller).
    #[error("{0}")]
    NotFound(String),
    /// The caller may not act on it.
    #[error("{0}")]
    Forbidden(String),
}

/// An aggregate as a command found it: its state, and the version (number of
/// events) that state is at. A handler that needs the state before it can
/// build its command (who may act, facts for another aggregate) loads it once
/// and hands it to [`CommandBus::execute_from`], which decides on it instead
/// of loading it again. Its version is checked by the append like any other:
/// if another writer appended since, the append is refused and the command
/// is decided again on a fresh load.
pub struct Loaded<A: Aggregate> {
    context: EventStoreAggregateContext<A>,
    /// Taken from this process's recent appends rather than loaded (see
    /// [`CommandBus::load_recent_for_command`]).
    cached: bool,
}

impl<A: Aggregate> Loaded<A> {
    /// An aggregate with no events yet, at version 0, without loading it: for
    /// an id the caller has just made (a v7 or v4 UUID), which no event can
    /// name yet. Should one exist after all, the append is refused and the
    /// command decided again on a load.
    pub fn new_aggregate(id: &str) -> Self {
        Self {
            context: EventStoreAggregateContext {
                aggregate_id: id.to_owned(),
                aggregate: A::default(),
                current_sequence: 0,
                current_snapshot: None,
            },
            cached: false,
        }
    }

    /// The aggregate's state.
    pub fn aggregate(&self) -> &A {
        &self.context.aggregate
    }

    /// The aggregate's version: its number of events.
    pub fn version(&self) -> i64 {
        i64::try_from(self.context.current_sequence).unwrap_or(i64::MAX)
    }

    /// Whether the state is this process's last append to it, not a load.
    pub fn is_cached(&self) -> bool {
        self.cached
    }
}

impl<A: Aggregate> std::fmt::Debug for Loaded<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("aggregate_type", &A::TYPE)
            .field("aggregate_id", &self.context.aggregate_id)
            .field("version", &self.version())
            .finish()
    }
}

/// Executes commands on any aggregate type.
#[derive(Debug, Clone)]
pub struct CommandBus {
    log: Arc<EventLog>,
    recent: Arc<RecentAggregates>,
}

impl CommandBus {
    /// A bus appending to the log's database.
    pub fn new(log: Arc<EventLog>) -> Self {
        Self { log, recent: Arc::new(RecentAggregates::new(RECENT_AGGREGATES)) }
    }

    fn store<A: Aggregate<Services = ()>>(
        &self,
    ) -> PersistedEventStore<PostgresEventRepository, A> {
        let repository = PostgresEventRepository::new(self.log.pool().clone());
        PersistedEventStore::new_snapshot_store(repository, SNAPSHOT_EVERY)
            .with_upcasters(upcasters())
    }

    /// Runs `command` on aggregate `id`. With `expected_version`, the aggregate
    /// must be at exactly that version (else `VersionMismatch`); without it a lost
    /// race is retried on fresh state. `metadata` is stored with every event.
    pub async fn execute<A>(
        &self,
        id: &str,
        command: A::Command,
        expected_version: Option<i64>,
        metadata: HashMap<String, String>,
    ) -> Result<Committed, CommandError<A::Error>>
    where
        A: Aggregate<Services = ()> + Clone + Visibility + 'static,
        A::Command: Clone,
    {
        self.execute_from::<A>(id, None, command, expected_version, metadata, |_| Ok(())).await
    }

    /// `execute`, with `guard` checked on the loaded aggregate before deciding:
    /// who may act on it (its school, its company) is read from the same state
    /// the command decides on, in the same load. It decides first on `loaded`
    /// (the state the caller already loaded, see [`Loaded`]) where given,
    /// instead of loading it again, and otherwise on the state this process's
    /// last append left, where it has one (see `recent`).
    pub async fn execute_from<A>(
        &self,
        id: &str,
        mut loaded: Option<Loaded<A>>,
        command: A::Command,
        expected_version: Option<i64>,
        metadata: HashMap<String, String>,
        guard: impl Fn(&A) -> Result<(), Denial>,
    ) -> Result<Committed, CommandError<A::Error>>
    where
        A: Aggregate<Services = ()> + Clone + Visibility + 'static,
        A::Command: Clone,
    {
        let mut attempt = 0;
        // A state the caller loaded for its facts is the one to decide on; the
        // cache serves only the bus's own load.
        let mut try_recent = loaded.is_none();
        let (version, position) = loop {
            attempt += 1;
            let recent = if try_recent { self.recent.get::<A>(id) } else { None };
            try_recent = false;
            let (context, cached) = match (loaded.take(), recent) {
                (Some(Loaded { context, cached }), _) if context.aggregate_id == id => {
                    (context, cached)
                }
                (_, Some(context)) => (context, true),
                _ => {
                    let loaded =
                        self.load_for_command::<A>(id).await.map_err(CommandError::Store)?;
                    (loaded.context, false)
                }
            };
            let current = i64::try_from(context.current_sequence).unwrap_or(i64::MAX);
            let decided = decide(&context.aggregate, current, &command, expected_version, &guard);
            let (events, post) = match decided.await {
                Ok(Some(decision)) => decision,
                // Only an append shows a cached state was current: any other
                // answer is given on a fresh load.
                _ if cached => {
                    self.recent.forget::<A>(id);
                    attempt -= 1;
                    continue;
                }
                Ok(None) => return Ok(Committed { version: current, position: None }),
                Err(error) => return Err(error),
            };
            // Who may see these events travels with them (see `Visibility`).
            let mut metadata = metadata.clone();
            metadata.extend(audience_metadata(post.audience()));
            let recorded = i64::try_from(events.len()).unwrap_or(i64::MAX);
            let new_events = new_events::<A>(id, current, &events, &metadata)
                .map_err(|e| CommandError::Store(e.into()))?;
            let payloads: Vec<String> =
                new_events.events.iter().map(|event| event.payload.clone()).collect();
            if let Appended::At(position) = self.log.append(new_events).await? {
                self.remember(id, context, &events, &payloads).await;
                break (current + recorded, position);
            }
            // Another writer appended first.
            self.recent.forget::<A>(id);
            if let Some(expected) = expected_version {
                let current = self.version_of::<A>(id).await?;
                return Err(CommandError::VersionMismatch { expected, current });
            }
            if attempt > CONFLICT_RETRIES {
                return Err(CommandError::Conflict);
            }
            tracing::debug!(aggregate = A::TYPE, id, attempt, "lost a race; retrying");
            tokio::time::sleep(backoff(attempt)).await;
        };
        // The events are committed, with their position.
        Ok(Committed { version, position: Some(position) })
    }

    /// After an append: writes a snapshot where one is due and remembers the
    /// state the events brought the aggregate to, folded from the payloads as
    /// they were stored, as a load would fold them (see `recent`).
    async fn remember<A: Aggregate + Clone + 'static>(
        &self,
        id: &str,
        context: EventStoreAggregateContext<A>,
        events: &[A::Event],
        payloads: &[String],
    ) {
        let snapshot = self.snapshot(id, &context, events).await;
        let mut aggregate = context.aggregate;
        for payload in payloads {
            match serde_json::from_str::<A::Event>(payload) {
                Ok(event) => aggregate.apply(event),
                // Cannot happen for events just serialised; a load will tell.
                Err(_) => return self.recent.forget::<A>(id),
            }
        }
        self.recent.put(id, aggregate, context.current_sequence + events.len(), snapshot);
    }

    /// Writes a snapshot when the appended events crossed a multiple of
    /// [`SNAPSHOT_EVERY`] (where cqrs-es would), after the events committed,
    /// and returns the aggregate's snapshot count after it.
    /// Snapshots are a cache of the events (see migration 0004): a write that
    /// fails costs a longer load later, never a wrong state, so it is logged
    /// and the command stands. A snapshot only ever replaces an older one.
    async fn snapshot<A: Aggregate + Clone>(
        &self,
        id: &str,
        context: &EventStoreAggregateContext<A>,
        events: &[A::Event],
    ) -> Option<usize> {
        let from = context.current_sequence;
        let to = from + events.len();
        let at = to - to % SNAPSHOT_EVERY;
        if at <= from {
            return context.current_snapshot;
        }
        let mut aggregate = context.aggregate.clone();
        for event in &events[..at - from] {
            aggregate.apply(event.clone());
        }
        let number = context.current_snapshot.map_or(1, |n| n + 1);
        let written = match serde_json::to_value(&aggregate) {
            Ok(payload) => sqlx::query(
                "INSERT INTO snapshots
                        (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
                    SET last_sequence = excluded.last_sequence,
                        current_snapshot = excluded.current_snapshot,
                        payload = excluded.payload
                  WHERE snapshots.last_sequence < excluded.last_sequence",
            )
            .bind(A::TYPE)
            .bind(id)
            .bind(i64::try_from(at).unwrap_or(i64::MAX))
            .bind(i64::try_from(number).unwrap_or(i64::MAX))
            .bind(payload)
            .execute(self.log.pool())
            .await
            .map(drop)
            .map_err(StoreError::from),
            Err(error) => Err(error.into()),
        };
        if let Err(error) = written {
            tracing::warn!(aggregate = A::TYPE, id, %error, "could not write a snapshot");
        }
        Some(number)
    }

    /// Loads the aggregate's snapshot and the events after it in one round
    /// trip (cqrs-es's own load takes two: every command pays for it). `None`
    /// when the snapshot no longer deserialises into the aggregate's state.
    async fn load_context<A: Aggregate>(
        &self,
        id: &str,
    ) -> Result<Option<EventStoreAggregateContext<A>>, StoreError> {
        static LOAD: LazyLock<String> =
            LazyLock::new(|| format!("{} ORDER BY sequence NULLS FIRST", load_sql(1, 2)));
        let rows = sqlx::query(&LOAD).bind(A::TYPE).bind(id).fetch_all(self.log.pool()).await?;
        self.fold_rows(id, &rows)
    }

    /// Folds one aggregate's rows of [`load_sql`], in order.
    fn fold_rows<A: Aggregate>(
        &self,
        id: &str,
        rows: &[PgRow],
    ) -> Result<Option<EventStoreAggregateContext<A>>, StoreError> {
        let mut context = EventStoreAggregateContext {
            aggregate_id: id.to_owned(),
            aggregate: A::default(),
            current_sequence: 0,
            current_snapshot: None,
        };
        for row in rows {
            let sequence: Option<i64> = row.try_get("sequence")?;
            let Some(sequence) = sequence else {
                // A snapshot of an older shape does not decode: replay all.
                let aggregate = match row.try_get::<sqlx::types::Json<A>, _>("payload") {
                    Ok(sqlx::types::Json(aggregate)) => aggregate,
                    Err(sqlx::Error::ColumnDecode { .. }) => return Ok(None),
                    Err(error) => return Err(error.into()),
                };
                let last: i64 = row.try_get("last_sequence")?;
                let snapshot: i64 = row.try_get("current_snapshot")?;
                context.aggregate = aggregate;
                context.current_sequence = usize::try_from(last).unwrap_or_default();
                context.current_snapshot = Some(usize::try_from(snapshot).unwrap_or_default());
                continue;
            };
            let event_type: String = row.try_get("event_type")?;
            let event_version: String = row.try_get("event_version")?;
            // An event at its current version is decoded straight from the
            // row's bytes; an older one is lifted first, as a JSON tree.
            let event: A::Event = if self.log.upcasts(&event_type, &event_version) {
                let serialized = self.log.upcast(SerializedEvent::new(
                    id.to_owned(),
                    usize::try_from(sequence).unwrap_or_default(),
                    A::TYPE.to_owned(),
                    event_type,
                    event_version,
                    row.try_get("payload")?,
                    serde_json::Value::Null,
                ));
                serde_json::from_value(serialized.payload)?
            } else {
                crate::fold::document(row, "payload")?
            };
            context.aggregate.apply(event);
            context.current_sequence = usize::try_from(sequence).unwrap_or_default();
        }
        Ok(Some(context))
    }

    /// Two aggregates as their events make them now, with their versions,
    /// in one round trip: a handler that needs facts of two (a student's
    /// enrolment and a company's recognition) waits for the database once.
    pub async fn load_both<A, B>(
        &self,
        a_id: &str,
        b_id: &str,
    ) -> Result<((A, i64), (B, i64)), StoreError>
    where
        A: Aggregate<Services = ()>,
        B: Aggregate<Services = ()>,
    {
        static LOAD_BOTH: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT 1 AS aggregate, * FROM ({}) a UNION ALL SELECT 2, * FROM ({}) b
                  ORDER BY aggregate, sequence NULLS FIRST",
                load_sql(1, 2),
                load_sql(3, 4)
            )
        });
        let rows = sqlx::query(&LOAD_BOTH)
            .bind(A::TYPE)
            .bind(a_id)
            .bind(B::TYPE)
            .bind(b_id)
            .fetch_all(self.log.pool())
            .await?;
        let split = rows
            .iter()
            .take_while(|row| row.try_get::<i32, _>("aggregate").ok() == Some(1))
            .count();
        let (a_rows, b_rows) = rows.split_at(split);
        let a = match self.fold_rows::<A>(a_id, a_rows)? {
            Some(context) => context,
            None => self.load_for_command::<A>(a_id).await?.context,
        };
        let b = match self.fold_rows::<B>(b_id, b_rows)? {
            Some(context) => context,
            None => self.load_for_command::<B>(b_id).await?.context,
        };
        let version = |sequence: usize| i64::try_from(sequence).unwrap_or(i64::MAX);
        Ok(((a.aggregate, version(a.current_sequence)), (b.aggregate, version(b.current_sequence))))
    }

    /// The aggregate `id` as its events make it now, and its version: the
    /// write side's own view, for facts a command on another aggregate needs
    /// (a read model could lag behind).
    pub async fn load<A>(&self, id: &str) -> Result<(A, i64), StoreError>
    where
        A: Aggregate<Services = ()>,
    {
        let loaded = self.load_for_command::<A>(id).await?;
        let version = loaded.version();
        Ok((loaded.context.aggregate, version))
    }

    /// The aggregate `id` as its events make it now, to decide a command on
    /// with [`execute_from`](Self::execute_from).
    pub async fn load_for_command<A>(&self, id: &str) -> Result<Loaded<A>, StoreError>
    where
        A: Aggregate<Services = ()>,
    {
        let context = match self.load_context::<A>(id).await? {
            Some(context) => context,
            // A snapshot of an older shape: replay everything, as cqrs-es does.
            None => {
                self.store::<A>().load_aggregate(id).await.map_err(|error| {
                    match store_error::<A::Error>(error) {
                        CommandError::Store(store) => store,
                        other => StoreError::Database(sqlx::Error::Protocol(other.to_string())),
                    }
                })?
            }
        };
        Ok(Loaded { context, cached: false })
    }

    /// The aggregate `id` as this process's last append to it left it, where
    /// it has one (see `recent`), else as its events make it now: for a
    /// command decided on it with [`execute_from`](Self::execute_from), which
    /// tries such a state like its own cache does (only a successful append
    /// proves it current; any other answer is given on a fresh load). Facts
    /// the caller reads from it before the command must be ones that never
    /// change (a placement's parties, an offer's company), and a refusal the
    /// caller derives from it must be checked again on a fresh load
    /// ([`Loaded::is_cached`]).
    pub async fn load_recent_for_command<A>(&self, id: &str) -> Result<Loaded<A>, StoreError>
    where
        A: Aggregate<Services = ()> + Clone + 'static,
    {
        match self.recent.get::<A>(id) {
            Some(context) => Ok(Loaded { context, cached: true }),
            None => self.load_for_command(id).await,
        }
    }

    /// The aggregate's current version (0 when it has no events).
    pub async fn version_of<A: Aggregate>(&self, id: &str) -> Result<i64, StoreError> {
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT max(sequence) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
        )
        .bind(A::TYPE)
        .bind(id)
        .fetch_one(self.log.pool())
        .await?;
        Ok(version.unwrap_or(0))
    }
}

/// Decides `command` on `aggregate` at version `current`, for a caller that
/// `guard` admits and that expects `expected`: the events it records with the
/// state after them, or `None` when it records nothing.
async fn decide<A: Aggregate<Services = ()> + Clone>(
    aggregate: &A,
    current: i64,
    command: &A::Command,
    expected: Option<i64>,
    guard: &impl Fn(&A) -> Result<(), Denial>,
) -> Result<Option<(Vec<A::Event>, A)>, CommandError<A::Error>>
where
    A::Command: Clone,
{
    guard(aggregate).map_err(CommandError::Denied)?;
    if let Some(expected) = expected
        && expected != current
    {
        return Err(CommandError::VersionMismatch { expected, current });
    }
    let sink = EventSink::<A>::default();
    // Decide on a copy: cqrs-es 0.5's `EventSink` applies each event to the
    // aggregate it is given, and the state to snapshot or remember is folded
    // from the events as stored (see `remember`).
    let mut scratch = aggregate.clone();
    scratch.handle(command.clone(), &(), &sink).await.map_err(CommandError::Rejected)?;
    let events = sink.collect().await;
    Ok((!events.is_empty()).then_some((events, scratch)))
}

/// One aggregate's snapshot (a row without a sequence) and the events after
/// it, for the aggregate type and id in parameters `$type` and `$id`.
fn load_sql(type_param: u8, id_param: u8) -> String {
    format!(
        "WITH s AS (SELECT last_sequence, current_snapshot, payload FROM snapshots
                     WHERE aggregate_type = ${type_param} AND aggregate_id = ${id_param})
         SELECT NULL::bigint AS sequence, NULL::text AS event_type,
                NULL::text AS event_version, payload, last_sequence, current_snapshot
           FROM s
         UNION ALL
         SELECT sequence, event_type, event_version, payload, NULL, NULL
           FROM events
          WHERE aggregate_type = ${type_param} AND aggregate_id = ${id_param}
            AND sequence > coalesce((SELECT last_sequence FROM s), 0)"
    )
}

/// A command's events as the log appends them: the columns postgres-es
/// writes, in its encoding (see `SerializedEvent`), so its loads read them.
fn new_events<A: Aggregate>(
    id: &str,
    current: i64,
    events: &[A::Event],
    metadata: &HashMap<String, String>,
) -> Result<NewEvents, serde_json::Error> {
    Ok(NewEvents {
        aggregate_type: A::TYPE,
        aggregate_id: id.to_owned(),
        after: current,
        events: events
            .iter()
            .map(|event| {
                Ok(NewEvent {
                    event_type: event.event_type(),
                    event_version: event.event_version(),
                    payload: serde_json::to_string(event)?,
                })
            })
            .collect::<Result<_, serde_json::Error>>()?,
        metadata: serde_json::to_string(metadata)?,
    })
}

/// Up to `attempt` milliseconds (capped at 20), uniformly jittered.
fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let ceiling_micros = u64::from(attempt.min(20)) * 1_000;
    Duration::from_micros(random % ceiling_micros.max(1))
}

fn store_error<E: std::error::Error>(error: AggregateError<E>) -> CommandError<E> {
    match error {
        AggregateError::UserError(e) => CommandError::Rejected(e),
        AggregateError::AggregateConflict => CommandError::Conflict,
        AggregateError::DatabaseConnectionError(e) => {
            CommandError::Store(StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(e))))
        }
        AggregateError::DeserializationError(e) | AggregateError::UnexpectedError(e) => {
            // postgres-es wraps sqlx errors in a box; recover them to keep pool
            // timeouts as "unavailable".
            match e.downcast::<sqlx::Error>() {
                Ok(sqlx_error) => CommandError::Store(StoreError::from(*sqlx_error)),
                Err(other) => CommandError::Store(StoreError::Database(sqlx::Error::Protocol(
                    other.to_string(),
                ))),
            }
        }
    }
}

/// The audience as metadata: a key named more than once lists its values,
/// space-separated (see `Visibility`).
fn audience_metadata(audience: Vec<(&'static str, String)>) -> HashMap<String, String> {
    let mut metadata = HashMap::<String, String>::new();
    for (key, value) in audience {
        metadata
            .entry(key.to_owned())
            .and_modify(|values| {
                values.push(' ');
                values.push_str(&value);
            })
            .or_insert(value);
    }
    metadata
}
