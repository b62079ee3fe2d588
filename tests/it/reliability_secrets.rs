//! Reliability: the API key never shows. The real binary runs with `RUST_LOG=debug` and two
//! recognisable keys (one from the environment, one in MISP's request config) through good
//! queries, upstream faults and bad input; then no log line, reply, metric or `Debug` output
//! may contain either key or any request signature the fake received.

use std::time::Duration;

use clap::Parser;
use domaintools::auth::sign;
use domaintools::{Client, ClientConfig, Credentials, SignHash};
use domaintools_fake::{FakeApi, Fault, LoggedRequest};
use misp_domaintools::config::Config;
use misp_domaintools::http::{AppState, Options};
use misp_domaintools::misp::Form;
use misp_domaintools::modules::{Context, Settings};
use misp_domaintools::protocol::DefaultCredentials;
use misp_domaintools::registry::{Registry, MODULES};
use serde_json::{json, Value};

use crate::common::child::ChildServer;
use crate::common::server::TestServer;

/// The server's own account (environment).
const ENV_USER: &str = "env-user";
const ENV_KEY: &str = "ENVKEY-must-never-appear-7f3a9c";
/// The account MISP sends in the request config.
const MISP_USER: &str = "misp-user";
const MISP_KEY: &str = "MISPKEY-must-never-appear-d41b8e";

