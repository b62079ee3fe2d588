//! A DomainTools API client. It knows nothing of axum, MISP or STIX: requests are HMAC-signed
//! ([`auth`]), every call goes through one quota-aware path (response cache, coalescing, the
//! account's rate limits, retries, Iris Enrich batching), errors are one typed enum
//! ([`Error`]), and what it does is counted in [`metrics`].

pub mod auth;
mod batch;
pub mod cache;
pub mod classic;
pub mod client;
pub mod error;
pub mod feeds;
mod flight;
pub mod iris;
pub mod iris_detect;
pub mod limits;
pub mod metrics;
pub mod tls;
pub mod types;

pub use auth::{Credentials, SignHash};
pub use cache::{CacheConfig, Family, Ttls};
pub use classic::ReverseWhoisMode;
pub use client::{redacted_url, Caller, Client, ClientConfig, Proxy, DEFAULT_BASE_URL};
pub use error::Error;
pub use feeds::{Bound, Feed, FeedClient, FeedClientConfig, FeedError, FeedLine, FeedQuery};
pub use iris::{Pages, Paging, Stop};
pub use iris_detect::{DetectList, DetectQuery, EscalationType, WatchlistPage};
pub use metrics::ClientMetrics;
/// The one secret type: API keys, tokens, and URLs that may carry a password.
pub use secrecy::{ExposeSecret, SecretString};
pub use tls::ExtraRoots;
pub use types::{IrisResponse, Record};
