//! The baseline: pgbench doing the SQL of one command (load an aggregate,
//! append one event in a transaction) with the same number of clients.
//!
//! Two scripts: the one the benchmark was specified with (load the whole
//! history), and one mirroring the command path as it is now (postgres-es's
//! snapshot store: load the snapshot and the events after it, append, and
//! rewrite the snapshot every [`SNAPSHOT_EVERY`] events).

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::dbstats::{DbCounters, PerUnit, StatementStat};
use crate::machine::{CpuSample, CpuUse};
use crate::setup::{DATABASE, Env};
use crate::stats::Summary;

/// The aggregate type of the baseline's aggregates (not projected, not in the feed).
pub const AGGREGATE_TYPE: &str = "pgbench";
/// Events between snapshots in the API's command path (`SNAPSHOT_EVERY` in
/// `stagepact_store::commands`).
pub const SNAPSHOT_EVERY: i64 = 20;
/// Length of a pilot run, in seconds.
pub const PILOT_SECONDS: u64 = 3;

/// Which SQL a baseline transaction does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// As specified: load every event of the aggregate, append one.
    FullHistory,
    /// As the command path does it now: snapshot, events after it, append,
    /// and every [`SNAPSHOT_EVERY`]th event a snapshot update.
    Snapshot,
}

impl Variant {
    /// A short name, used in JSON keys and file names.
    pub fn key(self) -> &'static str {
        match self {
            Self::FullHistory => "full_history",
            Self::Snapshot => "snapshot",
        }
    }

    /// For the human report.
    pub fn title(self) -> &'static str {
        match self {
            Self::FullHistory => {
                "full history: load every event, append one (the specified script)"
            }
            Self::Snapshot => {
                "snapshot: load snapshot + later events, append one, snapshot every 20 (mirrors the current command path)"
            }
        }
    }

    fn prefix(self, pilot: bool) -> &'static str {
        match (self, pilot) {
            (Self::FullHistory, false) => "pgf-",
            (Self::FullHistory, true) => "pgfpilot-",
            (Self::Snapshot, false) => "pgs-",
            (Self::Snapshot, true) => "pgspilot-",
        }
    }
}

/// What pgbench measured.
#[derive(Debug)]
pub struct PgbenchOutcome {
    /// Transactions per second, as pgbench reports it (without connection time).
    pub tps: f64,
    /// Transactions processed.
    pub transactions: u64,
    /// Transactions pgbench counted as failed.
    pub failed: u64,
    /// Per-transaction latency from pgbench's log.
    pub latency: Summary,
    /// Events per baseline aggregate when the run started.
    pub events_per_aggregate_before: f64,
    /// Events per baseline aggregate when the run ended.
    pub events_per_aggregate_after: f64,
    /// Aggregates per client.
    pub per_client: usize,
    /// The script pgbench ran.
    pub script: String,
    /// The command line (program and arguments).
    pub command: String,
}

/// A measured baseline: the pilot that sized it, the run, and what it cost.
#[derive(Debug)]
pub struct Baseline {
    /// The script.
    pub variant: Variant,
    /// The pilot's tps (on aggregates of the HTTP run's mean size).
    pub pilot_tps: f64,
    /// The measured run.
    pub run: PgbenchOutcome,
    /// CPU use during the run.
    pub cpu: CpuUse,
    /// Database work per transaction.
    pub db: PerUnit,
    /// Top statements, with `--statement-stats`.
    pub statements: Vec<StatementStat>,
}

impl Baseline {
    /// The baseline for the human report (`clients` and `seconds` of the run).
    pub fn lines(&self, clients: usize, seconds: u64) -> Vec<String> {
        let run = &self.run;
        let mut lines = vec![
            format!("-- pgbench baseline, {} --", self.variant.title()),
            format!("  {} transactions, {:.1} tps; failed: {}", run.transactions, run.tps, run.failed),
            format!("  latency: {}", run.latency.line()),
            format!(
                "  {} aggregates ({} per client, sized by a {} s pilot at {:.0} tps); events per aggregate: {:.1} before, {:.1} after (mean over the run {:.1})",
                clients * run.per_client,
                run.per_client,
                PILOT_SECONDS.min(seconds),
                self.pilot_tps,
                run.events_per_aggregate_before,
                run.events_per_aggregate_after,
                (run.events_per_aggregate_before + run.events_per_aggregate_after) / 2.0
            ),
            "  the API kept running: its sequencer stamped (and its projector skipped) the pgbench rows".into(),
            format!("  {}", self.cpu.line(run.transactions, "transaction")),
            format!("  PostgreSQL work per transaction: {}", self.db.line()),
        ];
        if !self.statements.is_empty() {
            lines.push(
                "  top statements (pg_stat_statements; per unit = per pgbench transaction):".into(),
            );
            lines.extend(crate::dbstats::statements_lines(&self.statements, run.transactions));
        }
        lines
    }

