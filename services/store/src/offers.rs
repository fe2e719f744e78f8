//! Read model: the offer board — every placement offer with its slots — and the
//! queries the API serves from it, which say whether an offer is open (S1, S2).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use sqlx::{PgConnection, PgPool, Row};
use stagepact_domain::offer::{Offer, OfferRecord};
use uuid::Uuid;

use crate::StoreError;
use crate::fold::{Document, Touched, decode, fold, uuid_id};
use crate::log::LoggedEvent;

/// The projection's name.
pub const NAME: &str = "offers";

/// The offer-board projection.
#[derive(Debug, Default, Clone, Copy)]
pub struct OfferBoard;

#[async_trait]
impl crate::Projection for OfferBoard {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[Offer::TYPE]
    }

    async fn apply(&self, tx: &mut PgConnection, events: &[LoggedEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let ids = events.iter().map(uuid_id).collect::<Result<Vec<_>, _>>()?;
        let stored: Vec<(Uuid, sqlx::types::Json<OfferRecord>)> =
            sqlx::query_as("SELECT offer_id, record FROM offers WHERE offer_id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?;
        let mut records: HashMap<Uuid, OfferRecord> = decode(stored);
        // The same fold as `Offer::apply`.
        let touched = fold(events, &ids, &mut records, OfferRecord::start, OfferRecord::apply)?;
        save(tx, &records, &touched).await
    }

    async fn reset(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        sqlx::query("TRUNCATE offers").execute(tx).await?;
        Ok(())
    }
}

/// Writes every offer the batch touched: one statement.
async fn save(
    tx: &mut PgConnection,
    records: &HashMap<Uuid, OfferRecord>,
    touched: &HashMap<Uuid, Touched>,
) -> Result<(), StoreError> {
    let mut rows = Rows::default();
    for (id, last) in touched {
        let Some(record) = records.get(id) else { continue };
        let offer = &record.offer;
        rows.ids.push(*id);
        rows.companies.push(offer.company_id.to_string());
        rows.qualifications.push(offer.qualification.to_string());
        rows.regions.push(offer.region.to_string());
        let levels: Vec<String> = offer.levels.iter().map(|l| l.get().to_string()).collect();
        rows.levels.push(format!("{{{}}}", levels.join(",")));
        rows.starts.push(offer.period.start);
        rows.ends.push(offer.period.end);
        rows.withdrawn.push(record.withdrawn);
        rows.free_slots.push(i32::try_from(record.free_slots()).unwrap_or(i32::MAX));
        rows.matchable.push(offer.open_for_matching);
        rows.records.push(Document::from(record));
        rows.versions.push(last.version);
        rows.positions.push(last.position);
        rows.updated.push(last.at);
    }
    // `unnest` flattens a two-dimensional array (and PostgreSQL's are
    // rectangular anyway), so each row's levels travel as an array literal.
    sqlx::query(
        "INSERT INTO offers
                (offer_id, company_id, qualification, region, levels, period_start, period_end,
                 withdrawn, free_slots, open_for_matching, record, version, last_position,
                 updated_at)
         SELECT id, company, qualification, region, levels::smallint[], period_start, period_end,
                withdrawn, free_slots, open_for_matching, record, version, last_position,
                updated_at
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::date[],
                       $7::date[], $8::bool[], $9::int[], $10::bool[], $11::jsonb[],
                       $12::bigint[], $13::bigint[], $14::timestamptz[])
                AS u(id, company, qualification, region, levels, period_start, period_end,
                     withdrawn, free_slots, open_for_matching, record, version, last_position,
                     updated_at)
         ON CONFLICT (offer_id) DO UPDATE
            SET company_id = excluded.company_id, qualification = excluded.qualification,
                region = excluded.region, levels = excluded.levels,
                period_start = excluded.period_start, period_end = excluded.period_end,
                withdrawn = excluded.withdrawn, free_slots = excluded.free_slots,
                open_for_matching = excluded.open_for_matching, record = excluded.record,
                version = excluded.version, last_position = excluded.last_position,
                updated_at = excluded.updated_at",
    )
    .bind(&rows.ids)
    .bind(&rows.companies)
    .bind(&rows.qualifications)
    .bind(&rows.regions)
    .bind(&rows.levels)
    .bind(&rows.starts)
    .bind(&rows.ends)
    .bind(&rows.withdrawn)
    .bind(&rows.free_slots)
    .bind(&rows.matchable)
    .bind(&rows.records)
    .bind(&rows.versions)
    .bind(&rows.positions)
    .bind(&rows.updated)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Column arrays for the batched write.
#[derive(Default)]
struct Rows<'r> {
    ids: Vec<Uuid>,
    companies: Vec<String>,
    qualifications: Vec<String>,
    regions: Vec<String>,
    levels: Vec<String>,
    starts: Vec<NaiveDate>,
    ends: Vec<NaiveDate>,
    withdrawn: Vec<bool>,
    free_slots: Vec<i32>,
    matchable: Vec<bool>,
    records: Vec<Document<'r, OfferRecord>>,
    versions: Vec<i64>,
    positions: Vec<i64>,
    updated: Vec<DateTime<Utc>>,
}

