//! The pact's monitoring ([001] "Monitoring en bijsturing"): indicators per
//! goal for monitors, SBB and schools, supply and demand per qualification
//! and region, and S2's early warning of a shortage.
//!
//! Who sees what: monitors and SBB read every school's figures, with every
//! count of one to four suppressed (DESIGN §6), and a breakdown suppressed
//! whole when one of its cells is (else its total would give the cell away).
//! A school reads its own figures unsuppressed: they are its own students.
//! Supply and demand count every school's students, so they are suppressed
//! for everyone.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use stagepact_domain::monitoring::{SchoolYear, is_shortage};
use stagepact_domain::shortage::{Shortage, ShortageFlagged, shortage_id};
use stagepact_domain::values::{Crebo, Region, SchoolId, Sector};
use stagepact_store::indicators::{self, AllowanceGroup, Figures, Scope, SupplyDemand};
use stagepact_store::{company_registry, offers};
use utoipa::{IntoParams, ToSchema};

use super::sbb::{Cell, Count, SUPPRESS_BELOW, Suppressed, cells};
use super::{ReadProblems, today};
use crate::auth::{Principal, Role};
use crate::extract::{AppQuery, Fields};
use crate::problem::ApiError;
use crate::server::AppState;

/// Who reads monitoring figures.
const READERS: [Role; 3] = [Role::Monitor, Role::Sbb, Role::School];

// ---------------------------------------------------------------------------
// Figures as shown
// ---------------------------------------------------------------------------

/// A part of a whole: `count` of `of`, and their ratio when both are shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Share {
    /// The part.
    pub count: Count,
    /// The whole.
    pub of: Count,
    /// `count ÷ of`, 0 to 1; absent when either is suppressed or `of` is 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
}

/// Shows counts as the reader may see them.
#[derive(Debug, Clone, Copy)]
struct Shower {
    suppress: bool,
}

impl Shower {
    fn count(self, n: i64) -> Count {
        let n = usize::try_from(n).unwrap_or_default();
        if self.suppress { Count::of(n) } else { Count::Shown(n) }
    }

    fn share(self, count: i64, of: i64) -> Share {
        let (shown_count, shown_of) = (self.count(count), self.count(of));
        // A suppressed part of a shown whole still gives the part away as
        // whole minus the rest: both go.
        if !shown_count.shown() || !shown_of.shown() {
            let suppressed = Count::Suppressed(Suppressed::Suppressed);
            return Share { count: suppressed, of: suppressed, share: None };
        }
        #[expect(clippy::cast_precision_loss, reason = "counts of people are far below 2^52")]
        let share = (of > 0).then(|| count as f64 / of as f64);
        Share { count: shown_count, of: shown_of, share }
    }

    fn cells(self, rows: &[(String, i64)]) -> Vec<Cell> {
        let counts: BTreeMap<String, usize> = rows
            .iter()
            .map(|(key, n)| (key.clone(), usize::try_from(*n).unwrap_or_default()))
            .collect();
        if self.suppress {
            cells(counts)
        } else {
            counts.into_iter().map(|(key, n)| Cell { key, count: Count::Shown(n) }).collect()
        }
    }

    /// Allowances per level and per pathway. Both lists cover the same
    /// agreements, so a small group of one could be worked out from the
    /// other: when any group is small, both lists are suppressed whole.
    fn allowances(
        self,
        by_level: &[AllowanceGroup],
        by_pathway: &[AllowanceGroup],
    ) -> (Vec<Allowances>, Vec<Allowances>) {
        let any_small =
            by_level.iter().chain(by_pathway).any(|g| !self.count(g.agreements).shown());
        let show = |groups: &[AllowanceGroup]| -> Vec<Allowances> {
            groups
                .iter()
                .map(|group| {
                    let agreements = if any_small {
                        Count::Suppressed(Suppressed::Suppressed)
                    } else {
                        self.count(group.agreements)
                    };
                    let euros = |cents: f64| {
                        (agreements.shown() && group.agreements > 0).then(|| cents.round() / 100.0)
                    };
                    Allowances {
                        group: group.group.clone(),
                        agreements,
                        mean_eur_per_month: euros(group.mean_cents),
                        median_eur_per_month: euros(group.median_cents),
                    }
                })
                .collect()
        };
        (show(by_level), show(by_pathway))
    }
}

