//! The OpenCTI platform's GraphQL API, as much of it as an internal-enrichment connector
//! needs: the version, registration, pings, work reports, reading the observable, pushing a
//! bundle and a playbook step's answer. The documents are pycti's (client-python), trimmed to
//! the fields used, in the form each platform release accepts: [`Release`] says which, from
//! `about { version }`. Every document and its variables are built by [`requests`], the one
//! place the connector and the schema tests take them from.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::Secret;
use domaintools::ExposeSecret as _;

/// The longest error text kept from a platform answer.
const MAX_ERROR_LEN: usize = 300;
/// The largest platform answer read (an entity with its STIX export stays far below).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// A platform release, as far as the connector's documents depend on it. What each field
/// tells was read in the platform's schema of each release (6.0.0, 6.5.6, 6.5.7, 6.8.8, 6.8.9,
/// 6.9.17) and in pycti 7 for 7.x; a release between two of those is treated as the older.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    /// Major, minor, patch.
    pub version: (u32, u32, u32),
}

impl Release {
    /// The release of a version text such as "6.8.9" or "7.260817.0"; `None` when it does not
    /// start with digits.
    pub fn parse(text: &str) -> Option<Self> {
        let mut numbers = text
            .trim()
            .trim_start_matches('v')
            .split(['.', '-', '+'])
            .map(|part| {
                let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u32>().ok()
            });
        let major = numbers.next().flatten()?;
        let minor = numbers.next().flatten().unwrap_or(0);
        let patch = numbers.next().flatten().unwrap_or(0);
        Some(Self {
            version: (major, minor, patch),
        })
    }

    fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        self.version >= (major, minor, patch)
    }

    /// `RegisterConnectorInput.listen_callback_uri` (6.5.7 on): API listening.
    pub fn has_listen_callback(&self) -> bool {
        self.at_least(6, 5, 7)
    }

    /// `RegisterConnectorInput.auto_update` and `.enrichment_resolution` (6.8.9 on).
    pub fn has_enrichment_resolution(&self) -> bool {
        self.at_least(6, 8, 9)
    }

    /// `stixBundlePush` (absent from 6.0.0, present in 6.5.6).
    pub fn has_bundle_push(&self) -> bool {
        self.at_least(6, 1, 0)
    }

    /// `stixBundlePush(work_id)` (6.5.7 on).
    pub fn has_bundle_push_work_id(&self) -> bool {
        self.at_least(6, 5, 7)
    }

    /// `pingConnector(connectorInfo)` (absent from 6.0.0, present in 6.5.6).
    pub fn has_connector_info(&self) -> bool {
        self.at_least(6, 5, 6)
    }

    /// `playbookStepExecution(event_id)` (absent from 6.0.0, required in 6.5.6).
    pub fn has_playbook_event_id(&self) -> bool {
        self.at_least(6, 5, 6)
    }

    /// `registerConnector { jwks }`: the keys of the worker's callback JWT (7.x).
    pub fn has_jwks(&self) -> bool {
        self.at_least(7, 0, 0)
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor, patch) = self.version;
        write!(f, "{major}.{minor}.{patch}")
    }
}

/// The documents and their variables, exactly as sent.
pub mod requests {
    use super::Release;
    use serde_json::{json, Value};

