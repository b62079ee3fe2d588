//! Reliability against a hostile or broken upstream and hostile request values (issue 12):
//! redirects, absurd account limits, a 503 for a product of unknown limit, answers whose
//! records are all junk, comma-separated Iris domains, secrets and log injection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;
use domaintools_fake::{FakeApi, Fault};
use serde_json::{json, Value};

use crate::common::child::ChildServer;
use crate::common::server::{config, options, TestServer, KEY, USER};

async fn start_at(api_url: &str) -> TestServer {
    TestServer::builder().api_url(api_url).start().await
}

async fn start_custom(
    fake: domaintools_fake::FakeApi,
    options: misp_domaintools::http::Options,
    configure: impl FnOnce(&mut domaintools::ClientConfig) + Send + 'static,
) -> TestServer {
    TestServer::builder()
        .fake(fake)
        .options(options)
        .client(configure)
        .start()
        .await
}

/// Serves `app` on a loopback port; returns its base URL.
async fn upstream(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn investigate_fixture() -> Value {
    let path = format!(
        "{}/iris-investigate-domain.json",
        domaintools_fake::FIXTURES_DIR
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn hover(module: &str, domain: &str) -> Value {
    json!({"module": module, "domain": domain, "config": config()})
}

#[tokio::test]
async fn redirects_are_never_followed() {
    // The second server must see nothing: not the signed request, not anything else.
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let elsewhere = upstream(Router::new().fallback(any(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { axum::Json(json!({"response": {"results": []}})) }
    })))
    .await;
    for status in [301u16, 302, 307, 308] {
        let target = format!("{elsewhere}/v1/iris-investigate/?stolen=1");
        let redirector = upstream(Router::new().fallback(any(move || {
            let target = target.clone();
            async move {
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [(axum::http::header::LOCATION, target)],
                )
                    .into_response()
            }
        })))
        .await;
        let server = start_at(&redirector).await;
        let reply = server
            .query(hover("DomainTools-Iris-Investigate", "google.com"))
            .await;
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("answered {status} with a redirect to {elsewhere}"))
                && error.contains("not followed")
                && !error.contains("stolen"),
            "{reply}"
        );
    }
    assert_eq!(reached.load(Ordering::SeqCst), 0, "a redirect was followed");
}

#[tokio::test]
async fn absurd_account_limits_never_panic_nor_throttle() {
    let absurd = [
        json!("1e-300"),
        json!("-5"),
        json!("NaN"),
        json!("inf"),
        json!(1e300),
        json!(-1),
        json!(0),
        json!(u64::MAX),
        json!([1]),
        json!("0.0000001"),
    ];
    let fixture = investigate_fixture();
    let limits = absurd.to_vec();
    let app = Router::new()
        .route(
            "/v1/account",
            any(move |axum::extract::Query(q): axum::extract::Query<Vec<(String, String)>>| {
                // One absurd value per account, so each is learned.
                let user = q.iter().find(|(k, _)| k == "api_username").map(|(_, v)| v.clone());
                let n: usize = user.and_then(|u| u.strip_prefix("u").and_then(|n| n.parse().ok())).unwrap_or(0);
                let limit = limits[n % limits.len()].clone();
                async move {
                    axum::Json(json!({"response": {"products": [
                        {"id": "iris-investigate", "per_minute_limit": limit, "per_hour_limit": limit},
                        {"id": "iris-enrich", "per_minute_limit": limit},
                    ]}}))
                }
            }),
        )
        .fallback(any(move || {
            let fixture = fixture.clone();
            async move { axum::Json(fixture) }
        }));
    let url = upstream(app).await;
    let server = start_at(&url).await;
    for (n, limit) in absurd.iter().enumerate() {
        let config = json!({"username": format!("u{n}"), "api_key": "k"});
        for _ in 0..3 {
            let reply = server
                .query(json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com", "config": config}))
                .await;
            assert!(
                reply["error"].is_null()
                    && reply["results"].as_array().is_some_and(|r| !r.is_empty()),
                "limit {limit}: {reply}"
            );
            // Give the background read of the account's limits time to land.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn a_503_for_a_product_of_unknown_limit_pauses_then_is_forgotten() {
    let fake = FakeApi::new().with_user(USER, KEY);
    let server = start_custom(fake, options(), |c| {
        c.learn_rate_limits = false;
        c.cache.max_bytes = 0;
    })
    .await;
    const ENRICH: &str = "/v1/iris-enrich/";
    server.fake.inject(ENRICH, Fault::RateLimited, Some(1));
    let first = server
        .query(hover("DomainTools-Iris-Enrich", "google.com"))
        .await;
    assert!(
        first["error"].is_null(),
        "the retry after the pause succeeds: {first}"
    );
    // The pause (2 s, the 503 said no other) is over: nothing throttles any more.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut hovers = Vec::new();
    for n in 0..10 {
        let domain = if n % 2 == 0 {
            "google.com"
        } else {
            "amazon.com"
        };
        let body = json!({"module": "DomainTools-Iris-Enrich", "domain": domain,
                          "config": {"username": USER, "api_key": KEY}, "timeout": 4});
        let url = format!("{}/query", server.url);
        hovers.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let bytes = client
                .post(url)
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        }));
    }
    for hover in hovers {
        let reply = hover.await.unwrap();
        assert!(reply["error"].is_null(), "{reply}");
    }
}

