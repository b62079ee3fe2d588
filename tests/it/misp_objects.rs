//! DomainTools-Iris-Investigate-Objects and -Iris-Enrich-Objects end to end (MISP's request over
//! TCP to our server, our server to the fake DomainTools API): every answer on every recorded
//! record meets MISP's object templates, relationship types, type catalogue and attribute
//! validation; enriching again gives the same uuids; golden answers for google.com, amazon.com
//! and an IP pivot.

use serde_json::{json, Value};

use crate::common::golden;
use crate::common::misp_objects::Rules;
use crate::common::pymisp_check::check_with_pymisp;
use crate::common::server::{self, TestServer};

const INVESTIGATE: &str = "DomainTools-Iris-Investigate-Objects";
const ENRICH: &str = "DomainTools-Iris-Enrich-Objects";
const UUID: &str = "5f8a6f4e-2b3c-4d5e-8f90-0123456789ab";

fn fixture(name: &str) -> Value {
    let path = format!("{}/{name}", domaintools_fake::FIXTURES_DIR);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn records(name: &str) -> Vec<Value> {
    fixture(name)["response"]["results"]
        .as_array()
        .unwrap()
        .clone()
}

/// A MISP request for the attribute (`event_id` present: stored; absent: hover).
fn request(module: &str, attribute_type: &str, value: &str, stored: bool) -> Value {
    let mut body = json!({
        "module": module,
        "attribute": {"uuid": UUID, "type": attribute_type, "category": "Network activity", "value": value},
        "config": server::config(),
    });
    if stored {
        body["event_id"] = json!("56");
    }
    body
}

async fn answer(server: &TestServer, body: Value) -> Value {
    let reply = server.query(body.clone()).await;
    assert!(reply.get("error").is_none(), "{body} -> {reply}");
    reply["results"].clone()
}

/// Every value of `field` (a pivot value or a list of them, at any depth of `path`).
fn values(records: &[Value], path: &[&str]) -> Vec<String> {
    fn walk(v: &Value, path: &[&str], out: &mut Vec<String>) {
        match (v, path.split_first()) {
            (Value::Array(items), _) => items.iter().for_each(|i| walk(i, path, out)),
            (_, Some((key, rest))) => {
                if let Some(next) = v.get(*key) {
                    walk(next, rest, out);
                }
            }
            (Value::String(s), None) if !s.is_empty() => out.push(s.clone()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for r in records {
        walk(r, path, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

#[tokio::test]
async fn every_answer_on_recorded_data_meets_misps_templates_and_rules() {
    let rules = Rules::load();
    let server = server::TestServer::start().await;
    let investigate = records("iris-investigate-domain.json");
    let enrich = records("iris-enrich.json");
    let mut bodies = Vec::new();
    for stored in [true, false] {
        for (module, records) in [(INVESTIGATE, &investigate), (ENRICH, &enrich)] {
            for domain in values(records, &["domain"]) {
                bodies.push(request(module, "domain", &domain, stored));
                bodies.push(request(
                    module,
                    "hostname",
                    &format!("www.{domain}"),
                    stored,
                ));
                bodies.push(request(
                    module,
                    "url",
                    &format!("https://www.{domain}/a?b=c"),
                    stored,
                ));
            }
        }
        for ip in values(&investigate, &["ip", "address", "value"]) {
            bodies.push(request(INVESTIGATE, "ip-dst", &ip, stored));
            bodies.push(request(INVESTIGATE, "ip-src", &ip, stored));
        }
        for email in values(&investigate, &["registrant_contact", "email", "value"])
            .into_iter()
            .chain(values(&investigate, &["soa_email", "value"]))
        {
            for t in ["email-src", "email-dst", "whois-registrant-email"] {
                bodies.push(request(INVESTIGATE, t, &email, stored));
            }
        }
        for hash in values(&investigate, &["ssl_info", "hash", "value"]) {
            bodies.push(request(INVESTIGATE, "x509-fingerprint-sha1", &hash, stored));
        }
    }
    let mut objects = 0;
    let mut answers = Vec::new();
    for body in &bodies {
        let results = answer(&server, body.clone()).await;
        objects += rules.check(&results, UUID);
        answers.push((json!({"results": results}), UUID.to_owned()));
        let attributes = results["Attribute"].as_array().cloned().unwrap_or_default();
        let echoed = attributes.iter().find(|a| a["uuid"] == UUID);
        if body.get("event_id").is_some() {
            let echoed = echoed.unwrap_or_else(|| panic!("the input is not tagged: {body}"));
            assert_eq!(echoed["value"], body["attribute"]["value"]);
            assert!(!echoed["Tag"].as_array().unwrap().is_empty(), "{body}");
        } else {
            assert!(
                echoed.is_none(),
                "a hover repeats the hovered attribute: {body}"
            );
        }
    }
    assert!(bodies.len() >= 40, "{} requests", bodies.len());
    assert!(objects >= bodies.len() * 3, "{objects} objects");
    if let Some(summary) = check_with_pymisp(&answers) {
        assert_eq!(summary["answers"], bodies.len(), "{summary}");
        assert_eq!(
            summary["objects"], objects,
            "PyMISP loaded every object: {summary}"
        );
    }
}

#[tokio::test]
async fn enriching_again_proposes_the_same_uuids() {
    let server = server::TestServer::start().await;
    for body in [
        request(INVESTIGATE, "domain", "google.com", true),
        request(INVESTIGATE, "ip-dst", "142.251.33.78", true),
        request(ENRICH, "domain", "google.com", true),
    ] {
        let first = answer(&server, body.clone()).await;
        let second = answer(&server, body).await;
        assert_eq!(first, second);
    }
    // Without MISP's uuid the input gets a stable one of its own, referenced by the objects.
    let flat = json!({"module": INVESTIGATE, "domain": "google.com", "event_id": "56", "config": server::config()});
    let a = answer(&server, flat.clone()).await;
    let b = answer(&server, flat).await;
    assert_eq!(a, b);
    let input = a["Attribute"][0]["uuid"].as_str().unwrap().to_owned();
    Rules::load().check(&a, &input);
}

#[tokio::test]
async fn golden_answers() {
    let server = server::TestServer::start().await;
    for (name, body) in [
        (
            "objects-iris-investigate-google.com.json",
            request(INVESTIGATE, "domain", "google.com", true),
        ),
        (
            "objects-iris-investigate-amazon.com.json",
            request(INVESTIGATE, "domain", "amazon.com", true),
        ),
        (
            "objects-iris-investigate-ip-142.251.33.78.json",
            request(INVESTIGATE, "ip-dst", "142.251.33.78", true),
        ),
        (
            "objects-iris-enrich-google.com-hover.json",
            request(ENRICH, "hostname", "www.google.com", false),
        ),
    ] {
        let reply = server.query(body).await;
        golden::assert_json(name, &reply);
    }
}

#[tokio::test]
async fn problems_are_readable_and_results_well_formed() {
    let server = server::TestServer::start().await;
    let cases = [
        (
            request(INVESTIGATE, "md5", "d41d8cd98f00b204e9800998ecf8427e", true),
            "does not handle \"md5\" attributes",
        ),
        (
            request(ENRICH, "ip-dst", "192.0.2.1", true),
            "does not handle \"ip-dst\" attributes",
        ),
        (
            json!({"module": INVESTIGATE, "attribute": "google.com", "event_id": "1", "config": server::config()}),
            "must be a MISP attribute",
        ),
        (
            json!({"module": INVESTIGATE, "attribute": {"value": "google.com"}, "event_id": "1", "config": server::config()}),
            "has no type",
        ),
        (
            request(INVESTIGATE, "domain", "com", true),
            "no registrable domain",
        ),
        (
            request(INVESTIGATE, "domain", "no-such-domain-here.com", true),
            "No results found.",
        ),
    ];
    for (body, expected) in cases {
        let reply = server.query(body.clone()).await;
        assert_eq!(reply["results"], json!([]), "{reply}");
        let error = reply["error"].as_str().unwrap();
        assert!(error.contains(expected), "{body} -> {error}");
    }
    let mut bad = request(INVESTIGATE, "domain", "google.com", true);
    bad["config"]["risk_high_threshold"] = json!("40");
    bad["config"]["risk_medium_threshold"] = json!("60");
    let reply = server.query(bad).await;
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("risk_medium_threshold"),
        "{reply}"
    );
    // A hover shows only Object and Attribute: the error is a text attribute there too.
    let reply = server
        .query(request(
            INVESTIGATE,
            "domain",
            "no-such-domain-here.com",
            false,
        ))
        .await;
    assert_eq!(reply["error"], "No results found.");
    assert_eq!(
        reply["results"]["Attribute"][0]["value"],
        "Error: No results found."
    );
}

#[tokio::test]
async fn descriptors_declare_misp_standard_for_expansion_and_hover() {
    let server = server::TestServer::start().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = http
        .get(format!("{}/modules", server.url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let listing: Value = serde_json::from_slice(&body).unwrap();
    for name in [INVESTIGATE, ENRICH] {
        let d = listing
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap();
        assert_eq!(d["mispattributes"]["format"], "misp_standard");
        assert_eq!(d["meta"]["module-type"], json!(["expansion", "hover"]));
        let config = d["meta"]["config"].as_array().unwrap();
        for key in [
            "username",
            "api_key",
            "results_limit",
            "risk_high_threshold",
            "risk_medium_threshold",
        ] {
            assert!(config.iter().any(|c| c == key), "{name} lacks {key}");
        }
    }
}

#[tokio::test]
async fn the_examples_run() {
    let rules = Rules::load();
    let server = server::TestServer::start().await;
    for (name, objects) in [
        ("iris-investigate-objects-enrichment.json", 5),
        ("iris-investigate-objects-hover.json", 5),
        ("iris-investigate-objects-ip.json", 5),
        ("iris-enrich-objects-enrichment.json", 5),
    ] {
        let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut body: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let uuid = body["attribute"]["uuid"].as_str().unwrap().to_owned();
        body["config"]["username"] = json!(server::USER);
        body["config"]["api_key"] = json!(server::KEY);
        let results = answer(&server, body).await;
        assert_eq!(rules.check(&results, &uuid), objects, "{name}");
    }
}

/// The popover MISP draws for a `misp_standard` hover (View/Attributes/ajax/hover_enrichment.ctp
/// after AttributesController::hoverEnrichment keeps only name, relation, type and value): per
/// object a title and `relation | value` rows, then the attributes as `type | value` rows.
fn popover(results: &Value) -> Vec<String> {
    let mut rows = Vec::new();
    for o in results["Object"].as_array().into_iter().flatten() {
        rows.push(format!("Object: {}", o["name"].as_str().unwrap()));
        for a in o["Attribute"].as_array().unwrap() {
            rows.push(format!(
                "{} | {}",
                a["object_relation"].as_str().unwrap(),
                a["value"].as_str().unwrap()
            ));
        }
    }
    for a in results["Attribute"].as_array().into_iter().flatten() {
        rows.push(format!(
            "{} | {}",
            a["type"].as_str().unwrap(),
            a["value"].as_str().unwrap()
        ));
    }
    rows
}

#[tokio::test]
async fn the_hover_popover_stays_readable() {
    let server = server::TestServer::start().await;
    for (module, value) in [
        (INVESTIGATE, "google.com"),
        (INVESTIGATE, "amazon.com"),
        (ENRICH, "google.com"),
    ] {
        let results = answer(&server, request(module, "domain", value, false)).await;
        let rows = popover(&results);
        assert!(
            rows.len() <= 60,
            "{module} {value}: {} rows\n{}",
            rows.len(),
            rows.join("\n")
        );
        assert!(rows.iter().all(|r| r.len() <= 200), "{}", rows.join("\n"));
        assert!(
            rows.iter()
                .any(|r| r.starts_with("text | DomainTools risk score ")),
            "the verdict is in the popover: {}",
            rows.join("\n")
        );
        // Every object shows at least one row under its title.
        for pair in rows.windows(2) {
            assert!(
                !(pair[0].starts_with("Object: ") && pair[1].starts_with("Object: ")),
                "an empty object in the popover: {}",
                rows.join("\n")
            );
        }
    }
}
