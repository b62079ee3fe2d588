//! A real server on loopback in front of a real fake DomainTools API, for end-to-end tests.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use domaintools::{Client, ClientConfig, Proxy};
use domaintools_fake::{FakeApi, RunningFake};
use misp_domaintools::http::{serve, AppState, Options};
use misp_domaintools::registry::{Registry, MODULES};
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// The test account the fake API knows.
pub const USER: &str = "misp-test";
/// Its key: recognisable, so tests can prove it never leaks.
pub const KEY: &str = "SECRET-test-key-0123456789";

/// The day the reference's golden outputs were produced.
pub fn golden_day() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap()
}

/// A running server and the fake it talks to.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The fake DomainTools API (request log, faults).
    pub fake: FakeApi,
    http: reqwest::Client,
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

/// Server options with the golden day as "now".
pub fn options() -> Options {
    Options {
        now: golden_day,
        ..Options::default()
    }
}

/// A server with default options and an 8 s upstream timeout.
pub async fn start() -> TestServer {
    start_with(
        FakeApi::new().with_user(USER, KEY),
        options(),
        Duration::from_secs(8),
    )
    .await
}

/// A server with the given fake, options and upstream timeout.
pub async fn start_with(fake: FakeApi, options: Options, upstream_timeout: Duration) -> TestServer {
    start_custom(fake, options, |config| config.timeout = upstream_timeout).await
}

/// A server with the given fake and options, and client settings changed by `configure`.
pub async fn start_custom(
    fake: FakeApi,
    options: Options,
    configure: impl FnOnce(&mut ClientConfig),
) -> TestServer {
    let running = fake.spawn().await.unwrap();
    let base_url = running.base_url();
    serve_for(fake, Some(running), &base_url, options, configure).await
}

/// A server whose DomainTools API is `api_url` (for instance a port nothing listens on); the
/// returned fake is not running and sees nothing.
pub async fn start_at(api_url: &str) -> TestServer {
    serve_for(FakeApi::new(), None, api_url, options(), |_| {}).await
}

async fn serve_for(
    fake: FakeApi,
    running: Option<RunningFake>,
    api_url: &str,
    options: Options,
    configure: impl FnOnce(&mut ClientConfig),
) -> TestServer {
    let mut config = ClientConfig::new("MISP", env!("CARGO_PKG_VERSION"));
    config.base_url = api_url.to_owned();
    config.proxy = Proxy::None;
    configure(&mut config);
    let state = AppState::new(
        Registry::new(MODULES).unwrap(),
        Client::new(config).unwrap(),
        options,
    );
    let listener = misp_domaintools::http::bind("127.0.0.1", 0).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, state, async {
        let _ = rx.await;
    }));
    TestServer {
        url,
        fake,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        _running: running,
        shutdown: Some(tx),
    }
}

impl TestServer {
    /// POSTs `body` to /query; returns the status and the JSON reply.
    pub async fn post(&self, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/query", self.url))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// The `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The sum of the metric samples whose line starts with `prefix` (name and labels).
    pub async fn metric(&self, prefix: &str) -> f64 {
        sum_metric(&self.metrics_text().await, prefix)
    }

    /// POSTs `body` and expects HTTP 200.
    pub async fn query(&self, body: Value) -> Value {
        let (status, reply) = self.post(&body).await;
        assert_eq!(status, 200, "{reply}");
        reply
    }
}

/// A module config with the test account, as MISP sends it.
pub fn config() -> Value {
    json!({"username": USER, "api_key": KEY, "results_limit": null})
}

/// The sum of the samples of a Prometheus text whose line starts with `prefix`.
pub fn sum_metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