/// SBB's decisions and companies' participation concern the market, not the
/// reader's own students: shown to every reader with small counts suppressed.
const MARKET: Shower = Shower { suppress: true };

/// Goal 1: better guidance (G2, G3, G4).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GuidanceFigures {
    /// Placements whose student rated the guidance.
    pub rated: Count,
    /// Rated 4 or 5 for the school's guidance, of those rated.
    pub satisfied_with_school: Share,
    /// Rated 4 or 5 for the company's guidance, of those rated.
    pub satisfied_with_company: Share,
    /// Completed placements with G2 met (start, midway and end held, one on
    /// site) or waived by the school, of all completed.
    pub contact_moments_compliant: Share,
    /// Placements started for a student with a support need that had a warm
    /// handover (G3), of all those started.
    pub warm_handover: Share,
}

/// Goal 2: no internship discrimination (D1-D5).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DiscriminationFigures {
    /// Reports filed.
    pub reports: Count,
    /// Reports per kind.
    pub by_kind: Vec<Cell>,
    /// Grounds named, per ground (a report can name several).
    pub by_ground: Vec<Cell>,
    /// Reports with a first follow-up step within `follow_up_working_days`.
    pub followed_up_in_time: Share,
    /// The working days a follow-up counts as in time within (configuration).
    pub follow_up_working_days: u32,
    /// Reports whose school forwarded an anonymised signal to SBB (D4).
    pub signals_forwarded: Count,
    /// Reports escalated to SBB's complaint desk (D5).
    pub escalated: Count,
    /// Investigations SBB opened (by the company's region and sector; any school).
    pub investigations: Count,
    /// Suspensions of a company's recognition.
    pub suspensions: Count,
    /// Revocations of a recognition.
    pub revocations: Count,
}

/// Goal 3: enough placements (M2, M4, S2).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlacementFigures {
    /// Students with a learning wish (by the year they recorded it).
    pub students_seeking: Count,
    /// Of those, students without a placement (accepted, agreed, started or completed).
    pub without_placement: Share,
    /// First-year BOL students with a learning wish matched in a matching round (M2).
    pub first_year_bol_matched: Share,
    /// Companies not taking part in matching rounds, of all registered (M4).
    pub companies_opted_out: Share,
    /// Today's supply and demand per qualification and region (not by school year).
    pub supply_demand: Vec<SupplyDemandRow>,
}

/// Internship allowances of one level or pathway, per month (C2).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Allowances {
    /// The level (`"2"`) or the pathway (`"bol"`).
    pub group: String,
    /// Agreements with an internship allowance.
    pub agreements: Count,
    /// Their mean in euro per month (weekly amounts × 52 ÷ 12); absent when
    /// `agreements` is suppressed or 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_eur_per_month: Option<f64>,
    /// Their median in euro per month.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_eur_per_month: Option<f64>,
}

/// Goal 4: fair compensation (C2, C3).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CompensationFigures {
    /// BOL agreements with an internship allowance, of all BOL agreements.
    pub with_internship_allowance: Share,
    /// Allowances per level: equal across levels is the goal.
    pub allowance_by_level: Vec<Allowances>,
    /// Allowances per pathway.
    pub allowance_by_pathway: Vec<Allowances>,
    /// BBL agreements with a wage at or above the statutory minimum, of all
    /// BBL agreements (C3).
    pub bbl_wage_compliant: Share,
}

/// The filters a figure was counted with.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ScopeView {
    /// The school year, e.g. `2026-2027`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub school_year: Option<String>,
    /// The school (BRIN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub school: Option<String>,
    /// The region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The qualification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qualification: Option<String>,
    /// The sector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sector: Option<String>,
}

/// The four goals' indicators for one scope.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IndicatorsView {
    /// The filters applied (a school's own school always).
    pub scope: ScopeView,
    /// Counts from 1 to this minus one are shown as `"suppressed"`; absent
    /// when nothing is suppressed (a school's own figures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed_below: Option<usize>,
    /// The log position the figures reflect.
    pub as_of_position: i64,
    /// Goal 1.
    pub guidance: GuidanceFigures,
    /// Goal 2.
    pub discrimination: DiscriminationFigures,
    /// Goal 3.
    pub placements: PlacementFigures,
    /// Goal 4.
    pub compensation: CompensationFigures,
}

