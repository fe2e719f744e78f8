//! Benchmarks of the Stagepact API against a pgbench baseline.
//!
//! One run starts a private, durable PostgreSQL cluster, serves the API
//! in-process, and measures:
//!
//! 1. HTTP command throughput and latency (suspend / reinstate by concurrent clients),
//! 2. the same SQL work done by pgbench with as many clients (the baseline;
//!    two scripts, see `pgbench`),
//! 3. projection lag, probed during the command load,
//! 4. feed read throughput over bulk-seeded events.
//!
//! It prints a report and writes the same figures as JSON.

mod dbstats;
mod feed;
mod http_load;
mod machine;
mod pgbench;
mod seed;
mod setup;
mod stats;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use serde_json::{Value, json};

use crate::dbstats::DbCounters;
use crate::machine::Machine;
use crate::pgbench::{Baseline, Shape, Variant};
use crate::setup::Env;
use crate::stats::round;

/// Events each load company has before the load: registered and granted.
const INITIAL_EVENTS: f64 = 2.0;
/// Target: HTTP commands/s ÷ pgbench tps.
const TARGET_RATIO: f64 = 0.6;
/// Target: feed events read per second.
const TARGET_FEED_RATE: f64 = 50_000.0;
/// Target: p99 of the projection lag, in milliseconds.
const TARGET_LAG_P99_MS: f64 = 100.0;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "Benchmarks the Stagepact API against a pgbench baseline")]
struct Args {
    /// Concurrent clients (HTTP load and pgbench alike).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Duration of the HTTP load and of the pgbench run, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Events seeded for the feed read.
    #[arg(long, default_value_t = 100_000)]
    feed_events: i64,
    /// Companies per client.
    #[arg(long, default_value_t = 8)]
    companies_per_client: usize,
    /// Load pg_stat_statements and report the top statements of each load
    /// phase (a diagnostic: it slows PostgreSQL down a little).
    #[arg(long)]
    statement_stats: bool,
    /// Where to write the JSON results.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench-results/latest.json"))]
    output: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Warnings of the in-process server (sequencer, projector) go to stderr.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    anyhow::ensure!(
        args.clients > 0 && args.seconds > 0,
        "--clients and --seconds must be positive"
    );
    anyhow::ensure!(args.companies_per_client > 0, "--companies-per-client must be positive");
    anyhow::ensure!(args.feed_events > 0, "--feed-events must be positive");
    let machine = Machine::read();
    eprintln!("starting a private durable PostgreSQL and the API ...");
    let env = Env::start(args.clients, args.statement_stats).await?;
    let result = run(&args, &machine, &env).await;
    env.stop().await?;
    let (report, figures) = result?;
    println!("{report}");
    if let Some(parent) = args.output.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&args.output, serde_json::to_string_pretty(&figures)? + "\n")
        .with_context(|| format!("writing {}", args.output.display()))?;
    let shown = args.output.canonicalize().unwrap_or_else(|_| args.output.clone());
    println!("JSON written to {}", shown.display());
    Ok(())
}

/// The commit the workspace is at, and whether tracked files differ from it
/// (read-only `git` calls; "unknown" without git).
fn source_version() -> (String, bool) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&workspace)
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    (commit, dirty)
}

