//! The global event log against real PostgreSQL: readers never skip an event a
//! slower transaction commits later, positions are dense and strictly increasing
//! whether the appender gives them or the sequencer stamps them, old event
//! versions are upcast on read.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use proptest::prelude::*;
use serde_json::json;
use stagepact_store::log::{Appended, NewEvent, NewEvents, Stamp, stamp_batch};
use stagepact_store::testing::{fresh_pool, insert_stamped};
use stagepact_store::{EventLog, FeedFilter};

async fn append<'e>(executor: impl sqlx::PgExecutor<'e>, id: &str, sequence: i64) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('probe', $1, $2, 'Probed', '1', $3, '{}')",
    )
    .bind(id)
    .bind(sequence)
    .bind(json!({"Probed": {"n": sequence}}))
    .execute(executor)
    .await
    .expect("append");
}

async fn all(log: &EventLog) -> Vec<(i64, String, i64)> {
    log.read(0, 10_000, &FeedFilter::default())
        .await
        .expect("read")
        .into_iter()
        .map(|e| (e.position, e.aggregate_id, e.sequence))
        .collect()
}

#[tokio::test]
async fn the_log_waits_for_a_slow_transaction_instead_of_skipping_it() {
    let pool = fresh_pool().await.expect("pool");
    let log = EventLog::open(pool.clone()).await.expect("log");
    let workers = log.spawn();

    // A writer that has appended but not yet committed.
    let mut slow = pool.begin().await.expect("begin");
    append(&mut *slow, "slow", 1).await;

    // Two faster writers commit after it started.
    append(&pool, "fast-a", 1).await;
    append(&pool, "fast-b", 1).await;
    log.wake_sequencer();

    // While the slow one is open, a reader sees none of the later commits: had
    // it seen them, its cursor would already be past the slow event's place.
    assert!(
        !log.await_head_after(0, Duration::from_millis(400)).await,
        "the log moved past an open transaction"
    );
    assert_eq!(all(&log).await, vec![], "a reader saw events ahead of an open transaction");
    // A sequencer round of our own (once the running one lets go of the lock)
    // finds the later events ready but holds them back.
    let mut outcome = Stamp::OtherSequencer;
    for _ in 0..100 {
        outcome = stamp_batch(&pool).await.expect("stamp");
        if outcome != Stamp::OtherSequencer {
            break;
        }
    }
    assert_eq!(outcome, Stamp::HeldBack);

    slow.commit().await.expect("commit slow");
    log.wake_sequencer();
    assert!(log.await_head_after(2, Duration::from_secs(5)).await, "the log did not move on");
    assert_eq!(
        all(&log).await,
        vec![(1, "slow".to_owned(), 1), (2, "fast-a".to_owned(), 1), (3, "fast-b".to_owned(), 1)],
        "the slow transaction's event comes first, and nothing is skipped"
    );
    for worker in workers {
        worker.abort();
    }
}

#[tokio::test]
async fn an_open_background_transaction_does_not_hold_back_the_log() {
    let pool = fresh_pool().await.expect("pool");
    let log = EventLog::open(pool.clone()).await.expect("log");
    let workers = log.spawn();

    // A projector-like round on the background pool that has written (so it
    // holds a transaction id) and stays open, as a slow read-model round would.
    let mut round = log.background().begin().await.expect("begin");
    sqlx::query("UPDATE projection_checkpoints SET updated_at = now()")
        .execute(&mut *round)
        .await
        .expect("write");
    let holds: Option<String> = sqlx::query_scalar("SELECT pg_current_xact_id_if_assigned()::text")
        .fetch_one(&mut *round)
        .await
        .expect("xid");
    assert!(holds.is_some(), "the round must hold a transaction id for the test to mean anything");

    // A command's events committed after it are stamped all the same.
    append(&pool, "after-round", 1).await;
    log.wake_sequencer();
    assert!(
        log.await_head_after(0, Duration::from_secs(5)).await,
        "the log waited for a background transaction, which never appends events"
    );
    assert_eq!(all(&log).await, vec![(1, "after-round".to_owned(), 1)]);

    // The same open transaction on a request connection does hold it back.
    let mut writer = pool.begin().await.expect("begin");
    sqlx::query("UPDATE projection_checkpoints SET updated_at = now() WHERE false")
        .execute(&mut *writer)
        .await
        .expect("write");
    let _: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(&mut *writer)
        .await
        .expect("xid");
    append(&pool, "after-writer", 1).await;
    log.wake_sequencer();
    assert!(
        !log.await_head_after(1, Duration::from_millis(400)).await,
        "the log moved past a request transaction that may still append"
    );
    writer.rollback().await.expect("rollback");
    round.rollback().await.expect("rollback");
    log.wake_sequencer();
    assert!(log.await_head_after(1, Duration::from_secs(5)).await, "the log did not move on");
    for worker in workers {
        worker.abort();
    }
}

