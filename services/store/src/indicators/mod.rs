//! Read model: the pact's indicators (monitoring) — per school year, school,
//! region, qualification and sector — and the supply of and demand for
//! placements (S2). The projector keeps one row per company, student,
//! placement and report with the facts the goals count, and counts what may
//! not be kept per person; the queries add the rows up for the caller's
//! filters. What a figure may show (small cells) is the API's decision, by
//! the domain's rule (`monitoring::shown`).
//!
//! Special-category data stays sealed. Support needs (G3) and report grounds
//! (D2) are opened by the projector with the vault only to add one to a count
//! of a cell (`indicator_counts`); no column says which student has a need or
//! which report named which ground (though a cell of one person can be linked
//! to that person's row inside the database: see the migration). A rebuild
//! after a student's data was erased counts that student's need and grounds
//! no more: the figures then differ from before by exactly what the erasure
//! took away; until then the counts keep them.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::NaiveDate;
use cqrs_es::Aggregate;
use serde_json::Value;
use sqlx::{PgConnection, Row};
use stagepact_domain::company::{Company, CompanyEvent};
use stagepact_domain::investigation::{Investigation, InvestigationEvent};
use stagepact_domain::monitoring::SchoolYear;
use stagepact_domain::placement::{Placement, PlacementEvent, PlacementRecord, PlacementStatus};
use stagepact_domain::protected::{Protected, Sealed};
use stagepact_domain::report::{Ground, Report, ReportEvent, working_days_between};
use stagepact_domain::student::{Student, StudentEvent, StudentRecord, student_key};
use uuid::Uuid;

use crate::fold::{Document, uuid_id};
use crate::log::LoggedEvent;
use crate::{StoreError, Vault};

mod counted;
mod figures;
use counted::{Held, PlacementCount, StudentCount, Totals};
pub use figures::{
    AllowanceGroup, Compensation, Discrimination, Figures, Guidance, Placements, Scope,
    SupplyDemand, figures, supply_demand,
};

/// The projection's name.
pub const NAME: &str = "indicators";

/// The counts kept only as counts (`indicator_counts.metric`).
pub mod metric {
    /// Placements started for a student with a support need (G3).
    pub const SUPPORT_NEED_STARTED: &str = "support_need_started";
    /// Of those, placements with a warm handover (G3).
    pub const SUPPORT_NEED_HANDOVER: &str = "support_need_handover";
    /// Reports naming a ground: the prefix of `report_ground:<ground>` (D2).
    pub const REPORT_GROUND: &str = "report_ground:";
    /// Investigations SBB opened (D5).
    pub const INVESTIGATIONS: &str = "investigations_opened";
    /// Suspensions of a company's recognition (D5).
    pub const SUSPENSIONS: &str = "recognitions_suspended";
    /// Revocations of a recognition (D5).
    pub const REVOCATIONS: &str = "recognitions_revoked";
}

/// The indicators projection. It holds the vault because it opens sealed
/// content to count it (see the module docs).
#[derive(Debug, Clone)]
pub struct IndicatorBoard {
    vault: Vault,
}

impl IndicatorBoard {
    /// The projection, opening sealed content with `vault`.
    pub fn new(vault: Vault) -> Self {
        Self { vault }
    }
}

#[async_trait]
impl crate::Projection for IndicatorBoard {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[Company::TYPE, Student::TYPE, Placement::TYPE, Report::TYPE, Investigation::TYPE]
    }

    async fn apply(&self, tx: &mut PgConnection, events: &[LoggedEvent]) -> Result<(), StoreError> {
        let decoded = events.iter().map(Decoded::of).collect::<Result<Vec<_>, _>>()?;
        let mut batch = Batch::load(tx, &decoded).await?;
        let opener = self.vault.opener(batch.sealed_keys(&decoded)).await?;
        let open = |sealed: &Sealed| opener.open::<Value>(sealed);
        for (event, logged) in decoded.iter().zip(events) {
            batch.fold(event, logged.recorded_at.date_naive(), &open)?;
        }
        batch.save(tx).await
    }

    async fn reset(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        sqlx::query(
            "TRUNCATE indicator_companies, indicator_students, indicator_student_records,
                      indicator_year_students, indicator_placements, indicator_placement_records,
                      indicator_year_placements, indicator_year_allowances, indicator_reports,
                      indicator_counts",
        )
        .execute(tx)
        .await?;
        Ok(())
    }
}

/// One event of the batch, decoded into its aggregate's event type.
enum Decoded {
    Company(String, CompanyEvent),
    Student(String, StudentEvent),
    Placement(Uuid, PlacementEvent),
    Report(Uuid, ReportEvent),
    Investigation(InvestigationEvent),
}

