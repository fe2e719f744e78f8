//! Limits that keep one caller from exhausting the service: requests per
//! token and per address (429 with `Retry-After`), and bodies nested too
//! deep to read. A refused request records nothing.

use reqwest::StatusCode;
use stagepact_api::{Rate, RateLimits};

use crate::helpers::{company, hs256_config, problem, spawn_app, spawn_app_configured};

/// `n` requests to read company `100012345` as `token`, one after another:
/// their statuses.
async fn reads(app: &crate::helpers::TestApp, token: &str, n: usize) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(app.get("/v1/companies/100012345", token).await.status());
    }
    statuses
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    let slow = Rate { per_second: 1, burst: 3 };
    let app = spawn_app_configured(hs256_config(), |config| {
        config.rate_limits = RateLimits { per_token: Some(slow), per_address: None };
    })
    .await;
    let sbb = app.sbb();
    let statuses = reads(&app, &sbb, 4).await;
    assert_eq!(statuses[..3], [StatusCode::NOT_FOUND; 3], "the burst is served");
    let refused = app.get("/v1/companies/100012345", &sbb).await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body = problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["title"], "Too many requests");
    assert!(body["type"].as_str().is_some_and(|t| t.ends_with("rate-limited")), "{body}");

    // Another token has its own budget; a refused command records nothing.
    assert_eq!(reads(&app, &app.monitor(), 1).await, [StatusCode::FORBIDDEN]);
    let before = app.event_count().await;
    let response = app.post("/v1/companies", &sbb, company("100012345", "Utrecht")).await;
    problem(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn an_address_over_its_rate_gets_429_whatever_its_tokens() {
    let slow = Rate { per_second: 1, burst: 4 };
    let app = spawn_app_configured(hs256_config(), |config| {
        config.rate_limits = RateLimits { per_token: None, per_address: Some(slow) };
    })
    .await;
    let tokens = [app.sbb(), app.monitor(), app.school(), app.student(), app.company("1")];
    let mut statuses = Vec::new();
    for token in &tokens {
        statuses.extend(reads(&app, token, 1).await);
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count(), 1);
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS, "the fifth, from the same address");
    // Without a token too: the address counts.
    let anonymous = app.client.get(app.url("/health/live")).send().await.expect("request");
    assert_eq!(anonymous.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_body_nested_too_deep_is_a_problem_and_records_nothing() {
    let app = spawn_app().await;
    let before = app.event_count().await;
    // 2,000 levels: past serde_json's recursion limit, inside the body limit.
    let deep = format!("{}{}", "[".repeat(2_000), "]".repeat(2_000));
    let body = format!(
        r#"{{"company_id": "100012345", "name": "Deep", "sector": {deep}, "region": "Utrecht"}}"#
    );
    let response = app
        .client
        .post(app.url("/v1/companies"))
        .bearer_auth(app.sbb())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    assert!(status.is_client_error(), "{status}");
    let body = problem(response, status).await;
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    assert_eq!(app.event_count().await, before);
}
