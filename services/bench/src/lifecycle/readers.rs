//! The read phase: many students at once asking for their overview
//! (`GET /v1/me/overview`), each reader picking a random student with a
//! placement for every request.
//!
//! Readers either read back to back (each request sent as soon as the last
//! is answered: the most the machine serves, where latency is mostly the
//! wait for a turn) or paced (all readers together at a fixed rate, each on
//! its own schedule; latency counts from the scheduled send time, so a late
//! request is not hidden by the one before it).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use super::Options;
use crate::dbstats::{self, DbCounters, PerUnit, StatementStat};
use crate::http_load::client_runtime;
use crate::machine::{CpuSample, CpuUse};
use crate::setup::Env;
use crate::stats::Summary;
use crate::stats::round;

/// Requests before this much time has passed are not measured (connections
/// being opened, statements being prepared).
const WARM_UP: Duration = Duration::from_secs(2);
/// Every this many responses a reader checks the overview lists a placement.
const CHECK_EVERY: u64 = 50;

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
    let outcome = run(env, tokens, options.readers, pace, options.read_seconds).await?;
    let db = before.per_unit(DbCounters::read(&env.pool).await?, outcome.requests);
    let statements = super::statements(env, options).await?;
    Ok(ReadPhase { outcome, db, statements, seconds: options.read_seconds })
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
                reads.empty
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
            "checked_without_placement": reads.empty,
            "elapsed_s": round(reads.elapsed.as_secs_f64()),
            "requests_per_s": round(reads.rate()),
            "latency": reads.latency.to_json(),
            "readers_over_throughput_ms": match reads.pace {
                Pace::BackToBack => json!(round(self.little_ms())),
                Pace::Rate(_) => Value::Null,
            },
            "met": self.met(),
            "cpu": reads.cpu.to_json(reads.requests),
            "postgresql_per_request": self.db.to_json(),
            "top_statements": dbstats::statements_json(&self.statements, reads.requests),
        })
    }
}

/// How readers send their requests.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Each reader sends its next request as soon as the last is answered.
    BackToBack,
    /// All readers together send this many requests per second.
    Rate(f64),
}

/// What the readers measured.
#[derive(Debug)]
pub struct ReadOutcome {
    /// Concurrent readers.
    pub readers: usize,
    /// How they sent.
    pub pace: Pace,
    /// Measured requests answered 200.
    pub requests: u64,
    /// Measured requests answered otherwise, or not at all.
    pub errors: u64,
    /// Errors by status or kind.
    pub error_kinds: BTreeMap<String, u64>,
    /// Checked overviews that listed no placement.
    pub empty: u64,
    /// The measured window: from the end of the warm-up to the last response.
    pub elapsed: Duration,
    /// Latency from send to full response.
    pub latency: Summary,
    /// CPU use in the measured window.
    pub cpu: CpuUse,
}

