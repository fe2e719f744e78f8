//! Rate limits per token and per client address (tower_governor), answered
//! with a 429 problem and `Retry-After`. A token is counted by a hash of it
//! (the token itself is never kept); a request without one counts for its
//! address only. Behind a proxy every client has the proxy's address: set
//! the per-address limit for that, or off.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, header};
use axum::response::IntoResponse;
use tower_governor::GovernorLayer;
use tower_governor::errors::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;

use crate::config::{Rate, RateLimits};
use crate::problem::ApiError;

/// Whom a request is counted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A bearer token, by its hash.
    Token(u64),
    /// A client address.
    Address(IpAddr),
}

/// The peer address; requests served in-process (no connection) share one.
fn address<T>(request: &Request<T>) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(peer)| peer.ip())
}

/// Counts a request for its bearer token, or its address without one.
#[derive(Debug, Clone, Copy)]
struct ByToken;

impl KeyExtractor for ByToken {
    type Key = Caller;

    fn extract<T>(&self, request: &Request<T>) -> Result<Caller, GovernorError> {
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        Ok(match token {
            Some(token) => {
                let mut hasher = DefaultHasher::new();
                token.hash(&mut hasher);
                Caller::Token(hasher.finish())
            }
            None => Caller::Address(address(request)),
        })
    }
}

/// Counts a request for its address.
#[derive(Debug, Clone, Copy)]
struct ByAddress;

impl KeyExtractor for ByAddress {
    type Key = IpAddr;

    fn extract<T>(&self, request: &Request<T>) -> Result<IpAddr, GovernorError> {
        Ok(address(request))
    }
}

/// A governor error as a problem: 429 with `Retry-After`. The extractors
/// never fail, so any other error is an internal one.
fn problem(error: GovernorError) -> axum::response::Response {
    match error {
        GovernorError::TooManyRequests { wait_time, .. } => {
            ApiError::RateLimited(wait_time).into_response()
        }
        other => ApiError::Internal(Box::new(other)).into_response(),
    }
}

/// `router` with a limit of `rate` per key of `extractor`.
fn with_limit<S, K>(router: Router<S>, extractor: K, rate: Rate) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    K: KeyExtractor + Send + Sync + 'static,
    K::Key: Send + Sync + 'static,
{
    let config = GovernorConfigBuilder::default()
        .key_extractor(extractor)
        .per_nanosecond(1_000_000_000 / u64::from(rate.per_second.max(1)))
        .burst_size(rate.burst.max(1))
        .finish();
    match config {
        Some(config) => router.layer(GovernorLayer::new(config).error_handler(problem)),
        // Only a zero period or burst is refused, and both are at least one.
        None => router,
    }
}

/// `router` with the configured limits, the per-address one outermost.
pub fn limited<S>(router: Router<S>, limits: RateLimits) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let router = match limits.per_token {
        Some(rate) => with_limit(router, ByToken, rate),
        None => router,
    };
    match limits.per_address {
        Some(rate) => with_limit(router, ByAddress, rate),
        None => router,
    }
}
