//! Tests against real PostgreSQL binaries: no mocks.
#![allow(clippy::unwrap_used, missing_docs)]

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::prctl;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use stagepact_pgcluster::{
    Cluster, ClusterError, ClusterOptions, PgBinaries, fresh_test_database, shared_test_cluster,
};

/// Set in a re-executed copy of this test binary: the data directory on which
/// `child_process_helper` starts a cluster before waiting to be killed.
const CHILD_ENV: &str = "STAGEPACT_PGCLUSTER_TEST_CHILD_DATA_DIR";

fn binaries() -> PgBinaries {
    PgBinaries::locate().unwrap()
}

fn options(data_dir: PathBuf, durable: bool) -> ClusterOptions {
    ClusterOptions { data_dir, durable, max_connections: 20, extra_settings: Vec::new() }
}

/// Runs `sql` with psql over the socket in `socket_dir`; returns trimmed stdout.
fn psql_at(socket_dir: &Path, port: u16, database: &str, sql: &str) -> Result<String, String> {
    let output = Command::new(binaries().path("psql"))
        .arg("-h")
        .arg(socket_dir)
        .args(["-p", &port.to_string(), "-U", "postgres", "-d", database])
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env_remove("PGHOST")
        .env_remove("PGPORT")
        .output()
        .unwrap();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn psql(cluster: &Cluster, database: &str, sql: &str) -> Result<String, String> {
    psql_at(cluster.socket_dir(), cluster.port(), database, sql)
}

/// Runs `sql` with psql given a connection URL (checks libpq accepts it).
fn psql_url(url: &str, sql: &str) -> Result<String, String> {
    let output = Command::new(binaries().path("psql"))
        .arg(url)
        .args(["-X", "-A", "-t", "-q", "-c", sql])
        .output()
        .unwrap();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// State and parent of a process, from `/proc/<pid>/stat`.
fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

/// Gone, or a zombie nobody reaps (PID 1 of a container may not).
fn process_gone(pid: i32) -> bool {
    proc_stat(pid).is_none_or(|(state, _)| state == 'Z' || state == 'X')
}

fn children_of(parent: i32) -> Vec<i32> {
    let mut children = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if proc_stat(pid).is_some_and(|(_, ppid)| ppid == parent) {
            children.push(pid);
        }
    }
    children
}

fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    condition()
}

#[test]
fn start_create_query_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("pgdata");
    let cluster = Cluster::start(&binaries(), options(data_dir.clone(), false)).unwrap();

    assert_eq!(cluster.superuser(), "postgres");
    assert_eq!(cluster.socket_dir(), tmp.path().canonicalize().unwrap().join("pgdata-run"));
    assert!(cluster.socket_file().exists());
    assert_eq!(psql(&cluster, "postgres", "show listen_addresses").unwrap(), "");
    assert_eq!(psql(&cluster, "postgres", "show fsync").unwrap(), "off");

    cluster.create_database("alpha").unwrap();
    cluster.create_database("beta").unwrap();
    for database in ["alpha", "beta"] {
        assert_eq!(psql(&cluster, database, "select 1").unwrap(), "1");
        assert_eq!(
            psql_url(&cluster.url(database), "select current_database()").unwrap(),
            database
        );
    }
    let err = cluster.create_database("alpha").unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");

    let pid = postmaster_pid(&data_dir).unwrap();
    let socket = cluster.socket_file();
    cluster.stop().unwrap();
    assert!(!socket.exists(), "socket file left behind");
    assert!(!data_dir.join("postmaster.pid").exists(), "postmaster.pid left behind");
    assert!(process_gone(pid), "postmaster {pid} still running");
}

