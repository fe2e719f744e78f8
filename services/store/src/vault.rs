//! The vault: one data key per data subject, for crypto-shredding (DESIGN §6).
//!
//! Sensitive content is sealed under its subject's data key before it reaches an
//! event, a snapshot or a read model ([`Sealed`]); [`Vault::erase`] deletes the
//! key, and from then on everything sealed under it opens as
//! [`Protected::Erased`] in every view, in the feed and after a rebuild, while the
//! events themselves stay and still replay.
//!
//! Keys: a data key is 32 random bytes, stored in `subject_keys` wrapped
//! (XChaCha20-Poly1305) under the [`MasterKey`] the service is configured with,
//! with the key id as associated data so a wrapped key moved to another row does
//! not unwrap. Content is sealed with XChaCha20-Poly1305 under the data key: a
//! random 24-byte nonce (random nonces are safe at that size), the key id as
//! associated data, and `data` = base64(nonce ‖ ciphertext ‖ tag).
//!
//! Why our own vault rather than the `cqrs-es-crypto` crate: that crate wraps
//! cqrs-es's `PersistedEventRepository`, but our command path loads snapshot and
//! events in one round trip of its own, and our global log reader, feed and
//! projectors read the events table directly, which it does not cover (it has no
//! `stream_all_events`); it also leaves snapshots in the clear. Here the
//! aggregates keep the [`Sealed`] value itself, so events, snapshots and read
//! models are ciphertext by construction, and readers open content only at the
//! edge ([`Opener`]).
//!
//! Keys are not cached across calls: an in-memory copy would outlive an erasure
//! on another instance.
//!
//! Erasure is complete only once the old copies age out: `DELETE` leaves the old
//! tuple in the table until `VACUUM`, and the key stays in the WAL and in backups
//! for their retention. Operators: run `VACUUM subject_keys` after erasures (or
//! rely on autovacuum) and keep backup retention within what erasure promises.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, Generate, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::PgPool;
use stagepact_domain::protected::{Cipher, Protected, Sealed, SubjectCipher};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::StoreError;

/// Bytes in a master key and in a data key.
const KEY_LEN: usize = 32;
/// Bytes in an XChaCha20-Poly1305 nonce.
const NONCE_LEN: usize = 24;

/// What is wrong with a configured master key.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Not standard base64. The decoder's own error is left out: it quotes the
    /// offending character of the secret.
    #[error("the master key is not valid standard base64")]
    NotBase64,
    /// Base64 of the wrong number of bytes.
    #[error("the master key decodes to {0} bytes; it must be exactly 32")]
    WrongLength(usize),
}