/// Supply and demand of one qualification in one region.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SupplyDemandRow {
    /// The qualification (crebo code).
    pub qualification: String,
    /// The region.
    pub region: String,
    /// Students with a learning wish for the region and no placement.
    pub seeking: Count,
    /// Free slots on offers open today (S1, S2).
    pub open_slots: usize,
    /// Open slots per seeking student; absent when `seeking` is suppressed or 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Fewer slots than seeking students, with the configured headroom (S2);
    /// absent when `seeking` is suppressed (the flag would narrow it down).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortage: Option<bool>,
}

/// Supply and demand, today.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SupplyDemandView {
    /// The school year of today.
    pub school_year: String,
    /// The headroom a shortage is counted with, in percent.
    pub margin_percent: u32,
    /// Seeking counts from 1 to this minus one are shown as `"suppressed"`.
    pub suppressed_below: usize,
    /// Per qualification and region, in that order.
    pub rows: Vec<SupplyDemandRow>,
}

// ---------------------------------------------------------------------------
// Supply and demand, counted once per state of the log
// ---------------------------------------------------------------------------

/// What today's supply and demand were counted from: the day, and how far
/// the indicators, the offer board and the company registry had got.
type SupplyKey = (chrono::NaiveDate, i64, i64, i64);

/// Today's supply and demand, shared by every reader until the log moves.
/// Every reader asks the same question of it (the whole market, before any
/// filter), and counting it reads every open offer with its company: once per
/// state of the log is enough. The lock is held while counting, so readers
/// that miss together count once.
#[derive(Debug, Default)]
pub struct SupplyCache(tokio::sync::Mutex<Option<(SupplyKey, Arc<Vec<SupplyDemand>>)>>);

impl SupplyCache {
    /// Supply and demand per qualification and region on `day`, as the read
    /// models stand now.
    async fn get(
        &self,
        state: &AppState,
        day: chrono::NaiveDate,
    ) -> Result<Arc<Vec<SupplyDemand>>, ApiError> {
        let mut cached = self.0.lock().await;
        let checkpoints = state.projections.checkpoints().await?;
        let at = |name: &str| checkpoints.get(name).copied().unwrap_or_default();
        let key = (day, at(indicators::NAME), at(offers::NAME), at(company_registry::NAME));
        if let Some((cached_key, rows)) = cached.as_ref()
            && *cached_key == key
        {
            return Ok(Arc::clone(rows));
        }
        let rows = Arc::new(indicators::supply_demand(&state.pool, day).await?);
        *cached = Some((key, Arc::clone(&rows)));
        Ok(rows)
    }
}

