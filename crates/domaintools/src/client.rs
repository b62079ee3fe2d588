//! The DomainTools HTTP client: one shared connection pool, HMAC-signed requests, one method
//! per endpoint, and one place where HTTP statuses and error envelopes become typed errors.
//!
//! Every call costs the customer API quota, so every call goes through the same path:
//! response cache (in process, optionally Redis) → coalescing of identical calls in flight →
//! the account's rate limit for the product → the request, retried on 503 and broken
//! connections while the caller's deadline allows.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::Utc;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

use super::auth::{self, Credentials, SignHash};
use super::batch::EnrichBatcher;
use super::cache::{self, CacheConfig, Claim, Family, ResponseCache};
use super::error::{Error, Result};
use super::flight::Flights;
use super::limits::{self, RateLimits};
use super::types::{ErrorEnvelope, IrisResponse, IrisWire};
use crate::metrics::{ClientMetrics, EndpointReason, EndpointStatus};
use crate::tls::ExtraRoots;

/// Where DomainTools lives.
pub const DEFAULT_BASE_URL: &str = "https://api.domaintools.com";

/// Answers larger than this are refused: the largest real answers (reverse whois with 25,000
/// domains) are well under 1 MiB, so anything near this is broken or hostile.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Retries after the first attempt, for 503s and broken connections.
const MAX_RETRIES: u32 = 2;
/// First retry pause (doubled each time, ±50 % jitter).
const RETRY_BASE: Duration = Duration::from_millis(200);
/// A retry is only worth it when at least this much time is left after its pause.
const MIN_USEFUL_CALL: Duration = Duration::from_millis(250);

/// How the client finds an outbound proxy.
#[derive(Debug, Clone)]
pub enum Proxy {
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the process environment (reqwest's default).
    FromEnvironment,
    /// Always connect directly.
    None,
    /// Every request through this proxy URL (which may carry a password).
    Url(SecretString),
}

/// The proxy URL could not be parsed (the value is not shown: it may hold a password).
#[derive(Debug)]
pub(crate) struct UnparsableProxy;

impl Proxy {
    /// `builder` set up to reach its peer as this says: the API client and the feeds client
    /// share it.
    pub(crate) fn configure(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, UnparsableProxy> {
        Ok(match self {
            Proxy::FromEnvironment => builder,
            Proxy::None => builder.no_proxy(),
            Proxy::Url(url) => builder
                .proxy(reqwest::Proxy::all(url.expose_secret()).map_err(|_| UnparsableProxy)?),
        })
    }
}

/// `url` as it may be shown in logs and errors: a password in it is replaced by `****`; a URL
/// that cannot be parsed is not shown at all (it may hold one anyway).
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("****"));
            }
            parsed.to_string()
        }
        Err(_) => "(a URL that cannot be parsed)".to_owned(),
    }
}

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. [`DEFAULT_BASE_URL`] or a local fake; a path prefix is allowed and is not
    /// part of the signed path.
    pub base_url: String,
    /// Longest time one upstream call may take, connection included.
    pub timeout: Duration,
    /// Longest time to establish a connection.
    pub connect_timeout: Duration,
    /// Outbound proxy.
    pub proxy: Proxy,
    /// PEM certificates of authorities trusted besides the system's roots and the bundled
    /// Mozilla ones (a TLS-inspecting proxy's CA).
    pub extra_roots_pem: Option<Vec<u8>>,
    /// Sent as `app_partner` on every call (DomainTools' integration analytics).
    pub app_partner: String,
    /// Sent as `app_version` on every call.
    pub app_version: String,
    /// Response cache settings.
    pub cache: CacheConfig,
    /// How long single-domain Iris Enrich lookups wait for company before going out together
    /// (zero: no batching).
    pub enrich_batch_window: Duration,
    /// Whether to fetch each account's rate limits from `/v1/account` (once an hour).
    pub learn_rate_limits: bool,
    /// Where to count calls, waits, retries and cache use.
    pub metrics: ClientMetrics,
}

impl ClientConfig {
    /// Defaults for the real API with the given identification.
    pub fn new(app_partner: impl Into<String>, app_version: impl Into<String>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            timeout: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(3),
            proxy: Proxy::FromEnvironment,
            extra_roots_pem: None,
            app_partner: app_partner.into(),
            app_version: app_version.into(),
            cache: CacheConfig::default(),
            enrich_batch_window: Duration::from_millis(10),
            learn_rate_limits: true,
            metrics: ClientMetrics::default(),
        }
    }
}

