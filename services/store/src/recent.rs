//! Aggregates as this process last appended them, so that the next command on
//! one decides without loading it: a placement takes thirteen commands in a
//! row, nearly all on the state the previous one left.
//!
//! A cached state is never trusted, only tried. It is the fold of the events
//! this process appended (deserialised from what was stored, as a load reads
//! them), at the version they brought the aggregate to. If another process or
//! task appended since, the append of a command decided on it is refused by the
//! events' primary key, exactly as for any stale state (see
//! [`Loaded`](crate::Loaded)), and the command is decided again on a fresh load.
//! And because only a successful append proves the state was current, every
//! other outcome decided on a cached state (a refusal, a denial, a version
//! mismatch, or a command that records nothing) is decided again on a fresh
//! load before it is answered: a cache can make a command cheaper, never make
//! it answer otherwise.
//!
//! The states are ciphertext where the domain seals content (see `vault`), as in
//! a snapshot, so an erasure is not outlived here. The cache holds at most
//! [`RECENT_AGGREGATES`] states and evicts the least used.

use std::any::Any;
use std::sync::Arc;

use cqrs_es::Aggregate;
use cqrs_es::persist::EventStoreAggregateContext;

/// How many aggregates the cache holds: some thousands of placements under
/// way at once, at a few kilobytes each.
pub const RECENT_AGGREGATES: usize = 10_000;

/// One aggregate's state after this process's last append to it.
struct Recent<A> {
    aggregate: A,
    version: usize,
    snapshot: Option<usize>,
}

/// The cache, for every aggregate type (keyed by type and id).
pub(crate) struct RecentAggregates {
    states: quick_cache::sync::Cache<(&'static str, String), Arc<dyn Any + Send + Sync>>,
}

impl RecentAggregates {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { states: quick_cache::sync::Cache::new(capacity) }
    }

    /// The state of `id` as this process last appended it, to decide on.
    pub(crate) fn get<A: Aggregate + Clone + 'static>(
        &self,
        id: &str,
    ) -> Option<EventStoreAggregateContext<A>> {
        let entry = self.states.get(&(A::TYPE, id.to_owned()))?;
        let recent = entry.downcast_ref::<Recent<A>>()?;
        Some(EventStoreAggregateContext {
            aggregate_id: id.to_owned(),
            aggregate: recent.aggregate.clone(),
            current_sequence: recent.version,
            current_snapshot: recent.snapshot,
        })
    }

    /// Remembers `id` at `version` after an append.
    pub(crate) fn put<A: Aggregate + 'static>(
        &self,
        id: &str,
        aggregate: A,
        version: usize,
        snapshot: Option<usize>,
    ) {
        self.states
            .insert((A::TYPE, id.to_owned()), Arc::new(Recent { aggregate, version, snapshot }));
    }

    /// Forgets `id`: its cached state turned out stale.
    pub(crate) fn forget<A: Aggregate>(&self, id: &str) {
        self.states.remove(&(A::TYPE, id.to_owned()));
    }
}

impl std::fmt::Debug for RecentAggregates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentAggregates").field("len", &self.states.len()).finish()
    }
}
