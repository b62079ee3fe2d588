//! Spending the customer's API quota once (issue 5), counted in the fake DomainTools API's
//! request log: the response cache, coalescing, Iris Enrich batching, separation of accounts,
//! rate-limit waits, budget exhaustion, retries, cancellation, and the metrics that show it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domaintools_fake::{FakeApi, Fault};
use misp_domaintools::http::Options;
use serde_json::{json, Value};

use crate::common::server::{config, options, TestServer, KEY, USER};

const INVESTIGATE: &str = "/v1/iris-investigate/";
const ENRICH: &str = "/v1/iris-enrich/";

fn hover(module: &str, domain: &str) -> Value {
    json!({"module": module, "domain": domain, "config": config()})
}

/// Waits until the background read of the account's limits has happened.
async fn limits_learned(server: &TestServer) {
    let started = Instant::now();
    while server.fake.calls_to("/v1/account") == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no account lookup"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn fifty_identical_hovers_cost_one_call_and_repeats_cost_none() {
    let server = Arc::new(TestServer::start().await);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move {
                server
                    .query(hover("DomainTools-Iris-Investigate", "google.com"))
                    .await
            })
        })
        .collect();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply["results"].as_array().unwrap().len(), 61, "{reply}");
    }
    assert_eq!(
        server.fake.calls_to(INVESTIGATE),
        1,
        "50 concurrent hovers, one upstream call"
    );

    let reply = server
        .query(hover("DomainTools-Iris-Investigate", "WWW.Google.com"))
        .await;
    assert_eq!(reply["results"].as_array().unwrap().len(), 61);
    assert_eq!(
        server.fake.calls_to(INVESTIGATE),
        1,
        "the same lookup within the TTL costs nothing"
    );

    let shared = server
        .metric("misp_domaintools_coalesced_requests_total")
        .await
        + server
            .metric("misp_domaintools_cache_lookups_total{layer=\"memory\",result=\"hit\"}")
            .await;
    assert!(
        shared >= 50.0,
        "49 joined or hit the cache, plus the repeat: {shared}"
    );
}

#[tokio::test]
async fn two_hundred_fifty_enrich_hovers_go_out_as_three_calls() {
    // A wide batch window so every request surely arrives within it, whatever the machine load
    // (the default, 10 ms, is for requests that arrive together, as MISP's bulk enrichment sends).
    let server = Arc::new(
        TestServer::builder()
            .client(|c| c.enrich_batch_window = Duration::from_millis(1500))
            .start()
            .await,
    );
    let domains: Vec<String> = (1..=250)
        .map(|i| {
            if i % 25 == 0 {
                format!("no-such-domain-{i}.com")
            } else {
                format!("synthetic-{i:04}.com")
            }
        })
        .collect();
    let tasks: Vec<_> = domains
        .iter()
        .map(|domain| {
            let (server, domain) = (server.clone(), domain.clone());
            tokio::spawn(async move {
                (
                    domain.clone(),
                    server
                        .query(hover("DomainTools-Iris-Enrich", &domain))
                        .await,
                )
            })
        })
        .collect();
    for task in tasks {
        let (domain, reply) = task.await.unwrap();
        if domain.starts_with("no-such") {
            assert_eq!(
                reply,
                crate::common::hover_error("No results found."),
                "{domain}"
            );
        } else {
            let age = reply["results"]
                .as_array()
                .unwrap()
                .iter()
                .find_map(|e| e["values"]["Domain Age"].as_str())
                .unwrap_or_else(|| panic!("{domain}: {reply}"))
                .to_owned();
            assert!(
                age.starts_with(&format!("{domain} created ")),
                "each caller gets its own domain: {age}"
            );
        }
    }
    let calls: Vec<_> = server
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.path == ENRICH)
        .collect();
    let shown: Vec<usize> = calls
        .iter()
        .map(|c| {
            c.params
                .iter()
                .find(|(k, _)| k == "domain")
                .unwrap()
                .1
                .split(',')
                .count()
        })
        .collect();
    assert_eq!(
        calls.len(),
        3,
        "250 domains in calls of at most 100: {shown:?}"
    );
    let mut sizes: Vec<usize> = calls
        .iter()
        .map(|c| {
            c.params
                .iter()
                .find(|(k, _)| k == "domain")
                .unwrap()
                .1
                .split(',')
                .count()
        })
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [50, 100, 100]);

    // Each domain of the batch is now cached on its own.
    server
        .query(hover("DomainTools-Iris-Enrich", "synthetic-0001.com"))
        .await;
    assert_eq!(server.fake.calls_to(ENRICH), 3);
}

