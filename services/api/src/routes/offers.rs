//! Placement offers: a recognised company publishes and withdraws them (S1);
//! schools and students find them. A stale offer is never listed as open (S2).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use stagepact_domain::company::Company;
use stagepact_domain::offer::{Offer, OfferCommand, OfferError, OfferPublished, OfferWithdrawn};
use stagepact_domain::values::{
    Allowance, AllowancePer, Cents, CompanyId, Crebo, LearningOpportunity, Level, Location, Period,
    Reason, Region, parse_list,
};
use stagepact_store::Denial;
use stagepact_store::company_registry;
use stagepact_store::offers::{self, OfferEntry, OfferFilter};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::companies::{LocationBody, ReadQuery};
use super::{
    CommandContext, CommandHeaders, CommandProblems, ReadProblems, accepted, page, page_limit,
    today,
};
use crate::auth::{Principal, Role};
use crate::extract::{AppJson, AppQuery, Fields};
use crate::problem::{ApiError, FieldError};
use crate::server::AppState;

/// A period of days.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeriodBody {
    /// First day.
    pub start: NaiveDate,
    /// Last day (not before `start`).
    pub end: NaiveDate,
}

/// An allowance per week or month.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowanceBody {
    /// Euros, at most two decimals.
    #[schema(minimum = 0, maximum = 1000000)]
    pub amount_eur: f64,
    /// `week` or `month`.
    #[schema(value_type = String, pattern = "^(week|month)$")]
    pub per: AllowancePer,
}

impl AllowanceBody {
    /// Parses the amount.
    pub fn parse(&self) -> Result<Allowance, stagepact_domain::values::InvalidValue> {
        Ok(Allowance { amount: Cents::from_euros(self.amount_eur)?, per: self.per })
    }

    /// As sent back.
    pub fn of(allowance: Allowance) -> Self {
        Self { amount_eur: allowance.amount.euros(), per: allowance.per }
    }
}

/// Body of `publishOffer`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishOfferRequest {
    /// Qualification code (crebo).
    #[schema(pattern = "^[0-9]{5}$", example = "25180")]
    pub qualification: String,
    /// Levels it suits (1-4).
    #[schema(min_items = 1, max_items = 4)]
    pub levels: Vec<i64>,
    /// How many students it takes (1-1000).
    #[schema(minimum = 1, maximum = 1000)]
    pub slots: i64,
    /// When; the end must not have passed (S2).
    pub period: PeriodBody,
    /// Hours per week (1-60).
    #[schema(minimum = 1, maximum = 60)]
    pub hours_per_week: i64,
    /// Labour-market region.
    #[schema(min_length = 1, max_length = 100)]
    pub region: String,
    /// Where.
    #[serde(default)]
    pub location: Option<LocationBody>,
    /// What a student can learn there (up to 50).
    #[schema(max_items = 50)]
    pub learning_opportunities: Vec<String>,
    /// The internship allowance offered (C2).
    #[serde(default)]
    pub internship_allowance: Option<AllowanceBody>,
    /// Whether objective matching may propose it (M4).
    pub open_for_matching: bool,
}

/// Body of `withdrawOffer`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawOfferRequest {
    /// Why.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: Option<String>,
}

/// What an offer command recorded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OfferAccepted {
    /// The offer.
    pub offer_id: Uuid,
    /// Its version now.
    pub version: i64,
    /// The log position of the last event recorded.
    pub position: Option<i64>,
}

/// An offer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OfferView {
    /// The offer.
    pub offer_id: Uuid,
    /// The company.
    pub company_id: String,
    /// Qualification (crebo).
    pub qualification: String,
    /// Levels.
    pub levels: Vec<u8>,
    /// Slots in all.
    pub slots: u32,
    /// Slots not taken by a placement.
    pub free_slots: u32,
    /// Period.
    pub period: PeriodBody,
    /// Hours per week.
    pub hours_per_week: u8,
    /// Region.
    pub region: String,
    /// Where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationBody>,
    /// Learning opportunities.
    pub learning_opportunities: Vec<String>,
    /// Internship allowance (C2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internship_allowance: Option<AllowanceBody>,
    /// Open for objective matching (M4).
    pub open_for_matching: bool,
    /// Withdrawn by the company.
    pub withdrawn: bool,
    /// Takes matches today: not withdrawn, current, a slot free, company recognised (S1, S2).
    pub open: bool,
    /// Published on.
    pub published_on: NaiveDate,
    /// Version (also the `ETag`).
    pub version: i64,
    /// The log position of the last event reflected.
    pub position: i64,
}

/// A page of offers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OfferPage {
    /// The offers, in id order.
    pub items: Vec<OfferView>,
    /// Pass as `after` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Uuid>,
}

/// Filters of `listOffers`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OfferQuery {
    /// Qualification (crebo).
    #[param(pattern = "^[0-9]{5}$")]
    pub qualification: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Offers taking this level.
    #[param(minimum = 1, maximum = 4)]
    pub level: Option<i16>,
    /// Only open (true) or only closed (false) offers.
    pub open: Option<bool>,
    /// The `next` of the previous page.
    pub after: Option<Uuid>,
    /// Page size, 1-500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Wait (bounded) until the offers reflect the log up to this position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