#[tokio::test]
async fn the_database_refuses_events_from_a_background_session() {
    let pool = fresh_pool().await.expect("pool");
    let log = EventLog::open(pool.clone()).await.expect("log");
    // The sequencer does not wait for background sessions, so an event
    // appended by one could land below positions already stamped.
    let refused = sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('probe', 'from-background', 1, 'Probed', '1', '{}', '{}')",
    )
    .execute(log.background())
    .await
    .expect_err("a background session appended an event");
    assert!(refused.to_string().contains("request sessions only"), "{refused}");
    append(&pool, "from-request", 1).await;
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.expect("count");
    assert_eq!(rows, 1, "only the request session's event is recorded");
}

#[tokio::test]
async fn a_rolled_back_append_leaves_no_gap() {
    let pool = fresh_pool().await.expect("pool");
    let log = EventLog::open(pool.clone()).await.expect("log");
    let workers = log.spawn();

    let mut aborted = pool.begin().await.expect("begin");
    append(&mut *aborted, "gone", 1).await;
    append(&pool, "kept", 1).await;
    aborted.rollback().await.expect("rollback");
    append(&pool, "kept", 2).await;
    log.wake_sequencer();
    assert!(log.await_head_after(1, Duration::from_secs(5)).await);
    assert_eq!(all(&log).await, vec![(1, "kept".to_owned(), 1), (2, "kept".to_owned(), 2)]);
    for worker in workers {
        worker.abort();
    }
}

/// Renames the field `title` of `Probed` version 0 to `name`, at version 1.
struct ProbedV0;

impl EventUpcaster for ProbedV0 {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        event_type == "Probed" && event_version == "0"
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        if let Some(data) = event.payload.get_mut("Probed").and_then(|d| d.as_object_mut())
            && let Some(title) = data.remove("title")
        {
            data.insert("name".to_owned(), title);
        }
        event.event_version = "1".to_owned();
        event
    }
}

#[tokio::test]
async fn old_event_versions_are_upcast_on_read() {
    let pool = fresh_pool().await.expect("pool");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('probe', 'old', 1, 'Probed', '0', '{\"Probed\": {\"title\": \"x\"}}', '{}'),
                ('probe', 'old', 2, 'Probed', '1', '{\"Probed\": {\"name\": \"y\"}}', '{}')",
    )
    .execute(&pool)
    .await
    .expect("append");
    while stamp_batch(&pool).await.expect("stamp") != Stamp::Idle {}
    let log = EventLog::with_upcasters(pool, vec![Box::new(ProbedV0)]).await.expect("log");
    let events = log.read(0, 10, &FeedFilter::default()).await.expect("read");
    let seen: Vec<_> =
        events.iter().map(|e| (e.event_version.as_str(), e.data().clone())).collect();
    assert_eq!(seen, vec![("1", json!({"name": "x"})), ("1", json!({"name": "y"}))]);
}

/// `count` probe events after `after`, for the appender.
fn probes(id: &str, after: i64, count: u8) -> NewEvents {
    let events = (1..=i64::from(count))
        .map(|k| NewEvent {
            event_type: "Probed".to_owned(),
            event_version: "1".to_owned(),
            payload: json!({"Probed": {"n": after + k}}).to_string(),
        })
        .collect();
    NewEvents {
        aggregate_type: "probe",
        aggregate_id: id.to_owned(),
        after,
        events,
        metadata: "{}".to_owned(),
    }
}

