//! Faults (issue 7): the real binary killed with SIGKILL in the middle of a
//! command storm, and PostgreSQL stopped under load.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use stagepact_api::auth::{Authenticator, Role};
use stagepact_pgcluster::{Cluster, ClusterOptions, PgBinaries};
use stagepact_store::DbSettings;

use crate::fixtures::{SCHOOL, born_years_before_start, enrolment, offer_body};
use crate::helpers::{
    SECRET, TestApp, await_projections, company, grant, hs256_config, problem, spawn_app_on,
};
use crate::server::{BIN, Server};

/// The subject of the storm's commands: their events record it.
const STORM: &str = "storm";

/// `stagepact` on `database_url`, keys under `data_dir`.
fn stagepact(database_url: &str, data_dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .env("DATABASE_URL", database_url)
        .env("STAGEPACT_DATA_DIR", data_dir)
        .env("STAGEPACT_JWT_SECRET", std::str::from_utf8(SECRET).expect("ascii secret"))
        .env_remove("STAGEPACT_JWT_PUBLIC_KEY_FILE")
        .env("STAGEPACT_RATE_PER_TOKEN", "0")
        .env("STAGEPACT_RATE_PER_ADDRESS", "0")
        .env("RUST_LOG", "warn");
    command
}

/// One command of the storm, as sent.
#[derive(Clone)]
struct Sent {
    kind: &'static str,
    path: String,
    token: String,
    key: String,
    body: Value,
}

/// What came back: `None` when the connection broke before a response.
type Outcome = Option<(StatusCode, Value)>;

async fn send(client: &reqwest::Client, base: &str, command: &Sent) -> Outcome {
    let response = client
        .post(format!("{base}{}", command.path))
        .bearer_auth(&command.token)
        .header("Idempotency-Key", &command.key)
        .json(&command.body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .ok()?;
    let status = response.status();
    let body = response.json().await.ok()?;
    Some((status, body))
}

/// The event types each kind of command records.
fn event_type(kind: &str) -> &'static str {
    match kind {
        "register" => "CompanyRegistered",
        "grant" => "RecognitionGranted",
        "publish" => "OfferPublished",
        "enroll" => "StudentEnrolled",
        "propose" => "MatchProposed",
        _ => "MatchAccepted",
    }
}

/// One worker's chain of commands for chain `i`: a company recognised with an
/// offer, a student enrolled and proposed there, who accepts. Stops at the
/// first command without a response.
async fn chain(
    client: &reqwest::Client,
    base: &str,
    auth: &Authenticator,
    worker: usize,
    i: usize,
    log: &Mutex<Vec<(Sent, Outcome)>>,
) -> bool {
    let mint = |role, org: Option<&str>, student: Option<&str>| {
        auth.mint(STORM, role, org.map(str::to_owned), student.map(str::to_owned), 600)
            .expect("mint")
    };
    let (company_id, student) = (format!("k-{worker}-{i}"), format!("m-{worker}-{i}"));
    let sbb = mint(Role::Sbb, None, None);
    let school = mint(Role::School, Some(SCHOOL), None);
    let mut steps = vec![
        ("register", "/v1/companies".to_owned(), sbb.clone(), company(&company_id, "Utrecht")),
        ("grant", format!("/v1/companies/{company_id}/recognitions"), sbb, grant("25180")),
        (
            "publish",
            "/v1/offers".to_owned(),
            mint(Role::Company, Some(&company_id), None),
            offer_body(1),
        ),
        (
            "enroll",
            "/v1/students".to_owned(),
            school.clone(),
            enrolment(&student, "bol", born_years_before_start(20)),
        ),
    ]
    .into_iter();
    let mut offer = None;
    let mut placement = None;
    loop {
        let (kind, path, token, body) = match steps.next() {
            Some(step) => step,
            None => match (offer.take(), placement.take()) {
                (Some(offer), _) => (
                    "propose",
                    "/v1/placements".to_owned(),
                    school.clone(),
                    json!({"student_id": student, "offer_id": offer}),
                ),
                (None, Some(placement)) => (
                    "accept",
                    format!("/v1/placements/{placement}/accept"),
                    mint(Role::Student, Some(SCHOOL), Some(&student)),
                    json!({}),
                ),
                (None, None) => return true,
            },
        };
        let sent = Sent { kind, path, token, key: format!("storm-{worker}-{i}-{kind}"), body };
        let outcome = send(client, base, &sent).await;
        let answered = outcome.is_some();
        if let Some((status, body)) = &outcome
            && status.is_success()
        {
            if kind == "publish" {
                offer = body["offer_id"].as_str().map(str::to_owned);
            }
            if kind == "propose" {
                placement = body["placement_id"].as_str().map(str::to_owned);
            }
        }
        log.lock().expect("log").push((sent, outcome));
        if !answered {
            return false;
        }
    }
}

