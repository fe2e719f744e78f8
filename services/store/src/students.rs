//! Read model: the student directory — each enrolled student's record, as the
//! school enrolled them — and the query the API serves from it.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use sqlx::{PgConnection, PgPool, Row};
use stagepact_domain::student::{Student, StudentRecord};

use crate::StoreError;
use crate::fold::{Document, Touched, decode, fold};
use crate::log::LoggedEvent;

/// The projection's name.
pub const NAME: &str = "students";

/// The student-directory projection.
#[derive(Debug, Default, Clone, Copy)]
pub struct StudentDirectory;

#[async_trait]
impl crate::Projection for StudentDirectory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[Student::TYPE]
    }

    async fn apply(&self, tx: &mut PgConnection, events: &[LoggedEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let keys: Vec<&str> = events.iter().map(|e| e.aggregate_id.as_str()).collect();
        let stored: Vec<(String, sqlx::types::Json<StudentRecord>)> =
            sqlx::query_as("SELECT student_key, record FROM students WHERE student_key = ANY($1)")
                .bind(&keys)
                .fetch_all(&mut *tx)
                .await?;
        let keys: Vec<String> = keys.into_iter().map(str::to_owned).collect();
        let mut records: HashMap<String, StudentRecord> = decode(stored);
        // The same fold as `Student::apply`.
        let touched =
            fold(events, &keys, &mut records, StudentRecord::start, StudentRecord::apply)?;
        save(tx, &records, &touched).await
    }

    async fn reset(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        sqlx::query("TRUNCATE students").execute(tx).await?;
        Ok(())
    }
}

/// Writes every student the batch touched: one statement.
async fn save(
    tx: &mut PgConnection,
    records: &HashMap<String, StudentRecord>,
    touched: &HashMap<String, Touched>,
) -> Result<(), StoreError> {
    let mut rows = Rows::default();
    for (key, last) in touched {
        let Some(record) = records.get(key) else { continue };
        rows.keys.push(key.clone());
        rows.schools.push(record.school.to_string());
        rows.student_ids.push(record.student_id.to_string());
        rows.records.push(Document::from(record));
        rows.versions.push(last.version);
        rows.positions.push(last.position);
        rows.updated.push(last.at);
    }
    sqlx::query(
        "INSERT INTO students
                (student_key, school, student_id, record, version, last_position, updated_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[],
                              $5::bigint[], $6::bigint[], $7::timestamptz[])
         ON CONFLICT (student_key) DO UPDATE
            SET school = excluded.school, student_id = excluded.student_id,
                record = excluded.record, version = excluded.version,
                last_position = excluded.last_position, updated_at = excluded.updated_at",
    )
    .bind(&rows.keys)
    .bind(&rows.schools)
    .bind(&rows.student_ids)
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
    keys: Vec<String>,
    schools: Vec<String>,
    student_ids: Vec<String>,
    records: Vec<Document<'r, StudentRecord>>,
    versions: Vec<i64>,
    positions: Vec<i64>,
    updated: Vec<DateTime<Utc>>,
}

/// A student as read.
#[derive(Debug, Clone, PartialEq)]
pub struct StudentEntry {
    /// The record.
    pub record: StudentRecord,
    /// The aggregate version it reflects (the If-Match value).
    pub version: i64,
    /// The log position of the last event applied to it.
    pub last_position: i64,
    /// When that event was recorded.
    pub updated_at: DateTime<Utc>,
}

fn entry(row: &sqlx::postgres::PgRow) -> Result<StudentEntry, StoreError> {
    Ok(StudentEntry {
        record: crate::fold::document(row, "record")?,
        version: row.try_get("version")?,
        last_position: row.try_get("last_position")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// One student of `school`, by the school's own number, if enrolled.
pub async fn get(
    pool: &PgPool,
    school: &str,
    student_id: &str,
) -> Result<Option<StudentEntry>, StoreError> {
    let row = sqlx::query(
        "SELECT record, version, last_position, updated_at
           FROM students WHERE school = $1 AND student_id = $2",
    )
    .bind(school)
    .bind(student_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(entry).transpose()
}
