//! Projectors skip the rounds that would only move their checkpoint past other
//! aggregates' events, and readers that wait for a position do not wait for
//! those rounds: a read model reflects the log up to a position as soon as
//! none of its own events lie between its checkpoint and that position.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use stagepact_store::testing::fresh_pool;
use stagepact_store::{EventLog, LoggedEvent, Projection, Projections, Quiet, StoreError};

const NAME: &str = "watched_probe";

/// A projection of the `watched` aggregate type that counts its rounds.
#[derive(Default)]
struct Watched {
    rounds: AtomicUsize,
    events: AtomicUsize,
}

#[async_trait]
impl Projection for Watched {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["watched"]
    }

    async fn apply(&self, _: &mut PgConnection, events: &[LoggedEvent]) -> Result<(), StoreError> {
        self.rounds.fetch_add(1, Ordering::SeqCst);
        self.events.fetch_add(events.len(), Ordering::SeqCst);
        Ok(())
    }

    async fn reset(&self, _: &mut PgConnection) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Appends one event of `aggregate_type` and returns its position once stamped.
async fn append(log: &EventLog, pool: &PgPool, aggregate_type: &str, id: &str) -> i64 {
    let mut head = log.subscribe();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ($1, $2, 1, 'Probed', '1', $3, '{}')",
    )
    .bind(aggregate_type)
    .bind(id)
    .bind(json!({"Probed": {}}))
    .execute(pool)
    .await
    .expect("append");
    log.wake_sequencer();
    loop {
        if let Some(position) = log.position_of(aggregate_type, id, 1).await.expect("lookup") {
            return position;
        }
        tokio::time::timeout(Duration::from_secs(5), head.changed())
            .await
            .expect("stamped in time")
            .expect("log open");
    }
}

async fn stored_checkpoint(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1")
        .bind(NAME)
        .fetch_optional(pool)
        .await
        .expect("checkpoint")
        .unwrap_or(0)
}

#[tokio::test]
async fn a_reader_waits_for_the_projection_s_own_events_only() {
    let pool = fresh_pool().await.expect("pool");
    let log = EventLog::open(pool.clone()).await.expect("log");
    let sequencer = log.spawn();
    // No worker runs: whatever the reader sees comes from the stored state.
    let projections = Projections::new(Arc::clone(&log), vec![Arc::new(Watched::default())]);
    projections.catch_up(NAME).await.expect("checkpoint created");
    let short = Duration::from_millis(200);

    let other = append(&log, &pool, "other", "o-1").await;
    assert_eq!(stored_checkpoint(&pool).await, 0);
    assert!(
        projections.await_position(NAME, other, short).await.expect("wait"),
        "none of its events lies before {other}: nothing to wait for"
    );

    let watched = append(&log, &pool, "watched", "w-1").await;
    let later_other = append(&log, &pool, "other", "o-2").await;
    for position in [watched, later_other] {
        assert!(
            !projections.await_position(NAME, position, short).await.expect("wait"),
            "its event at {watched} is not applied: the read model does not reflect {position}"
        );
    }

    projections.catch_up(NAME).await.expect("caught up");
    assert!(projections.await_position(NAME, later_other, short).await.expect("wait"));
    // Beyond the head an event of its own may still come: no answer yet.
    assert!(!projections.await_position(NAME, later_other + 1, short).await.expect("wait"));
    sequencer.iter().for_each(|task| task.abort());
}

#[tokio::test]
async fn a_projector_sleeps_through_other_aggregates_events_and_catches_up_when_the_log_pauses() {
    let pool = fresh_pool().await.expect("pool");
    let log = EventLog::open(pool.clone()).await.expect("log");
    let sequencer = log.spawn();
    let probe = Arc::new(Watched::default());
    // No periodic round within the test, and a pause long enough that a slow
    // machine does not make one between two appends: what moves the
    // checkpoint below is the pause, and the projection's own event.
    let quiet = Quiet { round: Duration::from_secs(60), pause: Duration::from_millis(300) };
    let projections = Projections::with_quiet(
        Arc::clone(&log),
        vec![Arc::clone(&probe) as Arc<dyn Projection>],
        quiet,
    );
    projections.catch_up(NAME).await.expect("checkpoint created");
    let workers = projections.spawn();

    let watched = append(&log, &pool, "watched", "w-1").await;
    assert!(projections.await_position(NAME, watched, Duration::from_secs(5)).await.expect("wait"));
    let rounds_before = probe.rounds.load(Ordering::SeqCst);

    // Twenty stamps in a row, none of them the projection's: a round for each
    // would only move the checkpoint.
    let mut last = watched;
    for n in 0..20 {
        last = append(&log, &pool, "other", &format!("o-{n}")).await;
    }
    let rounds_during = probe.rounds.load(Ordering::SeqCst) - rounds_before;
    assert!(rounds_during <= 2, "{rounds_during} rounds for 20 stamps of other aggregates' events");

    // Once the log pauses, the checkpoint follows the head.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stored_checkpoint(&pool).await < last {
        assert!(tokio::time::Instant::now() < deadline, "the checkpoint stayed behind the head");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Its own event wakes it, however recently it ran.
    let watched = append(&log, &pool, "watched", "w-2").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stored_checkpoint(&pool).await < watched {
        assert!(tokio::time::Instant::now() < deadline, "its own event waited for a quiet round");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    workers.iter().chain(&sequencer).for_each(|task| task.abort());
}

#[tokio::test]
async fn a_rebuild_reads_a_long_log_window_by_window() {
    let pool = fresh_pool().await.expect("pool");
    let log = EventLog::open(pool.clone()).await.expect("log");
    // 250,000 events of another type, with two of its own among them: a
    // projection of a rare type. Stamped here, so no sequencer runs.
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
                             event_version, payload, metadata, log_position)
         SELECT CASE WHEN n IN (7, 249999) THEN 'watched' ELSE 'other' END,
                'a' || n, 1, 'Probed', '1', '{}', '{}', n
           FROM generate_series(1, 250000) AS n",
    )
    .execute(&pool)
    .await
    .expect("events");
    let probe = Arc::new(Watched::default());
    let projections = Projections::new(Arc::clone(&log), vec![probe.clone()]);

    let reached = projections.rebuild(NAME).await.expect("rebuilt");
    assert_eq!(reached, 250_000, "the rebuild stopped short of the head");
    assert_eq!(stored_checkpoint(&pool).await, 250_000);
    assert_eq!(probe.events.load(Ordering::SeqCst), 2, "each of its events exactly once");
    // One statement per window of positions, not one over the whole log.
    assert!(
        probe.rounds.load(Ordering::SeqCst) >= 3,
        "{} rounds",
        probe.rounds.load(Ordering::SeqCst)
    );
}
