//! The queries over the indicators read model: raw counts per goal for a
//! scope. Every query adds up the rows of the scope per call; small-cell
//! suppression is the caller's, after the counts are known.

use chrono::NaiveDate;
use sqlx::{PgPool, Row};

use std::collections::BTreeMap;

use super::counted::{PLACEMENT_COLUMNS, STUDENT_COLUMNS};
use super::metric;
use crate::StoreError;

/// Which rows count; `None` is "all". `school_year` is the year the school
/// year starts in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// The school year (1 August of this year to 31 July of the next).
    pub school_year: Option<i32>,
    /// The school (BRIN).
    pub school: Option<String>,
    /// The labour-market region: the company's, or the learning wish's for
    /// students seeking a placement.
    pub region: Option<String>,
    /// The qualification (crebo code).
    pub qualification: Option<String>,
    /// The company's sector, or one of the sectors of a student's wish.
    pub sector: Option<String>,
}

impl Scope {
    /// Whether the scope is all schools, regions, qualifications and sectors
    /// (of one school year or all): the school-year totals answer it.
    fn whole_market(&self) -> bool {
        self.school.is_none()
            && self.region.is_none()
            && self.qualification.is_none()
            && self.sector.is_none()
    }
}

/// Goal 1, better guidance (G2, G3, G4).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Guidance {
    /// Placements the student rated.
    pub rated: i64,
    /// Of those, rated 4 or 5 for the school's guidance.
    pub satisfied_with_school: i64,
    /// Of those, rated 4 or 5 for the company's guidance.
    pub satisfied_with_company: i64,
    /// Placements completed.
    pub completed: i64,
    /// Of those, with G2 met (three moments, one on site) or waived.
    pub contact_moments_compliant: i64,
    /// Placements started for a student with a support need.
    pub support_need_started: i64,
    /// Of those, with a warm handover.
    pub support_need_handover: i64,
}

/// Goal 2, no internship discrimination (D1-D5).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discrimination {
    /// Reports filed.
    pub reports: i64,
    /// Reports per kind, by kind's wire name.
    pub by_kind: Vec<(String, i64)>,
    /// Grounds named per ground, by wire name (a report may name several).
    pub by_ground: Vec<(String, i64)>,
    /// Reports with a first follow-up step within the configured working days.
    pub followed_up_in_time: i64,
    /// Reports whose school forwarded a signal to SBB.
    pub signals_forwarded: i64,
    /// Reports escalated to SBB's complaint desk.
    pub escalated: i64,
    /// Investigations SBB opened.
    pub investigations: i64,
    /// Suspensions of a recognition.
    pub suspensions: i64,
    /// Revocations of a recognition.
    pub revocations: i64,
}

/// Goal 3, enough placements (M2, M4, S2).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placements {
    /// Students with a learning wish.
    pub seeking: i64,
    /// Of those, without a placement.
    pub without_placement: i64,
    /// First-year BOL students with a learning wish (M2).
    pub first_year_bol: i64,
    /// Of those, matched in a matching round.
    pub first_year_bol_matched: i64,
    /// Companies registered.
    pub companies: i64,
    /// Of those, not taking part in matching (M4).
    pub companies_opted_out: i64,
}

/// Internship allowances of one group (a level, a pathway), per month.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowanceGroup {
    /// The level (`"2"`) or pathway (`"bol"`).
    pub group: String,
    /// Agreements with an internship allowance.
    pub agreements: i64,
    /// Their mean, in cents per month.
    pub mean_cents: f64,
    /// Their median, in cents per month.
    pub median_cents: f64,
}

/// Goal 4, fair compensation (C2, C3).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Compensation {
    /// BOL agreements drafted.
    pub bol_agreements: i64,
    /// Of those, with an internship allowance.
    pub bol_with_allowance: i64,
    /// Allowances per level.
    pub by_level: Vec<AllowanceGroup>,
    /// Allowances per pathway.
    pub by_pathway: Vec<AllowanceGroup>,
    /// BBL agreements drafted.
    pub bbl_agreements: i64,
    /// Of those, with a wage at or above the statutory minimum.
    pub bbl_wage_compliant: i64,
}

