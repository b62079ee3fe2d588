//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

pub mod child;
pub mod fuzz_entry;
pub mod golden;
pub mod misp_modules;
pub mod misp_objects;
pub mod opencti;
pub mod opencti_schema;
pub mod pymisp_check;
pub mod rabbitmq;
pub mod server;
pub mod stix_check;
pub mod tls;

/// An error reply in the hover form (no `event_id`): `{"results": [], "error"}` plus the error as
/// an "Error" entry, because MISP's hover popover shows `results` only (issue 11).
pub fn hover_error(message: &str) -> serde_json::Value {
    serde_json::json!({"results": [error_entry(message)], "error": message})
}

/// The "Error" entry a hover reply ends with when it has an error.
pub fn error_entry(message: &str) -> serde_json::Value {
    serde_json::json!({"types": ["text"], "values": {"Error": message}})
}

/// Whether the tests run in CI (`CI=true`), where every outside program must be there.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

/// An outside program the test needs is missing: a failure in CI, elsewhere a notice that
/// the test harness cannot swallow (it captures what passing tests print, so the notice goes
/// to the process's own stderr where the system offers it).
pub fn missing(program: &str, reason: &str, install: &str) {
    assert!(
        !in_ci(),
        "CI=true but {program} cannot run: {reason} (.ci/run installs it: {install})"
    );
    let notice = format!("NOTICE: {program} test skipped: {reason}; install it with {install}");
    match std::fs::OpenOptions::new().write(true).open("/dev/stderr") {
        Ok(mut stderr) => {
            let _ = std::io::Write::write_all(&mut stderr, format!("{notice}\n").as_bytes());
        }
        Err(_) => eprintln!("{notice}"),
    }
}

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
