//! The response cache: every DomainTools call costs the customer quota, so a successful answer
//! is kept (in process, and optionally in Redis shared by several replicas) for a time that
//! depends on the endpoint family, keyed so that one account's data never reaches another.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::future::Cache;
use moka::Expiry;
use reqwest::Method;
use sha2::{Digest, Sha256};

use super::auth::Credentials;
use crate::metrics::{CacheLayer, CacheLookup, ClientMetrics};

/// Groups of endpoints that share a cache lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Iris Investigate and Iris Enrich.
    Iris,
    /// Iris Detect listings (change minute by minute).
    Detect,
    /// Classic lookups: whois, parsed whois, history, profile, risk, reverse IP/whois.
    Classic,
    /// Account limits.
    Account,
    /// Calls that change something (Detect escalations, watchlist changes): never cached or
    /// shared.
    Mutating,
}

impl Family {
    /// The family of a request.
    pub fn of(method: &Method, path: &str) -> Family {
        if *method == Method::PATCH || path.starts_with("/v1/iris-detect/escalations") {
            Family::Mutating
        } else if path.starts_with("/v1/iris-detect/") {
            Family::Detect
        } else if path.starts_with("/v1/iris-investigate") || path.starts_with("/v1/iris-enrich") {
            Family::Iris
        } else if path.starts_with("/v1/account") {
            Family::Account
        } else if *method == Method::GET {
            Family::Classic
        } else {
            Family::Mutating
        }
    }
}

/// How long answers of each family are kept (zero: not cached).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttls {
    /// Iris Investigate and Enrich.
    pub iris: Duration,
    /// Classic whois-like lookups.
    pub classic: Duration,
    /// Iris Detect listings.
    pub detect: Duration,
}

impl Default for Ttls {
    fn default() -> Self {
        Self {
            iris: Duration::from_secs(3600),
            classic: Duration::from_secs(3600),
            detect: Duration::ZERO,
        }
    }
}

impl Ttls {
    /// The lifetime of a family's answers.
    pub fn of(&self, family: Family) -> Duration {
        match family {
            Family::Iris => self.iris,
            Family::Classic => self.classic,
            Family::Detect => self.detect,
            Family::Account => Duration::from_secs(3600),
            Family::Mutating => Duration::ZERO,
        }
    }
}

/// Cache settings.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Lifetimes per family.
    pub ttls: Ttls,
    /// Bound of the in-process cache, in bytes of cached answers (0: no in-process cache).
    pub max_bytes: u64,
    /// `redis://…` URL of a cache shared by several replicas.
    pub redis_url: Option<secrecy::SecretString>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttls: Ttls::default(),
            max_bytes: 64 * 1024 * 1024,
            redis_url: None,
        }
    }
}

