//! The timed part: concurrent clients each walk their own placements through
//! the 13 commands of a whole lifecycle, one placement after another.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use super::population::{Population, end_date, start_date};
use crate::http_load::{Failure, client_runtime, send};
use crate::machine::{CpuSample, CpuUse};
use crate::setup::Env;
use crate::stats::Summary;

/// Who sends a step.
#[derive(Debug, Clone, Copy)]
enum Caller {
    School,
    Company,
    Student,
}

/// One command of the lifecycle.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// The operationId, with what tells repeated ones apart.
    pub name: &'static str,
    /// The path after `/v1/placements/{id}/` (empty: `POST /v1/placements`).
    path: &'static str,
    caller: Caller,
}

/// The 13 commands of a placement's lifecycle, in order. The student is 17
/// at the agreement's start, so the school also records the legal
/// representative's signature (G1); one contact moment is on site (G2).
pub const STEPS: [Step; 13] = [
    Step { name: "proposeMatch", path: "", caller: Caller::School },
    Step { name: "acceptMatch", path: "accept", caller: Caller::Student },
    Step { name: "draftAgreement", path: "agreement", caller: Caller::School },
    Step { name: "signAgreement (student)", path: "agreement/signatures", caller: Caller::Student },
    Step { name: "signAgreement (school)", path: "agreement/signatures", caller: Caller::School },
    Step { name: "signAgreement (company)", path: "agreement/signatures", caller: Caller::Company },
    Step {
        name: "signAgreement (legal_representative)",
        path: "agreement/signatures",
        caller: Caller::School,
    },
    Step { name: "startPlacement", path: "start", caller: Caller::School },
    Step {
        name: "recordContactMoment (start, on_site)",
        path: "contact-moments",
        caller: Caller::School,
    },
    Step {
        name: "recordContactMoment (midway, video)",
        path: "contact-moments",
        caller: Caller::Company,
    },
    Step {
        name: "recordContactMoment (end, phone)",
        path: "contact-moments",
        caller: Caller::School,
    },
    Step { name: "completePlacement", path: "complete", caller: Caller::School },
    Step { name: "rateGuidance", path: "rating", caller: Caller::Student },
];

/// An open-loop schedule shared by all clients (the soak): command `k` is due
/// at `start + k × interval`, and no placement is begun after `deadline`. A
/// client behind schedule sends at once, and its latency counts from the due
/// time, not from when it got round to sending: a server that falls behind
/// shows as latency (the wait for a free client included), not as a quietly
/// lower rate.
#[derive(Debug)]
pub struct Pacer {
    start: tokio::time::Instant,
    interval: Duration,
    next: AtomicU64,
    deadline: Instant,
}

impl Pacer {
    /// `rate` commands per second in all, for `length`.
    pub fn new(rate: f64, length: Duration) -> Self {
        Self {
            start: tokio::time::Instant::now(),
            interval: Duration::from_secs_f64(1.0 / rate),
            next: AtomicU64::new(0),
            deadline: Instant::now() + length,
        }
    }

    /// Waits for the next command's turn; when it was due.
    async fn wait(&self) -> Instant {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let due = self.start + self.interval.mul_f64(k as f64);
        tokio::time::sleep_until(due).await;
        due.into_std()
    }

    /// When the schedule began.
    pub fn start(&self) -> Instant {
        self.start.into_std()
    }
}

/// How the walkers send their commands.
#[derive(Clone)]
pub enum Pace {
    /// Closed loop: a walker's next command as soon as its last is answered.
    /// With a length, no lifecycle starts after it; without, the whole range.
    Closed(Option<Duration>),
    /// Open loop, on the pacer's schedule, until its deadline.
    Open(Arc<Pacer>),
}

/// Error bodies kept for the report.
const FIRST_ERRORS: usize = 5;

/// The request bodies of steps 1-12 (step 0's names the student and offer).
fn bodies() -> Vec<String> {
    let today = chrono::Utc::now().date_naive().to_string();
    let moment = |kind: &str, mode: &str| {
        json!({"kind": kind, "mode": mode, "held_on": today,
               "participants": ["student", "school", "company"]})
    };
    let agreement = json!({
        "start_date": start_date().to_string(), "end_date": end_date().to_string(),
        "hours_per_week": 32, "learning_goals": ["install a heat pump"],
        "school_contact": "BPV-017", "company_trainer": "PO-3",
        "compensation": {
            "costs": [{"kind": "travel", "amount_eur": 40.0}, {"kind": "vog", "amount_eur": 41.0}],
            "expense_allowance_eur": 81.0,
            "internship_allowance": {"amount_eur": 300.0, "per": "month"},
        },
    });
    [
        Value::Null,
        json!({}),
        agreement,
        json!({}),
        json!({}),
        json!({}),
        json!({"party": "legal_representative"}),
        json!({}),
        moment("start", "on_site"),
        moment("midway", "video"),
        moment("end", "phone"),
        json!({}),
        json!({"school_score": 4, "company_score": 5}),
    ]
    .iter()
    .map(Value::to_string)
    .collect()
}