/// All four goals for one scope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Goal 1.
    pub guidance: Guidance,
    /// Goal 2.
    pub discrimination: Discrimination,
    /// Goal 3.
    pub placements: Placements,
    /// Goal 4.
    pub compensation: Compensation,
}

/// The scope's filters as `$1`..`$5` of every query below (school year,
/// school, region, qualification, sector), each optional.
macro_rules! in_scope {
    () => {
        "($1::int4 IS NULL OR school_year = $1) AND ($2::text IS NULL OR school = $2)
         AND ($3::text IS NULL OR region = $3) AND ($4::text IS NULL OR qualification = $4)
         AND ($5::text IS NULL OR sector = $5)"
    };
}

fn scoped<'q>(
    sql: &'q str,
    scope: &'q Scope,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    // Optional filters: planned for each call's values (see the crate docs).
    sqlx::query(sql)
        .persistent(false)
        .bind(scope.school_year)
        .bind(&scope.school)
        .bind(&scope.region)
        .bind(&scope.qualification)
        .bind(&scope.sector)
}

/// The figures of all four goals for `scope`; a report counts as followed up
/// in time when its first step came within `follow_up_working_days`.
pub async fn figures(
    pool: &PgPool,
    scope: &Scope,
    follow_up_working_days: u32,
) -> Result<Figures, StoreError> {
    let ((guidance, compensation), discrimination, placements) = tokio::try_join!(
        placement_figures(pool, scope),
        discrimination(pool, scope, follow_up_working_days),
        placements(pool, scope),
    )?;
    Ok(Figures { guidance, discrimination, placements, compensation })
}

/// The sums of `columns` over the school-year totals `table` (keyed by
/// `year_column`) of the scope's school year, or of all: one row, named by
/// column.
async fn year_totals(
    pool: &PgPool,
    scope: &Scope,
    (table, year_column): (&str, &str),
    columns: &[&str],
) -> Result<sqlx::postgres::PgRow, StoreError> {
    let sums: Vec<String> =
        columns.iter().map(|c| format!("coalesce(sum({c}), 0)::int8 AS {c}")).collect();
    let sql = format!(
        "SELECT {} FROM {table} WHERE ($1::int4 IS NULL OR {year_column} = $1)",
        sums.join(", ")
    );
    Ok(sqlx::query(&sql).bind(scope.school_year).fetch_one(pool).await?)
}

/// A monthly internship allowance and how many agreements had it, of a level
/// and a pathway.
struct Amount {
    level: i16,
    pathway: String,
    cents: i64,
    agreements: i64,
}

