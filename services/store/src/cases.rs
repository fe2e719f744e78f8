//! Read model: the case files — reports at the schools' reporting points, and
//! SBB's signals, complaints and investigations — one row per aggregate, and the
//! queries the API serves from them. Sealed content stays sealed here.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::{PgConnection, PgPool, Row};
use stagepact_domain::complaint::{Complaint, ComplaintEvent, ComplaintReceived};
use stagepact_domain::investigation::{Investigation, InvestigationEvent, InvestigationRecord};
use stagepact_domain::report::{Report, ReportEvent, ReportRecord};
use stagepact_domain::signal::{Signal, SignalEvent, SignalReceived};
use uuid::Uuid;

use crate::StoreError;
use crate::fold::{Touched, fold, uuid_id};
use crate::log::LoggedEvent;

/// The projection's name.
pub const NAME: &str = "cases";

/// The case-files projection.
#[derive(Debug, Default, Clone, Copy)]
pub struct CaseFiles;

/// One kind of case: its aggregate, its record and the columns lists filter on.
pub trait CaseKind {
    /// The aggregate type, also the `kind` column.
    const TYPE: &'static str;
    /// The record the row holds.
    type Record: Serialize + DeserializeOwned + Clone;
    /// The aggregate's event.
    type Event: DeserializeOwned;
    /// The record a first event starts.
    fn start(event: &Self::Event) -> Option<Self::Record>;
    /// Folds a later event.
    fn apply(record: &mut Self::Record, event: &Self::Event);
    /// The filter columns of a record.
    fn columns(record: &Self::Record) -> Columns;
}

/// The filter columns of one case.
#[derive(Debug, Default)]
pub struct Columns {
    company_id: String,
    school: Option<String>,
    student_id: Option<String>,
    opened_on: Option<NaiveDate>,
    acknowledged: bool,
    closed: bool,
}

impl CaseKind for Report {
    const TYPE: &'static str = <Report as Aggregate>::TYPE;
    type Record = ReportRecord;
    type Event = ReportEvent;
    fn start(event: &ReportEvent) -> Option<ReportRecord> {
        ReportRecord::start(event)
    }
    fn apply(record: &mut ReportRecord, event: &ReportEvent) {
        record.apply(event)
    }
    fn columns(record: &ReportRecord) -> Columns {
        Columns {
            company_id: record.filed.company_id.to_string(),
            school: Some(record.filed.school.to_string()),
            student_id: Some(record.filed.student_id.to_string()),
            opened_on: Some(record.filed.filed_on),
            acknowledged: record.acknowledged_on.is_some(),
            closed: record.closed.is_some(),
        }
    }
}

impl CaseKind for Signal {
    const TYPE: &'static str = <Signal as Aggregate>::TYPE;
    type Record = SignalReceived;
    type Event = SignalEvent;
    fn start(event: &SignalEvent) -> Option<SignalReceived> {
        let SignalEvent::SignalReceived(received) = event;
        Some(received.clone())
    }
    fn apply(_: &mut SignalReceived, _: &SignalEvent) {}
    fn columns(record: &SignalReceived) -> Columns {
        // No school, no student, no day: a signal carries none (D4).
        Columns { company_id: record.company_id.to_string(), ..Columns::default() }
    }
}

impl CaseKind for Complaint {
    const TYPE: &'static str = <Complaint as Aggregate>::TYPE;
    type Record = ComplaintReceived;
    type Event = ComplaintEvent;
    fn start(event: &ComplaintEvent) -> Option<ComplaintReceived> {
        let ComplaintEvent::ComplaintReceived(received) = event;
        Some(received.clone())
    }
    fn apply(_: &mut ComplaintReceived, _: &ComplaintEvent) {}
    fn columns(record: &ComplaintReceived) -> Columns {
        Columns {
            company_id: record.company_id.to_string(),
            school: Some(record.school.to_string()),
            opened_on: Some(record.received_on),
            ..Columns::default()
        }
    }
}

