//! The placement lifecycle through the API: every step from a proposed match
//! to completion, the rules each step enforces (G1-G4, S1-S2, M1-M3, C1, C3),
//! and who may take which step.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fixtures::*;
use crate::helpers::{position_of, problem, spawn_app};

#[tokio::test]
async fn a_placement_goes_from_match_to_completion() {
    let app = spawn_app().await;
    app.enroll("s-1", "bol", born_years_before_start(20)).await;
    let offer = app.company_with_offer("lb-1", 2).await;
    let placement = app.propose("s-1", &offer).await;
    let student = app.student_of(SCHOOL, "s-1");
    let school = app.school();
    let company = app.company("lb-1");

    app.step(&placement, "accept", &student, json!({})).await;
    app.step(&placement, "agreement", &school, agreement_body(None)).await;
    for token in [&student, &school, &company] {
        app.step(&placement, "agreement/signatures", token, json!({})).await;
    }
    app.step(&placement, "start", &school, json!({})).await;
    let mut last = Value::Null;
    for (kind, mode) in [("start", "on_site"), ("midway", "video"), ("end", "phone")] {
        last = app
            .step(
                &placement,
                "contact-moments",
                &company,
                json!({"kind": kind, "mode": mode, "held_on": today(), "participants": all_three()}),
            )
            .await;
    }
    let moment = last["moment_id"].as_str().expect("a moment id").to_owned();
    app.step(&placement, &format!("contact-moments/{moment}/confirm"), &student, json!({})).await;
    app.step(&placement, "complete", &school, json!({})).await;
    let rated = app
        .step(&placement, "rating", &student, json!({"school_score": 4, "company_score": 5}))
        .await;
    let position = rated["position"].as_i64().expect("position");

    let view = app.placement_at(&placement, position, &student).await;
    assert_eq!(view["status"], "completed");
    assert_eq!(view["compliance"]["g2_met"], true);
    assert_eq!(view["compliance"]["contact_moments"]["total"], 3);
    assert_eq!(view["compliance"]["contact_moments"]["on_site"], 1);
    assert_eq!(view["compliance"]["signatures_missing"], json!([]));
    assert_eq!(view["rating"]["company_score"], 5);
    assert_eq!(view["needs_attention"], false);
    // The company sees the placement, not the student's rating.
    let seen_by_company = app.placement_at(&placement, position, &company).await;
    assert!(seen_by_company.get("rating").is_none());
    assert_eq!(
        app.event_types_of(&placement).await,
        [
            "MatchProposed",
            "MatchAccepted",
            "AgreementDrafted",
            "AgreementSigned",
            "AgreementSigned",
            "AgreementSigned",
            "PlacementStarted",
            "ContactMomentHeld",
            "ContactMomentHeld",
            "ContactMomentHeld",
            "ContactMomentConfirmed",
            "PlacementCompleted",
            "GuidanceRated",
        ]
    );
}

#[tokio::test]
async fn g1_placement_cannot_start_without_all_signatures() {
    let app = spawn_app().await;
    let placement = app.agreed_placement("s-1", "lb-1").await;
    app.step(&placement, "agreement/signatures", &app.student_of(SCHOOL, "s-1"), json!({})).await;
    let before = app.event_count().await;
    let refused =
        app.post(&format!("/v1/placements/{placement}/start"), &app.school(), json!({})).await;
    let body = problem(refused, StatusCode::CONFLICT).await;
    assert_eq!(body["rule"], "G1");
    assert_eq!(body["type"], "urn:stagepact:problem:signatures-missing");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("school, company")), "{body}");
    assert_eq!(app.event_count().await, before, "a refusal records nothing");
}

/// POSTs a placement step that must be refused with `status` naming `rule`,
/// and checks that nothing was recorded.
async fn refused(
    app: &crate::helpers::TestApp,
    placement: &str,
    step: &str,
    token: &str,
    body: Value,
    status: StatusCode,
    rule: Option<&str>,
) -> Value {
    let before = app.event_count().await;
    let response = app.post(&format!("/v1/placements/{placement}/{step}"), token, body).await;
    let problem = problem(response, status).await;
    assert_eq!(problem["rule"].as_str(), rule, "{step}: {problem}");
    assert_eq!(app.event_count().await, before, "{step}: a refusal records nothing");
    problem
}

