//! The real binary, end to end: `--demo` serves bundled data over TCP through its own serve
//! path, `healthcheck` reports it healthy, and SIGTERM stops it cleanly; `stix` prints the
//! golden bundles from the demo data; `opencti`, configured by environment variables alone,
//! registers with a fake platform and pushes an enrichment, or (`CONNECTOR_TYPE=EXTERNAL_IMPORT`)
//! polls the fake's feeds and imports the sealed bucket.

use crate::common::child::{binary, free_port, ChildServer};

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

#[tokio::test]
async fn demo_mode_serves_iris_results_and_stops_on_sigterm() {
    let mut server = ChildServer::start(&["--demo", "--log-format", "json"], &[]).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let reply: Value = serde_json::from_slice(
        &client
            .post(format!("{}/query", server.url))
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
        .args(["healthcheck", "--port", &server.port.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "healthcheck command");

    server.terminate();
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("no exit after SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
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
        "--marking",
        "--ip-domain-limit",
        "healthcheck",
        "stix",
        "opencti",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

/// The golden bundle's id and clock in place of the run's.
fn normalized(mut bundle: Value) -> Value {
    bundle["id"] = json!("bundle--2f6d8c4e-1b3a-4e5f-9a7b-c0d1e2f3a4b5");
    for object in bundle["objects"].as_array_mut().unwrap() {
        for key in ["created", "modified"] {
            if object.get(key).is_some() {
                object[key] = json!("2026-11-25T00:00:00.000Z");
            }
        }
    }
    bundle
}

fn golden(name: &str) -> Value {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn stix_command_prints_the_golden_bundles_from_demo_data() {
    for (value, golden_file, summary) in [
        (
            "google.com",
            "stix-google.com.json",
            "Observable found on DomainTools: google.com (risk score 0) gave 17 STIX objects. \
             3 values skipped as invalid.",
        ),
        (
            "54.239.28.85",
            "stix-ip-54.239.28.85.json",
            "Observable found on DomainTools: 1 domain on 54.239.28.85 mapped to 43 STIX objects.",
        ),
    ] {
        let output = binary()
            .current_dir(std::env::temp_dir())
            .args(["--demo", "stix", value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let bundle: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("stdout is the bundle alone: {e}"));
        assert!(bundle["id"].as_str().unwrap().starts_with("bundle--"));
        assert_eq!(normalized(bundle.clone()), golden(golden_file), "{value}");
        assert_eq!(stderr.lines().last(), Some(summary), "{stderr}");
        crate::common::stix_check::check_with_stix2(&bundle);
    }
}

#[test]
fn stix_command_refuses_what_it_cannot_look_up() {
    let output = binary()
        .args(["--demo", "stix", "not a domain"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("\"not a domain\" is neither a domain name nor an IPv4 address"),
        "{stderr}"
    );

    let output = binary().args(["stix", "google.com"]).output().unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("DomainTools credentials are needed"),
        "{stderr}"
    );
}

#[tokio::test]
async fn opencti_mode_runs_from_environment_variables_alone() {
    use crate::common::opencti::{
        enrichment_message, post_callback, FakeOpencti, CONNECTOR_ID, TOKEN,
    };
    use crate::common::server::{KEY, USER};

    let platform = FakeOpencti::start().await;
    platform.add_observable(
        "entity-google",
        "Domain-Name",
        "google.com",
        Some("TLP:CLEAR"),
    );
    let running = crate::common::server::TestServer::builder()
        .start_fake()
        .await;
    let port = free_port();
    // Logs go to a file, not a pipe nobody reads while the connector runs (a full pipe would
    // block it at debug level).
    let log_path = std::env::temp_dir().join(format!("misp-domaintools-opencti-{port}.log"));
    let log_file = std::fs::File::create(&log_path).unwrap();
    let child = binary()
        .current_dir(std::env::temp_dir())
        .arg("opencti")
        .env("OPENCTI_URL", &platform.url)
        .env("OPENCTI_TOKEN", TOKEN)
        .env("CONNECTOR_ID", CONNECTOR_ID)
        .env("CONNECTOR_NAME", "DomainTools (test)")
        .env("CONNECTOR_SCOPE", "Domain-Name")
        .env("CONNECTOR_AUTO", "true")
        .env("CONNECTOR_LOG_LEVEL", "debug")
        .env("CONNECTOR_CONFIDENCE_LEVEL", "75")
        .env("CONNECTOR_LISTEN_PROTOCOL", "API")
        .env("CONNECTOR_QUEUE_PROTOCOL", "api")
        .env("CONNECTOR_LISTEN_PROTOCOL_API_PORT", port.to_string())
        .env("DOMAINTOOLS_API_URL", running.base_url())
        .env("DOMAINTOOLS_API_USERNAME", USER)
        .env("DOMAINTOOLS_API_KEY", KEY)
        .env("DOMAINTOOLS_MAX_TLP", "TLP:GREEN")
        .stdout(Stdio::from(log_file.try_clone().unwrap()))
        .stderr(Stdio::from(log_file))
        .spawn()
        .unwrap();
    let mut connector = Server(child);

    let uri = platform.callback_uri().await;
    assert_eq!(uri, format!("http://127.0.0.1:{port}/api/callback"));
    let input = platform.calls_to("registerConnector")[0].variables["input"].clone();
    assert_eq!(input["name"], "DomainTools (test)");
    assert_eq!(input["scope"], json!(["Domain-Name"]));
    assert_eq!(input["auto"], true);

    let message = enrichment_message("work-bin", "entity-google", "Domain-Name").to_string();
    assert_eq!(post_callback(&uri, Some(TOKEN), &message).await.0, 202);
    let processed = platform.processed("work-bin").await;
    assert_eq!(
        processed.variables["inError"], false,
        "{:?}",
        processed.variables
    );
    let push = &platform.calls_to("stixBundlePush")[0];
    let bundle: Value = serde_json::from_str(push.variables["bundle"].as_str().unwrap()).unwrap();
    let relationship = bundle["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "relationship")
        .unwrap();
    assert_eq!(relationship["confidence"], 75);

    // The compose file's healthcheck: the callback port answers it.
    let status = binary()
        .args(["healthcheck", "--port", &port.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "healthcheck on the callback port");

    let killed = Command::new("kill")
        .args(["-TERM", &connector.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = connector.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let logs = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(logs.contains("registered with OpenCTI"), "{logs}");
    assert!(logs.contains("work-bin"), "{logs}");
    assert!(
        !logs.contains(TOKEN),
        "the OpenCTI token leaked into the logs"
    );
    assert!(
        !logs.contains(KEY),
        "the DomainTools key leaked into the logs"
    );
}

#[tokio::test]
async fn the_feeds_import_runs_from_environment_variables_alone() {
    use crate::common::opencti::{FakeOpencti, CONNECTOR_ID, TOKEN};
    use chrono::{TimeDelta, Utc};
    use domaintools_fake::{FakeApi, DEMO_API_KEY};

    let api = FakeApi::new();
    let at = Utc::now() - TimeDelta::minutes(30);
    let line = |name: &str| json!({ "domain": name }).as_object().unwrap().clone();
    api.push_feed_lines("nad", at, [line("active.example"), line("other.example")]);
    let fake = api.spawn().await.unwrap();
    let platform = FakeOpencti::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log_path = std::env::temp_dir().join(format!("misp-domaintools-import-{port}.log"));
    let log_file = std::fs::File::create(&log_path).unwrap();
    let child = binary()
        .current_dir(std::env::temp_dir())
        .arg("opencti")
        .env("OPENCTI_URL", &platform.url)
        .env("OPENCTI_TOKEN", TOKEN)
        .env("CONNECTOR_ID", CONNECTOR_ID)
        .env("CONNECTOR_TYPE", "EXTERNAL_IMPORT")
        .env("CONNECTOR_DURATION_PERIOD", "PT1S")
        .env("CONNECTOR_QUEUE_PROTOCOL", "api")
        .env("CONNECTOR_LISTEN_PROTOCOL_API_PORT", port.to_string())
        .env("DOMAINTOOLS_API_URL", fake.base_url())
        .env("DOMAINTOOLS_API_KEY", DEMO_API_KEY)
        .env("MISP_DOMAINTOOLS_FEEDS", "nad")
        .env("MISP_DOMAINTOOLS_FEEDS_DIR", dir.path())
        .env("MISP_DOMAINTOOLS_FEEDS_POLL_INTERVAL", "1")
        .env("MISP_DOMAINTOOLS_FEEDS_BUCKET", "60")
        .env("MISP_DOMAINTOOLS_FEEDS_GRACE", "1")
        .stdout(Stdio::from(log_file.try_clone().unwrap()))
        .stderr(Stdio::from(log_file))
        .spawn()
        .unwrap();
    let _connector = Server(child);
    let processed = platform.processed("work-import-1").await;
    assert_eq!(
        processed.variables["inError"], false,
        "{:?}",
        processed.variables
    );
    let input = platform.calls_to("registerConnector")[0].variables["input"].clone();
    assert_eq!(input["type"], "EXTERNAL_IMPORT");
    let push = &platform.calls_to("stixBundlePush")[0];
    let bundle: Value = serde_json::from_str(push.variables["bundle"].as_str().unwrap()).unwrap();
    let values: Vec<&str> = bundle["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["value"].as_str())
        .collect();
    assert_eq!(values, ["active.example", "other.example"]);
    assert!(
        dir.path().join("nad/manifest.json").exists(),
        "the buckets are the MISP feed's files"
    );
    let logs = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(logs.contains("importing the DomainTools feeds"), "{logs}");
    assert!(
        !logs.contains(TOKEN),
        "the OpenCTI token leaked into the logs"
    );
    assert!(!logs.contains(DEMO_API_KEY), "the DomainTools key leaked");
}
