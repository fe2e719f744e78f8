//! The reporting point through the API (D1-D6, C4): filing, follow-up,
//! anonymised signals, escalation, SBB's investigations — and the data
//! protection of DESIGN §6: content sealed at rest, erasure by deleting the
//! student's key, and nothing that identifies a student reaching SBB or a company.

use chrono::Days;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stagepact_domain::report::{Filing, Ground, Report, ReportCommand, ReportKind};
use stagepact_domain::student::student_key;
use stagepact_domain::values::{CompanyId, Description, SchoolId, StudentNumber};
use uuid::Uuid;

use crate::fixtures::*;
use crate::helpers::{TestApp, problem, spawn_app};

const COMPANY: &str = "100012345";
const OTHER_COMPANY: &str = "100067890";
const DESCRIPTION: &str = "The trainer said they do not take interns with my background.";

fn discrimination(company: &str) -> Value {
    json!({
        "kind": "discrimination", "grounds": ["origin", "religion"], "company_id": company,
        "description": DESCRIPTION, "wants_replacement_placement": true,
        "consent_to_forward": true,
    })
}

impl TestApp {
    /// Student `student_id` of `SCHOOL` files `body`; the report id.
    async fn file(&self, student_id: &str, body: Value) -> String {
        let response = self.post("/v1/reports", &self.student_of(SCHOOL, student_id), body).await;
        let body = ok_json(response, StatusCode::CREATED).await;
        body["report_id"].as_str().expect("report id").to_owned()
    }

    /// POSTs a report step as `token` and checks it is accepted; the body.
    async fn report_step(&self, report: &str, step: &str, token: &str, body: Value) -> Value {
        let response = self.post(&format!("/v1/reports/{report}/{step}"), token, body).await;
        ok_json(response, StatusCode::ACCEPTED).await
    }

    /// A report as `token` reads it once it reflects `position` (0: now).
    async fn report_at(&self, report: &str, position: i64, token: &str) -> Value {
        let response =
            self.get(&format!("/v1/reports/{report}?min_position={position}"), token).await;
        ok_json(response, StatusCode::OK).await
    }

    /// Runs a delivery round to SBB with the signal release (the server does it
    /// daily), once the case files show everything recorded so far; the head after.
    async fn release(&self) -> i64 {
        let head = self.stamped_head().await;
        let wait = std::time::Duration::from_secs(5);
        let caught_up = self.state.projections.await_position("cases", head, wait).await;
        assert!(caught_up.expect("checkpoint"), "the case files caught up");
        stagepact_api::delivery::deliver(&self.state, true).await.expect("delivered");
        self.stamped_head().await
    }

