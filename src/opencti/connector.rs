//! The running connector: the platform's release, registration (both retried while the
//! platform is unreachable), the ping that keeps the connector marked alive, and the listener
//! that takes the work: the listen queue on RabbitMQ (`CONNECTOR_LISTEN_PROTOCOL=AMQP`, pycti's
//! default) or the callback the platform's worker posts to (`API`).
//!
//! Stopping never loses accepted work: a queue message is acknowledged only once its work is
//! done and reported, and the callback answers 202 only then too (as pycti does), so whatever
//! is cut short by the stop is given again, by the broker or by the worker, which retries any
//! request that got no 202. The stop takes at most [`STOP_GRACE`], inside Docker's 10 s.

use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::amqp::{self, Broker, PushTarget};
use super::auth::CallbackAuth;
use super::graphql::requests::{ConnectorType, Registration, Runs};
use super::graphql::{Platform, PlatformError, Release};
use super::message::WorkMessage;
use super::settings::{ConnectorSettings, ListenProtocol, QueueProtocol};
use super::work::{Push, Worker};
use crate::telemetry::logged;
use domaintools::ExposeSecret as _;
use domaintools::{Client, Credentials};

/// Largest work message taken: the platform's own messages are a few kilobytes (the entity is
/// named, not included, with `enrichment_resolution: none`); a playbook step's carries the
/// bundle flowing through the playbook, which stays well under this.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Longest wait for GraphQL calls (a bundle push included).
const PLATFORM_TIMEOUT: Duration = Duration::from_secs(60);
/// How long, once told to stop, work under way may take to finish; the rest is given again.
pub const STOP_GRACE: Duration = Duration::from_secs(7);

/// Runs the connector until `shutdown` completes. `client` and `credentials` reach DomainTools.
pub async fn run(
    settings: ConnectorSettings,
    client: Client,
    credentials: Credentials,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let mut platform = Platform::new(
        &settings.opencti_url,
        settings.opencti_token.clone(),
        PLATFORM_TIMEOUT,
        &settings.roots,
    )
    .context("OpenCTI client")?;
    let Some(release) = until_ready("learn the OpenCTI version", stop.clone(), || {
        let mut probe = platform.clone();
        async move { probe.learn_release().await }
    })
    .await?
    else {
        return Ok(());
    };
    platform.release = release;
    check_release(&settings, release)?;

    // Bound in both modes: with AMQP it answers only the health check (the container's
    // `misp-domaintools healthcheck --port`).
    let listener = TcpListener::bind((settings.listen.as_str(), settings.callback_port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{} for the OpenCTI callback and health check",
                settings.listen, settings.callback_port
            )
        })?;
    let callback_uri = match settings.listen_protocol {
        ListenProtocol::Api => Some(callback_uri(&settings, listener.local_addr()?)),
        ListenProtocol::Amqp => None,
    };
    let registration = Registration {
        kind: ConnectorType::InternalEnrichment,
        id: settings.connector_id.clone(),
        name: settings.name.clone(),
        scope: settings.scope.clone(),
        auto: settings.auto,
        playbook_compatible: true,
        listen_callback_uri: callback_uri.clone(),
    };
    let Some(registered) = until_ready("register with OpenCTI", stop.clone(), || {
        let platform = platform.clone();
        let registration = registration.clone();
        async move { platform.register(&registration).await }
    })
    .await?
    else {
        return Ok(());
    };
    if registered.id.is_empty() {
        anyhow::bail!("OpenCTI registered the connector without an id");
    }
    tracing::info!(
        connector.id = %logged(&registered.id),
        connector.name = %settings.name,
        opencti.version = %release,
        listen = %settings.listen_protocol,
        queue = %settings.queue_protocol,
        callback = callback_uri.as_deref().unwrap_or("-"),
        scope = ?settings.scope,
        max_tlp = %settings.max_tlp,
        "registered with OpenCTI; waiting for enrichment requests"
    );

    let broker = needs_broker(&settings).then(|| {
        Broker::new(
            settings.mq.apply(&registered.config.connection),
            &settings.roots,
        )
    });
    let push = match (settings.queue_protocol, &broker) {
        (QueueProtocol::Amqp, Some(broker)) => Push::Amqp {
            broker: broker.clone(),
            target: PushTarget {
                exchange: registered.config.push_exchange.clone(),
                routing: registered.config.push_routing.clone(),
            },
        },
        _ => Push::Api,
    };

    let pinger = Pinger::new(
        platform.clone(),
        registered.id.clone(),
        registered.connector_state.clone(),
    );
    let ping = tokio::spawn(ping_loop(pinger, settings.ping_interval, stop.clone()));

    let concurrency = settings.concurrency.max(1);
    let worker = Arc::new(Worker {
        platform,
        client,
        credentials,
        connector_id: registered.id.clone(),
        connector_user_id: registered.connector_user_id.clone(),
        settings: settings.clone(),
        push,
    });

    match settings.listen_protocol {
        ListenProtocol::Api => {
            let auth = CallbackAuth::new(
                settings.opencti_token.expose_secret(),
                registered.jwks.as_ref(),
            )
            .context("OpenCTI registration")?;
            if auth.has_platform_keys() {
                tracing::info!("callbacks are checked against the platform's keys (OpenCTI 7)");
            }
            serve_callback(listener, &settings, auth, worker, concurrency, stop).await?;
        }
        ListenProtocol::Amqp => {
            let Some(broker) = broker else {
                anyhow::bail!("AMQP listening without a broker");
            };
            let queue = registered.config.listen.clone();
            if queue.is_empty() {
                anyhow::bail!("OpenCTI registered the connector without a listen queue");
            }
            let mut health_stop = stop.clone();
            let health = tokio::spawn(
                axum::serve(
                    listener,
                    Router::new().route("/healthcheck", get(healthcheck)),
                )
                .with_graceful_shutdown(async move {
                    let _ = health_stop.wait_for(|stopped| *stopped).await;
                })
                .into_future(),
            );
            let handle_worker = worker.clone();
            amqp::consume(
                &broker,
                &queue,
                u16::try_from(concurrency).unwrap_or(u16::MAX),
                STOP_GRACE,
                stop,
                move |taken| {
                    let worker = handle_worker.clone();
                    async move {
                        if taken.data.len() > MAX_MESSAGE_BYTES {
                            tracing::warn!(bytes = taken.data.len(), "dropped a work message larger than the limit");
                            taken.reject().await;
                            return;
                        }
                        match WorkMessage::parse(&taken.data) {
                            Ok(message) => {
                                worker.process(message).await;
                                taken.ack().await;
                            }
                            Err(error) => {
                                tracing::warn!(error = %logged(&error), "dropped a message that is not a work message");
                                taken.reject().await;
                            }
                        }
                    }
                },
            )
            .await;
            health.abort();
        }
    }
    ping.abort();
    tracing::info!("OpenCTI connector stopped");
    Ok(())
}