/// The rows of `qualification` and `region` (each `None`: all).
fn filtered<'a>(
    rows: &'a [SupplyDemand],
    qualification: Option<&'a str>,
    region: Option<&'a str>,
) -> Vec<&'a SupplyDemand> {
    rows.iter()
        .filter(|row| {
            qualification.is_none_or(|q| row.qualification == q)
                && region.is_none_or(|r| row.region == r)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------

/// Filters of `getIndicators`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IndicatorQuery {
    /// The school year, `2026-2027` (1 August to 31 July).
    #[param(pattern = "^[0-9]{4}-[0-9]{4}$")]
    pub school_year: Option<String>,
    /// One school (BRIN); a school reads only its own.
    pub school: Option<String>,
    /// One labour-market region.
    pub region: Option<String>,
    /// One qualification (crebo code).
    #[param(pattern = "^[0-9]{5}$")]
    pub qualification: Option<String>,
    /// One sector.
    pub sector: Option<String>,
    /// Wait (bounded) until the figures reflect the log up to this position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

/// Filters of `getSupplyDemand`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SupplyDemandQuery {
    /// One region.
    pub region: Option<String>,
    /// One qualification (crebo code).
    #[param(pattern = "^[0-9]{5}$")]
    pub qualification: Option<String>,
    /// Wait (bounded) until the figures reflect the log up to this position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

fn parse_optional<T, E: std::fmt::Display>(
    fields: &mut Fields,
    name: &str,
    raw: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Option<T> {
    raw.and_then(|raw| fields.parse(name, parse(raw)))
}

/// The scope a caller may read: a school its own school only.
fn scope_of(principal: &Principal, query: &IndicatorQuery) -> Result<Scope, ApiError> {
    let mut fields = Fields::default();
    let school_year =
        parse_optional(&mut fields, "school_year", query.school_year.as_deref(), SchoolYear::parse);
    let school = parse_optional(&mut fields, "school", query.school.as_deref(), SchoolId::parse);
    let region = parse_optional(&mut fields, "region", query.region.as_deref(), Region::parse);
    let qualification =
        parse_optional(&mut fields, "qualification", query.qualification.as_deref(), Crebo::parse);
    let sector = parse_optional(&mut fields, "sector", query.sector.as_deref(), Sector::parse);
    fields.finish(Some(()))?;
    let school = match principal.role {
        Role::School => {
            let own = principal.org.clone().unwrap_or_default();
            if school.as_ref().is_some_and(|asked| asked.as_str() != own) {
                return Err(ApiError::Forbidden("a school reads only its own figures".into()));
            }
            Some(own)
        }
        _ => school.map(|s| s.to_string()),
    };
    Ok(Scope {
        school_year: school_year.map(SchoolYear::starts_in),
        school,
        region: region.map(|r| r.to_string()),
        qualification: qualification.map(|q| q.to_string()),
        sector: sector.map(|s| s.to_string()),
    })
}

/// Whether `Accept` prefers CSV to JSON: the media range with the higher
/// quality wins (`q`, default 1); on a tie, or with neither named, JSON.
fn wants_csv(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let quality = |wanted: &str| -> f32 {
        accept
            .split(',')
            .filter_map(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next()?;
                let q = parts
                    .find_map(|p| p.strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
                    .unwrap_or(1.0);
                media.eq_ignore_ascii_case(wanted).then_some(q)
            })
            .fold(0.0, f32::max)
    };
    // A wildcard covers JSON too, but yields to a CSV named at the same quality.
    quality("text/csv") > quality("application/json").max(quality("*/*") * 0.999)
}

/// A CSV response.
fn csv_response(body: String) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    response
}

/// The pact's indicators per goal (monitors and SBB: every school, small
/// counts suppressed; a school: its own). JSON, or CSV with `Accept: text/csv`.
#[utoipa::path(get, path = "/v1/indicators", operation_id = "getIndicators", tag = "monitoring",
    params(IndicatorQuery),
    responses((status = 200, description = "The indicators (a CSV of goal, indicator, group, count, of, share with Accept: text/csv)",
               content((IndicatorsView = "application/json"), (String = "text/csv"))),
              (status = 422, description = "Invalid filters", body = crate::Problem, content_type = "application/problem+json"),
              ReadProblems),
    security(("bearer" = ["monitor", "sbb", "school"])))]
pub async fn get_indicators(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    AppQuery(query): AppQuery<IndicatorQuery>,
) -> Result<Response, ApiError> {
    principal.require(&READERS)?;
    let scope = scope_of(&principal, &query)?;
    await_figures(&state, query.min_position).await?;
    let figures =
        indicators::figures(&state.pool, &scope, state.config.follow_up_working_days).await?;
    let supply = state.supply.get(&state, today()).await?;
    let supply = filtered(&supply, scope.qualification.as_deref(), scope.region.as_deref());
    // The checkpoint, or the position waited for when that is further: a
    // quiet projector moves its checkpoint past other aggregates' events only
    // now and then, and the wait has shown that none of its own lie between.
    let checkpoint =
        state.projections.checkpoints().await?.get(indicators::NAME).copied().unwrap_or_default();
    let as_of_position = checkpoint.max(query.min_position.unwrap_or_default());
    let shower = Shower { suppress: principal.role != Role::School };
    let view = indicators_view(&state, shower, &scope, &figures, &supply, as_of_position);
    if wants_csv(&headers) {
        return Ok(csv_response(csv(&view)));
    }
    Ok(Json(view).into_response())
}

