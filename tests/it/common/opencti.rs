//! A fake OpenCTI platform for the connector tests: a GraphQL endpoint on 127.0.0.1 that
//! answers the operations a connector sends (registerConnector, pingConnector, workEdit,
//! stixCyberObservable, stixBundlePush) and records each call; plus the platform worker's side
//! of the callback (an authenticated POST of an enrichment message).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use clap::Parser as _;
use domaintools::{Client, Credentials};
use misp_domaintools::config::{Command, Config};
use misp_domaintools::opencti::{self, ConnectorSettings};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The connector user's token the fake accepts.
pub const TOKEN: &str = "opencti-token-SECRET-4242";
/// The connector id used by the tests.
pub const CONNECTOR_ID: &str = "8f2a6e5c-3d4b-4c1a-9e7f-0a1b2c3d4e5f";
/// The connector user's id the fake returns at registration.
pub const CONNECTOR_USER_ID: &str = "88ec0c6a-13ce-5e39-b486-354fe4a7084f";

/// One GraphQL call as the fake received it.
#[derive(Debug, Clone)]
pub struct Call {
    /// The root field: "registerConnector", "toProcessed", …
    pub field: String,
    /// The variables.
    pub variables: Value,
    /// The Authorization header.
    pub authorization: Option<String>,
    /// The opencti-draft-id header.
    pub draft_id: Option<String>,
}

#[derive(Default)]
struct Shared {
    calls: Vec<Call>,
    observables: HashMap<String, Value>,
    fail_push: bool,
}

/// A fake platform on loopback; stops when dropped.
pub struct FakeOpencti {
    /// `http://127.0.0.1:PORT` (GraphQL at `/graphql`).
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl Drop for FakeOpencti {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const FIELDS: [&str; 6] = [
    "registerConnector",
    "pingConnector",
    "toReceived",
    "toProcessed",
    "stixBundlePush",
    "stixCyberObservable",
];

async fn graphql(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let query = body["query"].as_str().unwrap_or_default();
    let variables = body["variables"].clone();
    let field = FIELDS
        .iter()
        .find(|field| query.contains(*field))
        .copied()
        .unwrap_or("unknown");
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let authorization = header("authorization");
    let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
    shared.calls.push(Call {
        field: field.to_owned(),
        variables: variables.clone(),
        authorization: authorization.clone(),
        draft_id: header("opencti-draft-id"),
    });
    if authorization.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        return Json(
            json!({"errors": [{"message": "You must be logged in to do this.",
                                        "extensions": {"code": "AUTH_REQUIRED"}}], "data": null}),
        );
    }
    let data = match field {
        "registerConnector" => json!({"registerConnector": {
            "id": variables["input"]["id"], "connector_state": null,
            "connector_user_id": CONNECTOR_USER_ID}}),
        "pingConnector" => {
            json!({"pingConnector": {"id": variables["id"], "connector_state": null}})
        }
        "toReceived" => json!({"workEdit": {"toReceived": variables["id"]}}),
        "toProcessed" => json!({"workEdit": {"toProcessed": variables["id"]}}),
        "stixBundlePush" if shared.fail_push => {
            return Json(json!({"errors": [{"message": "Bundle push is disabled"}], "data": null}))
        }
        "stixBundlePush" => json!({"stixBundlePush": true}),
        "stixCyberObservable" => {
            let id = variables["id"].as_str().unwrap_or_default();
            json!({"stixCyberObservable": shared.observables.get(id).cloned().unwrap_or(Value::Null)})
        }
        _ => return Json(json!({"errors": [{"message": "Unknown operation"}], "data": null})),
    };
    Json(json!({ "data": data }))
}

impl FakeOpencti {
    /// Starts the fake on 127.0.0.1:0.
    pub async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/graphql", post(graphql))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, shared, task }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the platform hold an observable, as `stixCyberObservable` returns it.
    pub fn add_observable(
        &self,
        entity_id: &str,
        entity_type: &str,
        value: &str,
        tlp: Option<&str>,
    ) {
        let standard_id = match entity_type {
            "Domain-Name" => misp_domaintools::stix::ids::domain_name_id(value),
            "IPv4-Addr" => misp_domaintools::stix::ids::ipv4_addr_id(value),
            other => format!(
                "{}--6ba7b810-9dad-41d1-80b4-00c04fd430c8",
                other.to_lowercase()
            ),
        };
        let markings: Vec<Value> = tlp
            .map(|tlp| {
                vec![json!({"standard_id": "marking-definition--00000000-0000-4000-8000-000000000000",
                            "definition_type": "TLP", "definition": tlp})]
            })
            .unwrap_or_default();
        self.lock().observables.insert(
            entity_id.to_owned(),
            json!({"id": entity_id, "standard_id": standard_id, "entity_type": entity_type,
                   "observable_value": value, "objectMarking": markings}),
        );
    }