/// Every read-model table as sorted JSON rows, by table: everything but the
/// log itself and the bookkeeping beside it.
async fn read_models(pool: &PgPool) -> BTreeMap<String, Vec<String>> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
           AND table_name NOT IN ('events', 'projection_checkpoints', 'idempotency_keys',
                                  'snapshots', 'subject_keys', 'erasures', '_sqlx_migrations')
           AND table_name NOT LIKE 'reaction%'
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("tables");
    let mut models = BTreeMap::new();
    for table in tables {
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT to_jsonb(t)::text FROM {table} t ORDER BY 1"))
                .fetch_all(pool)
                .await
                .expect("rows");
        models.insert(table, rows);
    }
    models
}

#[tokio::test]
async fn sigkill_in_a_command_storm_loses_nothing_acknowledged_and_projections_equal_a_rebuild() {
    let url = stagepact_store::testing::fresh_database_url().await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(stagepact(&url, data.path())).await;
    let auth = Arc::new(Authenticator::new(&hs256_config()).expect("authenticator"));
    let log = Arc::new(Mutex::new(Vec::new()));
    let client = reqwest::Client::new();

    let mut workers = Vec::new();
    for worker in 0..8 {
        let (client, base, auth, log) =
            (client.clone(), server.base.clone(), Arc::clone(&auth), Arc::clone(&log));
        workers.push(tokio::spawn(async move {
            for i in 0.. {
                if !chain(&client, &base, &auth, worker, i, &log).await {
                    return;
                }
            }
        }));
    }
    // Kill it once the storm is well under way.
    let acknowledged = || log.lock().expect("log").iter().filter(|(_, o)| o.is_some()).count();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged() < 150 {
        assert!(Instant::now() < deadline, "the storm did not get going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    for worker in workers {
        worker.await.expect("worker");
    }
    let sent: Vec<(Sent, Outcome)> = log.lock().expect("log").clone();

    let mut server = Server::start(stagepact(&url, data.path())).await;
    let pool = stagepact_store::connect(&url, &DbSettings::default()).await.expect("pool");

    // Every acknowledged command's events are in the log once: a retry with
    // its key replays the first answer and records nothing.
    let events = |pool: PgPool| async move {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT event_type, count(*) FROM events WHERE metadata->>'actor' = $1 GROUP BY 1",
        )
        .bind(STORM)
        .fetch_all(&pool)
        .await
        .expect("events");
        rows.into_iter().collect::<BTreeMap<_, _>>()
    };
    let recorded = events(pool.clone()).await;
    for (command, outcome) in &sent {
        let Some((status, body)) = outcome else { continue };
        assert!(status.is_success(), "{} {}: {status} {body}", command.kind, command.path);
        let position = body["position"].as_i64().expect("a position");
        let at: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE log_position = $1")
            .bind(position)
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(at, 1, "{} {}: its event at {position}", command.kind, command.path);
        let (again, replayed) = send(&client, &server.base, command).await.expect("a response");
        assert_eq!((again, &replayed), (*status, body), "{}: the replay", command.kind);
    }
    assert_eq!(events(pool.clone()).await, recorded, "replays recorded nothing");

    // No event without its command: of each kind, at least the acknowledged
    // commands and at most the ones sent (a command cut off may have committed).
    for kind in ["register", "grant", "publish", "enroll", "propose", "accept"] {
        let of_kind = sent.iter().filter(|(c, _)| c.kind == kind);
        let (sent_count, acked) =
            of_kind.fold((0, 0), |(s, a), (_, o)| (s + 1, a + i64::from(o.is_some())));
        let count = recorded.get(event_type(kind)).copied().unwrap_or(0);
        assert!(
            (acked..=sent_count).contains(&count),
            "{kind}: {count} events for {acked} acknowledged of {sent_count} sent"
        );
    }
    let unstamped: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE log_position IS NULL")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(unstamped, 0, "the restarted sequencer stamped every committed event");

    // Every projection, caught up after the restart, equals a rebuild from
    // scratch.
    let head: i64 = sqlx::query_scalar("SELECT max(log_position) FROM events")
        .fetch_one(&pool)
        .await
        .expect("head");
    await_projections(&pool, head, Duration::from_secs(30)).await;
    server.terminate();
    server.wait(Duration::from_secs(30));
    let live = read_models(&pool).await;
    assert!(live.values().any(|rows| !rows.is_empty()), "the storm filled read models");
    let listed = stagepact(&url, data.path()).args(["projections", "list"]).output().expect("list");
    assert!(listed.status.success());
    let names: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|line| line.split('\t').next().map(str::to_owned))
        .collect();
    assert!(names.len() >= 5, "{names:?}");
    for name in &names {
        let rebuilt = stagepact(&url, data.path())
            .args(["projections", "rebuild", name])
            .output()
            .expect("rebuild");
        assert!(rebuilt.status.success(), "{name}: {}", String::from_utf8_lossy(&rebuilt.stderr));
    }
    let rebuilt = read_models(&pool).await;
    for (table, rows) in &live {
        assert_eq!(rebuilt.get(table), Some(rows), "{table}: live and rebuilt differ");
    }
}

