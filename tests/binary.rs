//! The real binary, end to end: `--demo` serves bundled data over TCP through its own serve
//! path, `healthcheck` reports it healthy, and SIGTERM stops it cleanly.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_misp-domaintools"));
    for var in [
        "DOMAINTOOLS_USERNAME",
        "DOMAINTOOLS_API_KEY",
        "DOMAINTOOLS_API_URL",
        "MISP_DOMAINTOOLS_LISTEN",
        "MISP_DOMAINTOOLS_PORT",
    ] {
        command.env_remove(var);
    }
    command
}

async fn wait_healthy(client: &reqwest::Client, url: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(response) = client.get(format!("{url}/healthcheck")).send().await {
            if response.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not become healthy");
}

#[tokio::test]
async fn demo_mode_serves_iris_results_and_stops_on_sigterm() {
    let port = free_port();
    let child = binary()
        .args([
            "--demo",
            "--port",
            &port.to_string(),
            "--log-format",
            "json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    wait_healthy(&client, &url).await;

    let reply: Value = serde_json::from_slice(
        &client
            .post(format!("{url}/query"))
            .body(
                json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com",
                         "config": {"username": null, "api_key": null, "results_limit": null}})
                .to_string(),
            )
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let results = reply["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply}"));
    assert_eq!(results.len(), 61);
    assert!(results[0]["comment"]
        .as_str()
        .unwrap()
        .starts_with("[DEMO DATA"));

    let status = binary()
        .args(["healthcheck", "--port", &port.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "healthcheck command");

    let killed = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            assert!(status.success(), "exit status after SIGTERM: {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn healthcheck_fails_when_nothing_listens() {
    let status = binary()
        .args(["healthcheck", "--port", &free_port().to_string()])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}

#[test]
fn help_is_complete() {
    let output = binary().arg("--help").output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--listen",
        "--port",
        "--api-url",
        "--username",
        "--api-key",
        "--upstream-timeout",
        "--proxy",
        "--body-limit",
        "--log-format",
        "--demo",
        "healthcheck",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}
