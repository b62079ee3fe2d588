//! The response cache: every DomainTools call costs the customer quota, so a successful answer
//! is kept (in process, and optionally in Redis shared by several replicas) for a time that
//! depends on the endpoint family, keyed so that one account's data never reaches another.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use moka::future::Cache;
use moka::Expiry;
use reqwest::Method;
use sha2::{Digest, Sha256};

use secrecy::ExposeSecret;

use super::auth::Credentials;
use crate::metrics::{CacheLayer, CacheLookup, CacheRejection, ClientMetrics};
use crate::tls::ExtraRoots;

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
    /// `redis://…` or `rediss://…` URL of a cache shared by several replicas.
    pub redis_url: Option<secrecy::SecretString>,
    /// The secret the replicas share to authenticate what they write to Redis (required
    /// with `redis_url`).
    pub redis_secret: Option<secrecy::SecretString>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttls: Ttls::default(),
            max_bytes: 64 * 1024 * 1024,
            redis_url: None,
            redis_secret: None,
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
    /// Shared entries larger than `max_entry_bytes` (the cap on upstream answers) are
    /// refused unread.
    pub fn new(
        config: &CacheConfig,
        max_entry_bytes: usize,
        roots: &ExtraRoots,
        metrics: ClientMetrics,
    ) -> Result<Self, String> {
        let memory = (config.max_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(config.max_bytes)
                .weigher(|key: &String, value: &Stored| {
                    u32::try_from(key.len() + value.body.len()).unwrap_or(u32::MAX)
                })
                .expire_after(PerEntry)
                .build()
        });
        let redis = match (&config.redis_url, &config.redis_secret) {
            (Some(url), Some(secret)) => {
                let redis = Arc::new(RedisCache::new(
                    url.expose_secret(),
                    secret.expose_secret().as_bytes(),
                    max_entry_bytes,
                    roots,
                    metrics.clone(),
                )?);
                redis.warm_up();
                Some(redis)
            }
            (Some(_), None) => {
                return Err(
                    "a shared cache (Redis) needs the secret that authenticates its entries"
                        .to_owned(),
                )
            }
            (None, _) => None,
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
            Err(()) => {
                self.count("redis", "skipped");
                None
            }
            Ok(Some((body, ttl))) => {
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
            Ok(None) => {
                self.count("redis", "miss");
                None
            }
        }
    }

    /// Before fetching `key`: when another replica is already fetching it, waits for its
    /// answer through Redis (at most [`LOCK_TTL`], and half of what is left before
    /// `deadline`); else takes the lock, so the others wait for this replica.
    pub(crate) async fn claim(&self, key: &str, deadline: Option<tokio::time::Instant>) -> Claim {
        let Some(redis) = &self.redis else {
            return Claim::Ours(None);
        };
        let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        match redis.lock(key, &token).await {
            Some(true) => return Claim::Ours(Some(token)),
            None => return Claim::Ours(None),
            Some(false) => {}
        }
        let now = tokio::time::Instant::now();
        let limit = deadline.map_or(LOCK_TTL, |d| {
            (d.saturating_duration_since(now) / 2).min(LOCK_TTL)
        });
        let until = now + limit;
        while tokio::time::Instant::now() + POLL_INTERVAL < until {
            tokio::time::sleep(POLL_INTERVAL).await;
            match redis.poll(key).await {
                Some(Entry::Found(body, ttl)) => {
                    self.count("redis", "hit");
                    if let Some(memory) = &self.memory {
                        let stored = Stored {
                            body: body.clone(),
                            ttl,
                        };
                        memory.insert(key.to_owned(), stored).await;
                    }
                    return Claim::Answered(body);
                }
                Some(Entry::Fetching) => {}
                Some(Entry::Missing) | None => break,
            }
        }
        Claim::Ours(None)
    }

    /// Gives back the lock [`claim`](Self::claim) took, in the background.
    pub(crate) fn release(&self, key: &str, token: Option<String>, succeeded: bool) {
        let (Some(redis), Some(token)) = (self.redis.clone(), token) else {
            return;
        };
        let key = key.to_owned();
        tokio::spawn(async move { redis.unlock(&key, &token, succeeded).await });
    }

    /// A turn for one call under the rate limit of `account`'s `product`, from the bucket all
    /// replicas share; `None` when there is no Redis or it is away (the local bucket decides).
    pub(crate) async fn shared_reserve(
        &self,
        account: &str,
        product: &str,
        capacity: f64,
        per_second: f64,
        max_wait: Option<Duration>,
    ) -> Option<SharedTurn> {
        let redis = self.redis.as_ref()?;
        let max_wait = max_wait.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let (reserved, wait): (i64, i64) = redis
            .script(
                RESERVE,
                &bucket_key(account, product),
                &[capacity, per_second, max_wait as f64],
            )
            .await?;
        let wait = Duration::from_millis(wait.max(0).unsigned_abs());
        Some(if reserved == 1 { Ok(wait) } else { Err(wait) })
    }

    /// Spends the remaining turns of the shared bucket after a 503 (in the background).
    pub(crate) fn shared_drain(
        &self,
        account: &str,
        product: &str,
        capacity: f64,
        per_second: f64,
    ) {
        let Some(redis) = self.redis.clone() else {
            return;
        };
        let key = bucket_key(account, product);
        tokio::spawn(async move {
            let _: Option<i64> = redis.script(DRAIN, &key, &[capacity, per_second]).await;
        });
    }

    /// Tells the other replicas about a 503 pause of `account`'s `product` (limit unknown),
    /// in the background: a key that expires when the pause ends, extended, never shortened.
    pub(crate) fn shared_pause(&self, account: &str, product: &str, pause: Duration) {
        let Some(redis) = self.redis.clone() else {
            return;
        };
        let key = pause_key(account, product);
        let millis = pause.as_millis().max(1) as f64;
        tokio::spawn(async move {
            let _: Option<i64> = redis.script(PAUSE, &key, &[millis]).await;
        });
    }

    /// What is left of a 503 pause another replica shared (zero: none); `None` when there
    /// is no Redis or it is away.
    pub(crate) async fn shared_pause_left(&self, account: &str, product: &str) -> Option<Duration> {
        let redis = self.redis.as_ref()?;
        let left: i64 = redis
            .script(PAUSE_LEFT, &pause_key(account, product), &[])
            .await?;
        Some(Duration::from_millis(left.max(0).unsigned_abs()))
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

/// One token bucket kept in Redis for all replicas, with the rules of the local ones
/// (`limits.rs`): refilled at `ARGV[2]` tokens a second up to `ARGV[1]`, one token per call, a
/// negative balance is a wait; a call whose wait would pass `ARGV[3]` ms (-1: no limit)
/// reserves nothing. Redis' own clock is the one clock of all replicas. Answers
/// `{reserved (0/1), wait in ms}`.
const RESERVE: &str = r"
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or capacity
local updated = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - updated) / 1000 * rate)
tokens = tokens - 1
local wait = 0
if tokens < 0 then wait = math.ceil(-tokens / rate * 1000) end
local reserved = 1
if max_wait >= 0 and wait > max_wait then
  tokens = tokens + 1
  reserved = 0
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 60000)
return {reserved, wait}
";

