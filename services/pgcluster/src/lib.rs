//! Runs a private PostgreSQL cluster from the binaries installed on the
//! machine, for the embedded default of `stagepact serve`, for tests and for
//! benchmarks.
//!
//! The cluster listens only on a Unix socket in a directory of its own
//! (`listen_addresses = ''`), so it never conflicts with another server on the
//! machine. The postmaster runs as the child of a small `/bin/sh` supervisor
//! whose standard input is a pipe from this process: when the pipe closes —
//! because [`Cluster::stop`] closed it, or because this process exited or was
//! killed — the supervisor asks PostgreSQL for a fast shutdown. A cluster
//! therefore never outlives the process that started it.
//!
//! When running as root (PostgreSQL refuses to), `initdb`, the supervisor and
//! the server run as the `postgres` system user, which then owns the data and
//! socket directories.
//!
//! The API is blocking; call it from `spawn_blocking` or at startup.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::unistd::{Gid, Uid, User};

/// Environment variable naming the directory that holds `initdb` and `postgres`.
pub const PG_BIN_ENV: &str = "STAGEPACT_PG_BIN";

/// Where Debian and Ubuntu install versioned PostgreSQL binaries
/// (`/usr/lib/postgresql/<version>/bin`).
pub const DEFAULT_LIB_ROOT: &str = "/usr/lib/postgresql";

/// The superuser created by `initdb` (and the system user the server runs as
/// when this process is root).
pub const SUPERUSER: &str = "postgres";

/// The port number of every cluster. It only names the socket file
/// (`.s.PGSQL.<port>`), since clusters listen on no TCP port; it differs from
/// 5432 so that a URL whose `host` parameter got lost fails loudly instead of
/// reaching the system server.
pub const SOCKET_PORT: u16 = 50432;

/// How long [`Cluster::start`] waits for the server to accept connections.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Socket file paths must be shorter than this many bytes.
pub const MAX_SOCKET_PATH_LEN: usize = 100;

/// How long a start keeps retrying while a previous server on the same data
/// directory (one that is still shutting down) holds its lock files.
const LOCK_RETRY_WINDOW: Duration = Duration::from_secs(10);

/// How often readiness and exit are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Supervisor run by `/bin/sh -c`. Arguments: `$1` is a directory to delete
/// once the server has exited (empty for none), the rest is the server's
/// command line. Its stdin is the shutdown pipe, its stdout the liveness pipe
/// (on which it reports the server's pid; then only the server and the
/// server's children hold it, so it reaches EOF once all of them have
/// exited), its stderr the server log.
const SUPERVISOR_SCRIPT: &str = r#"cleanup=$1
shift
exec 3>&1 1>&2
"$@" </dev/null &
pid=$!
printf '%s\n' "$pid" >&3
exec 3>&-
trap '' INT TERM HUP
read _ignored || :
kill -INT "$pid" 2>/dev/null
wait "$pid"
status=$?
if [ -n "$cleanup" ]; then rm -rf -- "$cleanup"; fi
exit "$status"
"#;

/// Prints the first of its arguments the current user cannot `cd` into.
const ACCESS_CHECK_SCRIPT: &str = r#"for d do
  cd -- "$d" 2>/dev/null || { printf '%s' "$d"; exit 1; }
done
test -w . || { printf '%s' "$PWD"; exit 2; }
"#;