async fn run(args: &Args, machine: &Machine, env: &Env) -> anyhow::Result<(String, Value)> {
    let (clients, per_client, seconds) = (args.clients, args.companies_per_client, args.seconds);
    let (commit, dirty) = source_version();

    eprintln!("registering {} companies with a recognition each ...", clients * per_client + 1);
    let registered = http_load::register_companies(env, clients, per_client).await?;
    env.settle().await?;

    eprintln!(
        "HTTP command load: {clients} clients for {seconds} s, with the projection-lag probe ..."
    );
    let db_before = DbCounters::read(&env.pool).await?;
    if args.statement_stats {
        dbstats::reset_statements(&env.pool).await?;
    }
    let load = http_load::run_load(env, clients, per_client, seconds).await?;
    // The probe's commands are part of the database's work too.
    let all_commands = load.commands + load.probe.commands;
    let load_db = db_before.per_unit(DbCounters::read(&env.pool).await?, all_commands);
    if load.errors > 0 {
        tracing::warn!(errors = load.errors, kinds = ?load.error_kinds, "commands were not answered 202");
    }
    let load_statements = if args.statement_stats {
        dbstats::top_statements(&env.pool, dbstats::TOP_STATEMENTS).await?
    } else {
        Vec::new()
    };
    let http_final: f64 = sqlx::query_scalar(
        "SELECT count(*)::float8 / count(DISTINCT aggregate_id) FROM events
          WHERE aggregate_type = 'company' AND aggregate_id LIKE 'bench-c%'",
    )
    .fetch_one(&env.pool)
    .await?;
    let http_mean = (INITIAL_EVENTS + http_final) / 2.0;

    let shape = Shape {
        clients,
        per_client,
        seconds,
        initial_events: INITIAL_EVENTS as i64,
        http_mean,
        http_final,
        statement_stats: args.statement_stats,
    };
    let mut baselines = vec![pgbench::measure(env, Variant::FullHistory, shape).await?];
    if pgbench::has_snapshots(env).await? {
        baselines.push(pgbench::measure(env, Variant::Snapshot, shape).await?);
    } else {
        eprintln!("no snapshot table: the command path loads whole histories; one baseline only");
    }

    eprintln!("feed: seeding {} events, then reading the whole feed ...", args.feed_events);
    let feed = feed::run(env, args.feed_events).await?;

    let probe = &load.probe;
    let pass = |ok: bool| if ok { "met" } else { "MISSED" };
    let settings: Vec<String> = env.pg_settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let ratio = |baseline: &Baseline| load.rate() / baseline.run.tps;

    let mut r = String::new();
    let mut line = |text: String| {
        r.push_str(&text);
        r.push('\n');
    };
    line("== Stagepact benchmark ==".into());
    line(format!(
        "source: commit {commit}{}",
        if dirty { " with uncommitted changes" } else { "" }
    ));
    line(format!(
        "machine: {} ({} logical cores), {} MiB RAM, Linux {}",
        machine.cpu_model, machine.cores, machine.memory_mib, machine.kernel
    ));
    line(format!("PostgreSQL: {}", env.pg_version));
    line(format!("  private durable cluster, {}", settings.join(", ")));
    line(format!(
        "clients: {clients}, seconds: {seconds}, companies: {registered} ({per_client} per client + 1 probe company)"
    ));
    line(String::new());
    line("-- HTTP commands (POST suspend / reinstate, each must answer 202) --".into());
    line(format!(
        "  {} commands in {:.2} s = {:.1} commands/s; errors: {}{}",
        load.commands,
        load.elapsed.as_secs_f64(),
        load.rate(),
        load.errors,
        if load.error_kinds.is_empty() {
            String::new()
        } else {
            format!(" {:?}", load.error_kinds)
        }
    ));
    line(format!("  latency: {}", load.latency.line()));
    line(format!(
        "  events per load company: {INITIAL_EVENTS} before, {http_final:.1} after (mean over the run {http_mean:.1})"
    ));
    line(format!("  {}", load.cpu.line(all_commands, "command")));
    line(format!("  PostgreSQL work per command (load and probe commands): {}", load_db.line()));
    if !load_statements.is_empty() {
        line("  top statements (pg_stat_statements; per unit = per command):".into());
        for text in dbstats::statements_lines(&load_statements, all_commands) {
            line(text);
        }
    }
    for baseline in &baselines {
        let run = &baseline.run;
        line(format!("-- pgbench baseline, {} --", baseline.variant.title()));
        line(format!(
            "  {} transactions, {:.1} tps; failed: {}",
            run.transactions, run.tps, run.failed
        ));
        line(format!("  latency: {}", run.latency.line()));
        line(format!(
            "  {} aggregates ({} per client, sized by a {} s pilot at {:.0} tps); events per aggregate: {:.1} before, {:.1} after (mean over the run {:.1})",
            clients * run.per_client,
            run.per_client,
            pgbench::PILOT_SECONDS.min(seconds),
            baseline.pilot_tps,
            run.events_per_aggregate_before,
            run.events_per_aggregate_after,
            (run.events_per_aggregate_before + run.events_per_aggregate_after) / 2.0
        ));
        line("  the API kept running: its sequencer stamped (and its projector skipped) the pgbench rows".into());
        line(format!("  {}", baseline.cpu.line(run.transactions, "transaction")));
        line(format!("  PostgreSQL work per transaction: {}", baseline.db.line()));
        if !baseline.statements.is_empty() {
            line(
                "  top statements (pg_stat_statements; per unit = per pgbench transaction):".into(),
            );
            for text in dbstats::statements_lines(&baseline.statements, run.transactions) {
                line(text);
            }
        }
        line(format!(
            "  ratio HTTP commands/s / pgbench tps = {:.3} (target >= {TARGET_RATIO}: {})",
            ratio(baseline),
            pass(ratio(baseline) >= TARGET_RATIO)
        ));
    }
    line(String::new());
    line("-- projection lag (probe: one command every 50 ms during the load) --".into());
    line(format!(
        "  visible after the response (t1 - t_response): {}",
        probe.after_response.line()
    ));
    line(format!("  visible after sending (t1 - t0):              {}", probe.from_send.line()));
    line(format!(
        "  probe errors: {}, timeouts: {}; target p99 < {TARGET_LAG_P99_MS} ms: {} (after response), {} (from send)",
        probe.errors,
        probe.timeouts,
        pass(probe.after_response.count > 0 && probe.after_response.p99 < TARGET_LAG_P99_MS),
        pass(probe.from_send.count > 0 && probe.from_send.p99 < TARGET_LAG_P99_MS),
    ));
    line(String::new());
    line("-- feed (GET /v1/events?after=..&limit=1000 as SBB, one client) --".into());
    line(format!(
        "  seeded {} events over {} companies; all stamped {:.2} s after the seeding commit, all projected {:.2} s later",
        feed.seeded,
        feed.seeded_aggregates,
        feed.stamping.as_secs_f64(),
        feed.projection_catch_up.as_secs_f64(),
    ));
    line(format!(
        "  read {} events (expected {}) in {} pages, {:.2} s = {:.0} events/s (target >= {TARGET_FEED_RATE}: {})",
        feed.events_read,
        feed.events_expected,
        feed.pages,
        feed.elapsed.as_secs_f64(),
        feed.rate(),
        pass(feed.rate() >= TARGET_FEED_RATE)
    ));
    line(format!("  page latency: {}", feed.page_latency.line()));
    line(format!("  {}", feed.cpu.line(feed.events_read.div_ceil(1000), "1000 events")));

    let mut pgbench_json = serde_json::Map::new();
    let mut ratio_json = serde_json::Map::new();
    for baseline in &baselines {
        let run = &baseline.run;
        pgbench_json.insert(
            baseline.variant.key().to_owned(),
            json!({
                "description": baseline.variant.title(),
                "transactions": run.transactions,
                "failed": run.failed,
                "tps": round(run.tps),
                "latency": run.latency.to_json(),
                "aggregates": clients * run.per_client,
                "aggregates_per_client": run.per_client,
                "pilot_seconds": pgbench::PILOT_SECONDS.min(seconds),
                "pilot_tps": round(baseline.pilot_tps),
                "events_per_aggregate_before": round(run.events_per_aggregate_before),
                "events_per_aggregate_after": round(run.events_per_aggregate_after),
                "api_running": true,
                "command": run.command,
                "script": run.script,
                "cpu": baseline.cpu.to_json(run.transactions),
                "postgresql_per_transaction": baseline.db.to_json(),
                "top_statements": dbstats::statements_json(&baseline.statements, run.transactions),
            }),
        );
        ratio_json.insert(
            baseline.variant.key().to_owned(),
            json!({"value": round(ratio(baseline)), "met": ratio(baseline) >= TARGET_RATIO}),
        );
    }
    ratio_json.insert("target_min".to_owned(), json!(TARGET_RATIO));

    let figures = json!({
        "generated_at": chrono::Utc::now().to_rfc3339(),
        "source": {"commit": commit, "uncommitted_changes": dirty},
        "machine": machine.to_json(),
        "postgresql": {
            "version": env.pg_version,
            "settings": env.pg_settings.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        },
        "parameters": {
            "clients": clients,
            "seconds": seconds,
            "feed_events": args.feed_events,
            "companies_per_client": per_client,
            "statement_stats": args.statement_stats,
        },
        "http_commands": {
            "commands": load.commands,
            "errors": load.errors,
            "error_kinds": load.error_kinds,
            "elapsed_s": round(load.elapsed.as_secs_f64()),
            "commands_per_s": round(load.rate()),
            "latency": load.latency.to_json(),
            "events_per_company_before": INITIAL_EVENTS,
            "events_per_company_after": round(http_final),
            "cpu": load.cpu.to_json(all_commands),
            "postgresql_per_command": load_db.to_json(),
            "top_statements": dbstats::statements_json(&load_statements, all_commands),
        },
        "pgbench": pgbench_json,
        "ratio": ratio_json,
        "projection_lag": {
            "after_response": probe.after_response.to_json(),
            "from_send": probe.from_send.to_json(),
            "probe_commands": probe.commands,
            "errors": probe.errors,
            "timeouts": probe.timeouts,
            "target_p99_ms": TARGET_LAG_P99_MS,
            "met_after_response": probe.after_response.count > 0 && probe.after_response.p99 < TARGET_LAG_P99_MS,
            "met_from_send": probe.from_send.count > 0 && probe.from_send.p99 < TARGET_LAG_P99_MS,
        },
        "feed": {
            "seeded_events": feed.seeded,
            "seeded_companies": feed.seeded_aggregates,
            "stamped_after_s": round(feed.stamping.as_secs_f64()),
            "projected_after_further_s": round(feed.projection_catch_up.as_secs_f64()),
            "events_read": feed.events_read,
            "events_expected": feed.events_expected,
            "pages": feed.pages,
            "elapsed_s": round(feed.elapsed.as_secs_f64()),
            "events_per_s": round(feed.rate()),
            "target_min_events_per_s": TARGET_FEED_RATE,
            "met": feed.rate() >= TARGET_FEED_RATE,
            "page_latency": feed.page_latency.to_json(),
            "cpu_per_1000_events": feed.cpu.to_json(feed.events_read.div_ceil(1000)),
        },
    });
    Ok((r, figures))
}