/// Every signature the fake received, recomputed from its log (which itself holds none): both
/// hashes, both accounts, so whichever was used, its signature is searched for.
fn signatures(log: &[LoggedRequest]) -> Vec<String> {
    let accounts = [
        Credentials::new(ENV_USER, ENV_KEY),
        Credentials::new(MISP_USER, MISP_KEY),
    ];
    let mut out = Vec::new();
    for request in log {
        let Some(timestamp) = request
            .params
            .iter()
            .find(|(k, _)| k == "timestamp")
            .map(|(_, v)| v.as_str())
        else {
            continue;
        };
        for account in &accounts {
            for hash in [SignHash::Sha256, SignHash::Sha1] {
                out.push(sign(account, timestamp, &request.path, hash));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn assert_clean(what: &str, text: &str, signatures: &[String]) {
    for secret in [ENV_KEY, MISP_KEY] {
        assert!(!text.contains(secret), "{what} contains an API key");
    }
    for signature in signatures {
        assert!(
            !text.contains(signature.as_str()),
            "{what} contains a request signature"
        );
    }
    assert!(!text.contains("signature="), "{what} shows a signed URL");
}

fn detect_config(api_key: Option<&str>) -> Value {
    json!({"username": api_key.map(|_| MISP_USER), "api_key": api_key, "results_limit": null,
           "api_endpoint": "0", "test_mode": "0", "monitor_id": "", "risk_score_ranges": "0",
           "discovered_date": "", "changed_since": "", "escalated_since": "",
           "escalation_types": "0", "tag_domains_as_blocked": "0", "include_domain_data": "0"})
}

/// A request to every module; `api_key` None leaves the config's credentials null (the
/// server's own account is used), Some sends MISP's.
fn every_module(api_key: Option<&str>) -> Vec<Value> {
    let config = json!({"username": api_key.map(|_| MISP_USER), "api_key": api_key,
                        "results_limit": null});
    vec![
        json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com", "config": config}),
        json!({"module": "DomainTools-Iris-Enrich", "domain": "google.com", "config": config}),
        json!({"module": "DomainTools-Iris-Pivot", "ip-src": "142.251.33.78", "event_id": "1", "config": config}),
        json!({"module": "DomainTools-Iris-Import", "event_id": "1", "data": "VTJGc2RHVmtYMTliTmY0NlNaTW4K", "config": config}),
        json!({"module": "DomainTools-Iris-Detect", "event_id": "1", "data": "", "config": detect_config(api_key)}),
        json!({"module": "DomainTools-Analyze", "domain": "google.com", "config": config}),
        json!({"module": "DomainTools-Pivot", "ip-dst": "199.30.228.112", "event_id": "1", "config": config}),
        json!({"module": "DomainTools-Historic", "domain": "google.com", "event_id": "1", "config": config}),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_or_signature_in_logs_replies_or_metrics_at_debug_level() {
    let fake = FakeApi::new()
        .with_user(ENV_USER, ENV_KEY)
        .with_user(MISP_USER, MISP_KEY);
    let running = TestServer::builder().fake(fake.clone()).start_fake().await;
    let api_url = running.base_url();
    // No response cache: every faulted request must reach the fake and fail.
    let server = ChildServer::start(
        &[
            "--api-url",
            &api_url,
            "--upstream-timeout",
            "1",
            "--cache-size-mb",
            "0",
        ],
        &[
            ("DOMAINTOOLS_USERNAME", ENV_USER),
            ("DOMAINTOOLS_API_KEY", ENV_KEY),
            ("RUST_LOG", "debug"),
        ],
    )
    .await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut replies = String::new();

    // Good queries with either account.
    for api_key in [None, Some(MISP_KEY)] {
        for request in every_module(api_key) {
            let (status, reply) = server
                .post_raw(&client, request.to_string().into_bytes())
                .await;
            assert_eq!(status, 200);
            assert!(reply["results"].is_array(), "{request}: {reply}");
            replies.push_str(&reply.to_string());
        }
    }
    // Upstream faults, on every path, with MISP's key in the request.
    let faults = [
        Fault::Status {
            status: 403,
            message: "The credentials you entered do not match an active account.".into(),
        },
        Fault::RateLimited,
        Fault::NonJson {
            status: 500,
            body: "oops not json".into(),
        },
        Fault::InvalidJson,
        Fault::WrongShape,
        Fault::CutBody,
        Fault::Slow(Duration::from_secs(3)),
    ];
    for fault in faults {
        fake.clear_faults();
        fake.inject("/v1/", fault, None);
        for request in every_module(Some(MISP_KEY)).into_iter().take(2) {
            let (status, reply) = server
                .post_raw(&client, request.to_string().into_bytes())
                .await;
            assert_eq!(status, 200);
            assert!(reply["error"].is_string(), "{reply}");
            replies.push_str(&reply.to_string());
        }
    }
    fake.clear_faults();
    // Bad input carrying the key: broken JSON, wrong types, unknown modules.
    let bad: Vec<Vec<u8>> = vec![
        format!(r#"{{"module": "DomainTools-Iris-Investigate", "config": {{"api_key": "{MISP_KEY}""#)
            .into_bytes(),
        json!({"module": "DomainTools-Iris-Investigate", "domain": ["x"], "config": {"username": MISP_USER, "api_key": MISP_KEY}}).to_string().into_bytes(),
        json!({"module": "No-Such-Module", "config": {"username": MISP_USER, "api_key": MISP_KEY}}).to_string().into_bytes(),
        json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com", "config": {"username": MISP_USER, "api_key": MISP_KEY, "results_limit": MISP_KEY}}).to_string().into_bytes(),
        json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com", "timeout": MISP_KEY, "config": {"username": MISP_USER, "api_key": MISP_KEY}}).to_string().into_bytes(),
        json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com", "config": {"username": MISP_USER, "api_key": "wrong-key"}}).to_string().into_bytes(),
    ];
    for body in bad {
        let (_, reply) = server.post_raw(&client, body).await;
        replies.push_str(&reply.to_string());
    }
    // Issue 5's metrics, when the server has them.
    let metrics = client
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap();
    let metrics = if metrics.status().is_success() {
        metrics.text().await.unwrap()
    } else {
        String::new()
    };

    let log = fake.requests();
    let signatures = signatures(&log);
    assert!(
        log.len() > 20 && !signatures.is_empty(),
        "the fake saw the calls"
    );
    let output = server.stop_and_collect();
    assert!(
        output.contains("DEBUG") && output.contains("query answered"),
        "debug logging was on and captured:\n{}",
        &output[..output.len().min(2_000)]
    );
    assert_clean("the server's log", &output, &signatures);
    assert_clean("the replies", &replies, &signatures);
    assert_clean("/metrics", &metrics, &signatures);
}

#[test]
fn debug_output_of_every_type_holding_a_key_is_redacted() {
    let config = Config::try_parse_from([
        "misp-domaintools",
        "--api-key",
        ENV_KEY,
        "--username",
        ENV_USER,
    ])
    .unwrap();
    let defaults = DefaultCredentials {
        username: Some(ENV_USER.into()),
        api_key: Some(ENV_KEY.into()),
    };
    let client = Client::new(ClientConfig::new("MISP", "test")).unwrap();
    let state = AppState::new(
        Registry::new(MODULES).unwrap(),
        client.clone(),
        Options {
            default_credentials: defaults.clone(),
            ..Options::default()
        },
    );
    let credentials = Credentials::new(MISP_USER, MISP_KEY);
    let settings = Settings::from_value(Some(
        &json!({"username": MISP_USER, "api_key": MISP_KEY, "results_limit": "5"}),
    ));
    let context = Context {
        client,
        credentials: credentials.clone(),
        settings: settings.clone(),
        form: Form::Hover,
        now: chrono::Utc::now(),
        demo: false,
        module: "DomainTools-Iris-Investigate",
        started: tokio::time::Instant::now(),
        budget: Duration::from_secs(5),
    };
    let shown = [
        format!("{config:?}"),
        format!("{defaults:?}"),
        format!("{state:?}"),
        format!("{credentials:?}"),
        format!("{settings:?}"),
        format!("{context:?}"),
        format!("{context:#?}"),
    ];
    for text in &shown {
        assert_clean("Debug output", text, &[]);
    }
    // The settings still show what a person debugging needs, but not the key: it is taken
    // out of them (it travels only inside the credentials, whose Debug redacts it).
    assert!(shown[4].contains("results_limit") && !shown[4].contains("api_key"));
    assert!(shown[3].contains("REDACTED"), "{}", shown[3]);
    assert!(shown[1].contains(ENV_USER));
}
