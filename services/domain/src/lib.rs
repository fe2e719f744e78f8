//! The Stagepact domain: aggregates, their commands and events, and the rules of
//! the Stagepact mbo they enforce. No I/O lives here: the store persists these
//! aggregates, the API parses requests into these types.

pub mod catalog;
pub mod company;
pub mod complaint;
pub mod investigation;
pub mod matching_round;
pub mod monitoring;
pub mod offer;
pub mod placement;
pub mod protected;
pub mod report;
pub mod shortage;
pub mod signal;
pub mod student;
pub mod values;
pub mod wage;

pub use catalog::{EVENT_CATALOG, EventKind};

/// Folds one event into an aggregate's record: the first event starts it
/// (`start`, which the read models use too), later ones are folded by `apply`.
/// `start` refuses any other first event, which `decide` never records.
pub(crate) fn fold_record<R, E>(
    record: &mut Option<R>,
    event: &E,
    start: impl FnOnce(&E) -> Option<R>,
    apply: impl FnOnce(&mut R, &E),
) {
    match record {
        Some(record) => apply(record, event),
        None => *record = start(event),
    }
}

/// Who besides SBB may see an aggregate's events. The command path stores the
/// audience as event metadata (`school`, `company`, `student`), so the feed and
/// a student's timeline filter on the event itself, never on a read model that
/// could lag behind it.
pub trait Visibility {
    /// (metadata key, value) pairs naming the school, company and student
    /// involved. A key named more than once (a shortage concerns several
    /// schools) is stored once, its values separated by a space: no id
    /// contains one (`values::path_id`).
    fn audience(&self) -> Vec<(&'static str, String)>;
}

impl Visibility for company::Company {
    // SBB and schools see every company event; the company its own.
    fn audience(&self) -> Vec<(&'static str, String)> {
        self.record().map(|r| vec![("company", r.company_id.to_string())]).unwrap_or_default()
    }
}
