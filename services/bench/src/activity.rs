//! What PostgreSQL's sessions were doing, sampled ten times a second during
//! the soak (an active-session history): beside a stall, which statements
//! were running and what they waited for, and who held a snapshot for more
//! than a second. A stall made of many short statements, none slow enough
//! for the statement log, shows here.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How often the sessions are sampled.
const EVERY: Duration = Duration::from_millis(100);
/// How much of a statement names it.
const STATEMENT_CHARS: i32 = 70;

/// One second: how many samples saw a session in each state, by
/// "wait or CPU · who · statement"; and how many samples were taken.
#[derive(Debug, Clone, Default)]
pub struct Second {
    pub seen: HashMap<String, u32>,
    pub samples: u32,
}

/// Samples every [`EVERY`] until `stop`, on a connection of its own; entry
/// `k` covers second `k` of the schedule. Sampling errors are counted, not
/// fatal: the history is a diagnostic.
pub async fn sample(url: String, start: Instant, stop: Arc<AtomicBool>) -> (Vec<Second>, u64) {
    use sqlx::Connection;
    let mut seconds: Vec<Second> = Vec::new();
    let mut errors = 0u64;
    let mut connection = match sqlx::PgConnection::connect(&url).await {
        Ok(connection) => connection,
        Err(error) => {
            tracing::warn!(%error, "the session sampler could not connect");
            return (seconds, 1);
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let rows: Result<Vec<String>, _> = sqlx::query_scalar(
            "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') || ' · '
                    || CASE WHEN backend_type = 'autovacuum worker' THEN 'autovacuum'
                            WHEN application_name = $1 THEN 'background'
                            ELSE 'request' END
                    || ' · ' || coalesce(state, '?') || ': '
                    || left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), $2)
               FROM pg_stat_activity
              WHERE pid <> pg_backend_pid() AND state IS DISTINCT FROM 'idle'
                AND backend_type IN ('client backend', 'autovacuum worker')
             UNION ALL
             -- A snapshot held for long keeps every row version since it was
             -- taken: hot rows (checkpoints, read models) grow chains that
             -- each read walks, until it ends.
             SELECT 'snapshot held over 1 s · '
                    || coalesce(backend_type, '?') || ' · ' || coalesce(state, '?') || ': '
                    || left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), $2)
               FROM pg_stat_activity
              WHERE pid <> pg_backend_pid() AND backend_xmin IS NOT NULL
                AND clock_timestamp() - coalesce(xact_start, query_start) > interval '1 second'",
        )
        .bind(stagepact_store::log::BACKGROUND_APPLICATION)
        .bind(STATEMENT_CHARS)
        .fetch_all(&mut connection)
        .await;
        let index = start.elapsed().as_secs() as usize;
        if seconds.len() <= index {
            seconds.resize_with(index + 1, Second::default);
        }
        match rows {
            Ok(rows) => {
                let second = &mut seconds[index];
                second.samples += 1;
                for row in rows {
                    *second.seen.entry(row).or_default() += 1;
                }
            }
            Err(_) => errors += 1,
        }
        tokio::time::sleep(EVERY).await;
    }
    (seconds, errors)
}

/// The `top` most seen states over `seconds`, each with the mean number of
/// sessions in it.
pub fn busiest(seconds: &[Second], top: usize) -> Vec<(String, f64)> {
    let samples: u32 = seconds.iter().map(|s| s.samples).sum();
    let mut seen: HashMap<&str, u32> = HashMap::new();
    for second in seconds {
        for (what, count) in &second.seen {
            *seen.entry(what.as_str()).or_default() += count;
        }
    }
    let mut ranked: Vec<(String, f64)> = seen
        .into_iter()
        .map(|(what, count)| (what.to_owned(), f64::from(count) / f64::from(samples.max(1))))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(top);
    ranked
}

/// [`busiest`] as JSON.
pub fn to_json(ranked: &[(String, f64)]) -> Value {
    ranked
        .iter()
        .map(|(what, sessions)| json!({"sessions": crate::stats::round(*sessions), "what": what}))
        .collect()
}
