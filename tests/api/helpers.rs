//! `spawn_app`: the API on a random port over a fresh database in the test
//! cluster, and a client that speaks to it as any role.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use stagepact_api::auth::{Audience, Authenticator, Claims, Role};
use stagepact_api::{ApiConfig, App, AppState, JwtConfig, JwtKey, RateLimits};
use stagepact_store::DbSettings;
use std::sync::Arc;

/// The HS256 secret of test apps.
pub const SECRET: &[u8] = b"test-secret-of-at-least-32-bytes-for-hs256";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    pub state: AppState,
    auth: Arc<Authenticator>,
    _server: tokio::task::JoinHandle<()>,
}

pub fn hs256_config() -> JwtConfig {
    JwtConfig {
        key: JwtKey::Hs256(SECRET.to_vec()),
        issuer: "stagepact-dev".into(),
        audience: "stagepact".into(),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(hs256_config()).await
}

pub async fn spawn_app_with(jwt: JwtConfig) -> TestApp {
    spawn_app_configured(jwt, |_| {}).await
}

/// A test server whose configuration `adjust` changes last. Tests send
/// requests much faster than any client, so the rate limits are lifted
/// unless a test sets them.
pub async fn spawn_app_configured(jwt: JwtConfig, adjust: impl FnOnce(&mut ApiConfig)) -> TestApp {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
    let url = stagepact_store::testing::fresh_database_url().await;
    let pool = stagepact_store::connect(
        &url,
        &DbSettings { max_connections: 12, ..DbSettings::default() },
    )
    .await
    .expect("connect to the test database");
    let mut config = ApiConfig::new(jwt);
    config.body_limit = 16 * 1024;
    config.rate_limits = RateLimits { per_token: None, per_address: None };
    adjust(&mut config);
    serve(pool, config).await
}

/// A test server on the database at `url` (migrated here), with `settings`.
pub async fn spawn_app_on(url: &str, settings: DbSettings) -> TestApp {
    let pool = stagepact_store::connect(url, &settings).await.expect("connect");
    stagepact_store::migrate(&pool).await.expect("migrate");
    let mut config = ApiConfig::new(hs256_config());
    config.rate_limits = RateLimits { per_token: None, per_address: None };
    serve(pool, config).await
}

/// Builds the app on `pool` with `config` and serves it on a free port.
async fn serve(pool: PgPool, config: ApiConfig) -> TestApp {
    let app = App::build(pool.clone(), config).await.expect("build the app");
    let state = app.state.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = app.serve(listener, std::future::pending()).await;
    });
    let auth = Arc::new(Authenticator::new(&hs256_config()).expect("test authenticator"));
    TestApp { base, client: reqwest::Client::new(), pool, state, auth, _server: server }
}

impl TestApp {
    /// A second API process on this one's database (its own pool, sequencer,
    /// projectors and reactions), with the same keys.
    pub async fn second_process(&self) -> TestApp {
        let options = (*self.pool.connect_options()).clone();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(12)
            .connect_with(options)
            .await
            .expect("connect the second process");
        let mut config = ApiConfig::new(hs256_config());
        config.body_limit = 16 * 1024;
        config.rate_limits = RateLimits { per_token: None, per_address: None };
        // Sealed content must open in both: they share the master key.
        config.master_key = std::sync::Arc::clone(&self.state.config.master_key);
        serve(pool, config).await
    }

    pub fn token(&self, role: Role, org: Option<&str>, student: Option<&str>) -> String {
        self.token_as("tester", role, org, student)
    }

    /// A token of `subject`: events record it as their actor.
    pub fn token_as(
        &self,
        subject: &str,
        role: Role,
        org: Option<&str>,
        student: Option<&str>,
    ) -> String {
        self.auth
            .mint(subject, role, org.map(str::to_owned), student.map(str::to_owned), 600)
            .expect("mint")
    }

    pub fn sbb(&self) -> String {
        self.token(Role::Sbb, None, None)
    }

    pub fn school(&self) -> String {
        self.token(Role::School, Some("25XX"), None)
    }

