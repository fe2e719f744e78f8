//! Objective matching rounds through the API (M1-M5, S1): opening a round,
//! running the engine on what is in play, reading proposals with their
//! explanations, publishing them as placements, and the two-and-two variant.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{Value, json};
use stagepact_domain::matching_round::{MatchingRound, MatchingRoundCommand};

use crate::fixtures::*;
use crate::helpers::{TestApp, problem, reason, spawn_app};

/// The learning opportunity of `offer_body`.
const OPPORTUNITY: &str = "service on a live network";

fn wish(goals: &[&str]) -> Value {
    json!({
        "learning_goals": goals, "competences": ["soldering"], "sectors": ["Techniek"],
        "region": "Utrecht",
    })
}

fn round_body(variant: &str) -> Value {
    json!({
        "cohort": 2026, "period": {"start": start_date(), "end": end_date()}, "variant": variant,
    })
}

impl TestApp {
    /// Enrols a first-year student of `SCHOOL` on `pathway` with a learning wish.
    async fn candidate(&self, student_id: &str, pathway: &str) {
        self.enroll(student_id, pathway, born_years_before_start(17)).await;
        let path = format!("/v1/students/{student_id}/learning-wish");
        let response =
            self.post(&path, &self.school(), wish(&[OPPORTUNITY, "fault finding"])).await;
        ok_json(response, StatusCode::ACCEPTED).await;
    }

    /// Opens a round at `SCHOOL`; its id.
    async fn open_round(&self, body: Value) -> String {
        let response = self.post("/v1/matching-rounds", &self.school(), body).await;
        let body = ok_json(response, StatusCode::CREATED).await;
        body["round_id"].as_str().expect("round id").to_owned()
    }

    /// POSTs a round step as `SCHOOL` and checks it is accepted; the body.
    async fn round_step(&self, round: &str, step: &str, body: Value) -> Value {
        let response =
            self.post(&format!("/v1/matching-rounds/{round}/{step}"), &self.school(), body).await;
        ok_json(response, StatusCode::ACCEPTED).await
    }

    /// The round as its school reads it, once it reflects `position`.
    async fn round_at(&self, round: &str, position: i64) -> Value {
        let path = format!("/v1/matching-rounds/{round}?min_position={position}");
        ok_json(self.get(&path, &self.school()).await, StatusCode::OK).await
    }

    /// Runs a round and reads it.
    async fn run_round(&self, round: &str) -> Value {
        let ran = self.round_step(round, "runs", json!({})).await;
        self.round_at(round, ran["position"].as_i64().unwrap_or(0)).await
    }
}

/// (student, company) of every proposal.
fn pairs(round: &Value) -> Vec<(String, String)> {
    round["proposals"]
        .as_array()
        .expect("proposals")
        .iter()
        .map(|p| {
            (
                p["student_id"].as_str().unwrap_or("").into(),
                p["company_id"].as_str().unwrap_or("").into(),
            )
        })
        .collect()
}

fn pair(student: &str, company: &str) -> (String, String) {
    (student.to_owned(), company.to_owned())
}

#[tokio::test]
async fn m2_a_round_proposes_first_year_bol_students_on_their_learning_wish_with_explanations() {
    let app = spawn_app().await;
    app.candidate("s-1", "bol").await;
    app.candidate("s-2", "bbl").await;
    app.enroll("s-3", "bol", born_years_before_start(17)).await; // no learning wish
    app.company_with_offer("lb-1", 2).await;

    let round = app.open_round(round_body("single")).await;
    let view = app.run_round(&round).await;

    assert_eq!(view["status"], "run");
    assert_eq!(pairs(&view), [pair("s-1", "lb-1")], "only the first-year BOL student with a wish");
    let explanation = &view["proposals"][0]["explanation"];
    assert_eq!(explanation["qualification"], "25180");
    assert_eq!(explanation["level"], 2);
    assert_eq!(explanation["learning_goals"]["matched"], json!([OPPORTUNITY]));
    assert_eq!(explanation["learning_goals"]["of"], 2);
    assert_eq!(explanation["sector"]["wished"], true, "the company's sector is Techniek");
    let points: u64 = ["learning_goals", "competences", "sector", "distance"]
        .iter()
        .map(|c| explanation[c]["points"].as_u64().expect("points"))
        .sum();
    assert_eq!(view["proposals"][0]["fit"].as_u64(), Some(points), "fit is the sum of the points");
    let run = &view["run"];
    assert_eq!(run["run"], 1);
    assert_eq!(run["metrics"]["students"], 1);
    assert_eq!(run["metrics"]["matched_share"], 1.0);
    assert_eq!(run["metrics"]["slots_left"], 1);
    assert!(run["run_time_ms"].is_u64(), "{run}");
    assert_eq!(view["unmatched"], json!([]));
}

