//! A DomainTools API client, written as if it were its own crate: it knows nothing of axum or MISP.

pub mod auth;

pub use auth::{Credentials, SignHash};