#[tokio::test]
async fn m3_a_second_accept_is_refused() {
    let app = spawn_app().await;
    app.enroll("s-1", "bol", born_years_before_start(20)).await;
    let offer = app.company_with_offer("lb-1", 1).await;
    let placement = app.propose("s-1", &offer).await;
    let student = app.student_of(SCHOOL, "s-1");
    app.step(&placement, "accept", &student, json!({})).await;
    let body =
        refused(&app, &placement, "accept", &student, json!({}), StatusCode::CONFLICT, Some("M3"))
            .await;
    assert_eq!(body["type"], "urn:stagepact:problem:invalid-transition");
}

#[tokio::test]
async fn m3_an_objection_needs_reasons_and_then_ends_the_match() {
    let app = spawn_app().await;
    app.enroll("s-1", "bol", born_years_before_start(20)).await;
    let offer = app.company_with_offer("lb-1", 1).await;
    let placement = app.propose("s-1", &offer).await;
    let company = app.company("lb-1");
    let body = json!({"reasons": []});
    let problem = refused(
        &app,
        &placement,
        "object",
        &company,
        body,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("M3"),
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "reasons");
    let objected = app
        .step(
            &placement,
            "object",
            &company,
            json!({"reasons": ["no trainer available in that period"]}),
        )
        .await;
    let view = app
        .placement_at(&placement, objected["position"].as_i64().expect("position"), &app.school())
        .await;
    assert_eq!(view["status"], "objected");
    assert_eq!(view["objected_by"], "company");
    assert_eq!(view["objection_reasons"], json!(["no trainer available in that period"]));
}

#[tokio::test]
async fn m1_a_match_needs_the_students_qualification_and_level() {
    let app = spawn_app().await;
    app.enroll("s-1", "bol", born_years_before_start(20)).await;
    let mut other_level = enrolment("s-4", "bol", born_years_before_start(20));
    other_level["level"] = json!(4);
    assert_eq!(
        app.post("/v1/students", &app.school(), other_level).await.status(),
        StatusCode::CREATED
    );
    let mut other_qualification = enrolment("s-5", "bol", born_years_before_start(20));
    other_qualification["qualification"] = json!("25181");
    assert_eq!(
        app.post("/v1/students", &app.school(), other_qualification).await.status(),
        StatusCode::CREATED
    );
    let offer = app.company_with_offer("lb-1", 3).await;
    for student in ["s-4", "s-5"] {
        let before = app.event_count().await;
        let response = app
            .post(
                "/v1/placements",
                &app.school(),
                json!({"student_id": student, "offer_id": offer}),
            )
            .await;
        let body = problem(response, StatusCode::CONFLICT).await;
        assert_eq!(body["rule"], "M1", "{body}");
        assert_eq!(body["type"], "urn:stagepact:problem:not-eligible");
        assert_eq!(app.event_count().await, before, "no placement and no slot taken");
    }
}

