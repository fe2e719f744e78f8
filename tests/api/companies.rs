//! Company recognition through the API: rules S1 and D5, the registry, and who
//! may do and see what.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{company, grant, position_of, problem, reason, spawn_app};

#[tokio::test]
async fn s1_sbb_registers_and_recognises_a_company_per_qualification() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    let registered = app.post("/v1/companies", &sbb, company("100012345", "Utrecht")).await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    assert_eq!(registered.headers()["location"], "/v1/companies/100012345");
    assert_eq!(registered.headers()["etag"], "\"1\"");
    let body: Value = registered.json().await.expect("json");
    assert_eq!(body["version"], 1);
    let first = body["position"].as_i64().expect("position");

    let granted = app.post("/v1/companies/100012345/recognitions", &sbb, grant("25180")).await;
    assert_eq!(granted.status(), StatusCode::ACCEPTED);
    let body: Value = granted.json().await.expect("json");
    assert_eq!(body["version"], 2);
    let position = body["position"].as_i64().expect("position");
    assert!(position > first, "positions increase along the log");

    let read = app.get(&format!("/v1/companies/100012345?min_position={position}"), &sbb).await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.headers()["etag"], "\"2\"");
    let view: Value = read.json().await.expect("json");
    assert_eq!(view["status"], "active");
    assert_eq!(view["version"], 2);
    assert_eq!(view["recognitions"][0]["qualification"], "25180");
    assert_eq!(view["recognitions"][0]["status"], "active");
    assert_eq!(view["name"], "Leerbedrijf 100012345");
}

#[tokio::test]
async fn d5_suspend_reinstate_and_revoke_change_the_registry() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    app.recognised_company("lb-1").await;
    // A suspension during an investigation names it (D5).
    let opened = app.post("/v1/investigations", &sbb, json!({"company_id": "lb-1"})).await;
    assert_eq!(opened.status(), StatusCode::CREATED);
    let investigation = opened.json::<Value>().await.expect("json")["investigation_id"].clone();
    let suspended = app
        .post(
            "/v1/companies/lb-1/suspend",
            &sbb,
            json!({"reason": "investigation", "investigation_id": investigation}),
        )
        .await;
    assert_eq!(suspended.status(), StatusCode::ACCEPTED);
    let position = position_of(suspended).await;
    let view: Value = app.company_at("lb-1", position, &sbb).await;
    assert_eq!(view["status"], "suspended");
    assert_eq!(view["recognitions"][0]["status"], "suspended");
    assert_eq!(view["suspension"]["reason"], "investigation");

    let reinstated = app.post("/v1/companies/lb-1/reinstate", &sbb, reason()).await;
    assert_eq!(reinstated.status(), StatusCode::ACCEPTED);
    let position = position_of(reinstated).await;
    let view: Value = app.company_at("lb-1", position, &sbb).await;
    assert_eq!(view["status"], "active");
    assert!(view.get("suspension").is_none());

    let revoked = app.post("/v1/companies/lb-1/revoke", &sbb, reason()).await;
    assert_eq!(revoked.status(), StatusCode::ACCEPTED);
    let position = position_of(revoked).await;
    let view: Value = app.company_at("lb-1", position, &sbb).await;
    assert_eq!(view["status"], "revoked");
    assert_eq!(view["recognitions"][0]["status"], "revoked");
}

