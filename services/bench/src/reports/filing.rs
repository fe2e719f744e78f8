//! The timed filing phases: `clients` clients file one report for each
//! student of the phase (`POST /v1/reports`), with the vault's protection on
//! (A: each student's first report, which creates the student's key unless
//! enrolment did, as "keys created" shows; K: a second report of A's
//! students, whose keys exist) or switched off (B, the control), otherwise
//! the same requests.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use stagepact_store::vault::bench_plaintext::PLAINTEXT_KEY;

use super::Population;
use super::batch::{self, BatchOutcome, Request};
use crate::dbstats::{self, DbCounters, PerUnit, StatementStat};
use crate::setup::Env;
use crate::stats::round;

/// What each report says happened: about 600 characters in two paragraphs.
const DESCRIPTION: &str = "Tijdens het sollicitatiegesprek voor mijn stage vroeg de praktijkopleider \
    waar mijn ouders vandaan komen en of ik tijdens de ramadan wel volledig kon meedraaien. Een \
    week later kreeg ik te horen dat de plek al vergeven was, maar de vacature stond twee dagen \
    later nog steeds open en een klasgenoot met een Nederlandse achternaam werd de volgende dag \
    uitgenodigd.\n\nMijn stagebegeleider op school heb ik hier nog niet over gesproken omdat ik \
    bang ben dat het mijn kansen bij andere bedrijven in de regio verkleint. Ik wil graag een \
    andere stageplek zonder studievertraging.";

/// The kinds in turn, with the grounds of the discrimination reports in turn.
const KINDS: [&str; 4] = ["discrimination", "misuse", "discrimination", "unsafe_environment"];
/// The grounds of successive discrimination reports.
const GROUNDS: [&[&str]; 4] =
    [&["origin", "religion"], &["origin"], &["sex"], &["disability_or_illness"]];

/// The body of the `index`th report of a phase: every phase files the same
/// sequence of bodies, so protected and control phases send the same shapes
/// and sizes.
fn body(index: usize, company_id: &str) -> String {
    let kind = KINDS[index % KINDS.len()];
    let grounds: &[&str] =
        if kind == "discrimination" { GROUNDS[(index / 2) % GROUNDS.len()] } else { &[] };
    json!({
        "kind": kind,
        "grounds": grounds,
        "company_id": company_id,
        "description": DESCRIPTION,
        "wants_replacement_placement": index.is_multiple_of(2),
        "consent_to_forward": true,
    })
    .to_string()
}

/// How a phase's content is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Sealed; every report is its student's first (the vault creates the
    /// key if enrolment did not).
    FirstReport,
    /// Sealed; every report is its student's second, so the key exists.
    SecondReport,
    /// The control: the vault's protection is switched off.
    Control,
}

impl Mode {
    /// The letter of the phase names.
    pub fn letter(self) -> &'static str {
        match self {
            Self::FirstReport => "A",
            Self::SecondReport => "K",
            Self::Control => "B",
        }
    }

    /// Whether the vault protects the content.
    pub fn protected(self) -> bool {
        self != Self::Control
    }

    fn title(self) -> &'static str {
        match self {
            Self::FirstReport => "protected, students' first reports",
            Self::SecondReport => "protected, students' second reports",
            Self::Control => "control: protection off",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::FirstReport => "protected_first_report",
            Self::SecondReport => "protected_second_report",
            Self::Control => "control",
        }
    }
}

/// One measured filing phase.
#[derive(Debug)]
pub struct Phase {
    /// `A1`, `K1`, `B1`, `A2`, ...
    pub name: String,
    /// How the content was stored.
    pub mode: Mode,
    /// When the clients started (to match with a record of the machine's load).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The students who filed (one report each), indices into the population.
    pub students: Range<usize>,
    /// What the clients measured; `ids` are the report ids, per student.
    pub outcome: BatchOutcome,
    /// PostgreSQL's work per report.
    pub db: PerUnit,
    /// Keys the vault created during the phase.
    pub keys_created: i64,
    /// Top statements, with `--statement-stats`.
    pub statements: Vec<StatementStat>,
}

impl Phase {
    /// Reports filed per second.
    pub fn rate(&self) -> f64 {
        self.outcome.rate()
    }

    /// For the human report.
    pub fn lines(&self) -> Vec<String> {
        let o = &self.outcome;
        let mut lines = vec![
            format!(
                "  phase {} ({}): {} reports in {:.2} s = {:.1} reports/s; errors: {}{}; keys created: {}",
                self.name,
                self.mode.title(),
                o.ok,
                o.elapsed.as_secs_f64(),
                self.rate(),
                o.errors,
                if o.error_kinds.is_empty() {
                    String::new()
                } else {
                    format!(" {:?}", o.error_kinds)
                },
                self.keys_created
            ),
            format!("    latency: {}", o.latency.line()),
            format!("    {}", o.cpu.line(o.ok, "report")),
            format!("    PostgreSQL work per report: {}", self.db.line()),
        ];
        for failure in &o.first_errors {
            lines.push(format!("    first error: {}: {}", failure.status, failure.body));
        }
        if !self.statements.is_empty() {
            lines.push("    top statements (pg_stat_statements; per unit = per report):".into());
            lines.extend(dbstats::statements_lines(&self.statements, o.ok));
        }
        lines
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        let o = &self.outcome;
        json!({
            "phase": self.name,
            "mode": self.mode.key(),
            "protected": self.mode.protected(),
            "started_at": self.started_at.to_rfc3339(),
            "reports": o.ok,
            "errors": o.errors,
            "error_kinds": o.error_kinds,
            "first_errors": o.first_errors.iter().map(|f| json!({"status": f.status, "body": f.body})).collect::<Vec<_>>(),
            "elapsed_s": round(o.elapsed.as_secs_f64()),
            "commands_per_s": round(self.rate()),
            "latency": o.latency.to_json(),
            "keys_created": self.keys_created,
            "cpu": o.cpu.to_json(o.ok),
            "postgresql_per_command": self.db.to_json(),
            "top_statements": dbstats::statements_json(&self.statements, o.ok),
        })
    }
}

