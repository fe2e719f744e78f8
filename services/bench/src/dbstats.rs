//! What PostgreSQL did during a phase: transactions, tuples and WAL from the
//! cumulative statistics views, and optionally the top statements from
//! `pg_stat_statements`.

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use sqlx::PgPool;

/// Cumulative counters at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct DbCounters {
    /// Committed transactions in the benchmark database (read-only ones too).
    xact_commit: i64,
    /// Rolled-back transactions.
    xact_rollback: i64,
    /// Rows inserted.
    tup_inserted: i64,
    /// Rows updated.
    tup_updated: i64,
    /// Rows deleted.
    tup_deleted: i64,
    /// WAL records written (cluster-wide).
    wal_records: i64,
    /// WAL bytes written (cluster-wide).
    wal_bytes: i64,
    /// WAL flushes to disk (cluster-wide).
    wal_sync: i64,
}

impl DbCounters {
    /// Reads the counters, after giving backends a moment to report theirs
    /// (they flush statistics at most once a second while busy).
    pub async fn read(pool: &PgPool) -> anyhow::Result<Self> {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted): (
            i64,
            i64,
            i64,
            i64,
            i64,
        ) = sqlx::query_as(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted
                   FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(pool)
        .await
        .context("reading pg_stat_database")?;
        let (wal_records, wal_bytes, wal_sync): (i64, i64, i64) =
            sqlx::query_as("SELECT wal_records, wal_bytes::int8, wal_sync FROM pg_stat_wal")
                .fetch_one(pool)
                .await
                .context("reading pg_stat_wal")?;
        Ok(Self {
            xact_commit,
            xact_rollback,
            tup_inserted,
            tup_updated,
            tup_deleted,
            wal_records,
            wal_bytes,
            wal_sync,
        })
    }

    /// What happened between `self` (earlier) and `later`, per unit of work
    /// (`units` commands or transactions).
    pub fn per_unit(self, later: Self, units: u64) -> PerUnit {
        let per = |a: i64, b: i64| (b - a) as f64 / units.max(1) as f64;
        PerUnit {
            transactions: per(
                self.xact_commit + self.xact_rollback,
                later.xact_commit + later.xact_rollback,
            ),
            rows_inserted: per(self.tup_inserted, later.tup_inserted),
            rows_updated: per(self.tup_updated, later.tup_updated),
            rows_deleted: per(self.tup_deleted, later.tup_deleted),
            wal_records: per(self.wal_records, later.wal_records),
            wal_bytes: per(self.wal_bytes, later.wal_bytes),
            wal_syncs: per(self.wal_sync, later.wal_sync),
        }
    }
}

/// Database work per command (or per pgbench transaction).
#[derive(Debug, Clone, Copy, Default)]
pub struct PerUnit {
    /// Transactions, committed or rolled back (autocommit statements count one each).
    pub transactions: f64,
    /// Rows inserted.
    pub rows_inserted: f64,
    /// Rows updated.
    pub rows_updated: f64,
    /// Rows deleted.
    pub rows_deleted: f64,
    /// WAL records.
    pub wal_records: f64,
    /// WAL bytes.
    pub wal_bytes: f64,
    /// WAL flushes to disk.
    pub wal_syncs: f64,
}

impl PerUnit {
    /// As JSON.
    pub fn to_json(self) -> Value {
        use crate::stats::round;
        json!({
            "transactions": round(self.transactions),
            "rows_inserted": round(self.rows_inserted),
            "rows_updated": round(self.rows_updated),
            "rows_deleted": round(self.rows_deleted),
            "wal_records": round(self.wal_records),
            "wal_bytes": round(self.wal_bytes),
            "wal_syncs": round(self.wal_syncs),
        })
    }

    /// For the human report.
    pub fn line(self) -> String {
        format!(
            "{:.2} transactions, {:.2} rows inserted, {:.2} updated, {:.2} deleted, {:.1} WAL records, {:.0} WAL bytes, {:.3} WAL flushes",
            self.transactions,
            self.rows_inserted,
            self.rows_updated,
            self.rows_deleted,
            self.wal_records,
            self.wal_bytes,
            self.wal_syncs
        )
    }
}

/// One statement's share of a phase, from `pg_stat_statements`.
#[derive(Debug, Clone)]
pub struct StatementStat {
    /// The normalised statement text (shortened).
    pub query: String,
    /// Executions.
    pub calls: i64,
    /// Total execution time, ms.
    pub total_ms: f64,
}

/// The name of the first entry of [`top_statements`]: every statement.
pub const ALL_STATEMENTS: &str = "(all statements)";

/// Statements listed per phase with `--statement-stats`.
pub const TOP_STATEMENTS: i64 = 15;

/// Empties `pg_stat_statements`.
pub async fn reset_statements(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(pool)
        .await
        .context("resetting pg_stat_statements")?;
    Ok(())
}

/// What all statements since the last reset add up to (the first entry of
/// [`top_statements`]), then the `limit` statements with the most execution
/// time.
pub async fn top_statements(pool: &PgPool, limit: i64) -> anyhow::Result<Vec<StatementStat>> {
    let (calls, total_ms): (i64, f64) = sqlx::query_as(
        "SELECT coalesce(sum(calls), 0)::int8, coalesce(sum(total_exec_time), 0)::float8
           FROM pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(pool)
    .await
    .context("summing pg_stat_statements")?;
    let all = StatementStat { query: ALL_STATEMENTS.to_owned(), calls, total_ms };
    let rows: Vec<(String, i64, f64)> = sqlx::query_as(
        "SELECT query, calls, total_exec_time FROM pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          ORDER BY total_exec_time DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("reading pg_stat_statements")?;
    Ok(std::iter::once(all)
        .chain(rows.into_iter().map(|(query, calls, total_ms)| {
            let flat: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
            let query = if flat.chars().count() > 110 {
                flat.chars().take(110).collect::<String>() + "…"
            } else {
                flat
            };
            StatementStat { query, calls, total_ms }
        }))
        .collect())
}

/// Statements as JSON, with calls per unit of work.
pub fn statements_json(statements: &[StatementStat], units: u64) -> Value {
    Value::Array(
        statements
            .iter()
            .map(|s| {
                json!({
                    "query": s.query,
                    "calls": s.calls,
                    "calls_per_unit": crate::stats::round(s.calls as f64 / units.max(1) as f64),
                    "total_ms": crate::stats::round(s.total_ms),
                })
            })
            .collect(),
    )
}

/// Statements for the human report.
pub fn statements_lines(statements: &[StatementStat], units: u64) -> Vec<String> {
    statements
        .iter()
        .map(|s| {
            format!(
                "    {:>9.0} ms {:>8} calls ({:>5.2}/unit)  {}",
                s.total_ms,
                s.calls,
                s.calls as f64 / units.max(1) as f64,
                s.query
            )
        })
        .collect()
}
