//! Placement reactions through the API: a company's recognition decisions reach
//! its placements (D5, S1), a replacing placement reaches the one it replaces,
//! and a match that ends early gives its offer's slot back (S2, M3) — driven
//! from the global log by the `placement_reactions` process manager, each
//! exactly once, also across a crash, a lost checkpoint and a repeated outbox row.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use stagepact_api::auth::{Authenticator, Role};
use stagepact_api::{ApiConfig, App};
use stagepact_domain::placement::RecognitionChange;
use stagepact_domain::values::Reason;
use stagepact_store::reactions::{NAME as REACTIONS, Reaction};
use tokio::time::Instant;

use crate::fixtures::*;
use crate::helpers::{TestApp, hs256_config, problem, spawn_app};

/// How long a reaction may take before a test gives up on it.
const PATIENCE: Duration = Duration::from_secs(10);
/// How often a waiting test looks again.
const STEP: Duration = Duration::from_millis(50);

const SUSPENSION_REASON: &str = "an investigation into signals from two schools";
const NOTICED: &str = "RecognitionSuspensionNoticed";
const REINSTATED: &str = "RecognitionReinstatementNoticed";

/// Open placements of s-1, s-2 and s-3 at one company, from one three-slot offer.
struct OpenPlacements {
    offer: String,
    /// s-1: proposed.
    proposed: String,
    /// s-2: accepted, agreement drafted; signed by all three when asked.
    agreed: String,
    /// s-3: signed by all three and started.
    active: String,
}

impl OpenPlacements {
    fn all(&self) -> [&str; 3] {
        [&self.proposed, &self.agreed, &self.active]
    }
}

async fn open_placements_at(app: &TestApp, company: &str, sign_agreed: bool) -> OpenPlacements {
    for student in ["s-1", "s-2", "s-3"] {
        app.enroll(student, "bol", born_years_before_start(20)).await;
    }
    let offer = app.company_with_offer(company, 3).await;
    let proposed = app.propose("s-1", &offer).await;
    let agreed = app.propose("s-2", &offer).await;
    let active = app.propose("s-3", &offer).await;
    let signers =
        |student: &str| [app.student_of(SCHOOL, student), app.school(), app.company(company)];
    for (placement, student) in [(&agreed, "s-2"), (&active, "s-3")] {
        app.step(placement, "accept", &app.student_of(SCHOOL, student), json!({})).await;
        app.step(placement, "agreement", &app.school(), agreement_body(None)).await;
    }
    let agreed_signers =
        if sign_agreed { signers("s-2").to_vec() } else { signers("s-2")[..2].to_vec() };
    for token in &agreed_signers {
        app.step(&agreed, "agreement/signatures", token, json!({})).await;
    }
    for token in &signers("s-3") {
        app.step(&active, "agreement/signatures", token, json!({})).await;
    }
    app.step(&active, "start", &app.school(), json!({})).await;
    OpenPlacements { offer, proposed, agreed, active }
}

/// SBB acts on a company's recognition (`suspend`, `reinstate`, `revoke`).
async fn sbb_decides(app: &TestApp, company: &str, decision: &str, reason: &str) {
    let response = app
        .post(&format!("/v1/companies/{company}/{decision}"), &app.sbb(), json!({"reason": reason}))
        .await;
    ok_json(response, StatusCode::ACCEPTED).await;
}

async fn event_types(pool: &PgPool, aggregate_id: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence")
        .bind(aggregate_id)
        .fetch_all(pool)
        .await
        .expect("events")
}

fn count(types: &[String], event_type: &str) -> usize {
    types.iter().filter(|t| *t == event_type).count()
}

/// Waits until `aggregate_id` has recorded an `event_type` event.
async fn wait_for_event(pool: &PgPool, aggregate_id: &str, event_type: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let types = event_types(pool, aggregate_id).await;
        if types.iter().any(|t| t == event_type) {
            return;
        }
        assert!(Instant::now() < deadline, "{aggregate_id} got no {event_type} in time: {types:?}");
        tokio::time::sleep(STEP).await;
    }
}

