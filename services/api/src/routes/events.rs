//! The pull feed for integrators: the global log as CloudEvents 1.0, with the
//! log position as cursor, filtered by type and by what the caller may see.

use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use stagepact_domain::catalog;
use stagepact_store::{Audience, FeedFilter, LoggedEvent};
use utoipa::{IntoParams, ToSchema};

use super::ReadProblems;
use crate::auth::{Principal, Role};
use crate::problem::{ApiError, FieldError};
use crate::server::AppState;

/// Most events per call.
const MAX_LIMIT: i64 = 1_000;
/// Longest long-poll, in seconds.
const MAX_WAIT: u64 = 30;
/// How far apart a long poll's looks at the log are (the first is at once),
/// and how long one gathers before it answers with a page that is not full.
///
/// A follower at the head polls again as soon as it has its page. Answered
/// at each event as it came, it cost a request and a read of the log per
/// append, and a read per append while it waited: in the soak at 2,000
/// commands/s, a school's one follower made about 900 reads of the log a
/// second, a tenth of PostgreSQL's work (BENCHMARKS.md, "Soak"), and a
/// thousand schools following would make a million. Paced, each follower
/// costs at most one look per `GATHER` however busy the log is, and an event
/// reaches it at most that much later: nothing an integrator's sync notices.
/// A full page is answered at once: a follower that is behind catches up at
/// full speed. `wait=0` is answered at once, as it always was.
const GATHER: Duration = Duration::from_millis(50);

/// Query of `listEvents` (documentation; parsed by hand because `type` repeats).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "documents the query for OpenAPI; parsed by hand in `parse`")]
pub struct FeedQuery {
    /// Only events after this log position (exclusive); 0 or absent: from the start.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Most events to return, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Only these CloudEvents types (repeatable), e.g. `nl.stagepact.company.recognition_suspended`.
    #[param(rename = "type", explode, style = Form)]
    types: Option<Vec<String>>,
    /// Long-poll: wait up to this many seconds (max 30) for a matching event when none is there yet.
    /// A long poll looks at the log at most every 50 ms and answers a page that is not full
    /// once 50 ms have passed since the call, so a follower at the head gets events in pages
    /// of up to 50 ms, not one call per event; a full page is answered at once.
    #[param(minimum = 0, maximum = 30)]
    wait: Option<u64>,
}

/// One event as a CloudEvents 1.0 JSON object.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CloudEvent {
    /// Always `1.0`.
    pub specversion: &'static str,
    /// Unique and stable: `<aggregate>:<id>:<sequence>`.
    pub id: String,
    /// The resource the event belongs to, e.g. `/v1/companies/100012345`.
    pub source: String,
    /// `nl.stagepact.<aggregate>.<event>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The aggregate id.
    pub subject: String,
    /// When it was recorded (RFC 3339).
    pub time: DateTime<Utc>,
    /// Always `application/json`.
    pub datacontenttype: &'static str,
    /// The JSON Schema of `data`, served by this API.
    pub dataschema: String,
    /// Extension attribute: the event's log position (the cursor).
    pub position: i64,
    /// The event's data.
    pub data: Value,
}

/// A page of the feed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventPage {
    /// The events, in log order.
    pub events: Vec<CloudEvent>,
    /// Pass as `after` in the next call. It may lie beyond the last event
    /// returned: the log was read up to there and nothing else matched.
    pub next: i64,
}

struct Params {
    after: i64,
    limit: i64,
    types: Vec<(String, String)>,
    wait: Duration,
}

fn parse(raw: Option<&str>) -> Result<Params, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let mut params = Params { after: 0, limit: 100, types: Vec::new(), wait: Duration::ZERO };
    let mut errors = Vec::new();
    for (name, value) in pairs {
        match name.as_str() {
            "after" => match value.parse::<i64>() {
                Ok(after) if after >= 0 => params.after = after,
                _ => errors
                    .push(FieldError::new("after", "must be a log position (an integer >= 0)")),
            },
            "limit" => match value.parse::<i64>() {
                Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => params.limit = limit,
                _ => errors.push(FieldError::new("limit", format!("must be 1-{MAX_LIMIT}"))),
            },
            "wait" => match value.parse::<u64>() {
                Ok(wait) if wait <= MAX_WAIT => params.wait = Duration::from_secs(wait),
                _ => errors.push(FieldError::new("wait", format!("must be 0-{MAX_WAIT} seconds"))),
            },
            "type" => match catalog::stored_type(&value) {
                Some((aggregate, event)) => {
                    params.types.push((aggregate.to_owned(), event.to_owned()))
                }
                None => {
                    errors.push(FieldError::new("type", format!("unknown event type {value:?}")))
                }
            },
            other => errors.push(FieldError::new(other, "unknown query parameter")),
        }
    }
    if errors.is_empty() { Ok(params) } else { Err(ApiError::Validation(errors, None)) }
}

/// What a caller may see of the log (DESIGN §5):
/// - SBB: every company event;
/// - a school: every company and offer event (without SBB's reasons), and the
///   student and placement events of its own students;
/// - a company: its own company events, and its offers' and placements' events.
///
/// Students read their own timeline instead (`getMyTimeline`); monitors only
/// aggregates.
fn visibility(principal: &Principal) -> Result<FeedFilter, ApiError> {
    let org = principal.org.clone().unwrap_or_default();
    let audience = match principal.role {
        // Not signals: SBB reads those only as suppressed counts (`listSignals`).
        Role::Sbb => Audience {
            whole_types: ["company", "complaint", "investigation", "shortage"]
                .map(str::to_owned)
                .to_vec(),
            party: None,
        },
        Role::School => Audience {
            whole_types: vec!["company".to_owned(), "offer".to_owned()],
            party: Some(("school".to_owned(), org)),
        },
        Role::Company => {
            Audience { whole_types: Vec::new(), party: Some(("company".to_owned(), org)) }
        }
        Role::Student | Role::Monitor => {
            return Err(ApiError::Forbidden(format!(
                "the {} role has no event feed",
                principal.role
            )));
        }
    };
    Ok(FeedFilter { audience: Some(audience), ..FeedFilter::default() })
}

