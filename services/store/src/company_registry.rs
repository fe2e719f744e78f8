//! Read model: the company registry — each company's standing as a whole and
//! per qualification — and the queries the API serves from it.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use sqlx::{PgConnection, PgPool, Row};
use stagepact_domain::company::{Company, CompanyRecord};

use crate::StoreError;
use crate::fold::{Document, Touched, decode, fold};
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

    async fn apply(&self, tx: &mut PgConnection, events: &[LoggedEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = events.iter().map(|e| e.aggregate_id.as_str()).collect();
        let stored: Vec<(String, sqlx::types::Json<CompanyRecord>)> = sqlx::query_as(
            "SELECT company_id, record FROM company_registry WHERE company_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let keys: Vec<String> = ids.into_iter().map(str::to_owned).collect();
        let mut records: HashMap<String, CompanyRecord> = decode(stored);
        // Each company's qualifications before the batch: only a change to them
        // rewrites its rows in `company_recognitions`.
        let held_before: HashMap<String, Vec<Held>> =
            records.iter().map(|(id, record)| (id.clone(), held(record))).collect();
        // The same fold as `Company::apply`.
        let touched =
            fold(events, &keys, &mut records, CompanyRecord::start, CompanyRecord::apply)?;
        let requalified: Vec<&str> = touched
            .keys()
            .filter(|id| {
                let after = records.get(*id).map(held).unwrap_or_default();
                held_before.get(*id).is_none_or(|before| *before != after)
            })
            .map(String::as_str)
            .collect();
        save(tx, &records, &touched, &requalified).await
    }

    async fn reset(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        sqlx::query("TRUNCATE company_recognitions, company_registry").execute(tx).await?;
        Ok(())
    }
}

/// A qualification a company holds a recognition for, and until when.
type Held = (String, NaiveDate);

fn held(record: &CompanyRecord) -> Vec<Held> {
    record.recognitions.values().map(|r| (r.qualification.to_string(), r.valid_until)).collect()
}

/// Writes every company the batch touched, and the qualifications of those
/// whose qualifications changed: one statement per table.
async fn save(
    tx: &mut PgConnection,
    records: &HashMap<String, CompanyRecord>,
    touched: &HashMap<String, Touched>,
    requalified: &[&str],
) -> Result<(), StoreError> {
    let mut rows = Rows::default();
    for (id, last) in touched {
        let Some(record) = records.get(id) else { continue };
        rows.ids.push(id.clone());
        rows.names.push(record.name.to_string());
        rows.sectors.push(record.sector.to_string());
        rows.regions.push(record.region.to_string());
        rows.statuses.push(record.status().as_str());
        rows.records.push(Document::from(record));
        rows.versions.push(last.version);
        rows.positions.push(last.position);
        rows.updated.push(last.at);
    }
    for id in requalified {
        let Some(record) = records.get(*id) else { continue };
        for (qualification, valid_until) in held(record) {
            rows.recognition_ids.push((*id).to_owned());
            rows.qualifications.push(qualification);
            rows.valid_until.push(valid_until);
        }
    }
    sqlx::query(
        "INSERT INTO company_registry
                (company_id, name, sector, region, status, record, version, last_position, updated_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::jsonb[], $7::bigint[], $8::bigint[], $9::timestamptz[])
         ON CONFLICT (company_id) DO UPDATE
            SET name = excluded.name, sector = excluded.sector, region = excluded.region,
                status = excluded.status, record = excluded.record, version = excluded.version,
                last_position = excluded.last_position, updated_at = excluded.updated_at",
    )
    .bind(&rows.ids)
    .bind(&rows.names)
    .bind(&rows.sectors)
    .bind(&rows.regions)
    .bind(&rows.statuses)
    .bind(&rows.records)
    .bind(&rows.versions)
    .bind(&rows.positions)
    .bind(&rows.updated)
    .execute(&mut *tx)
    .await?;
    if requalified.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM company_recognitions WHERE company_id = ANY($1)")
        .bind(requalified)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO company_recognitions (company_id, qualification, valid_until)
         SELECT * FROM unnest($1::text[], $2::text[], $3::date[])",
    )
    .bind(&rows.recognition_ids)
    .bind(&rows.qualifications)
    .bind(&rows.valid_until)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Column arrays for the batched writes.
#[derive(Default)]
struct Rows<'r> {
    ids: Vec<String>,
    names: Vec<String>,
    sectors: Vec<String>,
    regions: Vec<String>,
    statuses: Vec<&'static str>,
    records: Vec<Document<'r, CompanyRecord>>,
    versions: Vec<i64>,
    positions: Vec<i64>,
    updated: Vec<DateTime<Utc>>,
    recognition_ids: Vec<String>,
    qualifications: Vec<String>,
    valid_until: Vec<NaiveDate>,
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
        record: crate::fold::document(row, "record")?,
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
    // Optional filters: planned for each call's values (see the crate docs).
    .persistent(false)
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
