//! Reliability: every upstream failure the fake DomainTools API can produce, against every
//! module family, over real TCP. Each must give MISP a clear error (HTTP 200, `results` a list,
//! an `error` naming DomainTools, never the key) within the request budget, and leave the
//! server serving: `/healthcheck` and a good query still work afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domaintools_fake::Fault;
use serde_json::{json, Value};

use crate::common::server::{config, TestServer, KEY, USER};

/// The upstream timeout of these servers: short, so timeout faults are quick to provoke.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(1);
/// The request budget every query carries (misp-modules' `timeout` field, seconds).
const BUDGET_S: u64 = 6;
/// Scheduling slack on a 2-core machine running other builds.
const SLACK: Duration = Duration::from_secs(2);

/// One module and a request that, without faults, succeeds with results.
struct Case {
    module: &'static str,
    request: Value,
}

fn cases() -> Vec<Case> {
    let with_budget = |mut request: Value| {
        request["timeout"] = json!(BUDGET_S);
        request
    };
    vec![
        Case {
            module: "DomainTools-Iris-Investigate",
            request: with_budget(
                json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com", "config": config()}),
            ),
        },
        Case {
            module: "DomainTools-Iris-Enrich",
            request: with_budget(
                json!({"module": "DomainTools-Iris-Enrich", "domain": "google.com", "config": config()}),
            ),
        },
        Case {
            module: "DomainTools-Iris-Pivot",
            request: with_budget(
                json!({"module": "DomainTools-Iris-Pivot", "ip-src": "142.251.33.78",
                "event_id": "56", "config": config()}),
            ),
        },
        Case {
            module: "DomainTools-Iris-Import",
            request: with_budget(
                json!({"module": "DomainTools-Iris-Import", "event_id": "56",
                "data": "VTJGc2RHVmtYMTliTmY0NlNaTW4K", "config": config()}),
            ),
        },
        Case {
            module: "DomainTools-Iris-Detect",
            request: with_budget(
                json!({"module": "DomainTools-Iris-Detect", "event_id": "56", "data": "",
                "config": {"username": USER, "api_key": KEY, "results_limit": null, "api_endpoint": "0",
                           "test_mode": "0", "monitor_id": "", "risk_score_ranges": "0",
                           "discovered_date": "", "changed_since": "", "escalated_since": "",
                           "escalation_types": "0", "tag_domains_as_blocked": "0",
                           "include_domain_data": "0"}}),
            ),
        },
        Case {
            module: "DomainTools-Analyze",
            request: with_budget(
                json!({"module": "DomainTools-Analyze", "domain": "google.com", "config": config()}),
            ),
        },
        Case {
            module: "DomainTools-Pivot",
            request: with_budget(
                json!({"module": "DomainTools-Pivot", "ip-dst": "199.30.228.112",
                "event_id": "56", "config": config()}),
            ),
        },
        Case {
            module: "DomainTools-Historic",
            request: with_budget(
                json!({"module": "DomainTools-Historic", "domain": "google.com",
                "event_id": "56", "config": config()}),
            ),
        },
    ]
}

