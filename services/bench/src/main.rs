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
//! `--scenario lifecycle` measures instead whole placement lifecycles over
//! HTTP, the same pgbench baseline, and students reading their overview (see
//! `lifecycle`). `--scenario reports` measures students filing reports with
//! and without the protection of their content, and SBB listing the signals
//! schools forward (see `reports`). `--scenario matching` measures a
//! school-size matching round through the API (see `matching_round`).
//! `--scenario indicators` rebuilds the pact's indicators over a log of a
//! million events and reads them (see `indicators`). `--scenario soak` runs
//! lifecycles at 70% of the measured maximum for ten minutes with readers and
//! the feed beside them, minute by minute (see `soak`).
//!
//! It prints a report and writes the same figures as JSON.

mod activity;
mod dbstats;
mod feed;
mod header;
mod http_load;
mod indicators;
mod lifecycle;
mod machine;
mod matching_round;
mod parties;
mod pgbench;
mod pulse;
mod reads;
mod reports;
mod seed;
mod setup;
mod soak;
mod stats;

/// The server's allocator (see the `stagepact` binary): the API runs in this
/// process, so the bench measures it as it is deployed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use serde_json::{Value, json};

use crate::dbstats::DbCounters;
use crate::header::Header;
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

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Company commands (suspend / reinstate), projection lag, feed reads.
    Commands,
    /// Whole placement lifecycles, then students reading their overview.
    Lifecycle,
    /// Reports filed with and without protection, then signals listed.
    Reports,
    /// A school-size matching round through the API: run, read, publish.
    Matching,
    /// The pact's indicators over a log of about a million events: rebuild,
    /// then monitors reading `getIndicators`.
    Indicators,
    /// Lifecycles at a share of the measured maximum rate for minutes, with
    /// overview readers and a feed follower: flat rate, p99 and memory.
    Soak,
}

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "Benchmarks the Stagepact API against a pgbench baseline")]
struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Commands)]
    scenario: Scenario,
    /// Concurrent clients (HTTP load and pgbench alike).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Duration of the HTTP load (commands scenario) and of the pgbench run, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Events seeded for the feed read.
    #[arg(long, default_value_t = 100_000)]
    feed_events: i64,
    /// Companies per client (commands and reports scenarios).
    #[arg(long, default_value_t = 8)]
    companies_per_client: usize,
    /// Lifecycle scenario: placements walked from match to rating (one student each).
    #[arg(long, default_value_t = 10_000)]
    placements: usize,
    /// Lifecycle and reports scenarios: schools the students are spread over.
    #[arg(long, default_value_t = 8)]
    schools: usize,
    /// Lifecycle scenario: offers (one per company) per client.
    #[arg(long, default_value_t = 4)]
    offers_per_client: usize,
    /// Lifecycle scenario: concurrent readers of `GET /v1/me/overview`.
    #[arg(long, default_value_t = 200)]
    readers: usize,
    /// Lifecycle and reports scenarios: how long each read phase reads, in
    /// seconds (after a 2 s warm-up).
    #[arg(long, default_value_t = 15)]
    read_seconds: u64,
    /// Reports scenario: reports filed per phase, each by another student.
    #[arg(long, default_value_t = 10_000)]
    reports: usize,
    /// Reports scenario: rounds of filing phases (protected, students' first
    /// reports; protected, their second reports; control).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Reports scenario: share of the protected reports forwarded as a signal.
    #[arg(long, default_value_t = 0.25)]
    signal_share: f64,
    /// Reports scenario: concurrent readers of `GET /v1/signals`.
    #[arg(long, default_value_t = 8)]
    list_readers: usize,
    /// Indicators scenario: about how many events the log holds.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Indicators scenario: concurrent monitors reading `getIndicators`.
    #[arg(long, default_value_t = 4)]
    indicator_readers: usize,
    /// Soak scenario: minutes of the soak.
    #[arg(long, default_value_t = 10)]
    soak_minutes: u64,
    /// Soak scenario: the command rate as a share of the measured maximum.
    #[arg(long, default_value_t = 0.7)]
    soak_share: f64,
    /// Soak scenario: the highest maximum command rate (commands/s) the
    /// population is sized for.
    #[arg(long, default_value_t = 6_000.0)]
    soak_rate_ceiling: f64,
    /// Soak scenario: a fixed command rate (commands/s) instead of the share
    /// of the measured maximum, to compare runs on a machine whose maximum
    /// varies from run to run (the maximum is still measured and reported).
    #[arg(long)]
    soak_rate: Option<f64>,
    /// Soak scenario: overview readers.
    #[arg(long, default_value_t = 8)]
    soak_readers: usize,
    /// Soak scenario: overview requests per second, all readers together.
    #[arg(long, default_value_t = 100.0)]
    soak_read_rate: f64,
    /// Load pg_stat_statements and report the top statements of each load
    /// phase (a diagnostic: it slows PostgreSQL down a little).
    #[arg(long)]
    statement_stats: bool,
    /// A PostgreSQL setting for the private cluster, `KEY=VALUE`; repeatable
    /// (an experiment: the recorded results use the cluster's defaults).
    #[arg(long = "pg-setting", value_parser = parse_setting)]
    pg_settings: Vec<(String, String)>,
    /// Make PostgreSQL log autovacuum, checkpoints, lock waits, slow
    /// statements and temporary files (with millisecond timestamps) and copy
    /// its log here at the end: a diagnostic for stalls.
    #[arg(long)]
    pg_log: Option<PathBuf>,
    /// Where to write the JSON results [default: bench-results/latest.json,
    /// or bench-results/<scenario>.json for the lifecycle and reports scenarios].
    #[arg(long)]
    output: Option<PathBuf>,
}

