//! Phase C: schools forward an anonymised signal for a share of the
//! protected phases' reports (`forwardSignal`, which records the forwarding
//! on the report), the signals are released to SBB in one round (the
//! background delivery does that daily; here it is called in-process, as a
//! round of it), then SBB lists the signals per company (`listSignals`),
//! which opens every signal's grounds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use super::Population;
use super::batch::{self, BatchOutcome, Request};
use super::filing::{Mode, Phase, catch_up};
use crate::dbstats::{self, DbCounters, PerUnit, StatementStat};
use crate::machine::{CpuSample, CpuUse};
use crate::reads::{self, Pace, ReadOutcome, Reads};
use crate::setup::Env;
use crate::stats::round;

/// What the forwarding and the listing measured.
#[derive(Debug)]
pub struct SignalsOutcome {
    /// Reports of the A phases, of which a share was forwarded.
    pub candidates: usize,
    /// `forwardSignal` by `clients` clients.
    pub forward: BatchOutcome,
    /// PostgreSQL's work per forwarded signal.
    pub forward_db: PerUnit,
    /// Top statements of the forwarding, with `--statement-stats`.
    pub forward_statements: Vec<StatementStat>,
    /// The release round that made the forwarded signals SBB's.
    pub release: Release,
    /// What one `listSignals` answer held.
    pub listing: Listing,
    /// The listings measured, each with its database work per request.
    pub reads: Vec<ListPhase>,
}

/// One release round (`delivery::deliver` with signals), in-process.
#[derive(Debug)]
pub struct Release {
    /// Signals recorded at SBB.
    pub signals: usize,
    /// How long the round took.
    pub elapsed: Duration,
    /// CPU use during the round.
    pub cpu: CpuUse,
}

/// What one `listSignals` answer held.
#[derive(Debug, Default)]
pub struct Listing {
    /// Companies listed.
    pub companies: usize,
    /// Signals counted over the companies whose count is shown.
    pub signals_shown: u64,
    /// Companies whose count is suppressed (1 to 4).
    pub suppressed_companies: usize,
    /// Size of the JSON answer.
    pub bytes: usize,
}

impl Listing {
    fn of(answer: &Value, bytes: usize) -> Self {
        let companies = answer["companies"].as_array().map(Vec::as_slice).unwrap_or_default();
        Self {
            companies: companies.len(),
            signals_shown: companies.iter().filter_map(|c| c["signals"].as_u64()).sum(),
            suppressed_companies: companies.iter().filter(|c| c["signals"].is_string()).count(),
            bytes,
        }
    }
}

/// One measured listing.
#[derive(Debug)]
pub struct ListPhase {
    /// What was read, for the report.
    pub title: String,
    /// `GET` path.
    pub path: String,
    /// The readers' figures.
    pub outcome: ReadOutcome,
    /// PostgreSQL's work per request.
    pub db: PerUnit,
    /// Top statements, with `--statement-stats`.
    pub statements: Vec<StatementStat>,
}

/// Top statements since the last reset, when asked for.
async fn statements(env: &Env, statement_stats: bool) -> anyhow::Result<Vec<StatementStat>> {
    if statement_stats {
        dbstats::top_statements(&env.pool, dbstats::TOP_STATEMENTS).await
    } else {
        Ok(Vec::new())
    }
}

/// Empties the statement statistics, when asked for.
async fn reset(env: &Env, statement_stats: bool) -> anyhow::Result<()> {
    if statement_stats { dbstats::reset_statements(&env.pool).await } else { Ok(()) }
}

/// Whether a listing lists a company.
fn lists_a_company(listing: &Value) -> bool {
    listing["companies"].as_array().is_some_and(|c| !c.is_empty())
}

