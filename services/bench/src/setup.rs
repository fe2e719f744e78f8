//! The environment of a run: a private durable PostgreSQL cluster, the API
//! built on it and served in-process, a token and an HTTP client.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use stagepact_api::auth::{Authenticator, Role};
use stagepact_api::{ApiConfig, App, AppState, JwtConfig, JwtKey};
use stagepact_pgcluster::{Cluster, ClusterOptions, PgBinaries};
use stagepact_store::DbSettings;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The database the benchmark creates in its cluster.
pub const DATABASE: &str = "stagepact_bench";

/// How long the benchmark's tokens are valid: longer than any run.
const TOKEN_SECONDS: u64 = 4 * 3600;

/// What `--pg-log` makes PostgreSQL log, to find what stalls a load: every
/// autovacuum and checkpoint, lock waits over 100 ms, statements over 100 ms
/// (with their plans, see `explain_slow_statements`) and temporary files, each
/// line with a millisecond timestamp.
pub const DIAGNOSTIC_SETTINGS: [(&str, &str); 8] = [
    ("log_line_prefix", "%m [%p] "),
    // The report's slowest seconds are in UTC.
    ("log_timezone", "UTC"),
    ("log_autovacuum_min_duration", "0"),
    ("log_checkpoints", "on"),
    ("log_lock_waits", "on"),
    ("deadlock_timeout", "100ms"),
    ("log_min_duration_statement", "100"),
    ("log_temp_files", "0"),
];

/// Makes every later session of the benchmark's database log the plan of a
/// statement over 100 ms (`auto_explain`), when the PostgreSQL installation
/// has the module: a slow statement's plan says why it was slow.
async fn explain_slow_statements(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut session = sqlx::PgConnection::connect(url).await.context("connecting")?;
    if sqlx::raw_sql("LOAD 'auto_explain'").execute(&mut session).await.is_err() {
        eprintln!("note: auto_explain is not installed; slow statements are logged without plans");
        return Ok(());
    }
    sqlx::raw_sql(&format!(
        "ALTER DATABASE {DATABASE} SET session_preload_libraries = 'auto_explain';
         ALTER DATABASE {DATABASE} SET auto_explain.log_min_duration = '100ms';"
    ))
    .execute(&mut session)
    .await
    .context("turning auto_explain on")?;
    Ok(())
}

/// Everything a phase needs.
pub struct Env {
    /// The PostgreSQL programs (for `pgbench`).
    pub binaries: PgBinaries,
    /// The private cluster.
    pub cluster: Cluster,
    /// The application's pool (also used for the benchmark's own SQL).
    pub pool: PgPool,
    /// A clone of the served application's state, for in-process measurements.
    pub state: AppState,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// An SBB bearer token.
    pub token: String,
    /// Mints the tokens of other callers (schools, companies, students).
    authenticator: Authenticator,
    /// One shared HTTP client with a large connection pool.
    pub http: reqwest::Client,
    /// PostgreSQL's `version()`.
    pub pg_version: String,
    /// Durability settings as the server reports them (`fsync`, `synchronous_commit`, ...).
    pub pg_settings: Vec<(String, String)>,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
    // Declared last: dropped after the cluster is stopped.
    dir: TempDir,
}

