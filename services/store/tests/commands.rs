//! The command path against real PostgreSQL: snapshots, expected versions,
//! concurrent writers, and the log position handed back.

use std::sync::Arc;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use stagepact_store::testing::fresh_pool;
use stagepact_store::{CommandBus, CommandError, EventLog, Loaded};

/// A counter: applying an event twice would show.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Counter {
    count: u64,
}

impl stagepact_domain::Visibility for Counter {
    fn audience(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum CounterEvent {
    Incremented,
}

impl DomainEvent for CounterEvent {
    fn event_type(&self) -> String {
        "Incremented".to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("counter is full")]
struct Full;

#[derive(Debug, Clone)]
struct Increment {
    up_to: u64,
}

impl Aggregate for Counter {
    const TYPE: &'static str = "counter";
    type Command = Increment;
    type Event = CounterEvent;
    type Error = Full;
    type Services = ();

    async fn handle(
        &mut self,
        command: Increment,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), Full> {
        if self.count >= command.up_to {
            return Err(Full);
        }
        sink.write(CounterEvent::Incremented, self).await;
        Ok(())
    }

    fn apply(&mut self, _event: CounterEvent) {
        self.count += 1;
    }
}

async fn bus() -> (CommandBus, Arc<EventLog>, Vec<tokio::task::JoinHandle<()>>) {
    let pool = fresh_pool().await.expect("pool");
    let log = EventLog::open(pool).await.expect("log");
    let workers = log.spawn();
    (CommandBus::new(Arc::clone(&log)), log, workers)
}

#[tokio::test]
async fn snapshots_apply_every_event_exactly_once() {
    let (bus, log, _workers) = bus().await;
    let mut last = 0;
    for expected in 1..=45 {
        let committed = bus
            .execute::<Counter>("c", Increment { up_to: 45 }, None, Default::default())
            .await
            .expect("execute");
        assert_eq!(committed.version, expected);
        let position = committed.position.expect("a position");
        assert!(position > last, "positions increase");
        last = position;
    }
    // The snapshot after 40 events holds a count of 40, not more.
    let (last_sequence, payload): (i64, serde_json::Value) = sqlx::query_as(
        "SELECT last_sequence, payload FROM snapshots WHERE aggregate_type = 'counter'",
    )
    .fetch_one(log.pool())
    .await
    .expect("a snapshot");
    assert_eq!(last_sequence, 40);
    assert_eq!(payload["count"], 40);
    // Loading from the snapshot sees all 45: the 46th is refused.
    let refused =
        bus.execute::<Counter>("c", Increment { up_to: 45 }, None, Default::default()).await;
    assert!(matches!(refused, Err(CommandError::Rejected(Full))), "{refused:?}");

    // A cleared snapshot table only costs a longer load.
    sqlx::query("TRUNCATE snapshots").execute(log.pool()).await.expect("truncate");
    let refused =
        bus.execute::<Counter>("c", Increment { up_to: 45 }, None, Default::default()).await;
    assert!(matches!(refused, Err(CommandError::Rejected(Full))));
    let more = bus
        .execute::<Counter>("c", Increment { up_to: 100 }, None, Default::default())
        .await
        .expect("execute");
    assert_eq!(more.version, 46);

    // A snapshot of another shape (the state type changed) is passed over:
    // the whole history is replayed.
    for _ in 46..60 {
        bus.execute::<Counter>("c", Increment { up_to: 100 }, None, Default::default())
            .await
            .expect("execute");
    }
    sqlx::query("UPDATE snapshots SET payload = '{\"tally\": 3}'")
        .execute(log.pool())
        .await
        .expect("reshape");
    let (counter, version) = bus.load::<Counter>("c").await.expect("load");
    assert_eq!((counter.count, version), (60, 60));
    let next = bus
        .execute::<Counter>("c", Increment { up_to: 100 }, None, Default::default())
        .await
        .expect("execute");
    assert_eq!(next.version, 61);
}

#[tokio::test]
async fn an_expected_version_is_checked_against_the_loaded_state() {
    let (bus, _log, _workers) = bus().await;
    bus.execute::<Counter>("v", Increment { up_to: 10 }, Some(0), Default::default())
        .await
        .expect("first");
    let stale =
        bus.execute::<Counter>("v", Increment { up_to: 10 }, Some(0), Default::default()).await;
    assert!(
        matches!(stale, Err(CommandError::VersionMismatch { expected: 0, current: 1 })),
        "{stale:?}"
    );
    bus.execute::<Counter>("v", Increment { up_to: 10 }, Some(1), Default::default())
        .await
        .expect("current");
}

/// Increments counter `id`, deciding first on `loaded`.
async fn increment_from(
    bus: &CommandBus,
    id: &str,
    loaded: Loaded<Counter>,
    up_to: u64,
    expected: Option<i64>,
) -> Result<stagepact_store::Committed, CommandError<Full>> {
    bus.execute_from::<Counter>(
        id,
        Some(loaded),
        Increment { up_to },
        expected,
        Default::default(),
        |_| Ok(()),
    )
    .await
}

/// A handler decides on the state it loaded before building its command; a
/// write in between must not be lost: the append is refused and the command
/// decided again on a fresh load.
#[tokio::test]
async fn a_command_decided_on_stale_loaded_state_is_decided_again() {
    let (bus, log, _workers) = bus().await;
    let stale = bus.load_for_command::<Counter>("pre").await.expect("load");
    assert_eq!(stale.version(), 0);
    bus.execute::<Counter>("pre", Increment { up_to: 10 }, None, Default::default())
        .await
        .expect("a write after the load");
    let committed = increment_from(&bus, "pre", stale, 10, None).await.expect("decided again");
    assert_eq!(committed.version, 2);

    // With an expected version, the stale state is a version mismatch, as a
    // load would have shown.
    let stale = bus.load_for_command::<Counter>("pre").await.expect("load");
    bus.execute::<Counter>("pre", Increment { up_to: 10 }, None, Default::default())
        .await
        .expect("another write");
    let pinned = increment_from(&bus, "pre", stale, 10, Some(2)).await;
    assert!(
        matches!(pinned, Err(CommandError::VersionMismatch { expected: 2, current: 3 })),
        "{pinned:?}"
    );

    // An id assumed new that has events after all: decided on its real state.
    let full = increment_from(&bus, "pre", Loaded::new_aggregate("pre"), 3, None).await;
    assert!(matches!(full, Err(CommandError::Rejected(Full))), "{full:?}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = 'pre'")
        .fetch_one(log.pool())
        .await
        .expect("count");
    assert_eq!(count, 3);
}

/// Each process decides a command first on the state its own last append
/// left (see `recent`). When another process wrote since, that state is stale:
/// a command that succeeds on it is refused by the append and decided again,
/// and one it would refuse, deny or find at another version is decided again
/// on a fresh load rather than answered from the stale state.
#[tokio::test]
async fn a_command_decided_on_a_state_another_process_advanced_is_decided_again() {
    let (here, log, _workers) = bus().await;
    let elsewhere = CommandBus::new(Arc::clone(&log));
    let increment = |bus: &CommandBus, expected, guard: fn(&Counter) -> _| {
        let bus = bus.clone();
        async move {
            bus.execute_from::<Counter>(
                "shared",
                None,
                Increment { up_to: 10 },
                expected,
                Default::default(),
                guard,
            )
            .await
        }
    };
    let anyone = |_: &Counter| Ok(());
    assert_eq!(increment(&here, None, anyone).await.expect("here").version, 1);
    assert_eq!(increment(&elsewhere, None, anyone).await.expect("elsewhere").version, 2);

    // Succeeds on the stale state (version 1), refused by the append, then
    // decided on the fresh one: no update lost.
    assert_eq!(increment(&here, None, anyone).await.expect("decided again").version, 3);
    assert_eq!(increment(&elsewhere, None, anyone).await.expect("elsewhere").version, 4);

    // The stale state (3) is not the version the caller expects (4): asked again.
    assert_eq!(increment(&here, Some(4), anyone).await.expect("pinned").version, 5);
    assert_eq!(increment(&elsewhere, None, anyone).await.expect("elsewhere").version, 6);

    // The stale state (count 5) is denied by a guard the fresh one (6) passes.
    let from_six = |c: &Counter| {
        if c.count >= 6 {
            Ok(())
        } else {
            Err(stagepact_store::Denial::Forbidden("not yet".into()))
        }
    };
    assert_eq!(increment(&here, None, from_six).await.expect("admitted").version, 7);

    // And a refusal is a refusal on the fresh state too.
    for _ in 7..10 {
        increment(&elsewhere, None, anyone).await.expect("elsewhere");
    }
    let full = increment(&here, None, anyone).await;
    assert!(matches!(full, Err(CommandError::Rejected(Full))), "{full:?}");
    let (counter, version) = here.load::<Counter>("shared").await.expect("load");
    assert_eq!((counter.count, version), (10, 10));
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = 'shared'")
            .fetch_one(log.pool())
            .await
            .expect("count");
    assert_eq!(count, 10);
}

/// A handler may take the state its facts come from from this process's last
/// append (`load_recent_for_command`): the command decided on it is tried
/// like the bus's own cache, so a stale one never answers.
#[tokio::test]
async fn a_recent_state_a_handler_took_is_tried_never_trusted() {
    let (here, log, _workers) = bus().await;
    let elsewhere = CommandBus::new(Arc::clone(&log));
    let from = |bus: &CommandBus, loaded: Loaded<Counter>| {
        let bus = bus.clone();
        async move { increment_from(&bus, "facts", loaded, 10, None).await }
    };
    let fresh = here.load_recent_for_command::<Counter>("facts").await.expect("load");
    assert!(!fresh.is_cached(), "nothing appended here yet: loaded");
    assert_eq!(from(&here, fresh).await.expect("first").version, 1);
    let recent = here.load_recent_for_command::<Counter>("facts").await.expect("load");
    assert!(recent.is_cached());
    assert_eq!(recent.version(), 1, "the state this process's append left, without a load");

    // Another process writes twice; the recent state (count 1) is stale.
    for _ in 0..2 {
        elsewhere
            .execute::<Counter>("facts", Increment { up_to: 10 }, None, Default::default())
            .await
            .expect("elsewhere");
    }
    // Succeeds on the stale state, refused by the append, decided again.
    let stale = here.load_recent_for_command::<Counter>("facts").await.expect("load");
    assert!(stale.is_cached());
    assert_eq!(from(&here, stale).await.expect("decided again").version, 4);

    // Denied on the stale state (count 4) by a guard the fresh one (5)
    // passes: decided again on a fresh load, not answered from the stale.
    elsewhere
        .execute::<Counter>("facts", Increment { up_to: 10 }, None, Default::default())
        .await
        .expect("elsewhere");
    let stale = here.load_recent_for_command::<Counter>("facts").await.expect("load");
    assert_eq!((stale.is_cached(), stale.version()), (true, 4));
    let from_five = |c: &Counter| {
        if c.count >= 5 {
            Ok(())
        } else {
            Err(stagepact_store::Denial::Forbidden("not yet".into()))
        }
    };
    let admitted = here
        .execute_from::<Counter>(
            "facts",
            Some(stale),
            Increment { up_to: 10 },
            None,
            Default::default(),
            from_five,
        )
        .await
        .expect("admitted on the fresh state");
    assert_eq!(admitted.version, 6);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = 'facts'")
        .fetch_one(log.pool())
        .await
        .expect("count");
    assert_eq!(count, 6);
}

#[tokio::test]
async fn concurrent_writers_on_one_aggregate_lose_nothing() {
    let (bus, log, _workers) = bus().await;
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let bus = bus.clone();
            tokio::spawn(async move {
                bus.execute::<Counter>("hot", Increment { up_to: 1_000 }, None, Default::default())
                    .await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.expect("join").expect("no update lost").version);
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=24).collect::<Vec<_>>());
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = 'hot'")
        .fetch_one(log.pool())
        .await
        .expect("count");
    assert_eq!(count, 24);
}

/// Snapshots are a cache that may be truncated at any time, also while a
/// command appends (postgres-es then reported a conflict after its commit):
/// the command is recorded once and the snapshot written again.
#[tokio::test]
async fn a_snapshot_removed_while_a_command_appends_records_the_event_once() {
    let (bus, log, _workers) = bus().await;
    for _ in 0..39 {
        bus.execute::<Counter>("s", Increment { up_to: 100 }, None, Default::default())
            .await
            .expect("execute");
    }
    // Removes the snapshot between the event insert and the snapshot update.
    sqlx::raw_sql(
        "CREATE FUNCTION drop_snapshot() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN DELETE FROM snapshots WHERE aggregate_id = NEW.aggregate_id; RETURN NEW; END $$;
         CREATE TRIGGER drop_snapshot BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION drop_snapshot();",
    )
    .execute(log.pool())
    .await
    .expect("trigger");
    let fortieth = bus
        .execute::<Counter>("s", Increment { up_to: 100 }, None, Default::default())
        .await
        .expect("execute");
    assert_eq!(fortieth.version, 40);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = 's'")
        .fetch_one(log.pool())
        .await
        .expect("count");
    assert_eq!(count, 40, "the command was recorded once");
    let snapshot: (i64, serde_json::Value) =
        sqlx::query_as("SELECT last_sequence, payload FROM snapshots WHERE aggregate_id = 's'")
            .fetch_one(log.pool())
            .await
            .expect("the snapshot written again");
    assert_eq!((snapshot.0, snapshot.1["count"].clone()), (40, serde_json::json!(40)));
}

/// An earlier shape of `Incremented` (version 0 carried an amount).
struct LegacyIncrement;

impl EventUpcaster for LegacyIncrement {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        event_type == "Incremented" && event_version == "0"
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        event.payload = serde_json::json!("Incremented");
        event.event_version = "1".to_owned();
        event
    }
}

/// A command loads its aggregate's events through the upcasters; an event at
/// its current version is read as stored.
#[tokio::test]
async fn old_event_versions_are_upcast_when_an_aggregate_loads() {
    let pool = fresh_pool().await.expect("pool");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata)
         VALUES ('counter', 'old', 1, 'Incremented', '0', '{\"Incremented\": {\"by\": 1}}', '{}'),
                ('counter', 'old', 2, 'Incremented', '1', '\"Incremented\"', '{}')",
    )
    .execute(&pool)
    .await
    .expect("old events");
    let plain = CommandBus::new(EventLog::open(pool.clone()).await.expect("log"));
    assert!(plain.load::<Counter>("old").await.is_err(), "version 0 does not read as version 1");

    // Written outside the appender: stamped before the aggregate takes more.
    while stagepact_store::log::stamp_batch(&pool).await.expect("stamp")
        != stagepact_store::log::Stamp::Idle
    {}
    let log = EventLog::with_upcasters(pool, vec![Box::new(LegacyIncrement)]).await.expect("log");
    let bus = CommandBus::new(Arc::clone(&log));
    let (counter, version) = bus.load::<Counter>("old").await.expect("load");
    assert_eq!((counter.count, version), (2, 2));
    let committed = bus
        .execute::<Counter>("old", Increment { up_to: 10 }, None, Default::default())
        .await
        .expect("a command on the upcast state");
    assert_eq!(committed.version, 3);
}

