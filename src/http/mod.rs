//! The HTTP server: shared state, the pure `router`, `serve` with graceful shutdown, and the
//! misp-modules handlers (`/modules`, `/query`, `/healthcheck`, `/version`, `/metrics`).

mod metrics;
mod misp_modules;
mod replies;

pub use misp_modules::{MispModules, MispModulesConfig};
pub use replies::ReplyCacheConfig;

use std::future::Future;
use std::future::IntoFuture;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower_http::trace::TraceLayer;

use domaintools::Client;

use self::metrics::Metrics;
use self::replies::ReplyCache;
use crate::misp::Form;
use crate::modules::{Context, ModuleError, Settings, DEMO_NOTE};
use crate::protocol::{self, DefaultCredentials};
use crate::registry::Registry;

/// Server-wide options besides the client and the modules.
#[derive(Debug, Clone)]
pub struct Options {
    /// Credentials for requests whose config has none.
    pub default_credentials: DefaultCredentials,
    /// Demo mode: results are marked as sample data, and the demo credentials always apply.
    pub demo: bool,
    /// Largest accepted `/query` body, in bytes.
    pub body_limit: usize,
    /// The clock (fixed in tests so ages are reproducible).
    pub now: fn() -> DateTime<Utc>,
    /// Time budget of hover requests (no `event_id`): MISP gives up after 5 s.
    pub hover_budget: Duration,
    /// Time budget of other requests (enrichment, import): MISP gives up after 10 s.
    pub query_budget: Duration,
    /// Whether `GET /metrics` is served.
    pub metrics_endpoint: bool,
    /// After a shutdown request, how long in-flight requests may take before the server stops
    /// anyway: a client that never finishes sending its request must not keep it up forever.
    pub shutdown_grace: Duration,
    /// The misp-modules server to serve beside (`--misp-modules-url`), if any.
    pub misp_modules: Option<Arc<MispModules>>,
    /// The cache of rendered replies in front of the modules.
    pub reply_cache: ReplyCacheConfig,
    /// The DomainTools feeds served under `/feeds/` (`--feeds`).
    pub feeds: Option<crate::feeds::FeedsService>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            default_credentials: DefaultCredentials::default(),
            demo: false,
            body_limit: 8 * 1024 * 1024,
            now: Utc::now,
            hover_budget: Duration::from_millis(4500),
            query_budget: Duration::from_millis(9500),
            metrics_endpoint: true,
            // Within Docker's and systemd's default stop timeouts (10 s and 90 s), and longer
            // than MISP waits for any answer (5 s for a hover, 10 s otherwise).
            shutdown_grace: Duration::from_secs(10),
            misp_modules: None,
            reply_cache: ReplyCacheConfig::OFF,
            feeds: None,
        }
    }
}

/// What every handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    client: Client,
    options: Options,
    metrics: Arc<Metrics>,
    replies: Option<ReplyCache>,
}

impl AppState {
    /// State serving `registry`'s modules through `client`.
    pub fn new(registry: Registry, client: Client, options: Options) -> Self {
        Self {
            inner: Arc::new(Inner {
                metrics: Arc::new(Metrics::new(client.metrics())),
                replies: ReplyCache::new(options.reply_cache),
                registry,
                client,
                options,
            }),
        }
    }

    /// Where DomainTools requests go.
    pub fn api_url(&self) -> &str {
        self.inner.client.base_url()
    }

    /// The loaded modules.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }
}

/// The application's routes. Pure: no I/O, so tests can drive it with `oneshot`.
pub fn router(state: AppState) -> Router {
    let body_limit = state.inner.options.body_limit;
    let mut router = Router::new();
    if state.inner.options.metrics_endpoint {
        router = router.route("/metrics", get(metrics));
    }
    let feeds = state.inner.options.feeds.clone();
    let router = router
        .route("/modules", get(list_modules))
        .route("/query", post(query_module))
        .route("/healthcheck", get(healthcheck))
        .route("/version", get(version))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state);
    match feeds {
        Some(feeds) => router.merge(feeds.router()),
        None => router,
    }
}

/// Pending connections the kernel may queue for us (capped by `net.core.somaxconn`). The
/// standard library's 128 overflows when many requests arrive at once (bulk enrichment, load
/// balancers), and the overflow costs clients a one-second SYN retry.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listening socket with a backlog fit for bursts of connections.
pub async fn bind(address: &str, port: u16) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host((address, port)).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket
            .bind(addr)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            "no address to listen on",
        )
    }))
}