impl Decoded {
    fn of(event: &LoggedEvent) -> Result<Self, StoreError> {
        use crate::fold::event as decoded;
        Ok(match event.aggregate_type.as_str() {
            Company::TYPE => Self::Company(event.aggregate_id.clone(), decoded(event)?),
            Student::TYPE => Self::Student(event.aggregate_id.clone(), decoded(event)?),
            Placement::TYPE => Self::Placement(uuid_id(event)?, decoded(event)?),
            Report::TYPE => Self::Report(uuid_id(event)?, decoded(event)?),
            _ => Self::Investigation(decoded(event)?),
        })
    }
}

/// Where a company is.
#[derive(Debug, Clone)]
struct CompanyFacts {
    region: String,
    sector: String,
    participates: bool,
}

/// A placement's row: the record and the facts derived from it when saved.
#[derive(Debug, Clone)]
struct PlacementFacts {
    student_key: String,
    region: String,
    sector: String,
    first_year: bool,
    via_round: bool,
    proposed_year: i32,
    record: PlacementRecord,
}

/// A report's row.
#[derive(Debug, Clone)]
struct ReportFacts {
    school: String,
    company_id: String,
    qualification: String,
    region: String,
    sector: String,
    school_year: i32,
    kind: String,
    filed_on: NaiveDate,
    follow_up_days: Option<i32>,
    forwarded: bool,
    escalated: bool,
}

/// A cell of `indicator_counts`: metric, school year, school, region,
/// qualification, sector.
type Cell = (String, i32, String, String, String, String);

/// A student's row: the record, the school year of the latest learning wish,
/// and what their placements amount to.
#[derive(Debug, Clone)]
struct StudentFacts {
    record: StudentRecord,
    wish_year: Option<i32>,
    held: Held,
}

impl StudentFacts {
    fn count(&self) -> StudentCount {
        StudentCount::of(&self.record, self.wish_year, self.held)
    }
}

/// The rows a batch touches, loaded once, folded in memory, saved once.
#[derive(Default)]
struct Batch {
    companies: HashMap<String, CompanyFacts>,
    students: HashMap<String, StudentFacts>,
    placements: HashMap<Uuid, PlacementFacts>,
    reports: HashMap<Uuid, ReportFacts>,
    counts: HashMap<Cell, i32>,
    touched_companies: HashSet<String>,
    touched_students: HashSet<String>,
    touched_placements: HashSet<Uuid>,
    touched_reports: HashSet<Uuid>,
    /// What the loaded rows counted for, before the batch.
    placements_before: HashMap<Uuid, PlacementCount>,
    students_before: HashMap<String, StudentCount>,
}