#[tokio::test]
async fn m1_the_same_input_gives_the_same_result_and_records_nothing_new() {
    let app = spawn_app().await;
    for student in ["s-1", "s-2", "s-3"] {
        app.candidate(student, "bol").await;
    }
    app.company_with_offer("lb-1", 1).await;
    app.company_with_offer("lb-2", 1).await;

    let first = app.open_round(round_body("single")).await;
    let view = app.run_round(&first).await;
    assert_eq!(view["proposals"].as_array().map(Vec::len), Some(2), "two slots");
    assert_eq!(view["unmatched"][0]["reason"], "slots_taken");

    let before = app.event_count().await;
    let again = app.round_step(&first, "runs", json!({})).await;
    assert_eq!(again["run"], 1, "still the first run");
    assert_eq!(again["position"], Value::Null, "nothing recorded");
    assert_eq!(app.event_count().await, before);

    // A second round on the same students and offers decides the same.
    let second = app.open_round(round_body("single")).await;
    let other = app.run_round(&second).await;
    assert_eq!(other["proposals"], view["proposals"]);
    assert_eq!(other["unmatched"], view["unmatched"]);
    assert_eq!(other["run"]["input_digest"], view["run"]["input_digest"]);
}

#[tokio::test]
async fn m3_published_proposals_become_placements_and_an_objection_returns_the_student_to_the_pool()
{
    let app = spawn_app().await;
    app.candidate("s-1", "bol").await;
    app.company_with_offer("lb-1", 1).await;
    let round = app.open_round(round_body("single")).await;
    let view = app.run_round(&round).await;
    let company = view["proposals"][0]["company_id"].as_str().expect("a company").to_owned();

    let published = app.round_step(&round, "publication", json!({})).await;
    assert_eq!(published["carried_out"], json!({"placed": 1, "lapsed": 0, "pending": 0}));
    let view = app.round_at(&round, published["position"].as_i64().unwrap_or(0)).await;
    assert_eq!(view["status"], "published");
    let placement =
        view["proposals"][0]["placement"]["placement_id"].as_str().expect("a placement").to_owned();
    assert_eq!(view["proposals"][0]["placement"]["status"], "proposed");
    let match_proposed: Value = sqlx::query_scalar(
        "SELECT payload->'MatchProposed' FROM events WHERE aggregate_id = $1 AND sequence = 1",
    )
    .bind(&placement)
    .fetch_one(&app.pool)
    .await
    .expect("MatchProposed");
    assert_eq!(match_proposed["matching_round_id"], round.as_str());
    let explanation = match_proposed["explanation"].as_str().expect("an explanation");
    assert!(explanation.contains(OPPORTUNITY), "{explanation}");

    // Publishing again or running a published round is refused.
    let before = app.event_count().await;
    let again = app
        .post(&format!("/v1/matching-rounds/{round}/publication"), &app.school(), json!({}))
        .await;
    assert_eq!(
        problem(again, StatusCode::CONFLICT).await["type"]
            .as_str()
            .map(|t| t.ends_with("round-published")),
        Some(true)
    );
    let rerun =
        app.post(&format!("/v1/matching-rounds/{round}/runs"), &app.school(), json!({})).await;
    problem(rerun, StatusCode::CONFLICT).await;
    assert_eq!(app.event_count().await, before);

    // M3: the company objects; the next round takes the student again, but
    // not to that company.
    app.step(
        &placement,
        "object",
        &app.company(&company),
        json!({"reasons": ["the placement is full after all"]}),
    )
    .await;
    app.company_with_offer("lb-2", 1).await;
    let next = app.open_round(round_body("single")).await;
    let view = app.run_round(&next).await;
    assert_eq!(pairs(&view), [pair("s-1", "lb-2")]);
}

