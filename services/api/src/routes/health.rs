//! Liveness and readiness.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::server::AppState;

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// The highest log position this process knows of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_head: Option<i64>,
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", operation_id = "getLiveness", tag = "health",
    responses((status = 200, description = "The process runs", body = Health)))]
pub async fn live() -> Json<Health> {
    Json(Health { status: "ok", log_head: None })
}

/// The process can serve: the database answers.
#[utoipa::path(get, path = "/health/ready", operation_id = "getReadiness", tag = "health",
    responses((status = 200, description = "Ready", body = Health),
              (status = 503, description = "The database does not answer", body = Health)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let probe = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool);
    match tokio::time::timeout(Duration::from_secs(1), probe).await {
        Ok(Ok(_)) => {
            (StatusCode::OK, Json(Health { status: "ok", log_head: Some(state.log.head()) }))
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health { status: "unavailable", log_head: None }),
        ),
    }
}
