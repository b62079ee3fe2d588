//! A fake DomainTools API, served in-process from the recorded fixtures: every test talks to it
//! over real HTTP, and `misp-domaintools --demo` serves it so the modules run without credentials.
//!
//! It behaves like the real API where the project depends on it: it checks HMAC signatures
//! (SHA-1 or SHA-256, by hex length), `api_key` parameters and the `X-Api-Key` header, answers
//! `403` with the recorded envelope on any failure, wraps classic and Iris Investigate/Enrich
//! answers in `{"response": …}` (`application/json;charset=utf-8`) and leaves Iris Detect
//! answers bare (`application/json`). Tests can inject faults, add latency and read the request
//! log, which never holds a signature or a key.
//!
//! # Data
//!
//! Recorded answers are served for the recorded queries (`google.com`, `amazon.com` in Iris,
//! `woot.com` whois history, `hug.rest` risk, `199.30.228.112` host domains, reverse whois
//! terms containing "google"). Other valid lookups get what the real API gives for a domain it
//! knows nothing about: `404` with the recorded envelope, or an empty result where the real API
//! answers with one (Iris `missing_domains`, reverse whois zero counts). Invalid path values
//! (no dot, e.g. `/v1/ss/reverse-ip`) get the recorded `400`.
//!
//! # Synthetic data conventions
//!
//! - **`many-N`**: Iris Investigate with `search_hash=many-N` or `registrar=many-N` (for example
//!   `many-1234`) matches `N` results, clones of the recorded google.com record named
//!   `d0001.example`, `d0002.example`, … (at least four digits), so paging (`page_size`,
//!   `position`) can be exercised. Above [`MANY_LIMIT`] results the answer is the recorded
//!   HTTP-200 `limit_exceeded: true` body, as the real API does for queries matching too much.
//! - **`*.example` domains**: Iris Investigate and Iris Enrich treat every valid domain ending
//!   in `.example` as known, derived from the google.com record with `domain`, `whois_url` and
//!   `tld` replaced, so batching tests can ask for hundreds of distinct domains. To get a
//!   domain into `missing_domains`, use any other unknown name (e.g. `nothing-here.test`).
//! - **`ip=8.8.8.8`** in Iris Investigate answers the recorded `limit_exceeded: true` body.
//! - **Enrich for other recorded domains** (amazon.com): the Investigate record with every
//!   `count` key removed, which is exactly how the recorded google.com Enrich answer relates to
//!   the recorded Investigate one.
//! - **Iris Detect `include_domain_data=true`** (never recorded) adds to each domain, derived
//!   deterministically from its name: `name_server[{host}]` (two hosts under
//!   `dns-N.example`), `mx[{host}]` (empty unless `mx_exists`), `ip[{ip,country_code,isp}]`
//!   (an RFC 5737 documentation address), `registrar` (a real registrar's name),
//!   `create_date` (the discovery day as an integer `YYYYMMDD`) and
//!   `registrant_contact_email[]` (one `…@privacy-proxy.example` address).
//! - **Iris Detect lists** hold the recorded domains only, so `total_count` is the number of
//!   recorded domains matching the filters (the recorded `new` page says 30640 on the real
//!   account, but only 100 were recorded); paging with `offset`/`limit` is consistent with it.
//! - **Whois history** (woot.com) reports the recorded `record_count` 624. The fixture holds the
//!   newest 100; records past those repeat the recorded ones with their `date` moved back six
//!   years per round, so all 624 exist, stay in date order and differ from page to page.
//! - **Escalations and watchlist changes** answer in the recorded shapes (ids derived from
//!   the request, dates from the fake's clock) but change nothing: the lists stay as recorded.
//!   Watchlist changes need ids from the recorded lists (their answer names the domain).
//! - **Reputation** with `include_reasons=true` adds `reasons` (never recorded): empty for
//!   google.com, three evidence-style strings for hug.rest.
//! - **Reverse IP / host domains** `limit` truncates each address's `domain_names` (the API
//!   applies it per address); `limit=0` leaves only the counts.
//!
//! The Real-Time Threat Feeds (`/v1/feed/<feed>/`, NDJSON) keep cursors per account, feed and
//! `sessionID`; see the `feeds` module for their semantics. Tests add lines with
//! [`FakeApi::push_feed_lines`]; `--demo` replays the recorded ones ([`FakeApi::with_feed_replay`]).
//!
//! Pages past the end, oversized `limit`s (clamped to the API's maximum) and unknown extra
//! parameters are accepted like the real API does; missing or malformed required parameters
//! give the recorded `400` envelope.

mod answer;
mod auth;
mod data;
mod detect;
mod faults;
mod feeds;
mod handler;
mod iris;
mod params;
mod routes;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;

/// Where the recorded DomainTools answers the fake serves are (for tests that read them).
pub const FIXTURES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/domaintools");