#[tokio::test]
async fn answers_whose_records_are_all_junk_are_an_error() {
    let app = Router::new().fallback(any(|| async {
        axum::Json(
            json!({"response": {"limit_exceeded": false, "results_count": 3,
                                        "results": [1, "junk", null, [], {"no": "fields"}]}}),
        )
    }));
    let server = start_at(&upstream(app).await).await;
    let reply = server
        .query(hover("DomainTools-Iris-Investigate", "google.com"))
        .await;
    // Nothing but the hover form's "Error" entry (issue 11).
    let error = reply["error"].as_str().unwrap_or_default();
    assert_eq!(
        reply["results"],
        json!([crate::common::error_entry(error)]),
        "{reply}"
    );
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.contains("nothing in its answer could be read")),
        "{reply}"
    );
    // Enrich sorts records by their domain: junk has none, so the domain has no record.
    let reply = server
        .query(hover("DomainTools-Iris-Enrich", "google.com"))
        .await;
    assert_eq!(reply["error"], "No results found.", "{reply}");
}

#[tokio::test]
async fn comma_separated_iris_domains_are_refused_before_any_call() {
    let fake = FakeApi::new().with_user(USER, KEY);
    let server = start_custom(fake, options(), |_| {}).await;
    for module in [
        "DomainTools-Iris-Investigate",
        "DomainTools-Iris-Enrich",
        "DomainTools-Iris-Pivot",
    ] {
        let reply = server
            .query(hover(module, "ok-c1.com,ok-c2.com,ok-c3.com"))
            .await;
        assert!(
            reply["error"]
                .as_str()
                .is_some_and(|e| e.contains("not a valid domain name")),
            "{module}: {reply}"
        );
    }
    let iris: Vec<_> = server
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/iris"))
        .collect();
    assert!(iris.is_empty(), "{iris:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_help_errors_or_logs_and_secrets_can_come_from_files() {
    let help = crate::common::child::binary()
        .arg("--help")
        .env(
            "MISP_DOMAINTOOLS_CACHE_URL",
            "redis://:cache-s3cret@127.0.0.1:1/0",
        )
        .env(
            "MISP_DOMAINTOOLS_PROXY",
            "http://u:proxy-s3cret@127.0.0.1:1",
        )
        .env("DOMAINTOOLS_API_KEY", "key-s3cret")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("DOMAINTOOLS_API_KEY_FILE") && help.contains("MISP_DOMAINTOOLS_CA_FILE"));
    assert!(!help.contains("s3cret"), "{help}");

    let bad = crate::common::child::binary()
        .args([
            "--proxy",
            "http://u:proxy-s3cret@[::1",
            "--api-url",
            "ftp://u:url-s3cret@x",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(!bad.status.success());
    assert!(!text.contains("s3cret"), "{text}");

    // The key from a file (as Docker and Kubernetes mount secrets), the API URL with a
    // password: it works, and the logs hold neither.
    let running = TestServer::builder().start_fake().await;
    let dir = std::env::temp_dir().join(format!("mdt-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("api_key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let api_url = running
        .base_url()
        .replace("http://", "http://someone:url-s3cret@");
    let server = ChildServer::start(
        &["--api-url", &api_url, "--log-level", "trace"],
        &[
            ("DOMAINTOOLS_USERNAME", USER),
            ("DOMAINTOOLS_API_KEY_FILE", key_file.to_str().unwrap()),
        ],
    )
    .await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let (status, reply) = server
        .post_raw(
            &client,
            br#"{"module": "DomainTools-Iris-Enrich", "domain": "google.com"}"#.to_vec(),
        )
        .await;
    assert_eq!(status, 200);
    assert!(reply["error"].is_null(), "{reply}");
    let output = server.stop_and_collect();
    assert!(
        output.contains("someone:****@"),
        "the URL is logged redacted"
    );
    assert!(
        !output.contains("url-s3cret") && !output.contains(KEY),
        "{output}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_text_in_logs_is_escaped_and_cut() {
    let server = ChildServer::start(&["--demo"], &[]).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let forged = json!({"module": "x\n2026-01-01T00:00:00Z  INFO FORGED line"});
    server
        .post_raw(&client, forged.to_string().into_bytes())
        .await;
    let huge = json!({"module": "m".repeat(1 << 20)});
    for _ in 0..3 {
        server
            .post_raw(&client, huge.to_string().into_bytes())
            .await;
    }
    let output = server.stop_and_collect();
    assert!(
        !output
            .lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00Z")),
        "a log line was forged: {output}"
    );
    assert!(
        output.len() < 64 * 1024,
        "{} bytes of log for 3 MiB of module names",
        output.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_is_a_graceful_shutdown() {
    let fake = FakeApi::new().with_user(USER, KEY);
    fake.inject(
        "/v1/iris-investigate/",
        Fault::Slow(Duration::from_secs(2)),
        None,
    );
    let mut server = TestServer::builder()
        .fake(fake.clone())
        .child(&[], &[])
        .await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/query", server.url);
    let in_flight = tokio::spawn(async move {
        let body = json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com",
                          "config": {"username": USER, "api_key": KEY}});
        let response = client.post(url).body(body.to_string()).send().await?;
        let bytes = response.bytes().await?;
        Ok::<_, reqwest::Error>(serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
    });
    while fake.calls_to("/v1/iris-investigate/") == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let reply = in_flight
        .await
        .unwrap()
        .expect("the in-flight query was cut off by SIGHUP");
    assert_eq!(
        reply["results"].as_array().map(Vec::len),
        Some(61),
        "{reply}"
    );
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("no exit after SIGHUP");
    assert!(status.success(), "exit status {status}");
}

/// A loopback HTTPS server in front of the fake API, with a certificate for 127.0.0.1 signed
/// by a CA made here; returns its base URL and the CA's PEM.
async fn tls_fake(fake: &FakeApi) -> (String, String) {
    let ca = crate::common::tls::TestCa::new();
    let (url, _serving) = crate::common::tls::serve_https(fake.router(), &ca).await;
    (url, ca.pem())
}

#[tokio::test]
async fn a_ca_file_is_trusted_besides_the_system_roots() {
    use domaintools::{Caller, Client, ClientConfig, Credentials, Proxy};
    let fake = FakeApi::new().with_user(USER, KEY);
    let (url, ca_pem) = tls_fake(&fake).await;
    let credentials = Credentials::new(USER, KEY);
    let client = |roots: Option<Vec<u8>>| {
        let mut config = ClientConfig::new("MISP", "test");
        config.base_url = url.clone();
        config.proxy = Proxy::None;
        config.learn_rate_limits = false;
        config.extra_roots_pem = roots;
        Client::new(config).unwrap()
    };
    let untrusted = client(None)
        .account(Caller::new(&credentials, "test"))
        .await
        .unwrap_err()
        .to_string();
    assert!(untrusted.contains("certificate"), "{untrusted}");
    let answer = client(Some(ca_pem.into_bytes()))
        .account(Caller::new(&credentials, "test"))
        .await
        .unwrap();
    assert!(answer["products"].is_array(), "{answer}");
    assert_eq!(
        fake.calls_to("/v1/account"),
        1,
        "only the trusted call got through"
    );
    // A file without a certificate is refused at start-up, not at the first call.
    let mut config = ClientConfig::new("MISP", "test");
    config.extra_roots_pem = Some(b"not a certificate".to_vec());
    assert!(Client::new(config).is_err());
}