/// Everything that can go wrong while locating binaries or running a cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "PostgreSQL server binaries (initdb, postgres) not found ({searched}). \
         Install PostgreSQL (Debian/Ubuntu: `apt-get install postgresql`), \
         or set STAGEPACT_PG_BIN to the directory that holds initdb and postgres, \
         or set DATABASE_URL to use an existing PostgreSQL server instead"
    )]
    BinariesNotFound {
        /// What was looked at.
        searched: String,
    },

    /// Running as root, but there is no `postgres` user to run PostgreSQL as.
    #[error(
        "running as root, which PostgreSQL refuses, and there is no `postgres` system user \
         to run it as: install PostgreSQL (Debian/Ubuntu: `apt-get install postgresql`, \
         which creates that user), create the user (`adduser --system --group postgres`), \
         run as an unprivileged user, or set DATABASE_URL to use an existing server"
    )]
    NoPostgresUser,

    /// The user the server runs as cannot reach one of its directories.
    #[error(
        "the `{user}` user, which PostgreSQL runs as, cannot {what} {path}; make every \
         directory on the way traversable by that user (e.g. `chmod o+x` on it) \
         or choose a data directory elsewhere"
    )]
    Inaccessible {
        /// The user the server runs as.
        user: String,
        /// The directory that user cannot enter or write.
        path: PathBuf,
        /// `"enter"` or `"write to"`.
        what: &'static str,
    },

    /// The Unix socket path would exceed what the operating system accepts.
    #[error(
        "the socket path {path} is {len} bytes long, but must be shorter than {max} bytes; \
         choose a data directory with a shorter path"
    )]
    SocketPathTooLong {
        /// The socket file path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The data directory option has no parent or file name.
    #[error("invalid data directory {0}: it needs a parent directory and a name")]
    InvalidDataDir(PathBuf),

    /// A database name that cannot be created.
    #[error("invalid database name {0:?}: it must be 1 to 63 bytes without NUL")]
    InvalidDatabaseName(String),

    /// A file system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// `initdb` failed.
    #[error("initdb failed ({status}); the end of {log} reads:\n{tail}")]
    Initdb {
        /// Its exit status.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },

    /// A client program such as `createdb` failed.
    #[error("`{program}` failed ({status}): {output}")]
    CommandFailed {
        /// The program.
        program: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed.
        output: String,
    },

    /// The server exited before it accepted connections.
    #[error("PostgreSQL exited during startup ({status}); the end of {log} reads:\n{tail}")]
    ServerExited {
        /// How the supervisor exited.
        status: String,
        /// The server log file.
        log: PathBuf,
        /// The end of the server log.
        tail: String,
    },

    /// The server did not accept connections in time.
    #[error(
        "PostgreSQL did not accept connections within {timeout:?}; the end of {log} reads:\n{tail}"
    )]
    StartTimeout {
        /// How long was waited.
        timeout: Duration,
        /// The server log file.
        log: PathBuf,
        /// The end of the server log.
        tail: String,
    },

    /// The server did not exit cleanly when stopped.
    #[error("PostgreSQL did not shut down cleanly ({status}); the end of {log} reads:\n{tail}")]
    Shutdown {
        /// How the supervisor exited.
        status: ExitStatus,
        /// The server log file.
        log: PathBuf,
        /// The end of the server log.
        tail: String,
    },

    /// The process-wide test cluster failed to start (the failure is shared by
    /// every caller).
    #[error("the shared test cluster could not be started: {0}")]
    SharedTestCluster(Arc<ClusterError>),
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> ClusterError {
    let context = context.into();
    move |source| ClusterError::Io { context, source }
}

/// A directory holding the PostgreSQL programs (`initdb`, `postgres`,
/// `pg_isready`, `createdb`, `psql`, `pgbench`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    bin_dir: PathBuf,
}

impl PgBinaries {
    /// Finds the PostgreSQL binaries: the directory in the environment variable
    /// `STAGEPACT_PG_BIN` if it is set, else `initdb` and `postgres` on `PATH`,
    /// else the highest version under `/usr/lib/postgresql/<version>/bin`.
    pub fn locate() -> Result<Self, ClusterError> {
        Self::locate_from(
            std::env::var_os(PG_BIN_ENV).as_deref(),
            std::env::var_os("PATH").as_deref(),
            Path::new(DEFAULT_LIB_ROOT),
        )
    }

    /// [`PgBinaries::locate`] with its inputs made explicit: `env_value` is the
    /// value of `STAGEPACT_PG_BIN`, `path_var` that of `PATH`, `lib_root` the
    /// directory holding `<version>/bin` directories.
    ///
    /// A set, non-empty `env_value` is authoritative: if it lacks the server
    /// binaries that is an error, not a reason to look elsewhere. Symbolic
    /// links to `initdb` (such as `/usr/local/bin/initdb`) are followed so that
    /// [`PgBinaries::path`] finds the other programs next to the real one.
    pub fn locate_from(
        env_value: Option<&OsStr>,
        path_var: Option<&OsStr>,
        lib_root: &Path,
    ) -> Result<Self, ClusterError> {
        if let Some(dir) = env_value.filter(|value| !value.is_empty()) {
            let dir = Path::new(dir);
            if has_server_binaries(dir) {
                return Ok(Self::resolved(dir));
            }
            return Err(ClusterError::BinariesNotFound {
                searched: format!(
                    "{PG_BIN_ENV}={} does not contain initdb and postgres",
                    dir.display()
                ),
            });
        }

        if let Some(path_var) = path_var {
            for dir in std::env::split_paths(path_var) {
                if !dir.as_os_str().is_empty() && has_server_binaries(&dir) {
                    return Ok(Self::resolved(&dir));
                }
            }
        }

        let mut best: Option<(Vec<u64>, PathBuf)> = None;
        if let Ok(entries) = fs::read_dir(lib_root) {
            for entry in entries.flatten() {
                let Some(version) = parse_version(&entry.file_name()) else {
                    continue;
                };
                let bin = entry.path().join("bin");
                if !has_server_binaries(&bin) {
                    continue;
                }
                if best.as_ref().is_none_or(|(found, _)| version > *found) {
                    best = Some((version, bin));
                }
            }
        }
        if let Some((_, bin)) = best {
            return Ok(Self::resolved(&bin));
        }

        Err(ClusterError::BinariesNotFound {
            searched: format!(
                "{PG_BIN_ENV} is not set, they are not on PATH, and there is no {}/<version>/bin",
                lib_root.display()
            ),
        })
    }