/// Waits until the reactions are at rest: every event stamped, the process
/// manager at the head of the log, the outbox carried out. One statement, so
/// one snapshot: a command the dispatcher ran is visible before its row goes.
async fn settle(pool: &PgPool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let at_rest: bool = sqlx::query_scalar(
            "SELECT NOT EXISTS (SELECT 1 FROM reaction_outbox)
                AND NOT EXISTS (SELECT 1 FROM events WHERE log_position IS NULL)
                AND (SELECT position FROM projection_checkpoints WHERE name = $1)
                    >= (SELECT coalesce(max(log_position), 0) FROM events)",
        )
        .bind(REACTIONS)
        .fetch_one(pool)
        .await
        .expect("reaction state");
        if at_rest {
            return;
        }
        assert!(Instant::now() < deadline, "the reactions did not come to rest in time");
        tokio::time::sleep(STEP).await;
    }
}

async fn head(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT coalesce(max(log_position), 0) FROM events")
        .fetch_one(pool)
        .await
        .expect("head")
}

/// The school's `needs_attention` list once it reflects the whole log:
/// placement id → `at_risk`.
async fn needs_attention(app: &TestApp) -> Vec<(String, Value)> {
    let position = head(&app.pool).await;
    let path = format!("/v1/placements?needs_attention=true&min_position={position}");
    let page = ok_json(app.get(&path, &app.school()).await, StatusCode::OK).await;
    attention_items(&page)
}

fn attention_items(page: &Value) -> Vec<(String, Value)> {
    let mut items: Vec<_> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            assert_eq!(item["needs_attention"], true, "{item}");
            (item["placement_id"].as_str().expect("id").to_owned(), item["at_risk"].clone())
        })
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items
}

fn sorted(ids: &[&str], at_risk: &Value) -> Vec<(String, Value)> {
    let mut items: Vec<_> = ids.iter().map(|id| ((*id).to_owned(), at_risk.clone())).collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items
}

async fn offer_view(app: &TestApp, offer: &str) -> Value {
    let path = format!("/v1/offers/{offer}?min_position={}", head(&app.pool).await);
    ok_json(app.get(&path, &app.school()).await, StatusCode::OK).await
}

async fn view(app: &TestApp, placement: &str) -> Value {
    let position = head(&app.pool).await;
    app.placement_at(placement, position, &app.school()).await
}

#[tokio::test]
async fn s1_d5_a_suspension_puts_every_open_placement_at_the_company_at_risk_once() {
    let app = spawn_app().await;
    let at_a = open_placements_at(&app, "lb-a", true).await;
    app.enroll("s-4", "bol", born_years_before_start(20)).await;
    let offer_b = app.company_with_offer("lb-b", 1).await;
    let at_b = app.propose("s-4", &offer_b).await;
    assert!(
        needs_attention(&app).await.is_empty(),
        "nothing needs attention before the suspension"
    );

    sbb_decides(&app, "lb-a", "suspend", SUSPENSION_REASON).await;
    for placement in at_a.all() {
        wait_for_event(&app.pool, placement, NOTICED).await;
    }
    settle(&app.pool).await;

    for placement in at_a.all() {
        let types = app.event_types_of(placement).await;
        assert_eq!(count(&types, NOTICED), 1, "{placement}: {types:?}");
    }
    let types_b = app.event_types_of(&at_b).await;
    assert_eq!(count(&types_b, NOTICED), 0, "another company's placement: {types_b:?}");
    assert_eq!(needs_attention(&app).await, sorted(&at_a.all(), &json!("suspended")));
    assert!(view(&app, &at_b).await.get("at_risk").is_none());

    // S1: the agreed placement has every signature, yet cannot start.
    let before = app.event_count().await;
    let refused =
        app.post(&format!("/v1/placements/{}/start", at_a.agreed), &app.school(), json!({})).await;
    let body = problem(refused, StatusCode::CONFLICT).await;
    assert_eq!(body["rule"], "S1", "{body}");
    assert_eq!(app.event_count().await, before, "a refusal records nothing");
}

