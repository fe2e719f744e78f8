//! Bearer-token authentication (JWT with the claims contract of DESIGN §5) and
//! the caller it yields.

use std::collections::HashSet;
use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{JwtConfig, JwtKey};
use crate::problem::ApiError;
use crate::server::AppState;

/// Who the caller is to the pact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A student (student app).
    Student,
    /// School staff or a school's ERP; `org` is the school's BRIN code.
    School,
    /// A learning company's trainer; `org` is SBB's company id.
    Company,
    /// SBB (Samenwerkingsorganisatie Beroepsonderwijs Bedrijfsleven).
    Sbb,
    /// A monitor (ministry, region): aggregates only.
    Monitor,
}

impl Role {
    /// The role as in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Student => "student",
            Self::School => "school",
            Self::Company => "company",
            Self::Sbb => "sbb",
            Self::Monitor => "monitor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The claims of a Stagepact token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience: one, or a list (RFC 7519 allows both; jsonwebtoken checks it).
    pub aud: Audience,
    /// Subject: who acts (a staff member, an app user).
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The caller's role.
    pub role: Role,
    /// The organisation: school BRIN for `school`, SBB company id for `company`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The student id, for `student`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student: Option<String>,
}

/// The `aud` claim.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `sub`.
    pub subject: String,
    /// `role`.
    pub role: Role,
    /// `org`, required for schools and companies.
    pub org: Option<String>,
    /// `student`, required for students.
    pub student: Option<String>,
}

impl Principal {
    /// Refuses the caller unless its role is one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("the {} role may not do this", self.role)))
        }
    }

    /// For a company caller, whether `company_id` is its own company.
    pub fn is_company(&self, company_id: &str) -> bool {
        self.role == Role::Company && self.org.as_deref() == Some(company_id)
    }

    /// For a school caller, whether `school` is its own school.
    pub fn is_school(&self, school: &str) -> bool {
        self.role == Role::School && self.org.as_deref() == Some(school)
    }

    /// For a student caller, whether they are student `student_id` of `school`.
    pub fn is_student(&self, school: &str, student_id: &str) -> bool {
        self.role == Role::Student
            && self.org.as_deref() == Some(school)
            && self.student.as_deref() == Some(student_id)
    }

    /// The caller's organisation (`org`): a school's or company's code, a
    /// student's school. Present for those roles by `Authenticator::verify`.
    pub fn org(&self) -> Result<&str, ApiError> {
        self.org.as_deref().ok_or_else(|| {
            ApiError::Forbidden(format!("the {} role acts for no organisation", self.role))
        })
    }

    /// A key that separates callers, e.g. for idempotency records.
    pub fn scope(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.role,
            self.org.as_deref().unwrap_or(""),
            self.student.as_deref().unwrap_or(""),
            self.subject
        )
    }
}

/// How many verified tokens an authenticator remembers (see `verified`): a
/// few thousand clients at a time, each renewing its token now and then.
const REMEMBERED_TOKENS: usize = 10_000;

/// Verifies tokens against the configured key, issuer and audience.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
    signer: Option<EncodingKey>,
    issuer: String,
    audience: String,
    /// Tokens that passed verification, with what they stand for, until
    /// they expire. A client sends the same token with every request until it
    /// renews it: checking its signature and decoding its claims each time
    /// cost about a twentieth of a command's CPU with HS256 (BENCHMARKS.md,
    /// "Placement lifecycle", runs I), and RS256 or ES256 cost many times
    /// that. Keyed by the whole token, so only the very token verified
    /// matches; its expiry and not-before are checked again on every use.
    verified: quick_cache::sync::Cache<String, Verified>,
}

/// A token that passed verification.
#[derive(Debug, Clone)]
struct Verified {
    principal: Principal,
    exp: u64,
    nbf: Option<u64>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator").field("algorithms", &self.validation.algorithms).finish()
    }
}

