//! Reads the reference's golden outputs (`tests/golden/*.txt`) and compares our entries with
//! them one by one, allowing only the divergences `docs/compatibility.md` documents.

use std::collections::BTreeSet;

// `crate::misp`: the library's own module when its unit tests include this file
// (src/modules/mod.rs), the import at the root of the test binary here.
use crate::misp::CATALOGUE;
use serde_json::Value;

/// One golden line: `types | values | comment | tags | categories`.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldenEntry {
    pub types: Value,
    pub values: Value,
    pub comment: Value,
    pub tags: Vec<String>,
    pub categories: Option<Value>,
}

/// Parses a golden file (comment lines start with `#`).
pub fn load(name: &str) -> Vec<GoldenEntry> {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let parts: Vec<&str> = line.split(" | ").collect();
            assert_eq!(parts.len(), 5, "golden line has 5 fields: {line}");
            let json =
                |s: &str| serde_json::from_str::<Value>(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            GoldenEntry {
                types: json(parts[0]),
                values: json(parts[1]),
                comment: json(parts[2]),
                tags: serde_json::from_str(parts[3]).unwrap(),
                categories: (parts[4] != "-").then(|| json(parts[4])),
            }
        })
        .collect()
}

/// The documented divergences one comparison allows, each for the labels listed only.
#[derive(Debug, Default)]
pub struct Divergences<'a> {
    /// Compatibility fix 2: the reference's hash-seed-dependent tag order is replaced by our
    /// stable order (same set, "DomainTools" first).
    pub tag_order: &'a [&'a str],
    /// Compatibility fix 1: the reference repeated the first nested value for every key of a
    /// nested object; we emit each key's own value, given here (taken from the fixture).
    pub values: &'a [(&'a str, Value)],
    /// The reference used a label MISP does not know as a type (`whois-registrant-country`);
    /// we send `text`. Allowed only when every golden type is unknown to MISP.
    pub invalid_types: &'a [&'a str],
}

/// Compares rendered hover entries with the golden ones, entry by entry. Tags must be equal,
/// except for the labels in `tag_order_fixed`, where the reference's hash-seed-dependent order
/// is replaced by our stable order (compatibility fix 2): same set, "DomainTools" first.
pub fn assert_matches(ours: &[Value], golden: &[GoldenEntry], tag_order_fixed: &[&str]) {
    assert_matches_with(
        ours,
        golden,
        &Divergences {
            tag_order: tag_order_fixed,
            ..Divergences::default()
        },
    );
}

/// Like [`assert_matches`], allowing exactly the divergences listed in `allowed`.
pub fn assert_matches_with(ours: &[Value], golden: &[GoldenEntry], allowed: &Divergences<'_>) {
    let golden_labels: Vec<String> = golden.iter().map(label_of).collect();
    for (label, _) in allowed.values {
        assert!(
            golden_labels.iter().any(|l| l == label),
            "value divergence for {label:?}, which is not a golden label"
        );
    }
    for label in allowed.invalid_types {
        assert!(
            golden_labels.iter().any(|l| l == label),
            "type divergence for {label:?}, which is not a golden label"
        );
    }
    for (i, (got, want)) in ours.iter().zip(golden).enumerate() {
        let at = format!("entry {i}: ours {got}\n  golden {want:?}");
        let label = label_of(want);
        if got["types"] != want.types {
            assert!(
                allowed.invalid_types.contains(&label.as_str()),
                "types of {at}"
            );
            let known = want
                .types
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|t| CATALOGUE.has_type(t));
            assert!(
                !known,
                "types of {at}: only types MISP does not know may change"
            );
            assert_eq!(got["types"], serde_json::json!(["text"]), "types of {at}");
        }
        if got["values"] != want.values {
            let fixed = allowed.values.iter().find(|(l, _)| *l == label);
            let Some((_, real)) = fixed else {
                panic!("values of {at}");
            };
            let mut expected = serde_json::Map::new();
            expected.insert(label.clone(), real.clone());
            assert_eq!(
                got["values"],
                Value::Object(expected),
                "own nested value of {at}"
            );
        }
        assert_eq!(got["comment"], want.comment, "comment of {at}");
        if got.get("categories") != want.categories.as_ref() {
            // Compatibility fix: a category MISP refuses for the type becomes the type's default.
            let first_type = want.types[0].as_str().unwrap();
            let golden_categories: Vec<&str> = want
                .categories
                .as_ref()
                .and_then(Value::as_array)
                .map(|c| c.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            assert!(
                golden_categories
                    .iter()
                    .all(|c| !CATALOGUE.allows(c, first_type)),
                "categories of {at}: only invalid reference categories may change"
            );
            assert_eq!(
                got["categories"],
                serde_json::json!([CATALOGUE.default_category(first_type).unwrap()]),
                "categories of {at}"
            );
        }
        let our_tags: Vec<String> = serde_json::from_value(got["tags"].clone()).unwrap();
        if our_tags != want.tags {
            assert!(allowed.tag_order.contains(&label.as_str()), "tags of {at}");
            let a: BTreeSet<_> = our_tags.iter().collect();
            let b: BTreeSet<_> = want.tags.iter().collect();
            assert_eq!(a, b, "tag set of {at}");
            assert_eq!(our_tags[0], "DomainTools", "stable tag order of {at}");
        }
    }
    assert_eq!(ours.len(), golden.len(), "entry count");
}

/// The hover label of a golden entry (the one key of its `values`).
fn label_of(entry: &GoldenEntry) -> String {
    entry
        .values
        .as_object()
        .and_then(|m| m.keys().next())
        .cloned()
        .unwrap_or_default()
}

/// Compares `produced` with the JSON golden file `tests/golden/<name>`; on a difference, what
/// was produced is written to `target/golden-actual/<name>` for review.
pub fn assert_json(name: &str, produced: &Value) {
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