/// DomainTools answered 503 for a product of known limit: the remaining turns are spent
/// (the balance goes to zero if it was above), for every replica.
const DRAIN: &str = r"
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or capacity
local updated = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - updated) / 1000 * rate)
redis.call('HSET', KEYS[1], 'tokens', tostring(math.min(tokens, 0)), 'updated', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 60000)
return 1
";

/// A 503 pause for all replicas: the key lives `ARGV[1]` ms, or longer if it already did.
const PAUSE: &str = r"
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
";

/// The milliseconds left of a shared 503 pause (negative: none).
const PAUSE_LEFT: &str = r"
return redis.call('PTTL', KEYS[1])
";

/// Takes the fetch lock of an entry when free (`SET NX PX` with this replica's token).
const LOCK: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
";

/// Like [`READ_CAPPED`], and -2 while there is no entry but its fetch lock (`KEYS[2]`) is held.
const POLL: &str = r"
local n = redis.pcall('STRLEN', KEYS[1])
if type(n) ~= 'number' then return -1 end
if n > tonumber(ARGV[1]) then return n end
if n > 0 then return redis.call('GET', KEYS[1]) end
if redis.call('EXISTS', KEYS[2]) == 1 then return -2 end
return false
";

/// Gives a fetch lock back if it is still ours: shortened to a second after a success (the
/// answer is on its way to Redis), deleted after a failure.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then return redis.call('PEXPIRE', KEYS[1], 1000) end
return redis.call('DEL', KEYS[1])
";

