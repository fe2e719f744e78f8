//! Entity tags on reads: every successful GET gets an `ETag` (the handler's, or
//! a hash of the body), and `If-None-Match` with a matching tag gets 304.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

/// The middleware.
pub async fn entity_tags(request: Request, next: Next) -> Response {
    if request.method() != Method::GET {
        return next.run(request).await;
    }
    let if_none_match = request.headers().get(header::IF_NONE_MATCH).cloned();
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let body = match parts.headers.get(header::ETAG) {
        Some(_) => body,
        None => {
            let Ok(bytes) = to_bytes(body, usize::MAX).await else {
                return Response::from_parts(parts, Body::empty());
            };
            parts.headers.insert(header::ETAG, tag_of(&bytes));
            Body::from(bytes)
        }
    };
    if let (Some(wanted), Some(tag)) = (if_none_match, parts.headers.get(header::ETAG))
        && matches(&wanted, tag)
    {
        let mut not_modified = Response::new(Body::empty());
        *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
        not_modified.headers_mut().insert(header::ETAG, tag.clone());
        return not_modified;
    }
    Response::from_parts(parts, body)
}

/// The weak entity tag of a body: a hash of its bytes.
pub(crate) fn tag_of(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let tag = format!("W/\"{}\"", hex(&digest[..12]));
    // Invariant: quotes and hex digits are valid header characters.
    HeaderValue::from_str(&tag).unwrap_or_else(|_| unreachable!("a quoted hex digest"))
}

/// Weak comparison (RFC 9110 §13.1.2): `W/` prefixes are ignored.
fn matches(if_none_match: &HeaderValue, tag: &HeaderValue) -> bool {
    let Ok(list) = if_none_match.to_str() else { return false };
    let Ok(tag) = tag.to_str() else { return false };
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    list.trim() == "*" || list.split(',').any(|candidate| opaque(candidate) == opaque(tag))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
