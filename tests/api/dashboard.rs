//! The monitoring dashboard: served by the binary with its own assets only,
//! and, in headless Chromium (Debian's `chromium` and `chromium-driver`), it
//! logs in with a token, draws its charts from `getIndicators`, redraws them
//! when a filter changes, and leaves a screenshot as a test artefact
//! (`target/tmp/dashboard*.png`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_dashboard_is_served_with_its_own_assets_only() {
    let app = spawn_app().await;
    for (path, content_type) in [
        ("/dashboard", "text/html; charset=utf-8"),
        ("/dashboard/dashboard.js", "text/javascript; charset=utf-8"),
        ("/dashboard/dashboard.css", "text/css; charset=utf-8"),
    ] {
        let response = app.client.get(app.url(path)).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
        let policy = response.headers()["content-security-policy"].to_str().expect("ascii");
        assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"));
        let body = response.text().await.expect("body");
        assert!(!body.contains("http://") || path.ends_with(".js"), "{path} loads nothing remote");
        assert!(!body.contains("https://"), "{path} loads nothing remote");
    }
}

/// A browser binary and its driver, from `STAGEPACT_CHROMIUM` and
/// `STAGEPACT_CHROMEDRIVER` or Debian's paths.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let find = |variable: &str, default: &str| {
        let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
        path.exists().then_some(path)
    };
    Some((
        find("STAGEPACT_CHROMIUM", "/usr/bin/chromium")?,
        find("STAGEPACT_CHROMEDRIVER", "/usr/bin/chromedriver")?,
    ))
}

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(path: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        // From here on, dropping the driver stops (and waits for) the child.
        let driver = Self { child, url: format!("http://127.0.0.1:{port}") };
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if client.get(format!("{}/status", driver.url)).send().await.is_ok() {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not answer on {}", driver.url);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn chromium(driver: &Driver, binary: &Path, profile: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    // The flags keep Chromium off the network it cannot reach here.
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": binary,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1280,2400", format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// The `data-value` of every bar of one chart, by `data-key`.
async fn bars(browser: &Client, chart: &str) -> Vec<(String, String)> {
    let script = "return [...document.querySelectorAll(`[data-chart=\"${arguments[0]}\"] rect`)]
                    .map(r => [r.dataset.key, r.dataset.value]);";
    let value = browser.execute(script, vec![json!(chart)]).await.expect("bars");
    serde_json::from_value(value).expect("pairs")
}

/// Waits until the page has drawn the answer to a load after `previous_loads`.
async fn drawn(browser: &Client, previous_loads: u64) {
    for _ in 0..200 {
        let state = browser
            .execute(
                "return [document.body.dataset.state, Number(document.body.dataset.loads || 0)];",
                vec![],
            )
            .await
            .expect("state");
        if state[0] == "error" {
            let status = browser.find(Locator::Id("status")).await.expect("status");
            panic!("the dashboard failed: {}", status.text().await.unwrap_or_default());
        }
        if state[0] == "ready" && state[1].as_u64().unwrap_or(0) > previous_loads {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the dashboard did not draw in time");
}

fn artefact(name: &str, png: &[u8]) -> PathBuf {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "a real screenshot");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, png).expect("write the screenshot");
    path
}

#[tokio::test]
async fn in_chromium_the_dashboard_draws_the_goals_and_a_filter_redraws_them() {
    let Some((binary, driver_path)) = browser() else {
        // CI installs Chromium (.ci/run); elsewhere the test says how to.
        assert!(
            std::env::var_os("CI").is_none(),
            "Chromium is needed: apt-get install chromium chromium-driver"
        );
        eprintln!(
            "skipped: no /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let app = spawn_app().await;
    app.monitored_year().await;
    app.stamped_head().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let driver = Driver::start(&driver_path).await;
    let browser = chromium(&driver, &binary, profile.path()).await;

    browser.goto(&app.url("/dashboard")).await.expect("open the dashboard");
    let token = browser.find(Locator::Id("token")).await.expect("the token field");
    token.send_keys(&app.monitor()).await.expect("type the token");
    browser.find(Locator::Id("login-button")).await.expect("button").click().await.expect("log in");
    drawn(&browser, 0).await;

    let guidance = bars(&browser, "guidance").await;
    assert_eq!(
        guidance,
        [
            ("satisfied_with_school".to_owned(), "suppressed".to_owned()),
            ("satisfied_with_company".to_owned(), "suppressed".to_owned()),
            ("contact_moments_compliant".to_owned(), "1".to_owned()),
            ("warm_handover".to_owned(), "suppressed".to_owned()),
        ],
        "a monitor's view suppresses the cells under five"
    );
    let level = bars(&browser, "allowance-by-level").await;
    assert_eq!(level, [("2".to_owned(), "300".to_owned())], "the median allowance of level 2");
    let who = browser.find(Locator::Id("who")).await.expect("who").text().await.expect("text");
    assert_eq!(who, "Signed in as monitor");
    let first = artefact("dashboard.png", &browser.screenshot().await.expect("screenshot"));

    // A region nobody is placed in: the charts are redrawn from the API.
    let region = browser.find(Locator::Id("region")).await.expect("region");
    region.send_keys("Twente").await.expect("type a region");
    browser.find(Locator::Id("apply")).await.expect("apply").click().await.expect("apply");
    drawn(&browser, 1).await;
    let filtered = bars(&browser, "guidance").await;
    assert_eq!(filtered[2], ("contact_moments_compliant".to_owned(), "0".to_owned()));
    assert_ne!(filtered, guidance, "the filter changed the charts");
    assert!(bars(&browser, "allowance-by-level").await.is_empty());
    artefact("dashboard-twente.png", &browser.screenshot().await.expect("screenshot"));

    // Offline: every resource the page loaded came from this server.
    let loaded: Value = browser
        .execute("return performance.getEntriesByType('resource').map(e => e.name);", vec![])
        .await
        .expect("resources");
    let loaded: Vec<String> = serde_json::from_value(loaded).expect("names");
    assert!(!loaded.is_empty());
    assert!(loaded.iter().all(|name| name.starts_with(&app.base)), "{loaded:?}");
    browser.close().await.expect("close");
    eprintln!("dashboard screenshot: {}", first.display());
}
