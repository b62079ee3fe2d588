//! The running connector: registration (retried while the platform is unreachable), the
//! callback the OpenCTI worker posts enrichment requests to, the jobs that enrich and report,
//! and the ping that keeps the connector marked alive.
//!
//! The worker waits at most 300 s for an answer and sends the request again when it gets none,
//! so the callback answers 202 as soon as the request is authenticated and queued; the work's
//! outcome goes to the platform through `workEdit`, never through the HTTP answer.

use domaintools::ExposeSecret;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use super::graphql::{Marking, Platform};
use super::settings::ConnectorSettings;
use crate::config::Secret;
use crate::stix::{self, Observable, ObservableKind, Tlp};
use domaintools::{Caller, Client, Credentials};

/// Requests accepted but not yet started; past this the callback answers 503 and the worker
/// sends the request again later, instead of this process holding an unbounded backlog.
const QUEUE_CAPACITY: usize = 64;
/// Largest callback body: messages carry the entity's STIX objects.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Longest wait for GraphQL calls (a bundle push included).
const PLATFORM_TIMEOUT: Duration = Duration::from_secs(60);
/// How long, at shutdown, jobs under way may take to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// `app_name` reported to DomainTools.
const APP_NAME: &str = "DomainTools-OpenCTI-Enrichment";

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

    let platform = Platform::new(
        &settings.opencti_url,
        settings.opencti_token.clone(),
        PLATFORM_TIMEOUT,
    )
    .context("OpenCTI client")?;
    let listener = TcpListener::bind((settings.listen.as_str(), settings.callback_port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{} for the OpenCTI callback",
                settings.listen, settings.callback_port
            )
        })?;
    let callback_uri = callback_uri(&settings, listener.local_addr()?);

    let input = json!({
        "id": settings.connector_id,
        "name": settings.name,
        "type": "INTERNAL_ENRICHMENT",
        "scope": settings.scope,
        "auto": settings.auto,
        "auto_update": false,
        "enrichment_resolution": "none",
        "only_contextual": false,
        // Playbook steps expect the bundle back through playbookStepExecution, which this
        // connector does not implement: the platform must not offer it in playbooks.
        "playbook_compatible": false,
        "listen_callback_uri": callback_uri,
    });
    let Some(registered) = register(&platform, input, stop.clone()).await? else {
        return Ok(());
    };
    tracing::info!(
        connector.id = %registered.id,
        connector.name = %settings.name,
        callback = %callback_uri,
        scope = ?settings.scope,
        max_tlp = %settings.max_tlp,
        "registered with OpenCTI; waiting for enrichment requests (no RabbitMQ connection: \
         the platform's worker posts them to the callback)"
    );

    let ping = tokio::spawn(ping_loop(
        platform.clone(),
        registered.id.clone(),
        registered.connector_state.clone(),
        settings.ping_interval,
        stop.clone(),
    ));

    let concurrency = settings.concurrency.max(1);
    let worker = Arc::new(Worker {
        platform,
        client,
        credentials,
        connector_id: registered.id.clone(),
        settings: settings.clone(),
    });
    let (queue, mut requests) = mpsc::channel::<Value>(QUEUE_CAPACITY);
    let permits = Arc::new(Semaphore::new(concurrency));
    let dispatch_permits = permits.clone();
    let dispatcher = tokio::spawn(async move {
        while let Some(message) = requests.recv().await {
            let Ok(permit) = dispatch_permits.clone().acquire_owned().await else {
                break;
            };
            let worker = worker.clone();
            tokio::spawn(async move {
                worker.process(message).await;
                drop(permit);
            });
        }
    });

    let state = CallbackState {
        token: settings.opencti_token.clone(),
        path: Arc::from(settings.callback_path.as_str()),
        queue,
    };
    let router = Router::new()
        .route("/healthcheck", get(healthcheck))
        .fallback(callback)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    let mut serve_stop = stop.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = serve_stop.wait_for(|stopped| *stopped).await;
        })
        .await
        .context("OpenCTI callback server")?;

    // The router (and with it the queue's sender) is gone: finish what was accepted.
    ping.abort();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        let _ = dispatcher.await;
        let _ = permits.acquire_many(concurrency as u32).await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("stopping with enrichments still under way; their works stay unfinished");
    }
    tracing::info!("OpenCTI connector stopped");
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

