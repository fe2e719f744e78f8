//! Commands, flags and environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use stagepact_api::auth::{Authenticator, Role};
use stagepact_api::{ApiConfig, App, JwtConfig, JwtKey, Rate, RateLimits};
use stagepact_domain::wage::WageTable;
use stagepact_store::{DbSettings, EventLog, MasterKey, Projections, Vault};

use crate::database::Database;

/// Stagepact: the event-sourced backend of the Stagepact mbo.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Mint a token with the configured HS256 secret, for trying the API.
    Token(TokenArgs),
    /// Read models.
    Projections {
        #[command(subcommand)]
        command: ProjectionCommand,
    },
    /// Write openapi/openapi.json and schemas/ from the code (`--check`: only
    /// report drift, exit 1 if any).
    Generate {
        /// Only check.
        #[arg(long)]
        check: bool,
        /// The repository root.
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectionCommand {
    /// List the projections and their checkpoints.
    List,
    /// Empty a projection and replay the whole log into it.
    Rebuild {
        /// The projection's name (see `list`).
        name: String,
    },
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The caller's role.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// School BRIN code (school) or SBB company id (company).
    #[arg(long)]
    org: Option<String>,
    /// The student id (student).
    #[arg(long)]
    student: Option<String>,
    /// The subject (who acts).
    #[arg(long, default_value = "dev-user")]
    sub: String,
    /// Validity in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Student,
    School,
    Company,
    Sbb,
    Monitor,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Student => Role::Student,
            RoleArg::School => Role::School,
            RoleArg::Company => Role::Company,
            RoleArg::Sbb => Role::Sbb,
            RoleArg::Monitor => Role::Monitor,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Algorithm {
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "ES256")]
    Es256,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings, each a flag and an environment variable (listed in the README).
#[derive(Debug, Args)]
pub struct Settings {
    /// Listen address.
    #[arg(long, env = "STAGEPACT_ADDR", default_value = "127.0.0.1:8080", global = true)]
    addr: SocketAddr,
    /// PostgreSQL URL; without it a private cluster runs under the data directory.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Where the embedded cluster and the development secret live.
    #[arg(long, env = "STAGEPACT_DATA_DIR", default_value = ".stagepact", global = true)]
    data_dir: PathBuf,
    /// HS256 secret for tokens; without it (and without a public key) a random
    /// development secret is kept in the data directory.
    #[arg(long, env = "STAGEPACT_JWT_SECRET", global = true, hide_env_values = true)]
    jwt_secret: Option<String>,
    /// PEM file with the public key for RS256/ES256 tokens.
    #[arg(long, env = "STAGEPACT_JWT_PUBLIC_KEY_FILE", global = true)]
    jwt_public_key_file: Option<PathBuf>,
    /// Algorithm of that public key.
    #[arg(
        long,
        env = "STAGEPACT_JWT_ALGORITHM",
        value_enum,
        default_value = "RS256",
        global = true
    )]
    jwt_algorithm: Algorithm,
    /// Required token issuer.
    #[arg(long, env = "STAGEPACT_JWT_ISSUER", default_value = "stagepact-dev", global = true)]
    jwt_issuer: String,
    /// Required token audience.
    #[arg(long, env = "STAGEPACT_JWT_AUDIENCE", default_value = "stagepact", global = true)]
    jwt_audience: String,
    /// Largest request body, in bytes.
    #[arg(long, env = "STAGEPACT_BODY_LIMIT", default_value_t = 64 * 1024, global = true)]
    body_limit: usize,
    /// Most database connections.
    #[arg(long, env = "STAGEPACT_DB_MAX_CONNECTIONS", default_value_t = 16, global = true)]
    db_max_connections: u32,
    /// Longest a read waits for `min_position`, in milliseconds.
    #[arg(long, env = "STAGEPACT_MIN_POSITION_WAIT_MS", default_value_t = 5_000, global = true)]
    min_position_wait_ms: u64,
    /// A minimum wage table (JSON, shaped like `config/minimum-wage.json`) to use
    /// instead of the one built in (rule C3).
    #[arg(long, env = "STAGEPACT_WAGE_TABLE", global = true)]
    wage_table: Option<PathBuf>,
    /// Hours between releases of forwarded signals to SBB, each a batch in
    /// random order (D4: a signal's time must not point back to its report).
    #[arg(long, env = "STAGEPACT_SIGNAL_RELEASE_HOURS", default_value_t = 24, global = true)]
    signal_release_hours: u64,
    /// Working days a school has to acknowledge a report before it shows as overdue (D4).
    #[arg(long, env = "STAGEPACT_REPORT_ACK_WORKING_DAYS", default_value_t = 5, global = true)]
    report_ack_working_days: u32,
    /// Working days within which a report's first follow-up step counts as in
    /// time in the indicators (D4, goal 2).
    #[arg(long, env = "STAGEPACT_FOLLOW_UP_WORKING_DAYS", default_value_t = 10, global = true)]
    follow_up_working_days: u32,
    /// Headroom, in percent, under which open slots for a qualification and
    /// region count as a shortage of placements (S2).
    #[arg(long, env = "STAGEPACT_SHORTAGE_MARGIN_PERCENT", default_value_t = 10, global = true)]
    shortage_margin_percent: u32,
    /// Minutes between counts of supply and demand that flag shortages (S2).
    #[arg(long, env = "STAGEPACT_SHORTAGE_CHECK_MINUTES", default_value_t = 15, global = true)]
    shortage_check_minutes: u64,
    /// Requests per second one bearer token may send (bursts of twice as
    /// many); 0: no limit.
    #[arg(long, env = "STAGEPACT_RATE_PER_TOKEN", default_value_t = 50, global = true)]
    rate_per_token: u32,
    /// Requests per second one client address may send (bursts of twice as
    /// many); 0: no limit. Behind a proxy every client has its address.
    #[arg(long, env = "STAGEPACT_RATE_PER_ADDRESS", default_value_t = 500, global = true)]
    rate_per_address: u32,
    /// Log format.
    #[arg(long, env = "STAGEPACT_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
}