/// The identity of a request for caching and coalescing: a SHA-256 over the account (username
/// and key), the method, the path and the normalised parameters. It reveals none of them, and
/// two keys of the same username never share entries.
pub fn key(
    credentials: &Credentials,
    method: &Method,
    path: &str,
    params: &[(&str, &str)],
) -> String {
    let mut normalised: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| {
            // Domains are case-insensitive; everything else (search hashes…) is kept as sent.
            let v = if *k == "domain" {
                v.trim().to_lowercase()
            } else {
                (*v).to_owned()
            };
            ((*k).to_owned(), v)
        })
        .collect();
    normalised.sort();
    let mut hasher = Sha256::new();
    for part in [
        credentials.username(),
        credentials.api_key(),
        method.as_str(),
        path,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    for (k, v) in &normalised {
        hasher.update(k.as_bytes());
        hasher.update([1]);
        hasher.update(v.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

#[derive(Debug, Clone)]
struct Stored {
    body: Bytes,
    ttl: Duration,
}

struct PerEntry;

impl Expiry<String, Stored> for PerEntry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Stored,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The two-level cache: in process first, then Redis when configured.
#[derive(Clone)]
pub struct ResponseCache {
    memory: Option<Cache<String, Stored>>,
    redis: Option<Arc<RedisCache>>,
    ttls: Ttls,
    metrics: ClientMetrics,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("memory", &self.memory.is_some())
            .field("redis", &self.redis.is_some())
            .field("ttls", &self.ttls)
            .finish()
    }
}

impl ResponseCache {
    /// A cache with the given settings.
    pub fn new(config: &CacheConfig, metrics: ClientMetrics) -> Result<Self, String> {
        let memory = (config.max_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(config.max_bytes)
                .weigher(|key: &String, value: &Stored| {
                    u32::try_from(key.len() + value.body.len()).unwrap_or(u32::MAX)
                })
                .expire_after(PerEntry)
                .build()
        });
        let redis = match &config.redis_url {
            Some(url) => Some(Arc::new(RedisCache::new(
                secrecy::ExposeSecret::expose_secret(url),
                metrics.clone(),
            )?)),
            None => None,
        };
        Ok(Self {
            memory,
            redis,
            ttls: config.ttls,
            metrics,
        })
    }

    fn count(&self, layer: &'static str, result: &'static str) {
        self.metrics
            .cache_lookups
            .get_or_create(&CacheLookup { layer, result })
            .inc();
    }

    /// How long a family's answers are kept.
    pub fn ttl(&self, family: Family) -> Duration {
        self.ttls.of(family)
    }

    /// Whether answers are kept anywhere (in process or in Redis).
    pub fn enabled(&self) -> bool {
        self.memory.is_some() || self.redis.is_some()
    }

    /// A cached answer, from memory or else from Redis (which then fills memory).
    pub async fn get(&self, key: &str) -> Option<Bytes> {
        if let Some(memory) = &self.memory {
            if let Some(stored) = memory.get(key).await {
                self.count("memory", "hit");
                return Some(stored.body);
            }
            self.count("memory", "miss");
        }
        let redis = self.redis.as_ref()?;
        match redis.get(key).await {
            Some((body, ttl)) => {
                self.count("redis", "hit");
                if let Some(memory) = &self.memory {
                    memory
                        .insert(
                            key.to_owned(),
                            Stored {
                                body: body.clone(),
                                ttl,
                            },
                        )
                        .await;
                }
                Some(body)
            }
            None => {
                self.count("redis", "miss");
                None
            }
        }
    }

    /// Keeps an answer for `ttl` (nothing when zero). Redis is written in the background.
    pub async fn put(&self, key: &str, body: Bytes, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        if let Some(memory) = &self.memory {
            memory
                .insert(
                    key.to_owned(),
                    Stored {
                        body: body.clone(),
                        ttl,
                    },
                )
                .await;
        }
        if let Some(redis) = &self.redis {
            let redis = redis.clone();
            let key = key.to_owned();
            tokio::spawn(async move { redis.set(&key, &body, ttl).await });
        }
    }
}

/// Redis as a shared cache. Every operation is bounded in time; when Redis is away the server
/// keeps answering from DomainTools, logs once a minute and counts the failures.
struct RedisCache {
    manager: redis::aio::ConnectionManager,
    metrics: ClientMetrics,
    last_logged: Mutex<Option<Instant>>,
}

const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
const REDIS_PREFIX: &str = "misp-domaintools:v1:";

impl RedisCache {
    fn new(url: &str, metrics: ClientMetrics) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("cache URL: {e}"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        // Lazy: a Redis that is down at start-up must not stop the server.
        let manager = redis::aio::ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("cache URL: {e}"))?;
        Ok(Self {
            manager,
            metrics,
            last_logged: Mutex::new(None),
        })
    }

    async fn get(&self, key: &str) -> Option<(Bytes, Duration)> {
        let mut conn = self.manager.clone();
        let redis_key = format!("{REDIS_PREFIX}{key}");
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&redis_key).cmd("PTTL").arg(&redis_key);
        let query = pipe.query_async::<(Option<Vec<u8>>, i64)>(&mut conn);
        match tokio::time::timeout(REDIS_TIMEOUT * 2, query).await {
            Ok(Ok((Some(body), ttl_ms))) if ttl_ms > 0 => Some((
                Bytes::from(body),
                Duration::from_millis(ttl_ms.unsigned_abs()),
            )),
            Ok(Ok(_)) => None,
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed("no answer in time");
                None
            }
        }
    }

    async fn set(&self, key: &str, body: &[u8], ttl: Duration) {
        let mut conn = self.manager.clone();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut set = redis::cmd("SET");
        set.arg(format!("{REDIS_PREFIX}{key}"))
            .arg(body)
            .arg("PX")
            .arg(millis);
        let query = set.query_async::<()>(&mut conn);
        match tokio::time::timeout(REDIS_TIMEOUT * 2, query).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.failed(&e.to_string()),
            Err(_) => self.failed("no answer in time"),
        }
    }

    fn failed(&self, why: &str) {
        self.metrics
            .cache_errors
            .get_or_create(&CacheLayer { layer: "redis" })
            .inc();
        let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            *last = Some(Instant::now());
            tracing::warn!(error = why, "shared cache (Redis) unavailable; answering from DomainTools (logged at most once a minute)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_accounts_and_normalise_domains() {
        let a = Credentials::new("u", "k1");
        let b = Credentials::new("u", "k2");
        let c = Credentials::new("v", "k1");
        let path = "/v1/iris-enrich/";
        let base = key(&a, &Method::POST, path, &[("domain", "Google.com")]);
        assert_eq!(
            base,
            key(&a, &Method::POST, path, &[("domain", "google.com ")])
        );
        assert_ne!(
            base,
            key(&b, &Method::POST, path, &[("domain", "google.com")]),
            "another key"
        );
        assert_ne!(
            base,
            key(&c, &Method::POST, path, &[("domain", "google.com")]),
            "another user"
        );
        assert_ne!(
            base,
            key(&a, &Method::GET, path, &[("domain", "google.com")])
        );
        assert_ne!(
            key(
                &a,
                &Method::POST,
                "/v1/iris-investigate/",
                &[("search_hash", "Ab")]
            ),
            key(
                &a,
                &Method::POST,
                "/v1/iris-investigate/",
                &[("search_hash", "ab")]
            ),
            "only domains are case-folded"
        );
        assert_eq!(
            key(&a, &Method::GET, "/v1/x", &[("a", "1"), ("b", "2")]),
            key(&a, &Method::GET, "/v1/x", &[("b", "2"), ("a", "1")])
        );
        assert_eq!(
            base.len(),
            64,
            "a hex digest, which holds neither the key nor the username"
        );
    }

    #[test]
    fn families_and_lifetimes() {
        let ttls = Ttls::default();
        let cases = [
            (Method::POST, "/v1/iris-investigate/", Family::Iris),
            (Method::POST, "/v1/iris-enrich/", Family::Iris),
            (Method::GET, "/v1/iris-detect/domains/new/", Family::Detect),
            (
                Method::POST,
                "/v1/iris-detect/escalations/",
                Family::Mutating,
            ),
            (Method::PATCH, "/v1/iris-detect/domains/", Family::Mutating),
            (Method::GET, "/v1/google.com/whois/parsed", Family::Classic),
            (Method::GET, "/v1/account", Family::Account),
        ];
        for (method, path, family) in cases {
            assert_eq!(Family::of(&method, path), family, "{path}");
        }
        assert_eq!(ttls.of(Family::Iris), Duration::from_secs(3600));
        assert_eq!(ttls.of(Family::Detect), Duration::ZERO);
        assert_eq!(ttls.of(Family::Mutating), Duration::ZERO);
    }

    #[tokio::test]
    async fn memory_cache_keeps_answers_for_their_lifetime() {
        let cache = ResponseCache::new(&CacheConfig::default(), ClientMetrics::default()).unwrap();
        cache
            .put("k", Bytes::from_static(b"body"), Duration::from_millis(150))
            .await;
        cache
            .put("zero", Bytes::from_static(b"x"), Duration::ZERO)
            .await;
        assert_eq!(cache.get("k").await.as_deref(), Some(&b"body"[..]));
        assert_eq!(cache.get("zero").await, None);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(cache.get("k").await, None, "expired");
    }
}
