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
use crate::setup::Env;

/// Most students per `importStudents` request (the API's maximum).
const IMPORT_BATCH: usize = 1_000;
/// Most slots per offer (the API's maximum).
const MAX_SLOTS: usize = 1_000;
/// How many setup requests run at once.
const SETUP_CONCURRENCY: usize = 16;

/// A caller: its id and its bearer token.
#[derive(Debug, Clone)]
pub struct Party {
    /// The school code, company id or student number.
    pub id: String,
    /// Its token.
    pub token: String,
}

/// A student and the school (an index into [`Population::schools`]) that enrolled them.
#[derive(Debug, Clone)]
pub struct Student {
    /// The student number and the student's own token.
    pub party: Party,
    /// Index of the school.
    pub school: usize,
}

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

/// A school code.
fn school_id(index: usize) -> String {
    format!("bench-s{index:02}")
}

/// A student number, unique over all schools.
fn student_id(placement: usize) -> String {
    format!("bs-{placement:06}")
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

    let school_parties: Vec<Party> = (0..schools)
        .map(|index| {
            let id = school_id(index);
            let token = env.mint(Role::School, Some(&id), None)?;
            anyhow::Ok(Party { id, token })
        })
        .collect::<Result<_, _>>()?;
    let mut students = Vec::with_capacity(placements);
    for placement in 0..placements {
        let school = placement % schools;
        let id = student_id(placement);
        let token = env.mint(Role::Student, Some(&school_parties[school].id), Some(&id))?;
        students.push(Student { party: Party { id, token }, school });
    }

    eprintln!(
        "setup: {schools} schools import {placements} students (17 at the agreement's start) ..."
    );
    let born = start_date() - Days::new(17 * 366);
    let mut batches = Vec::new();
    for (index, school) in school_parties.iter().enumerate() {
        let own: Vec<&Student> = students.iter().filter(|s| s.school == index).collect();
        for batch in own.chunks(IMPORT_BATCH) {
            let items: Vec<Value> = batch.iter().map(|s| enrolment(&s.party.id, born)).collect();
            batches.push((school.token.clone(), items));
        }
    }
    for chunk in batches.chunks(SETUP_CONCURRENCY) {
        let mut tasks = Vec::new();
        for (token, items) in chunk.iter().cloned() {
            let (http, url) = (env.http.clone(), format!("{}/v1/students/import", env.base));
            tasks.push(tokio::spawn(async move {
                let count = items.len();
                let response = http
                    .post(url)
                    .bearer_auth(token)
                    .timeout(Duration::from_secs(600))
                    .json(&json!({"students": items}))
                    .send()
                    .await?;
                let body = expect(response, StatusCode::OK, "importStudents").await?;
                if body["created"].as_u64() != Some(count as u64) {
                    bail!("importStudents: expected {count} created, got {body}");
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await.context("an import task failed")??;
        }
    }

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

/// One item of `importStudents`: a BOL student of 25180, level 2.
fn enrolment(student_id: &str, born: NaiveDate) -> Value {
    json!({
        "student_id": student_id, "qualification": "25180", "level": 2, "pathway": "bol",
        "cohort": 2026, "first_year": true, "date_of_birth": born.to_string(),
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