/// A fault, what it stands for, and words one of which the error must contain to count as
/// clear (the status, or the kind of failure).
fn faults() -> Vec<(&'static str, Fault, &'static [&'static str])> {
    vec![
        (
            "timeout",
            Fault::Slow(Duration::from_secs(30)),
            &["did not answer within 1 s", "Timeout."],
        ),
        ("503 rate limited", Fault::RateLimited, &["503"]),
        (
            "403",
            Fault::Status {
                status: 403,
                message: "You are not authorized to access this API product.".into(),
            },
            &["403"],
        ),
        (
            "404",
            Fault::Status {
                status: 404,
                message: "Not found.".into(),
            },
            &["404", "No results", "no results", "not found", "Not found"],
        ),
        (
            "500 non-JSON",
            Fault::NonJson {
                status: 500,
                body: "oops not json".into(),
            },
            &["500"],
        ),
        ("body cut mid-stream", Fault::CutBody, &["connection"]),
        (
            "slow drip",
            Fault::SlowDrip {
                interval: Duration::from_millis(200),
            },
            &["did not answer within 1 s", "Timeout.", "connection"],
        ),
        ("invalid JSON", Fault::InvalidJson, &["could not be read"]),
        (
            "valid JSON, wrong shape",
            Fault::WrongShape,
            &[
                "could not be read",
                "unexpected",
                "no results",
                "No results",
            ],
        ),
        (
            "Iris limit_exceeded",
            Fault::LimitExceeded,
            &["imit exceeded", "could not be read"],
        ),
    ]
}

async fn server() -> TestServer {
    TestServer::builder()
        .client(|client| client.timeout = UPSTREAM_TIMEOUT)
        .start()
        .await
}

/// The error text of a reply, if it is a clear error MISP can show; why not otherwise.
fn clear_error(status: u16, reply: &Value) -> Result<&str, String> {
    if status != 200 {
        return Err(format!(
            "HTTP {status} (MISP hides anything but 200): {reply}"
        ));
    }
    if !reply["results"].is_array() {
        return Err(format!("`results` must stay a list: {reply}"));
    }
    let Some(error) = reply["error"].as_str() else {
        return Err(format!("no error in {}", truncate(reply)));
    };
    if error.trim().is_empty() {
        return Err("empty error".to_owned());
    }
    if error.contains(KEY) || error.contains("signature=") {
        return Err(format!("a secret in {error}"));
    }
    if error.len() > 2_000 {
        return Err(format!(
            "an error is a sentence, not a dump ({} bytes)",
            error.len()
        ));
    }
    Ok(error)
}

fn truncate(value: &Value) -> String {
    value.to_string().chars().take(300).collect()
}

async fn assert_healthy(url: &str) {
    let bytes = reqwest::get(format!("{url}/healthcheck"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let health: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert_eq!(health, json!({"status": true}));
}

/// After a fault, the same server must still be healthy and answer a good query.
async fn still_serving(server: &TestServer, case: &Case) {
    assert_healthy(&server.url).await;
    let (status, reply) = server.post(&case.request).await;
    assert_eq!(status, 200);
    // Results, not necessarily complete: Historic's google.com has no recorded whois history,
    // so its good query says so next to the hosting history.
    assert!(
        reply["results"].as_array().is_some_and(|r| !r.is_empty()),
        "{}: good query after the faults: {}",
        case.module,
        truncate(&reply)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upstream_fault_gives_every_module_a_clear_error_in_budget() {
    // All modules at once, so the timeout faults cost seconds, not minutes. Each fault gets a
    // fresh server: after a 503 the client rightly slows down for that account, which would
    // make every later fault in the list a rate-limit wait instead of the fault under test.
    // Each server must still answer a good query once its fault is cleared.
    let mut tasks = Vec::new();
    for case in cases() {
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut problems = Vec::new();
            for (name, fault, words) in faults() {
                let server = server().await;
                // Every DomainTools path fails, so modules that make several calls cannot
                // hide the fault behind a call that succeeded.
                server.fake.inject("/v1/", fault, None);
                let started = Instant::now();
                let (status, reply) = server.post(&case.request).await;
                let elapsed = started.elapsed();
                let what = format!("{} / {name}", case.module);
                match clear_error(status, &reply) {
                    Err(problem) => problems.push(format!("{what}: {problem}")),
                    Ok(error) if !words.iter().any(|w| error.contains(w)) => problems.push(
                        format!("{what}: unclear error {error:?} (expected one of {words:?})"),
                    ),
                    Ok(error) => seen.push(format!("{what} ({elapsed:.1?}): {error}")),
                }
                if elapsed >= Duration::from_secs(BUDGET_S) + SLACK {
                    problems.push(format!(
                        "{what}: answered after {elapsed:?}, over the {BUDGET_S} s budget"
                    ));
                }
                server.fake.clear_faults();
                still_serving(&server, &case).await;
            }
            (seen, problems)
        }));
    }
    let (mut report, mut problems) = (Vec::new(), Vec::new());
    for task in tasks {
        let (seen, found) = task.await.unwrap();
        report.extend(seen);
        problems.extend(found);
    }
    // `cargo test -- --nocapture` shows every module's error for every fault.
    println!("{}", report.join("\n"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(report.len(), cases().len() * faults().len());
}

#[tokio::test]
async fn a_refused_connection_is_a_clear_error_and_the_server_keeps_serving() {
    // A socket bound but never listening: connections to its port are refused, and holding
    // it keeps another test's listener from taking the port meanwhile (a port freed by
    // dropping a listener was once picked up by a parallel test's fake, which answered 404).
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = closed.local_addr().unwrap().port();
    let server = TestServer::builder()
        .api_url(&format!("http://127.0.0.1:{port}"))
        .start()
        .await;
    for case in cases() {
        let started = Instant::now();
        let (status, reply) = server.post(&case.request).await;
        let error = clear_error(status, &reply).unwrap_or_else(|p| panic!("{}: {p}", case.module));
        assert!(
            error.contains("could not connect to the DomainTools API"),
            "{}: {error}",
            case.module
        );
        assert!(started.elapsed() < Duration::from_secs(BUDGET_S) + SLACK);
    }
    drop(closed);
    assert_healthy(&server.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_under_concurrency_do_not_leak_into_good_queries() {
    // Half the queries go to a module whose upstream path fails, half to one whose path works,
    // all at once on one server: the failures must stay with their own requests.
    let server = Arc::new(server().await);
    server.fake.inject("/v1/iris-enrich/", Fault::CutBody, None);
    let mut tasks = Vec::new();
    for i in 0..60 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let module = if i % 2 == 0 {
                "DomainTools-Iris-Enrich"
            } else {
                "DomainTools-Iris-Investigate"
            };
            let (status, reply) = server
                .post(&json!({"module": module, "domain": "google.com", "config": config(), "timeout": BUDGET_S}))
                .await;
            (module, status, reply)
        }));
    }
    for task in tasks {
        let (module, status, reply) = task.await.unwrap();
        if module == "DomainTools-Iris-Enrich" {
            clear_error(status, &reply).unwrap_or_else(|p| panic!("{module}: {p}"));
        } else {
            assert_eq!(status, 200);
            assert_eq!(
                reply["results"].as_array().map(Vec::len),
                Some(61),
                "{reply}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_survives_every_fault_in_turn() {
    // The same server through the whole list: whatever the client learned on the way (slower
    // pacing after 503s), each fault still ends in a clear error within the budget, and the
    // server answers a good query at the end.
    let server = server().await;
    let case = &cases()[0];
    for (name, fault, _) in faults() {
        server.fake.clear_faults();
        server.fake.inject("/v1/", fault, None);
        let started = Instant::now();
        let (status, reply) = server.post(&case.request).await;
        clear_error(status, &reply).unwrap_or_else(|p| panic!("{name}: {p}"));
        assert!(
            started.elapsed() < Duration::from_secs(BUDGET_S) + SLACK,
            "{name}: {:?}",
            started.elapsed()
        );
    }
    server.fake.clear_faults();
    still_serving(&server, case).await;
}