/// The feeds under `/v1/feed/<name>/` the fake serves.
pub const FEED_NAMES: &[&str] = feeds::FEEDS;

/// The recorded lines of a feed (empty for an unknown one), as `--demo` replays them.
pub fn recorded_feed_lines(feed: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    feeds::recorded_lines(feed)
}

/// The synthetic lines of the IP feeds (`iprisk`, `iphotlist`; empty for any other), built from
/// their documented fields since no answer was ever recorded; `--demo` replays them.
pub fn synthetic_ip_feed_lines(feed: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    feeds::synthetic_ip_lines(feed)
}

/// Username of the account the fake accepts out of the box (used by `--demo`).
pub const DEMO_USERNAME: &str = "demo";
/// API key of [`DEMO_USERNAME`]; public on purpose, it opens nothing but the fake.
pub const DEMO_API_KEY: &str = "demo-key-not-a-secret";

/// Above this many `many-N` results, Iris Investigate answers `limit_exceeded: true` like the
/// real API (whose documented threshold is 10,000 matches).
pub const MANY_LIMIT: u64 = 10_000;

/// A fake DomainTools API. Clones share the request log, the faults and the latency.
#[derive(Clone)]
pub struct FakeApi {
    /// Accounts and clock: set up by the builder methods, read-only while serving.
    config: Arc<Config>,
    /// What tests change and read while the fake serves.
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Config {
    /// Username to API key.
    users: BTreeMap<String, String>,
    freshness: Duration,
    fixed_now: Option<DateTime<Utc>>,
    /// Per-minute limits that replace the recorded ones in `/v1/account`, by product id.
    per_minute_limits: BTreeMap<String, u32>,
}

impl Config {
    fn now(&self) -> DateTime<Utc> {
        self.fixed_now.unwrap_or_else(Utc::now)
    }
}

#[derive(Default)]
struct Shared {
    log: Mutex<Vec<LoggedRequest>>,
    faults: Mutex<Vec<faults::Rule>>,
    latency: Mutex<Duration>,
    feeds: Mutex<feeds::Store>,
}

/// A panicking test thread must not make every later call on the fake panic too.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeApi {
    /// Fake with the bundled fixtures and one account: [`DEMO_USERNAME`] / [`DEMO_API_KEY`].
    pub fn new() -> Self {
        let mut users = BTreeMap::new();
        users.insert(DEMO_USERNAME.to_owned(), DEMO_API_KEY.to_owned());
        Self {
            config: Arc::new(Config {
                users,
                freshness: Duration::from_secs(300),
                fixed_now: None,
                per_minute_limits: BTreeMap::new(),
            }),
            shared: Arc::default(),
        }
    }

    /// Adds (or replaces) an account the fake accepts.
    pub fn with_user(mut self, username: &str, api_key: &str) -> Self {
        Arc::make_mut(&mut self.config)
            .users
            .insert(username.to_owned(), api_key.to_owned());
        self
    }

    /// Timestamp freshness window (default 300 s either side of the fake's clock).
    pub fn with_freshness(mut self, window: Duration) -> Self {
        Arc::make_mut(&mut self.config).freshness = window;
        self
    }

    /// Makes `/v1/account` report `per_minute` calls a minute (and no hourly limit) for
    /// `product` instead of the recorded limit: for rate-limit tests that must not depend on
    /// how fast the machine is.
    pub fn with_per_minute_limit(mut self, product: &str, per_minute: u32) -> Self {
        Arc::make_mut(&mut self.config)
            .per_minute_limits
            .insert(product.to_owned(), per_minute);
        self
    }

    /// Freezes the fake's clock (default: the real UTC clock).
    pub fn with_fixed_now(mut self, now: DateTime<Utc>) -> Self {
        Arc::make_mut(&mut self.config).fixed_now = Some(now);
        self
    }

    /// Feed answers hold at most `lines` lines; past that they are `206` (default: the real
    /// API's 10 million), so tests can page through small feeds.
    pub fn with_feed_page_lines(self, lines: usize) -> Self {
        lock(&self.shared.feeds).set_page_lines(lines);
        self
    }

    /// Demo mode for the feeds: each feed's recorded lines are replayed in a loop, one every
    /// `interval`, timestamped when they are replayed (starting an hour before the first feed
    /// request, so a new session has lines at once).
    pub fn with_feed_replay(self, interval: Duration) -> Self {
        lock(&self.shared.feeds).set_replay(interval);
        self
    }

    /// Adds lines to `feed` (one of [`FEED_NAMES`]) as seen at `at`: each line's `timestamp`
    /// becomes `at` (hotlist lines also get `expires` a day later). False for an unknown feed.
    pub fn push_feed_lines(
        &self,
        feed: &str,
        at: DateTime<Utc>,
        lines: impl IntoIterator<Item = serde_json::Map<String, serde_json::Value>>,
    ) -> bool {
        let mut store = lock(&self.shared.feeds);
        lines.into_iter().all(|line| store.push(feed, at, line))
    }