/// Serves `router(state)` on `listener` until `shutdown` completes, then lets in-flight
/// requests finish, for at most the `shutdown_grace` of the options.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = state.inner.options.shutdown_grace;
    // The upstream listing is fetched now and every minute in the background: `/modules`
    // never waits for misp-modules.
    let _refresher = state.inner.options.misp_modules.clone().map(|upstream| {
        tracing::info!(misp_modules = %upstream.shown(), "serving beside misp-modules");
        let refresher = tokio::spawn(misp_modules::keep_fresh(
            upstream,
            state.inner.registry.listing(),
            state.inner.metrics.clone(),
        ));
        AbortOnDrop(refresher)
    });
    let (requested, shutdown_requested) = oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = requested.send(());
    };
    let server = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .into_future();
    // Graceful shutdown alone waits for every open connection, including one whose client
    // sent half a request and went silent: the grace period bounds that wait.
    let deadline = async move {
        match shutdown_requested.await {
            Ok(()) => tokio::time::sleep(grace).await,
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!(
                grace_s = grace.as_secs_f64(),
                "requests still in flight after the shutdown grace period; stopping anyway"
            );
            Ok(())
        }
    }
}

/// Stops a background task when the server stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
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
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

async fn list_modules(State(state): State<AppState>) -> Response {
    let listing = state
        .inner
        .options
        .misp_modules
        .as_ref()
        .and_then(|upstream| upstream.listing())
        .unwrap_or_else(|| state.inner.registry.listing());
    ([(header::CONTENT_TYPE, "application/json")], listing).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.inner.metrics.render(),
    )
        .into_response()
}

async fn healthcheck() -> Json<Value> {
    Json(json!({"status": true}))
}

async fn version() -> Json<Value> {
    Json(json!({"version": env!("CARGO_PKG_VERSION")}))
}

async fn not_found() -> (StatusCode, Json<Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(
            json!({"error": "Not found. This server answers GET /modules, POST /query, GET /healthcheck and GET /version."}),
        ),
    )
}

/// `POST /query`: every module-level problem is an HTTP 200 with `{"results": [], "error"}`,
/// because MISP hides the body of anything else. Only a body that is not a JSON object is a 400.
async fn query_module(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let limit = state.inner.options.body_limit;
            return ok(protocol::error_json(format!(
                "The request body is larger than this server accepts ({limit} bytes; see --body-limit)."
            )));
        }
        Err(rejection) => {
            return ok(protocol::error_json(format!(
                "The request body could not be read ({rejection})."
            )));
        }
    };
    let reply_key = state
        .inner
        .replies
        .as_ref()
        .map(|_| ReplyCache::key(&body, state.inner.options.demo));
    if let Some(hit) = reply_key
        .as_ref()
        .zip(state.inner.replies.as_ref())
        .and_then(|(key, replies)| replies.get(key))
    {
        state.inner.metrics.reply_cache(true);
        state
            .inner
            .metrics
            .query(hit.module, "ok", started.elapsed().as_secs_f64());
        tracing::info!(
            module.name = hit.module,
            outcome = "ok",
            cached = true,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "query answered"
        );
        return json_bytes(hit.body);
    }
    let request = match protocol::parse_body(&body) {
        Ok(request) => request,
        Err(message) => {
            return (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
        }
    };
    let name = match protocol::module_name(&request) {
        Ok(name) => name.to_owned(),
        Err(message) => return ok(protocol::error_json(message)),
    };
    if let Some(upstream) = &state.inner.options.misp_modules {
        if state.inner.registry.find(&name).is_none() {
            let content_type = headers.get(header::CONTENT_TYPE).cloned();
            let forwarded = upstream
                .forward(body, content_type, &name, &state.inner.metrics)
                .await;
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            return match forwarded {
                Ok(response) => {
                    let status = response.status().as_u16();
                    tracing::info!(module.name = %name, status, duration_ms, "query forwarded to misp-modules");
                    response
                }
                Err(message) => ok(protocol::finish(
                    protocol::error_json(message),
                    usage_of(&state, &name, &request),
                    None,
                )),
            };
        }
    }
    let (reply, outcome) = answer(&state, &name, &request, started).await;
    let usage = usage_of(&state, &name, &request);
    let demo_note = state.inner.options.demo.then_some(DEMO_NOTE);
    let reply = protocol::finish(reply, usage, demo_note);
    let elapsed = started.elapsed().as_secs_f64();
    let elapsed_ms = elapsed * 1000.0;
    // Only registered names become label values: arbitrary request text must not create series.
    let label = state
        .inner
        .registry
        .find(&name)
        .map_or("unknown", |r| r.module.name);
    state.inner.metrics.query(label, outcome, elapsed);
    match reply.get("error").and_then(Value::as_str) {
        Some(error) => {
            tracing::info!(module.name = %name, outcome, duration_ms = elapsed_ms, error, "query answered with an error")
        }
        None => {
            tracing::info!(module.name = %name, outcome, duration_ms = elapsed_ms, "query answered")
        }
    }
    let lifetime = state.inner.registry.find(&name).and_then(|r| {
        r.module
            .replies_live_as
            .map(|family| (r.module.name, family))
    });
    match (state.inner.replies.as_ref(), reply_key, lifetime) {
        (Some(replies), Some(key), Some((module, family))) if outcome == "ok" => {
            state.inner.metrics.reply_cache(false);
            // Serialised once: the bytes served now are the bytes a hit will serve.
            let body = Bytes::from(serde_json::to_vec(&reply).unwrap_or_default());
            replies.put(
                key,
                module,
                body.clone(),
                state.inner.client.cache_ttl(family),
            );
            json_bytes(body)
        }
        _ => ok(reply),
    }
}