/// A key that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid JWT key: {0}")]
pub struct KeyError(#[from] jsonwebtoken::errors::Error);

impl Authenticator {
    /// An authenticator for `config`. The algorithm is pinned by the key type:
    /// a token signed with any other algorithm (or `none`) is refused.
    pub fn new(config: &JwtConfig) -> Result<Self, KeyError> {
        let (algorithm, key, signer) = match &config.key {
            JwtKey::Hs256(secret) => (
                Algorithm::HS256,
                DecodingKey::from_secret(secret),
                Some(EncodingKey::from_secret(secret)),
            ),
            JwtKey::Rs256(pem) => (Algorithm::RS256, DecodingKey::from_rsa_pem(pem)?, None),
            JwtKey::Es256(pem) => (Algorithm::ES256, DecodingKey::from_ec_pem(pem)?, None),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.required_spec_claims =
            ["exp", "iss", "aud", "sub"].into_iter().map(str::to_owned).collect::<HashSet<_>>();
        validation.validate_nbf = true;
        validation.leeway = 30;
        Ok(Self {
            key,
            validation,
            signer,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            verified: quick_cache::sync::Cache::new(REMEMBERED_TOKENS),
        })
    }

    /// The caller a token stands for.
    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        self.verify_at(token, jsonwebtoken::get_current_timestamp())
    }

    /// `verify` at `now` (seconds since the epoch) for a token verified
    /// before; a token seen for the first time is verified on the clock.
    fn verify_at(&self, token: &str, now: u64) -> Result<Principal, ApiError> {
        if let Some(verified) = self.verified.get(token) {
            // The checks jsonwebtoken makes of a token's times, as it makes them.
            let leeway = self.validation.leeway;
            let refused = if verified.exp.saturating_add(leeway) < now {
                Some(jsonwebtoken::errors::ErrorKind::ExpiredSignature)
            } else if verified.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
                Some(jsonwebtoken::errors::ErrorKind::ImmatureSignature)
            } else {
                None
            };
            return match refused {
                None => Ok(verified.principal),
                Some(kind) => {
                    if kind == jsonwebtoken::errors::ErrorKind::ExpiredSignature {
                        self.verified.remove(token);
                    }
                    let error = jsonwebtoken::errors::Error::from(kind);
                    Err(ApiError::Unauthorized(format!("invalid token: {error}")))
                }
            };
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|error| ApiError::Unauthorized(format!("invalid token: {error}")))?;
        let (exp, nbf) = (data.claims.exp, data.claims.nbf);
        let verified = Verified { principal: principal_of(data.claims)?, exp, nbf };
        self.verified.insert(token.to_owned(), verified.clone());
        Ok(verified.principal)
    }

    /// Mints a token with the configured HS256 secret (for trying the API).
    pub fn mint(
        &self,
        subject: &str,
        role: Role,
        org: Option<String>,
        student: Option<String>,
        valid_for_seconds: u64,
    ) -> Result<String, MintError> {
        let signer = self.signer.as_ref().ok_or(MintError::NoSecret)?;
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: Audience::One(self.audience.clone()),
            sub: subject.to_owned(),
            exp: now + valid_for_seconds,
            iat: Some(now),
            nbf: None,
            role,
            org,
            student,
        };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, signer)?)
    }
}

/// The caller verified claims stand for, if they name what their role needs.
fn principal_of(claims: Claims) -> Result<Principal, ApiError> {
    let needs = |present: &Option<String>, claim: &str| match present.as_deref() {
        Some(value) if !value.trim().is_empty() => Ok(()),
        _ => Err(ApiError::Unauthorized(format!(
            "invalid token: the {} role needs the `{claim}` claim",
            claims.role
        ))),
    };
    match claims.role {
        Role::School | Role::Company => needs(&claims.org, "org")?,
        // A student number is unique only within its school (`org`).
        Role::Student => {
            needs(&claims.student, "student")?;
            needs(&claims.org, "org")?;
        }
        Role::Sbb | Role::Monitor => {}
    }
    if claims.sub.trim().is_empty() {
        return Err(ApiError::Unauthorized("invalid token: empty `sub`".into()));
    }
    Ok(Principal {
        subject: claims.sub,
        role: claims.role,
        org: claims.org,
        student: claims.student,
    })
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// Only the HS256 secret can sign; public keys cannot.
    #[error("tokens can only be minted with an HS256 secret (STAGEPACT_JWT_SECRET)")]
    NoSecret,
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// The bearer token of a request, if it has one.
pub(crate) fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer token".into()))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => {
            Err(ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into()))
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let principal = state.auth.verify(bearer(parts)?)?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a test secret of a sensible length";

    fn authenticator() -> Authenticator {
        Authenticator::new(&JwtConfig {
            key: JwtKey::Hs256(SECRET.to_vec()),
            issuer: "stagepact-dev".into(),
            audience: "stagepact".into(),
        })
        .expect("authenticator")
    }

    fn token(exp: u64, nbf: Option<u64>) -> String {
        let claims = Claims {
            iss: "stagepact-dev".into(),
            aud: Audience::One("stagepact".into()),
            sub: "app-user".into(),
            exp,
            iat: None,
            nbf,
            role: Role::Student,
            org: Some("25XX".into()),
            student: Some("s-1".into()),
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .expect("token")
    }

    fn refusal(result: Result<Principal, ApiError>) -> String {
        match result {
            Err(ApiError::Unauthorized(detail)) => detail,
            other => panic!("expected a 401, got {other:?}"),
        }
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let auth = authenticator();
        let now = jsonwebtoken::get_current_timestamp();
        let token = token(now + 60, None);
        let principal = auth.verify(&token).expect("valid now");
        assert_eq!(auth.verify_at(&token, now + 60 + 30).expect("within the leeway"), principal);
        let expired = refusal(auth.verify_at(&token, now + 60 + 31));
        assert!(expired.contains("ExpiredSignature"), "{expired}");
    }

    #[test]
    fn a_remembered_token_is_not_used_before_its_time() {
        let auth = authenticator();
        let now = jsonwebtoken::get_current_timestamp();
        // Within the leeway now, so it verifies and is remembered ...
        let token = token(now + 600, Some(now + 20));
        auth.verify(&token).expect("valid within the leeway");
        // ... but a clock that reads earlier still refuses it.
        let early = refusal(auth.verify_at(&token, now - 20));
        assert!(early.contains("ImmatureSignature"), "{early}");
        assert!(auth.verify_at(&token, now).is_ok());
    }

    #[test]
    fn only_the_very_token_verified_is_remembered() {
        let auth = authenticator();
        let now = jsonwebtoken::get_current_timestamp();
        let token = token(now + 600, None);
        auth.verify(&token).expect("valid");
        // The same header and claims under another signature.
        let (signed, _) = token.rsplit_once('.').expect("three parts");
        let forged = format!("{signed}.{}", "A".repeat(43));
        let refused = refusal(auth.verify(&forged));
        assert!(refused.contains("InvalidSignature"), "{refused}");
    }
}