    /// One GraphQL request.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Request {
        /// The document.
        pub query: &'static str,
        /// Its variables.
        pub variables: Value,
    }

    const ABOUT: &str = "query PlatformVersion { about { version } }";
    const REGISTER: &str = "mutation RegisterConnector($input: RegisterConnectorInput) { \
         registerConnector(input: $input) { id connector_state connector_user_id config { \
         connection { host vhost use_ssl port user pass } listen listen_routing listen_exchange \
         push push_routing push_exchange } } }";
    const REGISTER_WITH_JWKS: &str =
        "mutation RegisterConnector($input: RegisterConnectorInput) { \
         registerConnector(input: $input) { id connector_state connector_user_id jwks config { \
         connection { host vhost use_ssl port user pass } listen listen_routing listen_exchange \
         push push_routing push_exchange } } }";
    const PING: &str = "mutation PingConnector($id: ID!, $state: String) { \
         pingConnector(id: $id, state: $state) { id connector_state } }";
    const PING_WITH_INFO: &str =
        "mutation PingConnector($id: ID!, $state: String, $connectorInfo: ConnectorInfoInput) { \
         pingConnector(id: $id, state: $state, connectorInfo: $connectorInfo) { id connector_state } }";
    const WORK_ADD: &str = "mutation workAdd($connectorId: String!, $friendlyName: String) { \
         workAdd(connectorId: $connectorId, friendlyName: $friendlyName) { id } }";
    const TO_RECEIVED: &str = "mutation workToReceived($id: ID!, $message: String) { \
         workEdit(id: $id) { toReceived(message: $message) } }";
    const TO_PROCESSED: &str =
        "mutation workToProcessed($id: ID!, $message: String, $inError: Boolean) { \
         workEdit(id: $id) { toProcessed(message: $message, inError: $inError) } }";
    const ADD_EXPECTATIONS: &str = "mutation addExpectations($id: ID!, $expectations: Int) { \
         workEdit(id: $id) { addExpectations(expectations: $expectations) } }";
    const READ_OBSERVABLE: &str = "query StixCyberObservable($id: String!) { \
         stixCyberObservable(id: $id) { id standard_id entity_type observable_value \
         objectMarking { standard_id definition_type definition } } }";
    const PUSH: &str = "mutation StixBundlePush($connectorId: String!, $bundle: String!) { \
         stixBundlePush(connectorId: $connectorId, bundle: $bundle) }";
    const PUSH_WITH_WORK: &str =
        "mutation StixBundlePush($connectorId: String!, $bundle: String!, $work_id: String) { \
         stixBundlePush(connectorId: $connectorId, bundle: $bundle, work_id: $work_id) }";
    const PLAYBOOK_STEP: &str = "mutation PlaybookStepExecution($execution_id: ID!, \
         $event_id: ID!, $execution_start: DateTime!, $data_instance_id: ID!, $playbook_id: ID!, \
         $previous_step_id: ID!, $step_id: ID!, $previous_bundle: String!, $bundle: String!) { \
         playbookStepExecution(execution_id: $execution_id, event_id: $event_id, \
         execution_start: $execution_start, data_instance_id: $data_instance_id, \
         playbook_id: $playbook_id, previous_step_id: $previous_step_id, step_id: $step_id, \
         previous_bundle: $previous_bundle, bundle: $bundle) }";
    const PLAYBOOK_STEP_WITHOUT_EVENT: &str = "mutation PlaybookStepExecution($execution_id: ID!, \
         $execution_start: DateTime!, $data_instance_id: ID!, $playbook_id: ID!, \
         $previous_step_id: ID!, $step_id: ID!, $previous_bundle: String!, $bundle: String!) { \
         playbookStepExecution(execution_id: $execution_id, \
         execution_start: $execution_start, data_instance_id: $data_instance_id, \
         playbook_id: $playbook_id, previous_step_id: $previous_step_id, step_id: $step_id, \
         previous_bundle: $previous_bundle, bundle: $bundle) }";

    /// pycti's `ConnectorType`, the two this connector can be.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum ConnectorType {
        /// Enriches observables on request (the default mode).
        #[default]
        InternalEnrichment,
        /// Imports the DomainTools feeds on a schedule.
        ExternalImport,
    }

    impl ConnectorType {
        /// The name the platform knows it by.
        pub fn as_str(self) -> &'static str {
            match self {
                ConnectorType::InternalEnrichment => "INTERNAL_ENRICHMENT",
                ConnectorType::ExternalImport => "EXTERNAL_IMPORT",
            }
        }
    }

    /// When a scheduled connector last ran and runs next (pycti's `ConnectorInfo`), as
    /// `%Y-%m-%dT%H:%M:%SZ`.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Runs {
        /// The end of the last run.
        pub last: Option<String>,
        /// The start of the next one.
        pub next: Option<String>,
    }

    /// What the connector registers, before the release decides which fields go out.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Registration {
        /// Enrichment or import.
        pub kind: ConnectorType,
        /// The connector's id.
        pub id: String,
        /// Its name.
        pub name: String,
        /// The entity types it enriches.
        pub scope: Vec<String>,
        /// Enrich without being asked.
        pub auto: bool,
        /// Offered in playbooks.
        pub playbook_compatible: bool,
        /// Where the worker posts the work, when listening over HTTP.
        pub listen_callback_uri: Option<String>,
    }

    /// `about { version }`.
    pub fn about() -> Request {
        Request {
            query: ABOUT,
            variables: json!({}),
        }
    }

    /// `registerConnector`, with the fields `release` accepts.
    pub fn register(release: Release, registration: &Registration) -> Request {
        let mut input = json!({
            "id": registration.id,
            "name": registration.name,
            "type": registration.kind.as_str(),
            "scope": registration.scope,
            "auto": registration.auto,
            "only_contextual": false,
            "playbook_compatible": registration.playbook_compatible,
        });
        if release.has_enrichment_resolution() {
            // pycti's defaults: the platform sends no STIX in the message, the connector reads
            // the entity itself.
            input["auto_update"] = json!(false);
            input["enrichment_resolution"] = json!("none");
        }
        if release.has_listen_callback() {
            input["listen_callback_uri"] = json!(registration.listen_callback_uri);
        }
        Request {
            query: if release.has_jwks() {
                REGISTER_WITH_JWKS
            } else {
                REGISTER
            },
            variables: json!({ "input": input }),
        }
    }

    /// `pingConnector`, with pycti's `connectorInfo` where the release takes it.
    pub fn ping(release: Release, connector_id: &str, state: Option<&str>) -> Request {
        ping_with_runs(release, connector_id, state, &Runs::default())
    }

    /// `pingConnector` of a scheduled connector: its last and next runs go in `connectorInfo`.
    pub fn ping_with_runs(
        release: Release,
        connector_id: &str,
        state: Option<&str>,
        runs: &Runs,
    ) -> Request {
        let state = state.unwrap_or("null");
        if release.has_connector_info() {
            // pycti's ConnectorInfo for a connector that does not buffer.
            let info = json!({
                "run_and_terminate": false,
                "buffering": false,
                "queue_threshold": 500.0,
                "queue_messages_size": 0.0,
                "next_run_datetime": runs.next,
                "last_run_datetime": runs.last,
            });
            Request {
                query: PING_WITH_INFO,
                variables: json!({ "id": connector_id, "state": state, "connectorInfo": info }),
            }
        } else {
            Request {
                query: PING,
                variables: json!({ "id": connector_id, "state": state }),
            }
        }
    }

    /// `workAdd`: a new work of this connector, shown under `friendly_name`.
    pub fn work_add(connector_id: &str, friendly_name: &str) -> Request {
        Request {
            query: WORK_ADD,
            variables: json!({ "connectorId": connector_id, "friendlyName": friendly_name }),
        }
    }

    /// `workEdit { toReceived }`.
    pub fn work_received(work_id: &str, message: &str) -> Request {
        Request {
            query: TO_RECEIVED,
            variables: json!({ "id": work_id, "message": message }),
        }
    }

    /// `workEdit { toProcessed }`.
    pub fn work_processed(work_id: &str, message: &str, in_error: bool) -> Request {
        Request {
            query: TO_PROCESSED,
            variables: json!({ "id": work_id, "message": message, "inError": in_error }),
        }
    }

    /// `workEdit { addExpectations }`: the bundles the worker will report on.
    pub fn add_expectations(work_id: &str, expectations: usize) -> Request {
        Request {
            query: ADD_EXPECTATIONS,
            variables: json!({ "id": work_id, "expectations": expectations }),
        }
    }

    /// `stixCyberObservable(id)`.
    pub fn read_observable(id: &str) -> Request {
        Request {
            query: READ_OBSERVABLE,
            variables: json!({ "id": id }),
        }
    }

    /// `stixBundlePush`, counted against the work where the release can.
    pub fn push_bundle(
        release: Release,
        connector_id: &str,
        bundle: &str,
        work_id: Option<&str>,
    ) -> Request {
        if release.has_bundle_push_work_id() {
            Request {
                query: PUSH_WITH_WORK,
                variables: json!({ "connectorId": connector_id, "bundle": bundle, "work_id": work_id }),
            }
        } else {
            Request {
                query: PUSH,
                variables: json!({ "connectorId": connector_id, "bundle": bundle }),
            }
        }
    }

    /// A playbook step's context, from the message.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct PlaybookStep<'a> {
        /// `internal.playbook.execution_id`.
        pub execution_id: &'a str,
        /// `internal.playbook.event_id`.
        pub event_id: &'a str,
        /// When the connector started the step (`2024-01-15T10:30:00+00:00`, pycti's form).
        pub execution_start: &'a str,
        /// `internal.playbook.data_instance_id`.
        pub data_instance_id: &'a str,
        /// `internal.playbook.playbook_id`.
        pub playbook_id: &'a str,
        /// `internal.playbook.previous_step_id`.
        pub previous_step_id: &'a str,
        /// `internal.playbook.step_id`.
        pub step_id: &'a str,
        /// The bundle the step received (`event.bundle`), as JSON text.
        pub previous_bundle: &'a str,
    }

    /// `playbookStepExecution`: the step's bundle goes on to the playbook's next step.
    pub fn playbook_step(release: Release, step: &PlaybookStep<'_>, bundle: &str) -> Request {
        let mut variables = json!({
            "execution_id": step.execution_id,
            "execution_start": step.execution_start,
            "data_instance_id": step.data_instance_id,
            "playbook_id": step.playbook_id,
            "previous_step_id": step.previous_step_id,
            "step_id": step.step_id,
            "previous_bundle": step.previous_bundle,
            "bundle": bundle,
        });
        if release.has_playbook_event_id() {
            variables["event_id"] = json!(step.event_id);
            Request {
                query: PLAYBOOK_STEP,
                variables,
            }
        } else {
            Request {
                query: PLAYBOOK_STEP_WITHOUT_EVENT,
                variables,
            }
        }
    }
}

