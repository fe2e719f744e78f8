//! The matching-round scenario (`--scenario matching`): a school-size round
//! through the API, from the engine's synthetic school instance (5,000
//! students, 3,000 offers; `stagepact_matching::synthetic`).
//!
//! Untimed setup, all through the API: every company is registered with the
//! sector, region and place of its first offer and recognised for the
//! qualifications it offers; every offer is published; the students are
//! imported (first-year BOL, cohort 2026) and record their learning wish.
//! A student's place is sent as `travel_from`, which the API keeps rounded to
//! 0.01°; the 5 % of students without a place are matched within their region.
//!
//! Timed, one school administrator at a time: `openMatchingRound`,
//! `runMatchingRound` (read models → input → engine → one `MatchingRoundRun`
//! event; the engine's own time is reported beside it), a second run on the
//! unchanged input (nothing recorded), `getMatchingRound`, and
//! `publishMatchingRound` (every proposal a `MatchProposed` placement with its
//! offer's slot).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Days, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use stagepact_api::auth::Role;
use stagepact_matching::synthetic::{self, Scenario};

use crate::header::Header;
use crate::http_load::expect;
use crate::parties::SETUP_CONCURRENCY;
use crate::setup::Env;
use crate::stats::round;

/// The school that runs the round.
const SCHOOL: &str = "bench-match";
/// Requests of a long step (a school-size run or publication) may take this long.
const LONG: Duration = Duration::from_secs(600);

/// One setup request: path, token, body, the status it must get.
type Request = (String, String, Value, StatusCode);

/// Sends `requests`, [`SETUP_CONCURRENCY`] at a time.
async fn send_all(env: &Env, requests: Vec<Request>, what: &str) -> anyhow::Result<()> {
    for chunk in requests.chunks(SETUP_CONCURRENCY) {
        let mut tasks = Vec::new();
        for (path, token, body, status) in chunk.iter().cloned() {
            let (http, url) = (env.http.clone(), format!("{}{path}", env.base));
            let what = what.to_owned();
            tasks.push(tokio::spawn(async move {
                let response =
                    http.post(url).bearer_auth(token).timeout(LONG).json(&body).send().await?;
                expect(response, status, &what).await
            }));
        }
        for task in tasks {
            task.await.context("a setup task failed")??;
        }
    }
    Ok(())
}

/// A timed POST or GET as the school: the body and the seconds it took.
async fn timed(
    env: &Env,
    token: &str,
    path: &str,
    body: Option<Value>,
    status: StatusCode,
) -> anyhow::Result<(Value, f64, usize)> {
    let url = format!("{}{path}", env.base);
    let started = Instant::now();
    let request = match body {
        Some(body) => env.http.post(url).json(&body),
        None => env.http.get(url),
    };
    let response = request.bearer_auth(token).timeout(LONG).send().await?;
    let got = response.status();
    let text = response.text().await?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(got == status, "{path}: expected {status}, got {got}: {text}");
    Ok((serde_json::from_str(&text)?, seconds, text.len()))
}