/// Fields of company events only SBB and the company itself see: SBB's
/// reasons may concern an investigation.
const SBB_ONLY_FIELDS: [&str; 2] = ["reason", "investigation_id"];

/// One logged event as a CloudEvent for `principal`.
pub(crate) fn cloud_event(principal: &Principal, event: LoggedEvent) -> CloudEvent {
    let kind = catalog::cloud_type(&event.aggregate_type, &event.event_type);
    let mut data = event.data().clone();
    let own = principal.role == Role::Sbb || principal.is_company(&event.aggregate_id);
    if event.aggregate_type == "company"
        && !own
        && let Some(object) = data.as_object_mut()
    {
        for field in SBB_ONLY_FIELDS {
            object.remove(field);
        }
    }
    // A school learns of a shortage its students seek in, not which other
    // schools' students seek there too.
    if principal.role == Role::School
        && event.aggregate_type == "shortage"
        && let Some(object) = data.as_object_mut()
    {
        object.remove("schools");
    }
    if principal.role == Role::Company {
        // A company knows its intern in person, never by the school's number
        // (DESIGN §6): placement events reach it without the student's id.
        if event.aggregate_type == "placement"
            && let Some(student) = data.get_mut("student").and_then(Value::as_object_mut)
        {
            student.remove("student_id");
        }
        // An investigated company is heard, but not told what evidence of
        // which students led to it.
        if event.aggregate_type == "investigation"
            && let Some(object) = data.as_object_mut()
        {
            object.remove("signal_ids");
            object.remove("complaint_id");
        }
    }
    let schema_file =
        format!("{}.v{}.json", kind.rsplit('.').next().unwrap_or_default(), event.event_version);
    CloudEvent {
        specversion: "1.0",
        id: format!("{}:{}:{}", event.aggregate_type, event.aggregate_id, event.sequence),
        source: format!("/v1/{}/{}", collection(&event.aggregate_type), event.aggregate_id),
        subject: event.aggregate_id,
        time: event.recorded_at,
        datacontenttype: "application/json",
        dataschema: format!("/schemas/{}/{schema_file}", event.aggregate_type),
        position: event.position,
        kind,
        data,
    }
}

/// Logged events as CloudEvents for `principal`, with sealed content opened:
/// the feed shows a report's description to the parties who see the report,
/// and `{"erased": true}` once the student's data is erased.
pub(crate) async fn cloud_events(
    state: &AppState,
    principal: &Principal,
    events: Vec<LoggedEvent>,
) -> Result<Vec<CloudEvent>, ApiError> {
    let mut events: Vec<CloudEvent> =
        events.into_iter().map(|e| cloud_event(principal, e)).collect();
    let mut data: Vec<Value> = events.iter_mut().map(|e| e.data.take()).collect();
    state.vault.reveal_all(&mut data).await?;
    for (event, data) in events.iter_mut().zip(data) {
        event.data = data;
    }
    Ok(events)
}

fn collection(aggregate_type: &str) -> String {
    match aggregate_type {
        "company" => "companies".to_owned(),
        other => format!("{other}s"),
    }
}

/// The event feed: CloudEvents after a log position, optionally long-polled.
#[utoipa::path(get, path = "/v1/events", operation_id = "listEvents", tag = "events",
    params(FeedQuery),
    responses((status = 200, description = "Events after `after`, in log order", body = EventPage),
              (status = 304, description = "Not modified"), ReadProblems,
              (status = 422, description = "Invalid query parameters", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["sbb", "school", "company"])))]
pub async fn list_events(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Json<EventPage>, ApiError> {
    let visible = visibility(&principal)?;
    let params = parse(raw.as_deref())?;
    let filter =
        FeedFilter { event_types: (!params.types.is_empty()).then_some(params.types), ..visible };
    let arrived = tokio::time::Instant::now();
    let deadline = arrived + params.wait;
    let mut shutdown = state.shutdown.clone();
    let mut after = params.after;
    let (events, upto, full) = loop {
        let seen_head = state.log.head();
        let looked = tokio::time::Instant::now();
        let (events, upto) = state.log.read_until_head(after, params.limit, &filter).await?;
        let full = events.len() as i64 == params.limit;
        let gathered = looked >= arrived + GATHER;
        if full || (!events.is_empty() && gathered) || looked >= deadline || *shutdown.borrow() {
            break (events, upto, full);
        }
        if events.is_empty() {
            // Nothing for this caller up to `upto`: the next look starts there.
            after = after.max(upto);
        }
        // Events, but not yet a page's worth of time: look again once it has
        // passed (from the same `after`, so the page holds them all). None:
        // wait for the log to move, and look no sooner than `GATHER` after
        // this look. Either way, never past the deadline, where a last look
        // answers.
        let next_look = (looked + GATHER).min(deadline);
        let paced = async {
            if events.is_empty() {
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                state.log.await_head_after(seen_head, remaining).await;
            }
            tokio::time::sleep_until(next_look).await;
        };
        tokio::select! {
            () = paced => {}
            _ = shutdown.changed() => {}
        }
    };
    // A page that is not full has seen everything up to `upto`, so the cursor
    // moves past events the caller does not see or did not ask for.
    let next = match events.last() {
        Some(last) if full => last.position,
        _ => upto.max(params.after),
    };
    Ok(Json(EventPage { events: cloud_events(&state, &principal, events).await?, next }))
}