/// Who is calling: the credentials to sign with, the `app_name` to report (the MISP module),
/// and by when the answer is needed.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The account.
    pub credentials: &'a Credentials,
    /// Reported as `app_name`.
    pub app_name: &'a str,
    /// The caller gives up at this instant (the MISP request's time budget).
    pub deadline: Option<Instant>,
    /// The whole budget, for messages ("within this request's 4.5 s budget").
    pub budget: Option<Duration>,
}

impl<'a> Caller<'a> {
    /// A caller without a deadline.
    pub fn new(credentials: &'a Credentials, app_name: &'a str) -> Self {
        Self {
            credentials,
            app_name,
            deadline: None,
            budget: None,
        }
    }

    /// The same caller, giving up `budget` after `start`.
    pub fn with_budget(mut self, start: Instant, budget: Duration) -> Self {
        self.deadline = Some(start + budget);
        self.budget = Some(budget);
        self
    }

    fn to_owned(self) -> OwnedCaller {
        OwnedCaller {
            credentials: self.credentials.clone(),
            app_name: self.app_name.to_owned(),
            deadline: self.deadline,
            budget: self.budget,
        }
    }
}

/// A [`Caller`] that can travel into shared or background work.
#[derive(Debug, Clone)]
pub(crate) struct OwnedCaller {
    pub(crate) credentials: Credentials,
    pub(crate) app_name: String,
    pub(crate) deadline: Option<Instant>,
    pub(crate) budget: Option<Duration>,
}

impl OwnedCaller {
    pub(crate) fn borrow(&self) -> Caller<'_> {
        Caller {
            credentials: &self.credentials,
            app_name: &self.app_name,
            deadline: self.deadline,
            budget: self.budget,
        }
    }
}

/// A DomainTools API client. Cheap to clone; clones share the connection pool, the cache, the
/// calls in flight and the rate limits.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base_url: String,
    timeout: Duration,
    app_partner: String,
    app_version: String,
    cache: ResponseCache,
    flights: Flights,
    limits: RateLimits,
    batcher: EnrichBatcher,
    learn_rate_limits: bool,
    metrics: ClientMetrics,
}

