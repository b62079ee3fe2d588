//! The OpenCTI platform's GraphQL API, as much of it as an internal-enrichment connector
//! needs: registration, pings, work reports, reading the observable and pushing a bundle. The
//! queries are pycti's (client-python), trimmed to the fields used: the registration asks for
//! no RabbitMQ credentials, since this connector never connects to RabbitMQ.

use domaintools::ExposeSecret;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::Secret;

const REGISTER: &str = "mutation RegisterConnector($input: RegisterConnectorInput) { \
     registerConnector(input: $input) { id connector_state connector_user_id } }";
const PING: &str =
    "mutation PingConnector($id: ID!, $state: String, $connectorInfo: ConnectorInfoInput) { \
     pingConnector(id: $id, state: $state, connectorInfo: $connectorInfo) { id connector_state } }";
const TO_RECEIVED: &str = "mutation workToReceived($id: ID!, $message: String) { \
     workEdit(id: $id) { toReceived(message: $message) } }";
const TO_PROCESSED: &str =
    "mutation workToProcessed($id: ID!, $message: String, $inError: Boolean) { \
     workEdit(id: $id) { toProcessed(message: $message, inError: $inError) } }";
const READ_OBSERVABLE: &str = "query StixCyberObservable($id: String!) { \
     stixCyberObservable(id: $id) { id standard_id entity_type observable_value \
     objectMarking { standard_id definition_type definition } } }";
const PUSH: &str =
    "mutation StixBundlePush($connectorId: String!, $bundle: String!, $work_id: String) { \
     stixBundlePush(connectorId: $connectorId, bundle: $bundle, work_id: $work_id) }";

/// The longest error text kept from a platform answer.
const MAX_ERROR_LEN: usize = 300;

/// A failed platform call. No variant holds the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PlatformError {
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
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            PlatformError::Transport(_) => true,
            PlatformError::Status { status, .. } => *status >= 500 || *status == 429,
            PlatformError::GraphQl(_) | PlatformError::Decode(_) => false,
        }
    }
}

/// What registration returns that the connector uses.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub(crate) struct Registered {
    /// The connector's id as the platform knows it.
    #[serde(default)]
    pub id: String,
    /// The state kept by the platform (a JSON string), sent back with each ping.
    #[serde(default)]
    pub connector_state: Option<String>,
    /// The platform user the connector acts as.
    #[serde(default)]
    pub connector_user_id: Option<String>,
}

/// A marking of an observable, as the platform describes it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub(crate) struct Marking {
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
pub(crate) struct PlatformObservable {
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
    pub(crate) object_marking: Option<Vec<Marking>>,
}

/// A GraphQL client for one platform, with the connector's token.
#[derive(Clone)]
pub(crate) struct Platform {
    http: reqwest::Client,
    endpoint: String,
    token: Secret,
    /// Draft the current work belongs to: pycti sends it as `opencti-draft-id`, so the
    /// results of an enrichment started in a draft land in that draft.
    draft_id: Option<String>,
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Platform")
            .field("endpoint", &self.endpoint)
            .field("draft_id", &self.draft_id)
            .finish_non_exhaustive()
    }
}

impl Platform {
    /// A client for the platform at `base_url` (no trailing slash).
    pub fn new(base_url: &str, token: Secret, timeout: Duration) -> Result<Self, PlatformError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("misp-domaintools/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| PlatformError::Transport(e.without_url().to_string()))?;
        Ok(Self {
            http,
            endpoint: format!("{base_url}/graphql"),
            token,
            draft_id: None,
        })
    }

    /// The same client, with every call made inside `draft_id` (none when empty).
    pub(crate) fn in_draft(&self, draft_id: Option<&str>) -> Self {
        let mut platform = self.clone();
        platform.draft_id = draft_id
            .filter(|draft| !draft.trim().is_empty())
            .map(str::to_owned);
        platform
    }

    /// Sends one operation; returns its `data`.
    async fn query(&self, query: &str, variables: Value) -> Result<Value, PlatformError> {
        let mut request = self
            .http
            .post(&self.endpoint)
            .bearer_auth(self.token.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json!({ "query": query, "variables": variables }).to_string());
        if let Some(draft) = &self.draft_id {
            request = request.header("opencti-draft-id", draft);
        }
        let response = request
            .send()
            .await
            .map_err(|e| PlatformError::Transport(domaintools::error::reqwest_chain(e)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| PlatformError::Transport(domaintools::error::reqwest_chain(e)))?;
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

    /// `registerConnector` with pycti's input fields.
    pub async fn register(&self, input: Value) -> Result<Registered, PlatformError> {
        let data = self.query(REGISTER, json!({ "input": input })).await?;
        let registered = data
            .get("registerConnector")
            .cloned()
            .unwrap_or(Value::Null);
        serde_json::from_value(registered)
            .map_err(|e| PlatformError::Decode(format!("registerConnector: {e}")))
    }

    /// `pingConnector`; returns the platform's state.
    pub async fn ping(
        &self,
        connector_id: &str,
        state: Option<&str>,
    ) -> Result<Option<String>, PlatformError> {
        // pycti's ConnectorInfo for a connector that neither buffers nor schedules runs.
        let info = json!({
            "run_and_terminate": false,
            "buffering": false,
            "queue_threshold": 500.0,
            "queue_messages_size": 0.0,
            "next_run_datetime": null,
            "last_run_datetime": null,
        });
        let data = self
            .query(
                PING,
                json!({ "id": connector_id, "state": state.unwrap_or("null"), "connectorInfo": info }),
            )
            .await?;
        Ok(data
            .pointer("/pingConnector/connector_state")
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    /// `workEdit { toReceived }`.
    pub(crate) async fn work_received(
        &self,
        work_id: &str,
        message: &str,
    ) -> Result<(), PlatformError> {
        self.query(TO_RECEIVED, json!({ "id": work_id, "message": message }))
            .await
            .map(drop)
    }

    /// `workEdit { toProcessed }`.
    pub(crate) async fn work_processed(
        &self,
        work_id: &str,
        message: &str,
        in_error: bool,
    ) -> Result<(), PlatformError> {
        self.query(
            TO_PROCESSED,
            json!({ "id": work_id, "message": message, "inError": in_error }),
        )
        .await
        .map(drop)
    }

    /// `stixCyberObservable(id)`: `None` when the platform returns nothing (unknown, or not
    /// visible to the connector's user).
    pub(crate) async fn read_observable(
        &self,
        id: &str,
    ) -> Result<Option<PlatformObservable>, PlatformError> {
        let data = self.query(READ_OBSERVABLE, json!({ "id": id })).await?;
        match data.get("stixCyberObservable") {
            None | Some(Value::Null) => Ok(None),
            Some(observable) => serde_json::from_value(observable.clone())
                .map(Some)
                .map_err(|e| PlatformError::Decode(format!("stixCyberObservable: {e}"))),
        }
    }

    /// `stixBundlePush`: the platform queues the bundle for its workers and counts it against
    /// the work, as pycti does with `CONNECTOR_QUEUE_PROTOCOL=api`.
    pub(crate) async fn push_bundle(
        &self,
        connector_id: &str,
        bundle: &str,
        work_id: Option<&str>,
    ) -> Result<(), PlatformError> {
        self.query(
            PUSH,
            json!({ "connectorId": connector_id, "bundle": bundle, "work_id": work_id }),
        )
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