    /// The baseline as JSON (`clients` and `seconds` of the run).
    pub fn to_json(&self, clients: usize, seconds: u64) -> Value {
        use crate::stats::round;
        let run = &self.run;
        json!({
            "description": self.variant.title(),
            "transactions": run.transactions,
            "failed": run.failed,
            "tps": round(run.tps),
            "latency": run.latency.to_json(),
            "aggregates": clients * run.per_client,
            "aggregates_per_client": run.per_client,
            "pilot_seconds": PILOT_SECONDS.min(seconds),
            "pilot_tps": round(self.pilot_tps),
            "events_per_aggregate_before": round(run.events_per_aggregate_before),
            "events_per_aggregate_after": round(run.events_per_aggregate_after),
            "api_running": true,
            "command": run.command,
            "script": run.script,
            "cpu": self.cpu.to_json(run.transactions),
            "postgresql_per_transaction": self.db.to_json(),
            "top_statements": crate::dbstats::statements_json(&self.statements, run.transactions),
        })
    }
}

/// What the baseline must match of the HTTP run.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Concurrent clients.
    pub clients: usize,
    /// Aggregates per client in the HTTP run (and the pilot).
    pub per_client: usize,
    /// Length of the run.
    pub seconds: u64,
    /// Events per aggregate before the HTTP run.
    pub initial_events: i64,
    /// Mean events per aggregate over the HTTP run.
    pub http_mean: f64,
    /// Events per aggregate after the HTTP run.
    pub http_final: f64,
    /// Whether to collect `pg_stat_statements`.
    pub statement_stats: bool,
}

/// Runs one baseline. Its aggregates should look like the HTTP ones over the
/// run: `initial_events` events at the start and, on average, as many
/// appended per aggregate. pgbench appends faster, so it gets more aggregates
/// per client: as many as a short pilot (on aggregates of the HTTP run's mean
/// size) says it needs to grow them by the same number of events.
pub async fn measure(env: &Env, variant: Variant, shape: Shape) -> anyhow::Result<Baseline> {
    let Shape {
        clients,
        per_client,
        seconds,
        initial_events,
        http_mean,
        http_final,
        statement_stats,
    } = shape;
    eprintln!("pgbench {} pilot ({PILOT_SECONDS} s) to size the baseline ...", variant.key());
    let pilot_prefix = variant.prefix(true);
    prepare(env, variant, pilot_prefix, clients * per_client, http_mean.round() as i64).await?;
    env.settle().await?;
    let pilot =
        run(env, variant, pilot_prefix, clients, per_client, PILOT_SECONDS.min(seconds)).await?;
    let growth = (http_final - initial_events as f64).max(1.0);
    let pg_per_client =
        ((pilot.tps * seconds as f64 / growth / clients as f64).ceil() as usize).max(per_client);
    eprintln!(
        "pgbench {}: {} aggregates ({pg_per_client} per client) with {initial_events} events each, {clients} clients for {seconds} s ...",
        variant.key(),
        clients * pg_per_client
    );
    let prefix = variant.prefix(false);
    prepare(env, variant, prefix, clients * pg_per_client, initial_events).await?;
    env.settle().await?;
    let db_before = DbCounters::read(&env.pool).await?;
    if statement_stats {
        crate::dbstats::reset_statements(&env.pool).await?;
    }
    let cpu_before = CpuSample::now();
    let outcome = run(env, variant, prefix, clients, pg_per_client, seconds).await?;
    let cpu = cpu_before.until(CpuSample::now());
    let db = db_before.per_unit(DbCounters::read(&env.pool).await?, outcome.transactions);
    let statements = if statement_stats {
        crate::dbstats::top_statements(&env.pool, crate::dbstats::TOP_STATEMENTS).await?
    } else {
        Vec::new()
    };
    Ok(Baseline { variant, pilot_tps: pilot.tps, run: outcome, cpu, db, statements })
}