#[tokio::test]
async fn m4_offers_of_companies_that_opted_out_or_s1_may_not_host_are_not_in_play() {
    let app = spawn_app().await;
    for student in ["s-1", "s-2", "s-3"] {
        app.candidate(student, "bol").await;
    }
    app.company_with_offer("lb-out", 1).await;
    app.company_with_offer("lb-revoked", 1).await;
    app.company_with_offer("lb-in", 1).await;
    let opted_out = app
        .post(
            "/v1/companies/lb-out/matching-participation",
            &app.company("lb-out"),
            json!({"participates": false}),
        )
        .await;
    ok_json(opted_out, StatusCode::ACCEPTED).await;
    let revoked = app.post("/v1/companies/lb-revoked/revoke", &app.sbb(), reason()).await;
    ok_json(revoked, StatusCode::ACCEPTED).await;

    let round = app.open_round(round_body("single")).await;
    let view = app.run_round(&round).await;
    assert_eq!(view["run"]["metrics"]["offers"], 1, "only lb-in's offer is in play");
    let companies: Vec<String> = pairs(&view).into_iter().map(|(_, c)| c).collect();
    assert_eq!(companies, ["lb-in"]);
}

#[tokio::test]
async fn m4_two_and_two_introduces_each_student_to_two_companies_and_settles_one() {
    let app = spawn_app().await;
    app.candidate("s-1", "bol").await;
    app.candidate("s-2", "bol").await;
    let offer_1 = app.company_with_offer("lb-1", 1).await;
    let offer_2 = app.company_with_offer("lb-2", 1).await;
    let round = app.open_round(round_body("two_and_two")).await;
    let view = app.run_round(&round).await;
    let mut introductions = pairs(&view);
    introductions.sort();
    assert_eq!(
        introductions,
        [pair("s-1", "lb-1"), pair("s-1", "lb-2"), pair("s-2", "lb-1"), pair("s-2", "lb-2")],
        "each student meets two companies, each offer two students per slot"
    );

    let published = app.round_step(&round, "publication", json!({})).await;
    assert_eq!(published["carried_out"]["placed"], 0, "introductions first");

    let settled = app
        .round_step(
            &round,
            "settlements",
            json!({"settlements": [{"student_id": "s-1", "offer_id": offer_2}]}),
        )
        .await;
    assert_eq!(settled["carried_out"]["placed"], 1);
    let view = app.round_at(&round, settled["position"].as_i64().unwrap_or(0)).await;
    let settled_proposal = view["proposals"]
        .as_array()
        .expect("proposals")
        .iter()
        .find(|p| p["student_id"] == "s-1" && p["offer_id"] == offer_2.as_str())
        .expect("the settled introduction")
        .clone();
    assert_eq!(settled_proposal["placement"]["status"], "proposed");
    assert_eq!(view["status"], "published", "s-2 is not settled yet");

    // M4: once per student, and only with an introduction.
    let before = app.event_count().await;
    let twice = app
        .post(
            &format!("/v1/matching-rounds/{round}/settlements"),
            &app.school(),
            json!({"settlements": [{"student_id": "s-1", "offer_id": offer_1}]}),
        )
        .await;
    assert_eq!(problem(twice, StatusCode::CONFLICT).await["rule"], "M4");
    let stranger = uuid::Uuid::new_v4();
    let unknown = app
        .post(
            &format!("/v1/matching-rounds/{round}/settlements"),
            &app.school(),
            json!({"settlements": [{"student_id": "s-2", "offer_id": stranger}]}),
        )
        .await;
    assert_eq!(problem(unknown, StatusCode::UNPROCESSABLE_ENTITY).await["rule"], "M4");
    assert_eq!(app.event_count().await, before);

    let last = app
        .round_step(
            &round,
            "settlements",
            json!({"settlements": [{"student_id": "s-2", "offer_id": offer_1}]}),
        )
        .await;
    let view = app.round_at(&round, last["position"].as_i64().unwrap_or(0)).await;
    assert_eq!(view["status"], "settled");
}

