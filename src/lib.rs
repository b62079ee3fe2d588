//! misp-domaintools: the DomainTools modules for MISP, served over the misp-modules protocol.
//!
//! # Layout
//! - [`config`]: the command line and environment settings (the only reader of env vars).
//! - [`commands`]: one file per command (serve, healthcheck, stix, opencti).
//! - [`http`]: `router(state)`, `serve(listener, state, shutdown)` and the HTTP handlers.
//! - [`protocol`]: the misp-modules request and reply format.
//! - [`registry`]: the explicit list of modules and the `/modules` listing.
//! - [`modules`]: one file per DomainTools module, each with a pure mapping function.
//! - [`misp`]: MISP result entries, de-duplication and hover/stored rendering.
//! - [`iris`]: how one Iris record is read (shared by the MISP objects and STIX).
//! - [`domain`]: registrable-domain reduction (ICANN public suffixes, like the reference).
//! - [`pyfmt`]: the Python formatting the reference's output depends on.
//! - [`stix`]: the DomainTools enrichment as STIX 2.1 (the `stix` command, the connector).
//! - [`opencti`]: the OpenCTI internal-enrichment connector mode.
//! - [`telemetry`]: logging set-up.
//! - [`feeds`]: the Real-Time Threat Feeds as MISP feeds (pollers, buckets, `/feeds/`).
//!
//! The DomainTools API client is the `domaintools` crate (`crates/domaintools`), and the fake
//! API behind `--demo` and the tests is `domaintools-fake` (`crates/domaintools-fake`, only
//! with the `demo` feature).

pub mod commands;
pub mod config;
mod demo;
pub(crate) mod domain;
pub mod feeds;
pub mod http;
pub(crate) mod iris;
pub mod misp;
pub mod modules;
pub mod opencti;
pub mod protocol;
pub(crate) mod pyfmt;
pub mod registry;
mod startup;
pub mod stix;
/// The proptest strategies the property tests here share with the integration tests.
#[cfg(test)]
#[path = "../tests/it/common/strategies.rs"]
mod strategies;
pub(crate) mod telemetry;