    /// Makes every stixBundlePush fail with a GraphQL error.
    pub fn fail_pushes(&self) {
        self.lock().fail_push = true;
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The calls to `field`.
    pub fn calls_to(&self, field: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.field == field)
            .collect()
    }

    /// Calls about one work (`workEdit` by id, or a push carrying it), in order.
    pub fn work_calls(&self, work_id: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.variables["id"] == work_id || c.variables["work_id"] == work_id)
            .collect()
    }

    /// Waits (10 s at most) until `done` holds for the calls so far.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let started = Instant::now();
        loop {
            let calls = self.calls();
            if done(&calls) {
                return calls;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}; calls: {:#?}",
                calls.iter().map(|c| &c.field).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the end of a work and returns its `toProcessed` call.
    pub async fn processed(&self, work_id: &str) -> Call {
        let calls = self
            .wait_for(&format!("work {work_id} processed"), |calls| {
                calls
                    .iter()
                    .any(|c| c.field == "toProcessed" && c.variables["id"] == work_id)
            })
            .await;
        calls
            .into_iter()
            .find(|c| c.field == "toProcessed" && c.variables["id"] == work_id)
            .unwrap()
    }

    /// The callback URI the connector registered.
    pub async fn callback_uri(&self) -> String {
        let calls = self
            .wait_for("registration", |calls| {
                calls.iter().any(|c| c.field == "registerConnector")
            })
            .await;
        let register = calls
            .iter()
            .find(|c| c.field == "registerConnector")
            .unwrap();
        register.variables["input"]["listen_callback_uri"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// An enrichment request as the platform queues it (pycti's listen message format).
pub fn enrichment_message(work_id: &str, entity_id: &str, entity_type: &str) -> Value {
    json!({
        "internal": {"work_id": work_id, "applicant_id": null, "draft_id": null,
                     "mode": "manual", "trigger": "update"},
        "event": {"event_type": "INTERNAL_ENRICHMENT", "entity_id": entity_id,
                  "entity_type": entity_type, "stix_entity": "{}", "stix_objects": null}
    })
}

/// The worker's POST to the callback; returns the status and the JSON answer.
pub async fn post_callback(uri: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = client
        .post(uri)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A connector running in this process; stops when dropped.
pub struct RunningConnector {
    stop: Option<oneshot::Sender<()>>,
    /// The connector task, for tests that check it ends.
    pub task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningConnector {
    /// Stops the connector and waits for it to finish.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap(),
            None => Ok(()),
        }
    }
}

impl Drop for RunningConnector {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Settings for a connector talking to `platform`, with a free callback port, a fast ping
/// and `extra` command-line arguments of the `opencti` subcommand.
pub fn settings(platform: &FakeOpencti, extra: &[&str]) -> ConnectorSettings {
    let mut args = vec![
        "misp-domaintools",
        "--listen",
        "127.0.0.1",
        "opencti",
        "--opencti-url",
        &platform.url,
        "--opencti-token",
        TOKEN,
        "--connector-id",
        CONNECTOR_ID,
        "--callback-port",
        "0",
    ];
    args.extend_from_slice(extra);
    let config = Config::try_parse_from(args).unwrap();
    let Some(Command::Opencti(opencti_args)) = config.command.clone() else {
        panic!("not the opencti command");
    };
    let mut settings = ConnectorSettings::from_parts(&config, &opencti_args, None).unwrap();
    settings.ping_interval = Duration::from_millis(150);
    settings
}

/// Starts a connector with `settings`, calling DomainTools at `api_url` as `username`/`key`.
pub fn start(
    settings: ConnectorSettings,
    api_url: &str,
    username: &str,
    key: &str,
) -> RunningConnector {
    let client = Client::new(super::server::client_config("OpenCTI", api_url)).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(opencti::run(
        settings,
        client,
        Credentials::new(username, key),
        async move {
            let _ = stopped.await;
        },
    ));
    RunningConnector {
        stop: Some(stop),
        task: Some(task),
    }
}
