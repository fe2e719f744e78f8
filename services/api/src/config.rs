//! The API's settings (the binary fills them from flags and environment).

use std::time::Duration;

use stagepact_domain::wage::WageTable;
use stagepact_store::MasterKey;

/// How tokens are verified (and, for HS256, minted).
#[derive(Clone)]
pub enum JwtKey {
    /// HS256 with a shared secret.
    Hs256(Vec<u8>),
    /// RS256 with a PEM public key.
    Rs256(Vec<u8>),
    /// ES256 with a PEM public key.
    Es256(Vec<u8>),
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        f.write_str(match self {
            Self::Hs256(_) => "Hs256(..)",
            Self::Rs256(_) => "Rs256(..)",
            Self::Es256(_) => "Es256(..)",
        })
    }
}

/// Token settings: key, and the issuer and audience every token must carry.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The verification key and algorithm.
    pub key: JwtKey,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Tokens.
    pub jwt: JwtConfig,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Largest body of a bulk operation (`importStudents`), in bytes.
    pub bulk_body_limit: usize,
    /// Longest a read waits for projections to reach `min_position`.
    pub min_position_wait: Duration,
    /// The statutory minimum wage table C3 checks BBL wages against.
    pub wages: WageTable,
    /// The key that wraps every data subject's key (DESIGN §6).
    pub master_key: std::sync::Arc<MasterKey>,
    /// Working days a school has to acknowledge a report before it is overdue (D4).
    pub report_ack_working_days: u32,
    /// How often forwarded signals are released to SBB, as one batch (D4).
    pub signal_release_interval: Duration,
    /// Working days within which a report's first follow-up step counts as in
    /// time (D4; the goal-2 indicator).
    pub follow_up_working_days: u32,
    /// Headroom under which open slots count as a shortage, in percent (S2).
    pub shortage_margin_percent: u32,
    /// How often supply and demand are counted to flag shortages (S2).
    pub shortage_check_interval: Duration,
    /// Rate limits per token and per address.
    pub rate_limits: RateLimits,
}

/// A rate: requests per second, and how many may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Requests allowed in a burst above the sustained rate.
    pub burst: u32,
}

/// Rate limits; `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Per bearer token (a request without one counts for its address).
    pub per_token: Option<Rate>,
    /// Per client address (the peer; behind a proxy, the proxy's).
    pub per_address: Option<Rate>,
}

/// The path of the one bulk operation, which takes larger bodies.
pub const BULK_PATH: &str = "/v1/students/import";

impl ApiConfig {
    /// The body limit of a request to `path`.
    pub fn body_limit_for(&self, path: &str) -> usize {
        if path == BULK_PATH { self.bulk_body_limit } else { self.body_limit }
    }

    /// Defaults around a token configuration.
    pub fn new(jwt: JwtConfig) -> Self {
        Self {
            jwt,
            body_limit: 64 * 1024,
            // 1000 students of about 250 bytes each, with room to spare.
            bulk_body_limit: 2 * 1024 * 1024,
            min_position_wait: Duration::from_secs(5),
            wages: WageTable::embedded(),
            // A fresh key per configuration: the binary sets the configured or
            // the development key; a test server gets its own.
            master_key: std::sync::Arc::new(MasterKey::generate()),
            // One school week: soon enough that a student is not left waiting,
            // long enough for a part-time reporting-point officer.
            report_ack_working_days: 5,
            // Daily: a batch of a day's signals in random order says nothing
            // about any one report; SBB acts on patterns, urgent cases come
            // as complaints, which are delivered at once.
            signal_release_interval: Duration::from_secs(24 * 3600),
            // Two school weeks: the acknowledgement is due in one, a
            // conversation or a replacement offer takes arranging.
            follow_up_working_days: 10,
            // Exactly as many slots as students is already tight: one
            // withdrawn offer leaves a student without a place.
            shortage_margin_percent: 10,
            // Supply and demand move with the school year, not by the minute.
            shortage_check_interval: Duration::from_secs(15 * 60),
            // A student app or trainer makes a few requests a second; a
            // school's ERP syncs in bulk (`importStudents`). Per address
            // more: a school's network shows many users as one address.
            rate_limits: RateLimits {
                per_token: Some(Rate { per_second: 50, burst: 100 }),
                per_address: Some(Rate { per_second: 500, burst: 1_000 }),
            },
        }
    }
}
