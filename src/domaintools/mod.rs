//! A DomainTools API client, written as if it were its own crate: it knows nothing of axum or
//! MISP. Requests are HMAC-signed ([`auth`]), errors are one typed enum ([`Error`]).

pub mod auth;
mod batch;
pub mod cache;
pub mod classic;
pub mod client;
pub mod error;
mod flight;
pub mod iris_detect;
pub mod limits;
pub mod types;

pub use auth::{Credentials, SignHash};
pub use cache::{CacheConfig, Ttls};
pub use classic::ReverseWhoisMode;
pub use client::{Caller, Client, ClientConfig, Proxy, DEFAULT_BASE_URL};
pub use error::Error;
pub use iris_detect::{DetectList, DetectQuery, EscalationType, WatchlistPage};
pub use types::IrisResponse;
