//! The lifecycle scenario (`--scenario lifecycle`): whole placement
//! lifecycles through HTTP, the pgbench baseline with as many clients, and
//! students reading their overview.
//!
//! Why it is built this way:
//!
//! - **Setup through the API, untimed** (`population`). A lifecycle's
//!   commands load the student, offer and company aggregates, so those must
//!   hold exactly what the API writes; the bulk import keeps it quick.
//! - **Closed loop, one placement at a time per client** (`walk`). Each step
//!   needs the state the previous one left, as it does for a real school,
//!   company and student; so each of the `clients` clients walks its own
//!   placements one after another through all 13 commands, and the
//!   concurrency is `clients`, as pgbench's `-c`.
//! - **Each client has its own offers.** `proposeMatch` also appends a slot
//!   reservation to the offer aggregate; offers shared by clients would make
//!   them race for it (conflicts the command bus retries), which measures
//!   contention on one aggregate rather than throughput.
//! - **Every step is real.** Students are 17 at the agreement's start, so the
//!   fourth signature is the legal representative's that G1 then requires,
//!   and one of the three contact moments is on site (G2). A failed step ends
//!   that placement's walk (the rest cannot succeed) and counts as an error.
//! - **The baseline is the commands scenario's full-history script**, on
//!   aggregates that start with one event and grow as a lifecycle does
//!   (a placement ends with 13).
//! - **Readers read twice** (`readers`), each request for a random student
//!   with a completed placement: back to back (every reader sends its next
//!   request as soon as the last is answered: the most the machine serves,
//!   where latency is mostly the wait for a turn, readers ÷ throughput by
//!   Little's law), then paced at half that throughput, which shows the
//!   latency of the operation itself below saturation.

pub mod population;
mod readers;
pub mod walk;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use stagepact_store::placements;

use crate::TARGET_RATIO;
use crate::dbstats::{self, DbCounters, StatementStat};
use crate::header::Header;
use crate::pgbench::{self, Shape, Variant};
use crate::reads::Pace;
use crate::setup::Env;
use crate::stats::round;

use self::readers::{PACED_SHARE, TARGET_OVERVIEW_P99_MS, read_phase};

/// Events a placement has after its lifecycle.
const EVENTS_PER_LIFECYCLE: f64 = 13.0;

/// What the scenario is run with.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Concurrent clients (lifecycles and pgbench alike).
    pub clients: usize,
    /// Placements (and students).
    pub placements: usize,
    /// Schools the students are spread over.
    pub schools: usize,
    /// Offers (one per company) per client.
    pub offers_per_client: usize,
    /// Length of the pgbench run.
    pub pgbench_seconds: u64,
    /// Concurrent overview readers.
    pub readers: usize,
    /// Length of the read phase (after its warm-up).
    pub read_seconds: u64,
    /// Whether to collect `pg_stat_statements`.
    pub statement_stats: bool,
}

/// Top statements since the last reset, when asked for.
async fn statements(env: &Env, options: &Options) -> anyhow::Result<Vec<StatementStat>> {
    if options.statement_stats {
        dbstats::top_statements(&env.pool, dbstats::TOP_STATEMENTS).await
    } else {
        Ok(Vec::new())
    }
}

