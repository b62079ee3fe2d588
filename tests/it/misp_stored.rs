//! Every module's stored reply (requests with `event_id`, imports) on all the recorded data
//! goes through MISP's attribute validation and its one-attribute-per-type-and-value rule
//! without a single refusal (`misp::stored::refusals` transcribes MISP's PHP), carries no
//! label tags and no top-level summary comment MISP would stamp on every attribute.

use domaintools_fake::FIXTURES_DIR;
use misp_domaintools::misp::stored::{refusals, PRODUCT_TAGS};
use serde_json::{json, Value};

use crate::common::server::{self, TestServer};

fn fixture(name: &str) -> Value {
    let path = format!("{FIXTURES_DIR}/{name}");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The domains of the recorded Iris answers, and the values Iris-Pivot can pivot on in them.
fn recorded_inputs() -> (Vec<String>, Vec<(&'static str, String)>) {
    let mut domains = Vec::new();
    let mut pivots = Vec::new();
    for file in ["iris-investigate-domain.json", "iris-enrich.json"] {
        for record in fixture(file)["response"]["results"].as_array().unwrap() {
            domains.push(record["domain"].as_str().unwrap().to_owned());
            let value = |v: &Value| v["value"].as_str().map(str::to_owned);
            for ip in record["ip"].as_array().into_iter().flatten() {
                pivots.extend(value(&ip["address"]).map(|v| ("ip-dst", v)));
            }
            for ns in record["name_server"].as_array().into_iter().flatten() {
                pivots.extend(value(&ns["host"]).map(|v| ("hostname", v)));
            }
            for ssl in record["ssl_info"].as_array().into_iter().flatten() {
                pivots.extend(value(&ssl["hash"]).map(|v| ("x509-fingerprint-sha1", v)));
            }
            for email in record["registrant_contact"]["email"]
                .as_array()
                .into_iter()
                .flatten()
            {
                pivots.extend(value(email).map(|v| ("whois-registrant-email", v)));
            }
            pivots.extend(value(&record["registrar"]).map(|v| ("whois-registrar", v)));
            pivots.extend(value(&record["registrant_name"]).map(|v| ("whois-registrant-name", v)));
        }
    }
    domains.sort();
    domains.dedup();
    pivots.sort();
    pivots.dedup();
    (domains, pivots)
}

fn detect(list: &str, domain_data: &str) -> Value {
    json!({"module": "DomainTools-Iris-Detect", "event_id": "1", "data": "",
           "config": {"username": server::USER, "api_key": server::KEY, "results_limit": null,
                      "api_endpoint": list, "test_mode": "0", "monitor_id": "",
                      "risk_score_ranges": "0", "discovered_date": "", "changed_since": "",
                      "escalated_since": "", "escalation_types": "0",
                      "tag_domains_as_blocked": "0", "include_domain_data": domain_data}})
}

fn every_stored_request() -> Vec<Value> {
    let (domains, pivots) = recorded_inputs();
    let mut requests = Vec::new();
    let ask = |module: &str, key: &str, value: &str| json!({"module": module, key: value, "event_id": "1", "config": server::config()});
    for domain in &domains {
        for module in [
            "DomainTools-Iris-Investigate",
            "DomainTools-Iris-Enrich",
            "DomainTools-Iris-Pivot",
            "DomainTools-Analyze",
            "DomainTools-Pivot",
            "DomainTools-Historic",
        ] {
            requests.push(ask(module, "domain", domain));
        }
    }
    for (key, value) in &pivots {
        requests.push(ask("DomainTools-Iris-Pivot", key, value));
    }
    for (key, value) in [
        ("ip-dst", "199.30.228.112"),
        ("whois-registrant-email", "domains@google.com"),
        ("whois-registrant-name", "Google LLC"),
    ] {
        requests.push(ask("DomainTools-Pivot", key, value));
        requests.push(ask("DomainTools-Analyze", key, value));
    }
    for list in ["0", "1"] {
        for domain_data in ["0", "1"] {
            requests.push(detect(list, domain_data));
        }
    }
    // The recorded search hash (base64 of the paste), as MISP sends an import.
    requests.push(json!({"module": "DomainTools-Iris-Import", "event_id": "1",
                         "data": "VTJGc2RHVmtYMTliTmY0NlNaTW4K", "config": server::config()}));
    requests
}

async fn stored_reply(server: &TestServer, request: &Value) -> Vec<Value> {
    let reply = server.query(request.clone()).await;
    assert!(
        reply.get("comment").is_none(),
        "a top-level comment lands on every attribute without one: {request} → {}",
        reply["comment"]
    );
    reply["results"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stored_row_on_the_recorded_data_is_one_misp_keeps() {
    let server = TestServer::start().await;
    let mut rows = 0;
    for request in every_stored_request() {
        let results = stored_reply(&server, &request).await;
        let problems = refusals(&results);
        assert!(problems.is_empty(), "{request}:\n{}", problems.join("\n"));
        for row in &results {
            for tag in row["tags"].as_array().into_iter().flatten() {
                let tag = tag.as_str().unwrap();
                assert!(PRODUCT_TAGS.contains(&tag), "label tag {tag:?} in {row}");
            }
        }
        rows += results.len();
    }
    assert!(rows > 500, "the recorded data gives many rows ({rows})");
}

#[tokio::test]
async fn guided_pivot_notes_are_stored_as_the_value_they_describe() {
    let server = TestServer::start().await;
    let results = stored_reply(
        &server,
        &json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com",
                "event_id": "1", "config": server::config()}),
    )
    .await;
    let ip = results
        .iter()
        .find(|r| r["values"] == json!(["142.251.33.68"]))
        .expect("the IP the guided pivot describes");
    assert_eq!(ip["types"], json!(["ip-dst"]));
    assert_eq!(
        ip["comment"],
        "IP address from DomainTools; Ip Address from Domaintools; Guided Pivot: ~258 domains share this value."
    );
    assert_eq!(ip["tags"], json!(["DomainTools", "Iris", "Guided Pivot"]));
    assert!(
        !results.iter().any(|r| r["values"][0]
            .as_str()
            .is_some_and(|v| v.contains("domains share this value"))),
        "no note is stored as a value"
    );
    let ssl = results
        .iter()
        .find(|r| r["values"] == json!(["fcebe5bb73f9541e544eb1a784ada0b35060412b"]))
        .unwrap();
    assert_eq!(ssl["types"], json!(["x509-fingerprint-sha1"]));
    // The hover form is the reference's, note and all.
    let hover = server
        .query(
            json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com",
                      "config": server::config()}),
        )
        .await;
    assert!(hover["results"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["values"]
            == json!({"Guided Pivot": "ip address (~258 domains share this value.)"})));
}

