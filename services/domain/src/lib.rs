//! The Stagepact domain: aggregates, their commands and events, and the rules of
//! the Stagepact mbo they enforce. No I/O lives here: the store persists these
//! aggregates, the API parses requests into these types.

pub mod catalog;
pub mod company;
pub mod values;

pub use catalog::{EVENT_CATALOG, EventKind};