/// A failed platform call. No variant holds the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// The platform could not be reached, or the connection broke.
    #[error("OpenCTI could not be reached ({0})")]
    Transport(String),
    /// A non-2xx HTTP status.
    #[error("OpenCTI answered HTTP {status}: {body}")]
    Status {
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// GraphQL `errors`.
    #[error("OpenCTI refused the request: {0}")]
    GraphQl(String),
    /// An answer of an unexpected shape.
    #[error("OpenCTI sent an answer that could not be read ({0})")]
    Decode(String),
}

impl PlatformError {
    /// Whether trying again later may help (the platform starting or restarting).
    pub fn is_transient(&self) -> bool {
        match self {
            PlatformError::Transport(_) => true,
            PlatformError::Status { status, .. } => *status >= 500 || *status == 429,
            PlatformError::GraphQl(_) | PlatformError::Decode(_) => false,
        }
    }
}

/// The broker connection registration hands out (pycti's `config.connection`).
#[derive(Clone, Deserialize)]
pub struct BrokerConnection {
    /// Host name.
    #[serde(default)]
    pub host: String,
    /// Virtual host.
    #[serde(default)]
    pub vhost: String,
    /// AMQPS.
    #[serde(default)]
    pub use_ssl: bool,
    /// Port.
    #[serde(default)]
    pub port: u16,
    /// User.
    #[serde(default)]
    pub user: String,
    /// Password.
    #[serde(default = "no_secret", deserialize_with = "secret_text")]
    pub pass: Secret,
}