/// Polls `/health/ready` until it answers `status`; fails after `patience`.
async fn readiness_turns(app: &TestApp, status: StatusCode, patience: Duration) {
    let deadline = Instant::now() + patience;
    loop {
        let ready = app.client.get(app.url("/health/ready")).send().await.expect("ready");
        if ready.status() == status {
            return;
        }
        assert!(Instant::now() < deadline, "readiness did not turn {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_stopped_database_gives_quick_503s_and_the_api_recovers_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let binaries = PgBinaries::locate().expect("PostgreSQL binaries");
    let options = ClusterOptions { durable: false, ..ClusterOptions::new(dir.path().join("pg")) };
    let start = |binaries: PgBinaries, options: ClusterOptions| async move {
        tokio::task::spawn_blocking(move || Cluster::start(&binaries, options))
            .await
            .expect("join")
            .expect("start PostgreSQL")
    };
    let cluster = start(binaries.clone(), options.clone()).await;
    cluster.create_database("stagepact").expect("database");
    let url = cluster.url("stagepact");
    let app = spawn_app_on(
        &url,
        DbSettings { max_connections: 8, acquire_timeout: Duration::from_secs(2) },
    )
    .await;
    let (sbb, school) = (app.sbb(), app.school());
    app.recognised_company("pg-1").await;

    // Load: commands and reads in a loop, each with its time, until told to stop.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (client, base, token, stop, answers) = (
            app.client.clone(),
            app.base.clone(),
            school.clone(),
            Arc::clone(&stop),
            Arc::clone(&answers),
        );
        load.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let started = Instant::now();
                let request = if i % 2 == 0 {
                    client.get(format!("{base}/v1/companies/pg-1")).bearer_auth(&token)
                } else {
                    let body =
                        enrolment(&format!("pg-{worker}-{i}"), "bol", born_years_before_start(20));
                    client.post(format!("{base}/v1/students")).bearer_auth(&token).json(&body)
                };
                let status =
                    request.timeout(Duration::from_secs(30)).send().await.map(|r| r.status());
                answers.lock().expect("answers").push((
                    Instant::now(),
                    started.elapsed(),
                    status.ok(),
                ));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let stopped_at = Instant::now();
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .expect("join")
        .expect("stop PostgreSQL");
    // While it is down: readiness is red, a command is a 503 problem, quickly.
    readiness_turns(&app, StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(10)).await;
    let started = Instant::now();
    let response = app.post("/v1/companies", &sbb, company("pg-2", "Utrecht")).await;
    let body = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(started.elapsed() < Duration::from_secs(5), "a 503 within the acquire timeout (2 s)");
    assert_eq!(body["status"], 503);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let cluster = start(binaries, options).await;
    let restarted_at = Instant::now();
    // It recovers by itself: ready again, commands accepted, projections moving.
    readiness_turns(&app, StatusCode::OK, Duration::from_secs(30)).await;
    let position = app.recognised_company("pg-3").await;
    let view = app.company_at("pg-3", position, &sbb).await;
    assert_eq!(view["status"], "active", "{view}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for worker in load {
        worker.await.expect("load");
    }

    // No request hung: every one answered, within the acquire timeout and
    // some slack; during the outage only 503s (or a request's own 4xx).
    let answers = answers.lock().expect("answers");
    assert!(answers.len() > 20, "the load ran: {}", answers.len());
    for (_, took, status) in answers.iter() {
        let status = status.unwrap_or_else(|| panic!("a request got no answer after {took:?}"));
        assert!(*took < Duration::from_secs(5), "{status} took {took:?}");
        assert!(
            !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}: a server error other than 503"
        );
    }
    assert!(
        answers.iter().any(|(at, _, s)| *at > stopped_at
            && *at < restarted_at
            && *s == Some(StatusCode::SERVICE_UNAVAILABLE)),
        "the load saw 503s while the database was down"
    );
    drop(cluster);
}
