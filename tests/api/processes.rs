//! Two API processes on one database (DESIGN §9: stateless replicas): commands
//! on one aggregate from both lose no update, every projection applies each
//! event once, and each cross-aggregate reaction happens once, though both
//! processes run a sequencer, projectors and the reaction dispatcher.

use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::fixtures::*;
use crate::helpers::{grant, spawn_app};

const COMPANY: &str = "100012345";

#[tokio::test]
async fn two_processes_lose_no_update_on_one_aggregate_and_project_each_event_once() {
    let first = spawn_app().await;
    let second = first.second_process().await;
    first.recognised_company(COMPANY).await;

    // Twenty recognitions at once, half through each process.
    let grants = (0..20).map(|n| {
        let app = if n % 2 == 0 { &first } else { &second };
        let qualification = format!("{:05}", 26_000 + n);
        async move {
            let path = format!("/v1/companies/{COMPANY}/recognitions");
            app.post(&path, &app.sbb(), grant(&qualification)).await.status()
        }
    });
    let statuses = join_all(grants).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::ACCEPTED), "{statuses:?}");

    let sequences: Vec<i64> =
        sqlx::query_scalar("SELECT sequence FROM events WHERE aggregate_id = $1 ORDER BY sequence")
            .bind(COMPANY)
            .fetch_all(&first.pool)
            .await
            .expect("events");
    assert_eq!(sequences, (1..=22).collect::<Vec<i64>>(), "registered, 25180, and twenty more");

    // Both read the same registry, each event applied once.
    let head = first.stamped_head().await;
    for app in [&first, &second] {
        let view = app.company_at(COMPANY, head, &app.sbb()).await;
        assert_eq!(view["version"], 22);
        assert_eq!(view["recognitions"].as_array().map(Vec::len), Some(21), "{view}");
    }
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM company_recognitions WHERE company_id = $1")
            .bind(COMPANY)
            .fetch_one(&first.pool)
            .await
            .expect("recognitions");
    assert_eq!(rows, 21);
}

#[tokio::test]
async fn two_processes_carry_out_a_reaction_once() {
    let first = spawn_app().await;
    let second = first.second_process().await;
    let placement = first.active_placement("s-1", COMPANY).await;

    let path = format!("/v1/companies/{COMPANY}/suspend");
    let suspended = second.post(&path, &second.sbb(), json!({"reason": "an investigation"})).await;
    ok_json(suspended, StatusCode::ACCEPTED).await;

    let notices = || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events
              WHERE aggregate_id = $1 AND event_type = 'RecognitionSuspensionNoticed'",
        )
        .bind(&placement)
        .fetch_one(&first.pool)
        .await
        .expect("notices");
        n
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while notices().await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no reaction in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give the other process every chance to react as well.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(notices().await, 1, "one notice, whichever process noticed");
}