/// Two aggregates load in one round trip exactly as each loads alone: one
/// past its snapshot, one without, one with no events at all.
#[tokio::test]
async fn two_aggregates_load_together_as_each_alone() {
    let (bus, _log, _workers) = bus().await;
    for (id, times) in [("snapshotted", 25), ("young", 3)] {
        for _ in 0..times {
            bus.execute::<Counter>(id, Increment { up_to: 100 }, None, Default::default())
                .await
                .expect("increment");
        }
    }
    for (a, b) in [("snapshotted", "young"), ("young", "snapshotted"), ("young", "none")] {
        let ((first, first_version), (second, second_version)) =
            bus.load_both::<Counter, Counter>(a, b).await.expect("load both");
        let (alone_a, version_a) = bus.load::<Counter>(a).await.expect("load a");
        let (alone_b, version_b) = bus.load::<Counter>(b).await.expect("load b");
        assert_eq!((first.count, first_version), (alone_a.count, version_a), "{a}");
        assert_eq!((second.count, second_version), (alone_b.count, version_b), "{b}");
    }
    let ((snapshotted, _), (young, _)) =
        bus.load_both::<Counter, Counter>("snapshotted", "young").await.expect("load both");
    assert_eq!((snapshotted.count, young.count), (25, 3));
}