#[tokio::test]
async fn m4_a_single_round_is_not_settled() {
    let app = spawn_app().await;
    app.candidate("s-1", "bol").await;
    let offer = app.company_with_offer("lb-1", 1).await;
    let round = app.open_round(round_body("single")).await;
    app.run_round(&round).await;
    app.round_step(&round, "publication", json!({})).await;
    let before = app.event_count().await;
    let response = app
        .post(
            &format!("/v1/matching-rounds/{round}/settlements"),
            &app.school(),
            json!({"settlements": [{"student_id": "s-1", "offer_id": offer}]}),
        )
        .await;
    assert_eq!(problem(response, StatusCode::CONFLICT).await["rule"], "M4");
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn m2_named_students_without_a_wish_or_with_a_placement_are_left_out_with_the_reason() {
    let app = spawn_app().await;
    app.candidate("s-1", "bol").await;
    app.enroll("s-2", "bol", born_years_before_start(17)).await;
    app.candidate("s-3", "bbl").await; // named: the school may include others
    let offer = app.company_with_offer("lb-1", 3).await;
    app.propose("s-1", &offer).await;

    let mut body = round_body("single");
    body["student_ids"] = json!(["s-1", "s-2", "s-3"]);
    let round = app.open_round(body).await;
    let view = app.run_round(&round).await;
    assert_eq!(pairs(&view), [pair("s-3", "lb-1")]);
    assert_eq!(
        view["left_out"],
        json!([
            {"student_id": "s-1", "reason": "has_placement"},
            {"student_id": "s-2", "reason": "no_learning_wish"},
        ])
    );
}

#[tokio::test]
async fn m5_a_support_need_never_reaches_the_round() {
    let app = spawn_app().await;
    app.candidate("s-1", "bol").await;
    app.candidate("s-2", "bol").await;
    app.company_with_offer("lb-1", 1).await;
    let before = app.open_round(round_body("single")).await;
    let without = app.run_round(&before).await;

    // A support need (sealed, G3) for one student, then the same round again
    // and a new one: the engine's input is the same, so is the result.
    const NEED: &str = "needs extra time to settle in";
    let need = app
        .post("/v1/students/s-1/support-need", &app.school(), json!({"support_need": NEED}))
        .await;
    ok_json(need, StatusCode::ACCEPTED).await;
    let again = app.round_step(&before, "runs", json!({})).await;
    assert_eq!(again["run"], 1, "the input did not change");
    assert_eq!(again["position"], Value::Null);
    let after = app.open_round(round_body("single")).await;
    let with = app.run_round(&after).await;
    assert_eq!(with["run"]["input_digest"], without["run"]["input_digest"]);
    assert_eq!(with["proposals"], without["proposals"]);
    let stored: Vec<Value> =
        sqlx::query_scalar("SELECT payload FROM events WHERE aggregate_type = 'matching_round'")
            .fetch_all(&app.pool)
            .await
            .expect("the rounds' events");
    let text = serde_json::to_string(&stored).expect("json");
    assert!(!text.contains(NEED) && !text.contains("date_of_birth"), "{text}");
}

#[tokio::test]
async fn a_match_whose_offer_closed_before_publishing_lapses_and_the_student_returns_to_the_pool() {
    let app = spawn_app().await;
    app.candidate("s-1", "bol").await;
    let offer = app.company_with_offer("lb-1", 1).await;
    let round = app.open_round(round_body("single")).await;
    app.run_round(&round).await;
    let withdrawn = app
        .post(
            &format!("/v1/offers/{offer}/withdraw"),
            &app.company("lb-1"),
            json!({"reason": "closed"}),
        )
        .await;
    ok_json(withdrawn, StatusCode::ACCEPTED).await;

    let published = app.round_step(&round, "publication", json!({})).await;
    assert_eq!(published["carried_out"], json!({"placed": 0, "lapsed": 1, "pending": 0}));
    let view = app.round_at(&round, published["position"].as_i64().unwrap_or(0)).await;
    let placement = &view["proposals"][0]["placement"];
    assert_eq!(placement["status"], "lapsed");
    assert!(placement["reason"].as_str().is_some_and(|r| !r.is_empty()), "{placement}");
    let placed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'placement'")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(placed, 0);

    app.company_with_offer("lb-2", 1).await;
    let next = app.open_round(round_body("single")).await;
    assert_eq!(pairs(&app.run_round(&next).await), [pair("s-1", "lb-2")]);
}

#[tokio::test]
async fn bad_round_requests_are_problems_that_record_nothing() {
    let app = spawn_app().await;
    app.candidate("s-1", "bol").await;
    let before = app.event_count().await;
    let mut backwards = round_body("single");
    backwards["period"] = json!({"start": end_date(), "end": start_date()});
    let mut stranger = round_body("single");
    stranger["student_ids"] = json!(["s-1", "s-404"]);
    let mut empty = round_body("single");
    empty["student_ids"] = json!([]);
    let mut cohort = round_body("single");
    cohort["cohort"] = json!(1890);
    let mut qualification = round_body("single");
    qualification["qualification"] = json!("cook");
    let mut unknown_field = round_body("single");
    unknown_field["personality"] = json!("outgoing");
    for (body, field) in [
        (backwards, Some("period.end")),
        (stranger, Some("student_ids[1]")),
        (empty, Some("student_ids")),
        (cohort, Some("cohort")),
        (qualification, Some("qualification")),
        (round_body("three_and_three"), None),
        (unknown_field, None),
    ] {
        let response = app.post("/v1/matching-rounds", &app.school(), body).await;
        let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        if let Some(field) = field {
            assert_eq!(body["errors"][0]["field"], field, "{body}");
        }
    }
    let unknown_round = uuid::Uuid::new_v4();
    for step in ["runs", "publication"] {
        let path = format!("/v1/matching-rounds/{unknown_round}/{step}");
        problem(app.post(&path, &app.school(), json!({})).await, StatusCode::NOT_FOUND).await;
    }
    let not_run = app.open_round(round_body("single")).await;
    let before_publish = app.event_count().await;
    let publish = app
        .post(&format!("/v1/matching-rounds/{not_run}/publication"), &app.school(), json!({}))
        .await;
    problem(publish, StatusCode::CONFLICT).await;
    assert_eq!(app.event_count().await, before_publish);
    assert_eq!(before_publish, before + 1, "only the one valid round was recorded");
}

#[tokio::test]
async fn only_the_rounds_school_opens_runs_publishes_and_reads_it() {
    let app = spawn_app().await;
    app.candidate("s-1", "bol").await;
    app.company_with_offer("lb-1", 1).await;
    let before = app.event_count().await;
    for token in [app.company("lb-1"), app.student(), app.sbb(), app.monitor()] {
        let response = app.post("/v1/matching-rounds", &token, round_body("single")).await;
        problem(response, StatusCode::FORBIDDEN).await;
    }
    assert_eq!(app.event_count().await, before);

    let round = app.open_round(round_body("single")).await;
    app.run_round(&round).await;
    let before = app.event_count().await;
    let foreign = app.school_of(OTHER_SCHOOL);
    for step in ["runs", "publication"] {
        let path = format!("/v1/matching-rounds/{round}/{step}");
        problem(app.post(&path, &foreign, json!({})).await, StatusCode::FORBIDDEN).await;
        problem(app.post(&path, &app.company("lb-1"), json!({})).await, StatusCode::FORBIDDEN)
            .await;
    }
    let settle = format!("/v1/matching-rounds/{round}/settlements");
    let body = json!({"settlements": [{"student_id": "s-1", "offer_id": uuid::Uuid::new_v4()}]});
    problem(app.post(&settle, &foreign, body).await, StatusCode::FORBIDDEN).await;
    assert_eq!(app.event_count().await, before);
    for token in [foreign, app.company("lb-1"), app.student(), app.sbb()] {
        let response = app.get(&format!("/v1/matching-rounds/{round}"), &token).await;
        problem(response, StatusCode::FORBIDDEN).await;
    }

    // The round is the school's: its events are in the school's feed only.
    let school_feed = app.get("/v1/events?limit=500", &app.school()).await;
    let school_feed = ok_json(school_feed, StatusCode::OK).await.to_string();
    assert!(school_feed.contains("nl.stagepact.matching_round.matching_round_run"));
    for token in [app.company("lb-1"), app.sbb(), app.school_of(OTHER_SCHOOL)] {
        let feed = ok_json(app.get("/v1/events?limit=500", &token).await, StatusCode::OK).await;
        assert!(!feed.to_string().contains("matching_round"), "{feed}");
    }
}

#[tokio::test]
async fn matches_a_failure_left_unproposed_are_carried_out_by_the_background_round_once() {
    let app = spawn_app().await;
    app.candidate("s-1", "bol").await;
    app.company_with_offer("lb-1", 1).await;
    let round = app.open_round(round_body("single")).await;
    app.run_round(&round).await;
    // The publication recorded, then the process died before the placements.
    let publish = MatchingRoundCommand::Publish { today: today() };
    let committed = app
        .state
        .bus
        .execute::<MatchingRound>(&round, publish, None, HashMap::new())
        .await
        .expect("published");
    let position = committed.position.expect("a position");
    let wait = std::time::Duration::from_secs(5);
    let caught_up = app.state.projections.await_position("matching_rounds", position, wait).await;
    assert!(caught_up.expect("checkpoint"), "the read model caught up");
    let view = app.round_at(&round, position).await;
    assert_eq!(view["proposals"][0]["placement"]["status"], "pending");

    let placed = stagepact_api::delivery::carry_out_pending(&app.state).await.expect("carried out");
    assert_eq!(placed, 1);
    let head = app.state.log.head();
    let caught_up = app.state.projections.await_position("matching_rounds", head, wait).await;
    assert!(caught_up.expect("checkpoint"), "the read model caught up");
    let again = stagepact_api::delivery::carry_out_pending(&app.state).await.expect("nothing left");
    assert_eq!(again, 0, "a second round proposes nothing twice");
    let view = app.round_at(&round, head).await;
    assert_eq!(view["proposals"][0]["placement"]["status"], "proposed");
    let placements: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'MatchProposed'")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(placements, 1);
}

#[tokio::test]
async fn m1_a_student_who_gives_a_place_to_travel_from_is_matched_within_their_travel_limit() {
    let app = spawn_app().await;
    // From Amersfoort (about 20 km from Utrecht) with a 10 km limit: the
    // Utrecht offer is out of reach; with 30 km it is in, and the distance is
    // explained. The place is kept to about a kilometre.
    app.enroll("s-1", "bol", born_years_before_start(17)).await;
    let mut body = wish(&[OPPORTUNITY]);
    body["travel_from"] = json!({"lat": 52.156_123, "lon": 5.387_849});
    body["max_travel_km"] = json!(10);
    let response = app.post("/v1/students/s-1/learning-wish", &app.school(), body.clone()).await;
    let position = ok_json(response, StatusCode::ACCEPTED).await["position"].as_i64();
    let student = app
        .get(&format!("/v1/students/s-1?min_position={}", position.unwrap_or(0)), &app.school())
        .await;
    let student = ok_json(student, StatusCode::OK).await;
    assert_eq!(student["learning_wish"]["travel_from"], json!({"lat": 52.16, "lon": 5.39}));
    app.recognised_company("lb-1").await;
    let mut offer = offer_body(1);
    offer["location"] = json!({"lat": 52.0907, "lon": 5.1214});
    ok_json(app.post("/v1/offers", &app.company("lb-1"), offer).await, StatusCode::CREATED).await;

    let round = app.open_round(round_body("single")).await;
    let view = app.run_round(&round).await;
    assert_eq!(
        view["unmatched"],
        json!([{"student_id": "s-1", "reason": "no_offer_within_reach"}])
    );

    body["max_travel_km"] = json!(30);
    ok_json(
        app.post("/v1/students/s-1/learning-wish", &app.school(), body).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let view = app.run_round(&round).await;
    assert_eq!(view["run"]["run"], 2, "a changed wish is a changed input");
    let distance = &view["proposals"][0]["explanation"]["distance"];
    let metres = distance["distance_m"].as_u64().expect("a distance");
    assert!((18_000..22_000).contains(&metres), "{distance}");
    assert_eq!(distance["limit_m"], 30_000);
}

#[tokio::test]
async fn m2_a_match_for_a_student_placed_meanwhile_lapses_at_publication() {
    let app = spawn_app().await;
    app.candidate("s-1", "bol").await;
    app.company_with_offer("lb-1", 1).await;
    let other = app.company_with_offer("lb-2", 1).await;
    let round = app.open_round(round_body("single")).await;
    let view = app.run_round(&round).await;
    let proposed_offer = view["proposals"][0]["offer_id"].as_str().expect("an offer").to_owned();
    // Between run and publication the school matches the student by hand.
    let by_hand =
        if proposed_offer == other { app.company_with_offer("lb-3", 1).await } else { other };
    app.propose("s-1", &by_hand).await;

    let published = app.round_step(&round, "publication", json!({})).await;
    assert_eq!(published["carried_out"], json!({"placed": 0, "lapsed": 1, "pending": 0}));
    let view = app.round_at(&round, published["position"].as_i64().unwrap_or(0)).await;
    assert_eq!(view["proposals"][0]["placement"]["status"], "lapsed");
    let proposed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'MatchProposed'")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(proposed, 1, "only the match by hand");
    let offer = app.get(&format!("/v1/offers/{proposed_offer}"), &app.school()).await;
    assert_eq!(ok_json(offer, StatusCode::OK).await["free_slots"], 1, "the slot is not held");
}

#[tokio::test]
async fn m4_a_two_and_two_student_whose_match_lapsed_is_settled_with_the_other_introduction() {
    let app = spawn_app().await;
    app.candidate("s-1", "bol").await;
    let offer_1 = app.company_with_offer("lb-1", 1).await;
    let offer_2 = app.company_with_offer("lb-2", 1).await;
    let round = app.open_round(round_body("two_and_two")).await;
    app.run_round(&round).await;
    app.round_step(&round, "publication", json!({})).await;
    let withdrawn =
        app.post(&format!("/v1/offers/{offer_1}/withdraw"), &app.company("lb-1"), json!({})).await;
    ok_json(withdrawn, StatusCode::ACCEPTED).await;
    let settle = |offer: &str| json!({"settlements": [{"student_id": "s-1", "offer_id": offer}]});

    let first = app.round_step(&round, "settlements", settle(&offer_1)).await;
    assert_eq!(first["carried_out"]["lapsed"], 1);
    let path = format!("/v1/matching-rounds/{round}/settlements");
    let before = app.event_count().await;
    let same = app.post(&path, &app.school(), settle(&offer_1)).await;
    assert_eq!(problem(same, StatusCode::CONFLICT).await["rule"], "M4");
    assert_eq!(app.event_count().await, before);

    let second = app.round_step(&round, "settlements", settle(&offer_2)).await;
    assert_eq!(second["carried_out"]["placed"], 1);
    let view = app.round_at(&round, second["position"].as_i64().unwrap_or(0)).await;
    assert_eq!(view["status"], "settled");
}

#[tokio::test]
async fn s1_s2_suspended_companies_and_offers_closed_ended_or_outside_the_period_are_not_in_play() {
    let app = spawn_app().await;
    app.candidate("s-1", "bol").await;
    // S1: suspended during an investigation.
    app.company_with_offer("lb-suspended", 1).await;
    let sbb = app.sbb();
    let opened = app.post("/v1/investigations", &sbb, json!({"company_id": "lb-suspended"})).await;
    let investigation = ok_json(opened, StatusCode::CREATED).await["investigation_id"].clone();
    let suspend = json!({"reason": "investigation", "investigation_id": investigation});
    let suspended = app.post("/v1/companies/lb-suspended/suspend", &sbb, suspend).await;
    ok_json(suspended, StatusCode::ACCEPTED).await;
    // Not open for matching; and an offer for another period.
    app.recognised_company("lb-closed").await;
    let mut closed = offer_body(1);
    closed["open_for_matching"] = json!(false);
    ok_json(app.post("/v1/offers", &app.company("lb-closed"), closed).await, StatusCode::CREATED)
        .await;
    app.recognised_company("lb-later").await;
    let mut later = offer_body(1);
    let (start, end) = (end_date() + chrono::Days::new(30), end_date() + chrono::Days::new(90));
    later["period"] = json!({"start": start, "end": end});
    ok_json(app.post("/v1/offers", &app.company("lb-later"), later).await, StatusCode::CREATED)
        .await;

    let round = app.open_round(round_body("single")).await;
    let view = app.run_round(&round).await;
    assert_eq!(view["run"]["metrics"]["offers"], 0, "{}", view["run"]);
    assert_eq!(
        view["unmatched"],
        json!([{"student_id": "s-1", "reason": "no_offer_for_qualification"}])
    );

    // One shared day is enough: a round ending on the day lb-later's offer starts.
    let mut edge = round_body("single");
    edge["period"] = json!({"start": end_date() + chrono::Days::new(10), "end": start});
    let edge_round = app.open_round(edge).await;
    let view = app.run_round(&edge_round).await;
    assert_eq!(view["run"]["metrics"]["offers"], 1, "{}", view["run"]);
}

#[tokio::test]
async fn m3_after_a_students_objection_to_the_only_company_they_are_unmatched_with_the_reason() {
    let app = spawn_app().await;
    app.candidate("s-1", "bol").await;
    let offer = app.company_with_offer("lb-1", 2).await;
    let placement = app.propose("s-1", &offer).await;
    let student = app.student_of(SCHOOL, "s-1");
    let reasons = json!({"reasons": ["I would rather learn installation work"]});
    app.step(&placement, "object", &student, reasons).await;

    let round = app.open_round(round_body("single")).await;
    let view = app.run_round(&round).await;
    assert_eq!(
        view["unmatched"],
        json!([{"student_id": "s-1", "reason": "only_objected_companies"}])
    );
}

#[tokio::test]
async fn publishing_with_a_stale_if_match_is_refused_and_records_nothing() {
    let app = spawn_app().await;
    app.candidate("s-1", "bol").await;
    app.company_with_offer("lb-1", 1).await;
    let round = app.open_round(round_body("single")).await;
    let ran = app.round_step(&round, "runs", json!({})).await;
    let version = ran["version"].as_i64().expect("a version");
    let before = app.event_count().await;
    let stale = app
        .post_with(
            &format!("/v1/matching-rounds/{round}/publication"),
            &app.school(),
            ("If-Match", &format!("\"{}\"", version - 1)),
            json!({}),
        )
        .await;
    problem(stale, StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(app.event_count().await, before);
    let current = app
        .post_with(
            &format!("/v1/matching-rounds/{round}/publication"),
            &app.school(),
            ("If-Match", &format!("\"{version}\"")),
            json!({}),
        )
        .await;
    assert_eq!(ok_json(current, StatusCode::ACCEPTED).await["carried_out"]["placed"], 1);
}