impl Client {
    /// Builds the client and its connection pool.
    pub fn new(config: ClientConfig) -> Result<Self> {
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&base_url)
            .map_err(|e| Error::Config(format!("the base URL cannot be parsed ({e})")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "base URL {:?} must start with https:// (or http:// for a local fake)",
                redacted_url(&base_url)
            )));
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("misp-domaintools/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            // A redirect would carry the signed request elsewhere: it is an error instead.
            .redirect(reqwest::redirect::Policy::none());
        builder = config
            .proxy
            .configure(builder)
            .map_err(|_| Error::Config("the proxy URL cannot be parsed".to_owned()))?;
        let roots = match &config.extra_roots_pem {
            Some(pem) => ExtraRoots::from_pem(pem)?,
            None => ExtraRoots::none(),
        };
        for root in roots.reqwest_certificates() {
            builder = builder.add_root_certificate(root);
        }
        let http = builder
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        let cache = ResponseCache::new(
            &config.cache,
            MAX_BODY_BYTES,
            &roots,
            config.metrics.clone(),
        )
        .map_err(Error::Config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base_url,
                timeout: config.timeout,
                app_partner: config.app_partner,
                app_version: config.app_version,
                cache,
                flights: Flights::default(),
                limits: RateLimits::default(),
                batcher: EnrichBatcher::new(config.enrich_batch_window),
                learn_rate_limits: config.learn_rate_limits,
                metrics: config.metrics,
            }),
        })
    }

    /// How long answers of an endpoint family are cached (zero: not cached, also when the
    /// cache has no memory and no Redis).
    pub fn cache_ttl(&self, family: Family) -> Duration {
        if self.inner.cache.enabled() {
            self.inner.cache.ttl(family)
        } else {
            Duration::ZERO
        }
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// What this client counts (calls, waits, retries, cache use), for a metrics registry.
    pub fn metrics(&self) -> &ClientMetrics {
        &self.inner.metrics
    }

    pub(crate) fn batcher(&self) -> &EnrichBatcher {
        &self.inner.batcher
    }

    /// `GET /v1/account`: the account's products, limits and usage.
    pub async fn account(&self, caller: Caller<'_>) -> Result<Value> {
        self.call(caller, Method::GET, "/v1/account", &[]).await
    }

    /// The Iris Enrich answer for up to 100 domains, in-band problems included (see
    /// [`Client::iris_enrich`]).
    pub(crate) async fn enrich_answer(
        &self,
        caller: Caller<'_>,
        domains: &[&str],
    ) -> Result<IrisResponse> {
        if domains.is_empty() || domains.len() > 100 {
            return Err(Error::InvalidInput(format!(
                "Iris Enrich takes 1 to 100 domains per call, not {}",
                domains.len()
            )));
        }
        // One domain per entry: Iris reads a comma as a separator, so `a.com,b.com` would be
        // several lookups charged to the caller.
        if let Some(listed) = domains.iter().find(|d| d.contains(',')) {
            return Err(Error::InvalidInput(format!(
                "{} is not a domain name: it contains a comma.",
                super::classic::shown(listed)
            )));
        }
        if let ([domain], true) = (domains, self.inner.batcher.enabled()) {
            let body = self.enrich_batched(caller, domain).await?;
            return decode_iris(ENRICH_PATH, &body);
        }
        let joined = domains.join(",");
        self.call_iris(
            caller,
            Method::POST,
            ENRICH_PATH,
            &[("domain", joined.as_str())],
        )
        .await
    }

    /// [`Client::call`] for the Iris endpoints.
    pub(crate) async fn call_iris(
        &self,
        caller: Caller<'_>,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<IrisResponse> {
        let body = self.send(caller, method, path, params).await?;
        decode_iris(path, &body)
    }

    /// Sends one signed request (through the cache, coalescing and rate limits) and decodes
    /// the answer. Classic and Iris endpoints wrap their data in `{"response": …}`; Iris Detect
    /// does not, so the wrapper is removed when present.
    pub async fn call<T: DeserializeOwned>(
        &self,
        caller: Caller<'_>,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<T> {
        let body = self.send(caller, method, path, params).await?;
        decode(path, &body)
    }

    /// The answer body of one request: from the cache, from an identical call in flight, or
    /// from DomainTools.
    async fn send(
        &self,
        caller: Caller<'_>,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Bytes> {
        self.learn_limits(caller, path);
        let family = Family::of(&method, path);
        let owned_params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if family == Family::Mutating {
            return self
                .fetch(caller.to_owned(), method, path.to_owned(), owned_params)
                .await;
        }
        let key = cache::key(caller.credentials, &method, path, params);
        let ttl = self.inner.cache.ttl(family);
        if !ttl.is_zero() {
            if let Some(body) = self.inner.cache.get(&key).await {
                return Ok(body);
            }
        }
        let this = self.clone();
        let owned = caller.to_owned();
        let (path_owned, key_owned) = (path.to_owned(), key.clone());
        let cached = !ttl.is_zero();
        let shared = self.inner.flights.run(&key, move || async move {
            let mut token = None;
            if cached {
                match this.inner.cache.claim(&key_owned, owned.deadline).await {
                    Claim::Answered(body) => {
                        this.count_coalesced(&path_owned);
                        return Ok(body);
                    }
                    Claim::Ours(taken) => token = taken,
                }
            }
            let result = this.fetch(owned, method, path_owned, owned_params).await;
            // Probing the answer costs a parse: only done when it may be kept.
            let kept = cached && result.as_ref().is_ok_and(|body| worth_keeping(body));
            if let (Ok(body), true) = (&result, kept) {
                this.inner.cache.put(&key_owned, body.clone(), ttl).await;
            }
            this.inner.cache.release(&key_owned, token, kept);
            result
        });
        let (result, joined) = self.until_deadline(caller, shared).await?;
        if joined {
            self.count_coalesced(path);
        }
        result
    }

    /// Waits for `work`, but not past the caller's own deadline (a coalesced call may have been
    /// started by a caller with more time).
    async fn until_deadline<T>(
        &self,
        caller: Caller<'_>,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T> {
        match caller.deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, work)
                .await
                .map_err(|_| Error::Deadline(caller.budget.unwrap_or_default())),
            None => Ok(work.await),
        }
    }

    fn count_coalesced(&self, path: &str) {
        self.inner
            .metrics
            .coalesced
            .get_or_create(&ClientMetrics::endpoint(limits::product(path)))
            .inc();
    }

    /// Fetches the account's rate limits in the background, once (per process and hour, as
    /// the account answer is cached), the first time an account is seen.
    fn learn_limits(&self, caller: Caller<'_>, path: &str) {
        if !self.inner.learn_rate_limits || path.starts_with("/v1/account") {
            return;
        }
        let account = account_id(caller.credentials);
        if !self.inner.limits.should_learn(&account) {
            return;
        }
        let this = self.clone();
        let owned = OwnedCaller {
            deadline: None,
            budget: None,
            ..caller.to_owned()
        };
        tokio::spawn(async move {
            match this.account(owned.borrow()).await {
                Ok(answer) => this.inner.limits.learn(&account, &answer),
                Err(error) => {
                    tracing::debug!(%error, "could not read the account's rate limits");
                    if error.is_transient() {
                        this.inner.limits.unlearn(&account);
                    }
                }
            }
        });
    }

    /// A turn under the account's rate limit for `product`: from the bucket all replicas
    /// share in Redis when the limit is known and Redis is there, else from the local one,
    /// after any 503 pause a replica shared.
    async fn reserve(
        &self,
        account: &str,
        product: &str,
        deadline: Option<Instant>,
    ) -> std::result::Result<Duration, limits::TooLate> {
        if let Some((capacity, per_second, limit)) = self.inner.limits.learned(account, product) {
            let max_wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if let Some(turn) = self
                .inner
                .cache
                .shared_reserve(account, product, capacity, per_second, max_wait)
                .await
            {
                return turn.map_err(|wait| limits::TooLate { wait, limit });
            }
        } else if let Some(left) = self.inner.cache.shared_pause_left(account, product).await {
            // Unknown limit: another replica's 503 pauses this one too.
            self.inner.limits.pause_for(account, product, left);
        }
        self.inner.limits.reserve(account, product, deadline)
    }

    /// One upstream request: waits its turn under the account's rate limit, sends, and retries
    /// 503s and broken connections while the deadline allows.
    pub(crate) async fn fetch(
        &self,
        caller: OwnedCaller,
        method: Method,
        path: String,
        params: Vec<(String, String)>,
    ) -> Result<Bytes> {
        let product = limits::product(&path);
        let account = account_id(&caller.credentials);
        let metrics = &self.inner.metrics;
        let mut attempt = 0;
        let mut last_error: Option<Error> = None;
        loop {
            match self.reserve(&account, product, caller.deadline).await {
                Ok(wait) if wait.is_zero() => {}
                Ok(wait) => {
                    metrics
                        .rate_limit_wait
                        .get_or_create(&ClientMetrics::endpoint(product))
                        .observe(wait.as_secs_f64());
                    tokio::time::sleep(wait).await;
                }
                Err(too_late) => {
                    metrics
                        .rate_limit_rejections
                        .get_or_create(&ClientMetrics::endpoint(product))
                        .inc();
                    // On a retry, DomainTools' own answer says more than our arithmetic.
                    if let Some(error) = last_error {
                        return Err(error);
                    }
                    return Err(Error::RateLimited {
                        product: product.to_owned(),
                        limit: too_late.limit,
                        wait: too_late.wait,
                    });
                }
            }
            let mut timeout = self.inner.timeout;
            let mut bounded_by_budget = false;
            if let Some(deadline) = caller.deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(last_error
                        .unwrap_or_else(|| Error::Deadline(caller.budget.unwrap_or_default())));
                }
                if left < timeout {
                    timeout = left;
                    bounded_by_budget = true;
                }
            }
            let result = self
                .attempt(caller.borrow(), &method, &path, &params, timeout, &account)
                .await;
            let error = match result {
                Ok(body) => return Ok(body),
                // A retry that ran out of budget: the failure that made it retry (a broken
                // connection, a 503) says more than "timeout", which would hide the cause.
                Err(Error::Timeout(_)) if bounded_by_budget => {
                    return Err(last_error
                        .unwrap_or_else(|| Error::Deadline(caller.budget.unwrap_or_default())));
                }
                Err(error) => error,
            };
            let retryable = matches!(
                error,
                Error::Api { status: 503, .. } | Error::Connect(_) | Error::Transport(_)
            );
            if !retryable || attempt >= MAX_RETRIES {
                return Err(error);
            }
            let pause = RETRY_BASE.mul_f64(f64::from(1u32 << attempt) * (0.5 + fastrand::f64()));
            if caller
                .deadline
                .is_some_and(|deadline| Instant::now() + pause + MIN_USEFUL_CALL > deadline)
            {
                return Err(error);
            }
            let reason = if matches!(error, Error::Api { .. }) {
                "503"
            } else {
                "connection"
            };
            metrics
                .upstream_retries
                .get_or_create(&EndpointReason {
                    endpoint: product,
                    reason,
                })
                .inc();
            tokio::time::sleep(pause).await;
            last_error = Some(error);
            attempt += 1;
        }
    }

    /// Sends one signed request; returns the body of a 2xx answer, or the typed error.
    async fn attempt(
        &self,
        caller: Caller<'_>,
        method: &Method,
        path: &str,
        params: &[(String, String)],
        timeout: Duration,
        account: &str,
    ) -> Result<Bytes> {
        let inner = &self.inner;
        let product = limits::product(path);
        let timestamp = auth::timestamp(Utc::now());
        let signature = auth::sign(caller.credentials, &timestamp, path, SignHash::Sha256);
        // The official client's parameter order: identification, auth, then the endpoint's own.
        let mut all: Vec<(&str, &str)> = Vec::with_capacity(params.len() + 6);
        all.push(("app_partner", &inner.app_partner));
        all.push(("app_name", caller.app_name));
        all.push(("app_version", &inner.app_version));
        all.push(("api_username", caller.credentials.username()));
        all.push(("timestamp", &timestamp));
        all.push(("signature", &signature));
        all.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));

        let url = format!("{}{path}", inner.base_url);
        let request = if *method == Method::GET {
            inner.http.get(url).query(&all)
        } else {
            inner.http.request(method.clone(), url).form(&all)
        };
        let mut guard = InFlight::new(&inner.metrics, product);
        let started = Instant::now();
        let result = async {
            let response = request
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| Error::from_reqwest(e, timeout))?;
            let status = response.status();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                let asked = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok());
                if let Some((capacity, per_second, _)) = inner.limits.learned(account, product) {
                    inner
                        .cache
                        .shared_drain(account, product, capacity, per_second);
                }
                let pause = inner
                    .limits
                    .slow_down(account, product, limits::retry_after(asked));
                if let Some(pause) = pause {
                    inner.cache.shared_pause(account, product, pause);
                }
            }
            if status.is_redirection() {
                return Err(redirected(status, response.url(), response.headers()));
            }
            let body = read_capped(response, timeout).await?;
            if status.is_success() {
                Ok(body)
            } else {
                Err(api_error(status, &body))
            }
        }
        .await;
        guard.finished();
        let status = match &result {
            Ok(_) => "200".to_owned(),
            Err(Error::Api { status, .. } | Error::Redirected { status, .. }) => status.to_string(),
            Err(Error::Timeout(_)) => "timeout".to_owned(),
            Err(Error::Connect(_)) => "connect_error".to_owned(),
            Err(_) => "transport_error".to_owned(),
        };
        inner
            .metrics
            .upstream_requests
            .get_or_create(&EndpointStatus {
                endpoint: product,
                status,
            })
            .inc();
        inner
            .metrics
            .upstream_duration
            .get_or_create(&ClientMetrics::endpoint(product))
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// The single-domain answer for `domain`, from the cache, a lookup in flight, or a batch.
    async fn enrich_batched(&self, caller: Caller<'_>, domain: &str) -> Result<Bytes> {
        self.learn_limits(caller, ENRICH_PATH);
        let key = enrich_key(caller.credentials, domain);
        let ttl = self.inner.cache.ttl(Family::Iris);
        if !ttl.is_zero() {
            if let Some(body) = self.inner.cache.get(&key).await {
                return Ok(body);
            }
        }
        let this = self.clone();
        let owned = caller.to_owned();
        let domain = domain.trim().to_lowercase();
        let cached = !ttl.is_zero();
        let key_owned = key.clone();
        let shared = self.inner.flights.run(&key, move || async move {
            let mut token = None;
            if cached {
                match this.inner.cache.claim(&key_owned, owned.deadline).await {
                    Claim::Answered(body) => {
                        this.count_coalesced(ENRICH_PATH);
                        return Ok(body);
                    }
                    Claim::Ours(taken) => token = taken,
                }
            }
            let result = this.inner.batcher.submit(this.clone(), owned, domain).await;
            // The batch keeps sound answers in the cache itself.
            let kept = cached && result.as_ref().is_ok_and(|body| worth_keeping(body));
            this.inner.cache.release(&key_owned, token, kept);
            result
        });
        let (result, joined) = self.until_deadline(caller, shared).await?;
        if joined {
            self.count_coalesced(ENRICH_PATH);
        }
        result
    }

    /// Sends one batch of Enrich lookups and hands each domain its own answer (cached one by
    /// one, so later single lookups hit the cache).
    pub(crate) async fn enrich_batch(
        &self,
        caller: &OwnedCaller,
        domains: &[String],
    ) -> Result<Vec<(String, Bytes)>> {
        self.inner
            .metrics
            .enrich_batch_size
            .observe(domains.len() as f64);
        let joined = domains.join(",");
        let body = self
            .fetch(
                caller.clone(),
                Method::POST,
                ENRICH_PATH.to_owned(),
                vec![("domain".to_owned(), joined)],
            )
            .await?;
        let mut response: Value = serde_json::from_slice(&body)
            .map_err(|e| Error::Decode(format!("{ENRICH_PATH}: not JSON: {e}")))?;
        let mut envelope = match response.get_mut("response").map(Value::take) {
            Some(inner) => inner,
            None => response,
        };
        // Only an answer of Enrich's shape is split and cached: `{"response": "nope"}` or an
        // envelope without `results` would otherwise be stored as every domain's answer and
        // replayed for the whole TTL after DomainTools recovered.
        let enrich_shaped = envelope.is_object() && envelope["results"].is_array();
        // Taken out once, so each domain's answer copies only the envelope's small fields.
        let results = match envelope.get_mut("results").map(Value::take) {
            Some(Value::Array(results)) => results,
            _ => Vec::new(),
        };
        let ttl = self.inner.cache.ttl(Family::Iris);
        let in_band_problem =
            envelope["limit_exceeded"] == true || envelope["error"].is_object() || !enrich_shaped;
        let mut by_domain: std::collections::HashMap<String, Vec<Value>> =
            std::collections::HashMap::new();
        for record in results {
            let domain = record["domain"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase();
            by_domain.entry(domain).or_default().push(record);
        }
        let mut out = Vec::with_capacity(domains.len());
        for domain in domains {
            let found = by_domain
                .get(&domain.to_ascii_lowercase())
                .cloned()
                .unwrap_or_default();
            let mut single = envelope.clone();
            if let Value::Object(map) = &mut single {
                map.insert("results_count".into(), Value::from(found.len()));
                let missing = if found.is_empty() {
                    vec![Value::from(domain.as_str())]
                } else {
                    vec![]
                };
                map.insert("results".into(), Value::Array(found));
                map.insert("missing_domains".into(), Value::Array(missing));
            }
            let bytes = Bytes::from(
                serde_json::to_vec(&serde_json::json!({"response": single})).unwrap_or_default(),
            );
            if !in_band_problem {
                let key = enrich_key(&caller.credentials, domain);
                self.inner.cache.put(&key, bytes.clone(), ttl).await;
            }
            out.push((domain.clone(), bytes));
        }
        Ok(out)
    }
}

