//! The Iris hover modules reproduce the Python reference's golden outputs (reference doc §12.1
//! and §12.2) entry by entry on the recorded DomainTools answers.

use crate::misp::{render, Form};
use crate::modules::iris_record::{map, Product};
use serde_json::Value;

use super::golden;
use super::recorded::{fixture, golden_day};

fn record(name: &str, domain: &str) -> Value {
    fixture(name)["response"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["domain"] == domain)
        .cloned()
        .unwrap()
}

#[test]
fn iris_investigate_matches_the_reference_on_google_com() {
    let payload = map(
        "google.com",
        &record("iris-investigate-domain.json", "google.com"),
        Product::Investigate,
        golden_day(),
    );
    let ours = render(payload.entries(), Form::Hover, None);
    golden::assert_matches(
        &ours,
        &golden::load("iris-investigate-google.com.txt"),
        &["Registrant Organization"],
    );
}

#[test]
fn iris_enrich_matches_the_reference_on_google_com() {
    let payload = map(
        "google.com",
        &record("iris-enrich.json", "google.com"),
        Product::Enrich,
        golden_day(),
    );
    let ours = render(payload.entries(), Form::Hover, None);
    golden::assert_matches(
        &ours,
        &golden::load("iris-enrich-google.com.txt"),
        &["Registrant Organization"],
    );
}

#[test]
fn the_stable_tag_order_is_pinned() {
    let payload = map(
        "google.com",
        &record("iris-enrich.json", "google.com"),
        Product::Enrich,
        golden_day(),
    );
    let org = payload
        .entries()
        .iter()
        .find(|e| e.label == "Registrant Organization")
        .unwrap();
    assert_eq!(org.tags, ["DomainTools", "Iris", "registrant org"]);
}

#[test]
fn iris_pivot_matches_the_reference_on_google_com() {
    let payload = crate::modules::iris_pivot::map_domain(
        &record("iris-investigate-domain.json", "google.com"),
        crate::modules::iris_pivot::DEFAULT_GUIDED_PIVOT_THRESHOLD,
    );
    let ours = render(payload.entries(), Form::Hover, None);
    golden::assert_matches(&ours, &golden::load("iris-pivot-google.com.txt"), &[]);
}

fn investigate_results() -> Vec<Value> {
    fixture("iris-investigate-domain.json")["response"]["results"]
        .as_array()
        .unwrap()
        .clone()
}

/// §12.5: a non-domain pivot with results_limit 1 keeps the reference's first entry; our one
/// addition is the trailing "Connected Domains" count (docs/compatibility.md).
#[test]
fn iris_pivot_ip_with_limit_one_matches_the_reference() {
    let results = investigate_results();
    let payload = crate::modules::iris_pivot::map_connected(
        &results[..1],
        Some(results.len() as u64),
        "this IP address",
    );
    let ours = render(payload.entries(), Form::Hover, None);
    let golden = golden::load("iris-pivot-ip-limit-1.txt");
    golden::assert_matches(&ours[..golden.len()], &golden, &[]);
    assert_eq!(ours.len(), golden.len() + 1);
    assert_eq!(
        ours[golden.len()],
        serde_json::json!({"types": ["text"], "values": {"Connected Domains": 2},
            "comment": "Connected Domains: domains sharing this IP address in DomainTools Iris",
            "tags": ["DomainTools", "Iris"], "categories": ["External analysis"]})
    );
}

/// §12.5: Iris-Import's entries are the reference's; MISP gets them in stored form (values
/// `["amazon.com"]`), which is compatibility fix 3 applied to every import.
#[test]
fn iris_import_matches_the_reference_on_the_recorded_search() {
    let payload = crate::modules::iris_search::domain_entries(&investigate_results());
    let ours = render(payload.entries(), Form::Hover, None);
    golden::assert_matches(&ours, &golden::load("iris-import-two-domains.txt"), &[]);
    let stored = render(payload.entries(), Form::Stored, None);
    assert_eq!(stored[0]["values"], serde_json::json!(["amazon.com"]));
    assert_eq!(stored[1]["values"], serde_json::json!(["google.com"]));
    // Stored, each domain carries what Iris says of it (issue 11: no import summary on it).
    assert_eq!(
        stored[1]["comment"],
        "Domain from DomainTools Iris: risk score 0, created 1997-09-15, expires 2028-09-14, active"
    );
}

/// §12.5: Iris-Detect with the default form on the recorded new-domains page gives 100
/// entries of the reference's shape, one per domain, in the API's order.
#[test]
fn iris_detect_default_matches_the_reference_shape() {
    let page = fixture("iris-detect-new.json");
    let domains = page["watchlist_domains"].as_array().unwrap();
    let (entries, ids) = crate::modules::iris_detect::map(domains);
    assert_eq!(entries.len(), 100);
    assert_eq!(ids.len(), 100);
    for (entry, domain) in entries.iter().zip(domains) {
        // The reference's shape, plus (issue 11) a comment of each domain's own instead of
        // the import summary MISP would put on all of them.
        let mut entry = entry.clone();
        let comment = entry.as_object_mut().unwrap().remove("comment").unwrap();
        assert!(
            comment
                .as_str()
                .unwrap()
                .starts_with("Iris Detect new domain, discovered 20"),
            "{comment}"
        );
        assert_eq!(
            entry,
            serde_json::json!({"categories": ["External analysis"], "type": "domain",
                "values": domain["domain"], "tags": ["DomainTools", "Iris Detect"]})
        );
    }
    assert_eq!(entries[0]["values"], "googletydep.com");
}