/// Whether the database has postgres-es's snapshot table.
pub async fn has_snapshots(env: &Env) -> anyhow::Result<bool> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('snapshots') IS NOT NULL")
        .fetch_one(&env.pool)
        .await
        .context("looking for the snapshot table")?;
    Ok(exists)
}

/// A snapshot payload like the API's: one the HTTP run wrote if there is one.
async fn snapshot_payload(env: &Env) -> anyhow::Result<Value> {
    let payload: Option<Value> = sqlx::query_scalar(
        "SELECT payload FROM snapshots WHERE aggregate_type = 'company' ORDER BY last_sequence DESC LIMIT 1",
    )
    .fetch_optional(&env.pool)
    .await
    .context("reading a snapshot of the HTTP run")?;
    Ok(payload.unwrap_or_else(
        || json!({"record": {"company_id": "pgbench", "name": "Benchmark company"}}),
    ))
}

/// Creates `aggregates` baseline aggregates `<prefix>000000`, ... with
/// `events_each` events each (and, for [`Variant::Snapshot`], a snapshot at
/// the last multiple of [`SNAPSHOT_EVERY`], or an empty one at 0).
async fn prepare(
    env: &Env,
    variant: Variant,
    prefix: &str,
    aggregates: usize,
    events_each: i64,
) -> anyhow::Result<()> {
    let metadata = json!({"actor": "bench", "actor_role": "sbb", "request_id": uuid::Uuid::new_v4().to_string()});
    let total = i64::try_from(aggregates)? * events_each;
    crate::seed::write_histories(&env.pool, AGGREGATE_TYPE, prefix, total, events_each, &metadata)
        .await?;
    if variant == Variant::Snapshot {
        let payload = snapshot_payload(env).await?;
        let snapshots = events_each / SNAPSHOT_EVERY;
        sqlx::query(
            "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload)
             SELECT $1, $2 || lpad(i::text, 6, '0'), $3, $4, $5
               FROM generate_series(0, $6 - 1) AS i",
        )
        .bind(AGGREGATE_TYPE)
        .bind(prefix)
        .bind(snapshots * SNAPSHOT_EVERY)
        .bind(snapshots)
        .bind(&payload)
        .bind(i64::try_from(aggregates)?)
        .execute(&env.pool)
        .await
        .context("writing the baseline's snapshots")?;
    }
    Ok(())
}

/// The custom script: the SQL of one suspend or reinstate command as
/// postgres-es issues it, on one of the client's own aggregates. Literal JSON
/// stays out of the snapshot update (pgbench would read `:x` in it as a
/// variable); it rewrites the stored payload, which has the API's size.
fn script(variant: Variant, prefix: &str, per_client: usize) -> String {
    let id = format!("'{prefix}' || lpad(CAST(:agg AS text), 6, '0')");
    let key = format!("aggregate_type = '{AGGREGATE_TYPE}' AND aggregate_id = {id}");
    let columns =
        "aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata";
    let insert = format!(
        "INSERT INTO events ({columns}) VALUES ('{AGGREGATE_TYPE}', {id}, (SELECT coalesce(max(sequence), 0) + 1 FROM events WHERE {key}), 'RecognitionSuspended', '1', '{{\"RecognitionSuspended\": {{\"reason\": \"Onderzoek gestart: benchmark\"}}}}', jsonb_build_object('actor', 'bench', 'actor_role', 'sbb', 'request_id', gen_random_uuid()::text))"
    );
    let last = per_client.saturating_sub(1);
    match variant {
        Variant::FullHistory => format!(
            "\\set agg :client_id * {per_client} + random(0, {last})
SELECT {columns} FROM events WHERE {key} ORDER BY sequence;
BEGIN;
{insert};
END;
"
        ),
        Variant::Snapshot => format!(
            "\\set agg :client_id * {per_client} + random(0, {last})
SELECT aggregate_type, aggregate_id, last_sequence, current_snapshot, payload FROM snapshots WHERE {key} \\gset
SELECT {columns} FROM events WHERE {key} AND sequence > :last_sequence ORDER BY sequence;
BEGIN;
{insert} RETURNING sequence \\gset
\\if :sequence % {SNAPSHOT_EVERY} = 0
UPDATE snapshots SET last_sequence = :sequence, payload = payload, current_snapshot = :current_snapshot + 1 WHERE {key} AND current_snapshot = :current_snapshot;
\\endif
END;
"
        ),
    }
}