/// Registers, trying again while the platform is unreachable or restarting; `None` when
/// shutdown came first. A refusal (a wrong token, an unknown field) is final.
async fn register(
    platform: &Platform,
    input: Value,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<super::graphql::Registered>> {
    let mut delay = Duration::from_secs(2);
    loop {
        let attempt = tokio::select! {
            result = platform.register(input.clone()) => result,
            _ = stop.wait_for(|stopped| *stopped) => return Ok(None),
        };
        match attempt {
            Ok(registered) if !registered.id.is_empty() => return Ok(Some(registered)),
            Ok(_) => anyhow::bail!("OpenCTI registered the connector without an id"),
            Err(error) if error.is_transient() => {
                tracing::warn!(%error, retry_in_s = delay.as_secs(), "cannot register with OpenCTI yet");
            }
            Err(error) => {
                return Err(anyhow::anyhow!(error).context("registering with OpenCTI"));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|stopped| *stopped) => return Ok(None),
        }
        delay = (delay * 2).min(Duration::from_secs(60));
    }
}

/// Pings now, then every `interval`, carrying the state the platform keeps for the connector.
async fn ping_loop(
    platform: Platform,
    connector_id: String,
    mut state: Option<String>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut failing = false;
    loop {
        match platform.ping(&connector_id, state.as_deref()).await {
            Ok(remote) => {
                if failing {
                    tracing::info!("OpenCTI answers pings again");
                }
                failing = false;
                if remote.is_some() && remote != state {
                    tracing::info!("connector state was reset on the platform");
                    state = remote;
                }
            }
            Err(error) => {
                // Once per outage, not every 40 s.
                if !failing {
                    tracing::warn!(%error, "cannot ping OpenCTI");
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

#[derive(Clone)]
struct CallbackState {
    token: Secret,
    path: Arc<str>,
    queue: mpsc::Sender<Value>,
}

async fn healthcheck() -> Json<Value> {
    Json(json!({ "status": true }))
}

/// The worker's POST: authenticate, parse, queue, answer 202.
async fn callback(
    State(state): State<CallbackState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path() != &*state.path {
        return error(StatusCode::NOT_FOUND, "Not found");
    }
    if method != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "Use POST");
    }
    if !authorized(&headers, &state.token) {
        tracing::warn!("refused a callback without the connector's token");
        return error(StatusCode::UNAUTHORIZED, "Invalid credentials");
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "Invalid JSON payload");
    };
    if !message.is_object() {
        return error(StatusCode::BAD_REQUEST, "Invalid JSON payload");
    }
    match state.queue.try_send(message) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(json!({ "message": "Message successfully received" })),
        )
            .into_response(),
        Err(_) => {
            tracing::warn!("too many enrichment requests waiting; asking the worker to retry");
            let mut response = error(StatusCode::SERVICE_UNAVAILABLE, "Busy, retry later");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("30"));
            response
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// `Authorization: Bearer <the connector's token>`, compared in constant time.
fn authorized(headers: &HeaderMap, token: &Secret) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(scheme), Some(given), None) if scheme.eq_ignore_ascii_case("bearer") => given
            .as_bytes()
            .ct_eq(token.expose_secret().as_bytes())
            .into(),
        _ => false,
    }
}

/// What a job needs.
struct Worker {
    platform: Platform,
    client: Client,
    credentials: Credentials,
    connector_id: String,
    settings: ConnectorSettings,
}

fn str_at<'v>(message: &'v Value, pointer: &str) -> Option<&'v str> {
    message
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

impl Worker {
    /// One enrichment request, reported on its work from start to end.
    async fn process(&self, message: Value) {
        let work_id = str_at(&message, "/internal/work_id");
        let platform = self
            .platform
            .in_draft(str_at(&message, "/internal/draft_id"));
        if let Some(work_id) = work_id {
            if let Err(error) = platform
                .work_received(work_id, "Connector ready to process the operation")
                .await
            {
                tracing::warn!(%error, work.id = work_id, "cannot mark the work received");
            }
        }
        let entity = str_at(&message, "/event/entity_id").unwrap_or("-");
        let (text, in_error) = match self.enrich(&platform, &message, work_id).await {
            Ok(summary) => {
                tracing::info!(work.id = work_id, entity, "{summary}");
                (summary, false)
            }
            Err(problem) => {
                tracing::warn!(work.id = work_id, entity, "{problem}");
                (problem, true)
            }
        };
        match work_id {
            Some(work_id) => {
                if let Err(error) = platform.work_processed(work_id, &text, in_error).await {
                    tracing::error!(%error, work.id = work_id, "cannot report the work's end");
                }
            }
            None => tracing::warn!("the request carried no work id: nothing to report to"),
        }
    }

