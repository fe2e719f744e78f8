//! Read model: the placement board — every placement's record, with its status
//! and what needs the school's attention — and the queries the API serves from it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use sqlx::{PgConnection, PgPool, Row};
use stagepact_domain::placement::{Placement, PlacementRecord};
use uuid::Uuid;

use crate::StoreError;
use crate::fold::{Document, Touched, decode, fold, uuid_id};
use crate::log::LoggedEvent;

/// The projection's name.
pub const NAME: &str = "placements";

/// The placement-board projection.
#[derive(Default)]
pub struct PlacementBoard {
    /// Told what each round of this process changed (see [`Changes`]).
    listener: Option<Arc<dyn Changes>>,
    /// The students whose placements the round in flight changed.
    changing: Mutex<Vec<StudentKey>>,
}

/// (school, student number): whose placements.
pub type StudentKey = (String, String);

/// What this process learns of the board's changes, for whatever it derives
/// from the board and keeps (the API's rendered overviews). A round's changes
/// are told after its transaction committed, with the checkpoint it reached;
/// and when the board may have changed in ways this process cannot tell
/// (another process's worker applied rounds, a round's outcome is unknown, a
/// rebuild), it is told to forget everything.
pub trait Changes: Send + Sync {
    /// Every change to the board up to `checkpoint` has been told; this
    /// round's changed the placements of `students`.
    fn committed(&self, checkpoint: i64, students: &[StudentKey]);
    /// The board may have changed in ways not told: nothing derived from it
    /// is current, until the next `committed`.
    fn lost_track(&self);
}

impl PlacementBoard {
    /// A board that tells `listener` what its rounds change.
    pub fn with_listener(listener: Arc<dyn Changes>) -> Self {
        Self { listener: Some(listener), changing: Mutex::default() }
    }

    fn changing(&self) -> std::sync::MutexGuard<'_, Vec<StudentKey>> {
        self.changing.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for PlacementBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlacementBoard").field("listener", &self.listener.is_some()).finish()
    }
}

#[async_trait]
impl crate::Projection for PlacementBoard {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[Placement::TYPE]
    }

    async fn apply(&self, tx: &mut PgConnection, events: &[LoggedEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let ids = events.iter().map(uuid_id).collect::<Result<Vec<_>, _>>()?;
        let stored: Vec<(Uuid, sqlx::types::Json<PlacementRecord>)> = sqlx::query_as(
            "SELECT placement_id, record FROM placements WHERE placement_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let mut records: HashMap<Uuid, PlacementRecord> = decode(stored);
        // The same fold as `Placement::apply`.
        let touched =
            fold(events, &ids, &mut records, PlacementRecord::proposed, PlacementRecord::apply)?;
        if self.listener.is_some() {
            let students = touched.keys().filter_map(|id| records.get(id)).map(|record| {
                (record.student.school.to_string(), record.student.student_id.to_string())
            });
            self.changing().extend(students);
        }
        save(tx, &records, &touched).await
    }

    fn committed(&self, checkpoint: i64) {
        let students = std::mem::take(&mut *self.changing());
        if let Some(listener) = &self.listener {
            listener.committed(checkpoint, &students);
        }
    }

    fn lost_track(&self) {
        self.changing().clear();
        if let Some(listener) = &self.listener {
            listener.lost_track();
        }
    }

    async fn reset(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        sqlx::query("TRUNCATE placements").execute(tx).await?;
        Ok(())
    }
}

/// Writes every placement the batch touched: one statement.
async fn save(
    tx: &mut PgConnection,
    records: &HashMap<Uuid, PlacementRecord>,
    touched: &HashMap<Uuid, Touched>,
) -> Result<(), StoreError> {
    let mut rows = Rows::default();
    for (id, last) in touched {
        let Some(record) = records.get(id) else { continue };
        rows.ids.push(*id);
        rows.schools.push(record.student.school.to_string());
        rows.student_ids.push(record.student.student_id.to_string());
        rows.companies.push(record.company_id.to_string());
        rows.qualifications.push(record.qualification.to_string());
        rows.statuses.push(record.status.as_str());
        rows.flagged.push(record.flagged());
        rows.overdue_from.push(record.overdue_from());
        rows.records.push(Document::from(record));
        rows.versions.push(last.version);
        rows.positions.push(last.position);
        rows.updated.push(last.at);
    }
    sqlx::query(
        "INSERT INTO placements
                (placement_id, school, student_id, company_id, qualification, status, flagged,
                 overdue_from, record, version, last_position, updated_at)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::bool[], $8::date[], $9::jsonb[], $10::bigint[],
                              $11::bigint[], $12::timestamptz[])
         ON CONFLICT (placement_id) DO UPDATE
            SET school = excluded.school, student_id = excluded.student_id,
                company_id = excluded.company_id, qualification = excluded.qualification,
                status = excluded.status, flagged = excluded.flagged,
                overdue_from = excluded.overdue_from, record = excluded.record,
                version = excluded.version, last_position = excluded.last_position,
                updated_at = excluded.updated_at",
    )
    .bind(&rows.ids)
    .bind(&rows.schools)
    .bind(&rows.student_ids)
    .bind(&rows.companies)
    .bind(&rows.qualifications)
    .bind(&rows.statuses)
    .bind(&rows.flagged)
    .bind(&rows.overdue_from)
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
    schools: Vec<String>,
    student_ids: Vec<String>,
    companies: Vec<String>,
    qualifications: Vec<String>,
    statuses: Vec<&'static str>,
    flagged: Vec<bool>,
    overdue_from: Vec<Option<NaiveDate>>,
    records: Vec<Document<'r, PlacementRecord>>,
    versions: Vec<i64>,
    positions: Vec<i64>,
    updated: Vec<DateTime<Utc>>,
}