/// How long a replica may hold the right to fetch an answer for all (past it, a crashed
/// holder no longer makes the others wait).
const LOCK_TTL: Duration = Duration::from_secs(10);
/// How often a replica waiting for another's answer looks for it.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What Redis holds for a key.
enum Entry {
    Found(Bytes, Duration),
    Missing,
    /// No answer yet, but another replica is fetching it.
    Fetching,
}

/// What [`ResponseCache::claim`] found: another replica's answer, or the duty to fetch (with
/// the lock's token when one was taken).
pub(crate) enum Claim {
    Answered(Bytes),
    Ours(Option<String>),
}

/// A turn under a shared rate limit: `Ok(wait)`, or `Err(wait)` when the wait would pass the
/// caller's deadline (and nothing was reserved).
pub(crate) type SharedTurn = Result<Duration, Duration>;

/// Redis as a shared cache. Anyone who can reach Redis can write to it, so every value
/// carries an HMAC-SHA256 (over its Redis key, its expiry and the answer) with the secret the
/// replicas share, and entries that fail it are ignored. Every operation is one round trip,
/// bounded by [`REDIS_TIMEOUT`]; after a failure a circuit breaker sends requests straight to
/// DomainTools while a background task checks when Redis is back.
struct RedisCache {
    manager: redis::aio::ConnectionManager,
    seal: Seal,
    max_entry_bytes: usize,
    metrics: ClientMetrics,
    /// Whether Redis is taken as away: requests skip it until the probe sees it again.
    open: AtomicBool,
    /// Whether a probe task is running (at most one).
    probing: AtomicBool,
    last_logged: Mutex<Option<Instant>>,
}

/// The longest one Redis operation may take (connection included): a lookup costs at most
/// this much more than no shared cache, and only until the circuit breaker opens.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// How often a Redis taken as away is tried again, in the background.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
const REDIS_PREFIX: &str = "misp-domaintools:v2:";

/// Reads an entry only when it is not larger than the cap: a value of any size costs one
/// small reply. Answers nil (no entry), an integer (the length of an entry too large, or
/// -1 for a key that holds no string) or the value.
const READ_CAPPED: &str = r"
local n = redis.pcall('STRLEN', KEYS[1])
if type(n) ~= 'number' then return -1 end
if n > tonumber(ARGV[1]) then return n end
return redis.call('GET', KEYS[1])
";

impl RedisCache {
    fn new(
        url: &str,
        secret: &[u8],
        max_entry_bytes: usize,
        roots: &ExtraRoots,
        metrics: ClientMetrics,
    ) -> Result<Self, String> {
        // `rediss://` trusts the same roots as the DomainTools client.
        let client = roots
            .redis_client(url)
            .map_err(|e| format!("cache URL: {e}"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        // Lazy: a Redis that is down at start-up must not stop the server.
        let manager = redis::aio::ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("cache URL: {e}"))?;
        metrics.redis_available.set(1);
        Ok(Self {
            manager,
            seal: Seal::new(secret),
            max_entry_bytes: max_entry_bytes + HEADER_LEN,
            metrics,
            open: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            last_logged: Mutex::new(None),
        })
    }

    /// Connects and loads the scripts ahead of the first lookup, so that a cold start does not
    /// spend a lookup's [`REDIS_TIMEOUT`] on them (and trip the breaker).
    fn warm_up(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = Arc::clone(self);
        runtime.spawn(async move {
            let mut conn = this.manager.clone();
            let mut load = redis::pipe();
            for source in [
                READ_CAPPED,
                LOCK,
                POLL,
                UNLOCK,
                RESERVE,
                DRAIN,
                PAUSE,
                PAUSE_LEFT,
            ] {
                load.cmd("SCRIPT").arg("LOAD").arg(source);
            }
            let loaded = load.query_async::<Vec<String>>(&mut conn);
            match tokio::time::timeout(Duration::from_secs(5), loaded).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => this.failed(&e.to_string()),
                Err(_) => this.failed("no answer in time"),
            }
        });
    }