    /// Uses `dir`, which must contain `initdb` and `postgres`.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, ClusterError> {
        let dir = dir.as_ref();
        if has_server_binaries(dir) {
            return Ok(Self::resolved(dir));
        }
        Err(ClusterError::BinariesNotFound {
            searched: format!("{} does not contain initdb and postgres", dir.display()),
        })
    }

    /// The directory found when `dir` holds both server binaries: the
    /// directory of the real `initdb` if `dir` only holds links to it and the
    /// real directory is complete, else `dir` itself.
    fn resolved(dir: &Path) -> Self {
        let real = fs::canonicalize(dir.join("initdb"))
            .ok()
            .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
            .filter(|real| has_server_binaries(real));
        let bin_dir =
            real.unwrap_or_else(|| std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()));
        Self { bin_dir }
    }

    /// The directory holding the programs.
    pub fn dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The path of a program in that directory, e.g. `path("pgbench")`.
    pub fn path(&self, program: &str) -> PathBuf {
        self.bin_dir.join(program)
    }
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

fn has_server_binaries(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"))
}

/// `"15"` → `[15]`, `"9.6"` → `[9, 6]`; anything else → `None`.
fn parse_version(name: &OsStr) -> Option<Vec<u64>> {
    name.to_str()?.split('.').map(|part| part.parse().ok()).collect()
}

/// Settings of a durable cluster, for an append-heavy event store. Each
/// command writes its events, moves read models and checkpoints: about 7 KB
/// of WAL per command under load. At PostgreSQL's default 1 GB `max_wal_size`
/// that forces a checkpoint every two minutes, back to back, and the first
/// change of each page after a checkpoint writes the whole page again; the
/// WAL flushes of commits then stall behind the checkpoint's writes for up to
/// a second (see BENCHMARKS.md, "Soak"). With these, a checkpoint starts
/// after 15 minutes or about 2 GB of WAL (some 9 minutes at 4 MB/s), and
/// spreads its writes over most of that time; the price is disk space and a
/// longer crash recovery (about a minute), not durability.
///
/// Autovacuum visits the database every 10 seconds instead of every minute.
/// Under a steady command load, the service slowed down for 20–40 seconds
/// about once in ten minutes (commits queueing for the WAL, a third fewer of
/// them), each time ending within a second of autovacuum's next round; with
/// rounds every 10 seconds it did not build up (BENCHMARKS.md, "Soak", runs
/// J–N). A round that finds nothing to do costs a look at the statistics.
pub const DURABLE_SETTINGS: [(&str, &str); 3] =
    [("max_wal_size", "4GB"), ("checkpoint_timeout", "15min"), ("autovacuum_naptime", "10s")];

/// `shared_buffers` of a durable cluster, in MiB, for a machine with
/// `memory` bytes (`None`: unknown): a quarter of it, PostgreSQL's own advice
/// for a dedicated server, from its 128 MB default up to 4 GiB.
///
/// With the default 128 MB, a steady command load outgrows the buffers
/// within minutes: the log, its indexes and the read models passed 1 GB in a
/// ten-minute soak, and the blocks read from outside PostgreSQL per
/// transaction grew tenfold (0.08 to 1.1–1.6) as they did, with the dirty
/// pages written out by the sessions themselves (BENCHMARKS.md, "Soak", run
/// P). PostgreSQL maps the buffers at start but the kernel backs them only
/// as they are used.
pub fn durable_shared_buffers_mib(memory: Option<u64>) -> u64 {
    const DEFAULT_MIB: u64 = 128;
    const MOST_MIB: u64 = 4 * 1024;
    memory.map_or(DEFAULT_MIB, |bytes| (bytes / 4 / (1024 * 1024)).clamp(DEFAULT_MIB, MOST_MIB))
}