impl Settings {
    fn jwt(&self) -> anyhow::Result<JwtConfig> {
        let key = match (&self.jwt_secret, &self.jwt_public_key_file) {
            (Some(_), Some(_)) => {
                bail!("set either STAGEPACT_JWT_SECRET or STAGEPACT_JWT_PUBLIC_KEY_FILE, not both")
            }
            (Some(secret), None) => {
                if secret.len() < 32 {
                    bail!("STAGEPACT_JWT_SECRET must be at least 32 bytes");
                }
                JwtKey::Hs256(secret.as_bytes().to_vec())
            }
            (None, Some(path)) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("reading the JWT public key {}", path.display()))?;
                match self.jwt_algorithm {
                    Algorithm::Rs256 => JwtKey::Rs256(pem),
                    Algorithm::Es256 => JwtKey::Es256(pem),
                }
            }
            (None, None) => JwtKey::Hs256(self.development_secret()?),
        };
        Ok(JwtConfig { key, issuer: self.jwt_issuer.clone(), audience: self.jwt_audience.clone() })
    }

    /// A random secret kept in the data directory, so `serve` and `token` agree
    /// without configuration. Production sets a secret or a public key.
    fn development_secret(&self) -> anyhow::Result<Vec<u8>> {
        let path = self.data_dir.join("dev-jwt-secret");
        if let Ok(secret) = std::fs::read(&path)
            && secret.len() >= 32
        {
            return Ok(secret);
        }
        let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        write_secret(&self.data_dir, &path, secret.as_bytes())?;
        tracing::warn!(path = %path.display(), "no STAGEPACT_JWT_SECRET: using a development secret");
        Ok(secret.into_bytes())
    }

    /// The master key (base64 of 32 bytes) that wraps each data subject's key
    /// (DESIGN §6), from `STAGEPACT_MASTER_KEY` only — never a flag, which any
    /// user could read in the process list. Without it a random development key
    /// is kept in the data directory. Losing it makes every sealed report unreadable.
    fn master_key(&self) -> anyhow::Result<MasterKey> {
        if let Ok(encoded) = std::env::var("STAGEPACT_MASTER_KEY") {
            return MasterKey::from_base64(&encoded).context("STAGEPACT_MASTER_KEY");
        }
        let path = self.data_dir.join("dev-master-key");
        if let Ok(text) = std::fs::read_to_string(&path) {
            return MasterKey::from_base64(&text)
                .with_context(|| format!("the development master key {}", path.display()));
        }
        let key = MasterKey::generate();
        write_secret(&self.data_dir, &path, key.to_base64().as_bytes())?;
        tracing::warn!(path = %path.display(), "no STAGEPACT_MASTER_KEY: using a development master key");
        Ok(key)
    }

    fn api(&self) -> anyhow::Result<ApiConfig> {
        let mut config = ApiConfig::new(self.jwt()?);
        config.master_key = std::sync::Arc::new(self.master_key()?);
        config.report_ack_working_days = self.report_ack_working_days;
        config.follow_up_working_days = self.follow_up_working_days;
        config.shortage_margin_percent = self.shortage_margin_percent;
        let rate = |per_second: u32| {
            (per_second > 0).then(|| Rate { per_second, burst: per_second.saturating_mul(2) })
        };
        config.rate_limits = RateLimits {
            per_token: rate(self.rate_per_token),
            per_address: rate(self.rate_per_address),
        };
        config.shortage_check_interval =
            Duration::from_secs(self.shortage_check_minutes.max(1).saturating_mul(60));
        config.signal_release_interval =
            Duration::from_secs(self.signal_release_hours.max(1).saturating_mul(3600));
        config.body_limit = self.body_limit;
        config.min_position_wait = Duration::from_millis(self.min_position_wait_ms);
        if let Some(path) = &self.wage_table {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the wage table {}", path.display()))?;
            config.wages = WageTable::parse(&text)
                .with_context(|| format!("in the wage table {}", path.display()))?;
        }
        Ok(config)
    }

    fn db(&self) -> DbSettings {
        DbSettings { max_connections: self.db_max_connections, ..DbSettings::default() }
    }
}

