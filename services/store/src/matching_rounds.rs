//! Read model: the schools' matching rounds (stagematching), with the latest
//! run's proposals, explanations and metrics; and the reads that assemble a
//! round's input from the other read models: the candidates (M2), the
//! placements that hold a student or record an objection (M3), and the offers
//! in play (M4, S1, S2).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use sqlx::{PgConnection, PgPool, Row};
use stagepact_domain::company::CompanyRecord;
use stagepact_domain::matching_round::{MatchingRound, MatchingRoundRecord};
use stagepact_domain::offer::OfferRecord;
use stagepact_domain::placement::PlacementRecord;
use stagepact_domain::student::StudentRecord;
use stagepact_domain::values::Period;
use uuid::Uuid;

use crate::StoreError;
use crate::fold::{Document, Touched, decode, fold, uuid_id};
use crate::log::LoggedEvent;

/// The projection's name.
pub const NAME: &str = "matching_rounds";

/// The matching-rounds projection.
#[derive(Debug, Default, Clone, Copy)]
pub struct MatchingRounds;

#[async_trait]
impl crate::Projection for MatchingRounds {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[MatchingRound::TYPE]
    }

    async fn apply(&self, tx: &mut PgConnection, events: &[LoggedEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let ids = events.iter().map(uuid_id).collect::<Result<Vec<_>, _>>()?;
        let stored: Vec<(Uuid, sqlx::types::Json<MatchingRoundRecord>)> =
            sqlx::query_as("SELECT round_id, record FROM matching_rounds WHERE round_id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?;
        let mut records: HashMap<Uuid, MatchingRoundRecord> = decode(stored);
        // The same fold as `MatchingRound::apply`.
        let touched = fold(
            events,
            &ids,
            &mut records,
            MatchingRoundRecord::start,
            MatchingRoundRecord::apply,
        )?;
        save(tx, &records, &touched).await
    }

    async fn reset(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        sqlx::query("TRUNCATE matching_rounds").execute(tx).await?;
        Ok(())
    }
}

/// Writes every round the batch touched: one statement.
async fn save(
    tx: &mut PgConnection,
    records: &HashMap<Uuid, MatchingRoundRecord>,
    touched: &HashMap<Uuid, Touched>,
) -> Result<(), StoreError> {
    let (mut ids, mut schools, mut statuses, mut pending, mut rows) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut versions, mut positions, mut updated) = (vec![], vec![], vec![]);
    for (id, last) in touched {
        let Some(record) = records.get(id) else { continue };
        ids.push(*id);
        schools.push(record.opened.school.to_string());
        statuses.push(record.status());
        pending.push(!record.pending().is_empty());
        rows.push(Document::from(record));
        versions.push(last.version);
        positions.push(last.position);
        updated.push(last.at);
    }
    sqlx::query(
        "INSERT INTO matching_rounds
                (round_id, school, status, pending, record, version, last_position, updated_at)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bool[], $5::jsonb[],
                              $6::bigint[], $7::bigint[], $8::timestamptz[])
         ON CONFLICT (round_id) DO UPDATE
            SET status = excluded.status, pending = excluded.pending, record = excluded.record,
                version = excluded.version, last_position = excluded.last_position,
                updated_at = excluded.updated_at",
    )
    .bind(&ids)
    .bind(&schools)
    .bind(&statuses)
    .bind(&pending)
    .bind(&rows)
    .bind(&versions)
    .bind(&positions)
    .bind(&updated)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A round as read.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundEntry {
    /// The record.
    pub record: MatchingRoundRecord,
    /// The aggregate version it reflects (the If-Match value).
    pub version: i64,
    /// When its last event was recorded.
    pub updated_at: DateTime<Utc>,
}

/// One round, if the read model has it.
pub async fn get(pool: &PgPool, round_id: Uuid) -> Result<Option<RoundEntry>, StoreError> {
    let row =
        sqlx::query("SELECT record, version, updated_at FROM matching_rounds WHERE round_id = $1")
            .bind(round_id)
            .fetch_optional(pool)
            .await?;
    row.map(|row| {
        Ok(RoundEntry {
            record: crate::fold::document(&row, "record")?,
            version: row.try_get("version")?,
            updated_at: row.try_get("updated_at")?,
        })
    })
    .transpose()
}

/// Rounds with published or settled matches not yet carried out.
pub async fn pending(pool: &PgPool) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar("SELECT round_id FROM matching_rounds WHERE pending ORDER BY round_id")
        .fetch_all(pool)
        .await?)
}

/// The status of each of these placements the board has.
pub async fn placement_statuses(
    pool: &PgPool,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, String>, StoreError> {
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT placement_id, status FROM placements WHERE placement_id = ANY($1)")
            .bind(ids)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// The students of `school` in `cohort` (or the ones named), as enrolled.
/// Who of them is a candidate is the caller's decision (M2).
pub async fn students(
    pool: &PgPool,
    school: &str,
    cohort: u16,
    named: Option<&[String]>,
) -> Result<Vec<StudentRecord>, StoreError> {
    let rows: Vec<(serde_json::Value,)> = sqlx::query_as(
        "SELECT record FROM students
          WHERE school = $1
            AND CASE WHEN $3::text[] IS NULL
                     THEN (record->'enrolment'->>'cohort')::int = $2
                     ELSE student_id = ANY($3) END
          ORDER BY student_id",
    )
    .bind(school)
    .bind(i32::from(cohort))
    .bind(named)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(|(record,)| Ok(serde_json::from_value(record)?)).collect()
}

/// The placements of `school`'s students that may hold a student for a
/// period or record an objection: all but the withdrawn and interrupted.
pub async fn placements(pool: &PgPool, school: &str) -> Result<Vec<PlacementRecord>, StoreError> {
    let rows: Vec<(serde_json::Value,)> = sqlx::query_as(
        "SELECT record FROM placements
          WHERE school = $1 AND status NOT IN ('withdrawn', 'interrupted')",
    )
    .bind(school)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(|(record,)| Ok(serde_json::from_value(record)?)).collect()
}

/// An offer that may be in play, with its company's record.
#[derive(Debug, Clone)]
pub struct OfferInPlay {
    /// The offer.
    pub offer: OfferRecord,
    /// Its company.
    pub company: CompanyRecord,
}

/// The offers for `qualifications` that are open for matching, not withdrawn,
/// with a free slot, current on `today` and overlapping `period` (S2), with
/// their company's record, by offer id. Whether the company takes part (M4)
/// and may host (S1) is the caller's check, on the record, with the domain's
/// own rule.
pub async fn offers(
    pool: &PgPool,
    qualifications: &[String],
    period: Period,
    today: NaiveDate,
) -> Result<Vec<OfferInPlay>, StoreError> {
    let rows = sqlx::query(
        "SELECT o.record AS offer, c.record AS company
           FROM offers o JOIN company_registry c ON c.company_id = o.company_id
          WHERE o.qualification = ANY($1) AND o.open_for_matching AND NOT o.withdrawn
            AND o.free_slots > 0 AND o.period_end >= $4
            AND o.period_start <= $3 AND o.period_end >= $2
          ORDER BY o.offer_id",
    )
    .bind(qualifications)
    .bind(period.start)
    .bind(period.end)
    .bind(today)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(OfferInPlay {
                offer: crate::fold::document(row, "offer")?,
                company: crate::fold::document(row, "company")?,
            })
        })
        .collect()
}
