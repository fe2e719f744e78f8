//! The queries over the indicators read model: raw counts per goal for a
//! scope. Every query adds up the rows of the scope per call; small-cell
//! suppression is the caller's, after the counts are known.

use chrono::NaiveDate;
use sqlx::{PgPool, Row};
use stagepact_domain::placement::PlacementStatus;

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
    let (guidance, discrimination, placements, compensation) = tokio::try_join!(
        guidance(pool, scope),
        discrimination(pool, scope, follow_up_working_days),
        placements(pool, scope),
        compensation(pool, scope),
    )?;
    Ok(Figures { guidance, discrimination, placements, compensation })
}

async fn guidance(pool: &PgPool, scope: &Scope) -> Result<Guidance, StoreError> {
    let row = scoped(
        concat!(
            "SELECT count(school_score) AS rated,
                    count(*) FILTER (WHERE school_score >= 4) AS school,
                    count(*) FILTER (WHERE company_score >= 4) AS company,
                    count(*) FILTER (WHERE status = 'completed') AS completed,
                    count(*) FILTER (WHERE status = 'completed' AND g2_compliant) AS compliant
               FROM indicator_placements WHERE ",
            in_scope!()
        ),
        scope,
    )
    .fetch_one(pool)
    .await?;
    let counts =
        counts(pool, scope, &[metric::SUPPORT_NEED_STARTED, metric::SUPPORT_NEED_HANDOVER]).await?;
    Ok(Guidance {
        rated: row.try_get("rated")?,
        satisfied_with_school: row.try_get("school")?,
        satisfied_with_company: row.try_get("company")?,
        completed: row.try_get("completed")?,
        contact_moments_compliant: row.try_get("compliant")?,
        support_need_started: counts[0],
        support_need_handover: counts[1],
    })
}

/// The sums of exact `metrics` in `indicator_counts` for `scope`, in order.
async fn counts(pool: &PgPool, scope: &Scope, metrics: &[&str]) -> Result<Vec<i64>, StoreError> {
    let rows = by_metric(pool, scope, Metrics::Exactly(metrics)).await?;
    Ok(metrics
        .iter()
        .map(|m| rows.iter().find(|(name, _)| name == m).map_or(0, |(_, n)| *n))
        .collect())
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
        counts(pool, scope, &[metric::INVESTIGATIONS, metric::SUSPENSIONS, metric::REVOCATIONS])
            .await?[..]
    else {
        return Err(StoreError::Corrupt(serde::de::Error::custom("three counts asked")));
    };
    figures.investigations = investigations;
    figures.suspensions = suspensions;
    figures.revocations = revocations;
    Ok(figures)
}

async fn placements(pool: &PgPool, scope: &Scope) -> Result<Placements, StoreError> {
    let placing: Vec<&str> = PlacementStatus::PLACING.iter().map(|s| s.as_str()).collect();
    let students = scoped(
        "SELECT count(*) AS seeking,
                count(*) FILTER (WHERE NOT placed) AS without,
                count(*) FILTER (WHERE first_year AND pathway = 'bol') AS first_year_bol,
                count(*) FILTER (WHERE first_year AND pathway = 'bol' AND matched) AS matched
           FROM indicator_students s
          CROSS JOIN LATERAL (
                SELECT coalesce(bool_or(p.status = ANY($6)), false) AS placed,
                       coalesce(bool_or(p.via_round), false) AS matched
                  FROM indicator_placements p WHERE p.student_key = s.student_key) p
          WHERE s.region IS NOT NULL
            AND ($1::int4 IS NULL OR s.wish_year = $1) AND ($2::text IS NULL OR s.school = $2)
            AND ($3::text IS NULL OR s.region = $3)
            AND ($4::text IS NULL OR s.qualification = $4)
            AND ($5::text IS NULL OR $5 = ANY(s.sectors))",
        scope,
    )
    .bind(&placing)
    .fetch_one(pool)
    .await?;
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
        without_placement: students.try_get("without")?,
        first_year_bol: students.try_get("first_year_bol")?,
        first_year_bol_matched: students.try_get("matched")?,
        companies: companies.try_get("companies")?,
        companies_opted_out: companies.try_get("opted_out")?,
    })
}