const ENRICH_PATH: &str = "/v1/iris-enrich/";

fn enrich_key(credentials: &Credentials, domain: &str) -> String {
    cache::key(
        credentials,
        &Method::POST,
        ENRICH_PATH,
        &[("domain", domain)],
    )
}

/// Identifies an account for rate limiting without holding its key.
fn account_id(credentials: &Credentials) -> String {
    format!(
        "{}#{}",
        credentials.username(),
        credentials.key_fingerprint()
    )
}

/// Whether an answer may be cached: valid JSON that reports no in-band problem (Iris's
/// `limit_exceeded` or an `error` object inside a 200), so a broken answer is never replayed.
fn worth_keeping(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        response: Option<Inner>,
        #[serde(default)]
        error: Option<serde::de::IgnoredAny>,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        limit_exceeded: Option<bool>,
        #[serde(default)]
        error: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<Probe>(body) {
        Ok(probe) => {
            probe.error.is_none()
                && probe
                    .response
                    .is_none_or(|r| r.limit_exceeded != Some(true) && r.error.is_none())
        }
        Err(_) => false,
    }
}

/// An Iris answer: [`decode`], its records kept as slices of `body`.
fn decode_iris(path: &str, body: &Bytes) -> Result<IrisResponse> {
    decode::<IrisWire<'_>>(path, body).map(|wire| wire.into_response(body))
}

