//! Rate limits per token and per client address (tower_governor), answered
//! with a 429 problem and `Retry-After`. A token is counted by a hash of it
//! (the token itself is never kept); a request without one counts for its
//! address only. Behind a proxy every client has the proxy's address: set
//! the per-address limit for that, or off.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

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

/// What the limiters remember: an allowance per token and per address seen.
/// A caller is forgotten once its allowance has refilled (it is then no
/// different from a caller never seen); without that, every token ever
/// presented would stay in memory, and tokens are renewed all day.
#[derive(Clone, Default)]
pub struct Callers {
    /// Per limiter: forget the callers whose allowance is full again, and
    /// say how many it still remembers.
    limiters: Vec<Arc<dyn Fn() -> usize + Send + Sync>>,
}

impl std::fmt::Debug for Callers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callers").field("limiters", &self.limiters.len()).finish()
    }
}

impl Callers {
    /// Forgets the callers whose allowance is full again; returns how many
    /// are still remembered, over all limiters.
    pub fn forget_idle(&self) -> usize {
        self.limiters.iter().map(|forget_idle| forget_idle()).sum()
    }

    /// Forgets idle callers every minute, for good.
    pub async fn forget_idle_every_minute(self) {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            every.tick().await;
            self.forget_idle();
        }
    }
}

/// `router` with a limit of `rate` per key of `extractor`.
fn with_limit<S, K>(router: Router<S>, callers: &mut Callers, extractor: K, rate: Rate) -> Router<S>
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
        Some(config) => {
            let limiter = Arc::clone(config.limiter());
            callers.limiters.push(Arc::new(move || {
                limiter.retain_recent();
                limiter.shrink_to_fit();
                limiter.len()
            }));
            router.layer(GovernorLayer::new(config).error_handler(problem))
        }
        // Only a zero period or burst is refused, and both are at least one.
        None => router,
    }
}

/// `router` with the configured limits, the per-address one outermost, and
/// the limiters' memory of callers.
pub fn limited<S>(router: Router<S>, limits: RateLimits) -> (Router<S>, Callers)
where
    S: Clone + Send + Sync + 'static,
{
    let mut callers = Callers::default();
    let router = match limits.per_token {
        Some(rate) => with_limit(router, &mut callers, ByToken, rate),
        None => router,
    };
    let router = match limits.per_address {
        Some(rate) => with_limit(router, &mut callers, ByAddress, rate),
        None => router,
    };
    (router, callers)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn callers_are_forgotten_once_their_allowance_has_refilled() {
        // Refills in a tenth and a fifth of a second: long enough that the
        // twenty requests are all remembered at the first count, short
        // enough to wait for.
        let limits = RateLimits {
            per_token: Some(Rate { per_second: 10, burst: 1 }),
            per_address: Some(Rate { per_second: 100, burst: 100 }),
        };
        let (router, callers) =
            limited(Router::new().route("/", axum::routing::get(|| async { "ok" })), limits);
        for n in 0..20 {
            let request = Request::get("/")
                .header(header::AUTHORIZATION, format!("Bearer token-{n}"))
                .body(Body::empty())
                .expect("request");
            let response = router.clone().oneshot(request).await.expect("response");
            assert_eq!(response.status(), StatusCode::OK);
        }
        // Twenty tokens and the one address, until their allowance refills.
        assert_eq!(callers.forget_idle(), 21);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while callers.forget_idle() > 0 {
            assert!(tokio::time::Instant::now() < deadline, "callers stayed remembered");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