impl Batch {
    /// Loads every row the batch's events concern: their own, and the
    /// companies and students a new placement or report takes its facts from.
    async fn load(tx: &mut PgConnection, events: &[Decoded]) -> Result<Self, StoreError> {
        let mut batch = Self::default();
        let placement_ids: Vec<Uuid> = events
            .iter()
            .filter_map(|e| if let Decoded::Placement(id, _) = e { Some(*id) } else { None })
            .collect();
        let report_ids: Vec<Uuid> = events
            .iter()
            .filter_map(|e| if let Decoded::Report(id, _) = e { Some(*id) } else { None })
            .collect();
        let rows = sqlx::query(
            "SELECT p.placement_id, p.student_key, p.region, p.sector, p.first_year,
                    p.via_round, p.proposed_year, r.record
               FROM indicator_placements p
               JOIN indicator_placement_records r USING (placement_id)
              WHERE p.placement_id = ANY($1)",
        )
        .bind(&placement_ids)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            batch.placements.insert(
                row.try_get("placement_id")?,
                PlacementFacts {
                    student_key: row.try_get("student_key")?,
                    region: row.try_get("region")?,
                    sector: row.try_get("sector")?,
                    first_year: row.try_get("first_year")?,
                    via_round: row.try_get("via_round")?,
                    proposed_year: row.try_get("proposed_year")?,
                    record: crate::fold::document(&row, "record")?,
                },
            );
        }
        let rows = sqlx::query(
            "SELECT report_id, school, company_id, qualification, region, sector, school_year,
                    kind, filed_on, follow_up_days, forwarded, escalated
               FROM indicator_reports WHERE report_id = ANY($1)",
        )
        .bind(&report_ids)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            batch.reports.insert(
                row.try_get("report_id")?,
                ReportFacts {
                    school: row.try_get("school")?,
                    company_id: row.try_get("company_id")?,
                    qualification: row.try_get("qualification")?,
                    region: row.try_get("region")?,
                    sector: row.try_get("sector")?,
                    school_year: row.try_get("school_year")?,
                    kind: row.try_get("kind")?,
                    filed_on: row.try_get("filed_on")?,
                    follow_up_days: row.try_get("follow_up_days")?,
                    forwarded: row.try_get("forwarded")?,
                    escalated: row.try_get("escalated")?,
                },
            );
        }

        let mut company_ids = HashSet::new();
        let mut student_keys: HashSet<String> =
            batch.placements.values().map(|p| p.student_key.clone()).collect();
        for event in events {
            match event {
                Decoded::Company(id, _) => {
                    company_ids.insert(id.clone());
                }
                Decoded::Student(key, _) => {
                    student_keys.insert(key.clone());
                }
                Decoded::Placement(_, event) => {
                    if let Some(record) = PlacementRecord::proposed(event) {
                        company_ids.insert(record.company_id.to_string());
                        student_keys.insert(student_key(
                            &record.student.school,
                            &record.student.student_id,
                        ));
                    }
                }
                Decoded::Report(_, ReportEvent::ReportFiled(filed)) => {
                    company_ids.insert(filed.company_id.to_string());
                    student_keys.insert(student_key(&filed.school, &filed.student_id));
                }
                Decoded::Report(..) => {}
                Decoded::Investigation(InvestigationEvent::InvestigationOpened(opened)) => {
                    company_ids.insert(opened.company_id.to_string());
                }
                Decoded::Investigation(_) => {}
            }
        }
        let company_ids: Vec<String> = company_ids.into_iter().collect();
        let rows: Vec<(String, String, String, bool)> = sqlx::query_as(
            "SELECT company_id, region, sector, participates
               FROM indicator_companies WHERE company_id = ANY($1)",
        )
        .bind(&company_ids)
        .fetch_all(&mut *tx)
        .await?;
        for (id, region, sector, participates) in rows {
            batch.companies.insert(id, CompanyFacts { region, sector, participates });
        }
        let student_keys: Vec<String> = student_keys.into_iter().collect();
        let rows = sqlx::query(
            "SELECT s.student_key, s.wish_year, s.holding, s.completed_since_wish, s.matched,
                    r.record
               FROM indicator_students s JOIN indicator_student_records r USING (student_key)
              WHERE s.student_key = ANY($1)",
        )
        .bind(&student_keys)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            batch.students.insert(
                row.try_get("student_key")?,
                StudentFacts {
                    record: crate::fold::document(&row, "record")?,
                    wish_year: row.try_get("wish_year")?,
                    held: Held {
                        holding: row.try_get("holding")?,
                        completed_since_wish: row.try_get("completed_since_wish")?,
                        matched: row.try_get("matched")?,
                    },
                },
            );
        }
        batch.placements_before = batch
            .placements
            .iter()
            .map(|(id, p)| (*id, PlacementCount::of(&p.record, p.proposed_year)))
            .collect();
        batch.students_before =
            batch.students.iter().map(|(key, s)| (key.clone(), s.count())).collect();
        Ok(batch)
    }

    /// The keys of the sealed content the batch may open: the grounds of new
    /// reports, and the support needs of students whose placement starts or
    /// gets its warm handover.
    fn sealed_keys(&self, events: &[Decoded]) -> Vec<Uuid> {
        let mut keys = HashSet::new();
        // Whose placement is whose: the loaded ones, and those proposed in
        // this very batch (not loaded: they had no row yet).
        let mut students: HashMap<Uuid, String> =
            self.placements.iter().map(|(id, p)| (*id, p.student_key.clone())).collect();
        for event in events {
            match event {
                Decoded::Report(_, ReportEvent::ReportFiled(filed)) => {
                    keys.insert(filed.grounds.sealed);
                }
                Decoded::Student(_, StudentEvent::SupportNeedRecorded(need)) => {
                    keys.insert(need.support_need.sealed);
                }
                Decoded::Placement(id, event) => {
                    if let Some(record) = PlacementRecord::proposed(event) {
                        let key = student_key(&record.student.school, &record.student.student_id);
                        students.entry(*id).or_insert(key);
                    }
                    if matches!(
                        event,
                        PlacementEvent::PlacementStarted(_) | PlacementEvent::WarmHandoverHeld(_)
                    ) {
                        let need = students
                            .get(id)
                            .and_then(|key| self.students.get(key))
                            .and_then(|s| s.record.support_need.as_ref());
                        keys.extend(need.map(|need| need.sealed));
                    }
                }
                _ => {}
            }
        }
        keys.into_iter().collect()
    }

    fn count(&mut self, metric: &str, year: i32, dims: [&str; 4]) {
        let [school, region, qualification, sector] = dims.map(str::to_owned);
        *self
            .counts
            .entry((metric.to_owned(), year, school, region, qualification, sector))
            .or_default() += 1;
    }

    fn company(&self, id: &str) -> (String, String) {
        // A company is registered before anything can concern it; were its
        // registration missing, its placements still count, in no region.
        self.companies.get(id).map(|c| (c.region.clone(), c.sector.clone())).unwrap_or_default()
    }

    /// Whether the student had a support need when asked (G3). Erased reads as
    /// none: after an erasure nothing may be derived from the content.
    fn has_support_need(&self, student: &str, open: &impl Fn(&Sealed) -> Protected<Value>) -> bool {
        let Some(sealed) = self.students.get(student).and_then(|s| s.record.support_need.as_ref())
        else {
            return false;
        };
        matches!(open(sealed), Protected::Readable(Value::String(_)))
    }

    fn fold(
        &mut self,
        event: &Decoded,
        recorded_on: NaiveDate,
        open: &impl Fn(&Sealed) -> Protected<Value>,
    ) -> Result<(), StoreError> {
        let year = |day: NaiveDate| SchoolYear::of(day).starts_in();
        match event {
            Decoded::Company(id, event) => self.fold_company(id, event, year(recorded_on)),
            Decoded::Student(key, event) => {
                self.touched_students.insert(key.clone());
                match self.students.get_mut(key) {
                    Some(student) => {
                        student.record.apply(event);
                        // A new wish starts a new search: the placements
                        // completed before it no longer answer it.
                        if matches!(event, StudentEvent::LearningWishRecorded(_)) {
                            student.wish_year = Some(year(recorded_on));
                            student.held.completed_since_wish = 0;
                        }
                    }
                    None => {
                        if let Some(record) = StudentRecord::start(event) {
                            let facts =
                                StudentFacts { record, wish_year: None, held: Held::default() };
                            self.students.insert(key.clone(), facts);
                        }
                    }
                }
            }
            Decoded::Placement(id, event) => self.fold_placement(*id, event, recorded_on, open),
            Decoded::Report(id, event) => self.fold_report(*id, event, recorded_on, open),
            Decoded::Investigation(InvestigationEvent::InvestigationOpened(opened)) => {
                let (region, sector) = self.company(opened.company_id.as_str());
                self.count(
                    metric::INVESTIGATIONS,
                    year(opened.opened_on),
                    ["", &region, "", &sector],
                );
            }
            Decoded::Investigation(_) => {}
        }
        Ok(())
    }

    fn fold_company(&mut self, id: &str, event: &CompanyEvent, year: i32) {
        match event {
            CompanyEvent::CompanyRegistered(registered) => {
                self.companies.insert(
                    id.to_owned(),
                    CompanyFacts {
                        region: registered.region.to_string(),
                        sector: registered.sector.to_string(),
                        participates: true,
                    },
                );
                self.touched_companies.insert(id.to_owned());
            }
            CompanyEvent::MatchingParticipationSet(set) => {
                if let Some(company) = self.companies.get_mut(id) {
                    company.participates = set.participates;
                    self.touched_companies.insert(id.to_owned());
                }
            }
            CompanyEvent::RecognitionSuspended(_) => {
                let (region, sector) = self.company(id);
                self.count(metric::SUSPENSIONS, year, ["", &region, "", &sector]);
            }
            CompanyEvent::RecognitionRevoked(revoked) => {
                let (region, sector) = self.company(id);
                let qualification =
                    revoked.qualification.map(|q| q.to_string()).unwrap_or_default();
                self.count(metric::REVOCATIONS, year, ["", &region, &qualification, &sector]);
            }
            CompanyEvent::RecognitionGranted(_) | CompanyEvent::RecognitionReinstated(_) => {}
        }
    }

    fn fold_placement(
        &mut self,
        id: Uuid,
        event: &PlacementEvent,
        recorded_on: NaiveDate,
        open: &impl Fn(&Sealed) -> Protected<Value>,
    ) {
        let Some(facts) = self.placements.get_mut(&id) else {
            // The same start as the aggregate's (`Placement::apply`).
            let Some(record) = PlacementRecord::proposed(event) else { return };
            let key = student_key(&record.student.school, &record.student.student_id);
            let (region, sector) = self.company(record.company_id.as_str());
            let first_year = self.students.get(&key).is_some_and(|s| s.record.enrolment.first_year);
            let via_round = matches!(
                event,
                PlacementEvent::MatchProposed(proposed) if proposed.matching_round_id.is_some()
            );
            if via_round && let Some(student) = self.students.get_mut(&key) {
                student.held.matched += 1;
                self.touched_students.insert(key.clone());
            }
            self.placements.insert(
                id,
                PlacementFacts {
                    student_key: key,
                    region,
                    sector,
                    first_year,
                    via_round,
                    proposed_year: SchoolYear::of(recorded_on).starts_in(),
                    record,
                },
            );
            self.touched_placements.insert(id);
            return;
        };
        let before = facts.record.status;
        let had_handover = facts.record.warm_handover.is_some();
        facts.record.apply(event);
        self.touched_placements.insert(id);
        let after = facts.record.status;
        let holds = |status| PlacementStatus::HOLDING.contains(&status);
        let completed = |status| status == PlacementStatus::Completed;
        if before != after
            && let Some(student) = self.students.get_mut(&facts.student_key)
        {
            student.held.holding += i32::from(holds(after)) - i32::from(holds(before));
            student.held.completed_since_wish +=
                i32::from(completed(after)) - i32::from(completed(before));
            self.touched_students.insert(facts.student_key.clone());
        }
        let facts = facts.clone();
        let record = &facts.record;
        let started_year = record.started_on.map(|day| SchoolYear::of(day).starts_in());
        let dims = [
            record.student.school.to_string(),
            facts.region.clone(),
            record.qualification.to_string(),
            facts.sector.clone(),
        ];
        let dims = [dims[0].as_str(), dims[1].as_str(), dims[2].as_str(), dims[3].as_str()];
        match (event, started_year) {
            // G3: a placement that starts for a student with a support need,
            // with or without the warm handover held before the start.
            (PlacementEvent::PlacementStarted(_), Some(year))
                if self.has_support_need(&facts.student_key, open) =>
            {
                self.count(metric::SUPPORT_NEED_STARTED, year, dims);
                if record.warm_handover.is_some() {
                    self.count(metric::SUPPORT_NEED_HANDOVER, year, dims);
                }
            }
            // A handover after the start counts now, the first one only (the
            // school may record it again).
            (PlacementEvent::WarmHandoverHeld(_), Some(year))
                if !had_handover && self.has_support_need(&facts.student_key, open) =>
            {
                self.count(metric::SUPPORT_NEED_HANDOVER, year, dims);
            }
            _ => {}
        }
    }

    fn fold_report(
        &mut self,
        id: Uuid,
        event: &ReportEvent,
        recorded_on: NaiveDate,
        open: &impl Fn(&Sealed) -> Protected<Value>,
    ) {
        if let ReportEvent::ReportFiled(filed) = event {
            let key = student_key(&filed.school, &filed.student_id);
            let qualification = self
                .students
                .get(&key)
                .map(|s| s.record.enrolment.qualification.to_string())
                .unwrap_or_default();
            let (region, sector) = self.company(filed.company_id.as_str());
            let year = SchoolYear::of(filed.filed_on).starts_in();
            // D2: each ground named adds one to its cell; the report's row
            // never says which.
            if let Protected::Readable(grounds) = open(&filed.grounds) {
                let grounds: Vec<Ground> = serde_json::from_value(grounds).unwrap_or_default();
                for ground in grounds {
                    let metric = format!("{}{}", metric::REPORT_GROUND, ground.as_str());
                    self.count(
                        &metric,
                        year,
                        [filed.school.as_str(), &region, &qualification, &sector],
                    );
                }
            }
            self.reports.insert(
                id,
                ReportFacts {
                    school: filed.school.to_string(),
                    company_id: filed.company_id.to_string(),
                    qualification,
                    region,
                    sector,
                    school_year: year,
                    kind: filed.kind.as_str().to_owned(),
                    filed_on: filed.filed_on,
                    follow_up_days: None,
                    forwarded: false,
                    escalated: false,
                },
            );
            self.touched_reports.insert(id);
            return;
        }
        let Some(report) = self.reports.get_mut(&id) else { return };
        // D4's follow-up steps, as `ReportRecord::followed_up` counts them.
        let follow_up = matches!(
            event,
            ReportEvent::ReportConversationRecorded(_)
                | ReportEvent::ReplacementPlacementOffered(_)
                | ReportEvent::SignalForwarded(_)
                | ReportEvent::ReportEscalated(_)
        );
        if follow_up && report.follow_up_days.is_none() {
            let days = working_days_between(report.filed_on, recorded_on);
            report.follow_up_days = Some(i32::try_from(days).unwrap_or(i32::MAX));
        }
        match event {
            ReportEvent::SignalForwarded(_) => report.forwarded = true,
            ReportEvent::ReportEscalated(_) => report.escalated = true,
            _ => {}
        }
        self.touched_reports.insert(id);
    }

    async fn save(self, tx: &mut PgConnection) -> Result<(), StoreError> {
        self.save_companies(tx).await?;
        self.save_students(tx).await?;
        self.save_placements(tx).await?;
        self.save_totals(tx).await?;
        self.save_reports(tx).await?;
        self.save_counts(tx).await
    }

    async fn save_companies(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        let (mut ids, mut regions, mut sectors, mut participates) =
            (vec![], vec![], vec![], vec![]);
        for id in &self.touched_companies {
            let Some(company) = self.companies.get(id) else { continue };
            ids.push(id.clone());
            regions.push(company.region.clone());
            sectors.push(company.sector.clone());
            participates.push(company.participates);
        }
        sqlx::query(
            "INSERT INTO indicator_companies (company_id, region, sector, participates)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[])
             ON CONFLICT (company_id) DO UPDATE
                SET region = excluded.region, sector = excluded.sector,
                    participates = excluded.participates",
        )
        .bind(&ids)
        .bind(&regions)
        .bind(&sectors)
        .bind(&participates)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn save_students(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        let mut rows = StudentRows::default();
        for key in &self.touched_students {
            let Some(student) = self.students.get(key) else { continue };
            let record = &student.record;
            let count = student.count();
            rows.keys.push(key.clone());
            rows.schools.push(record.school.to_string());
            rows.qualifications.push(record.enrolment.qualification.to_string());
            let wish = record.learning_wish.as_ref();
            rows.regions.push(wish.map(|w| w.region.to_string()));
            // A text[] per row, as JSON: unnest cannot take a 2-D array of
            // rows with different lengths.
            rows.sectors.push(sqlx::types::Json(
                wish.map(|w| w.sectors.iter().map(ToString::to_string).collect())
                    .unwrap_or_default(),
            ));
            rows.wish_years.push(student.wish_year);
            rows.holding.push(student.held.holding);
            rows.completed_since_wish.push(student.held.completed_since_wish);
            rows.matched.push(student.held.matched);
            for (column, value) in rows.columns.iter_mut().zip(count.columns) {
                column.push(value);
            }
            rows.records.push(Document::from(record));
        }
        let [seeking, without, first_year_bol, matched_bol] = &rows.columns;
        sqlx::query(
            "INSERT INTO indicator_students (student_key, school, qualification, region, sectors,
                    wish_year, holding, completed_since_wish, matched, seeking,
                    without_placement, first_year_bol, first_year_bol_matched)
             SELECT k, s, q, r, ARRAY(SELECT jsonb_array_elements_text(sec)), w, h, d, m, c1,
                    c2, c3, c4
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[],
                           $6::int4[], $7::int4[], $8::int4[], $9::int4[], $10::int2[],
                           $11::int2[], $12::int2[], $13::int2[])
                    AS t(k, s, q, r, sec, w, h, d, m, c1, c2, c3, c4)
             ON CONFLICT (student_key) DO UPDATE
                SET school = excluded.school, qualification = excluded.qualification,
                    region = excluded.region, sectors = excluded.sectors,
                    wish_year = excluded.wish_year, holding = excluded.holding,
                    completed_since_wish = excluded.completed_since_wish,
                    matched = excluded.matched, seeking = excluded.seeking,
                    without_placement = excluded.without_placement,
                    first_year_bol = excluded.first_year_bol,
                    first_year_bol_matched = excluded.first_year_bol_matched",
        )
        .bind(&rows.keys)
        .bind(&rows.schools)
        .bind(&rows.qualifications)
        .bind(&rows.regions)
        .bind(&rows.sectors)
        .bind(&rows.wish_years)
        .bind(&rows.holding)
        .bind(&rows.completed_since_wish)
        .bind(&rows.matched)
        .bind(seeking)
        .bind(without)
        .bind(first_year_bol)
        .bind(matched_bol)
        .execute(&mut *tx)
        .await?;
        save_records(
            tx,
            "INSERT INTO indicator_student_records (student_key, record)
             SELECT * FROM unnest($1::text[], $2::jsonb[])
             ON CONFLICT (student_key) DO UPDATE SET record = excluded.record",
            &rows.keys,
            &rows.records,
        )
        .await
    }

    async fn save_placements(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        let mut rows = PlacementRows::default();
        for id in &self.touched_placements {
            let Some(facts) = self.placements.get(id) else { continue };
            let record = &facts.record;
            let count = PlacementCount::of(record, facts.proposed_year);
            rows.ids.push(*id);
            rows.student_keys.push(facts.student_key.clone());
            rows.schools.push(record.student.school.to_string());
            rows.qualifications.push(record.qualification.to_string());
            rows.regions.push(facts.region.clone());
            rows.sectors.push(facts.sector.clone());
            rows.levels.push(i16::from(record.student.level.get()));
            rows.pathways.push(record.student.pathway.as_str());
            rows.first_years.push(facts.first_year);
            rows.via_round.push(facts.via_round);
            rows.proposed_years.push(facts.proposed_year);
            rows.school_years.push(count.year);
            rows.allowances.push(count.allowance.map(|(_, _, cents)| cents));
            for (column, value) in rows.columns.iter_mut().zip(count.columns) {
                column.push(value);
            }
            rows.records.push(Document::from(record));
        }
        let c = &rows.columns;
        sqlx::query(
            "INSERT INTO indicator_placements (placement_id, student_key, school, qualification,
                    region, sector, level, pathway, first_year, via_round, proposed_year,
                    school_year, allowance_cents, rated, satisfied_school, satisfied_company,
                    completed, compliant, bol_agreement, bol_allowance, bbl_agreement,
                    bbl_wage_ok)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                    $6::text[], $7::int2[], $8::text[], $9::bool[], $10::bool[], $11::int4[],
                    $12::int4[], $13::int8[], $14::int2[], $15::int2[], $16::int2[],
                    $17::int2[], $18::int2[], $19::int2[], $20::int2[], $21::int2[],
                    $22::int2[])
             ON CONFLICT (placement_id) DO UPDATE
                SET school_year = excluded.school_year,
                    allowance_cents = excluded.allowance_cents, rated = excluded.rated,
                    satisfied_school = excluded.satisfied_school,
                    satisfied_company = excluded.satisfied_company,
                    completed = excluded.completed, compliant = excluded.compliant,
                    bol_agreement = excluded.bol_agreement,
                    bol_allowance = excluded.bol_allowance,
                    bbl_agreement = excluded.bbl_agreement, bbl_wage_ok = excluded.bbl_wage_ok",
        )
        .bind(&rows.ids)
        .bind(&rows.student_keys)
        .bind(&rows.schools)
        .bind(&rows.qualifications)
        .bind(&rows.regions)
        .bind(&rows.sectors)
        .bind(&rows.levels)
        .bind(&rows.pathways)
        .bind(&rows.first_years)
        .bind(&rows.via_round)
        .bind(&rows.proposed_years)
        .bind(&rows.school_years)
        .bind(&rows.allowances)
        .bind(&c[0])
        .bind(&c[1])
        .bind(&c[2])
        .bind(&c[3])
        .bind(&c[4])
        .bind(&c[5])
        .bind(&c[6])
        .bind(&c[7])
        .bind(&c[8])
        .execute(&mut *tx)
        .await?;
        save_records(
            tx,
            "INSERT INTO indicator_placement_records (placement_id, record)
             SELECT * FROM unnest($1::uuid[], $2::jsonb[])
             ON CONFLICT (placement_id) DO UPDATE SET record = excluded.record",
            &rows.ids,
            &rows.records,
        )
        .await
    }

    /// The school-year totals move by what the batch changed: each touched
    /// row's count as saved, less its count as loaded.
    async fn save_totals(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        let mut totals = Totals::default();
        for id in &self.touched_placements {
            let Some(facts) = self.placements.get(id) else { continue };
            if let Some(before) = self.placements_before.get(id) {
                totals.placement(before, -1);
            }
            totals.placement(&PlacementCount::of(&facts.record, facts.proposed_year), 1);
        }
        for key in &self.touched_students {
            let Some(student) = self.students.get(key) else { continue };
            if let Some(before) = self.students_before.get(key) {
                totals.student(before, -1);
            }
            totals.student(&student.count(), 1);
        }
        totals.save(tx).await
    }

    async fn save_reports(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        let mut rows = ReportRows::default();
        for id in &self.touched_reports {
            let Some(report) = self.reports.get(id) else { continue };
            rows.ids.push(*id);
            rows.schools.push(report.school.clone());
            rows.companies.push(report.company_id.clone());
            rows.qualifications.push(report.qualification.clone());
            rows.regions.push(report.region.clone());
            rows.sectors.push(report.sector.clone());
            rows.years.push(report.school_year);
            rows.kinds.push(report.kind.clone());
            rows.filed.push(report.filed_on);
            rows.follow_up.push(report.follow_up_days);
            rows.forwarded.push(report.forwarded);
            rows.escalated.push(report.escalated);
        }
        sqlx::query(
            "INSERT INTO indicator_reports (report_id, school, company_id, qualification, region,
                    sector, school_year, kind, filed_on, follow_up_days, forwarded, escalated)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                    $6::text[], $7::int4[], $8::text[], $9::date[], $10::int4[], $11::bool[],
                    $12::bool[])
             ON CONFLICT (report_id) DO UPDATE
                SET follow_up_days = excluded.follow_up_days, forwarded = excluded.forwarded,
                    escalated = excluded.escalated",
        )
        .bind(&rows.ids)
        .bind(&rows.schools)
        .bind(&rows.companies)
        .bind(&rows.qualifications)
        .bind(&rows.regions)
        .bind(&rows.sectors)
        .bind(&rows.years)
        .bind(&rows.kinds)
        .bind(&rows.filed)
        .bind(&rows.follow_up)
        .bind(&rows.forwarded)
        .bind(&rows.escalated)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn save_counts(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        let mut rows = CountRows::default();
        for ((metric, year, school, region, qualification, sector), n) in &self.counts {
            rows.metrics.push(metric.clone());
            rows.years.push(*year);
            rows.schools.push(school.clone());
            rows.regions.push(region.clone());
            rows.qualifications.push(qualification.clone());
            rows.sectors.push(sector.clone());
            rows.ns.push(*n);
        }
        sqlx::query(
            "INSERT INTO indicator_counts AS c
                    (metric, school_year, school, region, qualification, sector, n)
             SELECT * FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::int4[])
             ON CONFLICT (metric, school_year, school, region, qualification, sector)
                DO UPDATE SET n = c.n + excluded.n",
        )
        .bind(&rows.metrics)
        .bind(&rows.years)
        .bind(&rows.schools)
        .bind(&rows.regions)
        .bind(&rows.qualifications)
        .bind(&rows.sectors)
        .bind(&rows.ns)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// Upserts the folded records of a batch (`sql` takes the keys as `$1` and