/// Whether MISP stores the reply (an `event_id`, or an import module) or shows it in a hover.
fn usage_of(
    state: &AppState,
    name: &str,
    request: &serde_json::Map<String, Value>,
) -> protocol::Use {
    let stored = protocol::form(request) == Form::Stored
        || state
            .inner
            .registry
            .find(name)
            .is_some_and(|r| r.is_import());
    if stored {
        protocol::Use::Stored
    } else {
        protocol::Use::Hover
    }
}

/// Runs the module for one request and says how it went ("ok", "error", "timeout", "panic").
async fn answer(
    state: &AppState,
    name: &str,
    request: &serde_json::Map<String, Value>,
    started: Instant,
) -> (Value, &'static str) {
    let inner = &state.inner;
    let Some(registered) = inner.registry.find(name) else {
        let known: Vec<&str> = inner
            .registry
            .modules()
            .iter()
            .map(|r| r.module.name)
            .collect();
        return (
            protocol::error_json(format!(
                "Unknown module {}. This server provides: {}.",
                domaintools::classic::shown(name),
                known.join(", ")
            )),
            "error",
        );
    };
    let form = protocol::form(request);
    // The request's own timeout, or what MISP waits for this kind of request.
    let budget = match protocol::timeout(request) {
        Ok(Some(timeout)) => timeout,
        Ok(None) if form == Form::Hover => inner.options.hover_budget,
        Ok(None) => inner.options.query_budget,
        Err(message) => return (protocol::error_json(message), "error"),
    };
    // Demo mode always uses the demo account: whatever MISP has configured would be refused
    // by the built-in fake API.
    let no_config = serde_json::Map::new();
    let credential_source = if inner.options.demo {
        &no_config
    } else {
        request
    };
    let credentials =
        match protocol::credentials(credential_source, &inner.options.default_credentials) {
            Ok(credentials) => credentials,
            Err(message) => return (protocol::error_json(message), "error"),
        };
    let input = match protocol::input(name, &registered.inputs, request) {
        Ok(input) => input,
        Err(message) => return (protocol::error_json(message), "error"),
    };
    let ctx = Context {
        client: inner.client.clone(),
        credentials,
        settings: Settings::from_value(request.get("config")),
        form,
        now: (inner.options.now)(),
        demo: inner.options.demo,
        module: registered.module.name,
        started,
        budget,
    };
    let run = AssertUnwindSafe((registered.module.run)(ctx, input)).catch_unwind();
    // Modules stop their upstream work at the budget and answer with what they have; this is
    // the backstop for anything that does not.
    match tokio::time::timeout_at(started + budget + HARD_STOP_GRACE, run).await {
        Err(_) => (protocol::error_json("Timeout."), "timeout"),
        Ok(Err(_panic)) => (
            protocol::error_json("Internal error in the module; the server logged it."),
            "panic",
        ),
        Ok(Ok(Ok(reply))) => {
            let outcome = if reply.error.is_some() { "error" } else { "ok" };
            (protocol::reply_json(reply), outcome)
        }
        Ok(Ok(Err(error))) => {
            let outcome = match error {
                ModuleError::NoResults(_) => "no_results",
                _ => "error",
            };
            (protocol::error_json(error.to_string()), outcome)
        }
    }
}

/// How long past its budget a module may take to wrap up before the request is cut.
const HARD_STOP_GRACE: Duration = Duration::from_millis(200);

fn ok(body: Value) -> Response {
    (StatusCode::OK, Json(body)).into_response()
}

/// A 200 answer of JSON bytes made earlier (what `Json` would send for the same value).
fn json_bytes(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
