//! Connecting to PostgreSQL and migrating the schema.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::StoreError;

/// Pool settings.
#[derive(Debug, Clone)]
pub struct DbSettings {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long a request waits for a free connection before it gets a 503.
    pub acquire_timeout: Duration,
}

impl Default for DbSettings {
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout: Duration::from_secs(5) }
    }
}

/// Opens a pool on `url`.
///
/// Every session bounds its statements and its idle transactions: the event log
/// only advances past a request session's writing transaction once it ends (see
/// `log`), so one forgotten transaction must not stall every reader for long.
pub async fn connect(url: &str, settings: &DbSettings) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(StoreError::Database)?
        .application_name("stagepact")
        .options([
            ("statement_timeout", "15s"),
            ("idle_in_transaction_session_timeout", "10s"),
            ("lock_timeout", "5s"),
            // Events must be durable before they are visible: the event log's
            // stamping relies on it (see `log`). Its own transactions, and the
            // projectors', lower it locally.
            ("synchronous_commit", "on"),
        ]);
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // A broken connection fails its query and is dropped; pinging every
        // connection at checkout would cost a round trip per query.
        .test_before_acquire(false)
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Applies the embedded migrations (idempotent).
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::migrate!("./migrations").run(pool).await?;
    Ok(())
}
