//! A fake OpenCTI platform for the connector tests: a GraphQL endpoint on 127.0.0.1 that
//! answers the operations a connector sends (about, registerConnector, pingConnector, workAdd,
//! workEdit, stixCyberObservable, stixBundlePush, playbookStepExecution) and records each call;
//! plus the platform worker's side of the callback (an authenticated POST of an enrichment
//! message). Like the platform, it keeps the connector's state from the pings and hands it
//! back at registration, and a reset empties it (`connector_state_reset`).
//!
//! The fake is one release of the platform: it checks every request, document and variables,
//! against that release's schema (`opencti_schema`) and refuses what the real one would refuse
//! (HTTP 400, `GRAPHQL_VALIDATION_FAILED`), and it hands out the broker and queues of a real
//! RabbitMQ when given one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use clap::Parser as _;
use domaintools::{Client, Credentials};
use domaintools_fake::FakeApi;
use misp_domaintools::config::{Command, Config};
use misp_domaintools::opencti::{self, ConnectorSettings};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::server::{TestFake, TestServer};

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

/// The broker the fake hands out at registration.
#[derive(Debug, Clone)]
pub struct BrokerInfo {
    /// Its AMQP port on 127.0.0.1.
    pub port: u16,
    /// User.
    pub user: String,
    /// Password.
    pub pass: String,
}

#[derive(Default)]
struct Shared {
    calls: Vec<Call>,
    observables: HashMap<String, Value>,
    fail_push: bool,
    release: String,
    broker: Option<BrokerInfo>,
    jwks: Option<String>,
    violations: Vec<String>,
    state: Option<String>,
    state_reset: bool,
    works: usize,
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

const FIELDS: [&str; 10] = [
    "workAdd",
    "registerConnector",
    "pingConnector",
    "toReceived",
    "toProcessed",
    "addExpectations",
    "stixBundlePush",
    "stixCyberObservable",
    "playbookStepExecution",
    "about",
];

async fn graphql(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
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
        return ok(
            json!({"errors": [{"message": "You must be logged in to do this.",
                                        "extensions": {"code": "AUTH_REQUIRED"}}], "data": null}),
        );
    }
    if let Err(problem) = super::opencti_schema::validate(&shared.release, query, &variables) {
        let release = shared.release.clone();
        shared.violations.push(format!(
            "{field} refused by the {release} schema: {problem}"
        ));
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"errors": [{"message": problem,
                                    "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]})),
        );
    }
    let data = match field {
        "about" => json!({"about": {"version": shared.release}}),
        "registerConnector" => {
            let id = variables["input"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let (port, user, pass) = match &shared.broker {
                Some(broker) => (broker.port, broker.user.clone(), broker.pass.clone()),
                None => (5672, "guest".to_owned(), "guest".to_owned()),
            };
            let mut registered = json!({
            "id": id, "connector_state": shared.state, "connector_user_id": CONNECTOR_USER_ID,
            "config": {
                "connection": {"host": "127.0.0.1", "vhost": "/", "use_ssl": false,
                               "port": port, "user": user, "pass": pass},
                "listen": format!("listen_{id}"),
                "listen_routing": format!("listen_routing_{id}"),
                "listen_exchange": LISTEN_EXCHANGE,
                "push": format!("push_{id}"),
                "push_routing": format!("push_routing_{id}"),
                "push_exchange": PUSH_EXCHANGE,
            }});
            if query.contains("jwks") {
                registered["jwks"] = json!(shared.jwks);
            }
            json!({ "registerConnector": registered })
        }
        "pingConnector" => {
            // The platform's pingConnector: a pending reset wins over the state sent.
            if shared.state_reset {
                shared.state_reset = false;
                shared.state = Some(String::new());
            } else {
                shared.state = variables["state"].as_str().map(str::to_owned);
            }
            json!({"pingConnector": {"id": variables["id"], "connector_state": shared.state}})
        }
        "workAdd" => {
            shared.works += 1;
            json!({"workAdd": {"id": format!("work-import-{}", shared.works)}})
        }
        "toReceived" => json!({"workEdit": {"toReceived": variables["id"]}}),
        "toProcessed" => json!({"workEdit": {"toProcessed": variables["id"]}}),
        "addExpectations" => json!({"workEdit": {"addExpectations": variables["id"]}}),
        "playbookStepExecution" => json!({"playbookStepExecution": true}),
        "stixBundlePush" if shared.fail_push => {
            return ok(json!({"errors": [{"message": "Bundle push is disabled"}], "data": null}))
        }
        "stixBundlePush" => json!({"stixBundlePush": true}),
        "stixCyberObservable" => {
            let id = variables["id"].as_str().unwrap_or_default();
            json!({"stixCyberObservable": shared.observables.get(id).cloned().unwrap_or(Value::Null)})
        }
        _ => return ok(json!({"errors": [{"message": "Unknown operation"}], "data": null})),
    };
    ok(json!({ "data": data }))
}

fn ok(body: Value) -> (StatusCode, Json<Value>) {
    (StatusCode::OK, Json(body))
}

/// The platform's exchange for the connectors' listen queues.
pub const LISTEN_EXCHANGE: &str = "amqp.connector.exchange";
/// The platform's exchange for the workers' push queues.
pub const PUSH_EXCHANGE: &str = "amqp.worker.exchange";

impl FakeOpencti {
    /// Starts the fake, as OpenCTI 6.9.17, on 127.0.0.1:0.
    pub async fn start() -> Self {
        Self::start_release("6.9.17", None, None).await
    }

    /// Starts the fake as `release` ("6.0.0" … "6.9.17", "7.…"), handing out `broker` at
    /// registration and `jwks` (7.x).
    pub async fn start_release(
        release: &str,
        broker: Option<BrokerInfo>,
        jwks: Option<String>,
    ) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            release: release.to_owned(),
            broker,
            jwks,
            ..Shared::default()
        }));
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

    /// Starts the fake as 6.9.17 over HTTPS (`https://127.0.0.1:PORT`), with a certificate
    /// signed by `ca`: a platform behind a corporate CA.
    pub async fn start_https(ca: &super::tls::TestCa) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            release: "6.9.17".to_owned(),
            ..Shared::default()
        }));
        let app = Router::new()
            .route("/graphql", post(graphql))
            .with_state(shared.clone());
        let (url, task) = super::tls::serve_https(app, ca).await;
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

    /// The connector state the platform keeps.
    pub fn state(&self) -> Option<String> {
        self.lock().state.clone()
    }

    /// The "reset state" button: the next ping empties the state.
    pub fn reset_state(&self) {
        self.lock().state_reset = true;
    }

    /// Makes every stixBundlePush fail with a GraphQL error.
    pub fn fail_pushes(&self) {
        self.lock().fail_push = true;
    }

    /// Requests the release's schema refused, none when the connector spoke this release.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
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
    /// Waits (10 s at most) for the connector to end by itself, without stopping it.
    pub async fn ended(mut self) -> anyhow::Result<()> {
        let task = self.task.take().expect("the connector task");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the connector ends by itself")
            .unwrap()
    }

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
    let mut with_api = vec!["--listen-protocol", "API", "--queue-protocol", "api"];
    with_api.extend_from_slice(extra);
    settings_with(platform, &with_api)
}