/// Runs the scenario; the human report and the JSON figures.
pub async fn run(options: &Options, header: &Header, env: &Env) -> anyhow::Result<(String, Value)> {
    let Options { clients, placements: count, schools, offers_per_client, .. } = *options;
    let population =
        Arc::new(population::build(env, count, clients, schools, offers_per_client).await?);
    env.settle().await?;

    eprintln!("lifecycle: {clients} clients walk {count} placements through 13 commands each ...");
    let db_before = DbCounters::read(&env.pool).await?;
    if options.statement_stats {
        dbstats::reset_statements(&env.pool).await?;
    }
    let walk = walk::run(
        env,
        Arc::clone(&population),
        0..count,
        walk::Pace::Closed(None),
        population.clients,
    )
    .await?;
    let walk_db = db_before.per_unit(DbCounters::read(&env.pool).await?, walk.commands);
    let walk_statements = statements(env, options).await?;
    if walk.errors > 0 {
        tracing::warn!(errors = walk.errors, kinds = ?walk.error_kinds, "lifecycle commands failed");
        // Shown now too: a later phase may fail for want of completed placements.
        for failed in &walk.first_errors {
            eprintln!("first error: {} {}: {}", failed.step, failed.status, failed.body);
        }
    }
    let (placement_events, offer_events): (Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT (SELECT count(*)::float8 / nullif(count(DISTINCT aggregate_id), 0) FROM events
                  WHERE aggregate_type = 'placement'),
                (SELECT count(*)::float8 / nullif(count(DISTINCT aggregate_id), 0) FROM events
                  WHERE aggregate_type = 'offer')",
    )
    .fetch_one(&env.pool)
    .await
    .context("counting the lifecycle's events")?;
    let (placement_events, offer_events) =
        (placement_events.unwrap_or_default(), offer_events.unwrap_or_default());

    let shape = Shape {
        clients,
        per_client: count.div_ceil(clients),
        seconds: options.pgbench_seconds,
        initial_events: 1,
        http_mean: (1.0 + EVENTS_PER_LIFECYCLE) / 2.0,
        http_final: EVENTS_PER_LIFECYCLE,
        statement_stats: options.statement_stats,
    };
    let baseline = pgbench::measure(env, Variant::FullHistory, shape).await?;
    let ratio = walk.commands_per_s() / baseline.run.tps;

    eprintln!(
        "overview: waiting for the placements read model, then {} readers ...",
        options.readers
    );
    let head = crate::seed::await_stamped(env, Duration::from_secs(600)).await?;
    if !env
        .state
        .projections
        .await_position(placements::NAME, head, Duration::from_secs(600))
        .await?
    {
        bail!("the placements read model did not reach position {head}");
    }
    let projected: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM placements WHERE status = 'completed' AND school LIKE 'bench-s%'",
    )
    .fetch_one(&env.pool)
    .await?;
    env.settle().await?;
    let tokens: Vec<String> = walk
        .completed_placements
        .iter()
        .map(|&p| population.students[p].party.token.clone())
        .collect();
    let tokens = Arc::new(tokens);
    let back_to_back = read_phase(env, options, Arc::clone(&tokens), Pace::BackToBack).await?;
    let rate = (back_to_back.outcome.rate() * PACED_SHARE).round().max(1.0);
    let paced = read_phase(env, options, tokens, Pace::Rate(rate)).await?;

    let pass = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut lines = header.lines.clone();
    lines.push(format!(
        "scenario: lifecycle; clients: {clients}; placements: {count} (one student each, 17 at the agreement's start, over {schools} schools); offers: {} ({offers_per_client} per client, one per company, {} slots each); setup {:.1} s",
        population.offers.len(),
        population.slots_per_offer,
        population.elapsed.as_secs_f64()
    ));
    lines.push(String::new());
    lines.push(
        "-- placement lifecycle over HTTP (13 commands each; any non-2xx is an error) --".into(),
    );
    lines.push(format!(
        "  {} of {count} lifecycles completed in {:.2} s = {:.1} lifecycles/s; {} commands = {:.1} commands/s; errors: {}",
        walk.completed,
        walk.elapsed.as_secs_f64(),
        walk.lifecycles_per_s(),
        walk.commands,
        walk.commands_per_s(),
        walk.errors
    ));
    for (kind, n) in &walk.error_kinds {
        lines.push(format!("    {n} × {kind}"));
    }
    for failed in &walk.first_errors {
        lines.push(format!(
            "    first error: {} (placement {}): {} {}",
            failed.step,
            failed.placement.as_deref().unwrap_or("-"),
            failed.status,
            failed.body
        ));
    }
    lines.push(format!("  latency of all commands: {}", walk.all.line()));
    lines.push("  per operation:".into());
    for ((step, summary), errors) in walk::STEPS.iter().zip(&walk.steps).zip(&walk.step_errors) {
        lines.push(format!(
            "    {:<38} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  errors {errors}",
            step.name, summary.p50, summary.p99, summary.max
        ));
    }
    lines.push(format!(
        "  events per placement: {placement_events:.2}; per offer: {offer_events:.1} (published + slots reserved)"
    ));
    lines.push(format!("  {}", walk.cpu.line(walk.commands, "command")));
    lines.push(format!("  PostgreSQL work per command: {}", walk_db.line()));
    if !walk_statements.is_empty() {
        lines.push("  top statements (pg_stat_statements; per unit = per command):".into());
        lines.extend(dbstats::statements_lines(&walk_statements, walk.commands));
    }
    lines.extend(baseline.lines(clients, options.pgbench_seconds));
    lines.push(format!(
        "  ratio lifecycle commands/s / pgbench tps = {ratio:.3} (target >= {TARGET_RATIO}: {})",
        pass(ratio >= TARGET_RATIO)
    ));
    for phase in [&back_to_back, &paced] {
        lines.extend(phase.lines(walk.completed_placements.len(), projected));
    }
    let mut report = lines.join("\n");
    report.push('\n');

    let steps: Vec<Value> = walk::STEPS
        .iter()
        .zip(&walk.steps)
        .zip(&walk.step_errors)
        .map(|((step, summary), errors)| {
            json!({"operation": step.name, "latency": summary.to_json(), "errors": errors})
        })
        .collect();
    let first_errors: Vec<Value> = walk
        .first_errors
        .iter()
        .map(|f| json!({"step": f.step, "placement": f.placement, "status": f.status, "body": f.body}))
        .collect();
    let figures = header.figures(json!({
        "scenario": "lifecycle",
        "parameters": {
            "clients": clients,
            "placements": count,
            "schools": schools,
            "offers_per_client": offers_per_client,
            "pgbench_seconds": options.pgbench_seconds,
            "readers": options.readers,
            "read_seconds": options.read_seconds,
            "statement_stats": options.statement_stats,
        },
        "setup": {
            "elapsed_s": round(population.elapsed.as_secs_f64()),
            "students": population.students.len(),
            "schools": population.schools.len(),
            "companies": population.companies.len(),
            "offers": population.offers.len(),
            "slots_per_offer": population.slots_per_offer,
        },
        "lifecycle": {
            "commands_per_lifecycle": walk::STEPS.len(),
            "lifecycles_completed": walk.completed,
            "lifecycles_abandoned": walk.abandoned,
            "commands": walk.commands,
            "errors": walk.errors,
            "error_kinds": walk.error_kinds,
            "first_errors": first_errors,
            "elapsed_s": round(walk.elapsed.as_secs_f64()),
            "lifecycles_per_s": round(walk.lifecycles_per_s()),
            "commands_per_s": round(walk.commands_per_s()),
            "latency": walk.all.to_json(),
            "operations": steps,
            "events_per_placement": round(placement_events),
            "events_per_offer": round(offer_events),
            "cpu": walk.cpu.to_json(walk.commands),
            "postgresql_per_command": walk_db.to_json(),
            "top_statements": dbstats::statements_json(&walk_statements, walk.commands),
        },
        "pgbench": {(Variant::FullHistory.key()): baseline.to_json(clients, options.pgbench_seconds)},
        "ratio": {"value": round(ratio), "target_min": TARGET_RATIO, "met": ratio >= TARGET_RATIO},
        "overview": {
            "operation": "getMyOverview",
            "students": walk.completed_placements.len(),
            "target_p99_ms": TARGET_OVERVIEW_P99_MS,
            "back_to_back": back_to_back.to_json(),
            "paced": paced.to_json(),
        },
    }));
    Ok((report, figures))
}