#[test]
fn restart_keeps_databases() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let cluster = Cluster::start(&binaries(), options(data_dir.clone(), true)).unwrap();
    assert_eq!(psql(&cluster, "postgres", "show fsync").unwrap(), "on");
    assert_eq!(psql(&cluster, "postgres", "show max_wal_size").unwrap(), "4GB");
    assert_eq!(psql(&cluster, "postgres", "show checkpoint_timeout").unwrap(), "15min");
    assert_eq!(psql(&cluster, "postgres", "show autovacuum_naptime").unwrap(), "10s");
    // lz4 where the server was built with it (the Debian packages are), else pglz.
    let has_lz4 = "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'wal_compression'";
    let expected = if psql(&cluster, "postgres", has_lz4).unwrap() == "t" { "lz4" } else { "pglz" };
    assert_eq!(psql(&cluster, "postgres", "show wal_compression").unwrap(), expected);
    let buffers_mib =
        "SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'";
    assert_eq!(
        psql(&cluster, "postgres", buffers_mib).unwrap(),
        stagepact_pgcluster::durable_shared_buffers().to_string()
    );
    cluster.create_database("kept").unwrap();
    psql(&cluster, "kept", "create table t (x int); insert into t values (42)").unwrap();
    cluster.stop().unwrap();

    let cluster = Cluster::start(&binaries(), options(data_dir, true)).unwrap();
    assert_eq!(psql(&cluster, "kept", "select x from t").unwrap(), "42");
    cluster.stop().unwrap();
}

#[test]
fn drop_stops_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let cluster = Cluster::start(&binaries(), options(data_dir.clone(), false)).unwrap();
    let pid = postmaster_pid(&data_dir).unwrap();
    drop(cluster);
    assert!(!data_dir.join("postmaster.pid").exists());
    assert!(process_gone(pid));
}

#[test]
fn second_server_on_the_same_data_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let first = Cluster::start(&binaries(), options(data_dir.clone(), false)).unwrap();
    // The first server answers on the same socket: this must not pass for the
    // second one being ready. (Takes the 10 s lock retry window.)
    let err = Cluster::start(&binaries(), options(data_dir, false)).unwrap_err();
    assert!(matches!(err, ClusterError::ServerExited { .. }), "{err:?}");
    assert!(err.to_string().contains("postmaster.pid"), "{err}");
    assert_eq!(psql(&first, "postgres", "select 1").unwrap(), "1");
    first.stop().unwrap();
}

#[test]
fn extra_settings_are_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let mut options = options(tmp.path().join("data"), false);
    options.max_connections = 37;
    options.extra_settings = vec![("work_mem".into(), "3MB".into())];
    let cluster = Cluster::start(&binaries(), options).unwrap();
    assert_eq!(psql(&cluster, "postgres", "show work_mem").unwrap(), "3MB");
    assert_eq!(psql(&cluster, "postgres", "show max_connections").unwrap(), "37");
    assert_eq!(psql(&cluster, "postgres", "show full_page_writes").unwrap(), "off");
    cluster.stop().unwrap();
}

