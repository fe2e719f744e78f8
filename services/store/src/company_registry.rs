//! Read model: the company registry — each company's standing as a whole and
//! per qualification — and the queries the API serves from it.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use sqlx::{PgConnection, PgPool, Row};
use stagepact_domain::company::{Company, CompanyEvent, CompanyRecord};

use crate::StoreError;
use crate::log::LoggedEvent;

/// The projection's name.
pub const NAME: &str = "company_registry";

/// The company-registry projection.
#[derive(Debug, Default, Clone, Copy)]
pub struct CompanyRegistry;

#[async_trait]
impl crate::Projection for CompanyRegistry {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[Company::TYPE]
    }

    async fn apply(&self, tx: &mut PgConnection, event: &LoggedEvent) -> Result<(), StoreError> {
        let company_event: CompanyEvent = serde_json::from_value(event.payload.clone())?;
        let record = match company_event {
            CompanyEvent::CompanyRegistered(registered) => CompanyRecord::registered(registered),
            other => {
                let stored: Option<serde_json::Value> =
                    sqlx::query_scalar("SELECT record FROM company_registry WHERE company_id = $1")
                        .bind(&event.aggregate_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                // The log holds a registration before any other company event.
                let Some(stored) = stored else { return Ok(()) };
                let mut record: CompanyRecord = serde_json::from_value(stored)?;
                record.apply(&other);
                record
            }
        };
        save(tx, &record, event).await
    }

    async fn reset(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        sqlx::query("TRUNCATE company_recognitions, company_registry").execute(tx).await?;
        Ok(())
    }
}

async fn save(
    tx: &mut PgConnection,
    record: &CompanyRecord,
    event: &LoggedEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO company_registry
                (company_id, name, sector, region, status, record, version, last_position, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (company_id) DO UPDATE
            SET name = excluded.name, sector = excluded.sector, region = excluded.region,
                status = excluded.status, record = excluded.record, version = excluded.version,
                last_position = excluded.last_position, updated_at = excluded.updated_at",
    )
    .bind(record.company_id.as_str())
    .bind(record.name.as_str())
    .bind(record.sector.as_str())
    .bind(record.region.as_str())
    .bind(record.status().as_str())
    .bind(serde_json::to_value(record)?)
    .bind(event.sequence)
    .bind(event.position)
    .bind(event.recorded_at)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM company_recognitions WHERE company_id = $1")
        .bind(record.company_id.as_str())
        .execute(&mut *tx)
        .await?;
    let recognitions = record.recognitions.values();
    let qualifications: Vec<&str> =
        recognitions.clone().map(|r| r.qualification.as_str()).collect();
    let statuses: Vec<&str> = recognitions.clone().map(|r| r.status.as_str()).collect();
    let valid_until: Vec<NaiveDate> = recognitions.map(|r| r.valid_until).collect();
    sqlx::query(
        "INSERT INTO company_recognitions (company_id, qualification, status, valid_until)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::date[])",
    )
    .bind(record.company_id.as_str())
    .bind(&qualifications)
    .bind(&statuses)
    .bind(&valid_until)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A registry entry as read.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryEntry {
    /// The record.
    pub record: CompanyRecord,
    /// The aggregate version it reflects (the If-Match value).
    pub version: i64,
    /// The log position of the last event applied to it.
    pub last_position: i64,
    /// When that event was recorded.
    pub updated_at: DateTime<Utc>,
}

/// Filters of `listCompanies`; `None` is "any".
#[derive(Debug, Clone, Default)]
pub struct RegistryFilter {
    /// Holds a recognition (in any state) for this qualification.
    pub qualification: Option<String>,
    /// In this region.
    pub region: Option<String>,
    /// With this company status.
    pub status: Option<String>,
    /// Only this company.
    pub company_id: Option<String>,
}

fn entry(row: &sqlx::postgres::PgRow) -> Result<RegistryEntry, StoreError> {
    Ok(RegistryEntry {
        record: serde_json::from_value(row.try_get("record")?)?,
        version: row.try_get("version")?,
        last_position: row.try_get("last_position")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// One company, if the registry has it.
pub async fn get(pool: &PgPool, company_id: &str) -> Result<Option<RegistryEntry>, StoreError> {
    let row = sqlx::query(
        "SELECT record, version, last_position, updated_at FROM company_registry WHERE company_id = $1",
    )
    .bind(company_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(entry).transpose()
}

/// Companies in id order after `after`, at most `limit`.
pub async fn list(
    pool: &PgPool,
    filter: &RegistryFilter,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<RegistryEntry>, StoreError> {
    let rows = sqlx::query(
        "SELECT record, version, last_position, updated_at
           FROM company_registry c
          WHERE ($1::text IS NULL OR c.company_id > $1)
            AND ($2::text IS NULL OR c.region = $2)
            AND ($3::text IS NULL OR c.status = $3)
            AND ($6::text IS NULL OR c.company_id = $6)
            AND ($4::text IS NULL OR EXISTS (
                    SELECT 1 FROM company_recognitions r
                     WHERE r.company_id = c.company_id AND r.qualification = $4))
          ORDER BY c.company_id
          LIMIT $5",
    )
    .bind(after)
    .bind(&filter.region)
    .bind(&filter.status)
    .bind(&filter.qualification)
    .bind(limit)
    .bind(&filter.company_id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(entry).collect()
}