fn needs_broker(settings: &ConnectorSettings) -> bool {
    settings.listen_protocol == ListenProtocol::Amqp
        || settings.queue_protocol == QueueProtocol::Amqp
}

/// What the release cannot do with these settings stops the start, with what to change.
fn check_release(settings: &ConnectorSettings, release: Release) -> anyhow::Result<()> {
    if settings.listen_protocol == ListenProtocol::Api && !release.has_listen_callback() {
        anyhow::bail!(
            "OpenCTI {release} cannot post work to a connector (listen_callback_uri came in 6.5.7): \
             set CONNECTOR_LISTEN_PROTOCOL=AMQP"
        );
    }
    if settings.queue_protocol == QueueProtocol::Api && !release.has_bundle_push() {
        anyhow::bail!(
            "OpenCTI {release} takes no bundles over its API (stixBundlePush): set \
             CONNECTOR_QUEUE_PROTOCOL=amqp"
        );
    }
    Ok(())
}

/// The URI the worker posts to: the configured base, or this listener on loopback.
fn callback_uri(settings: &ConnectorSettings, bound: SocketAddr) -> String {
    let base = match &settings.callback_uri {
        Some(base) => base.clone(),
        None => {
            let host = if bound.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                bound.ip().to_string()
            };
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            format!("http://{host}:{}", bound.port())
        }
    };
    format!("{}{}", base.trim_end_matches('/'), settings.callback_path)
}

/// Calls `attempt` until it succeeds, trying again while the platform is unreachable or
/// restarting; `None` when shutdown came first. A refusal (a wrong token, an unknown field)
/// is final.
async fn until_ready<T, F, Fut>(
    what: &str,
    mut stop: watch::Receiver<bool>,
    attempt: F,
) -> anyhow::Result<Option<T>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, PlatformError>>,
{
    let mut delay = Duration::from_secs(2);
    loop {
        let outcome = tokio::select! {
            result = attempt() => result,
            _ = stop.wait_for(|stopped| *stopped) => return Ok(None),
        };
        match outcome {
            Ok(value) => return Ok(Some(value)),
            Err(error) if error.is_transient() => {
                tracing::warn!(error = %logged(&error), retry_in_s = delay.as_secs(), "cannot {what} yet");
            }
            Err(error) => return Err(anyhow::anyhow!(error).context(format!("cannot {what}"))),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|stopped| *stopped) => return Ok(None),
        }
        delay = (delay * 2).min(Duration::from_secs(60));
    }
}

