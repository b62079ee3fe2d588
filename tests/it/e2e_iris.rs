//! DomainTools-Iris-Investigate and DomainTools-Iris-Enrich end to end: a real server on
//! loopback, over TCP, against the fake DomainTools API (which checks signatures like the real
//! one). What the fake received is checked from its request log.

use std::time::{Duration, Instant};

use domaintools_fake::{FakeApi, Fault};
use misp_domaintools::http::Options;
use misp_domaintools::protocol::DefaultCredentials;
use serde_json::{json, Value};

use crate::common::golden;
use crate::common::server::{config, options, TestServer, KEY, USER};

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn investigate_hover_matches_the_reference_with_one_signed_call() {
    let server = TestServer::start().await;
    let reply = server
        .query(json!({"module": "DomainTools-Iris-Investigate", "domain": "www.google.com", "config": config()}))
        .await;
    assert!(reply.get("error").is_none(), "{reply}");
    golden::assert_matches(
        reply["results"].as_array().unwrap(),
        &golden::load("iris-investigate-google.com.txt"),
        &["Registrant Organization"],
    );

    let log: Vec<_> = server
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.path != "/v1/account")
        .collect();
    assert_eq!(log.len(), 1, "exactly one lookup: {log:?}");
    assert!(
        server.fake.calls_to("/v1/account") <= 1,
        "the account's limits are read once at most"
    );
    let call = &log[0];
    assert_eq!(
        (call.method.as_str(), call.path.as_str(), call.status),
        ("POST", "/v1/iris-investigate/", 200)
    );
    assert_eq!(
        param(&call.params, "domain"),
        Some("google.com"),
        "the registrable domain is looked up"
    );
    assert_eq!(param(&call.params, "app_partner"), Some("MISP"));
    assert_eq!(
        param(&call.params, "app_name"),
        Some("DomainTools-Iris-Investigate")
    );
    assert_eq!(
        param(&call.params, "app_version"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(call.username.as_deref(), Some(USER));
    assert!(param(&call.params, "timestamp").is_some());
}

#[tokio::test]
async fn enrich_hover_matches_the_reference() {
    let server = TestServer::start().await;
    let reply = server
        .query(json!({"module": "DomainTools-Iris-Enrich", "domain": "google.com", "config": config()}))
        .await;
    golden::assert_matches(
        reply["results"].as_array().unwrap(),
        &golden::load("iris-enrich-google.com.txt"),
        &["Registrant Organization"],
    );
    assert_eq!(server.fake.calls_to("/v1/iris-enrich/"), 1);
}

#[tokio::test]
async fn enrichment_requests_get_values_misp_can_store() {
    let server = TestServer::start().await;
    let reply = server
        .query(json!({"module": "DomainTools-Iris-Investigate", "domain": "https://www.google.com/search?q=x",
                      "event_id": "56", "attribute_uuid": "5f8a6f4e-2b3c-4d5e-8f90-0123456789ab", "config": config()}))
        .await;
    let results = reply["results"].as_array().unwrap();
    // The reference's 61 entries, with the same type and value merged into one (issue 11).
    assert_eq!(results.len(), 39);
    assert!(misp_domaintools::misp::stored::refusals(results).is_empty());
    for entry in results {
        let values = entry["values"]
            .as_array()
            .unwrap_or_else(|| panic!("list values: {entry}"));
        assert_eq!(values.len(), 1);
        assert!(values[0].is_string(), "{entry}");
    }
    let rank = results
        .iter()
        .find(|e| e["comment"] == "Rank from DomainTools")
        .unwrap();
    assert_eq!(rank["values"], json!(["1"]));
    let ip = results
        .iter()
        .find(|e| e["values"] == json!(["142.251.33.78"]))
        .unwrap();
    assert_eq!(
        ip["comment"], "IP address from DomainTools; Ip Address from Domaintools",
        "the comment already names the label; merged entries name every label"
    );
    assert_eq!(ip["types"], json!(["ip-dst"]));
    let country = results.iter().find(|e| {
        e["comment"]
            .as_str()
            .unwrap()
            .starts_with("IP Country Code: country code from DomainTools")
    });
    assert_eq!(
        country.unwrap()["values"],
        json!(["US"]),
        "the label goes in front of a comment that lacks it"
    );
}

#[tokio::test]
async fn enrich_works_for_other_recorded_domains() {
    let server = TestServer::start().await;
    let reply = server
        .query(json!({"module": "DomainTools-Iris-Enrich", "domain": "amazon.com", "config": config()}))
        .await;
    let results = reply["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .any(|e| e["values"] == json!({"Registrar Name": "MarkMonitor, Inc."})),
        "{reply}"
    );
    assert!(results
        .iter()
        .any(|e| e["values"] == json!({"Registrant Email": "hostmaster@amazon.com"})));
    assert!(
        !results
            .iter()
            .any(|e| e["values"].get("Guided Pivot").is_some()),
        "Enrich has no counts"
    );
}

#[tokio::test]
async fn a_wrong_api_key_gives_domaintools_403_message() {
    let server = TestServer::start().await;
    let reply = server
        .query(
            json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com",
                      "config": {"username": USER, "api_key": "not-the-key"}}),
        )
        .await;
    assert_eq!(
        reply,
        crate::common::hover_error("DomainTools API error 403: The credentials you entered do not match an active account.")
    );
    assert!(server
        .fake
        .requests()
        .iter()
        .any(|r| r.path == "/v1/iris-investigate/" && r.status == 403));
}

