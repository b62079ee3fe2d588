//! misp-domaintools: the DomainTools modules for MISP, served over the misp-modules protocol.

pub mod domaintools;
pub mod fake_api;