#[tokio::test]
async fn accounts_never_share_cached_data() {
    let fake = FakeApi::new()
        .with_user(USER, KEY)
        .with_user("second-user", "second-key");
    let server = TestServer::builder().fake(fake).start().await;
    let first = server
        .query(hover("DomainTools-Iris-Enrich", "google.com"))
        .await;
    assert_eq!(first["results"].as_array().unwrap().len(), 51);
    let other = server
        .query(
            json!({"module": "DomainTools-Iris-Enrich", "domain": "google.com",
                      "config": {"username": "second-user", "api_key": "second-key"}}),
        )
        .await;
    assert_eq!(other["results"].as_array().unwrap().len(), 51);
    assert_eq!(
        server.fake.calls_to(ENRICH),
        2,
        "another account makes its own call"
    );

    let wrong_key = server
        .query(
            json!({"module": "DomainTools-Iris-Enrich", "domain": "google.com",
                      "config": {"username": USER, "api_key": "guessed-key"}}),
        )
        .await;
    assert_eq!(
        wrong_key,
        crate::common::hover_error("DomainTools API error 403: The credentials you entered do not match an active account."),
        "a wrong key for a cached username gets DomainTools' 403, not the cached data"
    );
    assert_eq!(server.fake.calls_to(ENRICH), 3);
}

