//! The HTTP command load (suspend / reinstate by concurrent clients) and the
//! projection-lag probe that runs beside it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};
use stagepact_store::company_registry;

use crate::machine::{CpuSample, CpuUse, LOAD_THREAD_PREFIX};
use crate::setup::Env;
use crate::stats::Summary;

/// The id of load company `index` of client `client`.
pub fn company_id(client: usize, index: usize) -> String {
    format!("bench-c{client:03}-{index:03}")
}

/// The probe's own company.
const PROBE_COMPANY: &str = "bench-probe";
/// How often the probe issues a command.
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// How long the probe waits for the projection.
const PROBE_WAIT: Duration = Duration::from_secs(5);
/// How many registrations run at once.
const SETUP_CONCURRENCY: usize = 16;

/// Registers `clients * per_client` load companies and the probe company,
/// each with one recognition granted.
pub async fn register_companies(
    env: &Env,
    clients: usize,
    per_client: usize,
) -> anyhow::Result<usize> {
    let mut ids: Vec<String> =
        (0..clients).flat_map(|c| (0..per_client).map(move |i| company_id(c, i))).collect();
    ids.push(PROBE_COMPANY.to_owned());
    let count = ids.len();
    let valid_until = (chrono::Utc::now().date_naive() + chrono::Days::new(365)).to_string();
    for chunk in ids.chunks(SETUP_CONCURRENCY) {
        let mut tasks = Vec::new();
        for id in chunk {
            let (http, base, token, id) =
                (env.http.clone(), env.base.clone(), env.token.clone(), id.clone());
            let valid_until = valid_until.clone();
            tasks.push(tokio::spawn(async move {
                let registered = http
                    .post(format!("{base}/v1/companies"))
                    .bearer_auth(&token)
                    .json(&json!({
                        "company_id": id,
                        "name": format!("Benchmark company {id}"),
                        "sector": "Techniek",
                        "region": "Utrecht",
                        "location": {"lat": 52.09, "lon": 5.12},
                    }))
                    .send()
                    .await?;
                expect(registered, StatusCode::CREATED, "registerCompany").await?;
                let granted = http
                    .post(format!("{base}/v1/companies/{id}/recognitions"))
                    .bearer_auth(&token)
                    .json(&json!({"qualification": "25180", "valid_until": valid_until}))
                    .send()
                    .await?;
                expect(granted, StatusCode::ACCEPTED, "grantRecognition").await?;
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await.context("a registration task failed")??;
        }
    }
    Ok(count)
}

/// The JSON body of a response with status `status`, else an error with the body.
pub async fn expect(
    response: reqwest::Response,
    status: StatusCode,
    what: &str,
) -> anyhow::Result<Value> {
    let got = response.status();
    let text = response.text().await?;
    if got != status {
        bail!("{what}: expected {status}, got {got}: {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

/// A request of a timed phase that was not answered 2xx.
#[derive(Debug, Clone)]
pub struct Failure {
    /// `HTTP <status>`, or the transport or body error.
    pub status: String,
    /// The response body (empty when there was none).
    pub body: String,
}

/// Sends `request`: the body of a 2xx answer, else what went wrong.
pub async fn send(request: reqwest::RequestBuilder) -> Result<impl AsRef<[u8]>, Failure> {
    let failure = |status: String| Failure { status, body: String::new() };
    let response = request.send().await.map_err(|e| failure(format!("transport: {e}")))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| failure(format!("body: {e}")))?;
    if !status.is_success() {
        return Err(Failure {
            status: format!("HTTP {}", status.as_u16()),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    Ok(bytes)
}

/// What one load client did.
#[derive(Debug, Default)]
struct ClientOutcome {
    latencies_ms: Vec<f64>,
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
}

/// The outcome of the command load.
#[derive(Debug)]
pub struct LoadOutcome {
    /// Commands answered 202.
    pub commands: u64,
    /// Commands answered otherwise, or not at all.
    pub errors: u64,
    /// Errors by status or kind.
    pub error_kinds: BTreeMap<String, u64>,
    /// From the start until the last client finished.
    pub elapsed: Duration,
    /// Command latency (send to full response).
    pub latency: Summary,
    /// The probe's findings.
    pub probe: ProbeOutcome,
    /// CPU use during the load.
    pub cpu: CpuUse,
}

impl LoadOutcome {
    /// Accepted commands per second.
    pub fn rate(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64()
    }
}

/// A load generator's runtime. It is dropped inside the benchmark's own
/// runtime, where dropping a runtime the ordinary way panics (and an error
/// that returned early was lost in the panic), so it shuts down in the
/// background instead.
pub struct LoadRuntime(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for LoadRuntime {
    type Target = tokio::runtime::Runtime;

    fn deref(&self) -> &Self::Target {
        // Taken only by `drop`.
        self.0.as_ref().expect("a load runtime is there until dropped")
    }
}

impl Drop for LoadRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A runtime for a load generator, on its own threads (named
/// [`LOAD_THREAD_PREFIX`]) so that its CPU use can be told apart from the
/// server's, with an HTTP client whose connections it drives.
pub fn client_runtime(connections: usize) -> anyhow::Result<(LoadRuntime, reqwest::Client)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(LOAD_THREAD_PREFIX)
        .enable_all()
        .build()
        .context("building the load generator's runtime")?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the load generator's HTTP client")?;
    Ok((LoadRuntime(Some(runtime)), http))
}

/// Runs `clients` clients for `seconds`, each alternating suspend and reinstate
/// over its own `per_client` companies, with the probe beside them. The
/// clients run on their own runtime; the probe on the server's.
pub async fn run_load(
    env: &Env,
    clients: usize,
    per_client: usize,
    seconds: u64,
) -> anyhow::Result<LoadOutcome> {
    let (runtime, http) = client_runtime(clients + 4)?;
    let cpu_before = CpuSample::now();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let probe = tokio::spawn(probe(
        env.http.clone(),
        env.base.clone(),
        env.token.clone(),
        env.state.clone(),
        deadline,
    ));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let companies: Vec<String> = (0..per_client).map(|i| company_id(client, i)).collect();
        let (http, base, token) = (http.clone(), env.base.clone(), env.token.clone());
        tasks.push(runtime.spawn(load_client(http, base, token, companies, deadline)));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut error_kinds = BTreeMap::new();
    for task in tasks {
        let outcome = task.await.context("a load client failed")?;
        latencies.extend(outcome.latencies_ms);
        errors += outcome.errors;
        for (kind, n) in outcome.error_kinds {
            *error_kinds.entry(kind).or_insert(0) += n;
        }
    }
    let elapsed = start.elapsed();
    let probe = probe.await.context("the probe failed")?;
    let cpu = cpu_before.until(CpuSample::now());
    drop(runtime);
    Ok(LoadOutcome {
        commands: latencies.len() as u64,
        errors,
        error_kinds,
        elapsed,
        latency: Summary::of(&latencies),
        probe,
        cpu,
    })
}

/// The command that moves a company out of its current state.
fn next_command(suspended: bool) -> (&'static str, Value) {
    if suspended {
        ("reinstate", json!({"reason": "Onderzoek afgerond: benchmark"}))
    } else {
        ("suspend", json!({"reason": "Onderzoek gestart: benchmark"}))
    }
}

/// Sends one command; the response body on 202, else an error kind.
async fn command(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    company: &str,
    suspended: bool,
) -> Result<Value, String> {
    let (action, body) = next_command(suspended);
    let response = http
        .post(format!("{base}/v1/companies/{company}/{action}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| format!("body: {e}"))?;
    if status != StatusCode::ACCEPTED {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("invalid body: {e}"))
}

async fn load_client(
    http: reqwest::Client,
    base: String,
    token: String,
    companies: Vec<String>,
    deadline: Instant,
) -> ClientOutcome {
    let mut outcome = ClientOutcome::default();
    let mut suspended = vec![false; companies.len()];
    let mut turn = 0usize;
    while Instant::now() < deadline {
        let index = turn % companies.len();
        turn += 1;
        let sent = Instant::now();
        match command(&http, &base, &token, &companies[index], suspended[index]).await {
            Ok(_) => {
                outcome.latencies_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
                suspended[index] = !suspended[index];
            }
            Err(kind) => {
                outcome.errors += 1;
                *outcome.error_kinds.entry(kind).or_insert(0) += 1;
            }
        }
    }
    outcome
}

/// What the projection-lag probe measured.
#[derive(Debug, Default)]
pub struct ProbeOutcome {
    /// Projection visible, measured from the command's response.
    pub after_response: Summary,
    /// Projection visible, measured from before the command was sent.
    pub from_send: Summary,
    /// Probe commands answered 202.
    pub commands: u64,
    /// Probe commands not answered 202 (or without a position).
    pub errors: u64,
    /// Positions the projection did not reach within the wait.
    pub timeouts: u64,
}

async fn probe(
    http: reqwest::Client,
    base: String,
    token: String,
    state: stagepact_api::AppState,
    deadline: Instant,
) -> ProbeOutcome {
    let mut after_response = Vec::new();
    let mut from_send = Vec::new();
    let mut outcome = ProbeOutcome::default();
    let mut suspended = false;
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if Instant::now() >= deadline {
            break;
        }
        let t0 = Instant::now();
        let position = match command(&http, &base, &token, PROBE_COMPANY, suspended).await {
            Ok(body) => body.get("position").and_then(Value::as_i64),
            Err(_) => None,
        };
        let responded = Instant::now();
        let Some(position) = position else {
            outcome.errors += 1;
            continue;
        };
        suspended = !suspended;
        outcome.commands += 1;
        match state.projections.await_position(company_registry::NAME, position, PROBE_WAIT).await {
            Ok(true) => {
                let visible = Instant::now();
                after_response.push((visible - responded).as_secs_f64() * 1000.0);
                from_send.push((visible - t0).as_secs_f64() * 1000.0);
            }
            Ok(false) | Err(_) => outcome.timeouts += 1,
        }
    }
    outcome.after_response = Summary::of(&after_response);
    outcome.from_send = Summary::of(&from_send);
    outcome
}