impl CaseKind for Investigation {
    const TYPE: &'static str = <Investigation as Aggregate>::TYPE;
    type Record = InvestigationRecord;
    type Event = InvestigationEvent;
    fn start(event: &InvestigationEvent) -> Option<InvestigationRecord> {
        InvestigationRecord::start(event)
    }
    fn apply(record: &mut InvestigationRecord, event: &InvestigationEvent) {
        record.apply(event)
    }
    fn columns(record: &InvestigationRecord) -> Columns {
        Columns {
            company_id: record.opened.company_id.to_string(),
            opened_on: Some(record.opened.opened_on),
            closed: record.concluded.is_some(),
            ..Columns::default()
        }
    }
}

#[async_trait]
impl crate::Projection for CaseFiles {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[
            <Report as CaseKind>::TYPE,
            <Signal as CaseKind>::TYPE,
            <Complaint as CaseKind>::TYPE,
            <Investigation as CaseKind>::TYPE,
        ]
    }

    async fn apply(&self, tx: &mut PgConnection, events: &[LoggedEvent]) -> Result<(), StoreError> {
        let mut rows = Rows::default();
        fold_kind::<Report>(tx, events, &mut rows).await?;
        fold_kind::<Signal>(tx, events, &mut rows).await?;
        fold_kind::<Complaint>(tx, events, &mut rows).await?;
        fold_kind::<Investigation>(tx, events, &mut rows).await?;
        rows.save(tx).await
    }

    async fn reset(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        sqlx::query("TRUNCATE cases").execute(tx).await?;
        Ok(())
    }
}

/// Folds the batch's events of one kind into its rows (events of one aggregate
/// keep their order; kinds are independent of each other).
async fn fold_kind<K: CaseKind>(
    tx: &mut PgConnection,
    events: &[LoggedEvent],
    rows: &mut Rows,
) -> Result<(), StoreError> {
    let events: Vec<LoggedEvent> =
        events.iter().filter(|e| e.aggregate_type == K::TYPE).cloned().collect();
    if events.is_empty() {
        return Ok(());
    }
    let ids = events.iter().map(uuid_id).collect::<Result<Vec<_>, _>>()?;
    let stored: Vec<(Uuid, serde_json::Value)> =
        sqlx::query_as("SELECT case_id, record FROM cases WHERE case_id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
    // (A case kind's record is generic here, which `Json<R>` rows cannot
    // take: decoded through a `Value`, as cases are few.)
    let mut records: HashMap<Uuid, K::Record> = stored
        .into_iter()
        .map(|(id, record)| Ok((id, serde_json::from_value(record)?)))
        .collect::<Result<_, StoreError>>()?;
    let touched = fold(&events, &ids, &mut records, K::start, K::apply)?;
    for (id, last) in touched {
        let Some(record) = records.get(&id) else { continue };
        rows.push::<K>(id, record, last)?;
    }
    Ok(())
}

/// Column arrays for the batched write.
#[derive(Default)]
struct Rows {
    ids: Vec<Uuid>,
    kinds: Vec<&'static str>,
    companies: Vec<String>,
    schools: Vec<Option<String>>,
    students: Vec<Option<String>>,
    opened: Vec<Option<NaiveDate>>,
    acknowledged: Vec<bool>,
    closed: Vec<bool>,
    records: Vec<serde_json::Value>,
    versions: Vec<i64>,
    positions: Vec<i64>,
    updated: Vec<DateTime<Utc>>,
}

impl Rows {
    fn push<K: CaseKind>(
        &mut self,
        id: Uuid,
        record: &K::Record,
        last: Touched,
    ) -> Result<(), StoreError> {
        let columns = K::columns(record);
        self.ids.push(id);
        self.kinds.push(K::TYPE);
        self.companies.push(columns.company_id);
        self.schools.push(columns.school);
        self.students.push(columns.student_id);
        self.opened.push(columns.opened_on);
        self.acknowledged.push(columns.acknowledged);
        self.closed.push(columns.closed);
        self.records.push(serde_json::to_value(record)?);
        self.versions.push(last.version);
        self.positions.push(last.position);
        self.updated.push(last.at);
        Ok(())
    }

    /// Writes every case the batch touched: one statement.
    async fn save(self, tx: &mut PgConnection) -> Result<(), StoreError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO cases (case_id, kind, company_id, school, student_id, opened_on,
                                acknowledged, closed, record, version, last_position, updated_at)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::date[], $7::bool[], $8::bool[], $9::jsonb[],
                                  $10::bigint[], $11::bigint[], $12::timestamptz[])
             ON CONFLICT (case_id) DO UPDATE
                SET acknowledged = excluded.acknowledged, closed = excluded.closed,
                    record = excluded.record, version = excluded.version,
                    last_position = excluded.last_position, updated_at = excluded.updated_at",
        )
        .bind(&self.ids)
        .bind(&self.kinds)
        .bind(&self.companies)
        .bind(&self.schools)
        .bind(&self.students)
        .bind(&self.opened)
        .bind(&self.acknowledged)
        .bind(&self.closed)
        .bind(&self.records)
        .bind(&self.versions)
        .bind(&self.positions)
        .bind(&self.updated)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// A case as read.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseEntry<R> {
    /// The aggregate id.
    pub id: Uuid,
    /// The record.
    pub record: R,
    /// The aggregate version it reflects (the If-Match value).
    pub version: i64,
    /// The log position of the last event applied to it.
    pub last_position: i64,
    /// When that event was recorded.
    pub updated_at: DateTime<Utc>,
}