impl ReadOutcome {
    /// Requests answered 200 per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// What one reader did in the measured window.
#[derive(Debug, Default)]
struct ReaderOutcome {
    latencies_ms: Vec<f64>,
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
    empty: u64,
    last_response: Option<Instant>,
}

/// A small, fast pseudo-random sequence (xorshift64*): which student reads next.
struct Xorshift(u64);

impl Xorshift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// Runs `readers` readers for `seconds` (after a warm-up), each asking for
/// the overview of a random one of the students whose tokens are `tokens`.
pub async fn run(
    env: &Env,
    tokens: Arc<Vec<String>>,
    readers: usize,
    pace: Pace,
    seconds: u64,
) -> anyhow::Result<ReadOutcome> {
    anyhow::ensure!(!tokens.is_empty(), "no student has a placement to read");
    let (runtime, http) = client_runtime(readers + 4)?;
    let start = Instant::now();
    let measure_from = start + WARM_UP;
    let deadline = measure_from + Duration::from_secs(seconds);
    let url = format!("{}/v1/me/overview", env.base);
    let mut tasks = Vec::new();
    for reader in 0..readers {
        let (http, url, tokens) = (http.clone(), url.clone(), Arc::clone(&tokens));
        let seed = 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(reader as u64 + 1);
        // Paced readers share the rate and start staggered over one interval.
        let schedule = match pace {
            Pace::BackToBack => None,
            Pace::Rate(rate) => {
                let every = Duration::from_secs_f64(readers as f64 / rate);
                Some((start + every.mul_f64(reader as f64 / readers as f64), every))
            }
        };
        let window = Window { measure_from, deadline };
        tasks.push(runtime.spawn(read(http, url, tokens, Xorshift(seed), schedule, window)));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before = CpuSample::now();
    let mut latencies = Vec::new();
    let mut outcome = ReaderOutcome::default();
    for task in tasks {
        let own = task.await.context("a reader failed")?;
        latencies.extend(own.latencies_ms);
        outcome.errors += own.errors;
        outcome.empty += own.empty;
        for (kind, n) in own.error_kinds {
            *outcome.error_kinds.entry(kind).or_insert(0) += n;
        }
        outcome.last_response = outcome.last_response.max(own.last_response);
    }
    let cpu = cpu_before.until(CpuSample::now());
    runtime.shutdown_background();
    let end = outcome.last_response.unwrap_or(deadline);
    Ok(ReadOutcome {
        readers,
        pace,
        requests: latencies.len() as u64,
        errors: outcome.errors,
        error_kinds: outcome.error_kinds,
        empty: outcome.empty,
        elapsed: end.saturating_duration_since(measure_from),
        latency: Summary::of(&latencies),
        cpu,
    })
}

/// When a reader's requests count.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// Requests sent (or scheduled) from here on are measured.
    measure_from: Instant,
    /// No request is sent from here on.
    deadline: Instant,
}

/// One reader, until the window's deadline: back to back without a
/// `schedule`, else at its first instant and every interval after.
async fn read(
    http: reqwest::Client,
    url: String,
    tokens: Arc<Vec<String>>,
    mut random: Xorshift,
    schedule: Option<(Instant, Duration)>,
    window: Window,
) -> ReaderOutcome {
    let Window { measure_from, deadline } = window;
    let mut outcome = ReaderOutcome::default();
    let mut answered = 0u64;
    let mut schedule = schedule;
    loop {
        let sent = match &mut schedule {
            Some((at, every)) => {
                let scheduled = *at;
                *at += *every;
                tokio::time::sleep_until(scheduled.into()).await;
                scheduled
            }
            None => Instant::now(),
        };
        if sent >= deadline {
            break;
        }
        let token = &tokens[random.below(tokens.len())];
        let result = match http.get(&url).bearer_auth(token).send().await {
            Err(error) => Err(format!("transport: {error}")),
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Err(error) => Err(format!("body: {error}")),
                    Ok(_) if status != reqwest::StatusCode::OK => {
                        Err(format!("HTTP {}", status.as_u16()))
                    }
                    Ok(bytes) => Ok(bytes),
                }
            }
        };
        let done = Instant::now();
        if sent < measure_from {
            continue;
        }
        outcome.last_response = Some(done);
        match result {
            Ok(bytes) => {
                outcome.latencies_ms.push((done - sent).as_secs_f64() * 1000.0);
                answered += 1;
                if answered % CHECK_EVERY == 1 {
                    let listed = serde_json::from_slice::<Value>(&bytes)
                        .ok()
                        .and_then(|v| v["placements"].as_array().map(Vec::len))
                        .unwrap_or(0);
                    if listed == 0 {
                        outcome.empty += 1;
                    }
                }
            }
            Err(kind) => {
                outcome.errors += 1;
                *outcome.error_kinds.entry(kind).or_insert(0) += 1;
            }
        }
    }
    outcome
}
