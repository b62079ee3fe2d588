//! OpenCTI connector mode (`misp-domaintools opencti`): the DomainTools enrichment of
//! Domain-Name and IPv4-Addr observables, as STIX 2.1 bundles, for OpenCTI
//! (INTERNAL_ENRICHMENT), or the import of the Real-Time Threat Feeds (EXTERNAL_IMPORT).
//!
//! It speaks to the platform as pycti (client-python) does: GraphQL for registration, pings,
//! work reports and reads; work from its RabbitMQ listen queue (`CONNECTOR_LISTEN_PROTOCOL=AMQP`,
//! the default) or posted by the platform's worker to a callback (`API`); bundles split onto
//! the push queue (`CONNECTOR_QUEUE_PROTOCOL=amqp`, the default) or sent with `stixBundlePush`
//! (`api`); in a playbook, the step's bundle back with `playbookStepExecution`. The platform's
//! release (`about { version }`) decides which form of each request it gets.
//!
//! # Layout
//! - [`settings`]: environment, command line and config.yml, resolved and checked.
//! - [`graphql`]: the platform's releases and calls.
//! - [`connector`]: start, registration, pings, the callback, the stop.
//! - [`amqp`]: the listen queue and the push queue.
//! - [`auth`]: who may post to the callback (OpenCTI 7's JWT, the connector's token).
//! - [`message`]: the work message.
//! - [`work`]: one work, from the message to its report.
//! - [`import`]: the feeds import (`CONNECTOR_TYPE=EXTERNAL_IMPORT`): sealed buckets as
//!   bundles, one work per run, the state that keeps a restart from sending them again.
//! - [`split`]: pycti's bundle splitter.

pub mod amqp;
pub mod auth;
pub mod connector;
pub mod graphql;
pub mod import;
pub mod message;
pub mod settings;
pub mod split;
pub mod work;

pub use connector::{run, run_import};
pub use settings::ConnectorSettings;