/// `wal_compression` of a durable cluster: `lz4` where the server was built
/// with it (Debian's and the PGDG packages are), else `pglz`, which every
/// build has. The first change of a page after a checkpoint writes the whole
/// page to the WAL; right after one, autovacuum's pass over the event log's
/// recent pages wrote 92 MB of WAL in 1.7 s, the commits queued behind it and
/// commands took up to 320 ms (BENCHMARKS.md, "Soak", run T). Compressed, the
/// same soak's slowest command took 133 ms (run U).
fn wal_compression(binaries: &PgBinaries, layout: &Layout, run_as: Option<&RunAs>) -> &'static str {
    // `postgres -C` checks the setting against the data directory's
    // configuration and prints it, without starting a server.
    let probe = server_command(binaries.path("postgres"), run_as, &layout.data_dir)
        .arg("-D")
        .arg(&layout.data_dir)
        .args(["-C", "wal_compression", "-c", "wal_compression=lz4"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match probe {
        Ok(status) if status.success() => "lz4",
        _ => "pglz",
    }
}

/// `shared_buffers` of a durable cluster on this machine, in MiB.
pub fn durable_shared_buffers() -> u64 {
    durable_shared_buffers_mib(machine_memory())
}

/// This machine's memory in bytes (`MemTotal` in `/proc/meminfo`), if known.
fn machine_memory() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let kib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    kib.checked_mul(1024)
}

/// How to run a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// The data directory; created if missing, and initialised with `initdb`
    /// if it holds no `PG_VERSION`. The socket and log files go to the sibling
    /// directory `<data_dir>-run`.
    pub data_dir: PathBuf,
    /// `false` turns off `fsync`, `synchronous_commit` and `full_page_writes`
    /// (tests: fast, but a crash of the machine may corrupt the cluster);
    /// `true` keeps them on and spaces checkpoints out ([`DURABLE_SETTINGS`];
    /// serve, benchmarks).
    pub durable: bool,
    /// The server's `max_connections`.
    pub max_connections: u32,
    /// Further server settings, each passed as `-c key=value` (after, so
    /// overriding, the ones this crate sets).
    pub extra_settings: Vec<(String, String)>,
}

impl ClusterOptions {
    /// Durable options with 100 connections and no extra settings.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            durable: true,
            max_connections: 100,
            extra_settings: Vec::new(),
        }
    }
}

/// The system user the server runs as when this process is root.
#[derive(Debug, Clone)]
struct RunAs {
    name: String,
    uid: Uid,
    gid: Gid,
}

impl RunAs {
    /// `None` when not root (run as the current user); the `postgres` user
    /// when root.
    fn for_current_process() -> Result<Option<Self>, ClusterError> {
        if !Uid::effective().is_root() {
            return Ok(None);
        }
        match User::from_name(SUPERUSER) {
            Ok(Some(user)) if !user.uid.is_root() => {
                Ok(Some(Self { name: user.name, uid: user.uid, gid: user.gid }))
            }
            Ok(_) => Err(ClusterError::NoPostgresUser),
            Err(errno) => Err(ClusterError::Io {
                context: format!("looking up the `{SUPERUSER}` user"),
                source: errno.into(),
            }),
        }
    }

    fn chown(&self, path: &Path) -> Result<(), ClusterError> {
        chown(path, Some(self.uid.as_raw()), Some(self.gid.as_raw())).map_err(io_error(format!(
            "changing the owner of {} to {}",
            path.display(),
            self.name
        )))
    }
}

/// A command with no `PG*` variables from our environment (they could
/// redirect the client programs or inject server options).
fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.as_bytes().starts_with(b"PG") {
            command.env_remove(key);
        }
    }
    command
}

/// A command running as `run_as` (if any) in `dir`.
fn server_command(program: impl AsRef<OsStr>, run_as: Option<&RunAs>, dir: &Path) -> Command {
    let mut command = clean_command(program);
    command.current_dir(dir);
    if let Some(run_as) = run_as {
        command
            .uid(run_as.uid.as_raw())
            .gid(run_as.gid.as_raw())
            .env("HOME", dir)
            .env("USER", &run_as.name)
            .env("LOGNAME", &run_as.name);
    }
    command
}

/// The last lines of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    log_since(path, None)
}

/// The last lines of a log file written after `offset` (the whole tail when
/// `None`).
fn log_since(path: &Path, offset: Option<u64>) -> String {
    const MAX_BYTES: u64 = 8 * 1024;
    const MAX_LINES: usize = 40;
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        let start = offset.unwrap_or(0).max(len.saturating_sub(MAX_BYTES)).min(len);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let keep = lines.len().saturating_sub(MAX_LINES);
            lines[keep..].join("\n")
        }
        Err(error) => format!("(could not read the log: {error})"),
    }
}