impl Default for BrokerConnection {
    fn default() -> Self {
        Self {
            host: String::new(),
            vhost: String::new(),
            use_ssl: false,
            port: 0,
            user: String::new(),
            pass: no_secret(),
        }
    }
}

fn no_secret() -> Secret {
    Secret::from(String::new())
}

fn secret_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    Ok(Secret::from(text.unwrap_or_default()))
}

impl fmt::Debug for BrokerConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerConnection")
            .field("host", &self.host)
            .field("vhost", &self.vhost)
            .field("use_ssl", &self.use_ssl)
            .field("port", &self.port)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The queues registration hands out.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct QueueConfig {
    /// The broker.
    pub connection: BrokerConnection,
    /// The queue the platform puts this connector's work on.
    pub listen: String,
    /// Its routing key.
    pub listen_routing: String,
    /// Its exchange.
    pub listen_exchange: String,
    /// The queue the workers import bundles from.
    pub push: String,
    /// Its routing key.
    pub push_routing: String,
    /// Its exchange.
    pub push_exchange: String,
}

/// What registration returns that the connector uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Registered {
    /// The connector's id as the platform knows it.
    #[serde(default)]
    pub id: String,
    /// The state kept by the platform (a JSON string), sent back with each ping.
    #[serde(default)]
    pub connector_state: Option<String>,
    /// The platform user the connector acts as.
    #[serde(default)]
    pub connector_user_id: Option<String>,
    /// The keys of the worker's callback JWT (7.x): a JSON text of a JWK set.
    #[serde(default)]
    pub jwks: Option<Value>,
    /// The broker and queues.
    #[serde(default)]
    pub config: QueueConfig,
}

/// A marking of an observable, as the platform describes it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Marking {
    /// `marking-definition--…`
    pub standard_id: Option<String>,
    /// "TLP", "PAP", or an organization's own type.
    pub definition_type: Option<String>,
    /// "TLP:AMBER", …
    pub definition: Option<String>,
}

