//! The CloudEvents feed: cursor, filters, long-poll, and who sees what.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{company, problem, reason, spawn_app};

async fn page(app: &crate::helpers::TestApp, query: &str, token: &str) -> Value {
    let response = app.get(&format!("/v1/events{query}"), token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

fn types(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn sbb_pulls_recognition_events_as_cloudevents_with_a_cursor() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    app.recognised_company("lb-1").await;
    app.post("/v1/companies/lb-1/suspend", &sbb, reason()).await;
    app.post("/v1/companies/lb-1/reinstate", &sbb, reason()).await;
    let last = app.post("/v1/companies/lb-1/revoke", &sbb, reason()).await;
    let last_position =
        last.json::<Value>().await.expect("json")["position"].as_i64().expect("position");

    let all = page(&app, "", &sbb).await;
    assert_eq!(
        types(&all),
        [
            "nl.stagepact.company.company_registered",
            "nl.stagepact.company.recognition_granted",
            "nl.stagepact.company.recognition_suspended",
            "nl.stagepact.company.recognition_reinstated",
            "nl.stagepact.company.recognition_revoked",
        ]
    );
    let events = all["events"].as_array().expect("events");
    let positions: Vec<i64> =
        events.iter().map(|e| e["position"].as_i64().expect("position")).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "positions increase: {positions:?}");
    assert_eq!(all["next"], last_position);
    let suspended = &events[2];
    assert_eq!(suspended["specversion"], "1.0");
    assert_eq!(suspended["id"], "company:lb-1:3");
    assert_eq!(suspended["source"], "/v1/companies/lb-1");
    assert_eq!(suspended["subject"], "lb-1");
    assert_eq!(suspended["datacontenttype"], "application/json");
    assert_eq!(suspended["dataschema"], "/schemas/company/recognition_suspended.v1.json");
    assert_eq!(suspended["data"]["reason"], "signals from two schools");
    assert!(suspended["time"].as_str().is_some_and(|t| t.contains('T')));

    // The dataschema is served.
    let schema = app
        .client
        .get(app.url("/schemas/company/recognition_suspended.v1.json"))
        .send()
        .await
        .expect("send");
    assert_eq!(schema.status(), StatusCode::OK);
    let schema: Value = schema.json().await.expect("json");
    assert_eq!(schema["x-cloudevents-type"], "nl.stagepact.company.recognition_suspended");

    // "after" is exclusive and "limit" bounds the page.
    let second = positions[1];
    let rest = page(&app, &format!("?after={second}&limit=2"), &sbb).await;
    assert_eq!(rest["events"].as_array().map(Vec::len), Some(2));
    assert_eq!(rest["events"][0]["position"].as_i64(), Some(positions[2]));
    assert_eq!(rest["next"].as_i64(), Some(positions[3]));
    let end = page(&app, &format!("?after={last_position}"), &sbb).await;
    assert_eq!(end["events"].as_array().map(Vec::len), Some(0));
    assert_eq!(end["next"], last_position, "an empty page keeps the cursor");

    let filtered = page(
        &app,
        "?type=nl.stagepact.company.recognition_suspended&type=nl.stagepact.company.recognition_revoked",
        &sbb,
    )
    .await;
    assert_eq!(
        types(&filtered),
        ["nl.stagepact.company.recognition_suspended", "nl.stagepact.company.recognition_revoked"]
    );
}

#[tokio::test]
async fn the_feed_shows_each_role_what_it_may_see() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    app.recognised_company("own").await;
    app.recognised_company("other").await;
    app.post("/v1/companies/other/suspend", &sbb, reason()).await;

    let as_company = page(&app, "", &app.company("own")).await;
    let subjects: Vec<&str> = as_company["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["subject"].as_str())
        .collect();
    assert_eq!(subjects, ["own", "own"], "a company sees only its own events");
    let head = page(&app, "", &sbb).await["next"].clone();
    assert_eq!(as_company["next"], head, "the cursor moves past events the caller does not see");

    let as_school =
        page(&app, "?type=nl.stagepact.company.recognition_suspended", &app.school()).await;
    let suspended = &as_school["events"][0];
    assert_eq!(suspended["subject"], "other");
    assert!(
        suspended["data"].get("reason").is_none(),
        "a school does not see SBB's reason: {suspended}"
    );

    problem(app.get("/v1/events", &app.student()).await, StatusCode::FORBIDDEN).await;
    problem(app.get("/v1/events", &app.monitor()).await, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_a_matching_event_exists() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    app.recognised_company("lb-2").await;
    let head = page(&app, "", &sbb).await["next"].as_i64().expect("next");

    let poll = {
        let client = app.client.clone();
        let url = app.url(&format!(
            "/v1/events?after={head}&wait=20&type=nl.stagepact.company.recognition_suspended"
        ));
        let token = sbb.clone();
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("send")
                .json::<Value>()
                .await
                .expect("json")
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A non-matching event does not end the poll; the matching one does.
    app.post("/v1/companies", &sbb, company("lb-3", "Utrecht")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "the poll ended on an event it did not ask for");
    app.post("/v1/companies/lb-2/suspend", &sbb, reason()).await;
    let answered = tokio::time::timeout(Duration::from_secs(15), poll)
        .await
        .expect("the poll answered")
        .expect("task");
    assert_eq!(types(&answered), ["nl.stagepact.company.recognition_suspended"]);
}

/// A follower at the head polls again as soon as it has its page: the feed
/// answers it with what 50 ms brought (as `listEvents` documents), not with
/// each event on its own, so a busy log costs each follower at most one read
/// per 50 ms. A page that is full, or a call without `wait`, is not held.
#[tokio::test]
async fn a_long_poll_gathers_a_page_that_is_not_full_for_50_ms() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    let head = page(&app, "", &sbb).await["next"].as_i64().expect("next");
    app.recognised_company("lb-4").await;
    let recorded = types(&page(&app, &format!("?after={head}"), &sbb).await);
    assert!(recorded.len() >= 2, "registering and recognising record events: {recorded:?}");

    let sent = std::time::Instant::now();
    let gathered = page(&app, &format!("?after={head}&wait=20"), &sbb).await;
    assert!(
        sent.elapsed() >= Duration::from_millis(50),
        "a page that is not full was answered before 50 ms had passed: {:?}",
        sent.elapsed()
    );
    assert_eq!(types(&gathered), recorded, "the gathered page holds every event after `after`");

    // A full page: the first event, and a cursor at it (not past the rest).
    let full = page(&app, &format!("?after={head}&wait=20&limit=1"), &sbb).await;
    assert_eq!(types(&full), &recorded[..1]);
    assert_eq!(full["next"], full["events"][0]["position"]);
}

#[tokio::test]
async fn bad_feed_queries_are_problems() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    for query in [
        "?limit=0",
        "?limit=1001",
        "?after=-1",
        "?after=x",
        "?wait=31",
        "?type=nl.stagepact.company.nope",
        "?colour=red",
    ] {
        problem(
            app.get(&format!("/v1/events{query}"), &sbb).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let ok = page(&app, "?limit=1000&wait=0", &sbb).await;
    assert_eq!(ok["next"], 0);
}
