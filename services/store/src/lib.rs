//! Stagepact's PostgreSQL side: the cqrs-es event store (postgres-es), the global
//! event log and its sequencer, checkpointed projectors, the read models, the
//! idempotency records of the API, and the vault of data subjects' keys.
//!
//! # Lists with optional filters
//!
//! List queries whose filters are optional (`$n IS NULL OR column = $n`) are
//! sent as unnamed statements (`persistent(false)`). A named prepared
//! statement gets a generic plan after five executions, and a generic plan
//! cannot know which filters are present: it can use neither the index on the
//! filtered column nor the page cursor, and reads the table in id order
//! instead (BENCHMARKS.md, "`listSignals` grows with every signal ever
//! forwarded"). An unnamed statement is planned with each call's values, at
//! the cost of a plan per call.

mod appender;
pub mod cases;
pub mod commands;
pub mod company_registry;
mod db;
mod fold;
pub mod idempotency;
pub mod indicators;
pub mod log;
pub mod matching_rounds;
pub mod offers;
pub mod placements;
pub mod projector;
pub mod reactions;
mod recent;
pub mod students;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vault;

pub use commands::{CommandBus, CommandError, Committed, Denial, Loaded};
pub use db::{DbSettings, connect, migrate};
pub use log::{Audience, EventLog, FeedFilter, LoggedEvent};
pub use projector::{Projection, Projections, Quiet};
pub use vault::{MasterKey, Opener, Vault, VaultError};

/// What went wrong talking to PostgreSQL, in the store's words.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or has no connection free in time: retry later.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// PostgreSQL refused a value the caller sent (SQLSTATE class 22, data
    /// exception: e.g. a NUL byte in a text): the request's fault.
    #[error("the database refused a value: {0}")]
    InvalidValue(#[source] sqlx::Error),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A stored document did not have the expected shape.
    #[error("stored data could not be read: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// No projection has this name.
    #[error("no projection is named {0:?}")]
    UnknownProjection(String),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored data key does not unwrap: the service runs with another master
    /// key than the one the vault's keys were made under (a configuration error,
    /// not an erased subject).
    #[error("a data key does not unwrap under the configured master key")]
    MasterKeyMismatch,
}

/// Whether `error` means the database cannot be reached now: a connection
/// that failed or that the server is ending (57P01..57P03: admin shutdown,
/// crash shutdown, cannot connect now; class 08: connection exceptions).
pub(crate) fn unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|code| code.starts_with("57P") || code.starts_with("08"))
        }
        _ => false,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            _ if unavailable(&error) => Self::Unavailable(error),
            sqlx::Error::Database(ref db)
                if db.code().is_some_and(|code| code.starts_with("22")) =>
            {
                Self::InvalidValue(error)
            }
            other => Self::Database(other),
        }
    }
}
