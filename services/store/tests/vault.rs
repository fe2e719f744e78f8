//! The vault against real PostgreSQL: content round-trips under a subject's key,
//! nothing is stored in the clear, concurrent first writers share one key, erasure
//! shreds what was sealed before it, and a wrong master key is named as such.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use stagepact_domain::protected::{Protected, Sealed};
use stagepact_store::testing::fresh_pool;
use stagepact_store::vault::sealed_keys;
use stagepact_store::{MasterKey, StoreError, Vault, VaultError};
use uuid::Uuid;

/// Sensitive content as a report might carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Grounds {
    ground: String,
    detail: String,
}

fn grounds() -> Grounds {
    Grounds { ground: "disability".into(), detail: "needs a quiet workplace".into() }
}

async fn vault() -> (Vault, PgPool) {
    let pool = fresh_pool().await.expect("pool");
    (Vault::new(pool.clone(), MasterKey::generate()), pool)
}

/// Opens `nonce ‖ ciphertext ‖ tag` independently of the vault's code.
fn decrypt(key: &[u8], key_id: Uuid, sealed: &[u8]) -> Vec<u8> {
    let aead = XChaCha20Poly1305::new_from_slice(key).expect("32-byte key");
    let (nonce, ciphertext) = sealed.split_at(24);
    let nonce = XNonce::try_from(nonce).expect("24-byte nonce");
    aead.decrypt(&nonce, Payload { msg: ciphertext, aad: key_id.as_bytes() }).expect("decrypts")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[tokio::test]
async fn sealed_content_opens_under_the_same_subjects_key() {
    let (vault, _pool) = vault().await;
    let cipher = vault.cipher_for("SCHOOL1:12345").await.expect("cipher");
    let sealed = cipher.seal(&grounds());

    assert_eq!(cipher.open::<Grounds>(&sealed), Protected::Readable(grounds()));
    // A later call (another command) gets the same key, and so does an opener.
    let again = vault.cipher_for("SCHOOL1:12345").await.expect("cipher again");
    assert_eq!(again.open::<Grounds>(&sealed), Protected::Readable(grounds()));
    assert_eq!(again.seal(&1).sealed, sealed.sealed);
    let opener = vault.opener([sealed.sealed]).await.expect("opener");
    assert_eq!(opener.open::<Grounds>(&sealed), Protected::Readable(grounds()));
    // Two seals of the same content differ (fresh nonce each time).
    assert_ne!(cipher.seal(&grounds()).data, sealed.data);
    // Another subject has another key and cannot open it.
    let other = vault.cipher_for("SCHOOL1:67890").await.expect("other cipher");
    assert_ne!(other.seal(&1).sealed, sealed.sealed);
    assert_eq!(other.0.open(&sealed), None);
}

#[tokio::test]
async fn neither_the_data_key_nor_the_content_is_stored_in_the_clear() {
    let pool = fresh_pool().await.expect("pool");
    let master = MasterKey::generate();
    let master_bytes = STANDARD.decode(master.to_base64()).expect("base64");
    let vault = Vault::new(pool.clone(), master);
    let cipher = vault.cipher_for("SCHOOL1:12345").await.expect("cipher");
    let sealed = cipher.seal(&grounds());

    let (key_id, wrapped): (Uuid, Vec<u8>) =
        sqlx::query_as("SELECT key_id, wrapped FROM subject_keys WHERE subject = 'SCHOOL1:12345'")
            .fetch_one(&pool)
            .await
            .expect("key row");
    assert_eq!(key_id, sealed.sealed);
    // Unwrapping by hand gives the data key, which is not in the stored bytes...
    let data_key = decrypt(&master_bytes, key_id, &wrapped);
    assert_eq!(data_key.len(), 32);
    assert!(!contains(&wrapped, &data_key), "the wrapped key holds the data key in the clear");
    // ...and which really is the key the content is sealed under.
    let raw = STANDARD.decode(&sealed.data).expect("base64 data");
    let plaintext = serde_json::to_vec(&grounds()).expect("json");
    // The sealed plaintext is the JSON padded with spaces to its size class.
    let opened = decrypt(&data_key, key_id, &raw);
    assert_eq!(opened.len(), stagepact_domain::protected::MIN_SEALED_LEN);
    assert_eq!(opened.trim_ascii_end(), plaintext.as_slice());
    assert!(!contains(&raw, b"quiet workplace"));
    assert!(!sealed.data.contains("quiet workplace"));
    assert!(!contains(&raw, &plaintext));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_callers_for_one_subject_share_one_key() {
    let (vault, pool) = vault().await;
    let start = Arc::new(tokio::sync::Barrier::new(8));
    let mut callers = tokio::task::JoinSet::new();
    for n in 0..8 {
        let (vault, start) = (vault.clone(), Arc::clone(&start));
        callers.spawn(async move {
            start.wait().await;
            let cipher = vault.cipher_for("SCHOOL1:12345").await.expect("cipher");
            (cipher.seal(&format!("from caller {n}")), cipher)
        });
    }
    let results = callers.join_all().await;

    let key_ids: Vec<Uuid> = results.iter().map(|(sealed, _)| sealed.sealed).collect();
    assert!(key_ids.iter().all(|id| *id == key_ids[0]), "callers got different keys: {key_ids:?}");
    for (_, cipher) in &results {
        for (n, (sealed, _)) in results.iter().enumerate() {
            assert!(cipher.open::<String>(sealed).readable().is_some(), "caller {n}'s content");
        }
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM subject_keys")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn erasure_shreds_content_wherever_it_is_nested() {
    let (vault, pool) = vault().await;
    let erased = vault.cipher_for("SCHOOL1:12345").await.expect("cipher").seal(&grounds());
    let kept = vault.cipher_for("sbb-signals").await.expect("cipher").seal(&"kept");
    let document = json!({
        "report": { "grounds": erased, "status": "open" },
        "signals": [kept, { "note": erased }],
        "not_sealed": [
            { "sealed": "not-a-uuid", "data": "x" },
            { "sealed": kept.sealed, "data": "x", "extra": 1 },
            { "sealed": kept.sealed },
        ],
    });
    assert_eq!(sealed_keys(&document), vec![erased.sealed, kept.sealed]);

    assert!(vault.erase("SCHOOL1:12345").await.expect("erase"));
    assert!(!vault.erase("SCHOOL1:12345").await.expect("erase again"), "no key left to delete");

    let opener = vault.opener([erased.sealed, kept.sealed]).await.expect("opener");
    assert_eq!(opener.open::<Grounds>(&erased), Protected::erased());
    assert_eq!(opener.open::<String>(&kept), Protected::Readable("kept".into()));
    let mut revealed = document.clone();
    opener.reveal(&mut revealed);
    let mut expected = document.clone();
    expected["report"]["grounds"] = json!({ "erased": true });
    expected["signals"] = json!(["kept", { "note": { "erased": true } }]);
    assert_eq!(revealed, expected);

    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM erasures WHERE subject = 'SCHOOL1:12345'")
            .fetch_one(&pool)
            .await
            .expect("erasures");
    assert_eq!(recorded, 1);
    let keys: i64 =
        sqlx::query_scalar("SELECT count(*) FROM subject_keys WHERE subject = 'SCHOOL1:12345'")
            .fetch_one(&pool)
            .await
            .expect("keys");
    assert_eq!(keys, 0);
}

#[tokio::test]
async fn a_subject_sealed_again_after_erasure_gets_a_new_key_and_old_content_stays_erased() {
    let (vault, _pool) = vault().await;
    let before = vault.cipher_for("SCHOOL1:12345").await.expect("cipher").seal(&grounds());
    vault.erase("SCHOOL1:12345").await.expect("erase");

    let cipher = vault.cipher_for("SCHOOL1:12345").await.expect("new cipher");
    let after = cipher.seal(&grounds());
    assert_ne!(after.sealed, before.sealed, "erasure must not bring the old key back");
    assert_eq!(cipher.open::<Grounds>(&after), Protected::Readable(grounds()));
    assert_eq!(cipher.open::<Grounds>(&before), Protected::erased());
    // Even claiming the new key id does not open the old ciphertext.
    let relabelled = Sealed { sealed: after.sealed, data: before.data.clone() };
    assert_eq!(cipher.open::<Grounds>(&relabelled), Protected::erased());

    let mut values = vec![json!({ "before": before }), json!({ "after": after })];
    vault.reveal_all(&mut values).await.expect("reveal");
    assert_eq!(values[0], json!({ "before": { "erased": true } }));
    assert_eq!(values[1], json!({ "after": grounds() }));
}

#[tokio::test]
async fn tampered_content_does_not_open() {
    let (vault, _pool) = vault().await;
    let cipher = vault.cipher_for("SCHOOL1:12345").await.expect("cipher");
    let sealed = cipher.seal(&grounds());
    let mut raw = STANDARD.decode(&sealed.data).expect("base64");
    let last = raw.len() - 1;
    raw[last] ^= 1;
    let flipped = Sealed { sealed: sealed.sealed, data: STANDARD.encode(&raw) };
    let truncated = Sealed { sealed: sealed.sealed, data: STANDARD.encode(&raw[..20]) };
    let not_base64 = Sealed { sealed: sealed.sealed, data: "%%%".into() };

    let opener = vault.opener([sealed.sealed]).await.expect("opener");
    assert_eq!(opener.open::<Grounds>(&sealed), Protected::Readable(grounds()));
    for tampered in [&flipped, &truncated, &not_base64] {
        assert_eq!(cipher.0.open(tampered), None, "{tampered:?}");
        assert_eq!(opener.open::<Grounds>(tampered), Protected::erased(), "{tampered:?}");
        let mut value = json!({ "x": tampered });
        opener.reveal(&mut value);
        assert_eq!(value, json!({ "x": { "erased": true } }));
    }
}

#[tokio::test]
async fn keys_made_under_another_master_key_are_reported_as_a_mismatch() {
    let (vault, pool) = vault().await;
    let sealed = vault.cipher_for("SCHOOL1:12345").await.expect("cipher").seal(&grounds());

    let misconfigured = Vault::new(pool.clone(), MasterKey::generate());
    assert!(matches!(
        misconfigured.cipher_for("SCHOOL1:12345").await,
        Err(StoreError::MasterKeyMismatch)
    ));
    assert!(matches!(
        misconfigured.opener([sealed.sealed]).await,
        Err(StoreError::MasterKeyMismatch)
    ));
    let message = StoreError::MasterKeyMismatch.to_string();
    assert!(message.contains("master key"), "{message}");

    // A wrapped key copied onto another key's row does not unwrap either.
    let other = vault.cipher_for("SCHOOL1:67890").await.expect("cipher").seal(&1);
    sqlx::query(
        "UPDATE subject_keys SET wrapped = (SELECT wrapped FROM subject_keys WHERE key_id = $1)
         WHERE key_id = $2",
    )
    .bind(sealed.sealed)
    .bind(other.sealed)
    .execute(&pool)
    .await
    .expect("move the wrapped key");
    assert!(matches!(vault.opener([other.sealed]).await, Err(StoreError::MasterKeyMismatch)));
}

#[tokio::test]
async fn reveal_all_asks_the_database_only_when_something_is_sealed() {
    let (vault, pool) = vault().await;
    let sealed = vault.cipher_for("SCHOOL1:12345").await.expect("cipher").seal(&grounds());
    pool.close().await;

    let mut plain = vec![json!({ "sealed": true, "data": 1 }), json!([1, "two"])];
    vault.reveal_all(&mut plain).await.expect("nothing to open, no query");
    assert_eq!(plain, vec![json!({ "sealed": true, "data": 1 }), json!([1, "two"])]);
    let mut with_sealed = vec![json!({ "grounds": sealed })];
    assert!(vault.reveal_all(&mut with_sealed).await.is_err(), "a sealed value needs its key");
}

#[test]
fn a_master_key_reads_back_from_base64_and_never_prints() {
    let key = MasterKey::generate();
    let encoded = key.to_base64();
    let parsed = MasterKey::from_base64(&format!("{encoded}\n")).expect("parses");
    assert_eq!(parsed.to_base64(), encoded);
    assert_ne!(MasterKey::generate().to_base64(), encoded);

    assert_eq!(format!("{key:?}"), "MasterKey(..)");
    assert_eq!(format!("{parsed:?}"), "MasterKey(..)");

    assert!(matches!(
        MasterKey::from_base64(&STANDARD.encode([7u8; 31])),
        Err(VaultError::WrongLength(31))
    ));
    assert!(matches!(MasterKey::from_base64("not base64!"), Err(VaultError::NotBase64)));
    let message = VaultError::WrongLength(31).to_string();
    assert!(message.contains("31") && message.contains("32"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_for_many_subjects_share_statements_and_each_get_their_own_key() {
    let (vault, pool) = vault().await;
    // Half the subjects have a key already, half get one now.
    for n in 0..20 {
        vault.cipher_for(&format!("S:{n}")).await.expect("existing key");
    }
    let before: Vec<(String, Uuid)> =
        sqlx::query_as("SELECT subject, key_id FROM subject_keys ORDER BY subject")
            .fetch_all(&pool)
            .await
            .expect("keys");
    let start = Arc::new(tokio::sync::Barrier::new(40));
    let mut callers = tokio::task::JoinSet::new();
    for n in 0..40 {
        let (vault, start) = (vault.clone(), Arc::clone(&start));
        callers.spawn(async move {
            start.wait().await;
            let subject = format!("S:{n}");
            let cipher = vault.cipher_for(&subject).await.expect("cipher");
            (subject, cipher.seal(&n))
        });
    }
    let results = callers.join_all().await;
    let keys: std::collections::HashMap<String, Uuid> =
        sqlx::query_as("SELECT subject, key_id FROM subject_keys")
            .fetch_all(&pool)
            .await
            .expect("keys")
            .into_iter()
            .collect();
    assert_eq!(keys.len(), 40, "one key per subject");
    for (subject, key_id) in &before {
        assert_eq!(keys[subject], *key_id, "an existing key is kept");
    }
    let opener = vault.opener(results.iter().map(|(_, s)| s.sealed)).await.expect("opener");
    for (subject, sealed) in &results {
        assert_eq!(sealed.sealed, keys[subject], "{subject} sealed under its own key");
        let n: usize = subject[2..].parse().expect("number");
        assert_eq!(opener.open::<usize>(sealed).readable(), Some(n));
    }
}