/// An observable read from the platform.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PlatformObservable {
    /// Internal id.
    pub id: Option<String>,
    /// STIX id.
    pub standard_id: Option<String>,
    /// "Domain-Name", "IPv4-Addr", …
    pub entity_type: Option<String>,
    /// The value.
    pub observable_value: Option<String>,
    /// Its markings.
    #[serde(rename = "objectMarking")]
    pub object_marking: Option<Vec<Marking>>,
}

/// A GraphQL client for one platform, with the connector's token.
#[derive(Clone)]
pub struct Platform {
    http: reqwest::Client,
    endpoint: String,
    token: Secret,
    /// The platform's release, once known; documents are chosen by it.
    pub release: Release,
    /// Draft the current work belongs to: pycti sends it as `opencti-draft-id`, so the
    /// results of an enrichment started in a draft land in that draft.
    draft_id: Option<String>,
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Platform")
            .field("endpoint", &self.endpoint)
            .field("release", &self.release)
            .field("draft_id", &self.draft_id)
            .finish_non_exhaustive()
    }
}

impl Platform {
    /// A client for the platform at `base_url` (no trailing slash), release unknown (6.0.0's
    /// documents) until [`Platform::learn_release`].
    /// An `https://` platform may chain to the built-in roots or to `roots`.
    pub fn new(
        base_url: &str,
        token: Secret,
        timeout: Duration,
        roots: &domaintools::ExtraRoots,
    ) -> Result<Self, PlatformError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("misp-domaintools/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10));
        for root in roots.reqwest_certificates() {
            builder = builder.add_root_certificate(root);
        }
        let http = builder
            .build()
            .map_err(|e| PlatformError::Transport(e.without_url().to_string()))?;
        Ok(Self {
            http,
            endpoint: format!("{base_url}/graphql"),
            token,
            release: Release { version: (6, 0, 0) },
            draft_id: None,
        })
    }

    /// The same client, with every call made inside `draft_id` (none when empty).
    pub fn in_draft(&self, draft_id: Option<&str>) -> Self {
        let mut platform = self.clone();
        platform.draft_id = draft_id
            .filter(|draft| !draft.trim().is_empty())
            .map(str::to_owned);
        platform
    }