#[tokio::test]
async fn s2_a_match_for_an_offer_with_no_free_slot_is_refused() {
    let app = spawn_app().await;
    app.enroll("s-1", "bol", born_years_before_start(20)).await;
    app.enroll("s-2", "bol", born_years_before_start(20)).await;
    let offer = app.company_with_offer("lb-1", 1).await;
    app.propose("s-1", &offer).await;
    let before = app.event_count().await;
    let response = app
        .post("/v1/placements", &app.school(), json!({"student_id": "s-2", "offer_id": offer}))
        .await;
    let body = problem(response, StatusCode::CONFLICT).await;
    assert_eq!(body["rule"], "S2");
    assert_eq!(body["type"], "urn:stagepact:problem:no-free-slot");
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn s1_a_match_with_an_offer_of_a_suspended_company_is_refused() {
    let app = spawn_app().await;
    app.enroll("s-1", "bol", born_years_before_start(20)).await;
    let offer = app.company_with_offer("lb-1", 1).await;
    let suspended = app
        .post("/v1/companies/lb-1/suspend", &app.sbb(), json!({"reason": "investigation"}))
        .await;
    assert_eq!(suspended.status(), StatusCode::ACCEPTED);
    let before = app.event_count().await;
    let response = app
        .post("/v1/placements", &app.school(), json!({"student_id": "s-1", "offer_id": offer}))
        .await;
    let body = problem(response, StatusCode::CONFLICT).await;
    assert_eq!(body["rule"], "S1");
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn c1_the_expense_allowance_must_cover_the_costs() {
    let app = spawn_app().await;
    app.enroll("s-1", "bol", born_years_before_start(20)).await;
    let offer = app.company_with_offer("lb-1", 1).await;
    let placement = app.propose("s-1", &offer).await;
    app.step(&placement, "accept", &app.student_of(SCHOOL, "s-1"), json!({})).await;
    let mut body = agreement_body(None);
    body["compensation"]["expense_allowance_eur"] = json!(80.99);
    let problem = refused(
        &app,
        &placement,
        "agreement",
        &app.school(),
        body,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("C1"),
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "compensation.expense_allowance_eur");
}

#[tokio::test]
async fn c3_a_bbl_wage_below_the_youth_minimum_is_refused_and_g1_bbl_needs_the_employment_contract()
{
    let app = spawn_app().await;
    // 20 at the start: the BBL scale gives 61.5% of 14.71 = 9.05 per hour.
    app.enroll("s-1", "bbl", born_years_before_start(20)).await;
    let offer = app.company_with_offer("lb-1", 1).await;
    let placement = app.propose("s-1", &offer).await;
    app.step(&placement, "accept", &app.student_of(SCHOOL, "s-1"), json!({})).await;
    for wage in [None, Some(9.04)] {
        let problem = refused(
            &app,
            &placement,
            "agreement",
            &app.school(),
            agreement_body(wage),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("C3"),
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], "compensation.hourly_wage_eur");
        assert!(
            problem["errors"][0]["message"].as_str().is_some_and(|m| m.contains("9.05")),
            "{problem}"
        );
    }
    let drafted =
        app.step(&placement, "agreement", &app.school(), agreement_body(Some(9.05))).await;
    let view = app
        .placement_at(&placement, drafted["position"].as_i64().expect("position"), &app.school())
        .await;
    assert_eq!(view["agreement"]["minimum_hourly_wage_eur"], 9.05);
    assert_eq!(
        view["compliance"]["signatures_required"],
        json!(["student", "school", "company", "employer"])
    );
    // The employment contract is the company's to sign; a school cannot.
    let forbidden = app
        .post(
            &format!("/v1/placements/{placement}/agreement/signatures"),
            &app.school(),
            json!({"party": "employer"}),
        )
        .await;
    problem(forbidden, StatusCode::FORBIDDEN).await;
    app.step(
        &placement,
        "agreement/signatures",
        &app.company("lb-1"),
        json!({"party": "employer"}),
    )
    .await;
}

#[tokio::test]
async fn g1_a_student_under_18_at_the_start_needs_a_legal_representative() {
    let app = spawn_app().await;
    app.enroll("s-1", "bol", born_years_before_start(17)).await;
    let offer = app.company_with_offer("lb-1", 1).await;
    let placement = app.propose("s-1", &offer).await;
    let student = app.student_of(SCHOOL, "s-1");
    app.step(&placement, "accept", &student, json!({})).await;
    app.step(&placement, "agreement", &app.school(), agreement_body(None)).await;
    for token in [student.clone(), app.school(), app.company("lb-1")] {
        app.step(&placement, "agreement/signatures", &token, json!({})).await;
    }
    let body = refused(
        &app,
        &placement,
        "start",
        &app.school(),
        json!({}),
        StatusCode::CONFLICT,
        Some("G1"),
    )
    .await;
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("legal_representative")), "{body}");
    // A student cannot sign for their representative; the school records it.
    let forbidden = app
        .post(
            &format!("/v1/placements/{placement}/agreement/signatures"),
            &student,
            json!({"party": "legal_representative"}),
        )
        .await;
    problem(forbidden, StatusCode::FORBIDDEN).await;
    app.step(
        &placement,
        "agreement/signatures",
        &app.school(),
        json!({"party": "legal_representative"}),
    )
    .await;
    app.step(&placement, "start", &app.school(), json!({})).await;
}

