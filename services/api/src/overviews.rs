//! The students' overviews as this process last rendered them
//! (`getMyOverview`), served again while the placement board has not changed
//! them.
//!
//! The overview is what a student's app asks for most of all, often many
//! students at once (the first school day, a deadline). Rendering it costs a
//! round trip to PostgreSQL, decoding every placement record and writing the
//! JSON: about three quarters of the request's CPU, and with 200 students
//! asking back to back the machine's whole capacity (BENCHMARKS.md,
//! "Placement lifecycle", "Why the overview p99 was missed back to back").
//!
//! An entry is never served staler than the board it was read from:
//!
//! - The board tells this cache, after each of this process's rounds has
//!   committed, which students' placements the round changed and the
//!   checkpoint it reached (the *horizon*; see
//!   `stagepact_store::placements::Changes`). Their entries go, unless read at
//!   that checkpoint or later.
//! - An entry is taken in only when it was read at the horizon or later (the
//!   board's checkpoint is read with the placements, in one snapshot). One
//!   read before a round whose changes were already told might miss them.
//! - When the board may have changed in ways not told (another process's
//!   worker applied a round, a round's outcome is unknown, a rebuild), every
//!   entry goes and none is taken in until the next round is told.
//! - An entry is as of its read or the horizon, whichever is later: every
//!   change up to the horizon that touched the student removed it. A read
//!   that waits for a position (`min_position`) past that goes to the board.
//!
//! So a read served from here equals one the board could have answered at the
//! horizon. When other processes apply the board's rounds too, this process
//! learns of it at its worker's next round (it tries as soon as the same
//! events are announced), a delay of the order of the board's own lag
//! behind the log.
//!
//! The entries are the response bodies with their entity tags, for today
//! (a view's compliance and next action depend on the day), bounded in bytes.

use std::sync::{PoisonError, RwLock};

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use stagepact_store::placements::{Changes, StudentKey};

/// Most bytes of rendered overviews kept: about 15,000 students' overviews
/// of one or two placements.
pub const OVERVIEW_CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// Estimated bytes an entry takes besides its body (keys, bookkeeping).
const ENTRY_OVERHEAD: u64 = 160;

/// A rendered overview: the JSON body and its entity tag.
#[derive(Debug, Clone)]
pub struct Rendered {
    body: Bytes,
    tag: HeaderValue,
}

impl Rendered {
    /// `value` as the JSON body of a response, with its entity tag.
    pub fn json<T: serde::Serialize>(value: &T) -> Result<Self, serde_json::Error> {
        let body = Bytes::from(serde_json::to_vec(value)?);
        let tag = crate::conditional::tag_of(&body);
        Ok(Self { body, tag })
    }

    /// The response: the body, its type and its tag (so that a conditional
    /// request is answered without hashing it again).
    pub fn response(self) -> Response {
        let content_type = HeaderValue::from_static("application/json");
        ([(header::CONTENT_TYPE, content_type), (header::ETAG, self.tag)], self.body)
            .into_response()
    }
}

/// One student's overview as rendered.
#[derive(Debug, Clone)]
struct Entry {
    rendered: Rendered,
    /// The board's checkpoint it was read at.
    read_at: i64,
    /// The day it was rendered for.
    day: NaiveDate,
}

#[derive(Debug, Clone, Copy)]
struct Weight;

impl quick_cache::Weighter<StudentKey, Entry> for Weight {
    fn weight(&self, (school, student): &StudentKey, entry: &Entry) -> u64 {
        let key = (school.len() + student.len()) as u64;
        entry.rendered.body.len() as u64 + key + ENTRY_OVERHEAD
    }
}

/// The rendered overviews of this process (see the module).
pub struct Overviews {
    /// Up to where the board's changes have been told; `None` while this
    /// process does not know (nothing is served or taken in).
    horizon: RwLock<Option<i64>>,
    entries: quick_cache::sync::Cache<StudentKey, Entry, Weight>,
}

impl std::fmt::Debug for Overviews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overviews")
            .field("horizon", &*self.horizon.read().unwrap_or_else(PoisonError::into_inner))
            .field("entries", &self.entries.len())
            .field("bytes", &self.entries.weight())
            .finish()
    }
}

impl Overviews {
    /// An empty cache of at most `bytes` of overviews.
    pub fn new(bytes: u64) -> Self {
        let estimated = usize::try_from(bytes / 2_048).unwrap_or(usize::MAX).max(16);
        Self {
            horizon: RwLock::new(None),
            entries: quick_cache::sync::Cache::with_weighter(estimated, bytes, Weight),
        }
    }

    /// The student's overview for `day`, if one is kept that reflects the
    /// board up to `min_position` (when given).
    pub fn get(
        &self,
        student: &StudentKey,
        day: NaiveDate,
        min_position: Option<i64>,
    ) -> Option<Rendered> {
        let horizon = self.horizon.read().unwrap_or_else(PoisonError::into_inner);
        let horizon = (*horizon)?;
        let entry = self.entries.get(student)?;
        let as_of = entry.read_at.max(horizon);
        let current = entry.day == day && min_position.is_none_or(|position| position <= as_of);
        current.then_some(entry.rendered)
    }

    /// Keeps the student's overview for `day`, read at the board's checkpoint
    /// `read_at`, unless changes after that may already have been told.
    pub fn put(&self, student: StudentKey, day: NaiveDate, read_at: i64, rendered: Rendered) {
        let horizon = self.horizon.write().unwrap_or_else(PoisonError::into_inner);
        if horizon.is_some_and(|horizon| read_at >= horizon) {
            self.entries.insert(student, Entry { rendered, read_at, day });
        }
    }