/// Settings as [`settings`], with the protocols left to `extra` (pycti's defaults: AMQP).
pub fn settings_with(platform: &FakeOpencti, extra: &[&str]) -> ConnectorSettings {
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

/// The fake DomainTools API the connector tests call, from the harness's builder (it knows
/// the test account); the fake (request log, faults) and the running one (its URL).
pub async fn fake_domaintools() -> (FakeApi, TestFake) {
    let running = TestServer::builder().start_fake().await;
    (running.fake.clone(), running)
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

/// The platform's side of RabbitMQ: the queues it declares at registration, the work it
/// publishes, and what its workers take from the push queue.
pub struct PlatformQueues {
    connection: lapin::Connection,
    channel: lapin::Channel,
    connector_id: String,
}

impl PlatformQueues {
    /// Declares the connector's queues as the platform does (`registerConnectorQueues`):
    /// direct durable exchanges, durable queues bound by routing key.
    pub async fn declare(broker: &BrokerInfo, connector_id: &str) -> Self {
        use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
        use lapin::types::FieldTable;
        let connection = Self::connect(broker).await;
        let channel = connection.create_channel().await.unwrap();
        for exchange in [LISTEN_EXCHANGE, PUSH_EXCHANGE] {
            channel
                .exchange_declare(
                    exchange.into(),
                    lapin::ExchangeKind::Direct,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap();
        }
        for (queue, exchange, routing) in [
            (
                format!("listen_{connector_id}"),
                LISTEN_EXCHANGE,
                format!("listen_routing_{connector_id}"),
            ),
            (
                format!("push_{connector_id}"),
                PUSH_EXCHANGE,
                format!("push_routing_{connector_id}"),
            ),
        ] {
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap();
            channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange.into(),
                    routing.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
        }
        channel
            .confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await
            .unwrap();
        Self {
            connection,
            channel,
            connector_id: connector_id.to_owned(),
        }
    }

    async fn connect(broker: &BrokerInfo) -> lapin::Connection {
        let uri = lapin::uri::AMQPUri {
            authority: lapin::uri::AMQPAuthority {
                userinfo: lapin::uri::AMQPUserInfo {
                    username: broker.user.clone(),
                    password: broker.pass.clone(),
                },
                host: "127.0.0.1".to_owned(),
                port: broker.port,
            },
            ..lapin::uri::AMQPUri::default()
        };
        lapin::Connection::connect_uri(uri, lapin::ConnectionProperties::default())
            .await
            .unwrap()
    }

    /// Publishes a work message as the platform does (`pushToConnector`): JSON on the
    /// connector exchange with the listen routing key, persistent.
    pub async fn publish_work(&self, message: &Value) {
        let confirm = self
            .channel
            .basic_publish(
                LISTEN_EXCHANGE.into(),
                format!("listen_routing_{}", self.connector_id)
                    .as_str()
                    .into(),
                lapin::options::BasicPublishOptions::default(),
                message.to_string().as_bytes(),
                lapin::BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack(), "the broker took the work message");
    }

    /// Messages ready on `queue` (not counting those delivered and unacknowledged).
    pub async fn ready(&self, queue: &str) -> u32 {
        let queue = self
            .channel
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..lapin::options::QueueDeclareOptions::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .unwrap();
        queue.message_count()
    }

    /// Messages ready on the listen queue.
    pub async fn listen_ready(&self) -> u32 {
        self.ready(&format!("listen_{}", self.connector_id)).await
    }

    /// Takes (and acknowledges, as a worker does) every message on the push queue: their
    /// envelopes, in order.
    pub async fn take_pushed(&self) -> Vec<Value> {
        let mut taken = Vec::new();
        let queue = format!("push_{}", self.connector_id);
        while let Some(message) = self
            .channel
            .basic_get(
                queue.as_str().into(),
                lapin::options::BasicGetOptions::default(),
            )
            .await
            .unwrap()
        {
            taken.push(serde_json::from_slice(&message.delivery.data).unwrap());
            message
                .delivery
                .ack(lapin::options::BasicAckOptions::default())
                .await
                .unwrap();
        }
        taken
    }

    /// Closes the platform's connection (before a broker restart).
    pub async fn close(self) {
        let _ = self.connection.close(200, "done".into()).await;
    }
}
