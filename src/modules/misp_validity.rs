//! Every attribute type and type/category pair the modules emit is one MISP accepts, checked
//! against MISP's own catalogue (`describeTypes.json`, bundled from PyMISP's data) on every
//! recorded DomainTools answer.

use crate::misp::{render, Form, CATALOGUE};
use crate::modules::iris_record::{map, Product};
use chrono::Utc;
use serde_json::Value;

use super::recorded::fixture;

/// Asserts every rendered entry is storable in MISP; returns how many pairs were checked.
pub fn assert_valid(entries: &[Value]) -> usize {
    let mut checked = 0;
    for entry in entries {
        let types = entry["types"].as_array().unwrap();
        assert!(!types.is_empty(), "{entry}");
        for t in types {
            let t = t.as_str().unwrap();
            assert!(CATALOGUE.has_type(t), "unknown MISP type {t:?} in {entry}");
            if let Some(categories) = entry.get("categories") {
                for c in categories.as_array().unwrap() {
                    let c = c.as_str().unwrap();
                    assert!(
                        CATALOGUE.allows(c, t),
                        "MISP refuses {t:?} under {c:?}: {entry}"
                    );
                    checked += 1;
                }
            }
        }
    }
    checked
}

#[test]
fn iris_record_modules_emit_valid_misp() {
    let mut checked = 0;
    for (file, product) in [
        ("iris-investigate-domain.json", Product::Investigate),
        ("iris-investigate-domain.json", Product::Enrich),
        ("iris-enrich.json", Product::Enrich),
        ("iris-enrich.json", Product::Investigate),
    ] {
        for record in fixture(file)["response"]["results"].as_array().unwrap() {
            let payload = map(
                record["domain"].as_str().unwrap(),
                record,
                product,
                Utc::now(),
            );
            assert!(!payload.is_empty());
            for form in [Form::Hover, Form::Stored] {
                checked += assert_valid(&render(payload.entries(), form, None));
            }
        }
    }
    assert!(checked > 100, "only {checked} pairs checked");
}

#[test]
fn iris_pivot_import_and_detect_emit_valid_misp() {
    use crate::modules::{iris_detect, iris_pivot, iris_search};
    let mut checked = 0;
    let results = fixture("iris-investigate-domain.json")["response"]["results"].clone();
    let results = results.as_array().unwrap();
    for record in results {
        let payload = iris_pivot::map_domain(record, 300);
        assert!(!payload.is_empty());
        for form in [Form::Hover, Form::Stored] {
            checked += assert_valid(&render(payload.entries(), form, None));
        }
    }
    let connected = iris_pivot::map_connected(results, Some(2), "this IP address");
    let imported = iris_search::domain_entries(results);
    for form in [Form::Hover, Form::Stored] {
        checked += assert_valid(&render(connected.entries(), form, None));
        checked += assert_valid(&render(imported.entries(), form, None));
    }
    // Detect's entries name one type under `type` and carry a string value.
    for list in ["iris-detect-new.json", "iris-detect-watched.json"] {
        let page = fixture(list);
        let (entries, _) = iris_detect::map(page["watchlist_domains"].as_array().unwrap());
        assert!(!entries.is_empty());
        for entry in &entries {
            assert!(
                entry["values"].as_str().is_some_and(|v| !v.is_empty()),
                "{entry}"
            );
            let mut as_types = entry.clone();
            as_types["types"] = serde_json::json!([entry["type"]]);
            checked += assert_valid(std::slice::from_ref(&as_types));
        }
    }
    assert!(checked > 200, "only {checked} pairs checked");
}
