//! The API conventions every operation follows: problems for bad input with
//! nothing recorded, idempotent POSTs, If-Match, ETags, compression, request ids,
//! and no lost update under concurrency.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{company, grant, position_of, problem, reason, spawn_app};

#[tokio::test]
async fn bad_bodies_are_problems_and_record_nothing() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    app.recognised_company("lb-1").await;
    let before = app.event_count().await;
    let send = |path: &str, body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url(path))
            .bearer_auth(&sbb)
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let malformed = problem(
        send("/v1/companies", "{\"company_id\": ", "application/json").await.expect("send"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(malformed["detail"].as_str().is_some_and(|d| d.contains("malformed JSON")));

    let wrong_type = problem(
        send(
            "/v1/companies",
            r#"{"company_id": 5, "name": "x", "sector": "y", "region": "z"}"#,
            "application/json",
        )
        .await
        .expect("send"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(wrong_type["errors"][0]["field"], "company_id");

    let unknown = problem(
        send(
            "/v1/companies/lb-1/suspend",
            r#"{"reason": "x", "colour": "red"}"#,
            "application/json",
        )
        .await
        .expect("send"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        unknown["errors"][0]["message"].as_str().is_some_and(|m| m.contains("colour")),
        "{unknown}"
    );

    let missing = problem(
        send("/v1/companies/lb-1/suspend", "{}", "application/json").await.expect("send"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        missing["errors"][0]["message"].as_str().is_some_and(|m| m.contains("reason")),
        "{missing}"
    );

    problem(
        send("/v1/companies/lb-1/suspend", r#"{"reason": "x"}"#, "text/plain").await.expect("send"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;

    let invalid = problem(
        app.post("/v1/companies", &sbb, json!({"company_id": "a/b", "name": " ", "sector": "s", "region": "r", "location": {"lat": 95.0, "lon": 5.0}})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let fields: HashSet<&str> = invalid["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        HashSet::from(["company_id", "name", "location"]),
        "every invalid field is named"
    );

    let crebo = problem(
        app.post(
            "/v1/companies/lb-1/recognitions",
            &sbb,
            json!({"qualification": "2518", "valid_until": "2027-01-01"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(crebo["errors"][0]["field"], "qualification");
    let date = problem(
        app.post(
            "/v1/companies/lb-1/recognitions",
            &sbb,
            json!({"qualification": "25180", "valid_until": "next year"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(date["errors"][0]["field"], "valid_until");

    let huge = json!({"reason": "x".repeat(20 * 1024)});
    problem(
        app.post("/v1/companies/lb-1/suspend", &sbb, huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    let too_long_reason = json!({"reason": "x".repeat(2001)});
    problem(
        app.post("/v1/companies/lb-1/suspend", &sbb, too_long_reason).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    assert_eq!(app.event_count().await, before, "bad input recorded an event");
}

#[tokio::test]
async fn a_retried_post_with_the_same_idempotency_key_records_nothing_new() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    app.recognised_company("lb-2").await;
    let send = |key: &'static str, body: Value| {
        app.client
            .post(app.url("/v1/companies/lb-2/suspend"))
            .bearer_auth(&sbb)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = send("key-1", reason()).await.expect("send");
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first_body: Value = first.json().await.expect("json");
    let after_first = app.event_count().await;

    let retry = send("key-1", reason()).await.expect("send");
    assert_eq!(
        retry.status(),
        StatusCode::ACCEPTED,
        "the retry gets the first response, not 'already suspended'"
    );
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.json::<Value>().await.expect("json"), first_body);
    assert_eq!(app.event_count().await, after_first, "the retry recorded an event");

    problem(
        send("key-1", json!({"reason": "another body"})).await.expect("send"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    problem(
        app.post_with(
            "/v1/companies/lb-2/suspend",
            &sbb,
            ("idempotency-key", "bad key with spaces"),
            reason(),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(app.event_count().await, after_first);
}

#[tokio::test]
async fn if_match_guards_the_version() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    app.recognised_company("lb-3").await;
    let before = app.event_count().await;
    let stale =
        app.post_with("/v1/companies/lb-3/suspend", &sbb, ("if-match", "\"1\""), reason()).await;
    let refused = problem(stale, StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(refused["current_version"], 2);
    assert_eq!(app.event_count().await, before);
    problem(
        app.post_with("/v1/companies/lb-3/suspend", &sbb, ("if-match", "soon"), reason()).await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    let current =
        app.post_with("/v1/companies/lb-3/suspend", &sbb, ("if-match", "\"2\""), reason()).await;
    assert_eq!(current.status(), StatusCode::ACCEPTED);
    assert_eq!(current.headers()["etag"], "\"3\"");
    let any =
        app.post_with("/v1/companies/lb-3/reinstate", &sbb, ("if-match", "*"), reason()).await;
    assert_eq!(any.status(), StatusCode::ACCEPTED, "If-Match: * takes any current version");
}

/// Many SBB clients change one company at once: every accepted command has
/// exactly one event, versions are dense, nothing is lost.
#[tokio::test]
async fn concurrent_commands_on_one_company_lose_no_update() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    app.post("/v1/companies", &sbb, company("busy", "Utrecht")).await;
    let codes: Vec<String> = (0..16).map(|i| format!("{:05}", 25000 + i)).collect();
    let requests =
        codes.iter().map(|code| app.post("/v1/companies/busy/recognitions", &sbb, grant(code)));
    let responses = futures::future::join_all(requests).await;
    let mut versions = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::ACCEPTED, "no update may be lost");
        versions.push(
            response.json::<Value>().await.expect("json")["version"].as_i64().expect("version"),
        );
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=17).collect::<Vec<i64>>(), "each command got its own version");
    let sequences: Vec<i64> = sqlx::query_scalar(
        "SELECT sequence FROM events WHERE aggregate_id = 'busy' ORDER BY sequence",
    )
    .fetch_all(&app.pool)
    .await
    .expect("sequences");
    assert_eq!(sequences, (1..=17).collect::<Vec<i64>>());

    // With If-Match on the same version, exactly one wins; the rest get 412.
    let pinned = (0..8).map(|_| {
        app.client
            .post(app.url("/v1/companies/busy/suspend"))
            .bearer_auth(&sbb)
            .header("if-match", "\"17\"")
            .json(&reason())
            .send()
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(pinned)
        .await
        .into_iter()
        .map(|r| r.expect("send").status())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::ACCEPTED).count(), 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == StatusCode::ACCEPTED
            || *s == StatusCode::PRECONDITION_FAILED
            || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    assert_eq!(app.event_count().await, 18);
}

#[tokio::test]
async fn reads_carry_etags_and_honour_if_none_match() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    let position = app.recognised_company("lb-4").await;
    let first = app.get(&format!("/v1/companies/lb-4?min_position={position}"), &sbb).await;
    let tag = first.headers()["etag"].clone();
    let again = app
        .client
        .get(app.url("/v1/companies/lb-4"))
        .bearer_auth(&sbb)
        .header("if-none-match", tag)
        .send()
        .await
        .expect("send");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    let list = app.get("/v1/companies", &sbb).await;
    let list_tag = list.headers()["etag"].clone();
    let unchanged = app
        .client
        .get(app.url("/v1/companies"))
        .bearer_auth(&sbb)
        .header("if-none-match", list_tag.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    let suspended = app.post("/v1/companies/lb-4/suspend", &sbb, reason()).await;
    let position = position_of(suspended).await;
    let changed = app
        .client
        .get(app.url(&format!("/v1/companies?min_position={position}")))
        .bearer_auth(&sbb)
        .header("if-none-match", list_tag)
        .send()
        .await
        .expect("send");
    assert_eq!(changed.status(), StatusCode::OK, "a changed list is sent again");
}

#[tokio::test]
async fn min_position_beyond_the_log_is_a_problem_at_once_not_a_hang() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    let head = app.recognised_company("lb-5").await;
    // No response ever handed out this position: a client's mistake, answered
    // at once rather than after the projection wait (5 s in the test app).
    let started = std::time::Instant::now();
    let response = app.get(&format!("/v1/companies/lb-5?min_position={}", head + 1000), &sbb).await;
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["errors"][0]["field"], "min_position", "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "not a wait");
    // The head itself is a position to wait for.
    let at_head = app.get(&format!("/v1/companies/lb-5?min_position={head}"), &sbb).await;
    assert_eq!(at_head.status(), StatusCode::OK);
    problem(
        app.get("/v1/companies/lb-5?min_position=-1", &sbb).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

#[tokio::test]
async fn responses_are_compressed_when_asked_and_carry_a_request_id() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    for i in 0..20 {
        app.post("/v1/companies", &sbb, company(&format!("c{i:02}"), "Utrecht")).await;
    }
    let response = app
        .client
        .get(app.url("/v1/events?limit=100"))
        .bearer_auth(&sbb)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert!(response.headers().get("x-request-id").is_some_and(|id| !id.is_empty()));
    let echoed = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("send");
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn_app().await;
    problem(app.get("/v1/nothing-here", &app.sbb()).await, StatusCode::NOT_FOUND).await;
    let wrong_method = app
        .client
        .delete(app.url("/v1/companies"))
        .bearer_auth(app.sbb())
        .send()
        .await
        .expect("send");
    problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test]
async fn health_endpoints_answer() {
    let app = spawn_app().await;
    let live = app.client.get(app.url("/health/live")).send().await.expect("send");
    assert_eq!(live.status(), StatusCode::OK);
    let ready: Value = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], "ok");
}