/// Goals 1 and 4 from the placements: for the whole market from the
/// school-year totals, for a filtered scope in one pass over its rows,
/// grouped by level, pathway and allowance so the same pass gives the
/// allowances' means and medians.
async fn placement_figures(
    pool: &PgPool,
    scope: &Scope,
) -> Result<(Guidance, Compensation), StoreError> {
    let mut sums = [0i64; PLACEMENT_COLUMNS.len()];
    let mut amounts = Vec::new();
    if scope.whole_market() {
        let totals = ("indicator_year_placements", "school_year");
        let row = year_totals(pool, scope, totals, &PLACEMENT_COLUMNS).await?;
        for (sum, column) in sums.iter_mut().zip(PLACEMENT_COLUMNS) {
            *sum = row.try_get(column)?;
        }
        let rows = sqlx::query(
            "SELECT level, pathway, allowance_cents, sum(n)::int8 AS n
               FROM indicator_year_allowances
              WHERE ($1::int4 IS NULL OR school_year = $1) AND n > 0
              GROUP BY 1, 2, 3",
        )
        .bind(scope.school_year)
        .fetch_all(pool)
        .await?;
        for row in &rows {
            amounts.push(Amount {
                level: row.try_get("level")?,
                pathway: row.try_get("pathway")?,
                cents: row.try_get("allowance_cents")?,
                agreements: row.try_get("n")?,
            });
        }
    } else {
        let columns: Vec<String> =
            PLACEMENT_COLUMNS.iter().map(|c| format!("sum({c})::int8 AS {c}")).collect();
        let sql = format!(
            "SELECT level, pathway, allowance_cents, count(*) AS n, {}
               FROM indicator_placements WHERE {} GROUP BY 1, 2, 3",
            columns.join(", "),
            in_scope!()
        );
        for row in &scoped(&sql, scope).fetch_all(pool).await? {
            for (sum, column) in sums.iter_mut().zip(PLACEMENT_COLUMNS) {
                *sum += row.try_get::<i64, _>(column)?;
            }
            if let Some(cents) = row.try_get::<Option<i64>, _>("allowance_cents")? {
                amounts.push(Amount {
                    level: row.try_get("level")?,
                    pathway: row.try_get("pathway")?,
                    cents,
                    agreements: row.try_get("n")?,
                });
            }
        }
    }
    let [rated, school, company, completed, compliant, bol, bol_allowance, bbl, bbl_ok] = sums;
    let [support_started, support_handover] =
        counts(pool, scope, [metric::SUPPORT_NEED_STARTED, metric::SUPPORT_NEED_HANDOVER]).await?;
    let guidance = Guidance {
        rated,
        satisfied_with_school: school,
        satisfied_with_company: company,
        completed,
        contact_moments_compliant: compliant,
        support_need_started: support_started,
        support_need_handover: support_handover,
    };
    let (by_level, by_pathway) = allowance_groups(&amounts);
    let compensation = Compensation {
        bol_agreements: bol,
        bol_with_allowance: bol_allowance,
        by_level,
        by_pathway,
        bbl_agreements: bbl,
        bbl_wage_compliant: bbl_ok,
    };
    Ok((guidance, compensation))
}

/// Allowances per level and per pathway.
fn allowance_groups(amounts: &[Amount]) -> (Vec<AllowanceGroup>, Vec<AllowanceGroup>) {
    let mut by_level: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    let mut by_pathway: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for amount in amounts {
        let counted = (amount.cents, amount.agreements);
        by_level.entry(amount.level.to_string()).or_default().push(counted);
        by_pathway.entry(amount.pathway.clone()).or_default().push(counted);
    }
    let groups = |groups: BTreeMap<String, Vec<(i64, i64)>>| {
        groups.into_iter().filter_map(|(group, amounts)| allowance_group(group, amounts)).collect()
    };
    (groups(by_level), groups(by_pathway))
}

/// The sums of exact `metrics` in `indicator_counts` for `scope`, in order.
async fn counts<const N: usize>(
    pool: &PgPool,
    scope: &Scope,
    metrics: [&str; N],
) -> Result<[i64; N], StoreError> {
    let rows = by_metric(pool, scope, Metrics::Exactly(&metrics)).await?;
    Ok(metrics.map(|m| rows.iter().find(|(name, _)| name == m).map_or(0, |(_, n)| *n)))
}

/// Which metrics of `indicator_counts` to sum.
enum Metrics<'a> {
    Exactly(&'a [&'a str]),
    Prefixed(&'a str),
}

/// The sum per metric for `scope`. Counts about companies concern no school
/// (`school` = '') and mostly no qualification: a filter on either leaves
/// them in, the region and sector of the company still apply.
async fn by_metric(
    pool: &PgPool,
    scope: &Scope,
    metrics: Metrics<'_>,
) -> Result<Vec<(String, i64)>, StoreError> {
    let which = match metrics {
        Metrics::Exactly(_) => "metric = ANY($6)",
        Metrics::Prefixed(_) => "starts_with(metric, $6)",
    };
    let sql = format!(
        "SELECT metric, sum(n)::int8 AS n FROM indicator_counts
          WHERE {which}
            AND ($1::int4 IS NULL OR school_year = $1)
            AND ($2::text IS NULL OR school = $2 OR school = '')
            AND ($3::text IS NULL OR region = $3)
            AND ($4::text IS NULL OR qualification = $4 OR qualification = '')
            AND ($5::text IS NULL OR sector = $5)
          GROUP BY metric ORDER BY metric"
    );
    let query = scoped(&sql, scope);
    let rows = match metrics {
        Metrics::Exactly(names) => query.bind(names).fetch_all(pool).await?,
        Metrics::Prefixed(prefix) => query.bind(prefix).fetch_all(pool).await?,
    };
    rows.iter().map(|row| Ok((row.try_get("metric")?, row.try_get("n")?))).collect()
}

