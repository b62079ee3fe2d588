//! Reads the reference's golden outputs (`tests/golden/*.txt`) and compares our entries with
//! them one by one, allowing only the divergences `docs/compatibility.md` documents.

use std::collections::BTreeSet;

use misp_domaintools::misp::CATALOGUE;
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

/// Compares rendered hover entries with the golden ones, entry by entry. Tags must be equal,
/// except for the labels in `tag_order_fixed`, where the reference's hash-seed-dependent order
/// is replaced by our stable order (compatibility fix 2): same set, "DomainTools" first.
pub fn assert_matches(ours: &[Value], golden: &[GoldenEntry], tag_order_fixed: &[&str]) {
    for (i, (got, want)) in ours.iter().zip(golden).enumerate() {
        let at = format!("entry {i}: ours {got}\n  golden {want:?}");
        assert_eq!(got["types"], want.types, "types of {at}");
        assert_eq!(got["values"], want.values, "values of {at}");
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
            let label = want
                .values
                .as_object()
                .and_then(|m| m.keys().next())
                .cloned()
                .unwrap_or_default();
            assert!(tag_order_fixed.contains(&label.as_str()), "tags of {at}");
            let a: BTreeSet<_> = our_tags.iter().collect();
            let b: BTreeSet<_> = want.tags.iter().collect();
            assert_eq!(a, b, "tag set of {at}");
            assert_eq!(our_tags[0], "DomainTools", "stable tag order of {at}");
        }
    }
    assert_eq!(ours.len(), golden.len(), "entry count");
}