fn parse_offer(
    company_id: CompanyId,
    offer_id: Uuid,
    body: &PublishOfferRequest,
) -> Result<OfferPublished, ApiError> {
    let mut fields = Fields::default();
    let qualification = fields.parse("qualification", Crebo::parse(&body.qualification));
    let mut levels = fields.parse(
        "levels",
        if body.levels.is_empty() || body.levels.len() > 4 {
            Err("must list 1 to 4 levels".to_owned())
        } else {
            body.levels
                .iter()
                .map(|l| Level::parse(*l).map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()
        },
    );
    if let Some(levels) = &mut levels {
        levels.sort_unstable();
        levels.dedup();
    }
    let slots = fields.parse(
        "slots",
        u32::try_from(body.slots).ok().filter(|s| (1..=1000).contains(s)).ok_or("must be 1-1000"),
    );
    let period = fields
        .parse("period.end", Period::parse(body.period.start, body.period.end))
        .and_then(|period| fields.parse("period.start", super::placements::within_reach(period)));
    let hours = fields.parse(
        "hours_per_week",
        u8::try_from(body.hours_per_week)
            .ok()
            .filter(|h| (1..=60).contains(h))
            .ok_or("must be 1-60"),
    );
    let region = fields.parse("region", Region::parse(&body.region));
    let location = match body.location {
        Some(l) => fields.parse("location", Location::parse(l.lat, l.lon)).map(Some),
        None => Some(None),
    };
    let opportunities = fields.parse(
        "learning_opportunities",
        parse_list(&body.learning_opportunities, 50, false, LearningOpportunity::parse),
    );
    let allowance = match &body.internship_allowance {
        Some(a) => fields.parse("internship_allowance.amount_eur", a.parse()).map(Some),
        None => Some(None),
    };
    fields.finish((|| {
        Some(OfferPublished {
            offer_id,
            company_id,
            qualification: qualification?,
            levels: levels?,
            slots: slots?,
            period: period?,
            hours_per_week: hours?,
            region: region?,
            location: location?,
            learning_opportunities: opportunities?,
            internship_allowance: allowance?,
            open_for_matching: body.open_for_matching,
            published_on: today(),
        })
    })())
}

fn own_company(principal: &Principal) -> Result<CompanyId, ApiError> {
    principal.require(&[Role::Company])?;
    CompanyId::parse(principal.org()?)
        .map_err(|e| ApiError::Forbidden(format!("the token's org is not a company id: {e}")))
}

/// Publish a placement offer (company, for itself; rules S1, S2).
#[utoipa::path(post, path = "/v1/offers", operation_id = "publishOffer", tag = "offers",
    request_body = PublishOfferRequest,
    params(CommandHeaders),
    responses((status = 201, description = "Published", body = OfferAccepted), CommandProblems),
    security(("bearer" = ["company"])))]
pub async fn publish_offer(
    command: CommandContext,
    AppJson(body): AppJson<PublishOfferRequest>,
) -> Result<Response, ApiError> {
    let company_id = own_company(&command.principal)?;
    let offer_id = super::new_id();
    let offer = parse_offer(company_id.clone(), offer_id, &body)?;
    let (company, _) = command.state.bus.load::<Company>(company_id.as_str()).await?;
    let company_may_host =
        company.record().is_some_and(|r| r.may_host(offer.qualification, offer.published_on));
    let committed = command
        .run::<Offer>(&offer_id.to_string(), OfferCommand::Publish { offer, company_may_host })
        .await
        .map_err(|error| match error {
            // At publication a past period is the request's fault (S2).
            ApiError::Refused { slug: "offer-not-current", rule, .. } => ApiError::Validation(
                vec![FieldError::new("period.end", OfferError::PeriodEnded.to_string())],
                rule,
            ),
            other => other,
        })?;
    let body = OfferAccepted { offer_id, version: committed.version, position: committed.position };
    Ok(accepted(StatusCode::CREATED, body, committed, Some(format!("/v1/offers/{offer_id}"))))
}

fn offer_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("no offer {raw:?}")))
}

/// Withdraw an offer (its company).
#[utoipa::path(post, path = "/v1/offers/{offer_id}/withdraw", operation_id = "withdrawOffer", tag = "offers",
    request_body = WithdrawOfferRequest,
    params(("offer_id" = String, Path, description = "The offer"),
           CommandHeaders),
    responses((status = 202, description = "Withdrawn", body = OfferAccepted), CommandProblems),
    security(("bearer" = ["company"])))]