    /// The enrichment; `Err` is the message the work is closed in error with.
    async fn enrich(
        &self,
        platform: &Platform,
        message: &Value,
        work_id: Option<&str>,
    ) -> Result<String, String> {
        if message
            .pointer("/internal/playbook")
            .is_some_and(|playbook| !playbook.is_null())
        {
            return Err("This connector does not run in playbooks.".to_owned());
        }
        let entity_id =
            str_at(message, "/event/entity_id").ok_or("The request names no entity to enrich.")?;
        let entity = platform
            .read_observable(entity_id)
            .await
            .map_err(|e| format!("Cannot read {entity_id} from OpenCTI: {e}"))?
            .ok_or_else(|| {
                format!(
                    "OpenCTI returned no observable {entity_id}: check that the connector's user \
                     can read it."
                )
            })?;
        let entity_type = entity.entity_type.clone().unwrap_or_default();
        let kind = ObservableKind::from_opencti_type(&entity_type).ok_or_else(|| {
            format!("{entity_type} observables are not enriched by DomainTools (Domain-Name and IPv4-Addr are).")
        })?;
        let tlp = observable_tlp(entity.object_marking.as_deref().unwrap_or_default())?;
        if tlp > self.settings.max_tlp {
            return Err(format!(
                "Do not send any data, TLP of the observable ({tlp}) is greater than MAX TLP ({}).",
                self.settings.max_tlp
            ));
        }
        let value = entity.observable_value.as_deref().unwrap_or_default();
        let standard_id = entity.standard_id.as_deref().unwrap_or_default();
        let observable = Observable::existing(kind, value, standard_id)?;
        let caller = Caller::new(&self.credentials, APP_NAME);
        let enrichment = stix::enrich(
            &self.client,
            caller,
            &observable,
            &self.settings.enrich,
            Some(tlp),
            Utc::now(),
        )
        .await
        .map_err(|e| e.to_string())?;
        for skipped in &enrichment.mapping.skipped {
            tracing::debug!(
                what = skipped.what,
                value = %skipped.value,
                record = %skipped.record,
                "[DomainTools] value not correctly formatted, skipped"
            );
        }
        if !enrichment.found {
            return Ok(enrichment.summary);
        }
        let bundle = serde_json::to_string(&enrichment.bundle)
            .map_err(|e| format!("The bundle could not be serialized: {e}"))?;
        platform
            .push_bundle(&self.connector_id, &bundle, work_id)
            .await
            .map_err(|e| format!("The bundle could not be sent to OpenCTI: {e}"))?;
        Ok(enrichment.summary)
    }
}

/// The observable's most restrictive TLP (TLP:CLEAR without any). The Python connector took
/// the last one listed; an unknown TLP name refuses the work rather than guessing.
fn observable_tlp(markings: &[Marking]) -> Result<Tlp, String> {
    let mut strictest = Tlp::Clear;
    for marking in markings {
        let is_tlp = marking
            .definition_type
            .as_deref()
            .is_some_and(|kind| kind.eq_ignore_ascii_case("TLP"));
        if !is_tlp {
            continue;
        }
        let definition = marking.definition.as_deref().unwrap_or_default();
        let tlp = definition.parse::<Tlp>().map_err(|_| {
            format!(
                "The observable's marking {definition:?} is not a TLP level this connector knows; \
                 nothing was sent to DomainTools."
            )
        })?;
        strictest = strictest.max(tlp);
    }
    Ok(strictest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlp(definition: &str) -> Marking {
        Marking {
            standard_id: None,
            definition_type: Some("TLP".to_owned()),
            definition: Some(definition.to_owned()),
        }
    }

    #[test]
    fn the_strictest_tlp_wins() {
        let pap = Marking {
            standard_id: None,
            definition_type: Some("PAP".to_owned()),
            definition: Some("PAP:RED".to_owned()),
        };
        assert_eq!(observable_tlp(&[]), Ok(Tlp::Clear));
        assert_eq!(observable_tlp(std::slice::from_ref(&pap)), Ok(Tlp::Clear));
        assert_eq!(
            observable_tlp(&[tlp("TLP:RED"), tlp("TLP:GREEN"), pap]),
            Ok(Tlp::Red)
        );
        assert!(observable_tlp(&[tlp("TLP:PURPLE")]).is_err());
    }

    #[test]
    fn bearer_token_check() {
        let token = Secret::from("s3cret".to_owned());
        let mut headers = HeaderMap::new();
        assert!(!authorized(&headers, &token));
        for (value, ok) in [
            ("Bearer s3cret", true),
            ("bearer s3cret", true),
            ("Bearer s3cre", false),
            ("Bearer s3cret extra", false),
            ("Basic s3cret", false),
            ("s3cret", false),
        ] {
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(authorized(&headers, &token), ok, "{value}");
        }
    }
}
