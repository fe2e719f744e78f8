//! Readers: many callers at once sending the same `GET`, each request with a
//! random one of a set of tokens, for a fixed time after a warm-up.
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
use serde_json::Value;

use crate::http_load::client_runtime;
use crate::machine::{CpuSample, CpuUse};
use crate::setup::Env;
use crate::stats::Summary;

/// Requests before this much time has passed are not measured (connections
/// being opened, statements being prepared).
pub const WARM_UP: Duration = Duration::from_secs(2);
/// Every this many responses a reader checks the answer.
const CHECK_EVERY: u64 = 50;

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
    /// Checked answers that failed the check.
    pub failed_checks: u64,
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
    failed_checks: u64,
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

/// What the readers read.
#[derive(Debug, Clone)]
pub struct Reads {
    /// The path and query after the base URL (`/v1/me/overview`).
    pub path: String,
    /// Each request carries a random one of these tokens.
    pub tokens: Arc<Vec<String>>,
    /// Every [`CHECK_EVERY`]th answer of a reader (from its first) must pass this.
    pub check: fn(&Value) -> bool,
}

/// Runs `readers` readers for `seconds` (after a warm-up), each sending
/// `GET` requests for `reads.path`, each with a random one of its tokens.
pub async fn run(
    env: &Env,
    reads: Reads,
    readers: usize,
    pace: Pace,
    seconds: u64,
) -> anyhow::Result<ReadOutcome> {
    anyhow::ensure!(!reads.tokens.is_empty(), "no caller to read {} as", reads.path);
    let (runtime, http) = client_runtime(readers + 4)?;
    let start = Instant::now();
    let measure_from = start + WARM_UP;
    let deadline = measure_from + Duration::from_secs(seconds);
    let url = format!("{}{}", env.base, reads.path);
    let mut tasks = Vec::new();
    for reader in 0..readers {
        let (http, url, tokens) = (http.clone(), url.clone(), Arc::clone(&reads.tokens));
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
        let reader = Reader { http, url, tokens, check: reads.check, random: Xorshift(seed) };
        tasks.push(runtime.spawn(read(reader, schedule, window)));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before = CpuSample::now();
    let mut latencies = Vec::new();
    let mut outcome = ReaderOutcome::default();
    for task in tasks {
        let own = task.await.context("a reader failed")?;
        latencies.extend(own.latencies_ms);
        outcome.errors += own.errors;
        outcome.failed_checks += own.failed_checks;
        for (kind, n) in own.error_kinds {
            *outcome.error_kinds.entry(kind).or_insert(0) += n;
        }
        outcome.last_response = outcome.last_response.max(own.last_response);
    }
    let cpu = cpu_before.until(CpuSample::now());
    drop(runtime);
    let end = outcome.last_response.unwrap_or(deadline);
    Ok(ReadOutcome {
        readers,
        pace,
        requests: latencies.len() as u64,
        errors: outcome.errors,
        error_kinds: outcome.error_kinds,
        failed_checks: outcome.failed_checks,
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

/// One reader's client, target and random sequence.
struct Reader {
    http: reqwest::Client,
    url: String,
    tokens: Arc<Vec<String>>,
    check: fn(&Value) -> bool,
    random: Xorshift,
}

/// One reader, until the window's deadline: back to back without a
/// `schedule`, else at its first instant and every interval after.
async fn read(
    reader: Reader,
    schedule: Option<(Instant, Duration)>,
    window: Window,
) -> ReaderOutcome {
    let Reader { http, url, tokens, check, mut random } = reader;
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
                if answered % CHECK_EVERY == 1
                    && !serde_json::from_slice::<Value>(&bytes).is_ok_and(|v| check(&v))
                {
                    outcome.failed_checks += 1;
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