/// Runs the scenario.
pub async fn run(header: &Header, env: &Env) -> anyhow::Result<(String, Value)> {
    let input = synthetic::generate(&Scenario::school(1));
    let start = Utc::now().date_naive() + Days::new(60);
    let end = start + Days::new(120);
    let period = json!({"start": start, "end": end});

    // Companies, each with the sector, region and place of its first offer,
    // recognised for every qualification it offers.
    let mut companies: BTreeMap<&str, (&stagepact_matching::Offer, BTreeSet<&str>)> =
        BTreeMap::new();
    for offer in &input.offers {
        companies
            .entry(offer.company.0.as_str())
            .or_insert((offer, BTreeSet::new()))
            .1
            .insert(offer.qualification.as_str());
    }
    eprintln!("registering {} companies ...", companies.len());
    let valid_until = (Utc::now().date_naive() + Days::new(3 * 365)).to_string();
    let mut registrations = Vec::new();
    let mut grants = Vec::new();
    for (id, (first, qualifications)) in &companies {
        registrations.push((
            "/v1/companies".to_owned(),
            env.token.clone(),
            json!({
                "company_id": id, "name": format!("Leerbedrijf {id}"), "sector": first.sector,
                "region": first.region, "location": first.location,
            }),
            StatusCode::CREATED,
        ));
        for q in qualifications {
            grants.push((
                format!("/v1/companies/{id}/recognitions"),
                env.token.clone(),
                json!({"qualification": q, "valid_until": valid_until}),
                StatusCode::ACCEPTED,
            ));
        }
    }
    send_all(env, registrations, "registerCompany").await?;
    send_all(env, grants, "grantRecognition").await?;

    eprintln!("publishing {} offers ...", input.offers.len());
    let mut offers = Vec::new();
    for offer in &input.offers {
        let token = env.mint(Role::Company, Some(&offer.company.0), None)?;
        offers.push((
            "/v1/offers".to_owned(),
            token,
            json!({
                "qualification": offer.qualification, "levels": offer.levels, "slots": offer.slots,
                "period": period, "hours_per_week": 32, "region": offer.region,
                "location": offer.location, "learning_opportunities": offer.learning_opportunities,
                "open_for_matching": true,
            }),
            StatusCode::CREATED,
        ));
    }
    send_all(env, offers, "publishOffer").await?;

    eprintln!("enrolling {} students with their learning wish ...", input.students.len());
    let school = env.mint(Role::School, Some(SCHOOL), None)?;
    let born = (start - Days::new(17 * 366)).to_string();
    let imports: Vec<Request> = input
        .students
        .chunks(1_000)
        .map(|batch| {
            let items: Vec<Value> = batch
                .iter()
                .map(|s| {
                    json!({
                        "student_id": s.id.0, "qualification": s.qualification, "level": s.level,
                        "pathway": "bol", "cohort": 2026, "first_year": true, "date_of_birth": born,
                    })
                })
                .collect();
            (
                "/v1/students/import".to_owned(),
                school.clone(),
                json!({"students": items}),
                StatusCode::OK,
            )
        })
        .collect();
    send_all(env, imports, "importStudents").await?;
    let wishes: Vec<Request> = input
        .students
        .iter()
        .map(|s| {
            let mut wish = json!({
                "learning_goals": s.learning_goals, "competences": s.competences,
                "sectors": s.sectors, "region": s.region,
            });
            if let Some(km) = s.max_travel_km {
                wish["max_travel_km"] = json!(km);
            }
            if let Some(place) = s.location {
                wish["travel_from"] = json!(place);
            }
            (
                format!("/v1/students/{}/learning-wish", s.id.0),
                school.clone(),
                wish,
                StatusCode::ACCEPTED,
            )
        })
        .collect();
    send_all(env, wishes, "recordLearningWish").await?;
    env.settle().await?;

    eprintln!("the round: open, run, run again, read, publish ...");
    let body = json!({"cohort": 2026, "period": period, "variant": "single"});
    let (opened, open_s, _) =
        timed(env, &school, "/v1/matching-rounds", Some(body), StatusCode::CREATED).await?;
    let round_id = opened["round_id"].as_str().context("a round id")?.to_owned();
    let runs = format!("/v1/matching-rounds/{round_id}/runs");
    let (ran, run_s, _) = timed(env, &school, &runs, Some(json!({})), StatusCode::ACCEPTED).await?;
    let position = ran["position"].as_i64().unwrap_or(0);
    let (rerun, rerun_s, _) =
        timed(env, &school, &runs, Some(json!({})), StatusCode::ACCEPTED).await?;
    anyhow::ensure!(rerun["position"].is_null(), "an unchanged input records nothing: {rerun}");
    let get = format!("/v1/matching-rounds/{round_id}?min_position={position}");
    let (view, get_s, get_bytes) = timed(env, &school, &get, None, StatusCode::OK).await?;
    let run_event_bytes: i64 = sqlx::query_scalar(
        "SELECT octet_length(payload::text)::bigint FROM events
          WHERE aggregate_id = $1 AND event_type = 'MatchingRoundRun'",
    )
    .bind(&round_id)
    .fetch_one(&env.pool)
    .await?;
    env.settle().await?;
    let publication = format!("/v1/matching-rounds/{round_id}/publication");
    let (published, publish_s, _) =
        timed(env, &school, &publication, Some(json!({})), StatusCode::ACCEPTED).await?;

    let metrics = &view["run"]["metrics"];
    let placed = published["carried_out"]["placed"].as_u64().unwrap_or(0);
    let engine_ms = view["run"]["run_time_ms"].as_u64().unwrap_or(0);
    let lines = vec![
        format!(
            "round: {} students, {} offers, {} slots, {} candidate pairs",
            metrics["students"], metrics["offers"], metrics["slots"], metrics["candidate_pairs"]
        ),
        format!(
            "  matched share {:.3}, mean fit {:.0}, slots left {}, blocking pairs {}",
            metrics["matched_share"].as_f64().unwrap_or(0.0),
            metrics["mean_fit"].as_f64().unwrap_or(0.0),
            metrics["slots_left"],
            metrics["blocking_pairs"],
        ),
        format!("openMatchingRound            {:>8.3} s", open_s),
        format!(
            "runMatchingRound             {:>8.3} s  (engine {engine_ms} ms; MatchingRoundRun event {:.1} MiB)",
            run_s,
            run_event_bytes as f64 / 1_048_576.0
        ),
        format!("runMatchingRound, unchanged  {:>8.3} s  (nothing recorded)", rerun_s),
        format!(
            "getMatchingRound             {:>8.3} s  ({:.1} MiB of JSON)",
            get_s,
            get_bytes as f64 / 1_048_576.0
        ),
        format!(
            "publishMatchingRound         {:>8.3} s  ({placed} placements, {:.0} placements/s)",
            publish_s,
            placed as f64 / publish_s
        ),
    ];
    let mut report = header.lines.clone();
    report.extend(lines);
    let figures = header.figures(json!({
        "scenario": "matching",
        "metrics": metrics,
        "seconds": {
            "open": round(open_s), "run": round(run_s), "run_unchanged": round(rerun_s),
            "get": round(get_s), "publish": round(publish_s),
        },
        "engine_ms": engine_ms,
        "run_event_bytes": run_event_bytes,
        "get_bytes": get_bytes,
        "placed": placed,
        "carried_out": published["carried_out"],
    }));
    Ok((report.join("\n"), figures))
}