async fn events_per_aggregate(env: &Env, prefix: &str) -> anyhow::Result<f64> {
    let mean: Option<f64> = sqlx::query_scalar(
        "SELECT count(*)::float8 / nullif(count(DISTINCT aggregate_id), 0) FROM events
          WHERE aggregate_type = $1 AND starts_with(aggregate_id, $2)",
    )
    .bind(AGGREGATE_TYPE)
    .bind(prefix)
    .fetch_one(&env.pool)
    .await?;
    Ok(mean.unwrap_or_default())
}

/// Runs pgbench with `clients` clients for `seconds` over the cluster's
/// socket, each client appending to its own `per_client` aggregates among
/// those `prefix` names.
async fn run(
    env: &Env,
    variant: Variant,
    prefix: &str,
    clients: usize,
    per_client: usize,
    seconds: u64,
) -> anyhow::Result<PgbenchOutcome> {
    let dir = env.scratch().join(format!("pgbench-{prefix}"));
    fs::create_dir_all(&dir).context("creating the pgbench directory")?;
    let script_path = dir.join("command.sql");
    let script = script(variant, prefix, per_client);
    fs::write(&script_path, &script).context("writing the pgbench script")?;
    let program = env.binaries.path("pgbench");
    let args: Vec<String> = vec![
        "-h".into(),
        env.cluster.socket_dir().display().to_string(),
        "-p".into(),
        env.cluster.port().to_string(),
        "-U".into(),
        env.cluster.superuser().to_owned(),
        "-n".into(),
        "-f".into(),
        script_path.display().to_string(),
        "-c".into(),
        clients.to_string(),
        "-j".into(),
        "2".into(),
        "-T".into(),
        seconds.to_string(),
        "-M".into(),
        "prepared".into(),
        "-l".into(),
        format!("--log-prefix={}", dir.join("log").display()),
        DATABASE.into(),
    ];
    let before = events_per_aggregate(env, prefix).await?;
    let mut command = tokio::process::Command::new(&program);
    command.args(&args).stdin(std::process::Stdio::null());
    // No PG* variable from our environment may redirect pgbench.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            command.env_remove(name);
        }
    }
    let output = tokio::time::timeout(Duration::from_secs(seconds + 120), command.output())
        .await
        .context("pgbench did not finish")?
        .with_context(|| format!("running {}", program.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("pgbench failed ({}):\n{stdout}\n{stderr}", output.status);
    }
    let tps = stdout
        .lines()
        .find(|line| line.starts_with("tps = ") && line.contains("without initial connection time"))
        .or_else(|| stdout.lines().find(|line| line.starts_with("tps = ")))
        .and_then(|line| line.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .with_context(|| format!("no tps in pgbench's output:\n{stdout}"))?;
    let count_after = |label: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    let transactions =
        count_after("number of transactions actually processed: ").unwrap_or_default();
    let failed = count_after("number of failed transactions: ").unwrap_or_default();
    let latencies = read_logs(&dir)?;
    if latencies.is_empty() {
        bail!("pgbench wrote no transaction log in {}", dir.display());
    }
    let after = events_per_aggregate(env, prefix).await?;
    Ok(PgbenchOutcome {
        tps,
        transactions,
        failed,
        latency: Summary::of(&latencies),
        events_per_aggregate_before: before,
        events_per_aggregate_after: after,
        per_client,
        script,
        command: format!("{} {}", program.display(), args.join(" ")),
    })
}

/// Latencies (ms) from pgbench's per-transaction logs (`log.<pid>[.<thread>]`):
/// the third column is the latency in microseconds.
fn read_logs(dir: &Path) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::new();
    for entry in fs::read_dir(dir).context("listing the pgbench logs")? {
        let path = entry?.path();
        let is_log =
            path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("log."));
        if !is_log {
            continue;
        }
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        latencies.extend(
            text.lines()
                .filter_map(|line| line.split_whitespace().nth(2))
                .filter_map(|micros| micros.parse::<f64>().ok())
                .map(|micros| micros / 1000.0),
        );
    }
    Ok(latencies)
}