/// the records as `$2`).
async fn save_records<K, R: serde::Serialize + Sync>(
    tx: &mut PgConnection,
    sql: &str,
    keys: &[K],
    records: &[Document<'_, R>],
) -> Result<(), StoreError>
where
    K: for<'q> sqlx::Encode<'q, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
        + sqlx::postgres::PgHasArrayType
        + Send
        + Sync,
{
    sqlx::query(sql).bind(keys).bind(records).execute(tx).await?;
    Ok(())
}

#[derive(Default)]
struct CountRows {
    metrics: Vec<String>,
    years: Vec<i32>,
    schools: Vec<String>,
    regions: Vec<String>,
    qualifications: Vec<String>,
    sectors: Vec<String>,
    ns: Vec<i32>,
}

#[derive(Default)]
struct StudentRows<'r> {
    keys: Vec<String>,
    schools: Vec<String>,
    qualifications: Vec<String>,
    regions: Vec<Option<String>>,
    sectors: Vec<sqlx::types::Json<Vec<String>>>,
    wish_years: Vec<Option<i32>>,
    holding: Vec<i32>,
    completed_since_wish: Vec<i32>,
    matched: Vec<i32>,
    columns: [Vec<i16>; 4],
    records: Vec<Document<'r, StudentRecord>>,
}

#[derive(Default)]
struct PlacementRows<'r> {
    ids: Vec<Uuid>,
    student_keys: Vec<String>,
    schools: Vec<String>,
    qualifications: Vec<String>,
    regions: Vec<String>,
    sectors: Vec<String>,
    levels: Vec<i16>,
    pathways: Vec<&'static str>,
    first_years: Vec<bool>,
    via_round: Vec<bool>,
    proposed_years: Vec<i32>,
    school_years: Vec<i32>,
    allowances: Vec<Option<i64>>,
    columns: [Vec<i16>; 9],
    records: Vec<Document<'r, PlacementRecord>>,
}

#[derive(Default)]
struct ReportRows {
    ids: Vec<Uuid>,
    schools: Vec<String>,
    companies: Vec<String>,
    qualifications: Vec<String>,
    regions: Vec<String>,
    sectors: Vec<String>,
    years: Vec<i32>,
    kinds: Vec<String>,
    filed: Vec<NaiveDate>,
    follow_up: Vec<Option<i32>>,
    forwarded: Vec<bool>,
    escalated: Vec<bool>,
}
