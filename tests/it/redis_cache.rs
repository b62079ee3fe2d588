//! Several replicas behind a load balancer spend quota once: two server processes share a real
//! Redis (started here, on loopback), and keep answering when Redis goes away.
//!
//! Needs `redis-server` (Debian package `redis-server`, installed by `.ci/run`). Without it the
//! test fails in CI and is skipped, with a notice, elsewhere.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::child::{free_port, ChildServer};
use crate::common::server::{sum_metric, TestServer, KEY, USER};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what} did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn start_redis(port: u16) -> Process {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Process(child)
}

/// A replica: the real binary, with the server's own credentials, in front of the fake API
/// and sharing `redis_port`'s Redis.
async fn start_replica(api_url: &str, redis_port: u16) -> ChildServer {
    let redis_url = format!("redis://127.0.0.1:{redis_port}/0");
    ChildServer::start(
        &[
            "--api-url",
            api_url,
            "--cache-url",
            &redis_url,
            "--log-format",
            "json",
        ],
        &[("DOMAINTOOLS_USERNAME", USER), ("DOMAINTOOLS_API_KEY", KEY)],
    )
    .await
}

async fn query(http: &reqwest::Client, port: u16, domain: &str) -> Value {
    let body = json!({"module": "DomainTools-Iris-Investigate", "domain": domain,
                      "config": {"username": null, "api_key": null, "results_limit": null}});
    let response = http
        .post(format!("http://127.0.0.1:{port}/query"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

async fn metric(http: &reqwest::Client, port: u16, prefix: &str) -> f64 {
    let text = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains(KEY));
    sum_metric(&text, prefix)
}

#[tokio::test]
async fn replicas_share_one_redis_and_survive_its_loss() {
    if !redis_installed() {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server must be installed in CI (.ci/run installs it)"
        );
        eprintln!("redis-server is not installed: skipping the shared-cache test");
        return;
    }
    let running = TestServer::builder().start_fake().await;
    let fake = &running.fake;
    let redis_port = free_port();
    let redis = start_redis(redis_port);
    wait_for("redis", || {
        std::net::TcpStream::connect(("127.0.0.1", redis_port)).is_ok()
    })
    .await;

    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    // Both are healthy once started.
    let a = start_replica(&running.base_url(), redis_port).await;
    let b = start_replica(&running.base_url(), redis_port).await;
    let (port_a, port_b) = (a.port, b.port);

    let first = query(&http, port_a, "google.com").await;
    assert_eq!(first["results"].as_array().unwrap().len(), 61, "{first}");
    assert_eq!(fake.calls_to("/v1/iris-investigate/"), 1);

    // Replica A writes Redis in the background; give it a moment, then ask replica B.
    let started = Instant::now();
    loop {
        let second = query(&http, port_b, "google.com").await;
        assert_eq!(
            second["results"], first["results"],
            "the same answer from the shared cache"
        );
        if metric(
            &http,
            port_b,
            "misp_domaintools_cache_lookups_total{layer=\"redis\",result=\"hit\"}",
        )
        .await
            >= 1.0
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "replica B never found A's answer in Redis"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        fake.calls_to("/v1/iris-investigate/"),
        1,
        "the second replica spent no quota"
    );

    // Redis goes away: both replicas keep answering, from their memory or from DomainTools.
    drop(redis);
    for (port, domain) in [
        (port_b, "amazon.com"),
        (port_a, "google.com"),
        (port_a, "synthetic-0001.com"),
    ] {
        let asked = Instant::now();
        let reply = query(&http, port, domain).await;
        assert!(reply.get("error").is_none(), "{domain}: {reply}");
        assert!(!reply["results"].as_array().unwrap().is_empty());
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "a dead Redis must not stall answers"
        );
    }
    assert_eq!(
        fake.calls_to("/v1/iris-investigate/"),
        3,
        "amazon.com and synthetic-0001.com from DomainTools"
    );
    assert!(
        metric(&http, port_a, "misp_domaintools_cache_errors_total").await >= 1.0,
        "failures are counted"
    );
    for port in [port_a, port_b] {
        let health = http
            .get(format!("http://127.0.0.1:{port}/healthcheck"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let health: Value = serde_json::from_slice(&health).unwrap_or(Value::Null);
        assert_eq!(health, json!({"status": true}));
    }
}
