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

/// The first byte of deflated plaintext; JSON never starts with it, so
/// content sealed before compression came still opens.
const DEFLATED: u8 = 0;
/// The most a deflated value may inflate to (texts are at most some tens of
/// kilobytes): a bound, so no crafted value can exhaust memory.
const MAX_INFLATED: usize = 1 << 20;

/// Pads plaintext to the smallest length of the form `MIN_SEALED_LEN × 2ⁿ`
/// that holds it, so a sealed value tells only its size class. JSON is padded
/// with spaces (trailing whitespace is valid JSON).
fn pad(mut plaintext: Vec<u8>) -> Vec<u8> {
    let mut bucket = MIN_SEALED_LEN;
    while bucket < plaintext.len() {
        bucket = bucket.saturating_mul(2);
    }
    plaintext.resize(bucket, b' ');
    plaintext
}

/// The plaintext of a value: its JSON, deflated when that makes it smaller
/// than the smallest size class could not hold anyway. Ciphertext does not
/// compress, so compressing first is the only way a sealed text takes less
/// room than its JSON: a typical report's description then fits a smaller
/// size class, and its event stays under PostgreSQL's out-of-line threshold
/// (BENCHMARKS.md, "Reports and data protection"). Only the size class is
/// visible, as before; nobody but the student writes a report's text, so no
/// one can probe the compressed length with text of their own beside it.
fn pack(json: Vec<u8>) -> Vec<u8> {
    if json.len() <= MIN_SEALED_LEN {
        return json;
    }
    let deflated = miniz_oxide::deflate::compress_to_vec(&json, 6);
    let Ok(length) = u32::try_from(deflated.len()) else { return json };
    if deflated.len() + 5 >= json.len() {
        return json;
    }
    let mut packed = Vec::with_capacity(deflated.len() + 5);
    packed.push(DEFLATED);
    packed.extend_from_slice(&length.to_be_bytes());
    packed.extend_from_slice(&deflated);
    packed
}

/// The JSON of opened plaintext: inflated if it was deflated, padding and all
/// left to the JSON reader otherwise.
fn unpack(plaintext: Vec<u8>) -> Option<Vec<u8>> {
    match plaintext.split_first() {
        Some((&DEFLATED, rest)) => {
            let (length, rest) = rest.split_first_chunk::<4>()?;
            let deflated = rest.get(..usize::try_from(u32::from_be_bytes(*length)).ok()?)?;
            miniz_oxide::inflate::decompress_to_vec_with_limit(deflated, MAX_INFLATED).ok()
        }
        _ => Some(plaintext),
    }
}

impl Cipher {
    /// Seals a value as JSON, deflated where that helps, padded to its size class.
    pub fn seal<T: Serialize>(&self, value: &T) -> Sealed {
        // Serialising our own plain data types to JSON cannot fail.
        let json = serde_json::to_vec(value).expect("plain data serialises");
        self.0.seal(&pad(pack(json)))
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
            .and_then(unpack)
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
        // Latin-1 as chars: any bytes (deflated text too) round-trip, one
        // char each, so a value's length is its plaintext's.
        fn seal(&self, plaintext: &[u8]) -> Sealed {
            let data = plaintext.iter().rev().map(|&b| char::from(b)).collect();
            Sealed { sealed: TEST_KEY, data }
        }

        fn open(&self, sealed: &Sealed) -> Option<Vec<u8>> {
            let bytes: Option<Vec<u8>> =
                sealed.data.chars().rev().map(|c| u8::try_from(c).ok()).collect();
            bytes.filter(|_| sealed.sealed == TEST_KEY)
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
        let plain_len = |sealed: &Sealed| sealed.data.chars().count();
        assert_eq!(plain_len(&short), MIN_SEALED_LEN);
        assert_eq!(plain_len(&long), MIN_SEALED_LEN);
        assert_eq!(plain_len(&none), MIN_SEALED_LEN);
        // Text that hardly compresses (a thousand pseudo-random characters
        // of 75, over 6 bits each) keeps a class that holds its JSON.
        let mut state = 1u32;
        let text: String = (0..1000)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                char::from(b'0' + u8::try_from((state >> 16) % 75).unwrap_or(0))
            })
            .collect();
        assert_eq!(plain_len(&cipher().seal(&text)), 4 * MIN_SEALED_LEN);
        assert_eq!(cipher().open::<Vec<String>>(&short), Protected::Readable(vec!["age".into()]));
        assert_eq!(cipher().open::<Option<String>>(&none), Protected::Readable(None));
    }

    #[test]
    fn long_text_is_deflated_before_sealing_and_opens_as_it_was() {
        let text = "Tijdens het gesprek vroeg de praktijkopleider waar mijn ouders vandaan \
            komen. Een week later was de plek vergeven, maar de vacature stond nog open. "
            .repeat(6);
        let json_len = serde_json::to_vec(&text).expect("json").len();
        let sealed = cipher().seal(&text);
        let plain_len = sealed.data.chars().count();
        assert!(json_len > 2 * MIN_SEALED_LEN, "{json_len}");
        assert_eq!(plain_len, MIN_SEALED_LEN, "deflated into the smallest class");
        assert_eq!(cipher().open::<String>(&sealed), Protected::Readable(text));
    }

    #[test]
    fn content_sealed_before_compression_still_opens() {
        let text = "x".repeat(3 * MIN_SEALED_LEN);
        let mut json = serde_json::to_vec(&text).expect("json");
        json.resize(4 * MIN_SEALED_LEN, b' ');
        let old = cipher().0.seal(&json);
        assert_eq!(cipher().open::<String>(&old), Protected::Readable(text));
    }

    #[test]
    fn a_deflated_value_that_lies_about_its_length_reads_as_erased() {
        let mut forged = vec![DEFLATED];
        forged.extend_from_slice(&u32::MAX.to_be_bytes());
        forged.extend_from_slice(b"not deflate");
        let sealed = cipher().0.seal(&pad(forged));
        assert_eq!(cipher().open::<String>(&sealed), Protected::erased());
    }
}
