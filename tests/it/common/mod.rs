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
pub mod redis;
pub mod server;
pub mod stix_check;
pub mod strategies;
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
/// to the process's own stderr where the system offers it). The one place that decides this:
/// every test that needs a program, a Python package or a venv comes here.
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

/// Whether `redis-server` can be run; when not, [`missing`] has said so (a failure in CI).
pub fn redis_present() -> bool {
    let installed = std::process::Command::new("redis-server")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        missing(
            "redis-server",
            "it is not installed",
            "`apt-get install redis-server`",
        );
    }
    installed
}

/// The venv `.ci/run` creates for every Python package the tests check against (stix2,
/// stix2-validator, pycti, PyMISP), relative to the repository; `TESTS_PY_VENV` points
/// elsewhere. misp-modules has a venv of its own (`MISP_MODULES_VENV`): it pins too much to
/// share one.
pub const PY_VENV: &str = "target/py-venv";

/// How to make the tests' venv, for notices and CI failures.
pub const PY_VENV_INSTALL: &str = "`python3 -m venv target/py-venv && target/py-venv/bin/pip \
     install stix2 stix2-validator pycti==7.260817.0 pymisp` (or set TESTS_PY_VENV to a venv \
     that has them)";

/// The Python interpreter of the tests' venv ([`PY_VENV`], or `$TESTS_PY_VENV`). It may not
/// exist: running it then fails, and the caller reports that through [`missing`].
pub fn python() -> std::path::PathBuf {
    let venv = std::env::var_os("TESTS_PY_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PY_VENV));
    venv.join("bin").join("python")
}

/// [`python`] if it can import `module`; else `None`, after [`missing`] (a failure in CI).
pub fn python_with(module: &str) -> Option<std::path::PathBuf> {
    let python = python();
    let imports = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|output| output.status.success());
    if imports {
        return Some(python);
    }
    missing(
        module,
        &format!("{} cannot import it", python.display()),
        PY_VENV_INSTALL,
    );
    None
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