#[tokio::test]
async fn calls_wait_their_turn_and_say_so_when_the_turn_is_past_the_budget() {
    // 12 calls a minute: a burst of 12, then one every 5 s. The margins below hold however
    // slowly the machine runs the burst (its refill only shortens the first wait).
    let fake = FakeApi::new()
        .with_user(USER, KEY)
        .with_per_minute_limit("iris-investigate", 12);
    let server = Arc::new(TestServer::builder().fake(fake).start().await);
    // The first call only starts the background read of the account's limits: it takes no turn.
    server
        .query(hover("DomainTools-Iris-Investigate", "synthetic-0000.com"))
        .await;
    limits_learned(&server).await;
    for i in 1..=12 {
        let reply = server
            .query(hover(
                "DomainTools-Iris-Investigate",
                &format!("synthetic-{i:04}.com"),
            ))
            .await;
        assert!(reply.get("error").is_none(), "{reply}");
    }
    // The 13th waits up to 5 s: within an enrichment's 9.5 s budget.
    let started = Instant::now();
    let waited = {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .query(
                    json!({"module": "DomainTools-Iris-Investigate", "domain": "synthetic-0013.com",
                              "event_id": "1", "config": config()}),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.fake.calls_to(INVESTIGATE),
        13,
        "the next one is waiting its turn"
    );
    // The 14th would wait more than 5 s more: past a hover's 4.5 s budget, so it is refused at once.
    let refused_at = Instant::now();
    let refused = server
        .query(hover("DomainTools-Iris-Investigate", "synthetic-0014.com"))
        .await;
    assert!(
        refused_at.elapsed() < Duration::from_secs(1),
        "refused at once: {:?}",
        refused_at.elapsed()
    );
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .starts_with("DomainTools rate limit for iris-investigate (12 calls a minute) reached"),
        "{refused}"
    );
    let waited = waited.await.unwrap();
    assert!(waited.get("error").is_none(), "{waited}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the 13th call waited its turn: {:?}",
        started.elapsed()
    );
    assert_eq!(
        server.fake.calls_to(INVESTIGATE),
        14,
        "the refused call never went out"
    );
    assert!(
        server
            .metric("misp_domaintools_rate_limit_wait_seconds_count")
            .await
            >= 1.0
    );
    assert_eq!(
        server
            .metric("misp_domaintools_rate_limit_rejections_total")
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_503_is_retried_within_the_budget() {
    let server = TestServer::start().await;
    server.fake.inject(ENRICH, Fault::RateLimited, Some(1));
    let reply = server
        .query(json!({"module": "DomainTools-Iris-Enrich", "domain": "google.com", "event_id": "7", "config": config()}))
        .await;
    // Stored: 51 entries, the same type and value merged (issue 11).
    assert_eq!(reply["results"].as_array().unwrap().len(), 38, "{reply}");
    assert_eq!(server.fake.calls_to(ENRICH), 2);
    assert_eq!(
        server
            .metric(
                "misp_domaintools_upstream_retries_total{endpoint=\"iris-enrich\",reason=\"503\"}"
            )
            .await,
        1.0
    );
}

#[tokio::test]
async fn the_hover_budget_ends_upstream_work_with_a_clear_error() {
    let options = Options {
        hover_budget: Duration::from_millis(800),
        ..options()
    };
    let server = TestServer::builder().options(options).start().await;
    server
        .fake
        .inject(INVESTIGATE, Fault::Slow(Duration::from_secs(10)), None);
    let started = Instant::now();
    let reply = server
        .query(hover("DomainTools-Iris-Investigate", "google.com"))
        .await;
    assert_eq!(
        reply,
        crate::common::hover_error(
            "Timeout: DomainTools did not answer within this request's time budget (0.8 s)."
        )
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_call() {
    let server = TestServer::start().await;
    server
        .fake
        .inject(INVESTIGATE, Fault::Slow(Duration::from_secs(20)), None);
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let gone = impatient
        .post(format!("{}/query", server.url))
        .body(hover("DomainTools-Iris-Investigate", "google.com").to_string())
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up");
    assert_eq!(server.fake.calls_to(INVESTIGATE), 1, "the call had started");
    let started = Instant::now();
    loop {
        let text = server.metrics_text().await;
        let cancelled =
            crate::common::server::sum_metric(&text, "misp_domaintools_upstream_cancelled_total");
        let in_flight =
            crate::common::server::sum_metric(&text, "misp_domaintools_upstream_in_flight");
        if cancelled >= 1.0 && in_flight == 0.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "upstream work still running:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_cover_the_work_and_hold_no_secret() {
    let server = TestServer::start().await;
    server
        .query(hover("DomainTools-Iris-Investigate", "google.com"))
        .await;
    server
        .query(hover("DomainTools-Iris-Investigate", "google.com"))
        .await;
    server.query(hover("DomainTools-Nope", "google.com")).await;
    let text = server.metrics_text().await;
    for family in [
        "misp_domaintools_queries_total{module=\"DomainTools-Iris-Investigate\",outcome=\"ok\"} 2",
        "misp_domaintools_queries_total{module=\"unknown\",outcome=\"error\"} 1",
        "misp_domaintools_query_duration_seconds_bucket{le=\"+Inf\",module=\"DomainTools-Iris-Investigate\"} 2",
        "misp_domaintools_upstream_requests_total{endpoint=\"iris-investigate\",status=\"200\"} 1",
        "misp_domaintools_upstream_duration_seconds_count{endpoint=\"iris-investigate\"} 1",
        "misp_domaintools_cache_lookups_total{layer=\"memory\",result=\"hit\"} 1",
    ] {
        assert!(text.contains(family), "{family} missing from\n{text}");
    }
    for secret in [KEY, USER, "google.com", "signature"] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let options = Options {
        metrics_endpoint: false,
        ..options()
    };
    let server = TestServer::builder().options(options).start().await;
    let status = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
}
