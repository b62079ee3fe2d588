//! OpenCTI internal-enrichment connector mode (`misp-domaintools opencti`): the DomainTools
//! enrichment of Domain-Name and IPv4-Addr observables, as STIX 2.1 bundles, for OpenCTI.
//!
//! The connector speaks only HTTP: it registers over GraphQL with a listen callback URI (pycti's
//! `CONNECTOR_LISTEN_PROTOCOL=API`), the platform's worker posts each enrichment request to
//! that callback, and bundles go back through the `stixBundlePush` mutation (pycti's
//! `CONNECTOR_QUEUE_PROTOCOL=api`). It never connects to RabbitMQ.
//!
//! # Layout
//! - [`settings`]: environment, command line and config.yml, resolved and checked.
//! - [`graphql`]: the platform calls (register, ping, work reports, read, push).
//! - [`connector`]: the callback, the jobs, the pings.

pub mod connector;
pub mod graphql;
pub mod settings;

pub use connector::run;
pub use settings::ConnectorSettings;