async fn discrimination(
    pool: &PgPool,
    scope: &Scope,
    follow_up_working_days: u32,
) -> Result<Discrimination, StoreError> {
    let rows = scoped(
        concat!(
            "SELECT kind, count(*) AS reports,
                    count(*) FILTER (WHERE follow_up_days <= $6) AS in_time,
                    count(*) FILTER (WHERE forwarded) AS forwarded,
                    count(*) FILTER (WHERE escalated) AS escalated
               FROM indicator_reports WHERE ",
            in_scope!(),
            " GROUP BY kind ORDER BY kind"
        ),
        scope,
    )
    .bind(i32::try_from(follow_up_working_days).unwrap_or(i32::MAX))
    .fetch_all(pool)
    .await?;
    let mut figures = Discrimination::default();
    for row in &rows {
        let reports: i64 = row.try_get("reports")?;
        figures.reports += reports;
        figures.followed_up_in_time += row.try_get::<i64, _>("in_time")?;
        figures.signals_forwarded += row.try_get::<i64, _>("forwarded")?;
        figures.escalated += row.try_get::<i64, _>("escalated")?;
        figures.by_kind.push((row.try_get("kind")?, reports));
    }
    figures.by_ground = by_metric(pool, scope, Metrics::Prefixed(metric::REPORT_GROUND))
        .await?
        .into_iter()
        .filter_map(|(name, n)| {
            name.strip_prefix(metric::REPORT_GROUND).map(|ground| (ground.to_owned(), n))
        })
        .collect();
    let [investigations, suspensions, revocations] =
        counts(pool, scope, [metric::INVESTIGATIONS, metric::SUSPENSIONS, metric::REVOCATIONS])
            .await?;
    figures.investigations = investigations;
    figures.suspensions = suspensions;
    figures.revocations = revocations;
    Ok(figures)
}

async fn placements(pool: &PgPool, scope: &Scope) -> Result<Placements, StoreError> {
    // A student's school year is the one they started seeking in; the
    // sector filter matches any sector of the learning wish.
    let students = if scope.whole_market() {
        let totals = ("indicator_year_students", "wish_year");
        year_totals(pool, scope, totals, &STUDENT_COLUMNS).await?
    } else {
        let sums: Vec<String> =
            STUDENT_COLUMNS.iter().map(|c| format!("coalesce(sum({c}), 0)::int8 AS {c}")).collect();
        let sql = format!(
            "SELECT {} FROM indicator_students
              WHERE ($1::int4 IS NULL OR wish_year = $1) AND ($2::text IS NULL OR school = $2)
                AND ($3::text IS NULL OR region = $3) AND ($4::text IS NULL OR qualification = $4)
                AND ($5::text IS NULL OR sectors @> ARRAY[$5])",
            sums.join(", ")
        );
        scoped(&sql, scope).fetch_one(pool).await?
    };
    let companies = sqlx::query(
        "SELECT count(*) AS companies, count(*) FILTER (WHERE NOT participates) AS opted_out
           FROM indicator_companies
          WHERE ($1::text IS NULL OR region = $1) AND ($2::text IS NULL OR sector = $2)",
    )
    .persistent(false)
    .bind(&scope.region)
    .bind(&scope.sector)
    .fetch_one(pool)
    .await?;
    Ok(Placements {
        seeking: students.try_get("seeking")?,
        without_placement: students.try_get("without_placement")?,
        first_year_bol: students.try_get("first_year_bol")?,
        first_year_bol_matched: students.try_get("first_year_bol_matched")?,
        companies: companies.try_get("companies")?,
        companies_opted_out: companies.try_get("opted_out")?,
    })
}