#[tokio::test]
async fn unknown_domains_say_no_results_found() {
    let server = TestServer::start().await;
    let reply = server
        .query(json!({"module": "DomainTools-Iris-Enrich", "domain": "no-such-domain-here.com", "config": config()}))
        .await;
    assert_eq!(reply, crate::common::hover_error("No results found."));
}

#[tokio::test]
async fn server_credentials_fill_in_when_misp_sends_none() {
    let options = Options {
        default_credentials: DefaultCredentials {
            username: Some(USER.into()),
            api_key: Some(KEY.into()),
        },
        ..options()
    };
    let server = TestServer::builder().options(options).start().await;
    for config in [
        json!({"username": null, "api_key": null, "results_limit": null}),
        json!({"username": "", "api_key": ""}),
        Value::Null,
    ] {
        let reply = server
            .query(json!({"module": "DomainTools-Iris-Enrich", "domain": "google.com", "config": config}))
            .await;
        assert_eq!(
            reply["results"].as_array().unwrap().len(),
            51,
            "{config}: {reply}"
        );
    }
    // A key set in MISP wins over the server's, even when it is wrong.
    let reply = server
        .query(
            json!({"module": "DomainTools-Iris-Enrich", "domain": "google.com",
                      "config": {"username": null, "api_key": "misp-side-key"}}),
        )
        .await;
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .starts_with("DomainTools API error 403"),
        "{reply}"
    );
}

