//! The read phase: many students at once asking for their overview
//! (`GET /v1/me/overview`), each reader picking a random student with a
//! placement for every request (the readers are `crate::reads`'); every 50th
//! answer of a reader must list a placement.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Options;
use crate::dbstats::{self, DbCounters, PerUnit, StatementStat};
use crate::reads::{Pace, ReadOutcome, Reads};
use crate::setup::Env;
use crate::stats::round;

/// Target: p99 of `getMyOverview`, in milliseconds.
pub const TARGET_OVERVIEW_P99_MS: f64 = 20.0;
/// The paced read phase's rate, as a share of the back-to-back throughput.
pub const PACED_SHARE: f64 = 0.5;

/// A measured read phase and what the database did meanwhile.
pub struct ReadPhase {
    pub outcome: ReadOutcome,
    db: PerUnit,
    statements: Vec<StatementStat>,
    seconds: u64,
    /// Overviews the server kept at the end (see `stagepact_api::overviews`),
    /// and their bytes.
    kept: (usize, u64),
}

/// Runs one read phase with its database counters (and statements).
pub async fn read_phase(
    env: &Env,
    options: &Options,
    tokens: Arc<Vec<String>>,
    pace: Pace,
) -> anyhow::Result<ReadPhase> {
    match pace {
        Pace::BackToBack => {
            eprintln!("overview: {} readers back to back ...", options.readers)
        }
        Pace::Rate(rate) => {
            eprintln!("overview: {} readers at {rate:.0} requests/s in all ...", options.readers)
        }
    }
    let before = DbCounters::read(&env.pool).await?;
    if options.statement_stats {
        dbstats::reset_statements(&env.pool).await?;
    }
    let reads = Reads { path: "/v1/me/overview".to_owned(), tokens, check: lists_a_placement };
    let outcome =
        crate::reads::run(env, reads, options.readers, pace, options.read_seconds).await?;
    let db = before.per_unit(DbCounters::read(&env.pool).await?, outcome.requests);
    let statements = super::statements(env, options).await?;
    let kept = env.state.overviews.size();
    Ok(ReadPhase { outcome, db, statements, seconds: options.read_seconds, kept })
}

impl ReadPhase {
    fn met(&self) -> bool {
        self.outcome.latency.count > 0 && self.outcome.latency.p99 < TARGET_OVERVIEW_P99_MS
    }

    /// Readers ÷ throughput, in ms: the mean latency Little's law predicts.
    fn little_ms(&self) -> f64 {
        self.outcome.readers as f64 / self.outcome.rate() * 1000.0
    }

    fn pace(&self) -> String {
        match self.outcome.pace {
            Pace::BackToBack => "back to back".to_owned(),
            Pace::Rate(rate) => format!(
                "paced at {rate:.0} requests/s in all ({PACED_SHARE} × the back-to-back throughput)"
            ),
        }
    }

    pub fn lines(&self, students: usize, projected: i64) -> Vec<String> {
        let reads = &self.outcome;
        let mut lines = vec![
            String::new(),
            format!(
                "-- student overview (GET /v1/me/overview), {} readers {}, {} s after a 2 s warm-up, over {students} students with a completed placement (read model: {projected} completed) --",
                reads.readers,
                self.pace(),
                self.seconds
            ),
            format!(
                "  {} requests in {:.2} s = {:.1} requests/s; errors: {}{}; checked overviews without a placement: {}",
                reads.requests,
                reads.elapsed.as_secs_f64(),
                reads.rate(),
                reads.errors,
                if reads.error_kinds.is_empty() {
                    String::new()
                } else {
                    format!(" {:?}", reads.error_kinds)
                },
                reads.failed_checks
            ),
            format!(
                "  latency: {}; target p99 < {TARGET_OVERVIEW_P99_MS} ms: {}",
                reads.latency.line(),
                if self.met() { "met" } else { "MISSED" }
            ),
            match reads.pace {
                Pace::BackToBack => format!(
                    "  mean latency {:.2} ms; readers ÷ throughput = {:.2} ms (Little's law: with every reader always waiting, the wait for a turn is the latency)",
                    reads.latency.mean,
                    self.little_ms()
                ),
                Pace::Rate(_) => format!("  mean latency {:.2} ms", reads.latency.mean),
            },
            format!("  {}", reads.cpu.line(reads.requests, "request")),
            format!("  PostgreSQL work per request: {}", self.db.line()),
            format!(
                "  overviews the server keeps: {} ({:.1} MiB of at most {} MiB)",
                self.kept.0,
                self.kept.1 as f64 / 1_048_576.0,
                stagepact_api::overviews::OVERVIEW_CACHE_BYTES / 1_048_576
            ),
        ];
        if !self.statements.is_empty() {
            lines.push("  top statements (pg_stat_statements; per unit = per request):".into());
            lines.extend(dbstats::statements_lines(&self.statements, reads.requests));
        }
        lines
    }

    pub fn to_json(&self) -> Value {
        let reads = &self.outcome;
        json!({
            "readers": reads.readers,
            "offered_requests_per_s": match reads.pace {
                Pace::BackToBack => Value::Null,
                Pace::Rate(rate) => json!(rate),
            },
            "requests": reads.requests,
            "errors": reads.errors,
            "error_kinds": reads.error_kinds,
            "checked_without_placement": reads.failed_checks,
            "elapsed_s": round(reads.elapsed.as_secs_f64()),
            "requests_per_s": round(reads.rate()),
            "latency": reads.latency.to_json(),
            "readers_over_throughput_ms": match reads.pace {
                Pace::BackToBack => json!(round(self.little_ms())),
                Pace::Rate(_) => Value::Null,
            },
            "met": self.met(),
            "overviews_kept": self.kept.0,
            "overviews_kept_bytes": self.kept.1,
            "cpu": reads.cpu.to_json(reads.requests),
            "postgresql_per_request": self.db.to_json(),
            "top_statements": dbstats::statements_json(&self.statements, reads.requests),
        })
    }
}

/// Whether an overview lists a placement.
fn lists_a_placement(overview: &Value) -> bool {
    overview["placements"].as_array().is_some_and(|p| !p.is_empty())
}