    fn rejected(&self, reason: &'static str) {
        self.metrics
            .cache_rejected
            .get_or_create(&CacheRejection { reason })
            .inc();
    }

    /// The entry for `key` and how long it has left; `Err` when Redis was skipped or failed.
    async fn get(self: &Arc<Self>, key: &str) -> Result<Option<(Bytes, Duration)>, ()> {
        let redis_key = format!("{REDIS_PREFIX}{key}");
        let value = self
            .run(
                READ_CAPPED,
                &[&redis_key],
                &[&self.max_entry_bytes.to_string()],
            )
            .await
            .ok_or(())?;
        Ok(match self.entry(&redis_key, value) {
            Entry::Found(body, ttl) => Some((body, ttl)),
            Entry::Missing | Entry::Fetching => None,
        })
    }

    /// What a read script answered, checked: entries that are not ours are counted and
    /// taken as missing.
    fn entry(&self, redis_key: &str, value: redis::Value) -> Entry {
        let value = match value {
            redis::Value::Nil => return Entry::Missing,
            redis::Value::BulkString(value) => value,
            redis::Value::Int(-2) => return Entry::Fetching,
            redis::Value::Int(n) if n >= 0 => {
                self.rejected("oversized");
                return Entry::Missing;
            }
            _ => {
                self.rejected("malformed");
                return Entry::Missing;
            }
        };
        match self.seal.open(redis_key, &value, unix_millis()) {
            Ok(Some((body, ttl))) => Entry::Found(Bytes::copy_from_slice(body), ttl),
            Ok(None) => Entry::Missing,
            Err(reason) => {
                self.rejected(reason);
                Entry::Missing
            }
        }
    }

    /// Takes the right to fetch `key` for all replicas: `Some(true)` when taken, `Some(false)`
    /// when another replica holds it, `None` when Redis is away.
    async fn lock(self: &Arc<Self>, key: &str, token: &str) -> Option<bool> {
        let lock_key = format!("{REDIS_PREFIX}lock:{key}");
        let ttl = LOCK_TTL.as_millis().to_string();
        let taken: i64 = self.run(LOCK, &[&lock_key], &[token, &ttl]).await?;
        Some(taken == 1)
    }

    /// The entry for `key` once written, `Fetching` while its lock is held.
    async fn poll(self: &Arc<Self>, key: &str) -> Option<Entry> {
        let redis_key = format!("{REDIS_PREFIX}{key}");
        let lock_key = format!("{REDIS_PREFIX}lock:{key}");
        let cap = self.max_entry_bytes.to_string();
        let value = self.run(POLL, &[&redis_key, &lock_key], &[&cap]).await?;
        Some(self.entry(&redis_key, value))
    }

    /// Gives the lock back: kept a moment after a success (the answer is being written),
    /// dropped after a failure so the others make their own call at once.
    async fn unlock(self: &Arc<Self>, key: &str, token: &str, succeeded: bool) {
        let lock_key = format!("{REDIS_PREFIX}lock:{key}");
        let succeeded = if succeeded { "1" } else { "0" };
        let _: Option<i64> = self.run(UNLOCK, &[&lock_key], &[token, succeeded]).await;
    }

