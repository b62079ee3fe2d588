//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

pub mod child;
pub mod fuzz_entry;
pub mod golden;
pub mod misp_modules;
pub mod opencti;
pub mod server;
pub mod stix_check;

/// An error reply in the hover form (no `event_id`): `{"results": [], "error"}` plus the error as
/// an "Error" entry, because MISP's hover popover shows `results` only (issue 11).
pub fn hover_error(message: &str) -> serde_json::Value {
    serde_json::json!({"results": [error_entry(message)], "error": message})
}

/// The "Error" entry a hover reply ends with when it has an error.
pub fn error_entry(message: &str) -> serde_json::Value {
    serde_json::json!({"types": ["text"], "values": {"Error": message}})
}
