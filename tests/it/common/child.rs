//! The real binary as a child process in front of an in-process fake DomainTools API: for the
//! tests that need what only a process has (its RSS, its logs, its signals).

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use domaintools_fake::FakeApi;
use serde_json::Value;

use super::server::{http_client, metrics_text, status_and_json, sum_metric, Builder, TestFake};

/// A running `misp-domaintools`; killed when dropped.
pub struct ChildServer {
    pub child: Child,
    pub url: String,
    pub port: u16,
    /// The fake DomainTools API it talks to (started by [`Builder::child`]), if any.
    upstream: Option<TestFake>,
    output: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Builder {
    /// The real binary with `args` (and `envs`) in front of the fake (`--api-url` is set); the
    /// options and client settings of the builder do not apply, flags say them.
    pub async fn child(self, args: &[&str], envs: &[(&str, &str)]) -> ChildServer {
        let fake = self.start_fake().await;
        let api_url = fake.base_url();
        let mut all = vec!["--api-url", api_url.as_str()];
        all.extend_from_slice(args);
        let mut server = ChildServer::start(&all, envs).await;
        server.upstream = Some(fake);
        server
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary with none of the settings a developer's environment might carry.
pub fn binary() -> Command {
    clean(Command::new(env!("CARGO_BIN_EXE_misp-domaintools")))
}

/// The binary run through `prlimit` with the given open-files limits (soft, hard): what a
/// systemd service (soft 1024) or a tight container gets.
pub fn binary_with_open_files(soft: u64, hard: u64) -> Command {
    let mut command = Command::new("prlimit");
    command.args([
        format!("--nofile={soft}:{hard}"),
        "--".to_owned(),
        env!("CARGO_BIN_EXE_misp-domaintools").to_owned(),
    ]);
    clean(command)
}

/// `command` with none of the settings a developer's environment might carry.
fn clean(mut command: Command) -> Command {
    for (var, _) in std::env::vars() {
        let ours = [
            "DOMAINTOOLS_",
            "MISP_DOMAINTOOLS_",
            "OPENCTI_",
            "CONNECTOR_",
        ];
        if ours.iter().any(|prefix| var.starts_with(prefix)) {
            command.env_remove(var);
        }
    }
    command.env_remove("RUST_LOG");
    command
}

impl ChildServer {
    /// Starts the binary with `args` (and `envs`) on a free port, capturing stdout and stderr,
    /// and waits until it is healthy.
    pub async fn start(args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::start_command(binary(), args, envs).await
    }

    /// Like [`ChildServer::start`], running `command` (the binary, possibly wrapped).
    pub async fn start_command(mut command: Command, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let port = free_port();
        command
            .args(["--port", &port.to_string()])
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let streams: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for mut stream in streams {
            let output = output.clone();
            readers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    output
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&buf[..n]);
                }
            }));
        }
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            upstream: None,
            output,
            readers,
        };
        server.wait_healthy().await;
        server
    }

    /// The fake it talks to; panics when it was started without [`Builder::child`].
    pub fn fake(&self) -> &FakeApi {
        &self
            .upstream
            .as_ref()
            .expect("started by Builder::child")
            .fake
    }

    async fn wait_healthy(&self) {
        let client = http_client();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(response) = client.get(format!("{}/healthcheck", self.url)).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "the server did not become healthy; output:\n{}",
            self.output()
        );
    }

    /// The process's `VmRSS` and `VmHWM`, in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Sends SIGTERM (through `kill`, as an orchestrator would).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to `limit` for the process to exit; its exit code, or None if still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Stops the process (SIGTERM), waits for it and for its output to be read, and returns
    /// the output.
    pub fn stop_and_collect(mut self) -> String {
        self.terminate();
        if self.wait_exit(Duration::from_secs(15)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for reader in std::mem::take(&mut self.readers) {
            let _ = reader.join();
        }
        self.output()
    }

    /// POSTs raw bytes to /query; the status and the JSON reply (Null if not JSON).
    pub async fn post_raw(&self, client: &reqwest::Client, body: Vec<u8>) -> (u16, Value) {
        let response = client
            .post(format!("{}/query", self.url))
            .body(body)
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }

    /// The sum of the metric samples whose line starts with `prefix` (name and labels).
    pub async fn metric(&self, client: &reqwest::Client, prefix: &str) -> f64 {
        sum_metric(&metrics_text(client, &self.url).await, prefix)
    }
}