    /// Sends one request; returns its `data`.
    async fn send(&self, request: requests::Request) -> Result<Value, PlatformError> {
        let mut builder = self
            .http
            .post(&self.endpoint)
            .bearer_auth(self.token.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json!({ "query": request.query, "variables": request.variables }).to_string());
        if let Some(draft) = &self.draft_id {
            builder = builder.header("opencti-draft-id", draft);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| PlatformError::Transport(domaintools::error::reqwest_chain(e)))?;
        let status = response.status();
        // A wrong URL, or a proxy in between, may stream without end: read at most this much.
        let mut response = response;
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| PlatformError::Transport(domaintools::error::reqwest_chain(e)))?
        {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(PlatformError::Decode(format!(
                    "the answer is larger than {} MiB",
                    MAX_ANSWER_BYTES / 1024 / 1024
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(PlatformError::Status {
                status: status.as_u16(),
                body: shorten(&String::from_utf8_lossy(&bytes)),
            });
        }
        let mut body: Value = serde_json::from_slice(&bytes)
            .map_err(|e| PlatformError::Decode(format!("not JSON: {e}")))?;
        if let Some(errors) = body.get("errors").and_then(Value::as_array) {
            if !errors.is_empty() {
                let messages: Vec<String> = errors
                    .iter()
                    .map(|error| {
                        error
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("unknown error")
                            .to_owned()
                    })
                    .collect();
                return Err(PlatformError::GraphQl(shorten(&messages.join("; "))));
            }
        }
        match body.get_mut("data").map(Value::take) {
            Some(data) if data.is_object() => Ok(data),
            _ => Err(PlatformError::Decode("no data".to_owned())),
        }
    }

    /// `about { version }`: the release, which then chooses every later document.
    pub async fn learn_release(&mut self) -> Result<Release, PlatformError> {
        let data = self.send(requests::about()).await?;
        let text = data
            .pointer("/about/version")
            .and_then(Value::as_str)
            .ok_or_else(|| PlatformError::Decode("about: no version".to_owned()))?;
        let release = Release::parse(text)
            .ok_or_else(|| PlatformError::Decode(format!("about: version {text:?}")))?;
        self.release = release;
        Ok(release)
    }

    /// `registerConnector`.
    pub async fn register(
        &self,
        registration: &requests::Registration,
    ) -> Result<Registered, PlatformError> {
        let data = self
            .send(requests::register(self.release, registration))
            .await?;
        let registered = data
            .get("registerConnector")
            .cloned()
            .unwrap_or(Value::Null);
        serde_json::from_value(registered)
            .map_err(|e| PlatformError::Decode(format!("registerConnector: {e}")))
    }

    /// `pingConnector`; returns the platform's state (`None` when it has none, or reset it).
    pub async fn ping(
        &self,
        connector_id: &str,
        state: Option<&str>,
        runs: &requests::Runs,
    ) -> Result<Option<String>, PlatformError> {
        let data = self
            .send(requests::ping_with_runs(
                self.release,
                connector_id,
                state,
                runs,
            ))
            .await?;
        Ok(data
            .pointer("/pingConnector/connector_state")
            .and_then(Value::as_str)
            .filter(|state| !state.is_empty())
            .map(str::to_owned))
    }

    /// `workAdd`: the new work's id.
    pub async fn work_add(
        &self,
        connector_id: &str,
        friendly_name: &str,
    ) -> Result<String, PlatformError> {
        let data = self
            .send(requests::work_add(connector_id, friendly_name))
            .await?;
        data.pointer("/workAdd/id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| PlatformError::Decode("workAdd: no id".to_owned()))
    }

    /// `workEdit { toReceived }`.
    pub async fn work_received(&self, work_id: &str, message: &str) -> Result<(), PlatformError> {
        self.send(requests::work_received(work_id, message))
            .await
            .map(drop)
    }

    /// `workEdit { toProcessed }`.
    pub async fn work_processed(
        &self,
        work_id: &str,
        message: &str,
        in_error: bool,
    ) -> Result<(), PlatformError> {
        self.send(requests::work_processed(work_id, message, in_error))
            .await
            .map(drop)
    }

    /// `workEdit { addExpectations }`.
    pub async fn add_expectations(
        &self,
        work_id: &str,
        expectations: usize,
    ) -> Result<(), PlatformError> {
        self.send(requests::add_expectations(work_id, expectations))
            .await
            .map(drop)
    }

    /// `stixCyberObservable(id)`: `None` when the platform returns nothing (unknown, or not
    /// visible to the connector's user).
    pub async fn read_observable(
        &self,
        id: &str,
    ) -> Result<Option<PlatformObservable>, PlatformError> {
        let data = self.send(requests::read_observable(id)).await?;
        match data.get("stixCyberObservable") {
            None | Some(Value::Null) => Ok(None),
            Some(observable) => serde_json::from_value(observable.clone())
                .map(Some)
                .map_err(|e| PlatformError::Decode(format!("stixCyberObservable: {e}"))),
        }
    }

    /// `stixBundlePush`: the platform queues the bundle for its workers and counts it against
    /// the work, as pycti does with `CONNECTOR_QUEUE_PROTOCOL=api`.
    pub async fn push_bundle(
        &self,
        connector_id: &str,
        bundle: &str,
        work_id: Option<&str>,
    ) -> Result<(), PlatformError> {
        self.send(requests::push_bundle(
            self.release,
            connector_id,
            bundle,
            work_id,
        ))
        .await
        .map(drop)
    }

    /// `playbookStepExecution`.
    pub async fn playbook_step(
        &self,
        step: &requests::PlaybookStep<'_>,
        bundle: &str,
    ) -> Result<(), PlatformError> {
        self.send(requests::playbook_step(self.release, step, bundle))
            .await
            .map(drop)
    }
}

fn shorten(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_ERROR_LEN) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_endless_answer_is_cut_at_the_cap() {
        // 1 MiB chunks past the cap, never a complete JSON document.
        let chunk = axum::body::Bytes::from(vec![b' '; 1024 * 1024]);
        let app = axum::Router::new().fallback(move || {
            let chunk = chunk.clone();
            async move {
                let chunks = (0..MAX_ANSWER_BYTES / chunk.len() + 8)
                    .map(move |_| Ok::<_, std::convert::Infallible>(chunk.clone()));
                axum::body::Body::from_stream(futures_util::stream::iter(chunks))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut platform = Platform::new(
            &url,
            crate::config::Secret::from("token"),
            Duration::from_secs(30),
            &domaintools::ExtraRoots::none(),
        )
        .unwrap();
        match platform.learn_release().await {
            Err(PlatformError::Decode(text)) => assert!(text.contains("larger than"), "{text}"),
            other => panic!("expected the cap, got {other:?}"),
        }
    }
}
