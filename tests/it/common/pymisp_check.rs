//! Loads a `misp_standard` answer with PyMISP (tests/misp/check_standard.py), the library
//! misp-modules' own modules build theirs with: strict template validation of every object,
//! type and category of every attribute, run by the tests' venv (`super::python`). Required in
//! CI (`CI=true`); elsewhere a missing venv or pymisp skips the check with a notice.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unavailable(reason: &str) -> Option<Value> {
    super::missing("PyMISP", reason, super::PY_VENV_INSTALL);
    None
}

/// Checks `answers` (whole `/query` replies, each with the uuid of the attribute it enriched)
/// with PyMISP in one run; returns its summary, or `None` when skipped locally. Panics with
/// PyMISP's findings when it refuses an answer.
pub fn check_with_pymisp(answers: &[(Value, String)]) -> Option<Value> {
    let path = std::env::temp_dir().join(format!(
        "misp-domaintools-answer-{}-{}.json",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let list: Vec<Value> = answers
        .iter()
        .map(|(answer, uuid)| serde_json::json!({"answer": answer, "input_uuid": uuid}))
        .collect();
    std::fs::write(&path, Value::Array(list).to_string())
        .expect("writing the answers to a temp file");
    let script = format!(
        "{}/tests/misp/check_standard.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let output = Command::new(super::python())
        .arg(&script)
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    let output = match output {
        Ok(output) => output,
        Err(error) => {
            return unavailable(&format!(
                "{} cannot be run ({error})",
                super::python().display()
            ))
        }
    };
    if output.status.code() == Some(3) {
        return unavailable("the pymisp package is not installed");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "PyMISP refused the answer: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_str(stdout.trim()).expect("the checker prints a JSON summary"))
}