#[tokio::test]
async fn d5_a_reinstatement_clears_the_risk_once() {
    let app = spawn_app().await;
    // The agreed placement still lacks the company's signature (G1).
    let at_a = open_placements_at(&app, "lb-a", false).await;
    sbb_decides(&app, "lb-a", "suspend", SUSPENSION_REASON).await;
    for placement in at_a.all() {
        wait_for_event(&app.pool, placement, NOTICED).await;
    }
    settle(&app.pool).await;
    assert_eq!(needs_attention(&app).await, sorted(&at_a.all(), &json!("suspended")));

    sbb_decides(&app, "lb-a", "reinstate", "the investigation found nothing").await;
    for placement in at_a.all() {
        wait_for_event(&app.pool, placement, REINSTATED).await;
    }
    settle(&app.pool).await;

    for placement in at_a.all() {
        let types = app.event_types_of(placement).await;
        assert_eq!(count(&types, NOTICED), 1, "{placement}: {types:?}");
        assert_eq!(count(&types, REINSTATED), 1, "{placement}: {types:?}");
        let seen = view(&app, placement).await;
        assert!(seen.get("at_risk").is_none(), "{seen}");
    }
    assert_eq!(view(&app, &at_a.proposed).await["needs_attention"], false);
    assert_eq!(view(&app, &at_a.active).await["needs_attention"], false);
    // Only the missing signature keeps the agreed one on the list.
    assert_eq!(needs_attention(&app).await, sorted(&[at_a.agreed.as_str()], &Value::Null));

    // S1 holds again: once signed, it starts.
    app.step(&at_a.agreed, "agreement/signatures", &app.company("lb-a"), json!({})).await;
    app.step(&at_a.agreed, "start", &app.school(), json!({})).await;
}

#[tokio::test]
async fn s1_d5_a_revocation_interrupts_active_placements_and_asks_the_school_for_an_alternative() {
    let app = spawn_app().await;
    let at_a = open_placements_at(&app, "lb-a", true).await;
    let offer_b = app.company_with_offer("lb-b", 2).await;
    assert_eq!(offer_view(&app, &at_a.offer).await["free_slots"], 0);

    let revocation = "discrimination found by the investigation";
    sbb_decides(&app, "lb-a", "revoke", revocation).await;
    wait_for_event(&app.pool, &at_a.active, "PlacementInterrupted").await;
    for pending in [&at_a.proposed, &at_a.agreed] {
        wait_for_event(&app.pool, pending, NOTICED).await;
    }
    settle(&app.pool).await;

    let types = app.event_types_of(&at_a.active).await;
    assert_eq!(count(&types, "PlacementInterrupted"), 1, "{types:?}");
    assert_eq!(count(&types, NOTICED), 0, "interrupted, not merely at risk: {types:?}");
    let payload: Value = sqlx::query_scalar(
        "SELECT payload FROM events WHERE aggregate_id = $1 AND event_type = 'PlacementInterrupted'",
    )
    .bind(&at_a.active)
    .fetch_one(&app.pool)
    .await
    .expect("the interruption");
    let interrupted = &payload["PlacementInterrupted"];
    assert_eq!(interrupted["cause"], "recognition_revoked", "{payload}");
    assert!(
        interrupted["reaction_to"].as_str().is_some_and(|r| r.starts_with("company:lb-a:")),
        "{payload}"
    );
    let active = view(&app, &at_a.active).await;
    assert_eq!(active["status"], "interrupted");
    // SBB's own words stay with SBB and the company: the school and student
    // read a fixed reason.
    assert_eq!(active["end_reason"], "SBB revoked the company's recognition");
    assert_ne!(active["end_reason"], revocation);
    assert_eq!(active["alternative"], "needed");
    assert_eq!(active["needs_attention"], true);
    for pending in [&at_a.proposed, &at_a.agreed] {
        let types = app.event_types_of(pending).await;
        assert_eq!(count(&types, NOTICED), 1, "{pending}: {types:?}");
        let seen = view(&app, pending).await;
        assert_eq!(seen["at_risk"], "revoked", "{seen}");
        assert_eq!(seen["needs_attention"], true, "{seen}");
    }
    let attention: Vec<String> =
        needs_attention(&app).await.into_iter().map(|(id, _)| id).collect();
    let mut expected: Vec<String> = at_a.all().map(str::to_owned).to_vec();
    expected.sort();
    assert_eq!(attention, expected);
    // The interrupted placement gave its slot back.
    assert_eq!(offer_view(&app, &at_a.offer).await["free_slots"], 1);

    // The school proposes an alternative for the same student at a recognised company.
    let response = app
        .post(
            "/v1/placements",
            &app.school(),
            json!({"student_id": "s-3", "offer_id": offer_b, "replaces": at_a.active}),
        )
        .await;
    let alternative = ok_json(response, StatusCode::CREATED).await["placement_id"]
        .as_str()
        .expect("placement id")
        .to_owned();
    wait_for_event(&app.pool, &at_a.active, "AlternativePlacementOffered").await;
    settle(&app.pool).await;

    let types = app.event_types_of(&at_a.active).await;
    assert_eq!(count(&types, "AlternativePlacementOffered"), 1, "{types:?}");
    assert_eq!(count(&types, "PlacementInterrupted"), 1, "{types:?}");
    let old = view(&app, &at_a.active).await;
    assert_eq!(old["alternative"], alternative.as_str());
    assert_eq!(old["needs_attention"], false, "the alternative is offered: {old}");
    let new = view(&app, &alternative).await;
    assert_eq!(new["replaces"], at_a.active.as_str());
    assert_eq!(new["company_id"], "lb-b");
}

