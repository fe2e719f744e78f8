//! Stagepact's HTTP API: axum routes over the store, JWT authentication and
//! per-role authorisation, RFC 9457 problems, idempotent POSTs, conditional
//! requests, the CloudEvents feed, and the OpenAPI document generated from it all.

pub mod auth;
mod conditional;
pub mod config;
mod dashboard;
pub mod delivery;
mod extract;
mod idempotency;
mod limits;
pub mod openapi;
pub mod overviews;
mod problem;
mod routes;
pub mod server;

pub use config::{ApiConfig, JwtConfig, JwtKey, Rate, RateLimits};
pub use problem::{ApiError, FieldError, Problem};
pub use server::{App, AppState};