/// An offer as read.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferEntry {
    /// The record.
    pub record: OfferRecord,
    /// Open for new matches on the day asked about: `OfferRecord::is_open`
    /// (S2), and the company's standing is active (S1).
    pub open: bool,
    /// The aggregate version it reflects (the If-Match value).
    pub version: i64,
    /// The log position of the last event applied to it.
    pub last_position: i64,
    /// When that event was recorded.
    pub updated_at: DateTime<Utc>,
}

/// Filters of `listOffers`; `None` is "any".
#[derive(Debug, Clone)]
pub struct OfferFilter {
    /// For this qualification (crebo code).
    pub qualification: Option<String>,
    /// In this region.
    pub region: Option<String>,
    /// Suits this level.
    pub level: Option<i16>,
    /// Only open offers (`true`) or only the others (`false`) on `today`.
    pub open: Option<bool>,
    /// Only this company's.
    pub company_id: Option<String>,
    /// The day `open` is decided for.
    pub today: NaiveDate,
}

/// The columns of an entry, and whether the offer is open on `$1`. A missing
/// registry row (the company not registered, or not yet projected) means not
/// open. S2 here must agree with `OfferRecord::is_open`; S1 as the company's
/// `may_host`: not suspended or revoked, and holding an active, unexpired
/// recognition for the offer's qualification.
macro_rules! select_offers {
    () => {
        "SELECT o.record, o.version, o.last_position, o.updated_at, s.open,
                o.qualification, o.region, o.free_slots
           FROM offers o
           LEFT JOIN company_registry c ON c.company_id = o.company_id
          CROSS JOIN LATERAL (
                SELECT NOT o.withdrawn AND o.period_end >= $1 AND o.free_slots > 0
                       AND coalesce(
                           c.status = 'active'
                           AND r.recognition->>'status' = 'active'
                           AND (r.recognition->>'valid_until')::date >= $1,
                           false) AS open
                  FROM (SELECT c.record->'recognitions'->o.qualification AS recognition) r
          ) s"
    };
}

pub(crate) use select_offers;

fn entry(row: &sqlx::postgres::PgRow) -> Result<OfferEntry, StoreError> {
    Ok(OfferEntry {
        record: crate::fold::document(row, "record")?,
        open: row.try_get("open")?,
        version: row.try_get("version")?,
        last_position: row.try_get("last_position")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// One offer, if the board has it, with whether it is open on `today`.
pub async fn get(
    pool: &PgPool,
    offer_id: Uuid,
    today: NaiveDate,
) -> Result<Option<OfferEntry>, StoreError> {
    let row = sqlx::query(concat!(select_offers!(), " WHERE o.offer_id = $2"))
        .bind(today)
        .bind(offer_id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(entry).transpose()
}

/// Offers in id order after `after`, at most `limit`.
pub async fn list(
    pool: &PgPool,
    filter: &OfferFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<OfferEntry>, StoreError> {
    let rows = sqlx::query(concat!(
        select_offers!(),
        " WHERE ($2::uuid IS NULL OR o.offer_id > $2)
            AND ($3::text IS NULL OR o.qualification = $3)
            AND ($4::text IS NULL OR o.region = $4)
            AND ($5::smallint IS NULL OR $5 = ANY(o.levels))
            AND ($6::bool IS NULL OR s.open = $6)
            AND ($7::text IS NULL OR o.company_id = $7)
          ORDER BY o.offer_id
          LIMIT $8"
    ))
    // Optional filters: planned for each call's values (see the crate docs).
    .persistent(false)
    .bind(filter.today)
    .bind(after)
    .bind(&filter.qualification)
    .bind(&filter.region)
    .bind(filter.level)
    .bind(filter.open)
    .bind(&filter.company_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(entry).collect()
}
