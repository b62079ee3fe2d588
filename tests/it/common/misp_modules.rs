//! The real misp-modules server (PyPI package `misp-modules`, in the venv `.ci/run` creates) on a
//! free loopback port, for the tests of `--misp-modules-url`. Required in CI (`CI=true`);
//! elsewhere a missing venv skips those tests with a notice.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::child::free_port;

/// Where `.ci/run` creates the venv (overridden by `MISP_MODULES_VENV`).
pub const DEFAULT_VENV: &str = "/tmp/misp-modules-venv";

/// A running misp-modules; killed when dropped.
pub struct RealMispModules {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
}

impl Drop for RealMispModules {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn executable() -> PathBuf {
    let venv = std::env::var("MISP_MODULES_VENV").unwrap_or_else(|_| DEFAULT_VENV.to_owned());
    PathBuf::from(venv).join("bin").join("misp-modules")
}

fn unavailable(reason: &str) -> Option<RealMispModules> {
    super::missing(
        "misp-modules",
        reason,
        &format!("`python3 -m venv {DEFAULT_VENV} && {DEFAULT_VENV}/bin/pip install misp-modules==3.1.1`"),
    );
    None
}

impl RealMispModules {
    /// Starts misp-modules on a free loopback port and waits until `/healthcheck` answers;
    /// `None` (with a notice) when it is not installed here, outside CI.
    pub async fn start() -> Option<Self> {
        let program = executable();
        if !program.exists() {
            return unavailable(&format!("{} does not exist", program.display()));
        }
        let port = free_port();
        let child = Command::new(&program)
            .args(["-l", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) => {
                return unavailable(&format!("{} cannot be run ({error})", program.display()))
            }
        };
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        // It starts in well under a second here; the bound is for a broken install, not speed.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let health = http
                .get(format!("{}/healthcheck", server.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return Some(server);
            }
            assert!(
                Instant::now() < deadline,
                "misp-modules did not answer /healthcheck within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
