//! Building the application (state, background workers, router) and serving it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Request, header};
use axum::response::{IntoResponse, Response};
use sqlx::PgPool;
use stagepact_domain::wage::WageTable;
use stagepact_store::cases::CaseFiles;
use stagepact_store::company_registry::CompanyRegistry;
use stagepact_store::indicators::IndicatorBoard;
use stagepact_store::matching_rounds::MatchingRounds;
use stagepact_store::offers::OfferBoard;
use stagepact_store::placements::{Changes, PlacementBoard};
use stagepact_store::reactions::{Dispatcher, PlacementReactions};
use stagepact_store::students::StudentDirectory;
use stagepact_store::{CommandBus, EventLog, Projection, Projections, StoreError, Vault};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::{Authenticator, KeyError};
use crate::config::ApiConfig;
use crate::overviews::{OVERVIEW_CACHE_BYTES, Overviews};
use crate::problem::ApiError;

/// What every handler can reach: a handle, cloned for every request (by
/// each layer and extractor that takes the state), so one reference count
/// rather than one per part.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// The database.
    pub pool: PgPool,
    /// The global event log.
    pub log: Arc<EventLog>,
    /// The read models.
    pub projections: Arc<Projections>,
    /// The command path.
    pub bus: CommandBus,
    /// Token verification.
    pub auth: Arc<Authenticator>,
    /// HTTP settings.
    pub config: Arc<ApiConfig>,
    /// Flips to true when the server is shutting down (ends long-polls).
    pub shutdown: watch::Receiver<bool>,
    /// The statutory minimum wage table (C3).
    pub wages: Arc<WageTable>,
    /// The data subjects' keys (DESIGN §6).
    pub vault: Vault,
    /// Today's supply and demand, counted once per state of the log.
    pub supply: Arc<crate::routes::indicators::SupplyCache>,
    /// The students' overviews as last rendered (see `overviews`).
    pub overviews: Arc<Overviews>,
}

impl Shared {
    /// Waits until projection `name` reflects the log up to `min_position`.
    pub async fn await_projection(
        &self,
        name: &str,
        min_position: Option<i64>,
    ) -> Result<(), ApiError> {
        let Some(position) = min_position else { return Ok(()) };
        if position < 0 {
            return Err(ApiError::Validation(
                vec![crate::FieldError::new("min_position", "must be >= 0")],
                None,
            ));
        }
        // A position no event has yet is a client's mistake, not a wait: every
        // position handed out is stamped before its response leaves.
        if position > self.log.head() {
            let head: Option<i64> = sqlx::query_scalar("SELECT max(log_position) FROM events")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| ApiError::from(stagepact_store::StoreError::from(e)))?;
            let head = head.unwrap_or(0);
            if position > head {
                return Err(ApiError::Validation(
                    vec![crate::FieldError::new(
                        "min_position",
                        format!("beyond the log's head ({head})"),
                    )],
                    None,
                ));
            }
        }
        if self.projections.await_position(name, position, self.config.min_position_wait).await? {
            Ok(())
        } else {
            Err(ApiError::NotYetVisible(position))
        }
    }
}

/// Why the application could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The token key.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The projections the application maintains; the indicators open sealed
/// content with `vault` to count it, and the placement board tells
/// `board_changes` what its rounds change (the overviews a server keeps).
pub fn projections(
    vault: &Vault,
    board_changes: Option<Arc<dyn Changes>>,
) -> Vec<Arc<dyn Projection>> {
    let board = match board_changes {
        Some(listener) => PlacementBoard::with_listener(listener),
        None => PlacementBoard::default(),
    };
    vec![
        Arc::new(CompanyRegistry),
        Arc::new(StudentDirectory),
        Arc::new(OfferBoard),
        Arc::new(board),
        Arc::new(PlacementReactions),
        Arc::new(CaseFiles),
        Arc::new(MatchingRounds),
        Arc::new(IndicatorBoard::new(vault.clone())),
    ]
}