fn entry<R: DeserializeOwned>(row: &sqlx::postgres::PgRow) -> Result<CaseEntry<R>, StoreError> {
    Ok(CaseEntry {
        id: row.try_get("case_id")?,
        record: crate::fold::document(row, "record")?,
        version: row.try_get("version")?,
        last_position: row.try_get("last_position")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const COLUMNS: &str = "case_id, record, version, last_position, updated_at";

/// One case of kind `K`, if the read model has it.
pub async fn get<K: CaseKind>(
    pool: &PgPool,
    id: Uuid,
) -> Result<Option<CaseEntry<K::Record>>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM cases WHERE case_id = $1 AND kind = $2"))
        .bind(id)
        .bind(K::TYPE)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(entry).transpose()
}

/// Filters of `listReports`; `None` is "any".
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    /// The school's reports.
    pub school: Option<String>,
    /// One student's reports.
    pub student_id: Option<String>,
    /// Open (not closed) or closed.
    pub open: Option<bool>,
    /// Overdue: open, unacknowledged, and filed on or before this day (the
    /// caller turns "acknowledged within N working days" into the day).
    pub overdue_if_filed_by: Option<NaiveDate>,
}

/// A page of reports, by id.
pub async fn reports(
    pool: &PgPool,
    filter: &ReportFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CaseEntry<ReportRecord>>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM cases
          WHERE kind = 'report'
            AND ($1::uuid IS NULL OR case_id > $1)
            AND ($2::text IS NULL OR school = $2)
            AND ($3::text IS NULL OR student_id = $3)
            AND ($4::bool IS NULL OR closed = NOT $4)
            AND ($5::date IS NULL OR (NOT closed AND NOT acknowledged AND opened_on <= $5))
          ORDER BY case_id
          LIMIT $6"
    ))
    // Optional filters: planned for each call's values (see the crate docs).
    .persistent(false)
    .bind(after)
    .bind(&filter.school)
    .bind(&filter.student_id)
    .bind(filter.open)
    .bind(filter.overdue_if_filed_by)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(entry).collect()
}

/// A page of cases of kind `K` (signals, complaints, investigations: SBB's
/// lists), optionally of one company, by id.
pub async fn list<K: CaseKind>(
    pool: &PgPool,
    company_id: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CaseEntry<K::Record>>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM cases
          WHERE kind = $1
            AND ($2::text IS NULL OR company_id = $2)
            AND ($3::uuid IS NULL OR case_id > $3)
          ORDER BY case_id
          LIMIT $4"
    ))
    // Optional filters: planned for each call's values (see the crate docs).
    .persistent(false)
    .bind(K::TYPE)
    .bind(company_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(entry).collect()
}

/// Every signal (of one company), in one statement: `listSignals` counts them
/// all. Two fixed statements rather than one with an optional filter, so
/// PostgreSQL never settles on a generic plan that ignores the company index.
pub async fn all_signals(
    pool: &PgPool,
    company_id: Option<&str>,
) -> Result<Vec<CaseEntry<SignalReceived>>, StoreError> {
    let rows = match company_id {
        Some(company) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM cases WHERE kind = 'signal' AND company_id = $1"
            ))
            .bind(company)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query(&format!("SELECT {COLUMNS} FROM cases WHERE kind = 'signal'"))
                .fetch_all(pool)
                .await?
        }
    };
    rows.iter().map(entry).collect()
}