/// A step that was not answered 2xx.
#[derive(Debug, Clone)]
pub struct FailedStep {
    /// The step's name.
    pub step: &'static str,
    /// The placement, once proposed.
    pub placement: Option<String>,
    /// The status, or the transport error.
    pub status: String,
    /// The response body.
    pub body: String,
}

/// What one client did.
#[derive(Debug)]
struct ClientOutcome {
    latencies_ms: Vec<Vec<f64>>,
    errors: Vec<u64>,
    error_kinds: BTreeMap<String, u64>,
    first_errors: Vec<FailedStep>,
    completed: Vec<usize>,
    timeline: Vec<(f32, f32)>,
    error_times: Vec<f32>,
}

/// What the lifecycle load measured.
#[derive(Debug)]
pub struct WalkOutcome {
    /// Lifecycles walked to the end.
    pub completed: u64,
    /// Lifecycles given up after a failed step.
    pub abandoned: u64,
    /// Commands answered 2xx.
    pub commands: u64,
    /// Commands answered otherwise, or not at all.
    pub errors: u64,
    /// Errors by step and status.
    pub error_kinds: BTreeMap<String, u64>,
    /// The first few failures, with their bodies.
    pub first_errors: Vec<FailedStep>,
    /// From the start until the last client finished.
    pub elapsed: Duration,
    /// Latency per step, in [`STEPS`] order.
    pub steps: Vec<Summary>,
    /// Errors per step, in [`STEPS`] order.
    pub step_errors: Vec<u64>,
    /// Latency of every 2xx command.
    pub all: Summary,
    /// The placements (students) whose lifecycle completed.
    pub completed_placements: Vec<usize>,
    /// CPU use during the load.
    pub cpu: CpuUse,
    /// Every 2xx command as (seconds since the start, latency in ms).
    pub timeline: Vec<(f32, f32)>,
    /// When each failed command was sent, in seconds since the start.
    pub error_times: Vec<f32>,
}

impl WalkOutcome {
    /// Completed lifecycles per second.
    pub fn lifecycles_per_s(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }

    /// 2xx commands per second.
    pub fn commands_per_s(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64()
    }
}

/// Walks the placements `range` of `population` through their lifecycle,
/// `walkers` at a time (a multiple of the population's clients), on a runtime
/// and HTTP client of their own; as fast as the server answers, or on
/// a schedule (see [`Pace`]).
pub async fn run(
    env: &Env,
    population: Arc<Population>,
    range: Range<usize>,
    pace: Pace,
    walkers: usize,
) -> anyhow::Result<WalkOutcome> {
    // Walker `w` walks the placements `p ≡ w` (mod `walkers`): all of one
    // client's (its offers), and of those, every `walkers ÷ clients`-th,
    // which `Population::offer_of` puts on different offers in turn.
    anyhow::ensure!(
        walkers >= population.clients && walkers.is_multiple_of(population.clients),
        "{walkers} walkers are not a multiple of the population's {} clients",
        population.clients
    );
    let (runtime, http) = client_runtime(walkers + 4)?;
    let bodies: Arc<Vec<String>> = Arc::new(bodies());
    let cpu_before = CpuSample::now();
    // Paced, times count from the schedule's start, as the soak's other samples do.
    let (start, until, pacer) = match pace {
        Pace::Closed(length) => {
            let start = Instant::now();
            (start, length.map(|length| start + length), None)
        }
        Pace::Open(pacer) => (pacer.start(), Some(pacer.deadline), Some(pacer)),
    };
    let mut tasks = Vec::new();
    for walker in 0..walkers {
        let (http, base) = (http.clone(), env.base.clone());
        let (population, bodies) = (Arc::clone(&population), Arc::clone(&bodies));
        let walk = Walk {
            population,
            bodies,
            range: range.clone(),
            pacer: pacer.clone(),
            until,
            start,
            walkers,
        };
        tasks.push(runtime.spawn(walk_client(http, base, walk, walker)));
    }
    let mut latencies = vec![Vec::new(); STEPS.len()];
    let mut step_errors = vec![0; STEPS.len()];
    let mut error_kinds = BTreeMap::new();
    let mut first_errors = Vec::new();
    let mut completed_placements = Vec::new();
    let (mut timeline, mut error_times) = (Vec::new(), Vec::new());
    for task in tasks {
        let outcome = task.await.context("a lifecycle client failed")?;
        for (all, own) in latencies.iter_mut().zip(outcome.latencies_ms) {
            all.extend(own);
        }
        for (all, own) in step_errors.iter_mut().zip(outcome.errors) {
            *all += own;
        }
        for (kind, n) in outcome.error_kinds {
            *error_kinds.entry(kind).or_insert(0) += n;
        }
        first_errors.extend(outcome.first_errors);
        completed_placements.extend(outcome.completed);
        timeline.extend(outcome.timeline);
        error_times.extend(outcome.error_times);
    }
    let elapsed = start.elapsed();
    let cpu = cpu_before.until(CpuSample::now());
    drop(runtime);
    first_errors.truncate(FIRST_ERRORS);
    completed_placements.sort_unstable();
    let everything: Vec<f64> = latencies.iter().flatten().copied().collect();
    let errors: u64 = step_errors.iter().sum();
    let completed = completed_placements.len() as u64;
    Ok(WalkOutcome {
        completed,
        abandoned: range.len() as u64 - completed,
        commands: everything.len() as u64,
        errors,
        error_kinds,
        first_errors,
        elapsed,
        steps: latencies.iter().map(|l| Summary::of(l)).collect(),
        step_errors,
        all: Summary::of(&everything),
        completed_placements,
        cpu,
        timeline,
        error_times,
    })
}

