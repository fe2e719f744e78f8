//! Sensitive content sealed per data subject (DESIGN §6): report descriptions,
//! discrimination grounds and support needs never reach the event store, a
//! snapshot or a read model in the clear. An aggregate holds the [`Sealed`] value
//! and decides on it without reading it; it opens it only where a rule needs the
//! content (forwarding a signal needs the grounds).
//!
//! Erasing a subject deletes its key (crypto-shredding): every [`Sealed`] value
//! under that key then opens as [`Protected::Erased`], in every view, in the feed
//! and after a rebuild, while the events themselves stay and still replay.
//!
//! The cipher itself (key table, wrapping, the authenticated cipher) lives in the
//! store; the domain only names what it needs of one, so it stays free of I/O.

use std::fmt;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Content encrypted under one data subject's key. Stored as
/// `{"sealed": <key id>, "data": <base64 of nonce and ciphertext>}`: the feed and
/// the views recognise that shape wherever it occurs and open it for the reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    /// The id of the key it is sealed under (not the subject: the key table maps
    /// keys to subjects, and forgets both on erasure).
    pub sealed: Uuid,
    /// The nonce followed by the ciphertext and its tag, base64.
    pub data: String,
}

/// The key of one data subject, ready to seal new content and open what was
/// sealed under it.
pub trait SubjectCipher: Send + Sync {
    /// Seals `plaintext` under this subject's key.
    fn seal(&self, plaintext: &[u8]) -> Sealed;
    /// Opens content sealed under this subject's key; `None` when it was sealed
    /// under another key (of an erased subject) or does not authenticate.
    fn open(&self, sealed: &Sealed) -> Option<Vec<u8>>;
}

/// A subject's cipher as commands carry it.
#[derive(Clone)]
pub struct Cipher(pub Arc<dyn SubjectCipher>);

impl fmt::Debug for Cipher {
    // Never print key material, not even by accident in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(..)")
    }
}

impl PartialEq for Cipher {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The smallest sealed plaintext, in bytes. Ciphertext is as long as its
/// plaintext, and events outlive an erased key: unpadded, a one-ground list
/// would name its ground by its length alone (`"age"` vs
/// `"sexual_orientation"`), and "no support need" would show as `null`. Every
/// list of grounds (all twelve together take 162 bytes) and every short text
/// fits this bucket; larger buckets would only cost storage (a report's row
/// would pass PostgreSQL's 2 kB out-of-line threshold).
pub const MIN_SEALED_LEN: usize = 256;

/// Pads JSON with spaces (trailing whitespace is valid JSON) to the smallest
/// length of the form `MIN_SEALED_LEN × 2ⁿ` that holds it, so a sealed value
/// tells only its size class.
fn pad(mut json: Vec<u8>) -> Vec<u8> {
    let mut bucket = MIN_SEALED_LEN;
    while bucket < json.len() {
        bucket = bucket.saturating_mul(2);
    }
    json.resize(bucket, b' ');
    json
}

impl Cipher {
    /// Seals a value as JSON, padded to its size class.
    pub fn seal<T: Serialize>(&self, value: &T) -> Sealed {
        // Serialising our own plain data types to JSON cannot fail.
        let json = serde_json::to_vec(value).expect("plain data serialises");
        self.0.seal(&pad(json))
    }

    /// Opens a value sealed with [`Cipher::seal`].
    pub fn open<T: DeserializeOwned>(&self, sealed: &Sealed) -> Protected<T> {
        Protected::from_plaintext(self.0.open(sealed))
    }
}

/// Sealed content as a reader gets it: readable, or erased with its subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Protected<T> {
    /// The content.
    Readable(T),
    /// The subject's data was erased: the content can no longer be read.
    Erased(ErasedMarker),
}

/// What erased content reads as: `{"erased": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasedMarker {
    /// Always true.
    pub erased: bool,
}

impl<T: DeserializeOwned> Protected<T> {
    /// The content from opened plaintext; `None` (no key) reads as erased.
    pub fn from_plaintext(plaintext: Option<Vec<u8>>) -> Self {
        plaintext
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .map_or(Self::erased(), Self::Readable)
    }
}

impl<T> Protected<T> {
    /// Erased content.
    pub fn erased() -> Self {
        Self::Erased(ErasedMarker { erased: true })
    }

    /// The content, unless erased.
    pub fn readable(self) -> Option<T> {
        match self {
            Self::Readable(value) => Some(value),
            Self::Erased(_) => None,
        }
    }
}

/// A cipher for the domain's own tests: it "seals" by reversing the bytes and
/// tags them with a fixed key id, so given/when/then tests can state the events
/// they expect. The store tests the real cipher.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub(crate) const TEST_KEY: Uuid = Uuid::from_u128(0x5ea1);

    pub(crate) struct Reversing;

    impl SubjectCipher for Reversing {
        fn seal(&self, plaintext: &[u8]) -> Sealed {
            let reversed: Vec<u8> = plaintext.iter().rev().copied().collect();
            Sealed { sealed: TEST_KEY, data: String::from_utf8_lossy(&reversed).into_owned() }
        }

        fn open(&self, sealed: &Sealed) -> Option<Vec<u8>> {
            (sealed.sealed == TEST_KEY).then(|| sealed.data.bytes().rev().collect())
        }
    }

    pub(crate) fn cipher() -> Cipher {
        Cipher(Arc::new(Reversing))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::cipher;
    use super::*;

    #[test]
    fn sealed_values_tell_only_their_size_class() {
        let short = cipher().seal(&vec!["age"]);
        let all_grounds = crate::report::Ground::ALL.map(crate::report::Ground::as_str).to_vec();
        let long = cipher().seal(&all_grounds);
        let none = cipher().seal(&None::<String>);
        assert_eq!(short.data.len(), MIN_SEALED_LEN);
        assert_eq!(long.data.len(), MIN_SEALED_LEN);
        assert_eq!(none.data.len(), MIN_SEALED_LEN);
        let text = "x".repeat(MIN_SEALED_LEN + 1);
        assert_eq!(cipher().seal(&text).data.len(), 2 * MIN_SEALED_LEN);
        assert_eq!(cipher().open::<Vec<String>>(&short), Protected::Readable(vec!["age".into()]));
        assert_eq!(cipher().open::<Option<String>>(&none), Protected::Readable(None));
    }
}
