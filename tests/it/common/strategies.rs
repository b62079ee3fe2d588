//! proptest strategies shared by the property tests of the integration tests
//! (`reliability_properties.rs`) and of the library's unit tests (`src/protocol/properties.rs`,
//! `src/domain/properties.rs`, which include this file by `#[path]`).

use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Any JSON value, nested a few levels.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        // Quarters are exact in binary: serde_json (without float_roundtrip) may read other
        // long decimals back one ulp off, which is its business, not the protocol's.
        any::<i32>().prop_map(|n| json!(f64::from(n) / 4.0)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON objects shaped like MISP requests: known keys with values of any type.
pub fn request_like() -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![
        Just("module".to_owned()),
        Just("config".to_owned()),
        Just("timeout".to_owned()),
        Just("event_id".to_owned()),
        Just("domain".to_owned()),
        Just("hostname".to_owned()),
        Just("ip-src".to_owned()),
        Just("data".to_owned()),
        ".{0,10}",
    ];
    prop::collection::btree_map(key, json_value(), 0..8).prop_map(|m| m.into_iter().collect())
}

/// Host-like strings: labels of letters, digits and hyphens, in either case.
pub fn hostname() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-zA-Z0-9][a-zA-Z0-9-]{0,10}", 1..5).prop_flat_map(|labels| {
        prop_oneof![
            Just("com"),
            Just("co.uk"),
            Just("COM"),
            Just("org"),
            Just("github.io"),
            Just("example"),
            Just("xn--p1ai"),
            Just("museum"),
        ]
        .prop_map(move |suffix| format!("{}.{suffix}", labels.join(".")))
    })
}