/// Writers commit in random order and sizes while one reader follows the log
/// with its cursor; it must see every committed event exactly once, in dense,
/// strictly increasing positions. A writer marked `true` appends through the
/// appender (its batches of `n` events, each after a pause of the given
/// milliseconds); the others insert in transactions of their own, held open
/// that long per event, which the sequencer stamps.
async fn concurrent_writers_against_one_reader(writers: Vec<(bool, Vec<(u8, u8)>)>) {
    let pool = fresh_pool().await.expect("pool");
    let log = EventLog::open(pool.clone()).await.expect("log");
    let workers = log.spawn();
    let expected: usize = writers
        .iter()
        .map(|(_, txs)| txs.iter().map(|(n, _)| usize::from(*n)).sum::<usize>())
        .sum();

    let reader = {
        let log = Arc::clone(&log);
        tokio::spawn(async move {
            let mut cursor = 0;
            let mut seen = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while seen.len() < expected && tokio::time::Instant::now() < deadline {
                let batch = log.read(cursor, 7, &FeedFilter::default()).await.expect("read");
                if batch.is_empty() {
                    log.await_head_after(cursor, Duration::from_millis(50)).await;
                    continue;
                }
                for event in batch {
                    assert_eq!(event.position, cursor + 1, "positions are dense and increasing");
                    cursor = event.position;
                    seen.push((event.aggregate_id, event.sequence));
                }
            }
            seen
        })
    };

    let mut tasks = Vec::new();
    for (w, (appended, transactions)) in writers.into_iter().enumerate() {
        let pool = pool.clone();
        let log = Arc::clone(&log);
        tasks.push(tokio::spawn(async move {
            let id = format!("writer-{w}");
            let mut sequence = 0i64;
            for (count, hold_ms) in transactions {
                if appended {
                    tokio::time::sleep(Duration::from_millis(u64::from(hold_ms))).await;
                    let outcome = log.append(probes(&id, sequence, count)).await.expect("append");
                    assert!(matches!(outcome, Appended::At(_)), "{outcome:?}");
                    sequence += i64::from(count);
                    continue;
                }
                let mut tx = pool.begin().await.expect("begin");
                for _ in 0..count {
                    sequence += 1;
                    append(&mut *tx, &id, sequence).await;
                    // Hold the transaction open so commits interleave out of order.
                    tokio::time::sleep(Duration::from_millis(u64::from(hold_ms))).await;
                }
                tx.commit().await.expect("commit");
                log.wake_sequencer();
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let seen = reader.await.expect("reader");
    assert_eq!(seen.len(), expected, "the reader missed events");
    // Both givers of positions moved the head row past what they gave.
    let (row, highest): (i64, i64) =
        sqlx::query_as("SELECT position, (SELECT max(log_position) FROM events) FROM log_head")
            .fetch_one(&pool)
            .await
            .expect("head row");
    assert_eq!(row, highest, "the head row lags behind the log");
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), expected, "the reader saw an event twice");
    // Per aggregate, the log keeps the aggregate's own order.
    for (id, _) in &seen {
        let own: Vec<i64> = seen.iter().filter(|(i, _)| i == id).map(|(_, s)| *s).collect();
        assert!(own.windows(2).all(|w| w[0] < w[1]), "{id} out of order: {own:?}");
    }
    for worker in workers {
        worker.abort();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Writers append through the appender (positions given as they
    /// insert) or insert their own rows (stamped by the sequencer), at once.
    #[test]
    fn no_reader_skips_an_event_among_concurrent_writers(
        writers in prop::collection::vec(
            (any::<bool>(), prop::collection::vec((1u8..4, 0u8..15), 1..6)),
            2..9,
        )
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(concurrent_writers_against_one_reader(writers));
    }
}

/// ANALYZE skips the JSON documents: computing their statistics (every sampled
/// payload detoasted and compared) made autovacuum's ANALYZE of the log stall
/// commands under load, and no query plans on them (migration 0011).
#[tokio::test]
async fn analyze_keeps_no_statistics_of_json_documents() {
    let pool = fresh_pool().await.expect("pool");
    for sequence in 0..50 {
        append(&pool, &format!("doc-{}", sequence % 5), sequence).await;
    }
    sqlx::query("ANALYZE events").execute(&pool).await.expect("analyze");
    let analysed: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_stats
          WHERE schemaname = current_schema() AND tablename = 'events' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("pg_stats");
    assert!(analysed.contains(&"aggregate_id".to_owned()), "ANALYZE ran: {analysed:?}");
    assert!(
        !analysed.iter().any(|column| column == "payload" || column == "metadata"),
        "the documents were analysed: {analysed:?}"
    );
    // Every document column of every table, including tables added later.
    let with_statistics: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname || '.' || a.attname
           FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = current_schema() AND c.relkind = 'r'
            AND a.atttypid = 'jsonb'::regtype AND a.attnum > 0 AND NOT a.attisdropped
            AND coalesce(a.attstattarget, -1) <> 0
          ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("pg_attribute");
    assert_eq!(with_statistics, Vec::<String>::new(), "jsonb columns that ANALYZE would sample");
}

#[tokio::test]
async fn the_log_is_analysed_from_a_small_sample() {
    let pool = fresh_pool().await.expect("pool");
    insert_stamped(&pool, "probe", 0, 5_000).await.expect("events");
    sqlx::query("ANALYZE events").execute(&pool).await.expect("analyze");
    // Autovacuum's ANALYZE of the log competes with commands about once a
    // minute under load; a statistics target of 10 keeps its sample (and a
    // histogram) to a tenth of the default's.
    let buckets: Option<i32> = sqlx::query_scalar(
        "SELECT array_length(histogram_bounds::text::text[], 1) FROM pg_stats
          WHERE schemaname = current_schema() AND tablename = 'events'
            AND attname = 'log_position'",
    )
    .fetch_one(&pool)
    .await
    .expect("pg_stats");
    let buckets = buckets.expect("log_position has a histogram");
    assert!((2..=11).contains(&buckets), "{buckets} histogram bounds");
    // One column (or indexed expression) at the default target would bring
    // the large sample back: every one, including those added later.
    let sampled_widely: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname || '.' || a.attname
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          WHERE c.oid IN (SELECT 'events'::regclass
                          UNION SELECT indexrelid FROM pg_index
                                 WHERE indrelid = 'events'::regclass AND indexprs IS NOT NULL)
            AND a.attnum > 0 AND NOT a.attisdropped
            AND (c.relkind = 'r' OR pg_get_indexdef(c.oid, a.attnum, false) LIKE '(%')
            AND coalesce(a.attstattarget, -1) NOT IN (0, 10)
          ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("pg_attribute");
    assert_eq!(sampled_widely, Vec::<String>::new(), "columns ANALYZE samples 30,000 rows for");
}

#[tokio::test]
async fn appended_events_get_the_positions_after_the_head_at_once() {
    let pool = fresh_pool().await.expect("pool");
    insert_stamped(&pool, "company", 0, 3).await.expect("stamped");
    let log = EventLog::open(pool.clone()).await.expect("log");
    let mut head = log.subscribe();

    // No sequencer runs: the appender gives the positions itself.
    let first = log.append(probes("a", 0, 2)).await.expect("append");
    let second = log.append(probes("b", 0, 1)).await.expect("append");
    assert_eq!((first, second), (Appended::At(5), Appended::At(6)));
    assert_eq!(*head.borrow_and_update(), 6, "this process's head moved with the append");
    let logged: Vec<_> = all(&log).await.into_iter().skip(3).collect();
    assert_eq!(
        logged,
        vec![(4, "a".to_owned(), 1), (5, "a".to_owned(), 2), (6, "b".to_owned(), 1)]
    );
    let unstamped: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE log_position IS NULL")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(unstamped, 0);
}

#[tokio::test]
async fn commands_decided_on_the_same_version_are_told_which_lost() {
    let pool = fresh_pool().await.expect("pool");
    let log = EventLog::open(pool.clone()).await.expect("log");
    log.append(probes("contested", 0, 1)).await.expect("append");

    // Many at once, so that some share a batch and some do not.
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let log = Arc::clone(&log);
            tokio::spawn(async move { log.append(probes("contested", 1, 2)).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.expect("task").expect("append"));
    }
    let won: Vec<_> = outcomes.iter().filter(|o| matches!(o, Appended::At(_))).collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == Appended::Taken).count(), 11);
    let sequences: Vec<i64> = all(&log).await.into_iter().map(|(_, _, s)| s).collect();
    assert_eq!(sequences, vec![1, 2, 3], "the losers recorded nothing, and left no gap");
}

#[tokio::test]
async fn a_value_the_database_refuses_fails_its_own_command_only() {
    let pool = fresh_pool().await.expect("pool");
    let log = EventLog::open(pool.clone()).await.expect("log");
    let spawn_append = |events: NewEvents| {
        let log = Arc::clone(&log);
        tokio::spawn(async move { log.append(events).await })
    };

    // Hold the log's head row until the appending task waits for it with a
    // command; what comes meanwhile queues up for the next batch.
    let mut holder = pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM log_head FOR UPDATE").execute(&mut *holder).await.expect("lock");
    let mut appends = vec![spawn_append(probes("first", 0, 1))];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted")
                .fetch_one(&pool)
                .await
                .expect("locks");
        if waiting > 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the appender did not take it");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut bad = probes("bad", 0, 1);
    // A NUL character: JSON allows it, PostgreSQL's jsonb does not.
    bad.events[0].payload = r#"{"Probed": {"n": "\u0000"}}"#.to_owned();
    let refused = spawn_append(bad);
    for i in 0..6 {
        appends.push(spawn_append(probes(&format!("good-{i}"), 0, 1)));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    holder.rollback().await.expect("release");

    let refused = refused.await.expect("task");
    assert!(matches!(refused, Err(stagepact_store::StoreError::InvalidValue(_))), "{refused:?}");
    for append in appends {
        let outcome = append.await.expect("task");
        assert!(matches!(outcome, Ok(Appended::At(_))), "{outcome:?}");
    }
    let logged = all(&log).await;
    assert_eq!(logged.len(), 7);
    assert!(logged.iter().all(|(_, id, _)| id != "bad"));
    let positions: Vec<i64> = logged.iter().map(|(p, _, _)| *p).collect();
    assert_eq!(positions, (1..=7).collect::<Vec<_>>(), "dense, without the refused one");
}

#[tokio::test]
async fn an_aggregate_takes_no_event_while_one_written_elsewhere_waits_for_its_position() {
    let pool = fresh_pool().await.expect("pool");
    let log = EventLog::open(pool.clone()).await.expect("log");
    let workers = log.spawn();

    // An open transaction holds the sequencer back, so an event committed
    // after it (as by a process of an earlier version) stays unstamped.
    let mut slow = pool.begin().await.expect("begin");
    append(&mut *slow, "slow", 1).await;
    append(&pool, "elsewhere", 1).await;

    // The next event of that aggregate would overtake it in the log.
    let refused = log.append(probes("elsewhere", 1, 1)).await.expect("append");
    assert_eq!(refused, Appended::Taken);
    // Other aggregates go on.
    assert!(matches!(
        log.append(probes("unrelated", 0, 1)).await.expect("append"),
        Appended::At(1)
    ));

    slow.commit().await.expect("commit slow");
    log.wake_sequencer();
    assert!(log.await_head_after(2, Duration::from_secs(5)).await, "the log did not move on");
    let next = log.append(probes("elsewhere", 1, 1)).await.expect("append");
    assert_eq!(next, Appended::At(4));
    let elsewhere: Vec<_> =
        all(&log).await.into_iter().filter(|(_, id, _)| id == "elsewhere").collect();
    assert_eq!(elsewhere, vec![(3, "elsewhere".to_owned(), 1), (4, "elsewhere".to_owned(), 2)]);
    for worker in workers {
        worker.abort();
    }
}