/// Waits for the figures' read models: the indicators, and the offer board
/// and company registry that supply is counted from.
async fn await_figures(state: &AppState, min_position: Option<i64>) -> Result<(), ApiError> {
    state.await_projection(indicators::NAME, min_position).await?;
    state.await_projection(offers::NAME, min_position).await?;
    state.await_projection(company_registry::NAME, min_position).await
}

fn indicators_view(
    state: &AppState,
    show: Shower,
    scope: &Scope,
    figures: &Figures,
    supply: &[&SupplyDemand],
    as_of_position: i64,
) -> IndicatorsView {
    let (g, d, p, c) =
        (&figures.guidance, &figures.discrimination, &figures.placements, &figures.compensation);
    let (allowance_by_level, allowance_by_pathway) = show.allowances(&c.by_level, &c.by_pathway);
    IndicatorsView {
        scope: ScopeView {
            school_year: scope.school_year.map(|y| SchoolYear::starting_in(y).to_string()),
            school: scope.school.clone(),
            region: scope.region.clone(),
            qualification: scope.qualification.clone(),
            sector: scope.sector.clone(),
        },
        suppressed_below: show.suppress.then_some(SUPPRESS_BELOW),
        as_of_position,
        guidance: GuidanceFigures {
            rated: show.count(g.rated),
            satisfied_with_school: show.share(g.satisfied_with_school, g.rated),
            satisfied_with_company: show.share(g.satisfied_with_company, g.rated),
            contact_moments_compliant: show.share(g.contact_moments_compliant, g.completed),
            warm_handover: show.share(g.support_need_handover, g.support_need_started),
        },
        discrimination: DiscriminationFigures {
            reports: show.count(d.reports),
            by_kind: show.cells(&d.by_kind),
            by_ground: show.cells(&d.by_ground),
            followed_up_in_time: show.share(d.followed_up_in_time, d.reports),
            follow_up_working_days: state.config.follow_up_working_days,
            signals_forwarded: show.count(d.signals_forwarded),
            escalated: show.count(d.escalated),
            investigations: MARKET.count(d.investigations),
            suspensions: MARKET.count(d.suspensions),
            revocations: MARKET.count(d.revocations),
        },
        placements: PlacementFigures {
            students_seeking: show.count(p.seeking),
            without_placement: show.share(p.without_placement, p.seeking),
            first_year_bol_matched: show.share(p.first_year_bol_matched, p.first_year_bol),
            companies_opted_out: MARKET.share(p.companies_opted_out, p.companies),
            supply_demand: supply_rows(state, supply),
        },
        compensation: CompensationFigures {
            with_internship_allowance: show.share(c.bol_with_allowance, c.bol_agreements),
            allowance_by_level,
            allowance_by_pathway,
            bbl_wage_compliant: show.share(c.bbl_wage_compliant, c.bbl_agreements),
        },
    }
}

/// Supply and demand as shown: seeking counts every school's students, so it
/// is suppressed for every reader.
fn supply_rows(state: &AppState, supply: &[&SupplyDemand]) -> Vec<SupplyDemandRow> {
    let show = MARKET;
    let margin = state.config.shortage_margin_percent;
    supply
        .iter()
        .map(|row| {
            let seeking = show.count(row.seeking);
            #[expect(clippy::cast_precision_loss, reason = "counts of slots are far below 2^52")]
            let ratio = (seeking.shown() && row.seeking > 0)
                .then(|| ((row.open_slots as f64 / row.seeking as f64) * 100.0).round() / 100.0);
            SupplyDemandRow {
                qualification: row.qualification.clone(),
                region: row.region.clone(),
                seeking,
                open_slots: usize::try_from(row.open_slots).unwrap_or_default(),
                ratio,
                shortage: seeking.shown().then(|| is_shortage(row.seeking, row.open_slots, margin)),
            }
        })
        .collect()
}

