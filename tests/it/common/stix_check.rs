//! Runs the OASIS `stix2` library over a bundle (tests/stix/check_bundle.py): a real STIX
//! consumer parses it and recomputes every id; the scripts run in the tests' venv
//! (`super::python`). Required in CI (`CI=true`); elsewhere a missing venv or package skips the
//! check with a notice, so a laptop without Python can still test.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unavailable(reason: &str) -> Option<Value> {
    super::missing("stix2", reason, super::PY_VENV_INSTALL);
    None
}

/// Checks `bundle` with stix2; returns the checker's summary, or `None` when skipped locally.
/// Panics with the checker's findings when the bundle is not valid.
pub fn check_with_stix2(bundle: &Value) -> Option<Value> {
    let path = std::env::temp_dir().join(format!(
        "misp-domaintools-bundle-{}-{}.json",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, bundle.to_string()).expect("writing the bundle to a temp file");
    let script: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "stix",
        "check_bundle.py",
    ]
    .iter()
    .collect();
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
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.code() == Some(3) {
        return unavailable("the stix2 package is not installed");
    }
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "the checker printed no summary: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(
        output.status.success() && summary["valid"] == true,
        "stix2 refused the bundle: {summary}"
    );
    Some(summary)
}

/// Runs a Python checker script of tests/stix/ on `args`; `None` when it cannot run here (and
/// this is not CI), else its JSON summary and whether it exited 0. `package` names what
/// `pip install` needs when the script exits 3.
fn run_script(script: &str, package: &str, args: &[PathBuf]) -> Option<(Value, bool)> {
    let script: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "stix", script]
        .iter()
        .collect();
    let output = match Command::new(super::python())
        .arg(&script)
        .args(args)
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            let python = super::python();
            return skipped(
                package,
                &format!("{} cannot be run ({error})", python.display()),
            );
        }
    };
    if output.status.code() == Some(3) {
        return skipped(package, &format!("the {package} package is not installed"));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "{} printed no summary: {stdout} {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    Some((summary, output.status.success()))
}

fn skipped<T>(package: &str, reason: &str) -> Option<T> {
    super::missing(package, reason, super::PY_VENV_INSTALL);
    None
}

/// Validates bundle files with the OASIS stix2-validator in strict mode, check 103 ("not a
/// UUIDv4") disabled (tests/stix/validate_strict.py). Panics with every error and warning when
/// one is not valid; `false` when skipped locally.
pub fn validate_strict(paths: &[PathBuf]) -> bool {
    let Some((summary, success)) = run_script("validate_strict.py", "stix2-validator", paths)
    else {
        return false;
    };
    assert!(
        success && summary["valid"] == true,
        "stix2-validator --strict refused: {summary:#}"
    );
    true
}

/// Splits a bundle with pycti's own splitter (tests/stix/split_with_pycti.py): its
/// `{"expectations", "bundles"}`, or `None` when pycti is not installed here (and this is not
/// CI).
pub fn split_with_pycti(bundle: &Value) -> Option<Value> {
    let path = std::env::temp_dir().join(format!(
        "misp-domaintools-split-{}-{}.json",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, bundle.to_string()).expect("writing the bundle to a temp file");
    let result = run_script("split_with_pycti.py", "pycti", std::slice::from_ref(&path));
    let _ = std::fs::remove_file(&path);
    let (summary, success) = result?;
    assert!(success, "pycti's splitter failed: {summary}");
    Some(summary)
}
