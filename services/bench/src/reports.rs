//! The reports scenario (`--scenario reports`): students filing reports of
//! internship discrimination, with and without the protection of their
//! content, then schools forwarding signals and SBB listing them.
//!
//! Why it is built this way:
//!
//! - **The control is the same server with the protection switched off.**
//!   `fileReport` seals the description and grounds under the student's key
//!   (`Vault::cipher_for`: a `SELECT` of the key, an `INSERT` the first time,
//!   then XChaCha20-Poly1305). The bench turns the vault's `bench-plaintext`
//!   switch (a feature of `stagepact-store` that only this crate enables) on
//!   for the control phases: `cipher_for` then returns a cipher that neither
//!   looks up a key nor encrypts, and "seals" into as many bytes as the real
//!   one. Same process, pool, connections, requests and stored sizes: only
//!   the key lookup (and creation) and the encryption differ.
//! - **Every report of A is a student's first** (`filing`): A and B phases
//!   each have their own students, so A pays for creating a student's key
//!   where filing creates it (the report counts the keys each phase
//!   created; since enrolment issues them, none), the most a filing costs;
//!   the ratio against the target is A ÷ B. A phase K after each A has A's
//!   students file a second report, whose keys certainly exist.
//! - **Alternating phases** (A1, K1, B1, A2, K2, B2, ...), each after every
//!   projection caught up, `VACUUM`, `ANALYZE` and `CHECKPOINT`, so drift of the
//!   machine or the growing tables shows instead of skewing one side.
//! - **Signals from the protected reports only** (`signals`): content of
//!   the control is stored under no key and reads as erased, so it cannot be
//!   forwarded. One in-process release round makes them SBB's (the server
//!   releases daily); `listSignals` then opens every signal's grounds.

mod batch;
mod filing;
mod signals;

use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use serde_json::{Value, json};

use crate::header::Header;
use crate::http_load::{self, company_id};
use crate::parties::{self, Party, Student};
use crate::setup::Env;
use crate::stats::round;

use self::filing::{Mode, Phase, Stored};

/// Target: protected reports/s (A, first reports) ÷ control reports/s (B).
const TARGET_RATIO: f64 = 0.9;

/// What the scenario is run with.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Concurrent clients filing and forwarding.
    pub clients: usize,
    /// Companies per client (all clients report about all of them).
    pub companies_per_client: usize,
    /// Schools the students are spread over.
    pub schools: usize,
    /// Reports filed in each phase (in A and B each by another student).
    pub reports_per_phase: usize,
    /// Rounds of phases: A (protected, students' first reports), K
    /// (protected, their second reports), B (control).
    pub rounds: usize,
    /// Share of the protected reports forwarded as a signal.
    pub signal_share: f64,
    /// Concurrent readers of the concurrent `listSignals` measurement.
    pub list_readers: usize,
    /// Length of each `listSignals` measurement (after a 2 s warm-up).
    pub read_seconds: u64,
    /// Whether to collect `pg_stat_statements`.
    pub statement_stats: bool,
}

/// Everyone the timed phases need.
#[derive(Debug)]
pub struct Population {
    /// Registered companies, each recognised for 25180.
    pub companies: Vec<String>,
    /// The schools.
    pub schools: Vec<Party>,
    /// The students, enrolled; round `r` has students `2r * reports_per_phase ..`
    /// (A and K) and `(2r + 1) * reports_per_phase ..` (B).
    pub students: Vec<Student>,
    /// Concurrent clients.
    pub clients: usize,
    /// How long the setup took.
    pub elapsed: Duration,
}

/// Registers the companies and enrols the students of every phase.
async fn populate(env: &Env, options: &Options) -> anyhow::Result<Population> {
    let started = Instant::now();
    let Options { clients, companies_per_client, schools, .. } = *options;
    let count = clients * companies_per_client;
    eprintln!("setup: registering {count} companies with a recognition each ...");
    http_load::register_companies(env, clients, companies_per_client).await?;
    let companies = (0..clients)
        .flat_map(|c| (0..companies_per_client).map(move |i| company_id(c, i)))
        .collect();
    let students = options.reports_per_phase * options.rounds * 2;
    eprintln!("setup: {schools} schools import {students} students ...");
    let schools = parties::schools(env, schools)?;
    let students = parties::students(env, &schools, students)?;
    parties::enrol(env, &schools, &students, Utc::now().date_naive() - Days::new(18 * 366)).await?;
    Ok(Population { companies, schools, students, clients, elapsed: started.elapsed() })
}

