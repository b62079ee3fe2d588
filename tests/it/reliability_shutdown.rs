//! Reliability: SIGTERM on the real binary lets the requests in flight finish with their real
//! answers, then the process exits 0, within a bound, even when a client never finishes its
//! request.

use std::time::{Duration, Instant};

use domaintools_fake::{FakeApi, Fault};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::common::server::{TestServer, KEY, USER};

const INVESTIGATE: &str = "/v1/iris-investigate/";

async fn wait_for_call(fake: &FakeApi, path: &str, count: usize) {
    let started = Instant::now();
    while fake.calls_to(path) < count {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the upstream call never came"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_queries_finish_then_exits_zero() {
    let mut server = TestServer::builder().child(&[], &[]).await;
    let fake = server.fake().clone();
    // The upstream takes 2 s: the signal arrives while the queries wait for it.
    fake.inject(INVESTIGATE, Fault::Slow(Duration::from_secs(2)), None);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    let mut in_flight = Vec::new();
    for _ in 0..5 {
        let client = client.clone();
        let url = format!("{}/query", server.url);
        in_flight.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .body(
                    json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com",
                           "config": {"username": USER, "api_key": KEY}})
                    .to_string(),
                )
                .send()
                .await?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await?;
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            Ok::<_, reqwest::Error>((status, body))
        }));
    }
    // The five identical queries share one upstream call (coalescing); wait for it, and a
    // moment for the other four to join it.
    wait_for_call(&fake, INVESTIGATE, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signalled = Instant::now();
    server.terminate();

    for task in in_flight {
        let (status, reply) = task
            .await
            .unwrap()
            .expect("an in-flight query was cut off by the shutdown");
        assert_eq!(status, 200);
        assert_eq!(
            reply["results"].as_array().map(Vec::len),
            Some(61),
            "the real answer, not an error: {reply}"
        );
    }
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("no exit within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(
        signalled.elapsed() >= Duration::from_millis(1_000),
        "the process waited for its in-flight queries"
    );
    // Once stopped, nothing answers on the port.
    assert!(client
        .get(format!("{}/healthcheck", server.url))
        .send()
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_request_cannot_hold_the_shutdown_forever() {
    let mut server = TestServer::builder().child(&[], &[]).await;

    // Headers promising 1000 bytes of body, 10 sent, then silence with the socket open.
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    stalled
        .write_all(
            b"POST /query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"module\":",
        )
        .await
        .unwrap();
    stalled.flush().await.unwrap();
    // An idle keep-alive connection too: it must not hold the shutdown either.
    let idle = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = Instant::now();
    server.terminate();
    let status = server
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still running 20 s after SIGTERM: {}", server.output()));
    assert!(status.success(), "exit status {status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(15),
        "{:?}",
        signalled.elapsed()
    );
    drop((stalled, idle));
}