fn decode<'de, T: serde::Deserialize<'de>>(path: &str, body: &'de [u8]) -> Result<T> {
    /// Whether an object has a `response` member (its value is skipped, not built).
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        response: Present,
    }
    #[derive(Default)]
    struct Present(bool);
    impl<'de> serde::Deserialize<'de> for Present {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            serde::de::IgnoredAny::deserialize(d).map(|_| Present(true))
        }
    }
    #[derive(serde::Deserialize)]
    struct Wrapped<T> {
        response: T,
    }
    let failed = |e: serde_json::Error| match e.classify() {
        serde_json::error::Category::Data => {
            Error::Decode(format!("{path}: unexpected shape: {e}"))
        }
        _ => Error::Decode(format!("{path}: not JSON: {e}")),
    };
    let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let wrapped = is_object
        && serde_json::from_slice::<Probe>(body)
            .map_err(|e| Error::Decode(format!("{path}: not JSON: {e}")))?
            .response
            .0;
    if wrapped {
        serde_json::from_slice::<Wrapped<T>>(body)
            .map(|w| w.response)
            .map_err(failed)
    } else {
        serde_json::from_slice::<T>(body).map_err(failed)
    }
}

/// Counts a request in flight, and one given up before its answer (client gone, deadline).
struct InFlight<'a> {
    metrics: &'a ClientMetrics,
    product: &'static str,
    done: bool,
}

