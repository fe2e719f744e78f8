//! What one placement or student counts for in the indicators, decided in
//! one place: the projector stores it per row (0/1 columns) and adds it to
//! the school-year totals, and both queries only sum what is stored.

use std::collections::HashMap;

use sqlx::PgConnection;
use stagepact_domain::monitoring::{SchoolYear, monthly};
use stagepact_domain::placement::PlacementRecord;
use stagepact_domain::student::StudentRecord;
use stagepact_domain::values::Pathway;

use crate::StoreError;

/// The 0/1 columns of a placement, in this order (goals 1 and 4).
pub(crate) const PLACEMENT_COLUMNS: [&str; 9] = [
    "rated",
    "satisfied_school",
    "satisfied_company",
    "completed",
    "compliant",
    "bol_agreement",
    "bol_allowance",
    "bbl_agreement",
    "bbl_wage_ok",
];

/// The 0/1 columns of a student, in this order (goal 3).
pub(crate) const STUDENT_COLUMNS: [&str; 4] =
    ["seeking", "without_placement", "first_year_bol", "first_year_bol_matched"];

/// A rating of 4 or 5 is satisfied (G4, the goal-1 indicator).
const SATISFIED: u8 = 4;

/// What one placement counts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PlacementCount {
    /// The school year it counts in: of the agreement's first day, or of the
    /// proposal before there is an agreement.
    pub year: i32,
    /// [`PLACEMENT_COLUMNS`].
    pub columns: [i16; 9],
    /// The agreement's internship allowance per month: (level, pathway, cents).
    pub allowance: Option<(i16, &'static str, i64)>,
}

impl PlacementCount {
    pub(crate) fn of(record: &PlacementRecord, proposed_year: i32) -> Self {
        let drafted = record.agreement.as_ref().map(|a| &a.drafted);
        let compensation = drafted.map(|a| &a.terms.compensation);
        let allowance = compensation.and_then(|c| c.internship_allowance.as_ref()).map(monthly);
        let rating = record.rating.as_ref();
        let completed = record.status.as_str() == "completed";
        let pathway = record.student.pathway;
        let agreed = drafted.is_some();
        let bol = agreed && pathway == Pathway::Bol;
        let bbl = agreed && pathway == Pathway::Bbl;
        // C3: the wage the agreement holds against the minimum it records.
        let wage_ok = drafted.is_some_and(|a| {
            matches!((a.terms.compensation.hourly_wage, a.minimum_hourly_wage),
                     (Some(wage), Some(minimum)) if wage.0 >= minimum.0)
        });
        let columns = [
            rating.is_some(),
            rating.is_some_and(|r| r.school_score >= SATISFIED),
            rating.is_some_and(|r| r.company_score >= SATISFIED),
            completed,
            // G2 held, or the school waived it with a reason.
            completed && (record.g2_met() || record.waiver.is_some()),
            bol,
            bol && allowance.is_some(),
            bbl,
            bbl && wage_ok,
        ]
        .map(i16::from);
        Self {
            year: drafted
                .map(|a| SchoolYear::of(a.terms.period.start).starts_in())
                .unwrap_or(proposed_year),
            columns,
            allowance: allowance
                .map(|cents| (i16::from(record.student.level.get()), pathway.as_str(), cents.0)),
        }
    }
}

/// What one student counts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StudentCount {
    /// The school year the student started seeking in (none: no learning wish).
    pub year: Option<i32>,
    /// [`STUDENT_COLUMNS`].
    pub columns: [i16; 4],
}

/// What a student's placements amount to, kept on the student's row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Held {
    /// Placements accepted, agreed or started.
    pub holding: i32,
    /// Placements completed since the latest learning wish.
    pub completed_since_wish: i32,
    /// Placements proposed by a matching round.
    pub matched: i32,
}

impl StudentCount {
    /// A student with a learning wish seeks a placement; they are without
    /// one while none holds them and none was completed since that wish (a
    /// student who completed one and records a new wish seeks again).
    pub(crate) fn of(record: &StudentRecord, wish_year: Option<i32>, held: Held) -> Self {
        let seeking = record.learning_wish.is_some();
        let placed = held.holding > 0 || held.completed_since_wish > 0;
        let first_year_bol =
            seeking && record.enrolment.first_year && record.enrolment.pathway == Pathway::Bol;
        let columns =
            [seeking, seeking && !placed, first_year_bol, first_year_bol && held.matched > 0]
                .map(i16::from);
        Self { year: wish_year.filter(|_| seeking), columns }
    }
}