#[test]
fn bad_setting_fails_fast_with_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let mut options = options(tmp.path().join("data"), false);
    options.extra_settings = vec![("no_such_setting_xyz".into(), "1".into())];
    let started = Instant::now();
    let err = Cluster::start(&binaries(), options).unwrap_err();
    assert!(matches!(err, ClusterError::ServerExited { .. }), "{err:?}");
    assert!(err.to_string().contains("no_such_setting_xyz"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn too_long_socket_path_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("d".repeat(120));
    let err = Cluster::start(&binaries(), options(data_dir.clone(), false)).unwrap_err();
    assert!(matches!(err, ClusterError::SocketPathTooLong { .. }), "{err:?}");
    assert!(err.to_string().contains("shorter"), "{err}");
    assert!(!data_dir.exists());
}

#[test]
fn untraversable_parent_is_reported_when_root() {
    if !nix::unistd::Uid::effective().is_root() {
        return; // the server runs as the current user, who created the directories
    }
    let tmp = tempfile::tempdir().unwrap();
    let locked = tmp.path().canonicalize().unwrap().join("locked");
    fs::create_dir(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).unwrap();
    let err = Cluster::start(&binaries(), options(locked.join("data"), false)).unwrap_err();
    match &err {
        ClusterError::Inaccessible { user, path, .. } => {
            assert_eq!(user, "postgres");
            assert_eq!(path, &locked);
        }
        other => panic!("unexpected error: {other:?}"),
    }
    assert!(err.to_string().contains("chmod o+x"), "{err}");
}

#[test]
fn shared_cluster_is_shared_and_databases_are_fresh() {
    let first = shared_test_cluster().unwrap();
    let second = shared_test_cluster().unwrap();
    assert!(std::ptr::eq(first, second));
    assert_eq!(psql(first, "postgres", "show max_connections").unwrap(), "400");
    assert_eq!(psql(first, "postgres", "show synchronous_commit").unwrap(), "off");

    let a = fresh_test_database().unwrap();
    let b = fresh_test_database().unwrap();
    assert_ne!(a, b);
    let name_a = psql_url(&a, "select current_database()").unwrap();
    let name_b = psql_url(&b, "select current_database()").unwrap();
    assert_ne!(name_a, name_b);
    assert!(a.starts_with("postgres://postgres@localhost:50432/test_"), "{a}");
    assert!(a.contains("?host=/"), "{a}");
}

fn fake_executable(path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn fake_server_dir(dir: &Path) {
    fake_executable(&dir.join("initdb"));
    fake_executable(&dir.join("postgres"));
}

#[test]
fn locate_with_bogus_env_dir_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let lib_root = tmp.path().join("lib");
    fake_server_dir(&lib_root.join("15/bin"));
    let bogus = tmp.path().join("no-postgres-here");
    let err = PgBinaries::locate_from(Some(bogus.as_os_str()), None, &lib_root).unwrap_err();
    assert!(matches!(err, ClusterError::BinariesNotFound { .. }), "{err:?}");
    let message = err.to_string();
    for needle in
        ["apt-get install postgresql", "STAGEPACT_PG_BIN", "DATABASE_URL", "no-postgres-here"]
    {
        assert!(message.contains(needle), "{needle:?} missing from: {message}");
    }
}

#[test]
fn locate_with_nothing_installed_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let path_var = tmp.path().join("empty-bin").into_os_string();
    let err =
        PgBinaries::locate_from(None, Some(&path_var), &tmp.path().join("no-lib")).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("apt-get install postgresql"), "{message}");
    assert!(message.contains("STAGEPACT_PG_BIN"), "{message}");
}

#[test]
fn locate_prefers_env_then_path_then_highest_version() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let lib_root = root.join("lib");
    fake_server_dir(&lib_root.join("9.6/bin"));
    fake_server_dir(&lib_root.join("10/bin"));
    fake_executable(&lib_root.join("15/bin/initdb")); // incomplete: no postgres
    fake_server_dir(&lib_root.join("latest/bin")); // not a version
    let empty = OsStr::new("");

    let found = PgBinaries::locate_from(None, None, &lib_root).unwrap();
    assert_eq!(found.dir(), lib_root.join("10/bin"));
    assert_eq!(found.path("pgbench"), lib_root.join("10/bin/pgbench"));
    // An empty variable counts as unset.
    let found = PgBinaries::locate_from(Some(empty), Some(empty), &lib_root).unwrap();
    assert_eq!(found.dir(), lib_root.join("10/bin"));

    // PATH: links such as /usr/local/bin/initdb lead to the real directory.
    let real = root.join("real/bin");
    fake_server_dir(&real);
    let links = root.join("links");
    fs::create_dir_all(&links).unwrap();
    symlink(real.join("initdb"), links.join("initdb")).unwrap();
    symlink(real.join("postgres"), links.join("postgres")).unwrap();
    let path_var = std::env::join_paths([root.join("nothing"), links.clone()]).unwrap();
    let found = PgBinaries::locate_from(None, Some(&path_var), &lib_root).unwrap();
    assert_eq!(found.dir(), real);

    // The environment variable wins.
    let chosen = root.join("chosen");
    fake_server_dir(&chosen);
    let found =
        PgBinaries::locate_from(Some(chosen.as_os_str()), Some(&path_var), &lib_root).unwrap();
    assert_eq!(found.dir(), chosen);
    assert_eq!(PgBinaries::from_dir(&chosen).unwrap(), found);
}