/// A built application: its router, its state, and its background workers.
#[derive(Debug)]
pub struct App {
    /// The routes.
    pub router: Router,
    /// The shared state.
    pub state: AppState,
    workers: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

impl App {
    /// Migrates the database, starts the sequencer and projectors, builds the router.
    pub async fn build(pool: PgPool, config: ApiConfig) -> Result<Self, BuildError> {
        stagepact_store::migrate(&pool).await?;
        let auth = Arc::new(Authenticator::new(&config.jwt)?);
        let log = EventLog::open(pool.clone()).await?;
        let vault = Vault::new(pool.clone(), Arc::clone(&config.master_key));
        let overviews = Arc::new(Overviews::new(OVERVIEW_CACHE_BYTES));
        let board_changes: Arc<dyn Changes> = overviews.clone();
        let projections =
            Projections::new(Arc::clone(&log), projections(&vault, Some(board_changes)));
        let bus = CommandBus::new(Arc::clone(&log));
        let mut workers = log.spawn();
        workers.extend(projections.spawn());
        let reaction_rounds = projections.subscribe(stagepact_store::reactions::NAME)?;
        workers.push(tokio::spawn(
            Dispatcher::new(Arc::clone(&log), bus.clone()).run(reaction_rounds),
        ));
        workers.push(tokio::spawn(purge_idempotency_keys(log.background().clone())));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let wages = Arc::new(config.wages.clone());
        let state = AppState(Arc::new(Shared {
            vault,
            supply: Arc::default(),
            wages,
            bus,
            pool,
            log,
            projections,
            auth,
            config: Arc::new(config),
            shutdown: shutdown_rx,
            overviews,
        }));
        let release = state.config.signal_release_interval;
        workers.push(tokio::spawn(crate::delivery::run(state.clone(), release)));
        workers.push(tokio::spawn(crate::routes::indicators::watch_shortages(state.clone())));
        let (router, callers) = router(state.clone());
        workers.push(tokio::spawn(callers.forget_idle_every_minute()));
        Ok(Self { router, state, workers, shutdown })
    }

    /// Serves until `signal` completes, then finishes in-flight requests, ends
    /// long-polls and stops the background workers.
    pub async fn serve(
        self,
        listener: TcpListener,
        signal: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let shutdown = self.shutdown.clone();
        let graceful = async move {
            signal.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = shutdown.send(true);
        };
        // The peer address is what the per-address rate limit counts.
        let service =
            self.router.clone().into_make_service_with_connect_info::<std::net::SocketAddr>();
        let result = axum::serve(listener, service).with_graceful_shutdown(graceful).await;
        self.stop();
        result
    }

    /// Stops the background workers.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
        for worker in &self.workers {
            worker.abort();
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Forgets idempotency records past their retention, hourly.
async fn purge_idempotency_keys(pool: PgPool) {
    let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        match stagepact_store::idempotency::purge(&pool).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "forgot expired idempotency keys"),
            Err(error) => tracing::warn!(%error, "could not purge idempotency keys"),
        }
    }
}

/// The full router: documented routes, docs, schemas, fallbacks, layers; and
/// the rate limiters' memory of callers, to be forgotten now and then.
pub fn router(state: AppState) -> (Router, crate::limits::Callers) {
    let (routes, document) = crate::openapi::routes().split_for_parts();
    let body_limit = state.config.body_limit;
    let rate_limits = state.config.rate_limits;
    let routes = routes
        .route("/schemas/{aggregate}/{file}", axum::routing::get(event_schema))
        .merge(crate::dashboard::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::idempotency::idempotent))
        .layer(axum::middleware::from_fn(crate::conditional::entity_tags))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(state)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", document));
    let (routes, callers) = crate::limits::limited(routes, rate_limits);
    let routes = routes
        .layer(CompressionLayer::new())
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                // The path only: a query string may name a student (`?student_id=`).
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
            })
            // One line per request at INFO, carrying the span (and so the request id).
            .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));
    (routes, callers)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such resource".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Serves the JSON Schema of one event type and version (`dataschema` of the feed).
async fn event_schema(
    State(_): State<AppState>,
    Path((aggregate, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let wanted = format!("{aggregate}/{file}");
    let kind = stagepact_domain::EVENT_CATALOG
        .iter()
        .find(|kind| kind.schema_path() == wanted)
        .ok_or_else(|| ApiError::NotFound(format!("no event schema {wanted}")))?;
    let artifact = crate::openapi::artifacts()
        .into_iter()
        .find(|(path, _)| *path == format!("schemas/{}", kind.schema_path()))
        .map(|(_, text)| text)
        .ok_or_else(|| ApiError::NotFound(format!("no event schema {wanted}")))?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/schema+json"))], artifact)
        .into_response())
}
