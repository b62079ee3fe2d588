//! The reply cache (issue 15): a repeated request is answered with the bytes of the first
//! reply without running its module, and a reply never crosses accounts, forms or settings,
//! never outlives the upstream cache, and is never kept for errors or for Iris-Detect.

use std::time::Duration;

use domaintools_fake::Fault;
use misp_domaintools::http::{Options, ReplyCacheConfig};
use serde_json::{json, Value};

use crate::common::server::{config, options, TestServer, KEY, USER};

const INVESTIGATE: &str = "/v1/iris-investigate/";

fn with_replies() -> Options {
    Options {
        reply_cache: ReplyCacheConfig::ON,
        ..options()
    }
}

async fn server(
    configure: impl FnOnce(&mut domaintools::ClientConfig) + Send + 'static,
) -> TestServer {
    TestServer::builder()
        .options(with_replies())
        .client(configure)
        .start()
        .await
}

/// POSTs `body` and returns the reply's exact bytes.
async fn raw(server: &TestServer, body: &Value) -> String {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/query", server.url))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "a reused reply is sent as the first one was"
    );
    response.text().await.unwrap()
}

fn hover(domain: &str) -> Value {
    json!({"module": "DomainTools-Iris-Investigate", "domain": domain, "config": config()})
}

#[tokio::test]
async fn a_repeated_request_gets_the_same_bytes_without_running_its_module() {
    let server = server(|config| config.learn_rate_limits = false).await;
    let first = raw(&server, &hover("google.com")).await;
    let lookups = "misp_domaintools_cache_lookups_total{layer=\"memory\"";
    assert_eq!(server.metric(lookups).await, 1.0);
    let second = raw(&server, &hover("google.com")).await;
    assert_eq!(first, second);
    assert!(first.contains("\"Domain Age\""), "{first}");
    assert_eq!(server.fake.calls_to(INVESTIGATE), 1);
    // The module did not run again: it would have looked the answer up in the upstream cache.
    assert_eq!(
        server.metric(lookups).await,
        1.0,
        "only the first request looked the answer up"
    );
    assert_eq!(
        server
            .metric("misp_domaintools_reply_cache_lookups_total{result=\"hit\"}")
            .await,
        1.0
    );
    assert_eq!(
        server
            .metric("misp_domaintools_queries_total{module=\"DomainTools-Iris-Investigate\",outcome=\"ok\"}")
            .await,
        2.0,
        "a reused reply is still a query answered"
    );
}

#[tokio::test]
async fn replies_never_cross_accounts_forms_or_settings() {
    let server = server(|_| {}).await;
    let good = server.query(hover("google.com")).await;
    assert!(good["error"].is_null(), "{good}");
    // The same lookup with a key DomainTools refuses: its own answer, not the cached one.
    let wrong_key = json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com",
        "config": {"username": USER, "api_key": "not-the-key", "results_limit": null}});
    let refused = server.query(wrong_key).await;
    // A hover's error is its one entry (issue 11).
    assert_eq!(
        refused["results"],
        json!([crate::common::error_entry(
            refused["error"].as_str().unwrap_or_default()
        )]),
        "{refused}"
    );
    assert!(
        refused["error"].as_str().unwrap().contains("403"),
        "{refused}"
    );
    // The stored form (event_id) gets its own reply: plain values, not {label: value}.
    let mut stored = hover("google.com");
    stored["event_id"] = json!("12");
    let stored = server.query(stored).await;
    assert!(stored["results"][0]["values"].is_array(), "{stored}");
    assert!(good["results"][0]["values"].is_object(), "{good}");
    // Other settings, other reply: Iris-Pivot's threshold changes which pivots are shown.
    let pivot = |threshold: &str| {
        json!({"module": "DomainTools-Iris-Pivot", "domain": "google.com",
            "config": {"username": USER, "api_key": KEY, "results_limit": null,
                "guided_pivot_threshold": threshold}})
    };
    let low = server.query(pivot("1")).await;
    let high = server.query(pivot("500")).await;
    assert_ne!(low, high);
}

#[tokio::test]
async fn errors_and_iris_detect_are_never_reused() {
    let server = server(|config| {
        // Even with Detect answers cached upstream, a Detect reply is not reused: the module
        // also escalates and blocks domains.
        config.cache.ttls.detect = Duration::from_secs(3600);
    })
    .await;
    server.fake.inject(INVESTIGATE, Fault::InvalidJson, Some(1));
    let failed = server.query(hover("google.com")).await;
    assert!(failed["error"].is_string(), "{failed}");
    let recovered = server.query(hover("google.com")).await;
    assert!(recovered["error"].is_null(), "{recovered}");
    assert_eq!(server.fake.calls_to(INVESTIGATE), 2);

    let detect: Value = serde_json::from_str(include_str!("../../examples/iris-detect-new.json"))
        .map(|mut request: Value| {
            request["config"]["username"] = json!(USER);
            request["config"]["api_key"] = json!(KEY);
            request
        })
        .unwrap();
    let first = server.query(detect.clone()).await;
    assert!(first["error"].is_null(), "{first}");
    server.query(detect).await;
    assert_eq!(
        server
            .metric(
                "misp_domaintools_queries_total{module=\"DomainTools-Iris-Detect\",outcome=\"ok\"}"
            )
            .await,
        2.0
    );
    assert_eq!(
        server
            .metric("misp_domaintools_reply_cache_lookups_total{result=\"hit\"}")
            .await,
        0.0
    );
}

#[tokio::test]
async fn no_reply_is_reused_when_answers_are_not_cached() {
    let server = server(|config| config.cache.max_bytes = 0).await;
    server.query(hover("google.com")).await;
    server.query(hover("google.com")).await;
    assert_eq!(server.fake.calls_to(INVESTIGATE), 2);
    let server = server_with_iris_ttl(Duration::ZERO).await;
    server.query(hover("google.com")).await;
    server.query(hover("google.com")).await;
    assert_eq!(server.fake.calls_to(INVESTIGATE), 2);
}

async fn server_with_iris_ttl(ttl: Duration) -> TestServer {
    server(move |config| config.cache.ttls.iris = ttl).await
}