    /// Runs one of the scripts above; `None` when Redis is skipped or failed.
    async fn run<T: redis::FromRedisValue>(
        self: &Arc<Self>,
        source: &str,
        keys: &[&str],
        args: &[&str],
    ) -> Option<T> {
        if self.open.load(Ordering::Relaxed) {
            return None;
        }
        let mut conn = self.manager.clone();
        let script = redis::Script::new(source);
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        let query = invocation.invoke_async::<T>(&mut conn);
        match tokio::time::timeout(REDIS_TIMEOUT, query).await {
            Ok(Ok(value)) => Some(value),
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

    /// Runs a rate-limit script on `key` with numeric arguments.
    async fn script<T: redis::FromRedisValue>(
        self: &Arc<Self>,
        source: &str,
        key: &str,
        args: &[f64],
    ) -> Option<T> {
        let args: Vec<String> = args.iter().map(f64::to_string).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(source, &[key], &args).await
    }

    async fn set(self: &Arc<Self>, key: &str, body: &[u8], ttl: Duration) {
        if self.open.load(Ordering::Relaxed) || body.len() + HEADER_LEN > self.max_entry_bytes {
            return;
        }
        let mut conn = self.manager.clone();
        let redis_key = format!("{REDIS_PREFIX}{key}");
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let value = self
            .seal
            .close(&redis_key, body, unix_millis().saturating_add(millis));
        let mut set = redis::cmd("SET");
        set.arg(&redis_key).arg(value).arg("PX").arg(millis);
        let query = set.query_async::<()>(&mut conn);
        match tokio::time::timeout(REDIS_TIMEOUT, query).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.failed(&e.to_string()),
            Err(_) => self.failed("no answer in time"),
        }
    }

    /// Counts a failure, opens the circuit and starts the probe that closes it again.
    fn failed(self: &Arc<Self>, why: &str) {
        self.metrics
            .cache_errors
            .get_or_create(&CacheLayer { layer: "redis" })
            .inc();
        self.open.store(true, Ordering::Relaxed);
        self.metrics.redis_available.set(0);
        {
            let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                *last = Some(Instant::now());
                tracing::warn!(error = why, "shared cache (Redis) unavailable; answering from DomainTools until it is back (logged at most once a minute)");
            }
        }
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_INTERVAL).await;
                let mut conn = this.manager.clone();
                let ping = redis::cmd("PING");
                let ping = ping.query_async::<()>(&mut conn);
                if let Ok(Ok(())) = tokio::time::timeout(REDIS_TIMEOUT, ping).await {
                    break;
                }
            }
            this.open.store(false, Ordering::Relaxed);
            this.metrics.redis_available.set(1);
            this.probing.store(false, Ordering::Release);
            tracing::info!("shared cache (Redis) reachable again");
        });
    }
}

/// The Redis key of a shared token bucket: the account id is hashed, so Redis holds no
/// username.
fn bucket_key(account: &str, product: &str) -> String {
    let account = hex::encode(Sha256::digest(account.as_bytes()));
    format!("{REDIS_PREFIX}rate:{account}:{product}")
}

