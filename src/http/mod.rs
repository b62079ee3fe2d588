//! The HTTP server: shared state, the pure `router`, `serve` with graceful shutdown, and the
//! misp-modules handlers (`/modules`, `/query`, `/healthcheck`, `/version`, `/metrics`).

pub mod body;
pub mod connections;
mod metrics;
mod misp_modules;
mod replies;

pub use misp_modules::{MispModules, MispModulesConfig};
pub use replies::ReplyCacheConfig;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use serde_json::{json, Value};
use tokio::net::TcpListener;
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
    /// Connection limits and timeouts.
    pub connections: connections::ConnectionLimits,
    /// Longest time a request body may take to arrive, in all.
    pub body_read_timeout: Duration,
    /// Request body bytes all requests together may hold while they are read.
    pub request_buffer: body::ByteBudget,
    /// Bytes of large replies all clients together may hold until they have read them.
    pub reply_buffer: body::ByteBudget,
    /// Where modules run: a worker pool of their own keeps connections served (health
    /// checks, refusals, timeouts) while modules are busy mapping large answers. `None`: the
    /// current runtime.
    pub module_runtime: Option<tokio::runtime::Handle>,
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
            connections: connections::ConnectionLimits::default(),
            body_read_timeout: Duration::from_secs(30),
            request_buffer: body::ByteBudget::new(64 * 1024 * 1024),
            reply_buffer: body::ByteBudget::new(128 * 1024 * 1024),
            module_runtime: None,
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
                metrics: Arc::new(Metrics::new(
                    client.metrics(),
                    options.feeds.as_ref().map(|feeds| feeds.metrics()),
                )),
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
        // The request's path is the client's text: cut and escaped like in error messages.
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                tracing::debug_span!(
                    "request",
                    method = %request.method(),
                    path = %domaintools::classic::shown(request.uri().path()),
                )
            }),
        )
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
    let limits = state.inner.options.connections.clone();
    connections::serve(listener, router(state), limits, grace, shutdown).await
}

/// Completes on Ctrl-C, SIGTERM or SIGHUP. A hang-up (the terminal closed, a supervisor's
/// reload sent to a process that has nothing to reload) gets the same graceful shutdown as a
/// stop, not the default of dying with requests in flight.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(mut term), Ok(mut hangup)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = hangup.recv() => {},
                }
            }
            _ => std::future::pending::<()>().await,
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
    body: axum::body::Body,
) -> Response {
    let started = Instant::now();
    let options = &state.inner.options;
    let body = match body::read(
        &headers,
        body,
        options.body_limit,
        &options.request_buffer,
        options.body_read_timeout,
    )
    .await
    {
        Ok(body) => body,
        Err(error) => {
            let mut response = ok(protocol::error_json(error.to_string()));
            // The rest of the body is not read, so the connection cannot carry another request.
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            return response;
        }
    };
    let reply_key = state
        .inner
        .replies
        .as_ref()
        .map(|_| ReplyCache::key(&body.bytes, state.inner.options.demo));
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
        return large_reply(&state, hit.body);
    }
    let request = match protocol::parse_body(&body.bytes, &state.inner.registry) {
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
                .forward(
                    body.bytes.clone(),
                    content_type,
                    &name,
                    &state.inner.metrics,
                )
                .await;
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            return match forwarded {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let shown_name = domaintools::classic::shown(&name);
                    tracing::info!(module.name = %shown_name, status, duration_ms, "query forwarded to misp-modules");
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
    // The module and the serialization of its reply (megabytes for some) run on the module
    // pool, away from the connections.
    let run = {
        let (state, name) = (state.clone(), name.clone());
        async move {
            let (answered, outcome) = answer(&state, &name, &request, started).await;
            let usage = usage_of(&state, &name, &request);
            let reply = match answered {
                Answered::Reply(reply) if usage == protocol::Use::Hover => {
                    match protocol::hover_reply_bytes(&reply) {
                        Some(bytes) => return (bytes, outcome, reply.error),
                        None => protocol::reply_json(reply),
                    }
                }
                Answered::Reply(reply) => protocol::reply_json(reply),
                Answered::Json(reply) => reply,
            };
            let demo_note = state.inner.options.demo.then_some(DEMO_NOTE);
            let reply = protocol::finish(reply, usage, demo_note);
            let error = reply
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_owned);
            (
                serde_json::to_vec(&reply).unwrap_or_default(),
                outcome,
                error,
            )
        }
    };
    let (reply, outcome, error) = match options.module_runtime.clone() {
        None => run.await,
        Some(modules) => AbortOnDrop(modules.spawn(run)).await.unwrap_or_else(|_| {
            let message = "Internal error in the module; the server logged it.";
            let reply = serde_json::to_vec(&protocol::error_json(message)).unwrap_or_default();
            (reply, "panic", Some(message.to_owned()))
        }),
    };
    drop(body);
    let elapsed = started.elapsed().as_secs_f64();
    let elapsed_ms = elapsed * 1000.0;
    // Only registered names become label values: arbitrary request text must not create series.
    let label = state
        .inner
        .registry
        .find(&name)
        .map_or("unknown", |r| r.module.name);
    state.inner.metrics.query(label, outcome, elapsed);
    // The module name is the client's text: quoted, escaped and cut like in error messages,
    // so it can neither forge log lines nor flood the log.
    let shown_name = domaintools::classic::shown(&name);
    match error {
        Some(error) => {
            tracing::info!(module.name = %shown_name, outcome, duration_ms = elapsed_ms, error, "query answered with an error")
        }
        None => {
            tracing::info!(module.name = %shown_name, outcome, duration_ms = elapsed_ms, "query answered")
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
            // The bytes served now are the bytes a hit will serve.
            let body = Bytes::from(reply);
            replies.put(
                key,
                module,
                body.clone(),
                state.inner.client.cache_ttl(family),
            );
            large_reply(&state, body)
        }
        _ => large_reply(&state, Bytes::from(reply)),
    }
}