async fn compensation(pool: &PgPool, scope: &Scope) -> Result<Compensation, StoreError> {
    let row = scoped(
        concat!(
            "SELECT count(*) FILTER (WHERE pathway = 'bol') AS bol,
                    count(allowance_cents) FILTER (WHERE pathway = 'bol') AS bol_allowance,
                    count(*) FILTER (WHERE pathway = 'bbl') AS bbl,
                    count(*) FILTER (WHERE pathway = 'bbl'
                                       AND hourly_wage_cents >= minimum_wage_cents) AS bbl_ok
               FROM indicator_placements WHERE agreed AND ",
            in_scope!()
        ),
        scope,
    )
    .fetch_one(pool)
    .await?;
    let groups = scoped(
        concat!(
            "SELECT grouping(level) AS by_pathway, level, pathway, count(*) AS n,
                    avg(allowance_cents)::float8 AS mean,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY allowance_cents) AS median
               FROM indicator_placements
              WHERE agreed AND allowance_cents IS NOT NULL AND ",
            in_scope!(),
            " GROUP BY GROUPING SETS ((level), (pathway)) ORDER BY 1, 2, 3"
        ),
        scope,
    )
    .fetch_all(pool)
    .await?;
    let mut figures = Compensation {
        bol_agreements: row.try_get("bol")?,
        bol_with_allowance: row.try_get("bol_allowance")?,
        bbl_agreements: row.try_get("bbl")?,
        bbl_wage_compliant: row.try_get("bbl_ok")?,
        ..Compensation::default()
    };
    for row in &groups {
        let by_pathway: i32 = row.try_get("by_pathway")?;
        let group = if by_pathway == 1 {
            row.try_get::<Option<String>, _>("pathway")?.unwrap_or_default()
        } else {
            row.try_get::<Option<i16>, _>("level")?.map(|l| l.to_string()).unwrap_or_default()
        };
        let entry = AllowanceGroup {
            group,
            agreements: row.try_get("n")?,
            mean_cents: row.try_get::<Option<f64>, _>("mean")?.unwrap_or_default(),
            median_cents: row.try_get::<Option<f64>, _>("median")?.unwrap_or_default(),
        };
        if by_pathway == 1 {
            figures.by_pathway.push(entry);
        } else {
            figures.by_level.push(entry);
        }
    }
    Ok(figures)
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

/// Supply and demand per qualification and region on `today`, optionally of
/// one qualification or region. Demand: students whose learning wish names
/// the region and who have no placement; supply: the free slots of the offers
/// open today (the offer board's own rule, `offers::select_offers`).
pub async fn supply_demand(
    pool: &PgPool,
    qualification: Option<&str>,
    region: Option<&str>,
    today: NaiveDate,
) -> Result<Vec<SupplyDemand>, StoreError> {
    let placing: Vec<&str> = PlacementStatus::PLACING.iter().map(|s| s.as_str()).collect();
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
             WHERE s.region IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM indicator_placements p
                                WHERE p.student_key = s.student_key AND p.status = ANY($2))
             GROUP BY 1, 2)
         SELECT coalesce(d.qualification, s.qualification) AS qualification,
                coalesce(d.region, s.region) AS region,
                coalesce(d.seeking, 0) AS seeking, coalesce(s.open_slots, 0) AS open_slots,
                coalesce(d.schools, '{}') AS schools
           FROM demand d FULL JOIN supply s
             ON s.qualification = d.qualification AND s.region = d.region
          WHERE ($3::text IS NULL OR coalesce(d.qualification, s.qualification) = $3)
            AND ($4::text IS NULL OR coalesce(d.region, s.region) = $4)
          ORDER BY 1, 2"
    );
    let rows = sqlx::query(sql)
        .persistent(false)
        .bind(today)
        .bind(&placing)
        .bind(qualification)
        .bind(region)
        .fetch_all(pool)
        .await?;
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
