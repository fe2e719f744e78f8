//! Idempotency records against real PostgreSQL.

use stagepact_store::idempotency::{Claim, StoredResponse, claim, complete, purge, release};
use stagepact_store::testing::fresh_pool;

#[tokio::test]
async fn a_key_runs_once_replays_after_and_expires() {
    let pool = fresh_pool().await.expect("pool");
    assert_eq!(claim(&pool, "sbb|a", "k", b"body").await.expect("claim"), Claim::Run);
    assert_eq!(claim(&pool, "sbb|a", "k", b"body").await.expect("claim"), Claim::InProgress);
    assert_eq!(claim(&pool, "sbb|a", "k", b"other").await.expect("claim"), Claim::Mismatch);
    assert_eq!(
        claim(&pool, "sbb|b", "k", b"body").await.expect("claim"),
        Claim::Run,
        "keys are per caller"
    );
    let response = StoredResponse {
        status: 202,
        headers: vec![("etag".into(), "\"2\"".into())],
        body: b"{}".to_vec(),
    };
    complete(&pool, "sbb|a", "k", &response).await.expect("complete");
    assert_eq!(claim(&pool, "sbb|a", "k", b"body").await.expect("claim"), Claim::Replay(response));

    // A failed first attempt gives the key back.
    release(&pool, "sbb|b", "k").await.expect("release");
    assert_eq!(claim(&pool, "sbb|b", "k", b"body").await.expect("claim"), Claim::Run);

    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE scope = 'sbb|a'")
        .execute(&pool)
        .await
        .expect("age");
    assert_eq!(purge(&pool).await.expect("purge"), 1);
    assert_eq!(
        claim(&pool, "sbb|a", "k", b"other").await.expect("claim"),
        Claim::Run,
        "an expired key is new"
    );
}
