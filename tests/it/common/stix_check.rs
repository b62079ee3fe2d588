//! Runs the OASIS `stix2` library over a bundle (tests/stix/check_bundle.py): a real STIX
//! consumer parses it and recomputes every id. Required in CI (`CI=true`); elsewhere a missing
//! python3 or stix2 skips the check with a notice, so a laptop without Python can still test.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

fn unavailable(reason: &str) -> Option<Value> {
    assert!(
        !in_ci(),
        "CI=true but the stix2 check cannot run: {reason} (.ci/run installs it with \
         `python3 -m pip install stix2`)"
    );
    let notice = format!(
        "NOTICE: stix2 check skipped: {reason}; install it with `python3 -m pip install stix2`"
    );
    // The test harness captures what passing tests print, and a skipped check must be seen:
    // write to the process's own stderr where the system offers it.
    match std::fs::OpenOptions::new().write(true).open("/dev/stderr") {
        Ok(mut stderr) => {
            let _ = writeln!(stderr, "{notice}");
        }
        Err(_) => eprintln!("{notice}"),
    }
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
    let output = Command::new("python3").arg(&script).arg(&path).output();
    let _ = std::fs::remove_file(&path);
    let output = match output {
        Ok(output) => output,
        Err(error) => return unavailable(&format!("python3 cannot be run ({error})")),
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