/// The key that wraps every data key. Lose it and all sealed content is lost;
/// its `Debug` never prints it, and its bytes are zeroed on drop.
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl MasterKey {
    /// Parses a master key from standard base64 of exactly 32 bytes (surrounding
    /// whitespace, such as a file's trailing newline, is ignored).
    pub fn from_base64(encoded: &str) -> Result<Self, VaultError> {
        let bytes =
            Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| VaultError::NotBase64)?);
        let key = <[u8; KEY_LEN]>::try_from(bytes.as_slice())
            .map_err(|_| VaultError::WrongLength(bytes.len()))?;
        Ok(Self(Zeroizing::new(key)))
    }

    /// A new random master key from the operating system's generator.
    ///
    /// # Panics
    /// When the operating system's random generator fails.
    pub fn generate() -> Self {
        Self(Zeroizing::new(<[u8; KEY_LEN]>::generate()))
    }

    /// The key as standard base64, the form [`MasterKey::from_base64`] reads.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_slice())
    }

    fn aead(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&(*self.0).into())
    }

    /// Wraps a data key; the key id is the associated data.
    fn wrap(&self, key_id: Uuid, data_key: &[u8; KEY_LEN]) -> Vec<u8> {
        seal_bytes(&self.aead(), key_id, data_key)
    }

    /// Unwraps a stored data key: failing to is a configuration error (another
    /// master key than the one the keys were made under), not an erased subject.
    fn unwrap_key(&self, key_id: Uuid, wrapped: &[u8]) -> Result<DataKey, StoreError> {
        let data_key = open_bytes(&self.aead(), key_id, wrapped)
            .map(Zeroizing::new)
            .ok_or(StoreError::MasterKeyMismatch)?;
        let data_key = <&[u8; KEY_LEN]>::try_from(data_key.as_slice())
            .map_err(|_| StoreError::MasterKeyMismatch)?;
        Ok(DataKey::new(key_id, data_key))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// `nonce ‖ ciphertext ‖ tag` of `plaintext` under `aead`, with a fresh random
/// nonce and the key id as associated data.
fn seal_bytes(aead: &XChaCha20Poly1305, key_id: Uuid, plaintext: &[u8]) -> Vec<u8> {
    let nonce = XNonce::generate();
    let ciphertext = aead
        .encrypt(&nonce, Payload { msg: plaintext, aad: key_id.as_bytes() })
        // Encryption fails only past 256 GiB of plaintext, far beyond any value.
        .expect("plaintext within XChaCha20-Poly1305's limit");
    let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    sealed
}

/// The plaintext of [`seal_bytes`]' output; `None` when it is too short or does
/// not authenticate under `aead` and `key_id`.
fn open_bytes(aead: &XChaCha20Poly1305, key_id: Uuid, sealed: &[u8]) -> Option<Vec<u8>> {
    let (nonce, ciphertext) = sealed.split_at_checked(NONCE_LEN)?;
    let nonce = XNonce::try_from(nonce).ok()?;
    aead.decrypt(&nonce, Payload { msg: ciphertext, aad: key_id.as_bytes() }).ok()
}

/// One subject's unwrapped data key (zeroed on drop by the cipher itself).
struct DataKey {
    key_id: Uuid,
    aead: XChaCha20Poly1305,
}

impl DataKey {
    fn new(key_id: Uuid, data_key: &[u8; KEY_LEN]) -> Self {
        Self { key_id, aead: XChaCha20Poly1305::new(&(*data_key).into()) }
    }
}

impl SubjectCipher for DataKey {
    fn seal(&self, plaintext: &[u8]) -> Sealed {
        let sealed = seal_bytes(&self.aead, self.key_id, plaintext);
        Sealed { sealed: self.key_id, data: STANDARD.encode(sealed) }
    }

    fn open(&self, sealed: &Sealed) -> Option<Vec<u8>> {
        if sealed.sealed != self.key_id {
            return None;
        }
        let bytes = STANDARD.decode(&sealed.data).ok()?;
        open_bytes(&self.aead, self.key_id, &bytes)
    }
}

/// The key store: gives each data subject its key and erases it on request.
#[derive(Debug, Clone)]
pub struct Vault {
    pool: PgPool,
    master: Arc<MasterKey>,
    /// Concurrent `cipher_for` calls share one query, shared by every clone.
    batch: Arc<std::sync::Mutex<KeyBatch>>,
    /// Benchmark only, shared by every clone: see [`bench_plaintext`].
    #[cfg(feature = "bench-plaintext")]
    plaintext: Arc<std::sync::atomic::AtomicBool>,
}

/// A subject's key as fetched for a waiting `cipher_for`: `None` sends the
/// caller down the one-subject path (the batch failed or lost a race for it).
type Fetched = Option<(Uuid, Vec<u8>)>;

/// The `cipher_for` calls waiting for the next batched query, and whether a
/// runner is working through them. Under load many commands seal at once;
/// one statement for all of them keeps protection from costing a statement
/// per command (see BENCHMARKS.md, "Reports and data protection").
#[derive(Debug, Default)]
struct KeyBatch {
    running: bool,
    waiting: Vec<(String, tokio::sync::oneshot::Sender<Fetched>)>,
}

impl Vault {
    /// A vault on `pool` whose keys are wrapped under `master`.
    pub fn new(pool: PgPool, master: impl Into<Arc<MasterKey>>) -> Self {
        Self {
            pool,
            master: master.into(),
            batch: Arc::default(),
            #[cfg(feature = "bench-plaintext")]
            plaintext: Arc::default(),
        }
    }

    /// The cipher of `subject`'s live key, creating the key when the subject has
    /// none (first content, or first since an erasure). Concurrent callers for
    /// one subject get the same key. Concurrent callers for any subjects share
    /// one statement that reads the keys that exist and creates the missing ones.
    ///
    /// # Panics
    /// When a new key is needed and the operating system's random generator fails.
    pub async fn cipher_for(&self, subject: &str) -> Result<Cipher, StoreError> {
        #[cfg(feature = "bench-plaintext")]
        if self.plaintext.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(bench_plaintext::cipher());
        }
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let start_runner = {
            // Invariant: the lock is never held across an await or a panic path.
            let mut batch = self.batch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            batch.waiting.push((subject.to_owned(), sender));
            !std::mem::replace(&mut batch.running, true)
        };
        if start_runner {
            // A task of its own: a caller that is cancelled (its client went
            // away) must not strand the others waiting on the same query.
            let vault = self.clone();
            tokio::spawn(async move { vault.run_batches().await });
        }
        match receiver.await {
            Ok(Some((key_id, wrapped))) => {
                Ok(Cipher(Arc::new(self.master.unwrap_key(key_id, &wrapped)?)))
            }
            _ => self.cipher_for_one(subject).await,
        }
    }

    /// Works through the waiting callers, a batch per statement, until none wait.
    async fn run_batches(&self) {
        loop {
            let waiting = {
                let mut batch =
                    self.batch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if batch.waiting.is_empty() {
                    batch.running = false;
                    return;
                }
                std::mem::take(&mut batch.waiting)
            };
            let subjects: Vec<String> = waiting.iter().map(|(s, _)| s.clone()).collect();
            let found = self.fetch_or_create(&subjects).await.unwrap_or_else(|error| {
                tracing::warn!(%error, "batched key fetch failed; callers fetch one by one");
                HashMap::new()
            });
            for (subject, sender) in waiting {
                // A caller that went away no longer listens: nothing to do.
                let _ = sender.send(found.get(&subject).cloned());
            }
        }
    }

    /// Creates the keys of `subjects` that have none, in one statement (at
    /// enrolment: a key's life follows its subject's).
    pub async fn issue_keys(&self, subjects: &[String]) -> Result<(), StoreError> {
        self.fetch_or_create(subjects).await.map(drop)
    }

    /// The keys of `subjects`: those that exist, read in one statement, and
    /// new ones for those that have none, made in another only when there are
    /// any. Keys are issued at enrolment, so sealing a student's content
    /// usually needs the read alone, without making (and wrapping) a key per
    /// subject just in case.
    async fn fetch_or_create(
        &self,
        subjects: &[String],
    ) -> Result<HashMap<String, (Uuid, Vec<u8>)>, StoreError> {
        let mut unique = subjects.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let rows: Vec<(String, Uuid, Vec<u8>)> = sqlx::query_as(
            "SELECT subject, key_id, wrapped FROM subject_keys WHERE subject = ANY($1)",
        )
        .bind(&unique)
        .fetch_all(&self.pool)
        .await?;
        let mut found: HashMap<String, (Uuid, Vec<u8>)> = rows
            .into_iter()
            .map(|(subject, key_id, wrapped)| (subject, (key_id, wrapped)))
            .collect();
        unique.retain(|subject| !found.contains_key(subject));
        if !unique.is_empty() {
            found.extend(self.create_keys(&unique).await?);
        }
        Ok(found)
    }

    /// One statement: new keys for those of `subjects` that have none, and the
    /// keys of the others (made meanwhile by another caller). A subject whose
    /// new key lost a race to another caller's is absent from the answer (its
    /// caller then reads the winner's).
    async fn create_keys(
        &self,
        unique: &[String],
    ) -> Result<HashMap<String, (Uuid, Vec<u8>)>, StoreError> {
        let key_ids: Vec<Uuid> = unique.iter().map(|_| Uuid::new_v4()).collect();
        let wrapped: Vec<Vec<u8>> = key_ids
            .iter()
            .map(|key_id| {
                let data_key = Zeroizing::new(<[u8; KEY_LEN]>::generate());
                self.master.wrap(*key_id, &data_key)
            })
            .collect();
        // The outer SELECT sees the table as it was before this statement, the
        // INSERT's RETURNING what it added: together, every key asked for.
        let rows: Vec<(String, Uuid, Vec<u8>)> = sqlx::query_as(
            "WITH wanted (subject, key_id, wrapped) AS (
                 SELECT * FROM unnest($1::text[], $2::uuid[], $3::bytea[])
             ), created AS (
                 INSERT INTO subject_keys (key_id, subject, wrapped)
                 SELECT w.key_id, w.subject, w.wrapped FROM wanted w
                  WHERE NOT EXISTS (SELECT 1 FROM subject_keys k WHERE k.subject = w.subject)
                 ON CONFLICT (subject) DO NOTHING
                 RETURNING subject, key_id, wrapped
             )
             SELECT subject, key_id, wrapped FROM subject_keys WHERE subject = ANY($1)
             UNION ALL
             SELECT subject, key_id, wrapped FROM created",
        )
        .bind(unique)
        .bind(&key_ids)
        .bind(&wrapped)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(subject, key_id, wrapped)| (subject, (key_id, wrapped)))
            .collect())
    }

    /// `cipher_for` for one subject on its own: the path after a failed batch.
    async fn cipher_for_one(&self, subject: &str) -> Result<Cipher, StoreError> {
        // Each turn that does not return saw another caller create the key after
        // our SELECT and an erasure delete it before our next one: the loop ends
        // as soon as erasures of this subject stop racing it.
        loop {
            let existing: Option<(Uuid, Vec<u8>)> =
                sqlx::query_as("SELECT key_id, wrapped FROM subject_keys WHERE subject = $1")
                    .bind(subject)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some((key_id, wrapped)) = existing {
                return Ok(Cipher(Arc::new(self.master.unwrap_key(key_id, &wrapped)?)));
            }
            let key_id = Uuid::new_v4();
            let data_key = Zeroizing::new(<[u8; KEY_LEN]>::generate());
            let inserted = sqlx::query(
                "INSERT INTO subject_keys (key_id, subject, wrapped) VALUES ($1, $2, $3)
                 ON CONFLICT (subject) DO NOTHING",
            )
            .bind(key_id)
            .bind(subject)
            .bind(self.master.wrap(key_id, &data_key))
            .execute(&self.pool)
            .await?
            .rows_affected();
            if inserted == 1 {
                return Ok(Cipher(Arc::new(DataKey::new(key_id, &data_key))));
            }
            // Another caller's key won: read it on the next turn.
        }
    }

    /// Erases `subject`: deletes its key, so everything sealed under it can no
    /// longer be opened, and records when (in `erasures`, without key material).
    /// Returns whether there was a key to delete. Content sealed for the subject
    /// afterwards gets a new key; what was sealed before stays erased.
    pub async fn erase(&self, subject: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query("DELETE FROM subject_keys WHERE subject = $1")
            .bind(subject)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "INSERT INTO erasures (subject) VALUES ($1)
             ON CONFLICT (subject) DO UPDATE SET erased_at = now()",
        )
        .bind(subject)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }

    /// An opener for content sealed under `keys`, loaded in one query. Keys that
    /// are gone (erased subjects) are simply absent: their content opens as
    /// erased. No query when `keys` is empty.
    pub async fn opener(&self, keys: impl IntoIterator<Item = Uuid>) -> Result<Opener, StoreError> {
        let mut wanted: Vec<Uuid> = keys.into_iter().collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(Opener { keys: HashMap::new() });
        }
        let rows: Vec<(Uuid, Vec<u8>)> =
            sqlx::query_as("SELECT key_id, wrapped FROM subject_keys WHERE key_id = ANY($1)")
                .bind(&wanted)
                .fetch_all(&self.pool)
                .await?;
        let keys = rows
            .into_iter()
            .map(|(key_id, wrapped)| Ok((key_id, self.master.unwrap_key(key_id, &wrapped)?)))
            .collect::<Result<_, StoreError>>()?;
        Ok(Opener { keys })
    }

    /// Opens, in place, every sealed object in `values` (see [`Opener::reveal`]),
    /// with one query for all their keys, none when nothing is sealed.
    pub async fn reveal_all(&self, values: &mut [Value]) -> Result<(), StoreError> {
        let keys: Vec<Uuid> = values.iter().flat_map(sealed_keys).collect();
        if keys.is_empty() {
            return Ok(());
        }
        let opener = self.opener(keys).await?;
        for value in values {
            opener.reveal(value);
        }
        Ok(())
    }
}