async fn free_slots_become(app: &TestApp, offer: &str, expected: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let response = app.get(&format!("/v1/offers/{offer}"), &app.school()).await;
        // The offer board follows the log: until its projector's next round it
        // may not show the offer at all.
        let seen = if response.status() == StatusCode::NOT_FOUND {
            Value::Null
        } else {
            ok_json(response, StatusCode::OK).await
        };
        if seen["free_slots"] == expected {
            return;
        }
        assert!(Instant::now() < deadline, "free_slots stayed {}: {seen}", seen["free_slots"]);
        tokio::time::sleep(STEP).await;
    }
}

#[tokio::test]
async fn s2_m3_an_objected_or_withdrawn_match_gives_its_offer_slot_back() {
    let app = spawn_app().await;
    for student in ["s-1", "s-2", "s-3"] {
        app.enroll(student, "bol", born_years_before_start(20)).await;
    }
    let offer = app.company_with_offer("lb-1", 1).await;
    let objected = app.propose("s-1", &offer).await;
    free_slots_become(&app, &offer, 0).await;

    let reasons = json!({"reasons": ["I found a placement closer to home"]});
    app.step(&objected, "object", &app.student_of(SCHOOL, "s-1"), reasons).await;
    free_slots_become(&app, &offer, 1).await;
    let withdrawn = app.propose("s-2", &offer).await;
    free_slots_become(&app, &offer, 0).await;

    let reason = json!({"reason": "the student moves to another programme"});
    app.step(&withdrawn, "withdraw", &app.school(), reason).await;
    free_slots_become(&app, &offer, 1).await;
    let third = app.propose("s-3", &offer).await;
    free_slots_become(&app, &offer, 0).await;
    settle(&app.pool).await;

    let offer_types = app.event_types_of(&offer).await;
    assert_eq!(count(&offer_types, "OfferSlotReserved"), 3, "{offer_types:?}");
    assert_eq!(count(&offer_types, "OfferSlotReleased"), 2, "one per ended match: {offer_types:?}");
    assert_eq!(view(&app, &third).await["status"], "proposed");
}

/// The key of the company's one `RecognitionSuspended` event, and its day.
async fn suspension_of(pool: &PgPool, company: &str) -> (String, chrono::NaiveDate) {
    let (sequence, recorded_at): (i64, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
        "SELECT sequence, recorded_at FROM events
          WHERE aggregate_type = 'company' AND aggregate_id = $1
            AND event_type = 'RecognitionSuspended'",
    )
    .bind(company)
    .fetch_one(pool)
    .await
    .expect("the suspension");
    (format!("company:{company}:{sequence}"), recorded_at.date_naive())
}

