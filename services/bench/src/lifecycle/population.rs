//! The untimed setup of the lifecycle scenario, made through the API itself:
//! recognised companies with one offer each, students enrolled by several
//! schools, and a token for every caller.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{Days, NaiveDate, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use stagepact_api::auth::Role;

use crate::http_load::{self, company_id, expect};
use crate::parties::{self, Party, SETUP_CONCURRENCY, Student};
use crate::setup::Env;

/// Most slots per offer (the API's maximum).
const MAX_SLOTS: usize = 1_000;

/// Everyone the timed lifecycle needs. Placement `p` is walked by client
/// `p % clients` for student `p`, on one of that client's own offers.
#[derive(Debug)]
pub struct Population {
    /// The schools.
    pub schools: Vec<Party>,
    /// The companies; company `i` published `offers[i]`.
    pub companies: Vec<Party>,
    /// One offer per company.
    pub offers: Vec<String>,
    /// One student per placement.
    pub students: Vec<Student>,
    /// Concurrent clients.
    pub clients: usize,
    /// Offers (and companies) per client.
    pub offers_per_client: usize,
    /// Slots of each offer.
    pub slots_per_offer: usize,
    /// How long the setup took.
    pub elapsed: Duration,
}

impl Population {
    /// The offer (an index into `offers` and `companies`) of placement `p`:
    /// the client's own offers in turn, so no two clients reserve slots on
    /// the same offer aggregate.
    pub fn offer_of(&self, placement: usize) -> usize {
        let client = placement % self.clients;
        let nth = placement / self.clients;
        client * self.offers_per_client + nth % self.offers_per_client
    }
}

/// The first day of offers and agreements: a month ahead (as the API tests).
pub fn start_date() -> NaiveDate {
    Utc::now().date_naive() + Days::new(30)
}

/// The last day of offers and agreements.
pub fn end_date() -> NaiveDate {
    Utc::now().date_naive() + Days::new(150)
}

/// Registers the companies, publishes their offers and enrols the students.
pub async fn build(
    env: &Env,
    placements: usize,
    clients: usize,
    schools: usize,
    offers_per_client: usize,
) -> anyhow::Result<Population> {
    let started = Instant::now();
    let offers_total = clients * offers_per_client;
    let slots_per_offer = placements.div_ceil(offers_total);
    if slots_per_offer > MAX_SLOTS {
        bail!(
            "{placements} placements need {slots_per_offer} slots per offer (at most {MAX_SLOTS}): raise --offers-per-client"
        );
    }

    eprintln!("setup: registering {offers_total} companies with a recognition each ...");
    http_load::register_companies(env, clients, offers_per_client).await?;
    let mut companies = Vec::with_capacity(offers_total);
    for client in 0..clients {
        for index in 0..offers_per_client {
            let id = company_id(client, index);
            let token = env.mint(Role::Company, Some(&id), None)?;
            companies.push(Party { id, token });
        }
    }

    eprintln!("setup: publishing {offers_total} offers of {slots_per_offer} slots ...");
    let mut offers = Vec::with_capacity(offers_total);
    for chunk in companies.chunks(SETUP_CONCURRENCY) {
        let mut tasks = Vec::new();
        for company in chunk {
            let (http, url, token) =
                (env.http.clone(), format!("{}/v1/offers", env.base), company.token.clone());
            tasks.push(tokio::spawn(async move {
                let response = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&offer_body(slots_per_offer))
                    .send()
                    .await?;
                let body = expect(response, StatusCode::CREATED, "publishOffer").await?;
                body["offer_id"].as_str().map(str::to_owned).context("publishOffer: no offer_id")
            }));
        }
        for task in tasks {
            offers.push(task.await.context("a publishing task failed")??);
        }
    }

    let school_parties = parties::schools(env, schools)?;
    let students = parties::students(env, &school_parties, placements)?;
    eprintln!(
        "setup: {schools} schools import {placements} students (17 at the agreement's start) ..."
    );
    parties::enrol(env, &school_parties, &students, start_date() - Days::new(17 * 366)).await?;

    Ok(Population {
        schools: school_parties,
        companies,
        offers,
        students,
        clients,
        offers_per_client,
        slots_per_offer,
        elapsed: started.elapsed(),
    })
}

/// The body of `publishOffer` (as the API tests' fixture).
fn offer_body(slots: usize) -> Value {
    json!({
        "qualification": "25180", "levels": [2, 3], "slots": slots,
        "period": {"start": start_date().to_string(), "end": end_date().to_string()},
        "hours_per_week": 32, "region": "Utrecht",
        "learning_opportunities": ["service on a live network"],
        "internship_allowance": {"amount_eur": 250.0, "per": "month"},
        "open_for_matching": true,
    })
}
