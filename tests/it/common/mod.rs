//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

pub mod child;
pub mod fuzz_entry;
pub mod golden;
pub mod misp_objects;
pub mod opencti;
pub mod opencti_schema;
pub mod pymisp_check;
pub mod rabbitmq;
pub mod server;
pub mod stix_check;

/// What `results` may be in any 200 reply: the legacy list, or the `misp_standard` object of
/// the `-Objects` modules holding only `Attribute` and `Object` lists.
pub fn well_formed_results(results: &serde_json::Value) -> bool {
    match results {
        serde_json::Value::Array(_) => true,
        serde_json::Value::Object(map) => map
            .iter()
            .all(|(key, value)| matches!(key.as_str(), "Attribute" | "Object") && value.is_array()),
        _ => false,
    }
}
