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