/// Keeps the append-only server log of a long-lived data directory from
/// growing without bound: past 10 MiB it becomes `<log>.old` (replacing the
/// previous one) at the next start.
fn rotate_log(log_file: &Path) {
    const MAX_LOG_BYTES: u64 = 10 * 1024 * 1024;
    if fs::metadata(log_file).is_ok_and(|meta| meta.len() > MAX_LOG_BYTES) {
        let mut old = log_file.as_os_str().to_owned();
        old.push(".old");
        if let Err(error) = fs::rename(log_file, &old) {
            tracing::warn!(%error, log = %log_file.display(), "could not rotate the PostgreSQL log");
        }
    }
}

/// Percent-encodes everything but unreserved characters (and `/` if asked),
/// so that both libpq and sqlx decode it back to the same bytes.
fn percent_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Where a cluster keeps its files.
#[derive(Debug, Clone)]
struct Layout {
    data_dir: PathBuf,
    /// Holds the socket and the log files.
    socket_dir: PathBuf,
    /// Deleted by the supervisor once the server has exited.
    cleanup: Option<PathBuf>,
}

/// A running PostgreSQL cluster, listening on a Unix socket only.
///
/// Dropping it stops the server like [`Cluster::stop`] (waiting for it, and
/// logging rather than returning failures).
#[derive(Debug)]
pub struct Cluster {
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    port: u16,
    createdb: PathBuf,
    supervisor: Child,
    /// Closing it makes the supervisor shut the server down.
    shutdown_pipe: Option<ChildStdin>,
    /// Non-blocking; carries the postmaster's pid, then reaches EOF when the
    /// server and all its children exited.
    liveness: ChildStdout,
    /// What was read from `liveness`.
    liveness_output: Vec<u8>,
    stopped: bool,
}

/// A failed start attempt; `lock_conflict` when the server refused to start
/// because another server held the data or socket directory lock.
struct StartFailure {
    error: ClusterError,
    lock_conflict: bool,
}

impl From<ClusterError> for StartFailure {
    fn from(error: ClusterError) -> Self {
        Self { error, lock_conflict: false }
    }
}

impl Cluster {
    /// Starts a cluster on `options.data_dir` (initialising it first if
    /// needed) and waits until it accepts connections. The socket and the log
    /// file `postgres.log` live in the sibling directory `<data_dir>-run`.
    pub fn start(binaries: &PgBinaries, options: ClusterOptions) -> Result<Cluster, ClusterError> {
        let data_dir = std::path::absolute(&options.data_dir)
            .map_err(io_error(format!("resolving {}", options.data_dir.display())))?;
        let (Some(parent), Some(name)) = (data_dir.parent(), data_dir.file_name()) else {
            return Err(ClusterError::InvalidDataDir(data_dir));
        };
        let mut run_name = OsString::from(name);
        run_name.push("-run");
        let layout =
            Layout { socket_dir: parent.join(run_name), data_dir: data_dir.clone(), cleanup: None };
        Self::start_with_layout(binaries, &options, layout)
    }

    fn start_with_layout(
        binaries: &PgBinaries,
        options: &ClusterOptions,
        layout: Layout,
    ) -> Result<Cluster, ClusterError> {
        let run_as = RunAs::for_current_process()?;
        let layout = prepare_directories(&layout, run_as.as_ref())?;
        let log_file = layout.socket_dir.join("postgres.log");
        rotate_log(&log_file);

        if !layout.data_dir.join("PG_VERSION").exists() {
            run_initdb(binaries, options, &layout, run_as.as_ref())?;
        }

        let deadline = Instant::now() + LOCK_RETRY_WINDOW;
        loop {
            match Self::spawn_and_wait(binaries, options, &layout, run_as.as_ref(), &log_file) {
                Ok(cluster) => return Ok(cluster),
                Err(failure) if failure.lock_conflict && Instant::now() < deadline => {
                    tracing::info!(
                        data_dir = %layout.data_dir.display(),
                        "another PostgreSQL server holds the data directory; waiting for it to exit"
                    );
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(failure) => return Err(failure.error),
            }
        }
    }

    fn spawn_and_wait(
        binaries: &PgBinaries,
        options: &ClusterOptions,
        layout: &Layout,
        run_as: Option<&RunAs>,
        log_file: &Path,
    ) -> Result<Cluster, StartFailure> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_file)
            .map_err(io_error(format!("opening {}", log_file.display())))?;
        let log_offset =
            log.metadata().map_err(io_error(format!("reading {}", log_file.display())))?.len();