pub async fn withdraw_offer(
    command: CommandContext,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson<WithdrawOfferRequest>,
) -> Result<Response, ApiError> {
    let company_id = own_company(&command.principal)?;
    let id = offer_id(&raw_id)?;
    let mut fields = Fields::default();
    let reason = match &body.reason {
        Some(text) => fields.parse("reason", Reason::parse(text)).map(Some),
        None => Some(None),
    };
    let withdrawal = fields.finish(reason.map(|reason| OfferWithdrawn { reason }))?;
    let committed = command
        .run_guarded::<Offer>(&id.to_string(), OfferCommand::Withdraw(withdrawal), |offer| {
            match offer.record() {
                None => Err(Denial::NotFound(format!("no offer {id}"))),
                Some(r) if r.offer.company_id != company_id => {
                    Err(Denial::Forbidden("a company may only withdraw its own offers".into()))
                }
                Some(_) => Ok(()),
            }
        })
        .await?;
    let body =
        OfferAccepted { offer_id: id, version: committed.version, position: committed.position };
    Ok(accepted(StatusCode::ACCEPTED, body, committed, None))
}

fn view(entry: OfferEntry) -> OfferView {
    let OfferEntry { record, open, version, last_position, .. } = entry;
    let free_slots = record.free_slots();
    let offer = record.offer;
    OfferView {
        offer_id: offer.offer_id,
        company_id: offer.company_id.into(),
        qualification: offer.qualification.into(),
        levels: offer.levels.into_iter().map(Level::get).collect(),
        slots: offer.slots,
        free_slots,
        period: PeriodBody { start: offer.period.start, end: offer.period.end },
        hours_per_week: offer.hours_per_week,
        region: offer.region.into(),
        location: offer.location.map(|l| LocationBody { lat: l.lat, lon: l.lon }),
        learning_opportunities: offer
            .learning_opportunities
            .into_iter()
            .map(String::from)
            .collect(),
        internship_allowance: offer.internship_allowance.map(AllowanceBody::of),
        open_for_matching: offer.open_for_matching,
        withdrawn: record.withdrawn,
        open,
        published_on: offer.published_on,
        version,
        position: last_position,
    }
}

/// Who reads offers: schools and students all of them, a company its own.
fn may_read(principal: &Principal) -> Result<(), ApiError> {
    principal.require(&[Role::School, Role::Student, Role::Company])
}

/// One offer (schools, students; a company its own).
#[utoipa::path(get, path = "/v1/offers/{offer_id}", operation_id = "getOffer", tag = "offers",
    params(("offer_id" = String, Path, description = "The offer"), ReadQuery,
           ("If-None-Match" = Option<String>, Header, description = "The ETag of a copy you hold")),
    responses((status = 200, description = "The offer; its ETag is a hash of the body", body = OfferView),
              (status = 304, description = "Not modified"), ReadProblems),
    security(("bearer" = ["school", "student", "company"])))]
pub async fn get_offer(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    AppQuery(query): AppQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    may_read(&principal)?;
    let id = offer_id(&raw_id)?;
    // `open` also reads the company registry (S1): wait for both.
    state.await_projection(offers::NAME, query.min_position).await?;
    state.await_projection(company_registry::NAME, query.min_position).await?;
    let entry = offers::get(&state.pool, id, today())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no offer {id}")))?;
    if principal.role == Role::Company
        && !principal.is_company(entry.record.offer.company_id.as_str())
    {
        return Err(ApiError::Forbidden("a company may only read its own offers".into()));
    }
    let view = view(entry);
    // No version tag: `open`, compliance and attention also change with the
    // day and with other aggregates, so the tag is a hash of the body.
    Ok(Json(view).into_response())
}

/// Offers, filtered, in pages (schools, students; a company its own).
#[utoipa::path(get, path = "/v1/offers", operation_id = "listOffers", tag = "offers",
    params(OfferQuery, ("If-None-Match" = Option<String>, Header, description = "The ETag of a page you hold")),
    responses((status = 200, description = "A page of offers", body = OfferPage),
              (status = 304, description = "Not modified"), ReadProblems),
    security(("bearer" = ["school", "student", "company"])))]
pub async fn list_offers(
    State(state): State<AppState>,
    principal: Principal,
    AppQuery(query): AppQuery<OfferQuery>,
) -> Result<Json<OfferPage>, ApiError> {
    may_read(&principal)?;
    let limit = page_limit(query.limit)?;
    let mut errors = Vec::new();
    if let Some(code) = &query.qualification
        && let Err(e) = Crebo::parse(code)
    {
        errors.push(FieldError::new("qualification", e.to_string()));
    }
    if query.level.is_some_and(|l| !(1..=4).contains(&l)) {
        errors.push(FieldError::new("level", "must be 1-4"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors, None));
    }
    // `open` also reads the company registry (S1): wait for both.
    state.await_projection(offers::NAME, query.min_position).await?;
    state.await_projection(company_registry::NAME, query.min_position).await?;
    let filter = OfferFilter {
        qualification: query.qualification,
        region: query.region,
        level: query.level,
        open: query.open,
        company_id: if principal.role == Role::Company { principal.org.clone() } else { None },
        today: today(),
    };
    let rows = offers::list(&state.pool, &filter, query.after, limit + 1).await?;
    let (entries, next) = page(rows, limit, |e| e.record.offer.offer_id);
    Ok(Json(OfferPage { items: entries.into_iter().map(view).collect(), next }))
}