/// Opens content sealed under a set of keys, as loaded by [`Vault::opener`].
pub struct Opener {
    keys: HashMap<Uuid, DataKey>,
}

impl Opener {
    /// The content of `sealed`: erased when its key is gone, or when it does not
    /// authenticate or decode as a `T`.
    pub fn open<T: DeserializeOwned>(&self, sealed: &Sealed) -> Protected<T> {
        Protected::from_plaintext(self.open_bytes(sealed))
    }

    /// Replaces, anywhere in `value`, every object of exactly the shape
    /// `{"sealed": "<uuid>", "data": "<string>"}` by the JSON it seals, or by
    /// `{"erased": true}` when it cannot be opened. Other values stay as they are.
    pub fn reveal(&self, value: &mut Value) {
        if let Some(sealed) = as_sealed(value) {
            *value = match self.open_bytes(&sealed).and_then(|b| serde_json::from_slice(&b).ok()) {
                Some(plain) => plain,
                None => erased_json(),
            };
            return;
        }
        match value {
            Value::Array(items) => items.iter_mut().for_each(|item| self.reveal(item)),
            Value::Object(fields) => fields.values_mut().for_each(|field| self.reveal(field)),
            _ => {}
        }
    }

    fn open_bytes(&self, sealed: &Sealed) -> Option<Vec<u8>> {
        self.keys.get(&sealed.sealed)?.open(sealed)
    }
}

