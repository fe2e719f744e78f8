//! The monitoring dashboard (`/dashboard`): a page for monitors, SBB and
//! schools that logs in with a token and draws the four goals from
//! `getIndicators`. Its assets are compiled into the binary, so it works
//! offline and always matches the API it is served by.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::server::AppState;

const INDEX: &str = include_str!("../assets/dashboard/index.html");
const SCRIPT: &str = include_str!("../assets/dashboard/dashboard.js");
const STYLE: &str = include_str!("../assets/dashboard/dashboard.css");

/// Only this server's own assets and API: no inline script, no framing, no
/// third party (the token must not leave the page).
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            // The assets change with the binary: revalidate rather than guess.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
}

/// The dashboard's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route(
            "/dashboard/dashboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/dashboard/dashboard.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}