/// What the pings carry: the state the platform keeps for the connector (pycti's
/// `connector_state`, a JSON text) and, for the import, its last and next runs.
#[derive(Debug, Default)]
struct Carried {
    state: Option<String>,
    runs: Runs,
}

/// Pings the platform with the connector's state, shared by the ping loop and the import
/// (which pings as soon as its state changed, as pycti's `force_ping`, so a restart right
/// after a run does not send it again).
#[derive(Debug, Clone)]
pub struct Pinger {
    platform: Platform,
    connector_id: String,
    carried: Arc<std::sync::Mutex<Carried>>,
}

impl Pinger {
    pub fn new(platform: Platform, connector_id: String, state: Option<String>) -> Self {
        Self {
            platform,
            connector_id,
            carried: Arc::new(std::sync::Mutex::new(Carried {
                state: state.filter(|state| !state.is_empty() && state != "null"),
                runs: Runs::default(),
            })),
        }
    }

    fn carried(&self) -> std::sync::MutexGuard<'_, Carried> {
        self.carried
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state as last set or read back from the platform.
    pub fn state(&self) -> Option<String> {
        self.carried().state.clone()
    }

    /// Replaces the state; the next ping carries it.
    pub fn set_state(&self, state: String) {
        self.carried().state = Some(state);
    }

    /// Replaces the runs the pings report.
    pub fn set_runs(&self, runs: Runs) {
        self.carried().runs = runs;
    }

    /// One ping. When the platform answers with another state than the one sent, it was
    /// reset there (the "reset state" button) and the platform's wins, as in pycti.
    pub async fn ping(&self) -> Result<(), PlatformError> {
        let (sent, runs) = {
            let carried = self.carried();
            (carried.state.clone(), carried.runs.clone())
        };
        let remote = self
            .platform
            .ping(&self.connector_id, sent.as_deref(), &runs)
            .await?;
        let remote = remote.filter(|state| state != "null");
        if remote != sent {
            tracing::info!("connector state was reset on the platform");
            self.carried().state = remote;
        }
        Ok(())
    }
}