/// Not a test of its own: when re-executed with `CHILD_ENV` set, starts a
/// cluster, reports it on stdout and waits to be killed.
#[test]
fn child_process_helper() {
    let Some(data_dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let cluster = Cluster::start(&binaries(), options(PathBuf::from(data_dir), true)).unwrap();
    cluster.create_database("from_child").unwrap();
    println!("READY {}", cluster.socket_dir().display());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Starts a cluster on `data_dir` in a child process; returns the child and
/// the cluster's socket directory once it is ready.
fn start_in_child(data_dir: &Path) -> (std::process::Child, PathBuf) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_helper", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, data_dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines() {
        let line = line.unwrap();
        // libtest prints "test child_process_helper ... " on the same line.
        if let Some((_, socket_dir)) = line.split_once("READY ") {
            return (child, PathBuf::from(socket_dir));
        }
    }
    let status = child.wait().unwrap();
    panic!("child exited without starting a cluster: {status}");
}

#[test]
fn server_stops_when_its_owner_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let (mut child, socket_dir) = start_in_child(&data_dir);
    let pid = postmaster_pid(&data_dir).unwrap();
    assert!(!process_gone(pid));

    child.kill().unwrap(); // SIGKILL: no destructors run in the child
    child.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || process_gone(pid)
            && !data_dir.join("postmaster.pid").exists()),
        "postmaster {pid} outlived the process that started it"
    );
    assert!(!socket_dir.join(".s.PGSQL.50432").exists());

    let cluster = Cluster::start(&binaries(), options(data_dir, true)).unwrap();
    assert_eq!(psql(&cluster, "from_child", "select 1").unwrap(), "1");
    cluster.stop().unwrap();
}

#[test]
fn start_after_crash_with_stale_pid_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    // Orphans of the killed processes become our children, so we can reap
    // them: PostgreSQL takes a zombie holding the old pid for a live server,
    // and PID 1 of a container may never reap it.
    prctl::set_child_subreaper(true).unwrap();
    let (mut child, socket_dir) = start_in_child(&data_dir);
    psql_at(&socket_dir, 50432, "from_child", "create table t (x int); insert into t values (7)")
        .unwrap();

    // Kill everything at once, as a crash would: supervisor, postmaster and
    // the postmaster's children, then the owner.
    let postmaster = postmaster_pid(&data_dir).unwrap();
    let (_, supervisor) = proc_stat(postmaster).unwrap();
    let mut victims = vec![supervisor, postmaster];
    victims.extend(children_of(postmaster));
    for &pid in &victims {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || {
            victims.iter().all(|&pid| {
                let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
                proc_stat(pid).is_none()
            })
        }),
        "processes survived SIGKILL"
    );
    // Backends forked after the scan above notice the postmaster's death.
    std::thread::sleep(Duration::from_millis(500));
    assert!(data_dir.join("postmaster.pid").exists(), "expected a stale pid file");

    let cluster = Cluster::start(&binaries(), options(data_dir, true)).unwrap();
    assert_eq!(psql(&cluster, "from_child", "select x from t").unwrap(), "7");
    let log = fs::read_to_string(cluster.log_file()).unwrap();
    assert!(!log.contains("already exists"), "the stale lock was not taken over at once:\n{log}");
    cluster.stop().unwrap();
}

#[test]
fn a_durable_cluster_takes_a_quarter_of_the_memory_for_its_buffers() {
    const GIB: u64 = 1024 * 1024 * 1024;
    assert_eq!(stagepact_pgcluster::durable_shared_buffers_mib(None), 128);
    assert_eq!(stagepact_pgcluster::durable_shared_buffers_mib(Some(GIB / 4)), 128);
    assert_eq!(stagepact_pgcluster::durable_shared_buffers_mib(Some(2 * GIB)), 512);
    assert_eq!(stagepact_pgcluster::durable_shared_buffers_mib(Some(24 * GIB)), 4096);
}
