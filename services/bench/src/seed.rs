//! Bulk-written events: valid company histories, written with plain SQL.

use anyhow::Context;
use serde_json::Value;
use sqlx::PgPool;
use stagepact_domain::company::{
    CompanyEvent, CompanyRegistered, RecognitionGranted, RecognitionReinstated,
    RecognitionSuspended,
};
use stagepact_domain::values::{CompanyId, CompanyName, Crebo, Reason, Region, Sector};

/// The stored payloads (`{"<EventType>": {..}}`, as cqrs-es writes them) of
/// the four event types a seeded history uses, built from the domain types so
/// that the projection can read them. The registration's `company_id` is
/// replaced per aggregate in SQL.
struct Payloads {
    registered: Value,
    granted: Value,
    suspended: Value,
    reinstated: Value,
}

fn payloads() -> anyhow::Result<Payloads> {
    let today = chrono::Utc::now().date_naive();
    let registered = CompanyEvent::CompanyRegistered(CompanyRegistered {
        company_id: CompanyId::parse("template")?,
        name: CompanyName::parse("Benchmark company")?,
        sector: Sector::parse("Techniek")?,
        region: Region::parse("Utrecht")?,
        location: None,
    });
    let granted = CompanyEvent::RecognitionGranted(RecognitionGranted {
        qualification: Crebo::parse("25180")?,
        granted_on: today,
        valid_until: today + chrono::Days::new(365),
    });
    let suspended = CompanyEvent::RecognitionSuspended(RecognitionSuspended {
        reason: Reason::parse("Onderzoek gestart: benchmark")?,
        investigation_id: None,
    });
    let reinstated = CompanyEvent::RecognitionReinstated(RecognitionReinstated {
        reason: Reason::parse("Onderzoek afgerond: benchmark")?,
    });
    Ok(Payloads {
        registered: serde_json::to_value(registered)?,
        granted: serde_json::to_value(granted)?,
        suspended: serde_json::to_value(suspended)?,
        reinstated: serde_json::to_value(reinstated)?,
    })
}

/// Writes `events` events in one transaction: aggregates `<prefix><n>` of type
/// `aggregate_type`, `per_aggregate` events each (the last may have fewer),
/// each history being registered, granted, then suspended and reinstated in
/// turn. Returns the number of aggregates.
pub async fn write_histories(
    pool: &PgPool,
    aggregate_type: &str,
    prefix: &str,
    events: i64,
    per_aggregate: i64,
    metadata: &Value,
) -> anyhow::Result<i64> {
    let payloads = payloads()?;
    let per_aggregate = per_aggregate.max(1);
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT $1, id, seq,
                CASE WHEN seq = 1 THEN 'CompanyRegistered'
                     WHEN seq = 2 THEN 'RecognitionGranted'
                     WHEN seq % 2 = 1 THEN 'RecognitionSuspended'
                     ELSE 'RecognitionReinstated' END,
                '1',
                CASE WHEN seq = 1 THEN jsonb_set($5::jsonb, '{CompanyRegistered,company_id}', to_jsonb(id))
                     WHEN seq = 2 THEN $6::jsonb
                     WHEN seq % 2 = 1 THEN $7::jsonb
                     ELSE $8::jsonb END,
                $9::jsonb
           FROM (SELECT $2 || lpad((i / $4)::text, 6, '0') AS id, i % $4 + 1 AS seq
                   FROM generate_series(0, $3 - 1) AS i) AS s",
    )
    .bind(aggregate_type)
    .bind(prefix)
    .bind(events)
    .bind(per_aggregate)
    .bind(&payloads.registered)
    .bind(&payloads.granted)
    .bind(&payloads.suspended)
    .bind(&payloads.reinstated)
    .bind(metadata)
    .execute(pool)
    .await
    .context("writing event histories")?;
    Ok((events + per_aggregate - 1) / per_aggregate)
}

/// Waits until the app's sequencer has stamped every event in the table
/// (positions are dense from 1, so the head then equals the row count).
pub async fn await_stamped(
    env: &crate::setup::Env,
    timeout: std::time::Duration,
) -> anyhow::Result<i64> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&env.pool)
        .await
        .context("counting events")?;
    let deadline = tokio::time::Instant::now() + timeout;
    while env.state.log.head() < total {
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "only {} of {total} events were stamped within {timeout:?}",
                env.state.log.head()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(total)
}