#[tokio::test]
async fn an_import_summary_is_one_comment_attribute_not_every_attributes_comment() {
    let server = TestServer::start().await;
    let results = stored_reply(&server, &detect("0", "0")).await;
    let summaries: Vec<&Value> = results
        .iter()
        .filter(|r| r["types"] == json!(["comment"]))
        .collect();
    assert_eq!(summaries.len(), 1);
    assert!(summaries[0]["values"][0]
        .as_str()
        .unwrap()
        .starts_with("DomainTools Iris Detect: imported"));
    let domains: Vec<&Value> = results.iter().filter(|r| r["type"] == "domain").collect();
    assert!(!domains.is_empty());
    for domain in domains {
        let comment = domain["comment"].as_str().unwrap();
        assert!(
            comment.starts_with("Iris Detect new domain, discovered "),
            "{comment}"
        );
        assert!(comment.contains("risk score "), "{comment}");
        assert!(comment.ends_with(", monitored term google"), "{comment}");
    }
}

#[tokio::test]
async fn a_hover_error_reaches_the_popover_and_stored_errors_keep_the_protocol_shape() {
    let server = TestServer::start().await;
    let hover = server
        .query(
            json!({"module": "DomainTools-Iris-Investigate", "domain": "no-such-domain-here.com",
                      "config": server::config()}),
        )
        .await;
    let error = hover["error"]
        .as_str()
        .expect("the error is still there")
        .to_owned();
    assert_eq!(
        hover["results"],
        json!([{"types": ["text"], "values": {"Error": error}}]),
        "MISP's popover shows results only"
    );
    let missing = server
        .query(json!({"module": "DomainTools-Iris-Enrich", "domain": "google.com"}))
        .await;
    assert_eq!(
        missing["results"][0]["values"]["Error"],
        "Configuration is missing from the request."
    );
    let stored = server
        .query(
            json!({"module": "DomainTools-Iris-Investigate", "domain": "no-such-domain-here.com",
                      "event_id": "1", "config": server::config()}),
        )
        .await;
    assert_eq!(stored, json!({"results": [], "error": error}));
}

#[tokio::test]
async fn iris_detect_takes_any_data_like_domaintools_own_test() {
    let server = TestServer::start().await;
    let mut request = detect("0", "0");
    request["data"] = json!({"dummy": "data"});
    let reply = server.query(request).await;
    assert!(reply.get("error").is_none(), "{reply}");
    assert!(reply["results"].as_array().unwrap().len() > 1);
}
