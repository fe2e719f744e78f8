//! Projections rebuilt from the log equal the live ones.

use serde_json::Value;

use crate::helpers::position_of;
use crate::helpers::{grant, reason, spawn_app};

#[tokio::test]
async fn rebuilding_the_company_registry_gives_the_same_read_model() {
    let app = spawn_app().await;
    let sbb = app.sbb();
    for id in ["r1", "r2", "r3"] {
        app.recognised_company(id).await;
    }
    app.post("/v1/companies/r2/recognitions", &sbb, grant("25655")).await;
    app.post("/v1/companies/r2/suspend", &sbb, reason()).await;
    let last = app.post("/v1/companies/r3/revoke", &sbb, reason()).await;
    let position = position_of(last).await;
    assert!(
        app.state
            .projections
            .await_position("company_registry", position, std::time::Duration::from_secs(10))
            .await
            .expect("wait")
    );

    let snapshot = || async {
        let rows: Vec<(String, String, Value, i64, i64)> = sqlx::query_as(
            "SELECT company_id, status, record, version, last_position FROM company_registry ORDER BY company_id",
        )
        .fetch_all(&app.pool)
        .await
        .expect("registry");
        let recognitions: Vec<(String, String, chrono::NaiveDate)> = sqlx::query_as(
            "SELECT company_id, qualification, valid_until FROM company_recognitions ORDER BY 1, 2",
        )
        .fetch_all(&app.pool)
        .await
        .expect("recognitions");
        (rows, recognitions)
    };
    let live = snapshot().await;
    assert_eq!(live.0.len(), 3);
    let reached = app.state.projections.rebuild("company_registry").await.expect("rebuild");
    assert!(reached >= position);
    assert_eq!(snapshot().await, live, "a rebuild from position 0 must give the same read model");
    assert!(app.state.projections.rebuild("nonsense").await.is_err());
}