#[tokio::test]
async fn g2_a_contact_moment_needs_a_started_placement() {
    let app = spawn_app().await;
    let placement = app.agreed_placement("s-1", "lb-1").await;
    let body = json!({"kind": "start", "mode": "on_site", "held_on": today(), "participants": all_three()});
    refused(
        &app,
        &placement,
        "contact-moments",
        &app.school(),
        body,
        StatusCode::CONFLICT,
        Some("G2"),
    )
    .await;
}

#[tokio::test]
async fn g2_completion_needs_three_moments_with_one_on_site_or_a_waiver() {
    let app = spawn_app().await;
    let placement = app.active_placement("s-1", "lb-1").await;
    let school = app.school();
    let moment = |kind: &str, mode: &str| json!({"kind": kind, "mode": mode, "held_on": today(), "participants": all_three()});
    app.step(&placement, "contact-moments", &school, moment("start", "video")).await;
    let problem =
        refused(&app, &placement, "complete", &school, json!({}), StatusCode::CONFLICT, Some("G2"))
            .await;
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("midway, end")), "{problem}");
    // A moment in the future, or without its recorder, is refused.
    let mut future = moment("midway", "on_site");
    future["held_on"] = json!(today() + chrono::Days::new(1));
    refused(
        &app,
        &placement,
        "contact-moments",
        &school,
        future,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("G2"),
    )
    .await;
    let mut absent = moment("midway", "on_site");
    absent["participants"] = json!(["student", "company"]);
    refused(
        &app,
        &placement,
        "contact-moments",
        &school,
        absent,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("G2"),
    )
    .await;
    app.step(
        &placement,
        "contact-moments/waiver",
        &school,
        json!({"reason": "student hospitalised; guidance by phone"}),
    )
    .await;
    let completed = app.step(&placement, "complete", &school, json!({})).await;
    let view = app
        .placement_at(&placement, completed["position"].as_i64().expect("position"), &school)
        .await;
    assert_eq!(view["status"], "completed");
    assert_eq!(view["compliance"]["waived"], true);
    assert_eq!(view["compliance"]["g2_met"], false);
    assert_eq!(view["waiver_reason"], "student hospitalised; guidance by phone");
}