/// Pings now, then every `interval`.
async fn ping_loop(pinger: Pinger, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut failing = false;
    loop {
        match pinger.ping().await {
            Ok(()) => {
                if failing {
                    tracing::info!("OpenCTI answers pings again");
                }
                failing = false;
            }
            Err(error) => {
                // Once per outage, not every 40 s.
                if !failing {
                    tracing::warn!(error = %logged(&error), "cannot ping OpenCTI");
                }
                failing = true;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Runs the feeds import (`CONNECTOR_TYPE=EXTERNAL_IMPORT`) until `shutdown` completes: the
/// sealed buckets of `settings.feeds` under `feeds_dir`, sent every `duration_period`.
pub async fn run_import(
    settings: ConnectorSettings,
    feeds_dir: std::path::PathBuf,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut platform = Platform::new(
        &settings.opencti_url,
        settings.opencti_token.clone(),
        PLATFORM_TIMEOUT,
        &settings.roots,
    )
    .context("OpenCTI client")?;
    let Some(release) = until_ready("learn the OpenCTI version", stop.clone(), || {
        let mut probe = platform.clone();
        async move { probe.learn_release().await }
    })
    .await?
    else {
        return Ok(());
    };
    platform.release = release;
    if settings.queue_protocol == QueueProtocol::Api && !release.has_bundle_push() {
        anyhow::bail!(
            "OpenCTI {release} takes no bundles over its API (stixBundlePush): set \
             CONNECTOR_QUEUE_PROTOCOL=amqp"
        );
    }
    // Only the health check listens (the container's `misp-domaintools healthcheck --port`).
    let listener = TcpListener::bind((settings.listen.as_str(), settings.callback_port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{} for the health check",
                settings.listen, settings.callback_port
            )
        })?;
    // pycti's registration of an external import: no callback, not automatic, no playbook.
    let registration = Registration {
        kind: ConnectorType::ExternalImport,
        id: settings.connector_id.clone(),
        name: settings.name.clone(),
        scope: settings.scope.clone(),
        auto: false,
        playbook_compatible: false,
        listen_callback_uri: None,
    };
    let Some(registered) = until_ready("register with OpenCTI", stop.clone(), || {
        let platform = platform.clone();
        let registration = registration.clone();
        async move { platform.register(&registration).await }
    })
    .await?
    else {
        return Ok(());
    };
    if registered.id.is_empty() {
        anyhow::bail!("OpenCTI registered the connector without an id");
    }
    tracing::info!(
        connector.id = %logged(&registered.id),
        connector.name = %settings.name,
        opencti.version = %release,
        queue = %settings.queue_protocol,
        feeds = ?settings.feeds.iter().map(|feed| feed.name()).collect::<Vec<_>>(),
        every_s = settings.duration_period.as_secs(),
        "registered with OpenCTI; importing the DomainTools feeds"
    );
    let push = match settings.queue_protocol {
        QueueProtocol::Amqp => Push::Amqp {
            broker: Broker::new(
                settings.mq.apply(&registered.config.connection),
                &settings.roots,
            ),
            target: PushTarget {
                exchange: registered.config.push_exchange.clone(),
                routing: registered.config.push_routing.clone(),
            },
        },
        QueueProtocol::Api => Push::Api,
    };
    let pinger = Pinger::new(
        platform.clone(),
        registered.id.clone(),
        registered.connector_state.clone(),
    );
    let ping = tokio::spawn(ping_loop(
        pinger.clone(),
        settings.ping_interval,
        stop.clone(),
    ));
    let mut health_stop = stop.clone();
    let health = tokio::spawn(
        axum::serve(
            listener,
            Router::new().route("/healthcheck", get(healthcheck)),
        )
        .with_graceful_shutdown(async move {
            let _ = health_stop.wait_for(|stopped| *stopped).await;
        })
        .into_future(),
    );
    let importer = super::import::Importer {
        platform,
        pinger,
        connector_id: registered.id.clone(),
        applicant: registered.connector_user_id.clone(),
        push,
        feeds: settings.feeds.clone(),
        dir: feeds_dir,
        marking: settings.enrich.marking,
    };
    importer.run(settings.duration_period, stop).await;
    health.abort();
    ping.abort();
    tracing::info!("OpenCTI feeds import stopped");
    Ok(())
}

#[derive(Clone)]
struct CallbackState {
    auth: Arc<CallbackAuth>,
    path: Arc<str>,
    permits: Arc<Semaphore>,
    worker: Arc<Worker>,
    /// Set once the stop's grace is over: work still under way is dropped unanswered.
    abandon: watch::Receiver<bool>,
}

/// The callback server, until `stop` and at most [`STOP_GRACE`] after it.
async fn serve_callback(
    listener: TcpListener,
    settings: &ConnectorSettings,
    auth: CallbackAuth,
    worker: Arc<Worker>,
    concurrency: usize,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (abandon_tx, abandon) = watch::channel(false);
    let state = CallbackState {
        auth: Arc::new(auth),
        path: Arc::from(settings.callback_path.as_str()),
        permits: Arc::new(Semaphore::new(concurrency)),
        worker,
        abandon,
    };
    let router = Router::new()
        .route("/healthcheck", get(healthcheck))
        .fallback(callback)
        .with_state(state);
    let mut serve_stop = stop.clone();
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = serve_stop.wait_for(|stopped| *stopped).await;
        })
        .into_future();
    let mut grace_stop = stop;
    let grace_over = async move {
        let _ = grace_stop.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(STOP_GRACE).await;
    };
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => return served.context("OpenCTI callback server"),
        () = grace_over => {}
    }
    // Those requests get a 503 instead of a 202: the worker sends them again.
    tracing::warn!("stopping with enrichment requests under way; the worker sends them again");
    let _ = abandon_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(2), server).await {
        Ok(served) => served.context("OpenCTI callback server"),
        Err(_) => Ok(()),
    }
}

async fn healthcheck() -> Json<Value> {
    Json(json!({ "status": true }))
}

/// The worker's POST: the token first (nothing of the body is read before), a free slot, then
/// the body, the work, and 202 once the work is done and reported.
async fn callback(State(state): State<CallbackState>, request: Request) -> Response {
    if request.uri().path() != &*state.path {
        return error(StatusCode::NOT_FOUND, "Not found");
    }
    if request.method() != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "Use POST");
    }
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| state.auth.check(value));
    if !authorized {
        tracing::warn!("refused a callback without a valid token");
        return error(StatusCode::UNAUTHORIZED, "Invalid credentials");
    }
    let Ok(permit) = state.permits.clone().try_acquire_owned() else {
        tracing::warn!("too many enrichment requests at once; asking the worker to retry");
        let mut response = error(StatusCode::SERVICE_UNAVAILABLE, "Busy, retry later");
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("30"));
        return response;
    };
    let body = match axum::body::to_bytes(request.into_body(), MAX_MESSAGE_BYTES).await {
        Ok(body) => body,
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "Message too large"),
    };
    let Ok(message) = WorkMessage::parse(&body) else {
        return error(StatusCode::BAD_REQUEST, "Invalid JSON payload");
    };
    drop(body);
    let mut abandon = state.abandon.clone();
    tokio::select! {
        () = state.worker.process(message) => {}
        _ = abandon.wait_for(|abandoned| *abandoned) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "Stopping, retry later");
        }
    }
    drop(permit);
    (
        StatusCode::ACCEPTED,
        Json(json!({ "message": "Message successfully received" })),
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