fn pause_key(account: &str, product: &str) -> String {
    let account = hex::encode(Sha256::digest(account.as_bytes()));
    format!("{REDIS_PREFIX}pause:{account}:{product}")
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

type HmacSha256 = Hmac<Sha256>;

const MAGIC: &[u8; 4] = b"MDT2";
const KEY_ID_LEN: usize = 8;
const MAC_LEN: usize = 32;
/// Magic, key id, expiry (Unix milliseconds, big-endian), MAC; the answer follows.
const HEADER_LEN: usize = MAGIC.len() + KEY_ID_LEN + 8 + MAC_LEN;

/// Seals and opens shared-cache entries with the replicas' secret. The key id (a hash of the
/// secret, which reveals nothing of it) tells an entry of another deployment from a forged one.
struct Seal {
    mac: HmacSha256,
    key_id: [u8; KEY_ID_LEN],
}

impl Seal {
    fn new(secret: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"misp-domaintools cache key id\0");
        hasher.update(secret);
        let digest = hasher.finalize();
        let mut key_id = [0; KEY_ID_LEN];
        key_id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self {
            mac: HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length"),
            key_id,
        }
    }

    fn tag(&self, redis_key: &str, expires: &[u8; 8], body: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(&(redis_key.len() as u64).to_be_bytes());
        mac.update(redis_key.as_bytes());
        mac.update(&self.key_id);
        mac.update(expires);
        mac.update(body);
        mac
    }

    fn close(&self, redis_key: &str, body: &[u8], expires_at_ms: u64) -> Vec<u8> {
        let expires = expires_at_ms.to_be_bytes();
        let tag = self.tag(redis_key, &expires, body).finalize().into_bytes();
        let mut value = Vec::with_capacity(HEADER_LEN + body.len());
        value.extend_from_slice(MAGIC);
        value.extend_from_slice(&self.key_id);
        value.extend_from_slice(&expires);
        value.extend_from_slice(&tag);
        value.extend_from_slice(body);
        value
    }

    /// The answer in `value` and its time left; `None` when expired; `Err` with the reason
    /// counted in `/metrics` when the entry is not one of ours for this key.
    fn open<'v>(
        &self,
        redis_key: &str,
        value: &'v [u8],
        now_ms: u64,
    ) -> Result<Option<(&'v [u8], Duration)>, &'static str> {
        if value.len() < HEADER_LEN || !value.starts_with(MAGIC) {
            return Err("malformed");
        }
        let (key_id, rest) = value[MAGIC.len()..].split_at(KEY_ID_LEN);
        if key_id != self.key_id {
            return Err("foreign_secret");
        }
        let (expires, rest) = rest.split_at(8);
        let (tag, body) = rest.split_at(MAC_LEN);
        let expires: [u8; 8] = expires.try_into().map_err(|_| "malformed")?;
        self.tag(redis_key, &expires, body)
            .verify_slice(tag)
            .map_err(|_| "tampered")?;
        let expires_at_ms = u64::from_be_bytes(expires);
        if expires_at_ms <= now_ms {
            return Ok(None);
        }
        Ok(Some((body, Duration::from_millis(expires_at_ms - now_ms))))
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
        let cache = ResponseCache::new(
            &CacheConfig::default(),
            1024,
            &ExtraRoots::none(),
            ClientMetrics::default(),
        )
        .unwrap();
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

    #[test]
    fn sealed_entries_open_only_for_their_key_and_secret() {
        let seal = Seal::new(b"shared secret of the replicas");
        let value = seal.close("k1", b"{\"answer\": 1}", 10_000);
        assert_eq!(
            seal.open("k1", &value, 4_000),
            Ok(Some((&b"{\"answer\": 1}"[..], Duration::from_secs(6))))
        );
        assert_eq!(seal.open("k1", &value, 10_000), Ok(None), "expired");
        assert_eq!(
            seal.open("k2", &value, 4_000),
            Err("tampered"),
            "moved to another key"
        );
        let mut changed = value.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert_eq!(seal.open("k1", &changed, 4_000), Err("tampered"));
        let mut later = value.clone();
        later[MAGIC.len() + KEY_ID_LEN] ^= 0x40;
        assert_eq!(
            seal.open("k1", &later, 4_000),
            Err("tampered"),
            "the expiry is sealed too"
        );
        let foreign = Seal::new(b"another deployment").close("k1", b"{}", 10_000);
        assert_eq!(seal.open("k1", &foreign, 4_000), Err("foreign_secret"));
        assert_eq!(seal.open("k1", b"{}", 4_000), Err("malformed"));
        assert_eq!(
            seal.open("k1", &value[..HEADER_LEN - 1], 4_000),
            Err("malformed")
        );
    }

    #[tokio::test]
    async fn tls_urls_are_understood_and_the_secret_is_required() {
        let mut config = CacheConfig {
            redis_url: Some("rediss://user:pw@127.0.0.1:1/0".into()),
            ..CacheConfig::default()
        };
        let error =
            ResponseCache::new(&config, 1024, &ExtraRoots::none(), ClientMetrics::default())
                .unwrap_err();
        assert!(error.contains("secret"), "{error}");
        config.redis_secret = Some("sixteen characters at least".into());
        ResponseCache::new(&config, 1024, &ExtraRoots::none(), ClientMetrics::default())
            .expect("rediss:// is built in");
    }
}