/// Supply and demand per qualification and region today, with S2's shortage
/// flag (monitors, SBB, schools; seeking counts suppressed when small).
#[utoipa::path(get, path = "/v1/supply-demand", operation_id = "getSupplyDemand", tag = "monitoring",
    params(SupplyDemandQuery),
    responses((status = 200, description = "Supply and demand (a CSV of qualification, region, seeking, open_slots, ratio, shortage with Accept: text/csv)",
               content((SupplyDemandView = "application/json"), (String = "text/csv"))),
              (status = 422, description = "Invalid filters", body = crate::Problem, content_type = "application/problem+json"),
              ReadProblems),
    security(("bearer" = ["monitor", "sbb", "school"])))]
pub async fn get_supply_demand(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    AppQuery(query): AppQuery<SupplyDemandQuery>,
) -> Result<Response, ApiError> {
    principal.require(&READERS)?;
    let mut fields = Fields::default();
    let region = parse_optional(&mut fields, "region", query.region.as_deref(), Region::parse);
    let qualification =
        parse_optional(&mut fields, "qualification", query.qualification.as_deref(), Crebo::parse);
    fields.finish(Some(()))?;
    await_figures(&state, query.min_position).await?;
    let region = region.map(|r| r.to_string());
    let qualification = qualification.map(|q| q.to_string());
    let day = today();
    let supply = state.supply.get(&state, day).await?;
    let supply = filtered(&supply, qualification.as_deref(), region.as_deref());
    let view = SupplyDemandView {
        school_year: SchoolYear::of(day).to_string(),
        margin_percent: state.config.shortage_margin_percent,
        suppressed_below: SUPPRESS_BELOW,
        rows: supply_rows(&state, &supply),
    };
    if wants_csv(&headers) {
        let mut out = String::from("qualification,region,seeking,open_slots,ratio,shortage\r\n");
        for row in &view.rows {
            let _ = write!(
                out,
                "{},{},{},{},{},{}\r\n",
                field(&row.qualification),
                field(&row.region),
                count_text(&row.seeking),
                row.open_slots,
                row.ratio.map(|r| format!("{r:.2}")).unwrap_or_default(),
                row.shortage.map(|s| s.to_string()).unwrap_or_default(),
            );
        }
        return Ok(csv_response(out));
    }
    Ok(Json(view).into_response())
}

// ---------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------

/// One CSV field, quoted when it must be (RFC 4180).
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn count_text(count: &Count) -> String {
    match count {
        Count::Shown(n) => n.to_string(),
        Count::Suppressed(_) => "suppressed".to_owned(),
    }
}

/// The figures as CSV: one row per figure, `goal,indicator,group,count,of,share`.
fn csv(view: &IndicatorsView) -> String {
    let mut out = String::from("goal,indicator,group,count,of,share\r\n");
    let mut row =
        |goal: &str, indicator: &str, group: &str, count: String, of: &str, share: &str| {
            let _ = write!(
                out,
                "{},{},{},{},{},{}\r\n",
                field(goal),
                field(indicator),
                field(group),
                field(&count),
                field(of),
                field(share)
            );
        };
    let share =
        |s: &Share| (count_text(&s.count), count_text(&s.of), s.share.map(|v| format!("{v:.4}")));
    let mut shares: Vec<(&str, &str, &Share)> = Vec::new();
    let g = &view.guidance;
    row("guidance", "rated", "", count_text(&g.rated), "", "");
    shares.push(("guidance", "satisfied_with_school", &g.satisfied_with_school));
    shares.push(("guidance", "satisfied_with_company", &g.satisfied_with_company));
    shares.push(("guidance", "contact_moments_compliant", &g.contact_moments_compliant));
    shares.push(("guidance", "warm_handover", &g.warm_handover));
    let d = &view.discrimination;
    row("discrimination", "reports", "", count_text(&d.reports), "", "");
    for cell in &d.by_kind {
        row("discrimination", "reports_by_kind", &cell.key, count_text(&cell.count), "", "");
    }
    for cell in &d.by_ground {
        row("discrimination", "grounds", &cell.key, count_text(&cell.count), "", "");
    }
    shares.push(("discrimination", "followed_up_in_time", &d.followed_up_in_time));
    for (name, count) in [
        ("signals_forwarded", &d.signals_forwarded),
        ("escalated", &d.escalated),
        ("investigations", &d.investigations),
        ("suspensions", &d.suspensions),
        ("revocations", &d.revocations),
    ] {
        row("discrimination", name, "", count_text(count), "", "");
    }
    let p = &view.placements;
    row("placements", "students_seeking", "", count_text(&p.students_seeking), "", "");
    shares.push(("placements", "without_placement", &p.without_placement));
    shares.push(("placements", "first_year_bol_matched", &p.first_year_bol_matched));
    shares.push(("placements", "companies_opted_out", &p.companies_opted_out));
    for supply in &p.supply_demand {
        let group = format!("{} {}", supply.qualification, supply.region);
        let ratio = supply.ratio.map(|r| format!("{r:.2}")).unwrap_or_default();
        row(
            "placements",
            "seeking_per_open_slots",
            &group,
            count_text(&supply.seeking),
            &supply.open_slots.to_string(),
            &ratio,
        );
    }
    let c = &view.compensation;
    shares.push(("compensation", "with_internship_allowance", &c.with_internship_allowance));
    shares.push(("compensation", "bbl_wage_compliant", &c.bbl_wage_compliant));
    for (indicator, groups) in [
        ("allowance_by_level", &c.allowance_by_level),
        ("allowance_by_pathway", &c.allowance_by_pathway),
    ] {
        for group in groups {
            let money = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_default();
            row(
                "compensation",
                &format!("{indicator}_mean_eur"),
                &group.group,
                count_text(&group.agreements),
                "",
                &money(group.mean_eur_per_month),
            );
            row(
                "compensation",
                &format!("{indicator}_median_eur"),
                &group.group,
                count_text(&group.agreements),
                "",
                &money(group.median_eur_per_month),
            );
        }
    }
    for (goal, indicator, s) in shares {
        let (count, of, value) = share(s);
        row(goal, indicator, "", count, &of, &value.unwrap_or_default());
    }
    out
}