/// Forwards a signal for the first `share` of the reports of each A phase (so every company gets signals: report `i` of a phase is
/// about company `i % companies`), then measures `listSignals`: one reader
/// back to back, then `list_readers`, each for `seconds`; and one company's
/// signals, one reader.
pub async fn run(
    env: &Env,
    population: &Population,
    phases: &[Phase],
    share: f64,
    list_readers: usize,
    seconds: u64,
    statement_stats: bool,
) -> anyhow::Result<SignalsOutcome> {
    let mut candidates = 0;
    let mut chosen = Vec::new();
    for phase in phases.iter().filter(|p| p.mode == Mode::FirstReport) {
        let filed: Vec<(usize, &String)> = phase
            .students
            .clone()
            .zip(&phase.outcome.ids)
            .filter_map(|(student, id)| Some((student, id.as_ref()?)))
            .collect();
        candidates += filed.len();
        let take = (filed.len() as f64 * share).round() as usize;
        chosen.extend(filed.into_iter().take(take));
    }
    let requests: Vec<Request> = chosen
        .iter()
        .map(|(student, id)| Request {
            path: format!("/v1/reports/{id}/signal"),
            token: population.schools[population.students[*student].school].token.clone(),
            body: None,
        })
        .collect();
    catch_up(env).await?;
    eprintln!(
        "signals: {} clients forward {} signals ({share} of the A phases' reports) ...",
        population.clients,
        requests.len()
    );
    let db_before = DbCounters::read(&env.pool).await?;
    reset(env, statement_stats).await?;
    let forward = batch::run(env, Arc::new(requests), population.clients, "signal_id").await?;
    let forward_db = db_before.per_unit(DbCounters::read(&env.pool).await?, forward.ok);
    let forward_statements = statements(env, statement_stats).await?;
    for failure in &forward.first_errors {
        eprintln!("first error: {}: {}", failure.status, failure.body);
    }
    catch_up(env).await?;
    eprintln!("signals: one release round delivers them to SBB ...");
    let (cpu_before, started) = (CpuSample::now(), Instant::now());
    let delivered = stagepact_api::delivery::deliver(&env.state, true)
        .await
        .context("releasing the signals")?;
    let release = Release {
        signals: delivered.signals,
        elapsed: started.elapsed(),
        cpu: cpu_before.until(CpuSample::now()),
    };
    catch_up(env).await?;

    let response = env
        .http
        .get(format!("{}/v1/signals", env.base))
        .bearer_auth(&env.token)
        .send()
        .await
        .context("listSignals")?
        .error_for_status()
        .context("listSignals")?
        .bytes()
        .await
        .context("listSignals")?;
    let answer: Value = serde_json::from_slice(&response).context("listSignals: not JSON")?;
    let listing = Listing::of(&answer, response.len());
    eprintln!(
        "signals: listSignals lists {} signals over {} companies ({} suppressed), {} bytes",
        listing.signals_shown, listing.companies, listing.suppressed_companies, listing.bytes
    );

    let company = &population.companies[0];
    let tokens = Arc::new(vec![env.token.clone()]);
    let mut list_phases = Vec::new();
    for (title, path, readers) in [
        ("all companies, 1 reader".to_owned(), "/v1/signals".to_owned(), 1),
        (format!("all companies, {list_readers} readers"), "/v1/signals".to_owned(), list_readers),
        (
            format!("one company ({company}), 1 reader"),
            format!("/v1/signals?company_id={company}"),
            1,
        ),
    ] {
        eprintln!("signals: listSignals, {title}, {seconds} s after a 2 s warm-up ...");
        let read =
            Reads { path: path.clone(), tokens: Arc::clone(&tokens), check: lists_a_company };
        let before = DbCounters::read(&env.pool).await?;
        reset(env, statement_stats).await?;
        let outcome = reads::run(env, read, readers, Pace::BackToBack, seconds).await?;
        let db = before.per_unit(DbCounters::read(&env.pool).await?, outcome.requests);
        let statements = statements(env, statement_stats).await?;
        list_phases.push(ListPhase { title, path, outcome, db, statements });
    }
    Ok(SignalsOutcome {
        candidates,
        forward,
        forward_db,
        forward_statements,
        release,
        listing,
        reads: list_phases,
    })
}