/// A reply, streamed under the reply budget when it is large; when the budget is spent (other
/// clients have not read theirs yet) the client is told to try again.
fn large_reply(state: &AppState, bytes: Bytes) -> Response {
    if bytes.len() <= body::STREAMED_REPLY {
        return ([(header::CONTENT_TYPE, "application/json")], bytes).into_response();
    }
    let len = bytes.len();
    let Some(held) = state.inner.options.reply_buffer.try_take(len) else {
        return ok(protocol::error_json(
            "The server is sending too many other large replies right now; try again shortly.",
        ));
    };
    let mut response = Response::new(body::streamed(bytes, held));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, len.into());
    response
}

/// A task that is cancelled when nobody waits for it any more (the client went away).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
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

/// What a module run gave: a module's reply, or a reply already made as JSON (errors).
enum Answered {
    Reply(crate::modules::Reply),
    Json(Value),
}

impl From<Value> for Answered {
    fn from(value: Value) -> Self {
        Self::Json(value)
    }
}

/// Runs the module for one request and says how it went ("ok", "error", "timeout", "panic").
async fn answer(
    state: &AppState,
    name: &str,
    request: &serde_json::Map<String, Value>,
    started: Instant,
) -> (Answered, &'static str) {
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
            ))
            .into(),
            "error",
        );
    };
    let form = protocol::form(request);
    // The request's own timeout, or what MISP waits for this kind of request.
    let budget = match protocol::timeout(request) {
        Ok(Some(timeout)) => timeout,
        Ok(None) if form == Form::Hover => inner.options.hover_budget,
        Ok(None) => inner.options.query_budget,
        Err(message) => return (protocol::error_json(message).into(), "error"),
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
            Err(message) => return (protocol::error_json(message).into(), "error"),
        };
    let input = if registered.standard {
        protocol::standard_input(name, &registered.inputs, request)
    } else {
        protocol::input(name, &registered.inputs, request)
    };
    let input = match input {
        Ok(input) => input,
        Err(message) => return (protocol::error_json(message).into(), "error"),
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
        Err(_) => (protocol::error_json("Timeout.").into(), "timeout"),
        Ok(Err(_panic)) => (
            protocol::error_json("Internal error in the module; the server logged it.").into(),
            "panic",
        ),
        Ok(Ok(Ok(reply)))
            if reply.has_no_results()
                && reply.standard.is_none()
                && reply.error.is_none()
                && reply.comment.is_none() =>
        {
            // Records were there but none held anything readable (junk from upstream): an
            // empty list alone would read as "nothing to see" when something went wrong.
            (protocol::error_json(UNREADABLE_ANSWER).into(), "error")
        }
        Ok(Ok(Ok(reply))) => {
            let outcome = if reply.error.is_some() { "error" } else { "ok" };
            (Answered::Reply(reply), outcome)
        }
        Ok(Ok(Err(error))) => {
            let outcome = match error {
                ModuleError::NoResults(_) => "no_results",
                _ => "error",
            };
            (protocol::error_json(error.to_string()).into(), outcome)
        }
    }
}

/// What a module's empty answer (no entries, no error, no comment) tells the user.
const UNREADABLE_ANSWER: &str = "DomainTools answered, but nothing in its answer could be read (no usable record); try again later or report it if it persists.";

/// How long past its budget a module may take to wrap up before the request is cut.
const HARD_STOP_GRACE: Duration = Duration::from_millis(200);

fn ok(body: Value) -> Response {
    (StatusCode::OK, Json(body)).into_response()
}
