//! RabbitMQ, as pycti uses it (`CONNECTOR_LISTEN_PROTOCOL=AMQP`, `CONNECTOR_QUEUE_PROTOCOL=amqp`):
//! the work arrives on the connector's listen queue, the split bundles go to its push exchange,
//! with the broker and queue names from registration and pycti's `MQ_*` overrides.
//!
//! One difference from pycti, on purpose: pycti acknowledges a message before it processes it,
//! so a stop mid-work loses that work. Here a message is acknowledged once its work is done and
//! reported; a stop (or a broker restart) before that leaves it unacknowledged, and the broker
//! gives it again to the next consumer. The prefetch (the connector's concurrency) bounds the
//! messages held. A message that is not a work message is rejected without requeue, so it
//! cannot come back forever.

use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::json;

use super::graphql::BrokerConnection;
use crate::telemetry::logged;
use domaintools::ExposeSecret as _;

/// pycti's heartbeat.
const HEARTBEAT_S: u16 = 10;
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the broker may take to confirm one published bundle.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// Times a refused (nacked) bundle is published again, 10 s apart as pycti does.
const PUBLISH_ATTEMPTS: u32 = 6;

/// A failed broker operation; it never holds the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// Connecting, or the connection broke.
    #[error("RabbitMQ at {address}: {reason}")]
    Connection {
        /// host:port/vhost.
        address: String,
        /// What went wrong.
        reason: String,
    },
    /// The broker kept refusing a bundle.
    #[error("RabbitMQ refused the bundle {attempts} times")]
    Refused {
        /// How many times it was published.
        attempts: u32,
    },
}

/// Where and how to reach the broker: registration's connection with `MQ_*` applied.
#[derive(Clone)]
pub struct Broker {
    connection: BrokerConnection,
    /// For `amqps`: every root trusted (built-in and `--ca-file`) as PEM, since lapin adds
    /// this chain to its bundled roots only. Built once: the system's are read from disk.
    roots_pem: Option<String>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// The broker of `connection`; with TLS, its certificate may chain to the built-in roots
    /// or to `roots`.
    pub fn new(connection: BrokerConnection, roots: &domaintools::ExtraRoots) -> Self {
        let roots_pem = connection.use_ssl.then(|| roots.bundle_pem());
        Self {
            connection,
            roots_pem,
        }
    }

    /// host:port/vhost, for messages.
    pub fn address(&self) -> String {
        format!(
            "{}:{}/{}",
            self.connection.host, self.connection.port, self.connection.vhost
        )
    }

    fn error(&self, reason: impl std::fmt::Display) -> BrokerError {
        BrokerError::Connection {
            address: self.address(),
            reason: reason.to_string(),
        }
    }

    /// A new connection.
    pub async fn connect(&self, name: &str) -> Result<Connection, BrokerError> {
        let uri = AMQPUri {
            scheme: if self.connection.use_ssl {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            },
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: self.connection.user.clone(),
                    password: self.connection.pass.expose_secret().to_owned(),
                },
                host: self.connection.host.clone(),
                port: self.connection.port,
            },
            vhost: self.connection.vhost.clone(),
            query: AMQPQueryString {
                heartbeat: Some(HEARTBEAT_S),
                connection_timeout: Some(CONNECT_TIMEOUT.as_millis() as u64),
                ..AMQPQueryString::default()
            },
        };
        let properties =
            ConnectionProperties::default().with_connection_name(name.to_owned().into());
        let tls = lapin::tcp::OwnedTLSConfig {
            identity: None,
            cert_chain: self.roots_pem.clone(),
        };
        let runtime = lapin::runtime::default_runtime().map_err(|e| self.error(e))?;
        tokio::time::timeout(
            CONNECT_TIMEOUT,
            lapin::Connect::connect_with_config(uri, properties, tls, runtime),
        )
        .await
        .map_err(|_| self.error("no answer in time"))?
        .map_err(|e| self.error(e))
    }
}

/// Where bundles go, from registration.
#[derive(Debug, Clone)]
pub struct PushTarget {
    /// `config.push_exchange`.
    pub exchange: String,
    /// `config.push_routing`.
    pub routing: String,
}

/// One bundle's message on the push queue: pycti's envelope (`_send_bundle`), which the
/// platform's worker reads (`bundle_type`, `content` in base64, `work_id`, `applicant_id`,
/// `draft_id`, `update`, `entities_types`).
pub fn push_envelope(
    bundle: &str,
    sequence: usize,
    applicant_id: Option<&str>,
    draft_id: Option<&str>,
    work_id: Option<&str>,
) -> Vec<u8> {
    let mut message = json!({
        "bundle_type": "QUEUE_BUNDLE",
        "applicant_id": applicant_id,
        "action_sequence": sequence,
        "entities_types": [],
        "content": base64::engine::general_purpose::STANDARD.encode(bundle),
        "update": false,
        "draft_id": draft_id.unwrap_or_default(),
        "no_split": false,
    });
    if let Some(work_id) = work_id {
        message["work_id"] = json!(work_id);
    }
    message.to_string().into_bytes()
}

/// Publishes `messages` in order, each confirmed by the broker, on a connection of their own
/// (as pycti does for each bundle sent).
pub async fn publish(
    broker: &Broker,
    target: &PushTarget,
    messages: &[Vec<u8>],
) -> Result<(), BrokerError> {
    let connection = broker.connect("misp-domaintools push").await?;
    let result = publish_on(broker, &connection, target, messages).await;
    let _ = connection.close(200, "done".into()).await;
    result
}