/// Waits until every event is stamped and every projection has applied it,
/// then runs `VACUUM`, `ANALYZE` and `CHECKPOINT`: no phase pays for an
/// earlier one's projection, vacuum or checkpoint.
pub async fn catch_up(env: &Env) -> anyhow::Result<()> {
    let head = crate::seed::await_stamped(env, Duration::from_secs(600)).await?;
    for name in env.state.projections.names() {
        if !env.state.projections.await_position(name, head, Duration::from_secs(600)).await? {
            bail!("projection {name} did not reach position {head}");
        }
    }
    sqlx::query("VACUUM").execute(&env.pool).await.context("running VACUUM")?;
    env.settle().await
}

async fn key_count(env: &Env) -> anyhow::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM subject_keys")
        .fetch_one(&env.pool)
        .await
        .context("counting the vault's keys")
}

/// Runs one phase: each student of `students` files one report, the `i`th
/// report of the phase about company `i % companies`.
pub async fn run(
    env: &Env,
    population: &Population,
    name: String,
    mode: Mode,
    students: Range<usize>,
    statement_stats: bool,
) -> anyhow::Result<Phase> {
    let requests: Vec<Request> = students
        .clone()
        .enumerate()
        .map(|(index, student)| Request {
            path: "/v1/reports".to_owned(),
            token: population.students[student].party.token.clone(),
            body: Some(body(index, &population.companies[index % population.companies.len()])),
        })
        .collect();
    env.state.vault.set_plaintext_for_bench(!mode.protected());
    catch_up(env).await?;
    eprintln!(
        "reports: phase {name} ({}): {} clients file {} reports ...",
        mode.title(),
        population.clients,
        requests.len()
    );
    let keys_before = key_count(env).await?;
    let db_before = DbCounters::read(&env.pool).await?;
    if statement_stats {
        dbstats::reset_statements(&env.pool).await?;
    }
    let started_at = chrono::Utc::now();
    let outcome = batch::run(env, Arc::new(requests), population.clients, "report_id").await?;
    let db = db_before.per_unit(DbCounters::read(&env.pool).await?, outcome.ok);
    let statements = if statement_stats {
        dbstats::top_statements(&env.pool, dbstats::TOP_STATEMENTS).await?
    } else {
        Vec::new()
    };
    let keys_created = key_count(env).await? - keys_before;
    env.state.vault.set_plaintext_for_bench(false);
    for failure in &outcome.first_errors {
        eprintln!("first error: {}: {}", failure.status, failure.body);
    }
    Ok(Phase { name, mode, started_at, students, outcome, db, keys_created, statements })
}

/// How the filed reports are stored, protected and control apart: the check
/// that the control stored plaintext (under [`PLAINTEXT_KEY`]) and that both
/// wrote events of the same size, and what that size takes on disk
/// (`pg_column_size`: after compression, which ciphertext resists).
#[derive(Debug)]
pub struct Stored {
    /// `(protected, events, mean payload bytes, mean stored bytes)`.
    pub rows: Vec<(bool, i64, f64, f64)>,
}

impl Stored {
    /// Reads the report events.
    pub async fn read(env: &Env) -> anyhow::Result<Self> {
        let rows: Vec<(bool, i64, f64, f64)> = sqlx::query_as(
            "SELECT payload #>> '{ReportFiled,description,sealed}' <> $1 AS protected,
                    count(*), avg(octet_length(payload::text))::float8,
                    avg(pg_column_size(payload))::float8
               FROM events WHERE aggregate_type = 'report' AND event_type = 'ReportFiled'
              GROUP BY 1 ORDER BY 1 DESC",
        )
        .bind(PLAINTEXT_KEY.to_string())
        .fetch_all(&env.pool)
        .await
        .context("reading the report events")?;
        Ok(Self { rows })
    }

    /// For the human report.
    pub fn line(&self) -> String {
        let parts: Vec<String> = self
            .rows
            .iter()
            .map(|(protected, events, bytes, stored)| {
                format!(
                    "{} {events} (payload {bytes:.0} bytes as text, {stored:.0} bytes stored, on average)",
                    if *protected { "sealed under a student's key" } else { "plaintext (control)" }
                )
            })
            .collect();
        format!("  ReportFiled events stored: {}", parts.join("; "))
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|(protected, events, bytes, stored)| {
                    json!({"protected": protected, "events": events, "mean_payload_bytes": round(*bytes), "mean_stored_bytes": round(*stored)})
                })
                .collect(),
        )
    }
}