    fn feed_answer(&self, account: &str, path: &str, params: &params::Params) -> answer::Answer {
        let now = self.config.now();
        feeds::answer(&mut lock(&self.shared.feeds), account, path, params, now)
    }

    /// The axum router (no I/O), so tests may drive it with `oneshot` too.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .fallback(handler::handle)
            .with_state(self.clone())
    }

    /// Binds 127.0.0.1:0 and serves in a background tokio task.
    pub async fn spawn(&self) -> std::io::Result<RunningFake> {
        let listener = bind_loopback(0).await?;
        let addr = listener.local_addr()?;
        let app = self.router();
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "fake DomainTools API stopped serving");
            }
        });
        Ok(RunningFake { addr, task })
    }

    /// Every request received so far, in arrival order (rejected ones included).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.log).clone()
    }

    /// Number of logged requests whose path equals `path` (e.g. "/v1/iris-enrich/"), any
    /// method, any outcome.
    pub fn calls_to(&self, path: &str) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|request| request.path == path)
            .count()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Makes requests whose path starts with `path_prefix` fail with `fault`, the next `times`
    /// times (None = until cleared). Faults are checked in the order they were added.
    pub fn inject(&self, path_prefix: &str, fault: Fault, times: Option<usize>) {
        lock(&self.shared.faults).push(faults::Rule::new(path_prefix, fault, times));
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Extra latency added before every answer (benchmarks and deadline tests). Default zero.
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.shared.latency) = latency;
    }

    fn latency(&self) -> Duration {
        *lock(&self.shared.latency)
    }

    fn take_fault(&self, path: &str) -> Option<Fault> {
        faults::take(&mut lock(&self.shared.faults), path)
    }

    fn log(&self, request: LoggedRequest) {
        lock(&self.shared.log).push(request);
    }
}

impl Default for FakeApi {
    fn default() -> Self {
        Self::new()
    }
}

/// Shows the accounts' usernames but never their keys.
impl fmt::Debug for FakeApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeApi")
            .field("users", &self.config.users.keys().collect::<Vec<_>>())
            .field("freshness", &self.config.freshness)
            .field("fixed_now", &self.config.fixed_now)
            .field("latency", &self.latency())
            .field("requests_logged", &lock(&self.shared.log).len())
            .finish()
    }
}

/// Binds 127.0.0.1:`port` (0: any free port) with a listen backlog of 4096: load tests open
/// thousands of upstream connections at once, and the default backlog drops SYNs past 1024.
pub async fn bind_loopback(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    socket.listen(4096)
}

/// A fake listening on loopback; the task stops when this is dropped.
#[derive(Debug)]
pub struct RunningFake {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl RunningFake {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request as the fake received it, with the secrets left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// "GET", "POST", "PATCH"
    pub method: String,
    /// As received, e.g. "/v1/google.com/whois/parsed".
    pub path: String,
    /// All parameters from the query, then the form or JSON body, in order,
    /// WITHOUT `signature` and `api_key` (the log never holds a secret).
    pub params: Vec<(String, String)>,
    /// `api_username` as sent.
    pub username: Option<String>,
    /// What the fake answered.
    pub status: u16,
}

/// A failure the fake can be told to produce (see [`FakeApi::inject`]).
#[derive(Clone, Debug)]
pub enum Fault {
    /// 503 with the real envelope and message "You have exceeded the maximum number of
    /// requests per minute allowed under your service level (/min)."
    RateLimited,
    /// Any status with the real `{"error":{"code","message"},"resources":{...}}` envelope.
    Status { status: u16, message: String },
    /// The given status with a non-JSON text body (e.g. 500 "oops not json").
    NonJson { status: u16, body: String },
    /// 200 with a body that is not valid JSON.
    InvalidJson,
    /// 200 with valid JSON of the wrong shape (`[1,2,3]` for Iris Detect paths, whose answers
    /// are objects, and `{"response": "nope"}` elsewhere).
    WrongShape,
    /// Waits this long before answering normally.
    Slow(Duration),
    /// Starts a 200 answer, sends part of the body, then breaks the connection (body cut
    /// mid-stream). The status and body are those of the normal answer: 200 for a valid
    /// request.
    CutBody,
    /// Answers 200 but drips the body a few bytes every `interval` (the normal answer, as for
    /// `CutBody`).
    SlowDrip { interval: Duration },
    /// Iris Investigate's HTTP-200 `limit_exceeded: true` answer (fixture
    /// iris-investigate-limit-exceeded.json).
    LimitExceeded,
}