/// Changes to the school-year totals, summed over a batch.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    placements: HashMap<i32, [i64; 9]>,
    students: HashMap<i32, [i64; 4]>,
    allowances: HashMap<(i32, i16, &'static str, i64), i64>,
}

fn add<const N: usize>(total: &mut [i64; N], columns: &[i16; N], sign: i64) {
    for (total, column) in total.iter_mut().zip(columns) {
        *total += sign * i64::from(*column);
    }
}

impl Totals {
    /// Adds (`sign` 1) or takes away (`sign` -1) what a placement counts for.
    pub(crate) fn placement(&mut self, count: &PlacementCount, sign: i64) {
        add(self.placements.entry(count.year).or_default(), &count.columns, sign);
        if let Some((level, pathway, cents)) = count.allowance {
            *self.allowances.entry((count.year, level, pathway, cents)).or_default() += sign;
        }
    }

    /// Adds or takes away what a student counts for.
    pub(crate) fn student(&mut self, count: &StudentCount, sign: i64) {
        if let Some(year) = count.year {
            add(self.students.entry(year).or_default(), &count.columns, sign);
        }
    }

    /// Adds the changes to the stored totals.
    pub(crate) async fn save(&self, tx: &mut PgConnection) -> Result<(), StoreError> {
        let (years, columns) = transpose(&self.placements);
        sqlx::query(&upsert_totals("indicator_year_placements", "school_year", &PLACEMENT_COLUMNS))
            .bind(&years)
            .bind(&columns[0])
            .bind(&columns[1])
            .bind(&columns[2])
            .bind(&columns[3])
            .bind(&columns[4])
            .bind(&columns[5])
            .bind(&columns[6])
            .bind(&columns[7])
            .bind(&columns[8])
            .execute(&mut *tx)
            .await?;
        let (years, columns) = transpose(&self.students);
        sqlx::query(&upsert_totals("indicator_year_students", "wish_year", &STUDENT_COLUMNS))
            .bind(&years)
            .bind(&columns[0])
            .bind(&columns[1])
            .bind(&columns[2])
            .bind(&columns[3])
            .execute(&mut *tx)
            .await?;
        let (mut years, mut levels, mut pathways) = (Vec::new(), Vec::new(), Vec::new());
        let (mut cents, mut ns) = (Vec::new(), Vec::new());
        for (&(year, level, pathway, amount), &n) in &self.allowances {
            years.push(year);
            levels.push(level);
            pathways.push(pathway);
            cents.push(amount);
            ns.push(n);
        }
        sqlx::query(
            "INSERT INTO indicator_year_allowances AS t
                    (school_year, level, pathway, allowance_cents, n)
             SELECT * FROM unnest($1::int4[], $2::int2[], $3::text[], $4::int8[], $5::int8[])
             ON CONFLICT (school_year, level, pathway, allowance_cents)
                DO UPDATE SET n = t.n + excluded.n",
        )
        .bind(&years)
        .bind(&levels)
        .bind(&pathways)
        .bind(&cents)
        .bind(&ns)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// Years, and per column the changes of every year.
fn transpose<const N: usize>(totals: &HashMap<i32, [i64; N]>) -> (Vec<i32>, [Vec<i64>; N]) {
    let mut columns: [Vec<i64>; N] = std::array::from_fn(|_| Vec::new());
    let years = totals
        .iter()
        .map(|(year, values)| {
            for (column, value) in columns.iter_mut().zip(values) {
                column.push(*value);
            }
            *year
        })
        .collect();
    (years, columns)
}

/// `INSERT .. ON CONFLICT` adding `$2..` to `columns` of the row of `$1`.
fn upsert_totals(table: &str, key: &str, columns: &[&str]) -> String {
    let names = columns.join(", ");
    let arrays: Vec<String> = (0..columns.len()).map(|i| format!("${}::int8[]", i + 2)).collect();
    let sums: Vec<String> = columns.iter().map(|c| format!("{c} = t.{c} + excluded.{c}")).collect();
    format!(
        "INSERT INTO {table} AS t ({key}, {names})
         SELECT * FROM unnest($1::int4[], {})
         ON CONFLICT ({key}) DO UPDATE SET {}",
        arrays.join(", "),
        sums.join(", ")
    )
}
