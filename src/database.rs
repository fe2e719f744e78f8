//! Where the database comes from: `DATABASE_URL`, or the embedded default — a
//! private PostgreSQL cluster under the data directory, run from the binaries
//! installed on the machine and stopped when we exit.

use std::path::Path;

use anyhow::Context;
use stagepact_pgcluster::{Cluster, ClusterOptions, PgBinaries};

/// A database URL, and the cluster behind it when we run one.
pub struct Database {
    /// Connect here.
    pub url: String,
    cluster: Option<Cluster>,
}

impl Database {
    /// `DATABASE_URL` if set, else the embedded cluster in `data_dir/pgdata`.
    pub async fn open(database_url: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        if let Some(url) = database_url {
            return Ok(Self { url: url.to_owned(), cluster: None });
        }
        let data_dir = data_dir.to_path_buf();
        let cluster = tokio::task::spawn_blocking(move || -> anyhow::Result<Cluster> {
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
            let binaries = PgBinaries::locate()?;
            let options = ClusterOptions::new(data_dir.join("pgdata"));
            tracing::info!(data_dir = %options.data_dir.display(), "starting the embedded PostgreSQL");
            Ok(Cluster::start(&binaries, options)?)
        })
        .await??;
        let admin = cluster.url("postgres");
        ensure_database(&admin).await?;
        Ok(Self { url: cluster.url("stagepact"), cluster: Some(cluster) })
    }

    /// Stops the embedded cluster, if any (a fast, clean shutdown).
    pub async fn close(self) -> anyhow::Result<()> {
        if let Some(cluster) = self.cluster {
            tracing::info!("stopping the embedded PostgreSQL");
            tokio::task::spawn_blocking(move || cluster.stop()).await??;
        }
        Ok(())
    }
}

async fn ensure_database(admin_url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .context("connecting to the embedded PostgreSQL")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'stagepact')")
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        sqlx::query("CREATE DATABASE stagepact").execute(&mut conn).await?;
    }
    Ok(())
}
