//! A student's own view: their placements with the next step for each, and
//! their timeline (every event that names them).

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use stagepact_store::placements;
use utoipa::{IntoParams, ToSchema};

use super::events::{CloudEvent, cloud_events};
use super::placements::{PlacementView, view};
use super::{ReadProblems, today};
use crate::auth::{Principal, Role};
use crate::extract::AppQuery;
use crate::overviews::Rendered;
use crate::problem::{ApiError, FieldError};
use crate::server::AppState;

/// Most placements in an overview (a student has a handful).
const OVERVIEW_LIMIT: i64 = 100;

/// One of the student's placements and what to do next.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OverviewItem {
    /// What the student should do next, if anything: `respond_to_match`,
    /// `wait_for_approval`, `wait_for_agreement`, `sign_agreement`,
    /// `wait_for_start`, `confirm_contact_moment`, `rate_guidance`,
    /// `follow_placement` or `wait_for_school`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_action: Option<String>,
    /// The placement.
    pub placement: PlacementView,
}

/// The student's overview.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Overview {
    /// The school.
    pub school: String,
    /// The student's number.
    pub student_id: String,
    /// The placements, open ones first.
    pub placements: Vec<OverviewItem>,
}

/// `min_position` of the overview.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OverviewQuery {
    /// Wait (bounded) until placements reflect the log up to this position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

fn student(principal: &Principal) -> Result<(String, String), ApiError> {
    principal.require(&[Role::Student])?;
    match (&principal.org, &principal.student) {
        (Some(school), Some(student)) => Ok((school.clone(), student.clone())),
        _ => Err(ApiError::Forbidden("a student token names its school and student".into())),
    }
}

/// The student's placements with the next action for each (the student).
#[utoipa::path(get, path = "/v1/me/overview", operation_id = "getMyOverview", tag = "me",
    params(OverviewQuery),
    responses((status = 200, description = "The student's placements and next actions", body = Overview),
              (status = 304, description = "Not modified"), ReadProblems),
    security(("bearer" = ["student"])))]
pub async fn get_my_overview(
    State(state): State<AppState>,
    principal: Principal,
    AppQuery(query): AppQuery<OverviewQuery>,
) -> Result<Response, ApiError> {
    let (school, student_id) = student(&principal)?;
    let today = today();
    let key = (school, student_id);
    // As this process last rendered it, while the board has not changed it.
    if let Some(rendered) = state.overviews.get(&key, today, query.min_position) {
        return Ok(rendered.response());
    }
    state.await_projection(placements::NAME, query.min_position).await?;
    let (school, student_id) = key;
    let (entries, read_at) =
        placements::of_student(&state.pool, &school, &student_id, OVERVIEW_LIMIT).await?;
    let mut items: Vec<OverviewItem> = entries
        .into_iter()
        .map(|entry| OverviewItem {
            next_action: entry.record.next_action_for_student().map(|a| a.as_str().to_owned()),
            placement: view(&principal, entry, today),
        })
        .collect();
    // Open placements first: the ones with something to do.
    items.sort_by_key(|item| item.next_action.is_none());
    let overview = Overview { school, student_id, placements: items };
    let rendered = Rendered::json(&overview).map_err(|e| ApiError::Internal(Box::new(e)))?;
    if let Some(read_at) = read_at {
        let key = (overview.school, overview.student_id);
        state.overviews.put(key, today, read_at, rendered.clone());
    }
    Ok(rendered.response())
}

/// Cursor of the timeline.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// Only events after this log position.
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Most events, 1-500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// A page of the student's timeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Timeline {
    /// The events, oldest first, as CloudEvents.
    pub events: Vec<CloudEvent>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}

/// The student's own events: enrolment, learning wish and every placement step (the student).
#[utoipa::path(get, path = "/v1/me/timeline", operation_id = "getMyTimeline", tag = "me",
    params(TimelineQuery),
    responses((status = 200, description = "The student's events, in log order", body = Timeline),
              (status = 304, description = "Not modified"), ReadProblems),
    security(("bearer" = ["student"])))]
pub async fn get_my_timeline(
    State(state): State<AppState>,
    principal: Principal,
    AppQuery(query): AppQuery<TimelineQuery>,
) -> Result<Json<Timeline>, ApiError> {
    let (school, student_id) = student(&principal)?;
    let limit = super::page_limit(query.limit)?;
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::Validation(vec![FieldError::new("after", "must be >= 0")], None));
    }
    let key = format!("{school}:{student_id}");
    let events = state.log.timeline(&key, after, limit).await?;
    let next = if events.len() as i64 == limit { events.last().map(|e| e.position) } else { None };
    Ok(Json(Timeline { events: cloud_events(&state, &principal, events).await?, next }))
}
