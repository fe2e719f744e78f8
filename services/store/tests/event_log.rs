//! The global event log against real PostgreSQL: readers never skip an event a
//! slower transaction commits later, positions are dense and strictly increasing,
//! old event versions are upcast on read.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use proptest::prelude::*;
use serde_json::json;
use stagepact_store::log::{Stamp, stamp_batch};
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

/// Writers commit in random order and sizes while one reader follows the log
/// with its cursor; it must see every committed event exactly once, in dense,
/// strictly increasing positions.
async fn concurrent_writers_against_one_reader(writers: Vec<Vec<(u8, u8)>>) {
    let pool = fresh_pool().await.expect("pool");
    let log = EventLog::open(pool.clone()).await.expect("log");
    let workers = log.spawn();
    let expected: usize =
        writers.iter().map(|txs| txs.iter().map(|(n, _)| usize::from(*n)).sum::<usize>()).sum();

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
    for (w, transactions) in writers.into_iter().enumerate() {
        let pool = pool.clone();
        let log = Arc::clone(&log);
        tasks.push(tokio::spawn(async move {
            let id = format!("writer-{w}");
            let mut sequence = 0i64;
            for (count, hold_ms) in transactions {
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

    #[test]
    fn no_reader_skips_an_event_among_concurrent_writers(
        writers in prop::collection::vec(prop::collection::vec((1u8..4, 0u8..15), 1..6), 2..9)
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