// ---------------------------------------------------------------------------
// Shortages (S2)
// ---------------------------------------------------------------------------

/// Counts supply and demand and flags every shortage not flagged yet this
/// school year (`Shortage` records each once). Returns how many were new.
pub async fn flag_shortages(state: &AppState) -> Result<usize, ApiError> {
    let day = today();
    let year = SchoolYear::of(day);
    let margin = state.config.shortage_margin_percent;
    let system = HashMap::from([("actor_role".to_owned(), "system".to_owned())]);
    let mut flagged = 0;
    for row in state.supply.get(state, day).await?.iter() {
        // A market of fewer than five seeking students is not published
        // (DESIGN §6), and the warning carries its counts. (`is_shortage`
        // needs someone seeking, so a shown count here is five or more.)
        if !MARKET.count(row.seeking).shown() || !is_shortage(row.seeking, row.open_slots, margin) {
            continue;
        }
        // Rows come from values that were parsed when recorded.
        let (Ok(qualification), Ok(region)) =
            (Crebo::parse(&row.qualification), Region::parse(&row.region))
        else {
            tracing::warn!(
                qualification = row.qualification,
                region = row.region,
                "unparsable supply row"
            );
            continue;
        };
        let schools = row.schools.iter().filter_map(|s| SchoolId::parse(s).ok()).collect();
        let id = shortage_id(&qualification, &region, year).to_string();
        let command = ShortageFlagged {
            qualification,
            region,
            school_year: year,
            seeking: u32::try_from(row.seeking).unwrap_or(u32::MAX),
            open_slots: u32::try_from(row.open_slots).unwrap_or(u32::MAX),
            margin_percent: margin,
            schools,
            flagged_on: day,
        };
        let committed = state.bus.execute::<Shortage>(&id, command, None, system.clone()).await?;
        flagged += usize::from(committed.position.is_some());
    }
    Ok(flagged)
}

/// Flags shortages every `shortage_check_interval` until the task is stopped.
pub async fn watch_shortages(state: AppState) {
    let mut ticks = tokio::time::interval(state.config.shortage_check_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match flag_shortages(&state).await {
            Ok(0) => {}
            Ok(flagged) => tracing::info!(flagged, "flagged shortages of placements (S2)"),
            Err(error) => tracing::warn!(%error, "counting supply and demand failed; retrying"),
        }
    }
}
