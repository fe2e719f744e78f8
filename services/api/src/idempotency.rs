//! `Idempotency-Key` on POSTs: a retry with the same key and body gets the first
//! response and records nothing new; the same key with another body is refused.
//!
//! The key is scoped to the caller (a key means nothing across callers). The
//! keyed request runs to its end even when the client disconnects, and a
//! command that committed always answers 2xx, so its response is recorded. Only
//! a process crash between the commit and the record leaves the key "in
//! progress" until its lease ends; a retry then runs the command again (see the
//! closing note of issue 2: the record is not in the events' transaction).

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use stagepact_store::idempotency::{self, Claim, StoredResponse};

use crate::auth::bearer;
use crate::problem::ApiError;
use crate::server::AppState;

/// The header.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Response headers worth replaying.
const REPLAYED: [&str; 4] = ["content-type", "location", "etag", "x-log-position"];

/// The middleware: a pass-through for anything but a keyed POST.
pub async fn idempotent(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST || !request.headers().contains_key(&IDEMPOTENCY_KEY) {
        return next.run(request).await;
    }
    // Run to the end even if the client goes away: a command that committed
    // must also get its response recorded, or a retry would run it again.
    let run = tokio::spawn(keyed(state, request, next));
    match run.await {
        Ok(Ok(response) | Err(response)) => response,
        Err(error) => ApiError::Internal(Box::new(error)).into_response(),
    }
}

async fn keyed(state: AppState, request: Request, next: Next) -> Result<Response, Response> {
    let key = request
        .headers()
        .get(&IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key must be 1-255 visible ASCII characters".into())
                .into_response()
        })?;
    let (mut parts, body) = request.into_parts();
    // Unauthenticated requests pass through: the handler answers 401.
    let principal = match bearer(&parts).and_then(|token| state.auth.verify(token)) {
        Ok(principal) => principal,
        Err(_) => return Ok(next.run(Request::from_parts(parts, body)).await),
    };
    let limit = state.config.body_limit_for(parts.uri.path());
    let bytes =
        to_bytes(body, limit).await.map_err(|_| ApiError::PayloadTooLarge.into_response())?;
    let hash = request_hash(
        &parts.method,
        parts.uri.path_and_query().map(|p| p.as_str()),
        &parts.headers,
        &bytes,
    );
    let scope = principal.scope();
    parts.extensions.insert(principal);

    match idempotency::claim(&state.pool, &scope, &key, &hash)
        .await
        .map_err(|e| ApiError::from(e).into_response())?
    {
        Claim::Replay(stored) => return Ok(replay(stored)),
        Claim::InProgress => return Err(ApiError::IdempotencyInProgress.into_response()),
        Claim::Mismatch => return Err(ApiError::IdempotencyKeyReused.into_response()),
        Claim::Run => {}
    }

    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let status = response.status();
    // Failures on our side (and throttling) may succeed on retry: forget the key.
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        if let Err(error) = idempotency::release(&state.pool, &scope, &key).await {
            tracing::warn!(%error, "could not release an idempotency key");
        }
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, usize::MAX).await.map_err(|_| {
        ApiError::Internal("could not buffer the response body".into()).into_response()
    })?;
    let stored = StoredResponse {
        status: status.as_u16(),
        headers: REPLAYED
            .iter()
            .filter_map(|name| {
                let value = parts.headers.get(*name)?.to_str().ok()?;
                Some(((*name).to_owned(), value.to_owned()))
            })
            .collect(),
        body: body.to_vec(),
    };
    if let Err(error) = idempotency::complete(&state.pool, &scope, &key, &stored).await {
        tracing::warn!(%error, "could not store an idempotent response");
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// What makes two requests "the same": method, target, the preconditions, body.
fn request_hash(
    method: &Method,
    target: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str());
    hasher.update([0]);
    hasher.update(target.unwrap_or_default());
    hasher.update([0]);
    if let Some(if_match) = headers.get(axum::http::header::IF_MATCH) {
        hasher.update(if_match.as_bytes());
    }
    hasher.update([0]);
    hasher.update(body);
    hasher.finalize().to_vec()
}

fn replay(stored: StoredResponse) -> Response {
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