async fn publish_on(
    broker: &Broker,
    connection: &Connection,
    target: &PushTarget,
    messages: &[Vec<u8>],
) -> Result<(), BrokerError> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| broker.error(e))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| broker.error(e))?;
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_encoding("utf-8".into());
    for message in messages {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let confirm = channel
                .basic_publish(
                    target.exchange.as_str().into(),
                    target.routing.as_str().into(),
                    BasicPublishOptions::default(),
                    message,
                    properties.clone(),
                )
                .await
                .map_err(|e| broker.error(e))?;
            let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
                .await
                .map_err(|_| broker.error("no publish confirmation in time"))?
                .map_err(|e| broker.error(e))?;
            if confirmation.is_ack() {
                break;
            }
            if attempts >= PUBLISH_ATTEMPTS {
                return Err(BrokerError::Refused { attempts });
            }
            tracing::info!(
                attempts,
                "RabbitMQ refused a bundle; sending it again in 10 s"
            );
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    }
    Ok(())
}

/// A message taken from the listen queue, acknowledged or rejected once handled.
pub struct Taken {
    /// The body.
    pub data: Vec<u8>,
    acker: lapin::Acker,
}

impl std::fmt::Debug for Taken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Taken")
            .field("bytes", &self.data.len())
            .finish_non_exhaustive()
    }
}

impl Taken {
    /// Done with it: the broker forgets it.
    pub async fn ack(&self) {
        if let Err(error) = self.acker.ack(BasicAckOptions::default()).await {
            // The connection went away: the broker gives the message again, and the work
            // (ids are deterministic) is done a second time rather than lost.
            tracing::warn!(error = %logged(&error), "cannot acknowledge a message; the broker will send it again");
        }
    }

    /// Not a message this connector can ever handle: dropped, never requeued.
    pub async fn reject(&self) {
        if let Err(error) = self
            .acker
            .reject(BasicRejectOptions { requeue: false })
            .await
        {
            tracing::warn!(error = %logged(&error), "cannot reject a message");
        }
    }
}

/// Consumes `queue` until `stop`, handing each message to `handle` (at most `prefetch` at a
/// time), reconnecting while the broker is away. Returns once `stop` fired and the messages
/// under way are finished or `grace` ran out; unfinished messages stay unacknowledged and the
/// broker requeues them when the connection closes.
pub async fn consume<F, Fut>(
    broker: &Broker,
    queue: &str,
    prefetch: u16,
    grace: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    handle: F,
) where
    F: Fn(Taken) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut delay = Duration::from_secs(1);
    let mut failing = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let session = tokio::select! {
            session = open_consumer(broker, queue, prefetch) => session,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        let (connection, channel, mut consumer) = match session {
            Ok(session) => session,
            Err(error) => {
                if !failing {
                    tracing::warn!(error = %logged(&error), "cannot consume the listen queue; trying again");
                }
                failing = true;
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
                delay = (delay * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        if failing {
            tracing::info!(broker = %logged(broker.address()), "consuming the listen queue again");
        } else {
            tracing::info!(
                broker = %logged(broker.address()),
                queue = %logged(queue),
                "consuming the listen queue"
            );
        }
        failing = false;
        delay = Duration::from_secs(1);
        let mut jobs = tokio::task::JoinSet::new();
        let stopped = loop {
            tokio::select! {
                delivery = consumer.next() => match delivery {
                    Some(Ok(delivery)) => {
                        let taken = Taken { data: delivery.data, acker: delivery.acker };
                        jobs.spawn(handle(taken));
                    }
                    Some(Err(error)) => {
                        tracing::warn!(error = %logged(&error), "lost the RabbitMQ connection; reconnecting");
                        break false;
                    }
                    None => {
                        tracing::warn!("RabbitMQ ended the consumer; reconnecting");
                        break false;
                    }
                },
                Some(_) = jobs.join_next(), if !jobs.is_empty() => {}
                _ = stop.wait_for(|stopped| *stopped) => break true,
            }
        };
        if stopped {
            // No more deliveries; what is under way may finish and be acknowledged.
            let _ = channel
                .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                .await;
            let drained =
                tokio::time::timeout(grace, async { while jobs.join_next().await.is_some() {} })
                    .await;
            if drained.is_err() {
                tracing::warn!(
                    unfinished = jobs.len(),
                    "stopping with work under way; RabbitMQ requeues it for the next start"
                );
                jobs.abort_all();
            }
            let _ = connection.close(200, "stopping".into()).await;
            return;
        }
        // The connection is gone: the broker requeued every unacknowledged message, so the
        // work under way would be done twice; let it finish (its reports still reach the
        // platform) but its acknowledgement will fail harmlessly.
        drop(consumer);
        tokio::spawn(async move { while jobs.join_next().await.is_some() {} });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

async fn open_consumer(
    broker: &Broker,
    queue: &str,
    prefetch: u16,
) -> Result<(Connection, lapin::Channel, lapin::Consumer), BrokerError> {
    let connection = broker.connect("misp-domaintools listen").await?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| broker.error(e))?;
    channel
        .basic_qos(prefetch.max(1), BasicQosOptions::default())
        .await
        .map_err(|e| broker.error(e))?;
    let consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| broker.error(e))?;
    Ok((connection, channel, consumer))
}
