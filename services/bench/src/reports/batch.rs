//! Closed-loop clients sending prepared requests: client `c` of `clients`
//! sends requests `c`, `c + clients`, ... one after another, each as soon as
//! the last was answered (as pgbench's `-c`), on a runtime and HTTP client of
//! their own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

use crate::http_load::{Failure, client_runtime, send};
use crate::machine::{CpuSample, CpuUse};
use crate::setup::Env;
use crate::stats::Summary;

/// Error bodies kept for the report.
pub const FIRST_ERRORS: usize = 5;

/// One prepared `POST`.
#[derive(Debug, Clone)]
pub struct Request {
    /// The path after the base URL.
    pub path: String,
    /// The caller's bearer token.
    pub token: String,
    /// The JSON body (none: an empty body).
    pub body: Option<String>,
}

/// What the clients measured.
#[derive(Debug)]
pub struct BatchOutcome {
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests answered otherwise, or not at all.
    pub errors: u64,
    /// Errors by status or kind.
    pub error_kinds: BTreeMap<String, u64>,
    /// The first few failures, with their bodies.
    pub first_errors: Vec<Failure>,
    /// From the start until the last client finished.
    pub elapsed: Duration,
    /// Latency of the 2xx requests, send to full response.
    pub latency: Summary,
    /// CPU use during the run.
    pub cpu: CpuUse,
    /// Per request, in order: the string member `id_field` of its 2xx answer.
    pub ids: Vec<Option<String>>,
}

impl BatchOutcome {
    /// 2xx requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// What one client did.
#[derive(Debug, Default)]
struct ClientOutcome {
    latencies_ms: Vec<f64>,
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
    first_errors: Vec<Failure>,
    ids: Vec<(usize, String)>,
}

/// Sends every request of `requests` with `clients` clients; keeps the
/// member `id_field` of each 2xx answer.
pub async fn run(
    env: &Env,
    requests: Arc<Vec<Request>>,
    clients: usize,
    id_field: &'static str,
) -> anyhow::Result<BatchOutcome> {
    let (runtime, http) = client_runtime(clients + 4)?;
    let cpu_before = CpuSample::now();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (http, base, requests) = (http.clone(), env.base.clone(), Arc::clone(&requests));
        tasks.push(runtime.spawn(client_loop(http, base, requests, client, clients, id_field)));
    }
    let mut latencies = Vec::with_capacity(requests.len());
    let mut ids = vec![None; requests.len()];
    let mut errors = 0;
    let mut error_kinds = BTreeMap::new();
    let mut first_errors = Vec::new();
    for task in tasks {
        let outcome = task.await.context("a client failed")?;
        latencies.extend(outcome.latencies_ms);
        errors += outcome.errors;
        for (kind, n) in outcome.error_kinds {
            *error_kinds.entry(kind).or_insert(0) += n;
        }
        first_errors.extend(outcome.first_errors);
        for (index, id) in outcome.ids {
            ids[index] = Some(id);
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu_before.until(CpuSample::now());
    drop(runtime);
    first_errors.truncate(FIRST_ERRORS);
    Ok(BatchOutcome {
        ok: latencies.len() as u64,
        errors,
        error_kinds,
        first_errors,
        elapsed,
        latency: Summary::of(&latencies),
        cpu,
        ids,
    })
}

async fn client_loop(
    http: reqwest::Client,
    base: String,
    requests: Arc<Vec<Request>>,
    client: usize,
    clients: usize,
    id_field: &'static str,
) -> ClientOutcome {
    let mut outcome = ClientOutcome::default();
    for index in (client..requests.len()).step_by(clients) {
        let request = &requests[index];
        let mut builder = http.post(format!("{base}{}", request.path)).bearer_auth(&request.token);
        if let Some(body) = &request.body {
            builder = builder.header(CONTENT_TYPE, "application/json").body(body.clone());
        }
        let sent = Instant::now();
        let failure = match send(builder).await {
            Err(failure) => failure,
            Ok(bytes) => {
                let latency_ms = sent.elapsed().as_secs_f64() * 1000.0;
                let id = serde_json::from_slice::<Value>(bytes.as_ref())
                    .ok()
                    .and_then(|v| v[id_field].as_str().map(str::to_owned));
                match id {
                    Some(id) => {
                        outcome.latencies_ms.push(latency_ms);
                        outcome.ids.push((index, id));
                        continue;
                    }
                    // What follows needs the id: an answer without one is an error.
                    None => Failure {
                        status: format!("no {id_field}"),
                        body: String::from_utf8_lossy(bytes.as_ref()).into_owned(),
                    },
                }
            }
        };
        outcome.errors += 1;
        *outcome.error_kinds.entry(failure.status.clone()).or_insert(0) += 1;
        if outcome.first_errors.len() < FIRST_ERRORS {
            outcome.first_errors.push(failure);
        }
    }
    outcome
}
