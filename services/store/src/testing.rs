//! Test support: a fresh, migrated database per test — in the process's private
//! PostgreSQL cluster, or on the server `DATABASE_URL` points at when it is set.

use sqlx::{Connection, PgConnection, PgPool};

use crate::{DbSettings, StoreError, connect, migrate};

/// The URL of a fresh, empty database for one test.
pub async fn fresh_database_url() -> String {
    if let Ok(server) = std::env::var("DATABASE_URL") {
        return on_server(&server).await;
    }
    let created = tokio::task::spawn_blocking(stagepact_pgcluster::fresh_test_database).await;
    match created {
        Ok(Ok(url)) => url,
        Ok(Err(error)) => panic!("cannot provision a test database: {error}"),
        Err(error) => panic!("cannot provision a test database: {error}"),
    }
}

/// Creates a uniquely named database on the server of `server_url` and returns
/// the same URL pointing at it.
async fn on_server(server_url: &str) -> String {
    let name = format!("stagepact_test_{}", uuid_like());
    let mut admin = PgConnection::connect(server_url).await.expect("connect to DATABASE_URL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{root}/{name}?{query}"),
        None => format!("{root}/{name}"),
    }
}

fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", hasher.finish())
}

/// A pool on a fresh, migrated database.
pub async fn fresh_pool() -> Result<PgPool, StoreError> {
    let url = fresh_database_url().await;
    let pool = connect(&url, &DbSettings { max_connections: 10, ..DbSettings::default() }).await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Inserts `count` events of `aggregate_type`, one per aggregate, already
/// stamped at log positions `after + 1` to `after + count`: a log of a given
/// shape and size in one statement, without a sequencer.
pub async fn insert_stamped(
    pool: &PgPool,
    aggregate_type: &str,
    after: i64,
    count: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
                             event_version, payload, metadata, log_position)
         SELECT $1, $1 || '-' || n, 1, 'Probed', '1', '{}', '{}', $2 + n
           FROM generate_series(1::bigint, $3) AS n",
    )
    .bind(aggregate_type)
    .bind(after)
    .bind(count)
    .execute(pool)
    .await?;
    Ok(())
}