/// `KEY=VALUE`, for `--pg-setting`.
fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            // The value as given: trailing spaces can matter (`log_line_prefix`).
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

impl Args {
    fn output(&self) -> PathBuf {
        let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench-results");
        self.output.clone().unwrap_or_else(|| match self.scenario {
            Scenario::Commands => results.join("latest.json"),
            Scenario::Lifecycle => results.join("lifecycle.json"),
            Scenario::Reports => results.join("reports.json"),
            Scenario::Matching => results.join("matching.json"),
            Scenario::Indicators => results.join("indicators.json"),
            Scenario::Soak => results.join("soak.json"),
        })
    }
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
    anyhow::ensure!(
        args.placements > 0 && args.schools > 0 && args.offers_per_client > 0,
        "--placements, --schools and --offers-per-client must be positive"
    );
    anyhow::ensure!(
        args.readers > 0 && args.read_seconds > 0,
        "--readers and --read-seconds must be positive"
    );
    anyhow::ensure!(
        args.reports > 0 && args.rounds > 0 && args.list_readers > 0,
        "--reports, --rounds and --list-readers must be positive"
    );
    anyhow::ensure!(
        args.signal_share > 0.0 && args.signal_share <= 1.0,
        "--signal-share must be in (0, 1]"
    );
    let machine = Machine::read();
    eprintln!("starting a private durable PostgreSQL and the API ...");
    let env =
        Env::start(args.clients, args.statement_stats, args.pg_log.is_some(), &args.pg_settings)
            .await?;
    let header = Header::of(&machine, &env);
    let result = match args.scenario {
        Scenario::Commands => run(&args, &header, &env).await,
        Scenario::Lifecycle => {
            let options = lifecycle::Options {
                clients: args.clients,
                placements: args.placements,
                schools: args.schools,
                offers_per_client: args.offers_per_client,
                pgbench_seconds: args.seconds,
                readers: args.readers,
                read_seconds: args.read_seconds,
                statement_stats: args.statement_stats,
            };
            lifecycle::run(&options, &header, &env).await
        }
        Scenario::Reports => {
            let options = reports::Options {
                clients: args.clients,
                companies_per_client: args.companies_per_client,
                schools: args.schools,
                reports_per_phase: args.reports,
                rounds: args.rounds,
                signal_share: args.signal_share,
                list_readers: args.list_readers,
                read_seconds: args.read_seconds,
                statement_stats: args.statement_stats,
            };
            reports::run(&options, &header, &env).await
        }
        Scenario::Matching => matching_round::run(&header, &env).await,
        Scenario::Indicators => {
            let options = indicators::Options {
                events: args.events,
                readers: args.indicator_readers,
                read_seconds: args.read_seconds,
                statement_stats: args.statement_stats,
            };
            indicators::run(&options, &header, &env).await
        }
        Scenario::Soak => {
            anyhow::ensure!(
                args.soak_minutes > 0
                    && args.soak_share > 0.0
                    && args.soak_share <= 1.0
                    && args.soak_readers > 0
                    && args.soak_read_rate > 0.0
                    && args.soak_rate_ceiling > 0.0
                    && args.soak_rate.is_none_or(|rate| rate > 0.0),
                "--soak-minutes, --soak-readers, --soak-read-rate and --soak-rate-ceiling and --soak-rate must be positive, --soak-share in (0, 1]"
            );
            let options = soak::Options {
                clients: args.clients,
                schools: args.schools,
                offers_per_client: args.offers_per_client,
                minutes: args.soak_minutes,
                share: args.soak_share,
                rate_ceiling: args.soak_rate_ceiling,
                readers: args.soak_readers,
                read_rate: args.soak_read_rate,
                rate: args.soak_rate,
            };
            soak::run(&options, &header, &env).await
        }
    };
    if let Some(path) = &args.pg_log {
        // Copied before the stop, which deletes the cluster's directory. A
        // failed copy must not cost the run's results.
        match std::fs::copy(env.pg_log(), path) {
            Ok(_) => eprintln!("PostgreSQL's log copied to {}", path.display()),
            Err(error) => {
                eprintln!("could not copy PostgreSQL's log to {}: {error}", path.display())
            }
        }
    }
    env.stop().await?;
    let (report, figures) = result?;
    println!("{report}");
    let output = args.output();
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&output, serde_json::to_string_pretty(&figures)? + "\n")
        .with_context(|| format!("writing {}", output.display()))?;
    let shown = output.canonicalize().unwrap_or_else(|_| output.clone());
    println!("JSON written to {}", shown.display());
    Ok(())
}