#[tokio::test]
async fn the_request_timeout_is_honoured() {
    let server = TestServer::start().await;
    server.fake.inject(
        "/v1/iris-investigate/",
        Fault::Slow(Duration::from_secs(5)),
        None,
    );
    let started = Instant::now();
    let reply = server
        .query(json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com", "timeout": 1, "config": config()}))
        .await;
    assert_eq!(
        reply,
        crate::common::hover_error(
            "Timeout: DomainTools did not answer within this request's time budget (1 s)."
        )
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn upstream_failures_are_readable_and_never_leak_the_key() {
    // The 503 last: after it the client rightly paces the account (2 s a call, tested in
    // reliability_faults.rs), which would only make every later fault here wait its turn.
    let cases: Vec<(Fault, &str)> = vec![
        (Fault::Status { status: 404, message: "We have no recent WHOIS information available for this domain/IP Address.".into() },
         "DomainTools API error 404: We have no recent WHOIS information available for this domain/IP Address."),
        (Fault::NonJson { status: 500, body: "oops not json".into() }, "DomainTools API error 500: Internal Server Error"),
        (Fault::InvalidJson, "the DomainTools API sent an answer that could not be read (/v1/iris-investigate/: not JSON"),
        (Fault::WrongShape, "the DomainTools API sent an answer that could not be read (/v1/iris-investigate/: unexpected shape"),
        (Fault::LimitExceeded, "DomainTools Iris limit exceeded: Maximum 5000 returned - you may need to refine your query."),
        (Fault::CutBody, "the connection to the DomainTools API failed"),
        (Fault::RateLimited, "DomainTools API error 503: You have exceeded the maximum number of requests per minute allowed under your service level (/min)."),
    ];
    let server = TestServer::start().await;
    for (fault, expected) in cases {
        server.fake.clear_faults();
        server
            .fake
            .inject("/v1/iris-investigate/", fault.clone(), None);
        let reply = server
            .query(json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com", "config": config()}))
            .await;
        let error = reply["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{fault:?}: {reply}"));
        assert!(error.starts_with(expected), "{fault:?}: {error}");
        assert_eq!(reply["results"], json!([crate::common::error_entry(error)]));
        assert!(
            !error.contains(KEY) && !error.contains("signature"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_slow_upstream_hits_the_upstream_timeout() {
    let server = TestServer::builder()
        .client(|c| c.timeout = Duration::from_secs(1))
        .start()
        .await;
    server.fake.inject(
        "/v1/iris-enrich/",
        Fault::Slow(Duration::from_secs(4)),
        None,
    );
    let started = Instant::now();
    let reply = server
        .query(json!({"module": "DomainTools-Iris-Enrich", "domain": "google.com", "config": config()}))
        .await;
    assert_eq!(
        reply,
        crate::common::hover_error("DomainTools API did not answer within 1 s")
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn an_unreachable_upstream_is_reported() {
    let server = TestServer::start().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let upstream = TestServer::builder()
        .api_url(&format!("http://127.0.0.1:{port}"))
        .start_client()
        .await;
    let client = &upstream.client;
    let creds = domaintools::Credentials::new(USER, KEY);
    let caller = domaintools::Caller::new(&creds, "t");
    let error = client
        .iris_enrich(caller, &["google.com"])
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("could not connect to the DomainTools API"),
        "{error}"
    );
    assert!(!error.to_string().contains(KEY));
    drop(server);
}

#[tokio::test]
async fn demo_mode_marks_every_entry_and_ignores_misp_credentials() {
    let options = Options {
        demo: true,
        default_credentials: DefaultCredentials {
            username: Some(domaintools_fake::DEMO_USERNAME.into()),
            api_key: Some(domaintools_fake::DEMO_API_KEY.into()),
        },
        ..options()
    };
    let server = TestServer::builder()
        .fake(FakeApi::new())
        .options(options)
        .start()
        .await;
    let reply = server
        .query(
            json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com",
                      "config": {"username": "someone", "api_key": "whatever"}}),
        )
        .await;
    let results = reply["results"].as_array().unwrap();
    assert_eq!(results.len(), 61, "{reply}");
    for entry in results {
        assert!(
            entry["comment"]
                .as_str()
                .unwrap()
                .starts_with("[DEMO DATA, not live DomainTools results] "),
            "{entry}"
        );
    }
}

#[tokio::test]
async fn concurrent_queries_are_independent() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let (module, domain, expected) = match i % 3 {
                0 => ("DomainTools-Iris-Investigate", "google.com", 61),
                1 => ("DomainTools-Iris-Enrich", "google.com", 51),
                // A hover's error is its one entry (issue 11).
                _ => ("DomainTools-Iris-Enrich", "no-such-domain-here.com", 1),
            };
            let reply = server
                .query(json!({"module": module, "domain": domain, "config": config()}))
                .await;
            assert_eq!(
                reply["results"].as_array().unwrap().len(),
                expected,
                "{reply}"
            );
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}