    /// Waits until a reaction has recorded `event_type` on `aggregate_id`.
    async fn await_event(&self, aggregate_id: &str, event_type: &str) {
        let patience = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !self.event_types_of(aggregate_id).await.iter().any(|t| t == event_type) {
            assert!(tokio::time::Instant::now() < patience, "no {event_type} on {aggregate_id}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The whole feed as `token` sees it.
    async fn feed(&self, token: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let response = self.get(&format!("/v1/events?after={after}&limit=500"), token).await;
            let page = ok_json(response, StatusCode::OK).await;
            let batch = page["events"].as_array().cloned().unwrap_or_default();
            if batch.is_empty() {
                return events;
            }
            after = page["next"].as_i64().expect("next");
            events.extend(batch);
        }
    }
}

/// Asserts `response` is a problem with `status` naming `rule`, and that the
/// event count did not move.
async fn refused(
    app: &TestApp,
    response: reqwest::Response,
    status: StatusCode,
    rule: &str,
    before: i64,
) {
    let body = problem(response, status).await;
    assert_eq!(body["rule"], rule, "{body}");
    let after = app.event_count().await;
    if after != before {
        let newest: Vec<(String, String)> = sqlx::query_as(
            "SELECT aggregate_type, event_type FROM events ORDER BY log_position DESC NULLS FIRST LIMIT $1",
        )
        .bind(after - before)
        .fetch_all(&app.pool)
        .await
        .expect("events");
        panic!("a refusal records nothing, yet {newest:?} appeared");
    }
}

#[tokio::test]
async fn d1_d6_a_filed_report_tells_the_student_their_rights_and_reads_back_in_the_clear() {
    let app = spawn_app().await;
    app.recognised_company(COMPANY).await;
    let response =
        app.post("/v1/reports", &app.student_of(SCHOOL, "s-1"), discrimination(COMPANY)).await;
    let filed = ok_json(response, StatusCode::CREATED).await;
    let channels = filed["outside_channels"].as_array().expect("channels");
    assert_eq!(channels.len(), 4, "{filed}");
    for needle in ["anti-discrimination", "Inspectorate", "Human Rights", "Police"] {
        assert!(
            channels.iter().any(|c| c["name"].as_str().unwrap_or("").contains(needle)),
            "{needle}"
        );
    }
    assert!(filed["replacement_placement_right"].as_str().unwrap_or("").contains("replacement"));
    let id = filed["report_id"].as_str().expect("id");
    let position = filed["position"].as_i64().expect("position");
    for token in [app.student_of(SCHOOL, "s-1"), app.school()] {
        let report = app.report_at(id, position, &token).await;
        assert_eq!(report["description"], DESCRIPTION);
        assert_eq!(report["grounds"], json!(["religion", "origin"]));
        assert_eq!(report["status"], "open");
        assert_eq!(report["overdue"], false);
        assert_eq!(report["outside_channels"].as_array().map(Vec::len), Some(4));
    }
}

#[tokio::test]
async fn d2_a_discrimination_report_without_grounds_is_refused_and_records_nothing() {
    let app = spawn_app().await;
    app.recognised_company(COMPANY).await;
    let before = app.event_count().await;
    let mut body = discrimination(COMPANY);
    body["grounds"] = json!([]);
    let response = app.post("/v1/reports", &app.student_of(SCHOOL, "s-1"), body).await;
    refused(&app, response, StatusCode::UNPROCESSABLE_ENTITY, "D2", before).await;
    // Another kind needs no grounds (C4: a fee asked for a placement).
    let fee = json!({
        "kind": "placement_fee_requested", "company_id": COMPANY, "description": "They asked 300 euros.",
        "wants_replacement_placement": false, "consent_to_forward": false,
    });
    app.file("s-1", fee).await;
}

#[tokio::test]
async fn bad_report_input_is_a_problem_naming_the_field_and_records_nothing() {
    let app = spawn_app().await;
    app.recognised_company(COMPANY).await;
    let before = app.event_count().await;
    let student = app.student_of(SCHOOL, "s-1");
    let cases = [
        json!({"kind": "gossip", "company_id": COMPANY, "description": "x", "wants_replacement_placement": false, "consent_to_forward": false}),
        json!({"kind": "misuse", "grounds": ["height"], "company_id": COMPANY, "description": "x", "wants_replacement_placement": false, "consent_to_forward": false}),
        json!({"kind": "misuse", "company_id": COMPANY, "description": "  ", "wants_replacement_placement": false, "consent_to_forward": false}),
        json!({"kind": "misuse", "company_id": "999999999", "description": "x", "wants_replacement_placement": false, "consent_to_forward": false}),
        json!({"kind": "misuse", "company_id": COMPANY, "description": "x"}),
    ];
    for body in cases {
        let response = app.post("/v1/reports", &student, body.clone()).await;
        assert!(response.status().is_client_error(), "{body}: {}", response.status());
        problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn d1_a_report_names_only_the_students_own_placement() {
    let app = spawn_app().await;
    let placement = app.active_placement("s-1", COMPANY).await;
    app.enroll("s-2", "bol", born_years_before_start(20)).await;
    let before = app.event_count().await;
    let mut body = discrimination(COMPANY);
    body["placement_id"] = json!(placement);
    let response = app.post("/v1/reports", &app.student_of(SCHOOL, "s-2"), body.clone()).await;
    problem(response, StatusCode::FORBIDDEN).await;
    assert_eq!(app.event_count().await, before, "nothing recorded");
    // The student's own placement, at the company reported: accepted.
    let report = app.file("s-1", body).await;
    let read = app.report_at(&report, app.stamped_head().await, &app.school()).await;
    assert_eq!(read["placement_id"], json!(placement));
}

#[tokio::test]
async fn reports_are_read_and_followed_up_only_by_the_student_and_their_school() {
    let app = spawn_app().await;
    app.recognised_company(COMPANY).await;
    let report = app.file("s-1", discrimination(COMPANY)).await;
    let position = app.stamped_head().await;
    let outsiders = [
        app.student_of(SCHOOL, "s-2"),
        app.school_of(OTHER_SCHOOL),
        app.student_of(OTHER_SCHOOL, "s-1"),
        app.company(COMPANY),
        app.sbb(),
        app.monitor(),
    ];
    for token in &outsiders {
        let response =
            app.get(&format!("/v1/reports/{report}?min_position={position}"), token).await;
        problem(response, StatusCode::FORBIDDEN).await;
    }
    let before = app.event_count().await;
    let steps = [
        ("acknowledge", json!({})),
        (
            "conversations",
            json!({"form": "school_and_company", "held_on": today(), "safe_for_student": false}),
        ),
        ("consent", json!({"consent": false})),
        ("signal", json!({})),
        ("escalation", json!({"summary": "Signals of discrimination in recruitment."})),
        ("close", json!({"outcome": "resolved"})),
    ];
    for (step, body) in &steps {
        for token in &outsiders {
            let response =
                app.post(&format!("/v1/reports/{report}/{step}"), token, body.clone()).await;
            problem(response, StatusCode::FORBIDDEN).await;
        }
    }
    // The student does not follow up their own report; the school does not
    // change the student's consent.
    let student = app.student_of(SCHOOL, "s-1");
    let response =
        app.post(&format!("/v1/reports/{report}/acknowledge"), &student, json!({})).await;
    problem(response, StatusCode::FORBIDDEN).await;
    let response = app
        .post(&format!("/v1/reports/{report}/consent"), &app.school(), json!({"consent": false}))
        .await;
    problem(response, StatusCode::FORBIDDEN).await;
    assert_eq!(app.event_count().await, before, "no refused step recorded anything");
    // Lists: a school its own, a student their own, nobody else.
    let mine = ok_json(app.get("/v1/reports", &student).await, StatusCode::OK).await;
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1));
    let theirs =
        ok_json(app.get("/v1/reports", &app.student_of(SCHOOL, "s-2")).await, StatusCode::OK).await;
    assert_eq!(theirs["items"], json!([]));
    let other_school =
        ok_json(app.get("/v1/reports", &app.school_of(OTHER_SCHOOL)).await, StatusCode::OK).await;
    assert_eq!(other_school["items"], json!([]));
    for token in [app.company(COMPANY), app.sbb(), app.monitor()] {
        problem(app.get("/v1/reports", &token).await, StatusCode::FORBIDDEN).await;
    }
}

#[tokio::test]
async fn d3_a_triangle_conversation_needs_the_safety_check() {
    let app = spawn_app().await;
    app.recognised_company(COMPANY).await;
    let report = app.file("s-1", discrimination(COMPANY)).await;
    let before = app.event_count().await;
    let path = format!("/v1/reports/{report}/conversations");
    let unsafe_triangle =
        json!({"form": "triangle", "held_on": today(), "safe_for_student": false});
    let response = app.post(&path, &app.school(), unsafe_triangle).await;
    refused(&app, response, StatusCode::UNPROCESSABLE_ENTITY, "D3", before).await;
    let safe = json!({"form": "triangle", "held_on": today(), "safe_for_student": true});
    let done = app.report_step(&report, "conversations", &app.school(), safe).await;
    let read =
        app.report_at(&report, done["position"].as_i64().expect("position"), &app.school()).await;
    assert_eq!(read["conversations"][0]["form"], "triangle");
}

#[tokio::test]
async fn d4_a_report_is_closed_only_after_a_follow_up_step() {
    let app = spawn_app().await;
    app.recognised_company(COMPANY).await;
    let report = app.file("s-1", discrimination(COMPANY)).await;
    app.report_step(&report, "acknowledge", &app.school(), json!({})).await;
    let before = app.event_count().await;
    let close = format!("/v1/reports/{report}/close");
    let response = app.post(&close, &app.school(), json!({"outcome": "resolved"})).await;
    refused(&app, response, StatusCode::CONFLICT, "D4", before).await;
    let talk = json!({"form": "school_and_company", "held_on": today(), "safe_for_student": false});
    app.report_step(&report, "conversations", &app.school(), talk).await;
    let closed =
        app.report_step(&report, "close", &app.school(), json!({"outcome": "resolved"})).await;
    let read = app
        .report_at(
            &report,
            closed["position"].as_i64().expect("position"),
            &app.student_of(SCHOOL, "s-1"),
        )
        .await;
    assert_eq!(read["status"], "closed");
    assert_eq!(read["closed"]["outcome"], "resolved");
    // Closed: no more steps (D4), but the consent stays the student's.
    let before = app.event_count().await;
    let response = app.post(&close, &app.school(), json!({"outcome": "resolved"})).await;
    refused(&app, response, StatusCode::CONFLICT, "D4", before).await;
}

#[tokio::test]
async fn d4_an_unacknowledged_report_shows_as_overdue_in_the_schools_worklist() {
    let app = spawn_app().await;
    app.recognised_company(COMPANY).await;
    let fresh = app.file("s-1", discrimination(COMPANY)).await;
    // A report filed three weeks ago, recorded through the command bus (the
    // API dates filings today).
    let old = Uuid::new_v4();
    let cipher =
        app.state.vault.cipher_for(&student_key(&school(), &number("s-2"))).await.expect("key");
    let filing = Filing {
        school: school(),
        student_id: number("s-2"),
        company_id: CompanyId::parse(COMPANY).expect("valid"),
        placement_id: None,
        kind: ReportKind::Misuse,
        description: Description::parse("I run the shop alone every Saturday.").expect("valid"),
        grounds: vec![],
        wants_replacement_placement: false,
        consent_to_forward: false,
        filed_on: today() - Days::new(21),
    };
    let committed = app
        .state
        .bus
        .execute::<Report>(
            &old.to_string(),
            ReportCommand::File { filing, cipher, placement_company: None },
            None,
            Default::default(),
        )
        .await
        .expect("filed");
    let position = committed.position.expect("position");
    let worklist = |query: &'static str| {
        let app = &app;
        async move {
            let response = app
                .get(&format!("/v1/reports?{query}&min_position={position}"), &app.school())
                .await;
            let page = ok_json(response, StatusCode::OK).await;
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|r| r["report_id"].as_str().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(worklist("overdue=true").await, vec![old.to_string()]);
    let mut open = worklist("open=true").await;
    open.sort();
    let mut expected = vec![old.to_string(), fresh.clone()];
    expected.sort();
    assert_eq!(open, expected);
    let report = app.report_at(&old.to_string(), position, &app.school()).await;
    assert_eq!(report["overdue"], true);
    let acknowledged =
        app.report_step(&old.to_string(), "acknowledge", &app.school(), json!({})).await;
    let position = acknowledged["position"].as_i64().expect("position");
    let response =
        app.get(&format!("/v1/reports?overdue=true&min_position={position}"), &app.school()).await;
    assert_eq!(ok_json(response, StatusCode::OK).await["items"], json!([]));
}

fn school() -> SchoolId {
    SchoolId::parse(SCHOOL).expect("valid")
}

fn number(id: &str) -> StudentNumber {
    StudentNumber::parse(id).expect("valid")
}

#[tokio::test]
async fn d1_a_replacement_placement_is_elsewhere_and_replaces_the_reported_one() {
    let app = spawn_app().await;
    let reported = app.active_placement("s-1", COMPANY).await;
    let mut body = discrimination(COMPANY);
    body["placement_id"] = json!(reported);
    let report = app.file("s-1", body).await;
    let offer = app.company_with_offer(OTHER_COMPANY, 2).await;
    // Another school's placement cannot be linked (403, nothing recorded).
    let foreign_school = app.school_of(OTHER_SCHOOL);
    let response = app
        .post(
            &format!("/v1/reports/{report}/replacement"),
            &foreign_school,
            json!({"placement_id": reported}),
        )
        .await;
    problem(response, StatusCode::FORBIDDEN).await;
    // A proposal elsewhere that does not say what it replaces: refused (D1).
    let loose = app.propose("s-1", &offer).await;
    let before = app.event_count().await;
    let response = app
        .post(
            &format!("/v1/reports/{report}/replacement"),
            &app.school(),
            json!({"placement_id": loose}),
        )
        .await;
    refused(&app, response, StatusCode::UNPROCESSABLE_ENTITY, "D1", before).await;
    app.step(&loose, "withdraw", &app.school(), json!({"reason": "replaced by a proper proposal"}))
        .await;
    // The withdrawal gives the offer's slot back through a reaction: let it
    // land, so the event counts below see only what the requests record.
    app.await_event(&offer, "OfferSlotReleased").await;
    let response = app
        .post(
            "/v1/placements",
            &app.school(),
            json!({"student_id": "s-1", "offer_id": offer, "replaces": reported}),
        )
        .await;
    let replacement = ok_json(response, StatusCode::CREATED).await["placement_id"]
        .as_str()
        .expect("id")
        .to_owned();
    // The reported placement records its alternative through a reaction.
    app.await_event(&reported, "AlternativePlacementOffered").await;
    // Its agreement ends after the reported one: the student would be delayed (D1).
    app.step(&replacement, "accept", &app.student_of(SCHOOL, "s-1"), json!({})).await;
    let mut late = agreement_body(None);
    late["end_date"] = json!(end_date() + Days::new(14));
    app.step(&replacement, "agreement", &app.school(), late).await;
    let before = app.event_count().await;
    let link = json!({"placement_id": replacement});
    let response =
        app.post(&format!("/v1/reports/{report}/replacement"), &app.school(), link.clone()).await;
    refused(&app, response, StatusCode::UNPROCESSABLE_ENTITY, "D1", before).await;
    app.step(&replacement, "agreement", &app.school(), agreement_body(None)).await;
    let linked = app.report_step(&report, "replacement", &app.school(), link).await;
    let read = app
        .report_at(
            &report,
            linked["position"].as_i64().expect("position"),
            &app.student_of(SCHOOL, "s-1"),
        )
        .await;
    assert_eq!(read["replacement_placements"], json!([replacement]));
}

#[tokio::test]
async fn d4_a_signal_needs_consent_and_reaches_sbb_anonymised_with_small_counts_suppressed() {
    let app = spawn_app().await;
    app.recognised_company(COMPANY).await;
    let mut no_consent = discrimination(COMPANY);
    no_consent["consent_to_forward"] = json!(false);
    let withheld = app.file("s-9", no_consent).await;
    let before = app.event_count().await;
    let response =
        app.post(&format!("/v1/reports/{withheld}/signal"), &app.school(), json!({})).await;
    refused(&app, response, StatusCode::CONFLICT, "D4", before).await;
    // The student consents later: now it can go.
    app.report_step(&withheld, "consent", &app.student_of(SCHOOL, "s-9"), json!({"consent": true}))
        .await;
    let mut position = 0;
    for student in ["s-1", "s-2", "s-3", "s-9"] {
        let report = if student == "s-9" {
            withheld.clone()
        } else {
            app.file(student, discrimination(COMPANY)).await
        };
        let sent = app.report_step(&report, "signal", &app.school(), json!({})).await;
        assert!(sent["signal_id"].is_string(), "{sent}");
        position = sent["position"].as_i64().expect("position");
        // Once per report (D4).
        let before = app.event_count().await;
        let again =
            app.post(&format!("/v1/reports/{report}/signal"), &app.school(), json!({})).await;
        refused(&app, again, StatusCode::CONFLICT, "D4", before).await;
    }
    let signals = |position: i64| {
        let app = &app;
        async move {
            ok_json(
                app.get(&format!("/v1/signals?min_position={position}"), &app.sbb()).await,
                StatusCode::OK,
            )
            .await
        }
    };
    // Forwarded, not yet released: SBB has nothing (the release is daily).
    let overview = signals(position).await;
    assert_eq!(overview["companies"], json!([]), "{overview}");
    // Four signals: every count suppressed, no ids to single one out.
    let overview = signals(app.release().await).await;
    let company = &overview["companies"][0];
    assert_eq!(company["company_id"], COMPANY);
    assert_eq!(company["signals"], "suppressed", "{overview}");
    assert!(company.get("signal_ids").is_none(), "{overview}");
    assert!(
        company["by_ground"]
            .as_array()
            .expect("grounds")
            .iter()
            .all(|c| c["count"] == "suppressed")
    );
    // A fifth: the counts show.
    let report = app.file("s-4", discrimination(COMPANY)).await;
    app.report_step(&report, "signal", &app.school(), json!({})).await;
    let overview = signals(app.release().await).await;
    let company = &overview["companies"][0];
    assert_eq!(company["signals"], 5, "{overview}");
    assert_eq!(company["by_kind"], json!([{"key": "discrimination", "count": 5}]));
    assert_eq!(
        company["by_ground"],
        json!([{"key": "origin", "count": 5}, {"key": "religion", "count": 5}])
    );
    assert_eq!(company["signal_ids"].as_array().map(Vec::len), Some(5));
    let text = overview.to_string();
    for secret in ["s-1", "s-4", "s-9", SCHOOL, DESCRIPTION, &today().to_string()] {
        assert!(!text.contains(secret), "{secret} leaks into signals: {text}");
    }
    for token in [app.school(), app.company(COMPANY), app.student_of(SCHOOL, "s-1"), app.monitor()]
    {
        problem(app.get("/v1/signals", &token).await, StatusCode::FORBIDDEN).await;
    }
}

/// A report escalated to SBB, investigated and concluded with a revocation.
#[tokio::test]
async fn d5_an_escalation_is_investigated_both_sides_heard_and_concluded_once() {
    let app = spawn_app().await;
    app.recognised_company(COMPANY).await;
    let report = app.file("s-1", discrimination(COMPANY)).await;
    let escalated = app
        .report_step(
            &report,
            "escalation",
            &app.school(),
            json!({"summary": "Repeated refusals on origin."}),
        )
        .await;
    let complaint = escalated["complaint_id"].as_str().expect("complaint").to_owned();
    // SBB's desk has it at once (the complaint is recorded right after the report).
    let position = app.stamped_head().await;
    let complaints = ok_json(
        app.get(&format!("/v1/complaints?min_position={position}"), &app.sbb()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(complaints["items"][0]["school"], SCHOOL);
    assert_eq!(complaints["items"][0]["summary"], "Repeated refusals on origin.");
    assert!(!complaints.to_string().contains("s-1"));
    // Only SBB opens investigations.
    let open = json!({"company_id": COMPANY, "complaint_id": complaint});
    for token in [app.school(), app.company(COMPANY), app.student_of(SCHOOL, "s-1")] {
        problem(app.post("/v1/investigations", &token, open.clone()).await, StatusCode::FORBIDDEN)
            .await;
    }
    let opened =
        ok_json(app.post("/v1/investigations", &app.sbb(), open).await, StatusCode::CREATED).await;
    let id = opened["investigation_id"].as_str().expect("id").to_owned();
    // Suspension during the investigation names it.
    let suspend = json!({"reason": "investigation after a complaint", "investigation_id": id});
    let response = app.post(&format!("/v1/companies/{COMPANY}/suspend"), &app.sbb(), suspend).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let before = app.event_count().await;
    let conclude = format!("/v1/investigations/{id}/conclusion");
    let revoke = json!({"outcome": "recognition_revoked"});
    // Neither side heard yet: refused, and the recognition untouched.
    let response = app.post(&conclude, &app.sbb(), revoke.clone()).await;
    refused(&app, response, StatusCode::CONFLICT, "D5", before).await;
    let hearings = format!("/v1/investigations/{id}/hearings");
    // Only SBB hears and concludes; and only SBB reads the complaint desk.
    for token in [app.school(), app.company(COMPANY), app.student_of(SCHOOL, "s-1"), app.monitor()]
    {
        let hear =
            app.post(&hearings, &token, json!({"party": "company", "held_on": today()})).await;
        problem(hear, StatusCode::FORBIDDEN).await;
        problem(app.post(&conclude, &token, revoke.clone()).await, StatusCode::FORBIDDEN).await;
        problem(app.get("/v1/complaints", &token).await, StatusCode::FORBIDDEN).await;
    }
    assert_eq!(app.event_count().await, before, "nothing recorded for them");
    for party in ["company", "school"] {
        let response =
            app.post(&hearings, &app.sbb(), json!({"party": party, "held_on": today()})).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let response = app.post(&conclude, &app.sbb(), revoke.clone()).await;
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let company_events = app.event_types_of(COMPANY).await;
    assert_eq!(
        company_events.last().map(String::as_str),
        Some("RecognitionRevoked"),
        "{company_events:?}"
    );
    // Twice: refused, nothing recorded.
    let before = app.event_count().await;
    let response = app.post(&conclude, &app.sbb(), revoke).await;
    refused(&app, response, StatusCode::CONFLICT, "D5", before).await;
    let head = app.stamped_head().await;
    let read = ok_json(
        app.get(&format!("/v1/investigations/{id}?min_position={head}"), &app.company(COMPANY))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["status"], "concluded");
    assert_eq!(read["outcome"], "recognition_revoked");
    problem(
        app.get(&format!("/v1/investigations/{id}"), &app.company(OTHER_COMPANY)).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        app.get(&format!("/v1/investigations/{id}"), &app.school()).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn d5_a_suspension_names_an_open_investigation_of_that_company() {
    let app = spawn_app().await;
    app.recognised_company(COMPANY).await;
    app.recognised_company(OTHER_COMPANY).await;
    let opened = ok_json(
        app.post("/v1/investigations", &app.sbb(), json!({"company_id": COMPANY})).await,
        StatusCode::CREATED,
    )
    .await;
    let id = opened["investigation_id"].as_str().expect("id");
    let before = app.event_count().await;
    for investigation in [id.to_owned(), Uuid::new_v4().to_string()] {
        let suspend = json!({"reason": "investigation", "investigation_id": investigation});
        let response =
            app.post(&format!("/v1/companies/{OTHER_COMPANY}/suspend"), &app.sbb(), suspend).await;
        refused(&app, response, StatusCode::UNPROCESSABLE_ENTITY, "D5", before).await;
    }
    let bad = json!({"company_id": COMPANY, "signal_ids": [Uuid::new_v4()]});
    let response = app.post("/v1/investigations", &app.sbb(), bad).await;
    problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn the_event_store_and_read_models_hold_no_plaintext_description_or_ground() {
    let app = spawn_app().await;
    app.recognised_company(COMPANY).await;
    let mut grounds = Vec::new();
    for (i, ground) in Ground::ALL.iter().enumerate() {
        let body = json!({
            "kind": "discrimination", "grounds": [ground], "company_id": COMPANY,
            "description": format!("{DESCRIPTION} ({i})"), "wants_replacement_placement": false,
            "consent_to_forward": true,
        });
        let report = app.file(&format!("s-{i}"), body).await;
        app.report_step(&report, "signal", &app.school(), json!({})).await;
        grounds.push(ground.as_str());
    }
    let report = app.file("s-99", discrimination(COMPANY)).await;
    let summary = "The trainer refused her twice for her background.";
    app.report_step(&report, "escalation", &app.school(), json!({"summary": summary})).await;
    let head = app.release().await;
    let overview = ok_json(
        app.get(&format!("/v1/signals?min_position={head}"), &app.sbb()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(overview["companies"][0]["signals"], 12, "every signal was released");
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT payload::text FROM events
         UNION ALL SELECT payload::text FROM snapshots
         UNION ALL SELECT record::text FROM cases",
    )
    .fetch_all(&app.pool)
    .await
    .expect("raw rows");
    assert!(stored.len() > 24, "reports and signals are stored");
    for text in &stored {
        assert!(!text.contains("do not take interns"), "a description in the clear: {text}");
        assert!(!text.contains("refused her twice"), "a complaint summary in the clear: {text}");
        for ground in &grounds {
            assert!(
                !text.contains(&format!("\"{ground}\"")),
                "ground {ground} in the clear: {text}"
            );
        }
    }
}

#[tokio::test]
async fn erasing_a_student_makes_their_reports_read_as_erased_everywhere_and_they_still_replay() {
    let app = spawn_app().await;
    app.recognised_company(COMPANY).await;
    let report = app.file("s-1", discrimination(COMPANY)).await;
    let kept = app.file("s-2", discrimination(COMPANY)).await;
    let erased = ok_json(
        app.post("/v1/erasures", &app.school(), json!({"student_id": "s-1"})).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(erased["key_deleted"], true);
    // Idempotent; another school cannot erase this school's student.
    let again = ok_json(
        app.post("/v1/erasures", &app.school(), json!({"student_id": "s-1"})).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(again["key_deleted"], false);
    for token in [app.company(COMPANY), app.sbb(), app.student_of(SCHOOL, "s-1")] {
        problem(
            app.post("/v1/erasures", &token, json!({"student_id": "s-2"})).await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let other = ok_json(
        app.post("/v1/erasures", &app.school_of(OTHER_SCHOOL), json!({"student_id": "s-2"})).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(other["key_deleted"], false, "another school's s-2 is another subject");
    // The aggregate still replays: the school follows the report up.
    let acknowledged = app.report_step(&report, "acknowledge", &app.school(), json!({})).await;
    let position = acknowledged["position"].as_i64().expect("position");
    let erased_marker = json!({"erased": true});
    for token in [app.school(), app.student_of(SCHOOL, "s-1")] {
        let read = app.report_at(&report, position, &token).await;
        assert_eq!(read["description"], erased_marker, "{read}");
        assert_eq!(read["grounds"], erased_marker, "{read}");
        assert!(read["acknowledged_on"].is_string());
    }
    assert_eq!(app.report_at(&kept, position, &app.school()).await["description"], DESCRIPTION);
    // The feed and the student's timeline.
    let feed = app.feed(&app.school()).await;
    let filed: Vec<&Value> =
        feed.iter().filter(|e| e["type"] == "nl.stagepact.report.report_filed").collect();
    assert_eq!(filed.len(), 2);
    let of = |id: &str| {
        filed.iter().find(|e| e["subject"] == id).map(|e| e["data"].clone()).expect("filed event")
    };
    assert_eq!(of(&report)["description"], erased_marker);
    assert_eq!(of(&kept)["description"], DESCRIPTION);
    let timeline =
        ok_json(app.get("/v1/me/timeline", &app.student_of(SCHOOL, "s-1")).await, StatusCode::OK)
            .await;
    let text = timeline.to_string();
    assert!(text.contains("\"erased\":true") && !text.contains("do not take interns"), "{text}");
    // After a rebuild of the read model.
    app.state.projections.rebuild("cases").await.expect("rebuild");
    let read = app.report_at(&report, position, &app.school()).await;
    assert_eq!(read["description"], erased_marker);
    assert_eq!(app.report_at(&kept, position, &app.school()).await["description"], DESCRIPTION);
    // Forwarding erased grounds is refused; nothing recorded.
    let before = app.event_count().await;
    let response =
        app.post(&format!("/v1/reports/{report}/signal"), &app.school(), json!({})).await;
    let body = problem(response, StatusCode::CONFLICT).await;
    assert!(body["detail"].as_str().unwrap_or("").contains("erased"), "{body}");
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn sbb_and_companies_never_see_a_students_id_description_or_date_of_birth() {
    let app = spawn_app().await;
    let born = born_years_before_start(17);
    app.enroll("stu-4711", "bol", born).await;
    let offer = app.company_with_offer(COMPANY, 2).await;
    let placement = app.propose("stu-4711", &offer).await;
    let student = app.student_of(SCHOOL, "stu-4711");
    app.step(&placement, "accept", &student, json!({})).await;
    let mut body = discrimination(COMPANY);
    body["placement_id"] = json!(placement);
    let report = app.file("stu-4711", body).await;
    app.report_step(&report, "signal", &app.school(), json!({})).await;
    app.release().await;
    let signal_ids: Vec<String> =
        sqlx::query_scalar("SELECT aggregate_id FROM events WHERE aggregate_type = 'signal'")
            .fetch_all(&app.pool)
            .await
            .expect("signals");
    assert_eq!(signal_ids.len(), 1, "the signal was released");
    let escalated = app
        .report_step(&report, "escalation", &app.school(), json!({"summary": "Refused on origin."}))
        .await;
    let opened = ok_json(
        app.post(
            "/v1/investigations",
            &app.sbb(),
            json!({"company_id": COMPANY, "complaint_id": escalated["complaint_id"]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = opened["investigation_id"].as_str().expect("id");
    app.post(
        &format!("/v1/investigations/{id}/hearings"),
        &app.sbb(),
        json!({"party": "company", "held_on": today()}),
    )
    .await;
    let suspend = json!({"reason": "investigation", "investigation_id": id});
    assert_eq!(
        app.post(&format!("/v1/companies/{COMPANY}/suspend"), &app.sbb(), suspend).await.status(),
        StatusCode::ACCEPTED
    );
    let head = app.stamped_head().await;
    let mut seen = Vec::new();
    for (token, paths) in [
        (
            app.sbb(),
            vec![
                format!("/v1/signals?min_position={head}"),
                "/v1/complaints".to_owned(),
                format!("/v1/investigations/{id}"),
                "/v1/companies".to_owned(),
                format!("/v1/companies/{COMPANY}"),
            ],
        ),
        (
            app.company(COMPANY),
            vec![
                format!("/v1/investigations/{id}"),
                format!("/v1/placements/{placement}"),
                "/v1/placements".to_owned(),
                format!("/v1/companies/{COMPANY}"),
            ],
        ),
    ] {
        for path in paths {
            seen.push(ok_json(app.get(&path, &token).await, StatusCode::OK).await);
        }
        seen.extend(app.feed(&token).await);
    }
    let text = Value::Array(seen).to_string();
    for secret in ["stu-4711", DESCRIPTION, &born.to_string(), "date_of_birth", "\"grounds\""] {
        assert!(!text.contains(secret), "{secret} reaches SBB or the company");
    }
    // No single signal reaches SBB's or the company's feed, nor the evidence
    // behind the investigation the company.
    assert!(!text.contains("signal_received"), "a signal in a feed");
    assert!(!text.contains(&signal_ids[0]), "a signal id reaches SBB or the company");
    // The company did read its placement and the investigation: the walk saw them.
    assert!(text.contains(&placement) && text.contains(id));
}

#[tokio::test]
async fn g3_a_support_need_is_sealed_read_only_by_school_and_student_and_erased_with_them() {
    let app = spawn_app().await;
    app.enroll("s-1", "bol", born_years_before_start(17)).await;
    let need = "Needs written instructions and a fixed contact person.";
    let path = "/v1/students/s-1/support-need";
    let before = app.event_count().await;
    for token in [
        app.student_of(SCHOOL, "s-1"),
        app.company(COMPANY),
        app.sbb(),
        app.school_of(OTHER_SCHOOL),
    ] {
        let response = app.post(path, &token, json!({"support_need": need})).await;
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    let response = app.post(path, &app.school(), json!({"support_need": " "})).await;
    problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    // A student who is not enrolled: refused, and no key is made for them.
    let stranger = app
        .post("/v1/students/s-77/support-need", &app.school(), json!({"support_need": need}))
        .await;
    problem(stranger, StatusCode::NOT_FOUND).await;
    let stranger_keys: i64 =
        sqlx::query_scalar("SELECT count(*) FROM subject_keys WHERE subject = '25XX:s-77'")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(stranger_keys, 0);
    assert_eq!(app.event_count().await, before, "refusals record nothing");
    let recorded = ok_json(
        app.post(path, &app.school(), json!({"support_need": need})).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let position = recorded["position"].as_i64().expect("position");
    let read = |token: String| {
        let app = &app;
        async move {
            ok_json(
                app.get(&format!("/v1/students/s-1?min_position={position}"), &token).await,
                StatusCode::OK,
            )
            .await
        }
    };
    assert_eq!(read(app.school()).await["support_need"], need);
    assert_eq!(read(app.student_of(SCHOOL, "s-1")).await["support_need"], need);
    let raw: Vec<String> = sqlx::query_scalar(
        "SELECT payload::text FROM events UNION ALL SELECT record::text FROM students",
    )
    .fetch_all(&app.pool)
    .await
    .expect("raw rows");
    assert!(raw.iter().all(|text| !text.contains("written instructions")), "{raw:?}");
    ok_json(
        app.post("/v1/erasures", &app.school(), json!({"student_id": "s-1"})).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(read(app.school()).await["support_need"], json!({"erased": true}));
    // The student's enrolment itself is not sensitive content and stays.
    assert_eq!(read(app.school()).await["qualification"], "25180");
    // Cleared: no need any more.
    let cleared = ok_json(
        app.post(path, &app.school(), json!({"support_need": null})).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let position = cleared["position"].as_i64().expect("position");
    let view = ok_json(
        app.get(&format!("/v1/students/s-1?min_position={position}"), &app.school()).await,
        StatusCode::OK,
    )
    .await;
    assert!(view.get("support_need").is_none(), "{view}");
}

#[tokio::test]
async fn d4_a_signal_is_not_released_once_the_student_withdraws_consent() {
    let app = spawn_app().await;
    app.recognised_company(COMPANY).await;
    let report = app.file("s-1", discrimination(COMPANY)).await;
    app.report_step(&report, "signal", &app.school(), json!({})).await;
    app.report_step(&report, "consent", &app.student_of(SCHOOL, "s-1"), json!({"consent": false}))
        .await;
    app.release().await;
    let signals: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'signal'")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(signals, 0, "no consent, no signal (D4)");
    // With consent back, the next release sends it, once.
    app.report_step(&report, "consent", &app.student_of(SCHOOL, "s-1"), json!({"consent": true}))
        .await;
    app.release().await;
    app.release().await;
    let signals: Vec<(String, Value)> =
        sqlx::query_as("SELECT aggregate_id, metadata FROM events WHERE aggregate_type = 'signal'")
            .fetch_all(&app.pool)
            .await
            .expect("signals");
    assert_eq!(signals.len(), 1);
    // Recorded by the system: no person and no request ties it to the school's forwarding.
    let metadata = signals[0].1.to_string();
    assert!(!metadata.contains("request_id") && !metadata.contains("tester"), "{metadata}");
}

#[tokio::test]
async fn refused_filings_create_no_key_and_erasure_reaches_the_complaint_desk() {
    let app = spawn_app().await;
    app.recognised_company(COMPANY).await;
    let keys = || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM subject_keys")
            .fetch_one(&app.pool)
            .await
            .expect("count");
        n
    };
    let mut bare = discrimination(COMPANY);
    bare["grounds"] = json!([]);
    let response = app.post("/v1/reports", &app.student_of(SCHOOL, "s-1"), bare).await;
    problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(keys().await, 0, "a refused filing creates no key");
    let report = app.file("s-1", discrimination(COMPANY)).await;
    let summary = "Refused twice on\nher background.";
    app.report_step(&report, "escalation", &app.school(), json!({"summary": summary})).await;
    let head = app.stamped_head().await;
    let desk = format!("/v1/complaints?min_position={head}");
    let complaints = ok_json(app.get(&desk, &app.sbb()).await, StatusCode::OK).await;
    assert_eq!(complaints["items"][0]["summary"], summary);
    ok_json(
        app.post("/v1/erasures", &app.school(), json!({"student_id": "s-1"})).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let complaints = ok_json(app.get(&desk, &app.sbb()).await, StatusCode::OK).await;
    assert_eq!(complaints["items"][0]["summary"], json!({"erased": true}));
    assert_eq!(complaints["items"][0]["school"], SCHOOL, "the case itself stays");
}

/// A crash between a decision and its delivery to SBB: the decision is
/// recorded (here straight through the command bus, as a handler that died
/// after its first command leaves it), and the next delivery round completes it.
#[tokio::test]
async fn d5_a_delivery_round_completes_escalations_and_conclusions_a_crash_left_half_done() {
    use stagepact_domain::investigation::{
        HearingParty, HearingRecorded, Investigation, InvestigationCommand, InvestigationConcluded,
        InvestigationOutcome,
    };
    let app = spawn_app().await;
    app.recognised_company(COMPANY).await;
    let report = app.file("s-1", discrimination(COMPANY)).await;
    let cipher = app.state.vault.cipher_for(&format!("{SCHOOL}:s-1")).await.expect("key");
    let summary = Description::parse("Refused on origin, twice.").expect("valid");
    let complaint = Uuid::new_v4();
    let escalate = ReportCommand::Escalate { complaint_id: complaint, summary, cipher };
    app.state
        .bus
        .execute::<Report>(&report, escalate, None, Default::default())
        .await
        .expect("escalated");
    let opened = ok_json(
        app.post("/v1/investigations", &app.sbb(), json!({"company_id": COMPANY})).await,
        StatusCode::CREATED,
    )
    .await;
    let id = opened["investigation_id"].as_str().expect("id").to_owned();
    let bus = &app.state.bus;
    let hearing = HearingRecorded { party: HearingParty::Company, held_on: today() };
    let hear = InvestigationCommand::RecordHearing { hearing, today: today() };
    bus.execute::<Investigation>(&id, hear, None, Default::default()).await.expect("heard");
    let conclude = InvestigationCommand::Conclude {
        concluded: InvestigationConcluded {
            outcome: InvestigationOutcome::RecognitionRevoked,
            concluded_on: today(),
        },
        suspended_by_it: false,
    };
    bus.execute::<Investigation>(&id, conclude, None, Default::default()).await.expect("concluded");
    assert_ne!(
        app.event_types_of(COMPANY).await.last().map(String::as_str),
        Some("RecognitionRevoked")
    );
    assert!(app.event_types_of(&complaint.to_string()).await.is_empty());
    app.release().await;
    assert_eq!(app.event_types_of(&complaint.to_string()).await, vec!["ComplaintReceived"]);
    assert_eq!(
        app.event_types_of(COMPANY).await.last().map(String::as_str),
        Some("RecognitionRevoked")
    );
    // Once: another round records nothing more.
    let before = app.event_count().await;
    app.release().await;
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn a_students_key_is_issued_at_enrolment_and_used_for_their_reports() {
    let app = spawn_app().await;
    app.recognised_company(COMPANY).await;
    app.enroll("s-1", "bol", born_years_before_start(17)).await;
    let import = json!({"students": [
        enrolment("s-2", "bol", born_years_before_start(17)),
        enrolment("s-3", "bbl", born_years_before_start(19)),
    ]});
    ok_json(app.post("/v1/students/import", &app.school(), import).await, StatusCode::OK).await;
    let keys: Vec<(String, Uuid)> =
        sqlx::query_as("SELECT subject, key_id FROM subject_keys ORDER BY subject")
            .fetch_all(&app.pool)
            .await
            .expect("keys");
    let subjects: Vec<&str> = keys.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(subjects, vec!["25XX:s-1", "25XX:s-2", "25XX:s-3"]);
    let report = app.file("s-2", discrimination(COMPANY)).await;
    let payload: Value = sqlx::query_scalar(
        "SELECT payload FROM events WHERE aggregate_id = $1 AND event_type = 'ReportFiled'",
    )
    .bind(&report)
    .fetch_one(&app.pool)
    .await
    .expect("filed");
    let sealed_under = payload["ReportFiled"]["description"]["sealed"].as_str().expect("key id");
    assert_eq!(sealed_under, keys[1].1.to_string(), "sealed under the key issued at enrolment");
}