/// The `reaction_to` of each `RecognitionSuspensionNoticed` of a placement.
async fn noticed_causes(pool: &PgPool, placement: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT payload->'RecognitionSuspensionNoticed'->>'reaction_to' FROM events
          WHERE aggregate_id = $1 AND event_type = 'RecognitionSuspensionNoticed'",
    )
    .bind(placement)
    .fetch_all(pool)
    .await
    .expect("notices")
}

#[tokio::test]
async fn d5_an_outbox_row_carried_out_again_records_nothing() {
    let app = spawn_app().await;
    let at_a = open_placements_at(&app, "lb-a", true).await;
    sbb_decides(&app, "lb-a", "suspend", SUSPENSION_REASON).await;
    for placement in at_a.all() {
        wait_for_event(&app.pool, placement, NOTICED).await;
    }
    settle(&app.pool).await;
    let (cause, on) = suspension_of(&app.pool, "lb-a").await;
    for placement in at_a.all() {
        assert_eq!(noticed_causes(&app.pool, placement).await, std::slice::from_ref(&cause));
    }
    let before = app.event_count().await;

    // What the process manager decided, once more: as after a crash between
    // carrying a row out and deleting it.
    let reaction = Reaction::RecognitionChanged {
        change: RecognitionChange::Suspended,
        reason: Reason::parse(SUSPENSION_REASON).expect("a reason"),
        on,
    };
    let command = serde_json::to_value(&reaction).expect("reaction json");
    for placement in at_a.all() {
        sqlx::query(
            "INSERT INTO reaction_outbox (reaction_to, aggregate_type, aggregate_id, command)
             VALUES ($1, 'placement', $2, $3)",
        )
        .bind(&cause)
        .bind(placement)
        .bind(&command)
        .execute(&app.pool)
        .await
        .expect("a repeated outbox row");
    }
    settle(&app.pool).await;

    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM reaction_outbox")
        .fetch_one(&app.pool)
        .await
        .expect("outbox");
    assert_eq!(left, 0, "the dispatcher carried the rows out");
    assert_eq!(app.event_count().await, before, "a repeated reaction records nothing");
    for placement in at_a.all() {
        let types = app.event_types_of(placement).await;
        assert_eq!(count(&types, NOTICED), 1, "{placement}: {types:?}");
    }
}

/// An application started again on an existing database, served on a new port;
/// its server (and with it the app's background workers) stops when dropped.
struct Restarted {
    base: String,
    client: reqwest::Client,
    auth: Authenticator,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Restarted {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Mirrors `spawn_app_with`, on the database `options` point at.
async fn start_again(options: PgConnectOptions) -> (PgPool, Restarted) {
    let pool = PgPoolOptions::new()
        .max_connections(12)
        .connect_with(options)
        .await
        .expect("connect to the same database");
    let mut config = ApiConfig::new(hs256_config());
    config.body_limit = 16 * 1024;
    let app = App::build(pool.clone(), config).await.expect("build the app again");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = app.serve(listener, std::future::pending()).await;
    });
    let auth = Authenticator::new(&hs256_config()).expect("test authenticator");
    (pool, Restarted { base, client: reqwest::Client::new(), auth, server })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime")
}

/// Every aggregate's event types, in order: the whole record, to compare.
async fn all_event_types(pool: &PgPool) -> Vec<(String, Vec<String>)> {
    sqlx::query_as(
        "SELECT aggregate_id, array_agg(event_type ORDER BY sequence) FROM events
          GROUP BY aggregate_id ORDER BY aggregate_id",
    )
    .fetch_all(pool)
    .await
    .expect("events")
}

