//! Idempotency records: the first response to a POST with an `Idempotency-Key`,
//! kept per caller so a retry returns it instead of running the command again.

use std::time::Duration;

use sqlx::PgPool;

use crate::StoreError;

/// How long a first request may run before a retry may take its key over.
const LEASE: Duration = Duration::from_secs(60);
/// How long keys are kept.
const RETENTION_HOURS: i32 = 24;

/// A stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers worth replaying, as (name, value).
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// What to do with a request that carries a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time (or a stale attempt): run it, then `complete` or `release`.
    Run,
    /// Done before: answer with this.
    Replay(StoredResponse),
    /// The first request with this key is still running.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

/// (request hash, status, headers, body) as stored.
type StoredRow = (Vec<u8>, Option<i16>, Option<serde_json::Value>, Option<Vec<u8>>);

/// Claims `key` for a request with body hash `hash`.
pub async fn claim(
    pool: &PgPool,
    scope: &str,
    key: &str,
    hash: &[u8],
) -> Result<Claim, StoreError> {
    let lease = format!("{} seconds", LEASE.as_secs());
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, locked_until)
         VALUES ($1, $2, $3, now() + $4::interval)
         ON CONFLICT (scope, key) DO UPDATE
            SET request_hash = excluded.request_hash, locked_until = excluded.locked_until,
                created_at = now(), status = NULL, response_headers = NULL, response_body = NULL
          WHERE idempotency_keys.created_at < now() - make_interval(hours => $5)",
    )
    .bind(scope)
    .bind(key)
    .bind(hash)
    .bind(&lease)
    .bind(RETENTION_HOURS)
    .execute(pool)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::Run);
    }
    let row: Option<StoredRow> = sqlx::query_as(
        "SELECT request_hash, status, response_headers, response_body
           FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    let Some((stored_hash, status, headers, body)) = row else {
        // Removed in between (a failed first attempt released it): try once more.
        return Box::pin(claim(pool, scope, key, hash)).await;
    };
    if stored_hash != hash {
        return Ok(Claim::Mismatch);
    }
    if let Some(status) = status {
        let headers: Vec<(String, String)> =
            headers.map(serde_json::from_value).transpose()?.unwrap_or_default();
        return Ok(Claim::Replay(StoredResponse {
            status: u16::try_from(status).unwrap_or(500),
            headers,
            body: body.unwrap_or_default(),
        }));
    }
    // Still running: take it over only if its lease ran out (a crashed attempt).
    let taken = sqlx::query(
        "UPDATE idempotency_keys SET locked_until = now() + $3::interval
          WHERE scope = $1 AND key = $2 AND status IS NULL AND locked_until < now()",
    )
    .bind(scope)
    .bind(key)
    .bind(&lease)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(if taken == 1 { Claim::Run } else { Claim::InProgress })
}

/// Stores the response of a claimed request.
pub async fn complete(
    pool: &PgPool,
    scope: &str,
    key: &str,
    response: &StoredResponse,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE idempotency_keys SET status = $3, response_headers = $4, response_body = $5
          WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .bind(i16::try_from(response.status).unwrap_or(500))
    .bind(serde_json::to_value(&response.headers)?)
    .bind(&response.body)
    .execute(pool)
    .await?;
    Ok(())
}

/// Gives a claimed key back (the request failed on our side; a retry may run).
pub async fn release(pool: &PgPool, scope: &str, key: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status IS NULL")
        .bind(scope)
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}

/// Deletes records older than the retention period; returns how many.
pub async fn purge(pool: &PgPool) -> Result<u64, StoreError> {
    let purged = sqlx::query(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)",
    )
    .bind(RETENTION_HOURS)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(purged)
}