/// Writes a development secret readable by its owner only.
fn write_secret(
    dir: &std::path::Path,
    path: &std::path::Path,
    secret: &[u8],
) -> anyhow::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    // Created readable by its owner only: no moment in which others can read it.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(secret).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match settings.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

impl Cli {
    /// Runs the chosen command.
    pub async fn run(self) -> anyhow::Result<()> {
        let settings = self.settings;
        match self.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(&settings).await,
            Command::Migrate => {
                let database =
                    Database::open(settings.database_url.as_deref(), &settings.data_dir).await?;
                let pool = stagepact_store::connect(&database.url, &settings.db()).await?;
                stagepact_store::migrate(&pool).await?;
                pool.close().await;
                println!("migrations applied");
                database.close().await
            }
            Command::Token(args) => {
                let auth = Authenticator::new(&settings.jwt()?)?;
                let token =
                    auth.mint(&args.sub, args.role.into(), args.org, args.student, args.ttl)?;
                println!("{token}");
                Ok(())
            }
            Command::Projections { command } => projections(&settings, command).await,
            Command::Generate { check, root } => generate(check, &root),
        }
    }
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let config = settings.api()?;
    let database = Database::open(settings.database_url.as_deref(), &settings.data_dir).await?;
    let result = async {
        let pool = stagepact_store::connect(&database.url, &settings.db()).await?;
        let app = App::build(pool.clone(), config).await?;
        let listener = tokio::net::TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("binding {}", settings.addr))?;
        tracing::info!(addr = %listener.local_addr()?, "serving the Stagepact API (docs at /docs)");
        app.serve(listener, shutdown_signal()).await?;
        pool.close().await;
        anyhow::Ok(())
    }
    .await;
    database.close().await?;
    result
}

async fn projections(settings: &Settings, command: ProjectionCommand) -> anyhow::Result<()> {
    let database = Database::open(settings.database_url.as_deref(), &settings.data_dir).await?;
    let pool = stagepact_store::connect(&database.url, &settings.db()).await?;
    stagepact_store::migrate(&pool).await?;
    let log = EventLog::open(pool.clone()).await?;
    // The indicators open sealed content to count it: they need the vault.
    let vault = Vault::new(pool.clone(), std::sync::Arc::new(settings.master_key()?));
    let projections = Projections::new(log, stagepact_api::server::projections(&vault, None));
    let result = match command {
        ProjectionCommand::List => {
            let checkpoints = projections.checkpoints().await?;
            for name in projections.names() {
                println!("{name}\t{}", checkpoints.get(name).copied().unwrap_or(0));
            }
            Ok(())
        }
        ProjectionCommand::Rebuild { name } => {
            let started = std::time::Instant::now();
            let position = projections.rebuild(&name).await?;
            println!("{name} rebuilt up to position {position} in {:.1?}", started.elapsed());
            Ok(())
        }
    };
    pool.close().await;
    database.close().await?;
    result
}

fn generate(check: bool, root: &std::path::Path) -> anyhow::Result<()> {
    if check {
        let drifted = stagepact_api::openapi::drifted(root);
        if drifted.is_empty() {
            println!("generated files are up to date");
            return Ok(());
        }
        bail!("generated files drifted (run `cargo run -- generate`): {}", drifted.join(", "));
    }
    stagepact_api::openapi::write_artifacts(root)?;
    println!("wrote openapi/openapi.json and schemas/");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