/// What every walker walks with.
struct Walk {
    population: Arc<Population>,
    bodies: Arc<Vec<String>>,
    range: Range<usize>,
    walkers: usize,
    pacer: Option<Arc<Pacer>>,
    /// No lifecycle starts after this.
    until: Option<Instant>,
    start: Instant,
}

/// One walker: its placements of the range (those `p` with `p % walkers ==
/// walker`, which use its client's own offers) in turn.
async fn walk_client(
    http: reqwest::Client,
    base: String,
    walk: Walk,
    walker: usize,
) -> ClientOutcome {
    let Walk { population, bodies, range, pacer, until, start, walkers } = walk;
    // The records take their room up front: grown by doubling during a soak,
    // they moved and left copies behind in steps that the soak's memory
    // check could not tell from the server's growth. Room not yet written
    // is not resident.
    let placements = range.len().div_ceil(walkers);
    let mut outcome = ClientOutcome {
        latencies_ms: vec![Vec::with_capacity(placements); STEPS.len()],
        errors: vec![0; STEPS.len()],
        error_kinds: BTreeMap::new(),
        first_errors: Vec::new(),
        completed: Vec::with_capacity(placements),
        timeline: Vec::with_capacity(placements * STEPS.len()),
        error_times: Vec::new(),
    };
    let first = range.start + (walker + walkers - range.start % walkers) % walkers;
    for placement in (first..range.end).step_by(walkers) {
        if until.is_some_and(|until| Instant::now() >= until) {
            break;
        }
        let student = &population.students[placement];
        let school = &population.schools[student.school];
        let offer = population.offer_of(placement);
        let company = &population.companies[offer];
        let propose = json!({"student_id": student.party.id, "offer_id": population.offers[offer]})
            .to_string();
        let mut placement_id: Option<String> = None;
        let mut completed = true;
        for (index, step) in STEPS.iter().enumerate() {
            let token = match step.caller {
                Caller::School => &school.token,
                Caller::Company => &company.token,
                Caller::Student => &student.party.token,
            };
            let (url, body) = match &placement_id {
                None => (format!("{base}/v1/placements"), propose.clone()),
                Some(id) => {
                    (format!("{base}/v1/placements/{id}/{}", step.path), bodies[index].clone())
                }
            };
            let sent = match &pacer {
                Some(pacer) => pacer.wait().await,
                None => Instant::now(),
            };
            let request = http
                .post(url)
                .bearer_auth(token)
                .header(CONTENT_TYPE, "application/json")
                .body(body);
            let failure = match send(request).await {
                Err(failure) => Some(failure),
                Ok(bytes) => {
                    let latency_ms = sent.elapsed().as_secs_f64() * 1000.0;
                    outcome.latencies_ms[index].push(latency_ms);
                    let at = (sent - start).as_secs_f32();
                    outcome.timeline.push((at, latency_ms as f32));
                    if placement_id.is_none() {
                        placement_id = serde_json::from_slice::<Value>(bytes.as_ref())
                            .ok()
                            .and_then(|v| v["placement_id"].as_str().map(str::to_owned));
                    }
                    placement_id.is_none().then(|| Failure {
                        status: "no placement_id".to_owned(),
                        body: String::from_utf8_lossy(bytes.as_ref()).into_owned(),
                    })
                }
            };
            if let Some(Failure { status, body }) = failure {
                outcome.errors[index] += 1;
                outcome.error_times.push((sent - start).as_secs_f32());
                *outcome.error_kinds.entry(format!("{}: {status}", step.name)).or_insert(0) += 1;
                if outcome.first_errors.len() < FIRST_ERRORS {
                    outcome.first_errors.push(FailedStep {
                        step: step.name,
                        placement: placement_id.clone(),
                        status,
                        body,
                    });
                }
                // The later steps depend on this one: give the placement up.
                completed = false;
                break;
            }
        }
        if completed {
            outcome.completed.push(placement);
        }
    }
    outcome
}