    /// How many overviews are kept, and their bytes.
    pub fn size(&self) -> (usize, u64) {
        (self.entries.len(), self.entries.weight())
    }
}

impl Changes for Overviews {
    fn committed(&self, checkpoint: i64, students: &[StudentKey]) {
        let mut horizon = self.horizon.write().unwrap_or_else(PoisonError::into_inner);
        for student in students {
            self.entries.remove_if(student, |entry| entry.read_at < checkpoint);
        }
        *horizon = Some(horizon.map_or(checkpoint, |h| h.max(checkpoint)));
    }

    fn lost_track(&self) {
        let mut horizon = self.horizon.write().unwrap_or_else(PoisonError::into_inner);
        self.entries.clear();
        *horizon = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 3, 1).expect("valid")
    }

    fn student(number: &str) -> StudentKey {
        ("25XX".to_owned(), number.to_owned())
    }

    fn rendered(text: &str) -> Rendered {
        Rendered::json(&serde_json::json!({ "text": text })).expect("json")
    }

    fn body(rendered: Option<Rendered>) -> Option<String> {
        rendered.map(|r| String::from_utf8(r.body.to_vec()).expect("utf-8"))
    }

    #[test]
    fn nothing_is_kept_or_served_before_the_board_has_told_where_it_is() {
        let cache = Overviews::new(OVERVIEW_CACHE_BYTES);
        cache.put(student("s-1"), day(), 10, rendered("a"));
        assert!(cache.get(&student("s-1"), day(), None).is_none());
        cache.committed(10, &[]);
        cache.put(student("s-1"), day(), 10, rendered("a"));
        assert_eq!(
            body(cache.get(&student("s-1"), day(), None)).as_deref(),
            Some(r#"{"text":"a"}"#)
        );
    }

    #[test]
    fn a_round_that_changed_the_student_removes_an_older_overview_only() {
        let cache = Overviews::new(OVERVIEW_CACHE_BYTES);
        cache.committed(10, &[]);
        cache.put(student("s-1"), day(), 10, rendered("old"));
        cache.put(student("s-2"), day(), 10, rendered("other"));
        // Read after the round committed (at 12), before it was told: kept.
        cache.put(student("s-3"), day(), 12, rendered("new"));
        cache.committed(12, &[student("s-1"), student("s-3")]);
        assert!(cache.get(&student("s-1"), day(), None).is_none(), "changed by the round");
        assert!(cache.get(&student("s-2"), day(), None).is_some(), "not touched");
        assert!(
            cache.get(&student("s-3"), day(), None).is_some(),
            "read at the round's checkpoint"
        );
    }

    #[test]
    fn a_read_from_before_a_round_already_told_is_not_taken_in() {
        let cache = Overviews::new(OVERVIEW_CACHE_BYTES);
        cache.committed(10, &[]);
        // The round to 12 changed s-1 and was told before this read (at 10)
        // came back: it may miss that change.
        cache.committed(12, &[student("s-1")]);
        cache.put(student("s-1"), day(), 10, rendered("stale"));
        assert!(cache.get(&student("s-1"), day(), None).is_none());
    }

    #[test]
    fn a_wait_for_a_position_past_what_is_known_goes_to_the_board() {
        let cache = Overviews::new(OVERVIEW_CACHE_BYTES);
        cache.committed(10, &[]);
        cache.put(student("s-1"), day(), 10, rendered("a"));
        cache.committed(15, &[student("s-2")]);
        // As of 15: no round up to there changed s-1.
        assert!(cache.get(&student("s-1"), day(), Some(15)).is_some());
        assert!(cache.get(&student("s-1"), day(), Some(16)).is_none());
    }

    #[test]
    fn losing_track_of_the_board_forgets_everything_until_the_next_round() {
        let cache = Overviews::new(OVERVIEW_CACHE_BYTES);
        cache.committed(10, &[]);
        cache.put(student("s-1"), day(), 10, rendered("a"));
        cache.lost_track();
        assert!(cache.get(&student("s-1"), day(), None).is_none());
        cache.put(student("s-1"), day(), 20, rendered("b"));
        assert!(cache.get(&student("s-1"), day(), None).is_none(), "nothing taken in meanwhile");
        cache.committed(20, &[]);
        cache.put(student("s-1"), day(), 20, rendered("b"));
        assert!(cache.get(&student("s-1"), day(), None).is_some());
    }

    #[test]
    fn an_overview_is_for_the_day_it_was_rendered() {
        let cache = Overviews::new(OVERVIEW_CACHE_BYTES);
        cache.committed(10, &[]);
        cache.put(student("s-1"), day(), 10, rendered("a"));
        assert!(cache.get(&student("s-1"), day().succ_opt().expect("next"), None).is_none());
    }

    #[test]
    fn the_cache_keeps_to_its_bytes() {
        let cache = Overviews::new(64 * 1024);
        cache.committed(1, &[]);
        for n in 0..1_000 {
            cache.put(student(&format!("s-{n}")), day(), 1, rendered(&"x".repeat(500)));
        }
        let (entries, bytes) = cache.size();
        assert!(bytes <= 64 * 1024, "{bytes} bytes");
        assert!(entries > 10 && entries < 1_000, "{entries} entries");
    }
}