impl<'a> InFlight<'a> {
    fn new(metrics: &'a ClientMetrics, product: &'static str) -> Self {
        metrics.upstream_in_flight.inc();
        Self {
            metrics,
            product,
            done: false,
        }
    }

    fn finished(&mut self) {
        self.done = true;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.upstream_in_flight.dec();
        if !self.done {
            self.metrics
                .upstream_cancelled
                .get_or_create(&ClientMetrics::endpoint(self.product))
                .inc();
        }
    }
}

/// Reads a body, refusing absurd sizes.
async fn read_capped(mut response: reqwest::Response, timeout: Duration) -> Result<Bytes> {
    // Sized once when the length is announced: growing by doubling held up to three times a
    // large answer while it was copied.
    let announced = response
        .content_length()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n <= MAX_BODY_BYTES);
    let mut buf = BytesMut::with_capacity(announced.unwrap_or(0));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Error::from_reqwest(e, timeout))?
    {
        if buf.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Error::Decode(format!(
                "answer larger than {} MiB",
                MAX_BODY_BYTES / 1024 / 1024
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// A redirect, refused: following it would send the signed request (username, timestamp and
/// signature, which covers neither the host nor the parameters) to another address. The error
/// names only where it pointed (scheme, host and port), never its path or query.
fn redirected(status: StatusCode, from: &url::Url, headers: &reqwest::header::HeaderMap) -> Error {
    let to = headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|location| from.join(location).ok())
        .map_or_else(
            || "an address it did not give".to_owned(),
            |target| {
                let host = target.host_str().unwrap_or_default();
                match target.port() {
                    Some(port) => format!("{}://{host}:{port}", target.scheme()),
                    None => format!("{}://{host}", target.scheme()),
                }
            },
        );
    Error::Redirected {
        status: status.as_u16(),
        to,
    }
}

/// Maps a non-2xx answer to [`Error::Api`], taking the message from the error envelope.
fn api_error(status: StatusCode, body: &[u8]) -> Error {
    let message = serde_json::from_slice::<ErrorEnvelope>(body)
        .ok()
        .and_then(|envelope| envelope.error)
        .and_then(|error| error.message)
        .filter(|message| !message.trim().is_empty())
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("no error message in the answer")
                .to_owned()
        });
    Error::Api {
        status: status.as_u16(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelope_message_is_used() {
        let body = include_bytes!(
            "../../domaintools-fake/fixtures/domaintools/error-403-bad-credentials.json"
        );
        assert_eq!(
            api_error(StatusCode::FORBIDDEN, body).to_string(),
            "DomainTools API error 403: The credentials you entered do not match an active account."
        );
    }

    #[test]
    fn non_json_error_body_falls_back_to_the_reason_phrase() {
        assert_eq!(
            api_error(StatusCode::INTERNAL_SERVER_ERROR, b"oops not json").to_string(),
            "DomainTools API error 500: Internal Server Error"
        );
    }

    #[test]
    fn answers_decode_from_their_response_member_or_whole() {
        let wrapped: Value = decode("/p", br#"{"response": {"a": 1}, "other": [1, 2]}"#).unwrap();
        assert_eq!(wrapped, serde_json::json!({"a": 1}));
        let whole: Value = decode("/p", br#"{"watchlist_domains": []}"#).unwrap();
        assert_eq!(whole, serde_json::json!({"watchlist_domains": []}));
        let list: Vec<u8> = decode("/p", b" [1, 2]").unwrap();
        assert_eq!(list, vec![1, 2]);
        let null: Option<u8> = decode("/p", br#"{"response": null}"#).unwrap();
        assert_eq!(null, None);
        let error = decode::<Value>("/p", b"{\"response\": ")
            .unwrap_err()
            .to_string();
        assert!(error.contains("/p: not JSON"), "{error}");
        let error = decode::<Vec<u8>>("/p", br#"{"response": "x"}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("/p: unexpected shape"), "{error}");
    }

    #[test]
    fn passwords_in_urls_are_never_shown() {
        assert_eq!(
            redacted_url("https://user:s3cret@api.example.com/v1"),
            "https://user:****@api.example.com/v1"
        );
        assert_eq!(
            redacted_url("https://api.domaintools.com"),
            "https://api.domaintools.com/"
        );
        assert!(!redacted_url("http://u:s3cret@[nope").contains("s3cret"));
        let mut config = ClientConfig::new("MISP", "0");
        config.base_url = "ftp://u:s3cret@example.com".into();
        let error = Client::new(config).unwrap_err().to_string();
        assert!(
            error.contains("****") && !error.contains("s3cret"),
            "{error}"
        );
    }

    #[test]
    fn base_url_must_be_http() {
        let mut config = ClientConfig::new("MISP", "0");
        config.base_url = "ftp://example.com".into();
        assert!(matches!(Client::new(config), Err(Error::Config(_))));
    }

    #[test]
    fn only_sound_answers_are_cached() {
        assert!(worth_keeping(
            br#"{"response": {"results": [], "limit_exceeded": false}}"#
        ));
        assert!(worth_keeping(br#"{"watchlist_domains": []}"#));
        assert!(!worth_keeping(br#"{"response": {"limit_exceeded": true}}"#));
        assert!(!worth_keeping(br#"{"response": {"error": {"code": 413}}}"#));
        assert!(!worth_keeping(b"{\"response\": "));
        assert!(!worth_keeping(b"[1,2,3]"));
        assert!(!worth_keeping(br#"{"response": "nope"}"#));
    }

    #[test]
    fn iris_answers_decode_into_their_type_with_readable_errors() {
        let recorded = include_bytes!(
            "../../domaintools-fake/fixtures/domaintools/iris-investigate-domain.json"
        );
        let generic: IrisResponse = decode("/p", recorded).unwrap();
        assert!(!generic.results.is_empty());
        let bare: IrisResponse =
            decode("/p", br#"{"results": [{"domain": "a.example"}]}"#).unwrap();
        assert_eq!(bare.results.len(), 1);
        for (body, kind) in [
            (&b"{\"response\": \"nope\"}"[..], "unexpected shape"),
            (b"[1,2,3]", "unexpected shape"),
            (b"{\"response\": null}", "unexpected shape"),
            (b"{\"response\": ", "not JSON"),
            (b"oops", "not JSON"),
        ] {
            let generic = decode::<IrisResponse>("/p", body).unwrap_err().to_string();
            assert!(generic.contains(&format!("/p: {kind}")), "{generic}");
        }
    }

    #[test]
    fn account_ids_hold_no_key() {
        let id = account_id(&Credentials::new("user", "SECRET-KEY"));
        assert!(id.starts_with("user#"));
        assert!(!id.contains("SECRET"));
    }
}