impl SignalsOutcome {
    /// For the human report.
    pub fn lines(&self) -> Vec<String> {
        let f = &self.forward;
        let mut lines = vec![
            String::new(),
            "-- signals (forwardSignal as the school, then listSignals as SBB) --".to_owned(),
            format!(
                "  forwardSignal: {} of {} first reports (phases A) sent, {} forwarded in {:.2} s = {:.1} signals/s; errors: {}{}",
                f.ids.len(),
                self.candidates,
                f.ok,
                f.elapsed.as_secs_f64(),
                f.rate(),
                f.errors,
                if f.error_kinds.is_empty() {
                    String::new()
                } else {
                    format!(" {:?}", f.error_kinds)
                }
            ),
            format!("    latency: {}", f.latency.line()),
            format!("    {}", f.cpu.line(f.ok, "signal")),
            format!("    PostgreSQL work per signal: {}", self.forward_db.line()),
        ];
        for failure in &f.first_errors {
            lines.push(format!("    first error: {}: {}", failure.status, failure.body));
        }
        if !self.forward_statements.is_empty() {
            lines.push("    top statements (pg_stat_statements; per unit = per signal):".into());
            lines.extend(dbstats::statements_lines(&self.forward_statements, f.ok));
        }
        let r = &self.release;
        lines.push(format!(
            "  release round (in-process): {} signals in {:.2} s = {:.1} signals/s (one task, one signal after another)",
            r.signals,
            r.elapsed.as_secs_f64(),
            r.signals as f64 / r.elapsed.as_secs_f64()
        ));
        lines.push(format!("    {}", r.cpu.line(r.signals as u64, "signal")));
        let l = &self.listing;
        lines.push(format!(
            "  listSignals answer: {} signals counted over {} companies ({} with a suppressed count); {} bytes (expected {} signals: {})",
            l.signals_shown,
            l.companies,
            l.suppressed_companies,
            l.bytes,
            f.ok,
            if l.signals_shown == f.ok && l.suppressed_companies == 0 { "ok" } else { "MISMATCH" }
        ));
        for phase in &self.reads {
            let o = &phase.outcome;
            lines.push(format!(
                "  listSignals, {} ({}): {} requests in {:.2} s = {:.1} requests/s; errors: {}; failed checks: {}",
                phase.title,
                phase.path,
                o.requests,
                o.elapsed.as_secs_f64(),
                o.rate(),
                o.errors,
                o.failed_checks
            ));
            lines.push(format!("    latency: {}", o.latency.line()));
            lines.push(format!("    {}", o.cpu.line(o.requests, "request")));
            lines.push(format!("    PostgreSQL work per request: {}", phase.db.line()));
            if !phase.statements.is_empty() {
                lines.push(
                    "    top statements (pg_stat_statements; per unit = per request):".into(),
                );
                lines.extend(dbstats::statements_lines(&phase.statements, o.requests));
            }
        }
        lines
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        let f = &self.forward;
        let l = &self.listing;
        json!({
            "forward": {
                "operation": "forwardSignal",
                "first_reports": self.candidates,
                "requests": f.ids.len(),
                "signals": f.ok,
                "errors": f.errors,
                "error_kinds": f.error_kinds,
                "first_errors": f.first_errors.iter().map(|e| json!({"status": e.status, "body": e.body})).collect::<Vec<_>>(),
                "elapsed_s": round(f.elapsed.as_secs_f64()),
                "signals_per_s": round(f.rate()),
                "latency": f.latency.to_json(),
                "cpu": f.cpu.to_json(f.ok),
                "postgresql_per_signal": self.forward_db.to_json(),
                "top_statements": dbstats::statements_json(&self.forward_statements, f.ok),
            },
            "release": {
                "signals": self.release.signals,
                "elapsed_s": round(self.release.elapsed.as_secs_f64()),
                "signals_per_s": round(self.release.signals as f64 / self.release.elapsed.as_secs_f64()),
                "cpu": self.release.cpu.to_json(self.release.signals as u64),
            },
            "listing": {
                "companies": l.companies,
                "signals_counted": l.signals_shown,
                "suppressed_companies": l.suppressed_companies,
                "answer_bytes": l.bytes,
                "matches_forwarded": l.signals_shown == f.ok && l.suppressed_companies == 0,
            },
            "list_signals": self.reads.iter().map(|phase| {
                let o = &phase.outcome;
                json!({
                    "operation": "listSignals",
                    "what": phase.title,
                    "path": phase.path,
                    "readers": o.readers,
                    "requests": o.requests,
                    "errors": o.errors,
                    "error_kinds": o.error_kinds,
                    "failed_checks": o.failed_checks,
                    "elapsed_s": round(o.elapsed.as_secs_f64()),
                    "requests_per_s": round(o.rate()),
                    "latency": o.latency.to_json(),
                    "cpu": o.cpu.to_json(o.requests),
                    "postgresql_per_request": phase.db.to_json(),
                    "top_statements": dbstats::statements_json(&phase.statements, o.requests),
                })
            }).collect::<Vec<_>>(),
        })
    }
}
