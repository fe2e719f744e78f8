//! A projector killed between its read-model update and its checkpoint
//! (fault injection through a projection that stops there): after a restart
//! no event is applied twice and none is lost, because the update and the
//! checkpoint commit together or not at all.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgConnection;
use stagepact_domain::company::{Company, CompanyCommand, CompanyRegistered};
use stagepact_domain::values::{CompanyId, CompanyName, Region, Sector};
use stagepact_store::testing::fresh_pool;
use stagepact_store::{CommandBus, EventLog, LoggedEvent, Projection, Projections, StoreError};
use tokio::sync::Notify;

const NAME: &str = "fault_probe";

/// Counts, per log position, how often the event was applied. With `stop`
/// set it parks for good after its first update, before the projector can
/// move the checkpoint: where a crash would hit.
struct Probe {
    stop: AtomicBool,
    updated: Arc<Notify>,
}

#[async_trait]
impl Projection for Probe {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["company"]
    }

    async fn apply(&self, tx: &mut PgConnection, events: &[LoggedEvent]) -> Result<(), StoreError> {
        let positions: Vec<i64> = events.iter().map(|e| e.position).collect();
        sqlx::query(
            "INSERT INTO fault_probe (position, applied) SELECT p, 1 FROM unnest($1::int8[]) p
             ON CONFLICT (position) DO UPDATE SET applied = fault_probe.applied + 1",
        )
        .bind(&positions)
        .execute(&mut *tx)
        .await?;
        if self.stop.swap(false, Ordering::SeqCst) {
            self.updated.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn reset(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        sqlx::query("TRUNCATE fault_probe").execute(tx).await?;
        Ok(())
    }
}

fn registration(n: u32) -> CompanyCommand {
    CompanyCommand::RegisterCompany(CompanyRegistered {
        company_id: CompanyId::parse(&format!("fault-{n}")).expect("valid"),
        name: CompanyName::parse("Leerbedrijf").expect("valid"),
        sector: Sector::parse("Techniek").expect("valid"),
        region: Region::parse("Utrecht").expect("valid"),
        location: None,
    })
}

/// A fresh database with the probe's table and `companies` registrations in
/// the log, stamped; the log and its sequencer.
async fn with_registrations(
    companies: u32,
) -> (sqlx::PgPool, Arc<EventLog>, Vec<tokio::task::JoinHandle<()>>) {
    let pool = fresh_pool().await.expect("pool");
    sqlx::query("CREATE TABLE fault_probe (position bigint PRIMARY KEY, applied int NOT NULL)")
        .execute(&pool)
        .await
        .expect("probe table");
    let log = EventLog::open(pool.clone()).await.expect("log");
    let sequencer = log.spawn();
    let bus = CommandBus::new(Arc::clone(&log));
    for n in 0..companies {
        let id = format!("fault-{n}");
        let committed = bus
            .execute::<Company>(&id, registration(n), None, HashMap::new())
            .await
            .expect("register");
        assert!(committed.position.is_some());
    }
    (pool, log, sequencer)
}

#[tokio::test]
async fn a_projector_killed_between_update_and_checkpoint_applies_each_event_once() {
    let (pool, log, sequencer) = with_registrations(5).await;

    // The worker applies the events, then is killed before its checkpoint.
    let updated = Arc::new(Notify::new());
    let probe = Probe { stop: AtomicBool::new(true), updated: Arc::clone(&updated) };
    let first = Projections::new(Arc::clone(&log), vec![Arc::new(probe)]);
    let workers = first.spawn();
    tokio::time::timeout(Duration::from_secs(10), updated.notified())
        .await
        .expect("the probe reached its update");
    for worker in &workers {
        worker.abort();
    }
    drop(first);

    // A new process: the same projection, nothing in the way.
    let probe = Probe { stop: AtomicBool::new(false), updated: Arc::new(Notify::new()) };
    let second = Projections::new(Arc::clone(&log), vec![Arc::new(probe)]);
    let reached = tokio::time::timeout(Duration::from_secs(10), second.catch_up(NAME))
        .await
        .expect("caught up in time")
        .expect("caught up");
    assert!(reached >= 5);

    let applied: Vec<(i64, i32)> =
        sqlx::query_as("SELECT position, applied FROM fault_probe ORDER BY position")
            .fetch_all(&pool)
            .await
            .expect("probe rows");
    let events: Vec<i64> = sqlx::query_scalar(
        "SELECT log_position FROM events WHERE aggregate_type = 'company' ORDER BY log_position",
    )
    .fetch_all(&pool)
    .await
    .expect("events");
    assert_eq!(applied.iter().map(|(p, _)| *p).collect::<Vec<_>>(), events, "none lost");
    assert!(applied.iter().all(|(_, n)| *n == 1), "none applied twice: {applied:?}");
    sequencer.iter().for_each(|w| w.abort());
}

/// One worker per projection: while another holds the projection (its
/// checkpoint row locked, here by the test itself), a worker applies nothing
/// and stands by; it carries on once the holder is gone.
#[tokio::test]
async fn a_worker_stands_by_while_another_holds_the_projection() {
    let (pool, log, sequencer) = with_registrations(3).await;
    sqlx::query("INSERT INTO projection_checkpoints (name) VALUES ($1)")
        .bind(NAME)
        .execute(&pool)
        .await
        .expect("checkpoint");

    // Holds the projection as a worker would: from a background session.
    let mut holder = log.background().begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM projection_checkpoints WHERE name = $1 FOR UPDATE")
        .bind(NAME)
        .execute(&mut *holder)
        .await
        .expect("hold the projection");
    let probe = Probe { stop: AtomicBool::new(false), updated: Arc::new(Notify::new()) };
    let projections = Projections::new(Arc::clone(&log), vec![Arc::new(probe)]);
    let catching_up = tokio::spawn(async move { projections.catch_up(NAME).await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM fault_probe")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(applied, 0, "nothing applied while another worker holds the projection");
    assert!(!catching_up.is_finished(), "standing by");

    holder.rollback().await.expect("release");
    let reached = tokio::time::timeout(Duration::from_secs(10), catching_up)
        .await
        .expect("caught up in time")
        .expect("join")
        .expect("caught up");
    assert!(reached >= 3);
    let applied: Vec<i32> = sqlx::query_scalar("SELECT applied FROM fault_probe")
        .fetch_all(&pool)
        .await
        .expect("probe rows");
    assert_eq!(applied, vec![1, 1, 1], "each event applied once");
    sequencer.iter().for_each(|w| w.abort());
}