async fn run(args: &Args, header: &Header, env: &Env) -> anyhow::Result<(String, Value)> {
    let (clients, per_client, seconds) = (args.clients, args.companies_per_client, args.seconds);

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
    let ratio = |baseline: &Baseline| load.rate() / baseline.run.tps;

    let mut r = String::new();
    let mut line = |text: String| {
        r.push_str(&text);
        r.push('\n');
    };
    for text in &header.lines {
        line(text.clone());
    }
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
        for text in baseline.lines(clients, seconds) {
            line(text);
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
        pgbench_json.insert(baseline.variant.key().to_owned(), baseline.to_json(clients, seconds));
        ratio_json.insert(
            baseline.variant.key().to_owned(),
            json!({"value": round(ratio(baseline)), "met": ratio(baseline) >= TARGET_RATIO}),
        );
    }
    ratio_json.insert("target_min".to_owned(), json!(TARGET_RATIO));

    let rest = json!({
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
    Ok((r, header.figures(rest)))
}

#[cfg(test)]
mod tests {
    use super::parse_setting;

    #[test]
    fn a_setting_is_key_equals_value() {
        assert_eq!(parse_setting("max_wal_size=4GB"), Ok(("max_wal_size".into(), "4GB".into())));
        assert_eq!(
            parse_setting("log_line_prefix=%m [%p] "),
            Ok(("log_line_prefix".into(), "%m [%p] ".into()))
        );
        assert!(parse_setting("max_wal_size").is_err());
        assert!(parse_setting("=4GB").is_err());
    }
}
