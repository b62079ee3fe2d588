//! The Iris hover modules reproduce the Python reference's golden outputs (reference doc §12.1
//! and §12.2) entry by entry on the recorded DomainTools answers.

mod common;

use chrono::{TimeZone, Utc};
use misp_domaintools::misp::{render, Form};
use misp_domaintools::modules::iris_hover::{map, Product};
use serde_json::Value;

use common::golden;

fn record(fixture: &str, domain: &str) -> Value {
    let path = format!(
        "{}/fixtures/domaintools/{fixture}",
        env!("CARGO_MANIFEST_DIR")
    );
    let body: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    body["response"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["domain"] == domain)
        .cloned()
        .unwrap()
}

/// The day the golden outputs were produced.
fn golden_day() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap()
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
    let payload = misp_domaintools::modules::iris_pivot::map_domain(
        &record("iris-investigate-domain.json", "google.com"),
        misp_domaintools::modules::iris_pivot::DEFAULT_GUIDED_PIVOT_THRESHOLD,
    );
    let ours = render(payload.entries(), Form::Hover, None);
    golden::assert_matches(&ours, &golden::load("iris-pivot-google.com.txt"), &[]);
}