/// Protected ÷ control rate of phases `a` and `b`.
fn ratio(a: &[&Phase], b: &[&Phase]) -> f64 {
    let rate = |phases: &[&Phase]| {
        let reports: u64 = phases.iter().map(|p| p.outcome.ok).sum();
        let seconds: f64 = phases.iter().map(|p| p.outcome.elapsed.as_secs_f64()).sum();
        reports as f64 / seconds
    };
    rate(a) / rate(b)
}

/// Runs the scenario; the human report and the JSON figures.
pub async fn run(options: &Options, header: &Header, env: &Env) -> anyhow::Result<(String, Value)> {
    let population = populate(env, options).await?;
    let per_phase = options.reports_per_phase;
    let mut phases = Vec::new();
    for round in 0..options.rounds {
        for mode in [Mode::FirstReport, Mode::SecondReport, Mode::Control] {
            let name = format!("{}{}", mode.letter(), round + 1);
            // K files a second report for each of A's students.
            let block = 2 * round + usize::from(mode == Mode::Control);
            let students = block * per_phase..(block + 1) * per_phase;
            let statement_stats = options.statement_stats;
            phases
                .push(filing::run(env, &population, name, mode, students, statement_stats).await?);
        }
    }
    let stored = Stored::read(env).await?;
    let signals = signals::run(
        env,
        &population,
        &phases,
        options.signal_share,
        options.list_readers,
        options.read_seconds,
        options.statement_stats,
    )
    .await?;

    let of = |mode: Mode| -> Vec<&Phase> { phases.iter().filter(|p| p.mode == mode).collect() };
    let (new_key, existing_key, control) =
        (of(Mode::FirstReport), of(Mode::SecondReport), of(Mode::Control));
    // Per round: A ÷ B and K ÷ B.
    let rounds: Vec<(usize, f64, f64)> = new_key
        .iter()
        .zip(&existing_key)
        .zip(&control)
        .enumerate()
        .map(|(round, ((a, k), b))| (round + 1, a.rate() / b.rate(), k.rate() / b.rate()))
        .collect();
    let overall = ratio(&new_key, &control);
    let overall_existing = ratio(&existing_key, &control);
    let met = overall >= TARGET_RATIO;

    let mut lines = header.lines.clone();
    lines.push(format!(
        "scenario: reports; clients: {}; companies: {}; schools: {}; students: {} (one report each in A and B, a second in K); reports per phase: {per_phase}; rounds: {} (A protected, first reports; K protected, second reports; B control); setup {:.1} s",
        options.clients,
        population.companies.len(),
        population.schools.len(),
        population.students.len(),
        options.rounds,
        population.elapsed.as_secs_f64()
    ));
    lines.push(String::new());
    lines.push(
        "-- fileReport (POST /v1/reports as the student; anything but 201 is an error) --".into(),
    );
    for phase in &phases {
        lines.extend(phase.lines());
    }
    lines.push(stored.line());
    for (round, a, k) in &rounds {
        lines.push(format!(
            "  round {round}: ratio A{round} / B{round} = {a:.3}; K{round} / B{round} = {k:.3}"
        ));
    }
    lines.push(format!(
        "  ratio protected (A, first reports) / control reports/s, all rounds = {overall:.3} (target >= {TARGET_RATIO}: {})",
        if met { "met" } else { "MISSED" }
    ));
    lines.push(format!(
        "  ratio protected (K, second reports) / control reports/s, all rounds = {overall_existing:.3}"
    ));
    lines.extend(signals.lines());
    let mut report = lines.join("\n");
    report.push('\n');

    let figures = header.figures(json!({
        "scenario": "reports",
        "parameters": {
            "clients": options.clients,
            "companies_per_client": options.companies_per_client,
            "schools": options.schools,
            "reports_per_phase": per_phase,
            "rounds": options.rounds,
            "signal_share": options.signal_share,
            "list_readers": options.list_readers,
            "read_seconds": options.read_seconds,
            "statement_stats": options.statement_stats,
        },
        "setup": {
            "elapsed_s": round(population.elapsed.as_secs_f64()),
            "companies": population.companies.len(),
            "schools": population.schools.len(),
            "students": population.students.len(),
        },
        "file_report": {
            "operation": "fileReport",
            "phases": phases.iter().map(Phase::to_json).collect::<Vec<_>>(),
            "stored": stored.to_json(),
        },
        "ratio": {
            "definition": "protected reports/s, students' first reports (A) / control reports/s (B), over all rounds",
            "per_round": rounds.iter().map(|(n, a, k)| json!({"round": n, "a_over_b": round(*a), "k_over_b": round(*k)})).collect::<Vec<_>>(),
            "value": round(overall),
            "existing_keys_value": round(overall_existing),
            "target_min": TARGET_RATIO,
            "met": met,
        },
        "signals": signals.to_json(),
    }));
    Ok((report, figures))
}