#[tokio::test]
async fn g2_another_participant_confirms_a_contact_moment() {
    let app = spawn_app().await;
    let placement = app.active_placement("s-1", "lb-1").await;
    let recorded = app
        .step(&placement, "contact-moments", &app.school(), json!({"kind": "start", "mode": "on_site", "held_on": today(), "participants": all_three()}))
        .await;
    let moment = recorded["moment_id"].as_str().expect("moment id");
    let confirm = format!("contact-moments/{moment}/confirm");
    refused(&app, &placement, &confirm, &app.school(), json!({}), StatusCode::CONFLICT, Some("G2"))
        .await;
    let unknown = format!("contact-moments/{}/confirm", uuid::Uuid::new_v4());
    problem(
        app.post(&format!("/v1/placements/{placement}/{unknown}"), &app.company("lb-1"), json!({}))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let confirmed = app.step(&placement, &confirm, &app.company("lb-1"), json!({})).await;
    let view = app
        .placement_at(&placement, confirmed["position"].as_i64().expect("position"), &app.school())
        .await;
    assert_eq!(view["contact_moments"][0]["confirmed_by"], json!(["company"]));
}

#[tokio::test]
async fn g4_a_rating_needs_a_start_and_scores_of_1_to_5() {
    let app = spawn_app().await;
    let placement = app.agreed_placement("s-1", "lb-1").await;
    let student = app.student_of(SCHOOL, "s-1");
    let rating = json!({"school_score": 4, "company_score": 4});
    refused(&app, &placement, "rating", &student, rating.clone(), StatusCode::CONFLICT, Some("G4"))
        .await;
    for signer in [student.clone(), app.school(), app.company("lb-1")] {
        app.step(&placement, "agreement/signatures", &signer, json!({})).await;
    }
    app.step(&placement, "start", &app.school(), json!({})).await;
    for bad in [
        json!({"school_score": 0, "company_score": 4}),
        json!({"school_score": 4, "company_score": 6}),
    ] {
        refused(
            &app,
            &placement,
            "rating",
            &student,
            bad,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("G4"),
        )
        .await;
    }
    app.step(&placement, "rating", &student, rating).await;
}

#[tokio::test]
async fn g3_g4_the_agreement_names_the_contacts_and_a_warm_handover_is_recorded() {
    let app = spawn_app().await;
    let placement = app.agreed_placement("s-1", "lb-1").await;
    let handover =
        app.step(&placement, "warm-handover", &app.school(), json!({"held_on": today()})).await;
    let view = app
        .placement_at(
            &placement,
            handover["position"].as_i64().expect("position"),
            &app.company("lb-1"),
        )
        .await;
    assert_eq!(view["warm_handover_on"], json!(today()));
    assert_eq!(view["agreement"]["school_contact"], "BPV-017");
    assert_eq!(view["agreement"]["company_trainer"], "PO-3");
    let mut nameless = agreement_body(None);
    nameless["company_trainer"] = json!("  ");
    let problem = refused(
        &app,
        &placement,
        "agreement",
        &app.school(),
        nameless,
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "company_trainer");
}

#[tokio::test]
async fn m2_a_student_proposes_a_self_found_placement_and_the_school_approves_it() {
    let app = spawn_app().await;
    app.enroll("s-1", "bol", born_years_before_start(20)).await;
    app.recognised_company("lb-1").await;
    let student = app.student_of(SCHOOL, "s-1");
    let response = app
        .post(
            "/v1/placements/self-found",
            &student,
            json!({"company_id": "lb-1", "qualification": "25180", "note": "my uncle's garage"}),
        )
        .await;
    let body = ok_json(response, StatusCode::CREATED).await;
    let placement = body["placement_id"].as_str().expect("id").to_owned();
    // Only the school approves.
    refused(
        &app,
        &placement,
        "approve",
        &app.company("lb-1"),
        json!({}),
        StatusCode::FORBIDDEN,
        None,
    )
    .await;
    let approved = app.step(&placement, "approve", &app.school(), json!({})).await;
    let view = app
        .placement_at(&placement, approved["position"].as_i64().expect("position"), &student)
        .await;
    assert_eq!(view["status"], "accepted");
    assert_eq!(view["origin"], "self_found");
    // S1: not with an unrecognised company.
    let before = app.event_count().await;
    let response = app
        .post(
            "/v1/placements/self-found",
            &student,
            json!({"company_id": "nobody", "qualification": "25180"}),
        )
        .await;
    assert_eq!(problem(response, StatusCode::CONFLICT).await["rule"], "S1");
    assert_eq!(app.event_count().await, before);
}

/// Every placement operation, as a foreign party: another school, another
/// company, another student. Each is refused and records nothing.
#[tokio::test]
async fn every_placement_operation_refuses_a_foreign_party() {
    let app = spawn_app().await;
    let placement = app.active_placement("s-1", "lb-1").await;
    app.recognised_company("lb-9").await;
    let other_school = app.school_of(OTHER_SCHOOL);
    let other_company = app.company("lb-9");
    let other_student = app.student_of(SCHOOL, "s-2");
    let same_number_elsewhere = app.student_of(OTHER_SCHOOL, "s-1");
    let moment =
        json!({"kind": "extra", "mode": "phone", "held_on": today(), "participants": all_three()});
    let steps: Vec<(&str, Value, Vec<&String>)> = vec![
        ("approve", json!({}), vec![&other_school]),
        ("accept", json!({}), vec![&other_student, &same_number_elsewhere]),
        ("object", json!({"reasons": ["x"]}), vec![&other_student, &other_company]),
        ("withdraw", json!({"reason": "x"}), vec![&other_school]),
        ("agreement", agreement_body(None), vec![&other_school]),
        ("agreement/signatures", json!({}), vec![&other_school, &other_company, &other_student]),
        ("start", json!({}), vec![&other_school]),
        ("contact-moments", moment, vec![&other_school, &other_company]),
        ("contact-moments/waiver", json!({"reason": "x"}), vec![&other_school]),
        ("warm-handover", json!({"held_on": today()}), vec![&other_school]),
        ("complete", json!({}), vec![&other_school]),
        ("interrupt", json!({"reason": "x"}), vec![&other_school]),
        (
            "rating",
            json!({"school_score": 3, "company_score": 3}),
            vec![&other_student, &same_number_elsewhere],
        ),
    ];
    for (step, body, outsiders) in steps {
        for token in outsiders {
            refused(&app, &placement, step, token, body.clone(), StatusCode::FORBIDDEN, None).await;
        }
    }
    let confirm = format!("contact-moments/{}/confirm", uuid::Uuid::new_v4());
    for token in [&other_school, &other_company, &other_student] {
        refused(&app, &placement, &confirm, token, json!({}), StatusCode::FORBIDDEN, None).await;
    }
    for token in [&other_school, &other_company, &other_student, &same_number_elsewhere] {
        problem(
            app.get(&format!("/v1/placements/{placement}"), token).await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    for token in [app.sbb(), app.monitor()] {
        problem(
            app.get(&format!("/v1/placements/{placement}"), &token).await,
            StatusCode::FORBIDDEN,
        )
        .await;
        problem(app.get("/v1/placements", &token).await, StatusCode::FORBIDDEN).await;
    }
    // A match for another school's student, or with a foreign placement to replace.
    let before = app.event_count().await;
    let offer = app.company_with_offer("lb-8", 2).await;
    let after_setup = app.event_count().await;
    let response = app
        .post("/v1/placements", &other_school, json!({"student_id": "s-1", "offer_id": offer}))
        .await;
    problem(response, StatusCode::NOT_FOUND).await;
    assert_eq!(app.event_count().await, after_setup);
    assert!(after_setup > before);
    let response = app
        .post(
            "/v1/placements",
            &app.company("lb-1"),
            json!({"student_id": "s-1", "offer_id": offer}),
        )
        .await;
    problem(response, StatusCode::FORBIDDEN).await;
    assert_eq!(app.event_count().await, after_setup);
}

#[tokio::test]
async fn lists_show_a_school_its_students_and_a_company_its_own_placements() {
    let app = spawn_app().await;
    let agreed = app.agreed_placement("s-1", "lb-1").await;
    let active = app.active_placement("s-2", "lb-2").await;
    let position = position_of(
        app.post(&format!("/v1/placements/{active}/contact-moments"), &app.school(), json!({"kind": "start", "mode": "on_site", "held_on": today(), "participants": all_three()})).await,
    )
    .await;
    let page = ok_json(
        app.get(&format!("/v1/placements?min_position={position}"), &app.school()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    // needs_attention: the agreed placement lacks signatures; the active one is fine.
    let attention = ok_json(
        app.get("/v1/placements?needs_attention=true", &app.school()).await,
        StatusCode::OK,
    )
    .await;
    let ids: Vec<&str> = attention["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["placement_id"].as_str())
        .collect();
    assert_eq!(ids, [agreed.as_str()]);
    assert_eq!(
        attention["items"][0]["compliance"]["signatures_missing"],
        json!(["student", "school", "company"])
    );
    let mine = ok_json(app.get("/v1/placements", &app.company("lb-2")).await, StatusCode::OK).await;
    let ids: Vec<&str> = mine["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["placement_id"].as_str())
        .collect();
    assert_eq!(ids, [active.as_str()]);
    let other =
        ok_json(app.get("/v1/placements", &app.school_of(OTHER_SCHOOL)).await, StatusCode::OK)
            .await;
    assert_eq!(other["items"], json!([]));
    // Cursor paging.
    let first =
        ok_json(app.get("/v1/placements?limit=1", &app.school()).await, StatusCode::OK).await;
    let next = first["next"].as_str().expect("a next page");
    let second = ok_json(
        app.get(&format!("/v1/placements?limit=1&after={next}"), &app.school()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(second["items"].as_array().map(Vec::len), Some(1));
    assert!(second.get("next").is_none());
    problem(
        app.get("/v1/placements?status=dreaming", &app.school()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

#[tokio::test]
async fn a_student_sees_their_next_actions_and_their_own_timeline_only() {
    let app = spawn_app().await;
    let placement = app.agreed_placement("s-1", "lb-1").await;
    app.enroll("s-2", "bol", born_years_before_start(20)).await;
    let student = app.student_of(SCHOOL, "s-1");
    let position = position_of(
        app.post(
            &format!("/v1/placements/{placement}/warm-handover"),
            &app.school(),
            json!({"held_on": today()}),
        )
        .await,
    )
    .await;
    let overview = ok_json(
        app.get(&format!("/v1/me/overview?min_position={position}"), &student).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(overview["placements"][0]["next_action"], "sign_agreement");
    assert_eq!(overview["placements"][0]["placement"]["placement_id"], placement.as_str());
    let timeline = ok_json(app.get("/v1/me/timeline", &student).await, StatusCode::OK).await;
    let types: Vec<&str> = timeline["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "nl.stagepact.student.student_enrolled",
            "nl.stagepact.placement.match_proposed",
            "nl.stagepact.placement.match_accepted",
            "nl.stagepact.placement.agreement_drafted",
            "nl.stagepact.placement.warm_handover_held",
        ]
    );
    let page = ok_json(app.get("/v1/me/timeline?limit=2", &student).await, StatusCode::OK).await;
    let next = page["next"].as_i64().expect("next");
    let rest =
        ok_json(app.get(&format!("/v1/me/timeline?after={next}"), &student).await, StatusCode::OK)
            .await;
    assert_eq!(rest["events"].as_array().map(Vec::len), Some(3));
    // Another student sees nothing of it.
    let other = app.student_of(SCHOOL, "s-2");
    let overview = ok_json(app.get("/v1/me/overview", &other).await, StatusCode::OK).await;
    assert_eq!(overview["placements"], json!([]));
    let timeline = ok_json(app.get("/v1/me/timeline", &other).await, StatusCode::OK).await;
    assert_eq!(timeline["events"].as_array().map(Vec::len), Some(1), "only their own enrolment");
    for token in [app.school(), app.company("lb-1"), app.sbb()] {
        problem(app.get("/v1/me/overview", &token).await, StatusCode::FORBIDDEN).await;
        problem(app.get("/v1/me/timeline", &token).await, StatusCode::FORBIDDEN).await;
    }
}

/// The overview a server keeps as it last rendered it (see `overviews`)
/// follows every change its projector applies, with and without
/// `min_position`, and keeps its entity tag while it has not changed.
#[tokio::test]
async fn a_students_overview_follows_every_change() {
    let app = spawn_app().await;
    let placement = app.agreed_placement("s-1", "lb-1").await;
    let student = app.student_of(SCHOOL, "s-1");
    let first = overview_at(&app, &student, app.stamped_head().await).await;
    assert_eq!(first["placements"][0]["next_action"], "sign_agreement");
    // Read again: the same body and tag, and a conditional read is a 304.
    let again = app.get("/v1/me/overview", &student).await;
    let tag = again.headers().get("etag").cloned().expect("an entity tag");
    assert_eq!(ok_json(again, StatusCode::OK).await, first);
    let response = app
        .client
        .get(app.url("/v1/me/overview"))
        .bearer_auth(&student)
        .header("if-none-match", tag.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);

    let signed = position_of(
        app.post(&format!("/v1/placements/{placement}/agreement/signatures"), &student, json!({}))
            .await,
    )
    .await;
    // Read without a position first: the overview kept from before the
    // signature must go once the board has the signature.
    app.placement_at(&placement, signed, &app.school()).await;
    let plain = plain_overview_once_changed(&app, &student, &first).await;
    let after = overview_at(&app, &student, signed).await;
    assert_ne!(after["placements"][0]["next_action"], "sign_agreement", "{after}");
    assert_eq!(plain, after);
    let changed = app.get("/v1/me/overview", &student).await;
    assert_ne!(changed.headers().get("etag"), Some(&tag), "a new body has a new tag");

    // Each change, read right after it.
    for (token, signatory) in [(app.school(), "school"), (app.company("lb-1"), "company")] {
        let position = position_of(
            app.post(
                &format!("/v1/placements/{placement}/agreement/signatures"),
                &token,
                json!({}),
            )
            .await,
        )
        .await;
        let latest = overview_at(&app, &student, position).await;
        let present = &latest["placements"][0]["placement"]["compliance"]["signatures_present"];
        assert!(present.as_array().is_some_and(|p| p.contains(&json!(signatory))), "{latest}");
    }
}

/// The same across two processes on one database: a change made through the
/// other one (whose projector worker may be the one to apply it) reaches the
/// overview this one keeps.
#[tokio::test]
async fn a_students_overview_follows_a_change_made_through_another_process() {
    let app = spawn_app().await;
    let other = app.second_process().await;
    let placement = app.agreed_placement("s-1", "lb-1").await;
    let student = app.student_of(SCHOOL, "s-1");
    let first = overview_at(&app, &student, app.stamped_head().await).await;
    assert_eq!(first["placements"][0]["next_action"], "sign_agreement");
    for _ in 0..3 {
        ok_json(app.get("/v1/me/overview", &student).await, StatusCode::OK).await;
    }
    let signed = position_of(
        other
            .post(&format!("/v1/placements/{placement}/agreement/signatures"), &student, json!({}))
            .await,
    )
    .await;
    other.placement_at(&placement, signed, &other.school()).await;
    let plain = plain_overview_once_changed(&app, &student, &first).await;
    let after = overview_at(&app, &student, signed).await;
    assert_ne!(after["placements"][0]["next_action"], "sign_agreement", "{after}");
    assert_eq!(plain, after);
}

/// The overview read without a position, once it differs from `before` (the
/// board lags the log by about a round): it must within seconds.
async fn plain_overview_once_changed(
    app: &crate::helpers::TestApp,
    student: &str,
    before: &Value,
) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let plain = ok_json(app.get("/v1/me/overview", student).await, StatusCode::OK).await;
        if &plain != before {
            return plain;
        }
        assert!(std::time::Instant::now() < deadline, "still the overview from before: {plain}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn overview_at(app: &crate::helpers::TestApp, student: &str, position: i64) -> Value {
    let path = format!("/v1/me/overview?min_position={position}");
    ok_json(app.get(&path, student).await, StatusCode::OK).await
}

#[tokio::test]
async fn the_feed_shows_placement_events_to_the_school_and_company_involved_only() {
    let app = spawn_app().await;
    let placement = app.agreed_placement("s-1", "lb-1").await;
    app.recognised_company("lb-9").await;
    let feed = |token: String| {
        let app = &app;
        async move {
            let page =
                ok_json(app.get("/v1/events?limit=1000", &token).await, StatusCode::OK).await;
            page["events"].as_array().expect("events").clone()
        }
    };
    let of_placement =
        |events: &[Value]| events.iter().filter(|e| e["subject"] == placement.as_str()).count();
    let school = feed(app.school()).await;
    assert_eq!(of_placement(&school), 3);
    assert!(school.iter().any(|e| e["type"] == "nl.stagepact.student.student_enrolled"));
    let company = feed(app.company("lb-1")).await;
    assert_eq!(of_placement(&company), 3);
    // A company never gets the student's record (with the date of birth).
    assert!(company.iter().all(|e| e["type"] != "nl.stagepact.student.student_enrolled"));
    assert!(company.iter().all(|e| e["data"].get("date_of_birth").is_none()));
    assert_eq!(of_placement(&feed(app.company("lb-9")).await), 0);
    assert_eq!(of_placement(&feed(app.school_of(OTHER_SCHOOL)).await), 0);
    assert_eq!(of_placement(&feed(app.sbb()).await), 0);
    problem(app.get("/v1/events", &app.student_of(SCHOOL, "s-1")).await, StatusCode::FORBIDDEN)
        .await;
}