/// The crash: the first application runs on a runtime of its own, and that
/// runtime goes down with its server, sequencer, projectors and dispatcher.
/// Then the process manager's state is lost too (checkpoint at 0, placement
/// index empty), and a new application on the same database replays the log:
/// it decides every reaction again (suspension notices, a released slot, an
/// alternative offered), and none is recorded twice.
#[test]
fn d5_reactions_happen_exactly_once_across_a_crash_and_a_lost_checkpoint() {
    let first = runtime();
    let (options, at_a, offer_a, recorded) = first.block_on(async {
        let app = spawn_app().await;
        let at_a = open_placements_at(&app, "lb-a", true).await;
        app.enroll("s-4", "bol", born_years_before_start(20)).await;
        let offer_b = app.company_with_offer("lb-b", 2).await;
        sbb_decides(&app, "lb-a", "suspend", SUSPENSION_REASON).await;
        for placement in at_a.all() {
            wait_for_event(&app.pool, placement, NOTICED).await;
        }
        // s-1 objects (the slot goes back) and the school finds s-1 a placement at B.
        let reasons = json!({"reasons": ["the company is under investigation"]});
        app.step(&at_a.proposed, "object", &app.student_of(SCHOOL, "s-1"), reasons).await;
        wait_for_event(&app.pool, &at_a.offer, "OfferSlotReleased").await;
        let response = app
            .post(
                "/v1/placements",
                &app.school(),
                json!({"student_id": "s-1", "offer_id": offer_b, "replaces": at_a.proposed}),
            )
            .await;
        ok_json(response, StatusCode::CREATED).await;
        wait_for_event(&app.pool, &at_a.proposed, "AlternativePlacementOffered").await;
        settle(&app.pool).await;
        let options = (*app.pool.connect_options()).clone();
        let recorded = all_event_types(&app.pool).await;
        let offer_a = at_a.offer.clone();
        (options, at_a.all().map(str::to_owned), offer_a, recorded)
    });
    drop(first);

    let second = runtime();
    second.block_on(async {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .expect("connect after the crash");
        sqlx::query("UPDATE projection_checkpoints SET position = 0 WHERE name = $1")
            .bind(REACTIONS)
            .execute(&admin)
            .await
            .expect("lose the checkpoint");
        sqlx::query("TRUNCATE reaction_placements").execute(&admin).await.expect("lose the index");

        let (pool, restarted) = start_again(options).await;
        // It catches up: at the head, with the replayed decisions carried out.
        let deadline = Instant::now() + PATIENCE;
        loop {
            let replayed: i64 =
                sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1")
                    .bind(REACTIONS)
                    .fetch_one(&pool)
                    .await
                    .expect("checkpoint");
            if replayed >= head(&pool).await {
                break;
            }
            assert!(Instant::now() < deadline, "the replay did not reach the head in time");
            tokio::time::sleep(STEP).await;
        }
        settle(&pool).await;

        // The log was replayed: the process manager knows the open placements
        // again (the agreed and active ones at A, the alternative at B).
        let indexed: i64 = sqlx::query_scalar("SELECT count(*) FROM reaction_placements")
            .fetch_one(&pool)
            .await
            .expect("index");
        assert_eq!(indexed, 3);
        assert_eq!(all_event_types(&pool).await, recorded, "the replay recorded nothing");
        for placement in &at_a {
            let types = event_types(&pool, placement).await;
            assert_eq!(count(&types, NOTICED), 1, "{placement}: {types:?}");
        }
        let proposed = event_types(&pool, &at_a[0]).await;
        assert_eq!(count(&proposed, "AlternativePlacementOffered"), 1, "{proposed:?}");
        let offer = event_types(&pool, &offer_a).await;
        assert_eq!(count(&offer, "OfferSlotReleased"), 1, "{offer:?}");

        // The restarted application serves the open ones as at risk, as before.
        let school = restarted.auth.mint("tester", Role::School, Some(SCHOOL.into()), None, 600);
        let position = head(&pool).await;
        let page = restarted
            .client
            .get(format!(
                "{}/v1/placements?needs_attention=true&min_position={position}",
                restarted.base
            ))
            .bearer_auth(school.expect("mint"))
            .send()
            .await
            .expect("request");
        let page = ok_json(page, StatusCode::OK).await;
        assert_eq!(attention_items(&page), sorted(&[&at_a[1], &at_a[2]], &json!("suspended")));
        drop(restarted);
    });
}