#[tokio::test]
async fn d5_revoking_one_qualification_keeps_the_others() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    app.recognised_company("lb-2").await;
    assert_eq!(
        app.post("/v1/companies/lb-2/recognitions", &sbb, grant("25655")).await.status(),
        StatusCode::ACCEPTED
    );
    let revoked = app
        .post(
            "/v1/companies/lb-2/revoke",
            &sbb,
            json!({"reason": "no trainer", "qualification": "25655"}),
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::ACCEPTED);
    let position = position_of(revoked).await;
    let view: Value = app.company_at("lb-2", position, &sbb).await;
    assert_eq!(view["status"], "active");
    let statuses: Vec<(&str, &str)> = view["recognitions"]
        .as_array()
        .expect("array")
        .iter()
        .map(|r| (r["qualification"].as_str().unwrap_or(""), r["status"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(statuses, vec![("25180", "active"), ("25655", "revoked")]);
}

/// Each invalid transition is a problem naming the rule, and records nothing.
#[tokio::test]
async fn d5_invalid_transitions_are_refused_and_record_nothing() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    app.recognised_company("lb-3").await;
    app.post("/v1/companies", &sbb, company("lb-revoked", "Utrecht")).await;
    app.post("/v1/companies/lb-revoked/revoke", &sbb, reason()).await;
    app.post("/v1/companies", &sbb, company("lb-suspended", "Utrecht")).await;
    app.post("/v1/companies/lb-suspended/suspend", &sbb, reason()).await;

    let cases = [
        ("/v1/companies/unknown/suspend", reason(), StatusCode::NOT_FOUND, None),
        ("/v1/companies/lb-revoked/suspend", reason(), StatusCode::CONFLICT, Some("S1")),
        ("/v1/companies/lb-suspended/suspend", reason(), StatusCode::CONFLICT, Some("D5")),
        ("/v1/companies/lb-3/reinstate", reason(), StatusCode::CONFLICT, Some("D5")),
        ("/v1/companies/lb-revoked/recognitions", grant("25180"), StatusCode::CONFLICT, Some("S1")),
        (
            "/v1/companies/lb-suspended/recognitions",
            grant("25180"),
            StatusCode::CONFLICT,
            Some("D5"),
        ),
        ("/v1/companies/lb-revoked/revoke", reason(), StatusCode::CONFLICT, Some("S1")),
        (
            "/v1/companies/lb-3/revoke",
            json!({"reason": "x", "qualification": "99999"}),
            StatusCode::CONFLICT,
            Some("S1"),
        ),
        ("/v1/companies", company("lb-3", "Utrecht"), StatusCode::CONFLICT, None),
    ];
    let before = app.event_count().await;
    for (path, body, status, rule) in cases {
        let refused = problem(app.post(path, &sbb, body).await, status).await;
        assert_eq!(refused["rule"].as_str(), rule, "{path}: {refused}");
    }
    assert_eq!(app.event_count().await, before, "a refused command recorded an event");
}

#[tokio::test]
async fn s1_a_recognition_runs_at_most_four_years() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    app.post("/v1/companies", &sbb, company("lb-4", "Utrecht")).await;
    let too_long = chrono::Utc::now().date_naive() + chrono::Days::new(4 * 366 + 2);
    let before = app.event_count().await;
    let refused = problem(
        app.post(
            "/v1/companies/lb-4/recognitions",
            &sbb,
            json!({"qualification": "25180", "valid_until": too_long}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["rule"], "S1");
    assert_eq!(refused["errors"][0]["field"], "valid_until");
    let yesterday = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    problem(
        app.post(
            "/v1/companies/lb-4/recognitions",
            &sbb,
            json!({"qualification": "25180", "valid_until": yesterday}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn list_companies_filters_and_pages() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    for id in ["a1", "a2", "a3", "a4", "a5"] {
        app.recognised_company(id).await;
    }
    app.post("/v1/companies", &sbb, company("b1", "Groningen")).await;
    let last = app.post("/v1/companies/a2/suspend", &sbb, reason()).await;
    let position = position_of(last).await;

    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|c| c["company_id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let page: Value = app
        .get(&format!("/v1/companies?limit=2&min_position={position}"), &sbb)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(ids(&page), ["a1", "a2"]);
    assert_eq!(page["next"], "a2");
    let page: Value =
        app.get("/v1/companies?limit=2&after=a2", &sbb).await.json().await.expect("json");
    assert_eq!(ids(&page), ["a3", "a4"]);
    let page: Value =
        app.get("/v1/companies?limit=2&after=a4", &sbb).await.json().await.expect("json");
    assert_eq!(ids(&page), ["a5", "b1"]);
    assert!(page.get("next").is_none(), "last page has no next");

    let page: Value =
        app.get("/v1/companies?region=Groningen", &sbb).await.json().await.expect("json");
    assert_eq!(ids(&page), ["b1"]);
    let page: Value =
        app.get("/v1/companies?status=suspended", &sbb).await.json().await.expect("json");
    assert_eq!(ids(&page), ["a2"]);
    let page: Value =
        app.get("/v1/companies?status=unrecognised", &sbb).await.json().await.expect("json");
    assert_eq!(ids(&page), ["b1"]);
    let page: Value = app
        .get("/v1/companies?qualification=25180&status=active", &sbb)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(ids(&page), ["a1", "a3", "a4", "a5"]);
    let page: Value =
        app.get("/v1/companies?qualification=25655", &sbb).await.json().await.expect("json");
    assert_eq!(ids(&page), Vec::<String>::new());

    problem(app.get("/v1/companies?limit=0", &sbb).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    problem(
        app.get("/v1/companies?qualification=2518", &sbb).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(app.get("/v1/companies?status=sleeping", &sbb).await, StatusCode::BAD_REQUEST).await;
    problem(app.get("/v1/companies?colour=red", &sbb).await, StatusCode::BAD_REQUEST).await;
}

/// Only SBB changes recognition; every other role is refused and nothing is
/// recorded — also for a company acting on its own entry.
#[tokio::test]
async fn only_sbb_may_change_recognition() {
    let app = spawn_app().await;
    app.recognised_company("own-1").await;
    let callers =
        [app.school(), app.company("own-1"), app.company("other-9"), app.student(), app.monitor()];
    let commands = [
        ("/v1/companies", company("new-1", "Utrecht")),
        ("/v1/companies/own-1/recognitions", grant("25655")),
        ("/v1/companies/own-1/suspend", reason()),
        ("/v1/companies/own-1/reinstate", reason()),
        ("/v1/companies/own-1/revoke", reason()),
    ];
    let before = app.event_count().await;
    for token in &callers {
        for (path, body) in &commands {
            problem(app.post(path, token, body.clone()).await, StatusCode::FORBIDDEN).await;
        }
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn a_company_reads_only_its_own_entry_and_schools_do_not_see_sbbs_reasons() {
    let app = spawn_app().await;
    app.recognised_company("own-2").await;
    app.recognised_company("other-2").await;
    let suspended = app.post("/v1/companies/own-2/suspend", &app.sbb(), reason()).await;
    let position = position_of(suspended).await;

    let own: Value = app.company_at("own-2", position, &app.company("own-2")).await;
    assert_eq!(own["suspension"]["reason"], "signals from two schools");
    problem(app.get("/v1/companies/other-2", &app.company("own-2")).await, StatusCode::FORBIDDEN)
        .await;
    let listed: Value =
        app.get("/v1/companies", &app.company("own-2")).await.json().await.expect("json");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["items"][0]["company_id"], "own-2");

    let school: Value =
        app.get("/v1/companies/own-2", &app.school()).await.json().await.expect("json");
    assert_eq!(school["status"], "suspended");
    assert!(school.get("suspension").is_none(), "a school must not see SBB's reason");

    problem(app.get("/v1/companies/own-2", &app.student()).await, StatusCode::FORBIDDEN).await;
    problem(app.get("/v1/companies", &app.monitor()).await, StatusCode::FORBIDDEN).await;
    problem(app.get("/v1/companies/nobody", &app.sbb()).await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn m4_a_company_opts_out_of_matching_for_itself_only() {
    let app = spawn_app().await;
    app.recognised_company("lb-1").await;
    app.recognised_company("lb-2").await;
    let path = "/v1/companies/lb-1/matching-participation";
    let before = app.event_count().await;
    for token in [app.company("lb-2"), app.sbb(), app.school(), app.student(), app.monitor()] {
        let response = app.post(path, &token, json!({"participates": false})).await;
        problem(response, StatusCode::FORBIDDEN).await;
    }
    let response = app.post(path, &app.company("lb-1"), json!({"participates": "no"})).await;
    problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    // Taking part is the default: saying so records nothing.
    let same = app.post(path, &app.company("lb-1"), json!({"participates": true})).await;
    assert_eq!(same.status(), StatusCode::ACCEPTED);
    assert_eq!(app.event_count().await, before, "refusals and no-ops record nothing");
    let out = app.post(path, &app.company("lb-1"), json!({"participates": false})).await;
    let position = position_of(out).await;
    let view = app.company_at("lb-1", position, &app.sbb()).await;
    assert_eq!(view["participates_in_matching"], false);
    let other = app.company_at("lb-2", position, &app.sbb()).await;
    assert_eq!(other["participates_in_matching"], true);
}