impl fmt::Debug for Opener {
    // Key ids only, never key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener").field("keys", &self.keys.keys().collect::<Vec<_>>()).finish()
    }
}

/// The key ids of every sealed object in `value`, each once, in the order first met.
pub fn sealed_keys(value: &Value) -> Vec<Uuid> {
    fn walk(value: &Value, seen: &mut HashSet<Uuid>, keys: &mut Vec<Uuid>) {
        if let Some(sealed) = as_sealed(value) {
            if seen.insert(sealed.sealed) {
                keys.push(sealed.sealed);
            }
            return;
        }
        match value {
            Value::Array(items) => items.iter().for_each(|item| walk(item, seen, keys)),
            Value::Object(fields) => fields.values().for_each(|field| walk(field, seen, keys)),
            _ => {}
        }
    }
    let mut keys = Vec::new();
    walk(value, &mut HashSet::new(), &mut keys);
    keys
}

/// `value` as a [`Sealed`] when it has exactly that shape.
fn as_sealed(value: &Value) -> Option<Sealed> {
    let Value::Object(fields) = value else { return None };
    if fields.len() != 2 {
        return None;
    }
    let sealed = fields.get("sealed")?.as_str()?.parse().ok()?;
    let data = fields.get("data")?.as_str()?.to_owned();
    Some(Sealed { sealed, data })
}