impl Env {
    /// Starts the cluster and the API. `clients` sizes the HTTP connection pool;
    /// `statement_stats` loads `pg_stat_statements` (which costs some throughput);
    /// `log_diagnostics` makes PostgreSQL log what can stall a load (see
    /// [`DIAGNOSTIC_SETTINGS`]) with millisecond timestamps; `settings` are
    /// passed to PostgreSQL after these.
    pub async fn start(
        clients: usize,
        statement_stats: bool,
        log_diagnostics: bool,
        settings: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let settings = settings.to_vec();
        let extra_names: Vec<String> = DIAGNOSTIC_SETTINGS
            .iter()
            .filter(|_| log_diagnostics)
            .map(|(name, _)| (*name).to_owned())
            .chain(settings.iter().map(|(name, _)| name.clone()))
            .collect();
        let dir = tempfile::Builder::new()
            .prefix("stagepact-bench-")
            .tempdir()
            .context("creating a temporary directory")?;
        // When we are root the cluster runs as `postgres`, which must enter it.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .context("opening the temporary directory to the postgres user")?;
        let data_dir = dir.path().join("data");
        let (binaries, cluster) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let binaries = PgBinaries::locate().context("locating the PostgreSQL binaries")?;
            let options = ClusterOptions {
                data_dir,
                durable: true,
                max_connections: 300,
                extra_settings: statement_stats
                    .then_some(("shared_preload_libraries", "pg_stat_statements"))
                    .into_iter()
                    .chain(DIAGNOSTIC_SETTINGS.iter().copied().filter(|_| log_diagnostics))
                    .map(|(key, value)| (key.to_owned(), value.to_owned()))
                    .chain(settings)
                    .collect(),
            };
            let cluster = Cluster::start(&binaries, options).context("starting PostgreSQL")?;
            cluster.create_database(DATABASE).context("creating the benchmark database")?;
            Ok((binaries, cluster))
        })
        .await
        .context("the cluster start task failed")??;

        if log_diagnostics {
            explain_slow_statements(&cluster.url(DATABASE)).await?;
        }
        let settings = DbSettings { max_connections: 32, acquire_timeout: Duration::from_secs(5) };
        let pool = stagepact_store::connect(&cluster.url(DATABASE), &settings)
            .await
            .context("connecting to the benchmark database")?;
        if statement_stats {
            sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                .execute(&pool)
                .await
                .context("creating pg_stat_statements")?;
        }
        let pg_version: String = sqlx::query_scalar("SELECT version()")
            .fetch_one(&pool)
            .await
            .context("reading the version")?;
        let mut pg_settings = Vec::new();
        // The durability and checkpoint settings, and any the run was started with (so an
        // experiment's report says what it changed).
        const REPORTED: [&str; 8] = [
            "fsync",
            "synchronous_commit",
            "full_page_writes",
            "wal_sync_method",
            "shared_buffers",
            "max_wal_size",
            "checkpoint_timeout",
            "autovacuum_naptime",
        ];
        let reported = REPORTED
            .into_iter()
            .map(str::to_owned)
            .chain(extra_names.into_iter().filter(|name| !REPORTED.contains(&name.as_str())));
        for name in reported {
            let name = name.as_str();
            let value: String = sqlx::query_scalar("SELECT current_setting($1)")
                .bind(name)
                .fetch_one(&pool)
                .await
                .with_context(|| format!("reading the setting {name}"))?;
            pg_settings.push((name.to_owned(), value));
        }

        let secret = format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4()).into_bytes();
        let jwt = JwtConfig {
            key: JwtKey::Hs256(secret),
            issuer: "stagepact-dev".into(),
            audience: "stagepact".into(),
        };
        let authenticator = Authenticator::new(&jwt)?;
        let token = authenticator.mint("bench", Role::Sbb, None, None, TOKEN_SECONDS)?;
        // The benchmark measures the server, not its rate limiter: every
        // client runs from one address, far above any client's rate.
        let mut config = ApiConfig::new(jwt);
        config.rate_limits = stagepact_api::RateLimits { per_token: None, per_address: None };
        let app = App::build(pool.clone(), config).await.context("building the API")?;
        let state = app.state.clone();
        let listener =
            TcpListener::bind("127.0.0.1:0").await.context("binding the API listener")?;
        let base = format!("http://{}", listener.local_addr()?);
        let (shutdown, signal) = oneshot::channel::<()>();
        let server = tokio::spawn(app.serve(listener, async move {
            let _ = signal.await;
        }));
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(clients * 2 + 8)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            binaries,
            cluster,
            pool,
            state,
            base,
            token,
            authenticator,
            http,
            pg_version,
            pg_settings,
            shutdown,
            server,
            dir,
        })
    }

    /// Prepares the database for a measured phase: every event stamped, fresh
    /// statistics, a checkpoint (so no phase pays for an earlier one's).
    pub async fn settle(&self) -> anyhow::Result<()> {
        crate::seed::await_stamped(self, Duration::from_secs(120)).await?;
        for statement in ["ANALYZE", "CHECKPOINT"] {
            sqlx::query(statement)
                .execute(&self.pool)
                .await
                .with_context(|| format!("running {statement}"))?;
        }
        Ok(())
    }

    /// A bearer token for `role` of `org` (and `student`), valid for the run.
    pub fn mint(
        &self,
        role: Role,
        org: Option<&str>,
        student: Option<&str>,
    ) -> anyhow::Result<String> {
        let subject = format!("bench-{role}-{}", org.unwrap_or("-"));
        Ok(self.authenticator.mint(
            &subject,
            role,
            org.map(str::to_owned),
            student.map(str::to_owned),
            TOKEN_SECONDS,
        )?)
    }

    /// The benchmark database's URL, for a connection outside the pool.
    pub fn database_url(&self) -> String {
        self.cluster.url(DATABASE)
    }

    /// PostgreSQL's log (its diagnostics when started with `log_diagnostics`).
    pub fn pg_log(&self) -> &std::path::Path {
        self.cluster.log_file()
    }

    /// Where the benchmark keeps scratch files (pgbench script and logs).
    pub fn scratch(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Stops the server (gracefully), closes the pool and stops PostgreSQL.
    pub async fn stop(self) -> anyhow::Result<()> {
        let Self { cluster, pool, state, shutdown, server, dir, .. } = self;
        let _ = shutdown.send(());
        server.await.context("the server task failed")?.context("serving")?;
        drop(state);
        pool.close().await;
        tokio::task::spawn_blocking(move || cluster.stop())
            .await
            .context("the cluster stop task failed")?
            .context("stopping PostgreSQL")?;
        drop(dir);
        Ok(())
    }
}