        let port = SOCKET_PORT;
        let mut command = server_command("/bin/sh", run_as, &layout.data_dir);
        command
            .arg("-c")
            .arg(SUPERVISOR_SCRIPT)
            .arg("stagepact-pg-supervisor")
            .arg(layout.cleanup.as_deref().unwrap_or(Path::new("")))
            .arg(binaries.path("postgres"))
            .arg("-D")
            .arg(&layout.data_dir)
            .arg("-k")
            .arg(&layout.socket_dir)
            .arg("-p")
            .arg(port.to_string())
            .args(["-c", "listen_addresses="])
            .arg("-c")
            .arg(format!("max_connections={}", options.max_connections));
        if options.durable {
            for (key, value) in DURABLE_SETTINGS {
                command.arg("-c").arg(format!("{key}={value}"));
            }
            let buffers = durable_shared_buffers();
            command.arg("-c").arg(format!("shared_buffers={buffers}MB"));
            let compression = wal_compression(binaries, layout, run_as);
            command.arg("-c").arg(format!("wal_compression={compression}"));
        } else {
            command.args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]);
        }
        for (key, value) in &options.extra_settings {
            command.arg("-c").arg(format!("{key}={value}"));
        }
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::from(log));

        tracing::info!(
            data_dir = %layout.data_dir.display(),
            socket_dir = %layout.socket_dir.display(),
            durable = options.durable,
            "starting PostgreSQL"
        );
        let mut supervisor =
            command.spawn().map_err(io_error("starting the PostgreSQL supervisor (/bin/sh)"))?;
        let (Some(shutdown_pipe), Some(liveness)) =
            (supervisor.stdin.take(), supervisor.stdout.take())
        else {
            // Invariant: both were configured as pipes above.
            unreachable!("stdin and stdout of the supervisor are piped");
        };
        let mut cluster = Cluster {
            data_dir: layout.data_dir.clone(),
            socket_dir: layout.socket_dir.clone(),
            log_file: log_file.to_path_buf(),
            port,
            createdb: binaries.path("createdb"),
            supervisor,
            shutdown_pipe: Some(shutdown_pipe),
            liveness,
            liveness_output: Vec::new(),
            stopped: false,
        };
        fcntl(&cluster.liveness, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|errno| {
            ClusterError::Io {
                context: "making the liveness pipe non-blocking".into(),
                source: errno.into(),
            }
        })?;

        let socket = cluster.socket_file();
        let started = Instant::now();
        loop {
            if !cluster.server_alive() {
                cluster.stopped = true;
                drop(cluster.shutdown_pipe.take());
                let status = match cluster.supervisor.wait() {
                    Ok(status) => status.to_string(),
                    Err(error) => format!("unknown: {error}"),
                };
                // Only this attempt's output: earlier attempts may precede it.
                let tail = log_since(log_file, Some(log_offset));
                let lock_conflict = tail.contains("lock file") && tail.contains("already exists");
                return Err(StartFailure {
                    error: ClusterError::ServerExited { status, log: log_file.to_path_buf(), tail },
                    lock_conflict,
                });
            }
            // Another server (say on the same data directory) may answer on
            // the socket, so readiness starts with postmaster.pid naming ours.
            if socket.exists()
                && cluster.lock_file_says_ready()
                && is_ready(binaries, &cluster.socket_dir, port)
            {
                tracing::info!(
                    socket_dir = %cluster.socket_dir.display(),
                    elapsed = ?started.elapsed(),
                    "PostgreSQL accepts connections"
                );
                return Ok(cluster);
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                // Dropping the cluster shuts the server down.
                drop(cluster);
                return Err(ClusterError::StartTimeout {
                    timeout: STARTUP_TIMEOUT,
                    log: log_file.to_path_buf(),
                    tail: log_tail(log_file),
                }
                .into());
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Whether the server or one of its children still runs.
    fn server_alive(&mut self) -> bool {
        let mut buffer = [0u8; 64];
        loop {
            match self.liveness.read(&mut buffer) {
                Ok(0) => return false,
                Ok(n) => self.liveness_output.extend_from_slice(&buffer[..n]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    }

    /// The postmaster's pid, once the supervisor reported it.
    fn postmaster_pid(&self) -> Option<u32> {
        let text = std::str::from_utf8(&self.liveness_output).ok()?;
        let (line, _) = text.split_once('\n')?;
        line.trim().parse().ok()
    }

    /// Whether `postmaster.pid` names our postmaster and says it is ready for
    /// connections.
    fn lock_file_says_ready(&self) -> bool {
        let Some(pid) = self.postmaster_pid() else {
            return false;
        };
        let Ok(text) = fs::read_to_string(self.data_dir.join("postmaster.pid")) else {
            return false;
        };
        let lines: Vec<&str> = text.lines().collect();
        let ours = lines.first().and_then(|line| line.trim().parse::<u32>().ok()) == Some(pid);
        // Line 8 holds the status (PostgreSQL 10 and later): "starting",
        // "ready" or "stopping"; the lines before it are written first.
        ours && lines.get(7).is_some_and(|status| status.trim() == "ready")
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's log file.
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// The port number naming the socket file (`.s.PGSQL.<port>`); there is
    /// no TCP listener.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The socket file itself.
    pub fn socket_file(&self) -> PathBuf {
        self.socket_dir.join(format!(".s.PGSQL.{}", self.port))
    }

    /// The superuser to connect as (trust authentication, no password).
    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// A connection URL for `database` over the Unix socket, understood by
    /// libpq (`psql`) and sqlx 0.8, of the form
    /// `postgres://postgres@localhost:<port>/<database>?host=<socket dir>`:
    /// the `host` query parameter holding an absolute directory overrides
    /// `localhost` and selects the socket, whose file the port names. The port
    /// sits in the authority so that a URL stripped of its query fails to
    /// connect instead of reaching a server on the default port.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost:{}/{}?host={}",
            self.port,
            percent_encode(database.as_bytes(), false),
            percent_encode(self.socket_dir.as_os_str().as_bytes(), true),
        )
    }

    /// Creates a database with `createdb`, connecting as the superuser over
    /// the socket.
    pub fn create_database(&self, name: &str) -> Result<(), ClusterError> {
        if name.is_empty() || name.len() > 63 || name.contains('\0') {
            return Err(ClusterError::InvalidDatabaseName(name.to_string()));
        }
        let output = clean_command(&self.createdb)
            .arg("-h")
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", SUPERUSER, "--", name])
            .stdin(Stdio::null())
            .output()
            .map_err(io_error(format!("running {}", self.createdb.display())))?;
        if output.status.success() {
            tracing::debug!(database = name, "created database");
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        Err(ClusterError::CommandFailed {
            program: format!("createdb {name}"),
            status: output.status,
            output: text.trim().to_string(),
        })
    }

    /// Stops the server with a fast shutdown (open sessions are ended) and
    /// waits until it and all its processes have exited.
    pub fn stop(mut self) -> Result<(), ClusterError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ClusterError> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        tracing::info!(data_dir = %self.data_dir.display(), "stopping PostgreSQL");
        drop(self.shutdown_pipe.take());
        let status =
            self.supervisor.wait().map_err(io_error("waiting for the PostgreSQL supervisor"))?;
        // The postmaster waits for its children, but give stragglers holding
        // the liveness pipe a moment too.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.server_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if status.success() {
            Ok(())
        } else {
            Err(ClusterError::Shutdown {
                status,
                log: self.log_file.clone(),
                tail: log_tail(&self.log_file),
            })
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            tracing::warn!(%error, "stopping PostgreSQL on drop");
        }
    }
}

fn is_ready(binaries: &PgBinaries, socket_dir: &Path, port: u16) -> bool {
    clean_command(binaries.path("pg_isready"))
        .arg("-q")
        .arg("-h")
        .arg(socket_dir)
        .arg("-p")
        .arg(port.to_string())
        .args(["-U", SUPERUSER, "-d", "postgres", "-t", "5"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Creates the data and socket directories with the right owner and mode and
/// returns the layout with canonical paths.
fn prepare_directories(layout: &Layout, run_as: Option<&RunAs>) -> Result<Layout, ClusterError> {
    let private = fs::Permissions::from_mode(0o700);
    check_socket_path(&layout.socket_dir)?;
    for dir in [&layout.socket_dir, &layout.data_dir] {
        fs::create_dir_all(dir).map_err(io_error(format!("creating {}", dir.display())))?;
    }
    let socket_dir = fs::canonicalize(&layout.socket_dir)
        .map_err(io_error(format!("resolving {}", layout.socket_dir.display())))?;
    let data_dir = fs::canonicalize(&layout.data_dir)
        .map_err(io_error(format!("resolving {}", layout.data_dir.display())))?;

    check_socket_path(&socket_dir)?;

    fs::set_permissions(&socket_dir, private.clone())
        .map_err(io_error(format!("setting the mode of {}", socket_dir.display())))?;
    if let Some(run_as) = run_as {
        run_as.chown(&socket_dir)?;
    }
    if !data_dir.join("PG_VERSION").exists() {
        fs::set_permissions(&data_dir, private)
            .map_err(io_error(format!("setting the mode of {}", data_dir.display())))?;
        if let Some(run_as) = run_as {
            run_as.chown(&data_dir)?;
        }
    }
    if let Some(run_as) = run_as {
        check_access(run_as, &data_dir)?;
        check_access(run_as, &socket_dir)?;
    }
    Ok(Layout { data_dir, socket_dir, cleanup: layout.cleanup.clone() })
}

/// Checks that the socket file in `socket_dir` gets a short enough path.
fn check_socket_path(socket_dir: &Path) -> Result<(), ClusterError> {
    let socket_file = socket_dir.join(format!(".s.PGSQL.{SOCKET_PORT}"));
    let len = socket_file.as_os_str().len();
    if len >= MAX_SOCKET_PATH_LEN {
        return Err(ClusterError::SocketPathTooLong {
            path: socket_file,
            len,
            max: MAX_SOCKET_PATH_LEN,
        });
    }
    Ok(())
}

/// Checks that `run_as` can enter every directory down to `dir` and write to it.
fn check_access(run_as: &RunAs, dir: &Path) -> Result<(), ClusterError> {
    let mut ancestors: Vec<&Path> = dir.ancestors().collect();
    ancestors.reverse();
    let output = server_command("/bin/sh", Some(run_as), Path::new("/"))
        .arg("-c")
        .arg(ACCESS_CHECK_SCRIPT)
        .arg("stagepact-pg-access-check")
        .args(ancestors)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(io_error(format!("checking that {} can access {}", run_as.name, dir.display())))?;
    if output.status.success() {
        return Ok(());
    }
    let blocked = PathBuf::from(OsStr::from_bytes(&output.stdout));
    let (path, what) = match output.status.code() {
        Some(1) if !blocked.as_os_str().is_empty() => (blocked, "enter"),
        Some(2) => (dir.to_path_buf(), "write to"),
        _ => (dir.to_path_buf(), "enter"),
    };
    Err(ClusterError::Inaccessible { user: run_as.name.clone(), path, what })
}

fn run_initdb(
    binaries: &PgBinaries,
    options: &ClusterOptions,
    layout: &Layout,
    run_as: Option<&RunAs>,
) -> Result<(), ClusterError> {
    let log_path = layout.socket_dir.join("initdb.log");
    let log =
        File::create(&log_path).map_err(io_error(format!("creating {}", log_path.display())))?;
    let log_err = log.try_clone().map_err(io_error(format!("opening {}", log_path.display())))?;
    tracing::info!(data_dir = %layout.data_dir.display(), "initialising a PostgreSQL data directory");
    let mut command = server_command(binaries.path("initdb"), run_as, &layout.data_dir);
    command.arg("-D").arg(&layout.data_dir).args([
        "-U",
        SUPERUSER,
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
    ]);
    if !options.durable {
        command.arg("--no-sync");
    }
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .status()
        .map_err(io_error(format!("running {}", binaries.path("initdb").display())))?;
    if status.success() {
        Ok(())
    } else {
        Err(ClusterError::Initdb { status, log: log_path.clone(), tail: log_tail(&log_path) })
    }
}

static SHARED_TEST_CLUSTER: OnceLock<Result<Cluster, Arc<ClusterError>>> = OnceLock::new();
static TEST_DATABASE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The process-wide temporary cluster for tests and benchmarks: started on
/// first use in a new temporary directory, non-durable, with 400 connections.
///
/// Rust never drops statics, so this relies on the supervisor: when the
/// process exits — normally, by panic or killed — the shutdown pipe closes,
/// the server shuts down and the supervisor deletes the temporary directory.
/// A failure to start is remembered and returned to every caller.
pub fn shared_test_cluster() -> Result<&'static Cluster, ClusterError> {
    match SHARED_TEST_CLUSTER.get_or_init(|| start_shared_test_cluster().map_err(Arc::new)) {
        Ok(cluster) => Ok(cluster),
        Err(error) => Err(ClusterError::SharedTestCluster(Arc::clone(error))),
    }
}

fn start_shared_test_cluster() -> Result<Cluster, ClusterError> {
    let binaries = PgBinaries::locate()?;
    let root = tempfile::Builder::new()
        .prefix("stagepact-pg-")
        .tempdir()
        .map_err(io_error("creating a temporary directory for the test cluster"))?
        // The supervisor deletes it once the server has exited.
        .keep();
    let options = ClusterOptions {
        data_dir: root.join("data"),
        durable: false,
        max_connections: 400,
        extra_settings: Vec::new(),
    };
    let layout = Layout {
        data_dir: options.data_dir.clone(),
        socket_dir: root.clone(),
        cleanup: Some(root.clone()),
    };
    Cluster::start_with_layout(&binaries, &options, layout).inspect_err(|_| {
        let _ = fs::remove_dir_all(&root);
    })
}

/// Creates a fresh, uniquely named database in [`shared_test_cluster`] and
/// returns its URL (see [`Cluster::url`]).
pub fn fresh_test_database() -> Result<String, ClusterError> {
    let cluster = shared_test_cluster()?;
    let number = TEST_DATABASE_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("test_{}_{number}", std::process::id());
    cluster.create_database(&name)?;
    Ok(cluster.url(&name))
}
