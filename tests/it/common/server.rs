//! The one harness of the end-to-end tests: the test account, the golden day, recorded answers,
//! and one builder that puts our server (over TCP, as a router for `oneshot`, or as the real
//! binary in `child.rs`) or a bare client in front of the fake DomainTools API.
//!
//! The nightly fuzz target includes this file by `#[path]` (through `fuzz_entry.rs`), so it
//! uses nothing of the test binary but the crates.

#![allow(dead_code, unreachable_pub)]

use axum::body::Body;
use axum::http::Request;
use chrono::{DateTime, TimeZone, Utc};
use domaintools::{Client, ClientConfig, Proxy};
use domaintools_fake::{FakeApi, RunningFake};
use misp_domaintools::http::{router, serve, AppState, Options};
use misp_domaintools::protocol::DefaultCredentials;
use misp_domaintools::registry::{Registry, MODULES};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tower::ServiceExt;

/// The test account the fake API knows.
pub const USER: &str = "misp-test";
/// Its key: recognisable, so tests can prove it never leaks.
pub const KEY: &str = "SECRET-test-key-0123456789";

/// The day the reference's golden outputs were produced.
pub fn golden_day() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap()
}

/// Server options with the golden day as "now".
pub fn options() -> Options {
    Options {
        now: golden_day,
        ..Options::default()
    }
}

/// A module config with the test account, as MISP sends it.
pub fn config() -> Value {
    json!({"username": USER, "api_key": KEY, "results_limit": null})
}

/// A fake DomainTools API that knows the test account.
pub fn fake() -> FakeApi {
    FakeApi::new().with_user(USER, KEY)
}

/// A recorded DomainTools answer (the whole envelope) from the fake's fixtures.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/{name}", domaintools_fake::FIXTURES_DIR);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An HTTP client that never goes through a proxy from the environment.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The sum of the samples of a Prometheus text whose line starts with `prefix`.
pub fn sum_metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The status and JSON (Null when not JSON) of an answer.
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The settings of a client of the fake at `api_url` (never through a proxy).
pub fn client_config(app_partner: &str, api_url: &str) -> ClientConfig {
    let mut config = ClientConfig::new(app_partner, env!("CARGO_PKG_VERSION"));
    config.base_url = api_url.to_owned();
    config.proxy = Proxy::None;
    config
}

type Configure = Box<dyn FnOnce(&mut ClientConfig) + Send>;

/// What to start: which fake, which options, which client settings.
pub struct Builder {
    fake: FakeApi,
    api_url: Option<String>,
    options: Options,
    app_partner: &'static str,
    configure: Vec<Configure>,
}

impl Builder {
    /// The fake to run (default: [`fake`]).
    pub fn fake(mut self, fake: FakeApi) -> Self {
        self.fake = fake;
        self
    }

    /// Server options (default: [`options`], the golden day as "now").
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Credentials for requests whose config has none.
    pub fn default_credentials(mut self, username: &str, api_key: &str) -> Self {
        self.options.default_credentials = DefaultCredentials {
            username: Some(username.to_owned()),
            api_key: Some(api_key.into()),
        };
        self
    }

    /// Changes the client settings (after the base URL and proxy are set).
    pub fn client(mut self, configure: impl FnOnce(&mut ClientConfig) + Send + 'static) -> Self {
        self.configure.push(Box::new(configure));
        self
    }

    /// The client's `app_partner` (default `MISP`; the OpenCTI side says `OpenCTI`).
    pub fn app_partner(mut self, app_partner: &'static str) -> Self {
        self.app_partner = app_partner;
        self
    }

    /// Talk to `api_url` (for instance a port nothing listens on) instead of running the fake;
    /// the fake then sees nothing.
    pub fn api_url(mut self, api_url: &str) -> Self {
        self.api_url = Some(api_url.to_owned());
        self
    }

    /// Runs the fake (unless [`Builder::api_url`] was given); its URL and the handle.
    async fn run_fake(&mut self) -> (String, Option<RunningFake>) {
        match &self.api_url {
            Some(url) => (url.clone(), None),
            None => {
                let running = self.fake.spawn().await.expect("the fake API on loopback");
                (running.base_url(), Some(running))
            }
        }
    }

    fn client_config(&mut self, api_url: &str) -> ClientConfig {
        let mut config = client_config(self.app_partner, api_url);
        for configure in self.configure.drain(..) {
            configure(&mut config);
        }
        config
    }

