//! STIX bundles from the recorded Iris Investigate fixture: compared with the golden bundles
//! reviewed by hand (tests/golden/stix-*.json) and checked by the OASIS stix2 library, plus
//! the synthetic records of the fake API through the whole enrichment path.

use crate::common::server::{TestServer, KEY, USER};
use crate::common::stix_check::check_with_stix2;
use chrono::{DateTime, Utc};
use domaintools::{Caller, Credentials};
use misp_domaintools::stix::mapping::bundle;
use misp_domaintools::stix::{
    enrich, ids, map_records, EnrichSettings, MapOptions, Observable, ObservableKind, Tlp,
};
use serde_json::Value;

/// The golden bundles' id and clock (STIX wants a random bundle id; goldens need a fixed one).
pub const GOLDEN_BUNDLE_UUID: &str = "2f6d8c4e-1b3a-4e5f-9a7b-c0d1e2f3a4b5";

fn golden_now() -> DateTime<Utc> {
    crate::common::server::golden_day()
}

fn fixture_records() -> Vec<Value> {
    let text = include_str!(
        "../../crates/domaintools-fake/fixtures/domaintools/iris-investigate-domain.json"
    );
    let fixture: Value = serde_json::from_str(text).unwrap();
    fixture["response"]["results"].as_array().unwrap().clone()
}

fn record_of(domain: &str) -> Value {
    fixture_records()
        .into_iter()
        .find(|r| r["domain"] == domain)
        .unwrap()
}

/// Compares with tests/golden/<name>; on a difference writes what was produced next to the
/// build (target/golden-actual/<name>) so it can be reviewed and, if right, copied over.
fn assert_golden(name: &str, produced: &Value) {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    let golden: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    if &golden != produced {
        let dir = format!("{}/target/golden-actual", env!("CARGO_MANIFEST_DIR"));
        let _ = std::fs::create_dir_all(&dir);
        let actual = format!("{dir}/{name}");
        let _ = std::fs::write(
            &actual,
            serde_json::to_string_pretty(produced).unwrap() + "\n",
        );
        panic!("{name} differs from its golden file; what was produced is in {actual}");
    }
}

fn golden_bundle(observable: &Observable, records: &[Value]) -> Value {
    let mapping = map_records(
        observable,
        records,
        &MapOptions::new(Tlp::Amber, golden_now()),
    );
    bundle(mapping.objects, GOLDEN_BUNDLE_UUID)
}

#[test]
fn google_com_matches_its_golden_bundle_and_passes_stix2() {
    let observable = Observable::parse("google.com").unwrap();
    let produced = golden_bundle(&observable, &[record_of("google.com")]);
    assert_golden("stix-google.com.json", &produced);
    let summary = check_with_stix2(&produced);
    if let Some(summary) = summary {
        assert_eq!(summary["objects"], 17);
        assert_eq!(summary["ids_recomputed"], 17);
    }
}

#[test]
fn an_ip_pivot_matches_its_golden_bundle_and_passes_stix2() {
    // 54.239.28.85 is one of amazon.com's A records: Iris by ip returns that record.
    let observable = Observable::parse("54.239.28.85").unwrap();
    let records: Vec<Value> = fixture_records()
        .into_iter()
        .filter(|r| {
            r["ip"].as_array().is_some_and(|ips| {
                ips.iter()
                    .any(|ip| ip["address"]["value"] == "54.239.28.85")
            })
        })
        .collect();
    assert_eq!(records.len(), 1);
    let produced = golden_bundle(&observable, &records);
    assert_golden("stix-ip-54.239.28.85.json", &produced);
    check_with_stix2(&produced);
}

#[test]
fn the_amazon_com_domain_bundle_passes_stix2() {
    let observable = Observable::parse("amazon.com").unwrap();
    let produced = golden_bundle(&observable, &[record_of("amazon.com")]);
    check_with_stix2(&produced);
    // The platform's own observable (connector mode) is sent without marking or author.
    let existing = Observable::existing(
        ObservableKind::DomainName,
        "amazon.com",
        &ids::domain_name_id("amazon.com"),
    )
    .unwrap();
    check_with_stix2(&golden_bundle(&existing, &[record_of("amazon.com")]));
}

/// Many domains on one IP (clones of the google.com record, as the fake's synthetic
/// `*.example` domains are): one bundle, each shared object once, accepted by stix2.
#[test]
fn a_large_ip_pivot_gives_one_object_per_id_and_passes_stix2() {
    let observable = Observable::existing(
        ObservableKind::Ipv4Addr,
        "142.251.33.78",
        &ids::ipv4_addr_id("142.251.33.78"),
    )
    .unwrap();
    let records: Vec<Value> = (1..=150)
        .map(|n| {
            let mut record = record_of("google.com");
            record["domain"] = Value::from(format!("d{n:04}.example"));
            record
        })
        .collect();
    let produced = golden_bundle(&observable, &records);
    let objects = produced["objects"].as_array().unwrap();
    let domains = objects
        .iter()
        .filter(|o| o["type"] == "domain-name")
        .count();
    // 150 domains, plus google.com and markmonitor.com found in their records.
    assert_eq!(domains, 152);
    assert_eq!(
        objects
            .iter()
            .filter(|o| o["type"] == "autonomous-system")
            .count(),
        1
    );
    check_with_stix2(&produced);
}

/// An IP enrichment through the real client: markings follow the observable's TLP.
#[tokio::test]
async fn an_ip_enrichment_marks_relationships_with_the_observables_tlp() {
    let upstream = TestServer::builder()
        .app_partner("OpenCTI")
        .start_client()
        .await;
    let client = &upstream.client;
    let credentials = Credentials::new(USER, KEY);
    let caller = Caller::new(&credentials, "test");
    // The fake's ip pivot matches the recorded records only; 142.251.33.78 is google.com's.
    let settings = EnrichSettings {
        marking: Tlp::Green,
        ip_domain_limit: 1,
        confidence: Some(70),
        ..EnrichSettings::default()
    };
    let observable = Observable::parse("142.251.33.78").unwrap();
    let enrichment = enrich(
        client,
        caller,
        &observable,
        &settings,
        Some(Tlp::Red),
        golden_now(),
    )
    .await
    .unwrap();
    assert!(enrichment.found);
    assert_eq!(enrichment.total, Some(1));
    let produced = &enrichment.bundle;
    let summary = check_with_stix2(produced);
    if let Some(summary) = summary {
        assert_eq!(summary["valid"], true);
    }
    let objects = produced["objects"].as_array().unwrap();
    let google = ids::domain_name_id("google.com");
    assert!(objects
        .iter()
        .any(|o| o["source_ref"] == google.as_str() && o["target_ref"] == observable.id.as_str()));
    // Green objects, red relationships: the marking follows the enriched observable's TLP.
    for object in objects {
        match object["type"].as_str() {
            Some("relationship") => {
                assert_eq!(object["object_marking_refs"][0], Tlp::Red.marking_id())
            }
            Some("identity") => assert!(object.get("object_marking_refs").is_none()),
            _ => assert_eq!(object["object_marking_refs"][0], Tlp::Green.marking_id()),
        }
    }
}

#[test]
fn every_golden_bundle_passes_the_strict_stix2_validator() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut bundles: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("stix-"))
                && path.extension().is_some_and(|ext| ext == "json")
        })
        .collect();
    bundles.sort();
    assert!(
        bundles.len() >= 2,
        "the golden bundles are found: {bundles:?}"
    );
    crate::common::stix_check::validate_strict(&bundles);
}
