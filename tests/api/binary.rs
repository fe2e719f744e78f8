//! The real binary: `stagepact serve` with the embedded PostgreSQL default (no
//! DATABASE_URL), `stagepact token`, and a graceful shutdown on SIGTERM that
//! finishes in-flight requests and stops PostgreSQL cleanly.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{company, position_of, reason};
use crate::server::{BIN, Server};

fn stagepact(data_dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_remove("DATABASE_URL")
        .env_remove("STAGEPACT_JWT_SECRET")
        .env_remove("STAGEPACT_JWT_PUBLIC_KEY_FILE")
        .env("STAGEPACT_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn");
    command
}

fn token(data_dir: &Path) -> String {
    let output = stagepact(data_dir).args(["token", "--role", "sbb"]).output().expect("token");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf8").trim().to_owned()
}

#[tokio::test]
async fn serve_runs_embedded_postgresql_and_shuts_down_gracefully() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The private cluster runs as the `postgres` user when we are root.
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let data_dir = dir.path().join("state");
    let client = reqwest::Client::new();

    let mut server = Server::start(stagepact(&data_dir)).await;
    let sbb = token(&data_dir);
    let registered = client
        .post(format!("{}/v1/companies", server.base))
        .bearer_auth(&sbb)
        .json(&company("bin-1", "Utrecht"))
        .send()
        .await
        .expect("send");
    assert_eq!(registered.status(), StatusCode::CREATED);

    // An in-flight long-poll is answered, not cut off, when the server stops.
    let head =
        registered.json::<Value>().await.expect("json")["position"].as_i64().expect("position");
    let poll = tokio::spawn({
        let request =
            client.get(format!("{}/v1/events?after={head}&wait=25", server.base)).bearer_auth(&sbb);
        async move { request.send().await.map(|r| r.status()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.terminate();
    let answered = tokio::time::timeout(Duration::from_secs(20), poll)
        .await
        .expect("poll answered")
        .expect("task");
    assert_eq!(answered.expect("the in-flight request got its response"), StatusCode::OK);
    let status = tokio::task::spawn_blocking(move || server.wait(Duration::from_secs(30)))
        .await
        .expect("join");
    assert!(status.success(), "exit status {status}");
    assert!(
        !data_dir.join("pgdata/postmaster.pid").exists(),
        "the embedded PostgreSQL was not stopped cleanly"
    );

    // Migrations are idempotent and can run on their own.
    let migrated = stagepact(&data_dir).arg("migrate").output().expect("migrate");
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));

    // A projection rebuilt from the log while the server is down.
    let rebuilt = stagepact(&data_dir)
        .args(["projections", "rebuild", "company_registry"])
        .output()
        .expect("rebuild");
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    assert!(
        String::from_utf8_lossy(&rebuilt.stdout)
            .contains("company_registry rebuilt up to position 1")
    );
    let unknown = stagepact(&data_dir)
        .args(["projections", "rebuild", "nonsense"])
        .output()
        .expect("rebuild");
    assert!(!unknown.status.success(), "an unknown projection is an error");

    // The data survives a restart.
    let server = Server::start(stagepact(&data_dir)).await;
    let sbb = token(&data_dir);
    let suspended = client
        .post(format!("{}/v1/companies/bin-1/suspend", server.base))
        .bearer_auth(&sbb)
        .json(&reason())
        .send()
        .await
        .expect("send");
    assert_eq!(suspended.status(), StatusCode::ACCEPTED);
    let position = position_of(suspended).await;
    let read = client
        .get(format!("{}/v1/companies/bin-1?min_position={position}", server.base))
        .bearer_auth(&sbb)
        .send()
        .await
        .expect("send");
    let view: Value = read.json().await.expect("json");
    assert_eq!((view["status"].as_str(), view["version"].as_i64()), (Some("suspended"), Some(2)));
}

#[test]
fn generate_check_passes_on_the_committed_files() {
    let output = Command::new(BIN)
        .args(["generate", "--check", "--root", env!("CARGO_MANIFEST_DIR")])
        .output()
        .expect("generate");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}