    /// The fake alone (the tests of the fake itself, and the real binary in `child.rs`).
    pub async fn start_fake(mut self) -> TestFake {
        let (base_url, running) = self.run_fake().await;
        TestFake {
            fake: self.fake,
            base_url,
            _running: running,
        }
    }

    /// The DomainTools client alone, in front of the fake.
    pub async fn start_client(mut self) -> TestClient {
        let (api_url, running) = self.run_fake().await;
        let config = self.client_config(&api_url);
        TestClient {
            client: Client::new(config).unwrap(),
            api_url,
            fake: self.fake,
            _running: running,
        }
    }

    async fn state(&mut self) -> (AppState, Option<RunningFake>) {
        let (api_url, running) = self.run_fake().await;
        let config = self.client_config(&api_url);
        let options = std::mem::take(&mut self.options);
        let state = AppState::new(
            Registry::new(MODULES).unwrap(),
            Client::new(config).unwrap(),
            options,
        );
        (state, running)
    }

    /// The server's router, for requests through `oneshot` (no socket on our side).
    pub async fn router(mut self) -> TestRouter {
        let (state, running) = self.state().await;
        TestRouter {
            app: router(state),
            fake: self.fake,
            _running: running,
        }
    }

    /// Our server on a loopback port.
    pub async fn start(mut self) -> TestServer {
        let (state, running) = self.state().await;
        let listener = misp_domaintools::http::bind("127.0.0.1", 0).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, state, async {
            let _ = rx.await;
        }));
        TestServer {
            url,
            fake: self.fake,
            http: http_client(),
            _running: running,
            shutdown: Some(tx),
        }
    }
}

/// A running fake DomainTools API.
pub struct TestFake {
    /// Its request log and faults.
    pub fake: FakeApi,
    base_url: String,
    _running: Option<RunningFake>,
}

impl TestFake {
    /// `http://127.0.0.1:PORT` (or what [`Builder::api_url`] said).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }
}

/// A DomainTools client and the fake it talks to.
pub struct TestClient {
    pub client: Client,
    /// Where the client sends its calls.
    pub api_url: String,
    /// The fake DomainTools API (request log, faults).
    pub fake: FakeApi,
    _running: Option<RunningFake>,
}

/// The server's router and the fake behind it.
pub struct TestRouter {
    pub app: axum::Router,
    /// The fake DomainTools API (request log, faults).
    pub fake: FakeApi,
    _running: Option<RunningFake>,
}

impl TestRouter {
    /// Sends `request` through the router; the status and the body.
    pub async fn send(&self, request: Request<Body>) -> Result<(u16, axum::body::Bytes), String> {
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| format!("router: {e}"))?;
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024)
            .await
            .map_err(|e| format!("reply body: {e}"))?;
        Ok((status, bytes))
    }

    /// Sends `request`; the status and the JSON reply (Null when not JSON).
    pub async fn json(&self, request: Request<Body>) -> (u16, Value) {
        let (status, bytes) = self.send(request).await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// A running server and the fake it talks to.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The fake DomainTools API (request log, faults).
    pub fake: FakeApi,
    /// A client for it (no proxy).
    pub http: reqwest::Client,
    _running: Option<RunningFake>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TestServer {
    /// What to start; by default the fake knows the test account, "now" is the golden day and
    /// the client has its default settings.
    pub fn builder() -> Builder {
        Builder {
            fake: fake(),
            api_url: None,
            options: options(),
            app_partner: "MISP",
            configure: Vec::new(),
        }
    }

    /// A server with the defaults of [`TestServer::builder`].
    pub async fn start() -> TestServer {
        Self::builder().start().await
    }

    /// POSTs raw bytes to /query; the status and the JSON reply (Null if not JSON).
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/query", self.url))
            .body(body)
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }

    /// POSTs `body` to /query; returns the status and the JSON reply.
    pub async fn post(&self, body: &Value) -> (u16, Value) {
        self.post_raw(body.to_string()).await
    }

    /// POSTs `body` and expects HTTP 200.
    pub async fn query(&self, body: Value) -> Value {
        let (status, reply) = self.post(&body).await;
        assert_eq!(status, 200, "{reply}");
        reply
    }

    /// The `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        metrics_text(&self.http, &self.url).await
    }

    /// The sum of the metric samples whose line starts with `prefix` (name and labels).
    pub async fn metric(&self, prefix: &str) -> f64 {
        sum_metric(&self.metrics_text().await, prefix)
    }
}

/// The `/metrics` text of the server at `url`.
pub async fn metrics_text(http: &reqwest::Client, url: &str) -> String {
    http.get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