/// A placement as read.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementEntry {
    /// The record.
    pub record: PlacementRecord,
    /// The aggregate version it reflects (the If-Match value).
    pub version: i64,
    /// The log position of the last event applied to it.
    pub last_position: i64,
    /// When that event was recorded.
    pub updated_at: DateTime<Utc>,
}

/// Filters of `listPlacements`; `None` is "any".
#[derive(Debug, Clone)]
pub struct PlacementFilter {
    /// The student's school.
    pub school: Option<String>,
    /// The company.
    pub company_id: Option<String>,
    /// The school's number for the student (unique only within a school:
    /// combine it with `school`).
    pub student_id: Option<String>,
    /// With this status (`PlacementStatus::as_str`).
    pub status: Option<String>,
    /// Only placements that need attention on `today` (`true`), or only the
    /// others (`false`).
    pub needs_attention: Option<bool>,
    /// The day `needs_attention` is decided for.
    pub today: NaiveDate,
}

fn entry(row: &sqlx::postgres::PgRow) -> Result<PlacementEntry, StoreError> {
    Ok(PlacementEntry {
        record: crate::fold::document(row, "record")?,
        version: row.try_get("version")?,
        last_position: row.try_get("last_position")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// One placement, if the board has it.
pub async fn get(pool: &PgPool, placement_id: Uuid) -> Result<Option<PlacementEntry>, StoreError> {
    let row = sqlx::query(
        "SELECT record, version, last_position, updated_at FROM placements WHERE placement_id = $1",
    )
    .bind(placement_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(entry).transpose()
}

/// A student's placements in id order, at most `limit`, and the board's
/// checkpoint they are as of (read together: one snapshot): the overview,
/// which students' apps call most of all. A prepared statement of its own
/// (the general `list` is planned for each call's filters, a second round
/// trip). The checkpoint is `None` before the board's first round.
pub async fn of_student(
    pool: &PgPool,
    school: &str,
    student_id: &str,
    limit: i64,
) -> Result<(Vec<PlacementEntry>, Option<i64>), StoreError> {
    let rows = sqlx::query(
        "SELECT c.position AS checkpoint, p.record, p.version, p.last_position, p.updated_at
           FROM projection_checkpoints c
           LEFT JOIN LATERAL (
                SELECT placement_id, record, version, last_position, updated_at
                  FROM placements
                 WHERE school = $1 AND student_id = $2
                 ORDER BY placement_id
                 LIMIT $3) p ON true
          WHERE c.name = $4
          ORDER BY p.placement_id",
    )
    .bind(school)
    .bind(student_id)
    .bind(limit)
    .bind(NAME)
    .fetch_all(pool)
    .await?;
    let checkpoint = rows.first().map(|row| row.try_get("checkpoint")).transpose()?;
    let mut entries = Vec::with_capacity(rows.len());
    for row in &rows {
        // The checkpoint's row alone: the student has no placement.
        if row.try_get::<Option<i64>, _>("version")?.is_some() {
            entries.push(entry(row)?);
        }
    }
    Ok((entries, checkpoint))
}

/// Placements in id order after `after`, at most `limit`.
pub async fn list(
    pool: &PgPool,
    filter: &PlacementFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<PlacementEntry>, StoreError> {
    // "Needs attention" must agree with `PlacementRecord::needs_attention`:
    // flagged, or a contact moment overdue before today.
    let rows = sqlx::query(
        "SELECT record, version, last_position, updated_at
           FROM placements p
          WHERE ($1::uuid IS NULL OR p.placement_id > $1)
            AND ($2::text IS NULL OR p.school = $2)
            AND ($3::text IS NULL OR p.company_id = $3)
            AND ($4::text IS NULL OR p.student_id = $4)
            AND ($5::text IS NULL OR p.status = $5)
            AND ($6::bool IS NULL OR $6 = (p.flagged
                    OR (p.overdue_from IS NOT NULL AND p.overdue_from < $7)))
          ORDER BY p.placement_id
          LIMIT $8",
    )
    // Optional filters: planned for each call's values (see the crate docs).
    .persistent(false)
    .bind(after)
    .bind(&filter.school)
    .bind(&filter.company_id)
    .bind(&filter.student_id)
    .bind(&filter.status)
    .bind(filter.needs_attention)
    .bind(filter.today)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(entry).collect()
}