/// Mean and median of amounts given as (amount, how many). The median of an
/// even count is the mean of the two middle amounts.
fn allowance_group(group: String, mut amounts: Vec<(i64, i64)>) -> Option<AllowanceGroup> {
    amounts.sort_unstable();
    let agreements: i64 = amounts.iter().map(|(_, n)| n).sum();
    if agreements <= 0 {
        return None;
    }
    let total: i64 = amounts.iter().map(|(cents, n)| cents * n).sum();
    // The amount at 0-based position `k` of the sorted list.
    let at = |k: i64| {
        let mut seen = 0;
        amounts
            .iter()
            .find(|(_, n)| {
                seen += n;
                seen > k
            })
            .map_or(0, |(cents, _)| *cents)
    };
    let (low, high) = (at((agreements - 1) / 2), at(agreements / 2));
    #[expect(clippy::cast_precision_loss, reason = "sums of cents far below 2^52")]
    Some(AllowanceGroup {
        group,
        agreements,
        mean_cents: total as f64 / agreements as f64,
        median_cents: (low + high) as f64 / 2.0,
    })
}

/// Supply and demand of one qualification in one region, today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplyDemand {
    /// The qualification (crebo code).
    pub qualification: String,
    /// The region.
    pub region: String,
    /// Students with a learning wish for the region and no placement.
    pub seeking: i64,
    /// Free slots on offers open today (S1, S2).
    pub open_slots: i64,
    /// The schools of the seeking students.
    pub schools: Vec<String>,
}

/// Supply and demand per qualification and region on `today`. Demand: students whose learning wish names
/// the region and who have no placement; supply: the free slots of the offers
/// open today (the offer board's own rule, `offers::select_offers`).
pub async fn supply_demand(
    pool: &PgPool,
    today: NaiveDate,
) -> Result<Vec<SupplyDemand>, StoreError> {
    let sql = concat!(
        "WITH open_offers AS (",
        crate::offers::select_offers!(),
        "   WHERE s.open),
         supply AS (
            SELECT qualification, region, sum(free_slots)::int8 AS open_slots
              FROM open_offers GROUP BY 1, 2),
         demand AS (
            SELECT s.qualification, s.region, count(*) AS seeking,
                   array_agg(DISTINCT s.school ORDER BY s.school) AS schools
              FROM indicator_students s
             WHERE s.without_placement = 1
             GROUP BY 1, 2)
         SELECT coalesce(d.qualification, s.qualification) AS qualification,
                coalesce(d.region, s.region) AS region,
                coalesce(d.seeking, 0) AS seeking, coalesce(s.open_slots, 0) AS open_slots,
                coalesce(d.schools, '{}') AS schools
           FROM demand d FULL JOIN supply s
             ON s.qualification = d.qualification AND s.region = d.region
          ORDER BY 1, 2"
    );
    let rows = sqlx::query(sql).bind(today).fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            Ok(SupplyDemand {
                qualification: row.try_get("qualification")?,
                region: row.try_get("region")?,
                seeking: row.try_get("seeking")?,
                open_slots: row.try_get("open_slots")?,
                schools: row.try_get("schools")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c2_the_median_of_counted_amounts_is_the_middle_one() {
        let odd = allowance_group("2".into(), vec![(300, 1), (100, 1), (200, 1)]);
        assert_eq!(odd.map(|g| (g.agreements, g.median_cents)), Some((3, 200.0)));
        let even = allowance_group("2".into(), vec![(100, 2), (400, 2)]);
        assert_eq!(even.as_ref().map(|g| g.median_cents), Some(250.0));
        assert_eq!(even.map(|g| g.mean_cents), Some(250.0));
        let skewed = allowance_group("bol".into(), vec![(100, 5), (900, 1)]);
        assert_eq!(skewed.map(|g| g.median_cents), Some(100.0));
        assert!(allowance_group("3".into(), vec![(100, 0)]).is_none(), "nothing counted");
    }
}