    pub fn company(&self, id: &str) -> String {
        self.token(Role::Company, Some(id), None)
    }

    pub fn student(&self) -> String {
        self.token(Role::Student, Some("25XX"), Some("s-1"))
    }

    pub fn monitor(&self) -> String {
        self.token(Role::Monitor, None, None)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// A POST with one extra header (If-Match, Idempotency-Key, ...).
    pub async fn post_with(
        &self,
        path: &str,
        token: &str,
        header: (&str, &str),
        body: Value,
    ) -> Response {
        let request =
            self.client.post(self.url(path)).bearer_auth(token).header(header.0, header.1);
        request.json(&body).send().await.expect("request")
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    /// Registers a company and grants it a recognition for 25180.
    pub async fn recognised_company(&self, id: &str) -> i64 {
        let sbb = self.sbb();
        let registered = self.post("/v1/companies", &sbb, company(id, "Utrecht")).await;
        assert_eq!(
            registered.status(),
            StatusCode::CREATED,
            "{}",
            registered.text().await.unwrap_or_default()
        );
        let granted =
            self.post(&format!("/v1/companies/{id}/recognitions"), &sbb, grant("25180")).await;
        assert_eq!(granted.status(), StatusCode::ACCEPTED);
        let body: Value = granted.json().await.expect("json");
        body["position"].as_i64().expect("a position")
    }

    /// The log position of the last event, once every event is stamped.
    pub async fn stamped_head(&self) -> i64 {
        loop {
            let (unstamped, head): (i64, Option<i64>) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE log_position IS NULL), max(log_position) FROM events",
            )
            .fetch_one(&self.pool)
            .await
            .expect("head");
            if unstamped == 0 {
                return head.unwrap_or(0);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Events in the store, stamped or not.
    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }
}

/// Waits until every projection and process manager on `pool` has applied
/// the log up to `head`; fails after `patience`.
pub async fn await_projections(pool: &PgPool, head: i64, patience: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let behind: i64 =
            sqlx::query_scalar("SELECT count(*) FROM projection_checkpoints WHERE position < $1")
                .bind(head)
                .fetch_one(pool)
                .await
                .expect("checkpoints");
        if behind == 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "projections stay behind {head}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The log position a command response carries.
pub async fn position_of(response: Response) -> i64 {
    assert!(response.status().is_success(), "command failed: {}", response.status());
    response.json::<Value>().await.expect("json")["position"].as_i64().expect("a position")
}

impl TestApp {
    /// A company's registry entry once it reflects `position`, as `token` sees it.
    pub async fn company_at(&self, id: &str, position: i64, token: &str) -> Value {
        let response =
            self.get(&format!("/v1/companies/{id}?min_position={position}"), token).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("json")
    }
}

pub fn company(id: &str, region: &str) -> Value {
    json!({"company_id": id, "name": format!("Leerbedrijf {id}"), "sector": "Techniek", "region": region})
}

pub fn grant(qualification: &str) -> Value {
    let valid_until = chrono::Utc::now().date_naive() + chrono::Days::new(3 * 365);
    json!({"qualification": qualification, "valid_until": valid_until})
}

pub fn reason() -> Value {
    json!({"reason": "signals from two schools"})
}

/// Reads a response as a problem and checks its shape.
pub async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem json");
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["type"].as_str().is_some_and(|t| t.starts_with("urn:stagepact:problem:")),
        "{body}"
    );
    assert!(body["title"].is_string() && body["detail"].is_string(), "{body}");
    body
}

/// Signs arbitrary claims with the test secret (or another key) for token tests.
pub fn sign(claims: &Value, algorithm: Algorithm, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), claims, key).expect("sign")
}

pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Valid claims for role `sbb`, to be spoiled by a test.
pub fn sbb_claims() -> Value {
    serde_json::to_value(Claims {
        iss: "stagepact-dev".into(),
        aud: Audience::One("stagepact".into()),
        sub: "tester".into(),
        exp: now() + 600,
        iat: Some(now()),
        nbf: None,
        role: Role::Sbb,
        org: None,
        student: None,
    })
    .expect("claims")
}