/// What erased content reads as in JSON, as [`Protected::Erased`] serialises.
fn erased_json() -> Value {
    serde_json::json!({ "erased": true })
}

/// The benchmark's control for the cost of protection (`stagepact-bench
/// --scenario reports`): a switch that makes [`Vault::cipher_for`] hand out a
/// cipher that neither looks up or creates a key nor encrypts.
///
/// It exists only for that comparison. It is compiled only with the
/// `bench-plaintext` feature, which only the bench crate's dependency
/// declaration enables; the server binary is built without it (`cargo tree -e
/// features -p stagepact` shows no `bench-plaintext`). Where feature unification
/// compiles it in (a workspace-wide build), nothing changes by default: the
/// switch starts off and only the bench turns it on.
#[cfg(feature = "bench-plaintext")]
pub mod bench_plaintext {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use stagepact_domain::protected::{Cipher, Sealed, SubjectCipher};
    use uuid::Uuid;

    use super::{NONCE_LEN, Vault};

    /// Bytes of the authentication tag the real cipher appends.
    const TAG_LEN: usize = 16;
    /// The key id of plaintext "sealed" content: no key has it, so every real
    /// opener reads such content as erased.
    pub const PLAINTEXT_KEY: Uuid = Uuid::nil();

    impl Vault {
        /// Turns the benchmark's plaintext mode on or off for this vault and
        /// every clone of it (the served application's among them).
        pub fn set_plaintext_for_bench(&self, on: bool) {
            self.plaintext.store(on, Ordering::Relaxed);
        }
    }

    /// The cipher of the plaintext mode.
    pub(super) fn cipher() -> Cipher {
        Cipher(Arc::new(Plaintext))
    }

    /// "Seals" without a key or encryption, into exactly as many bytes as the
    /// real cipher (zeros where its nonce and tag go, then the same base64), so
    /// events and read-model rows keep their size and only the protection
    /// itself is left out of the comparison.
    struct Plaintext;

    impl SubjectCipher for Plaintext {
        fn seal(&self, plaintext: &[u8]) -> Sealed {
            let mut bytes = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
            bytes.extend_from_slice(&[0; NONCE_LEN]);
            bytes.extend_from_slice(plaintext);
            bytes.extend_from_slice(&[0; TAG_LEN]);
            Sealed { sealed: PLAINTEXT_KEY, data: STANDARD.encode(bytes) }
        }

        fn open(&self, sealed: &Sealed) -> Option<Vec<u8>> {
            if sealed.sealed != PLAINTEXT_KEY {
                return None;
            }
            let bytes = STANDARD.decode(&sealed.data).ok()?;
            let end = bytes.len().checked_sub(TAG_LEN)?;
            bytes.get(NONCE_LEN..end).map(<[u8]>::to_vec)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::vault::{DataKey, KEY_LEN};

        #[test]
        fn plaintext_seal_has_the_real_size_and_opens() {
            let sealed = cipher().0.seal(b"hello");
            let real = DataKey::new(Uuid::new_v4(), &[7; KEY_LEN]);
            assert_eq!(sealed.data.len(), real.seal(b"hello").data.len());
            assert_eq!(Plaintext.open(&sealed).as_deref(), Some(&b"hello"[..]));
        }
    }
}
