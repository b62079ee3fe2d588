//! `--misp-modules-url` against the real misp-modules (PyPI): `/modules` lists both servers'
//! modules, queries for misp-modules' own modules come back byte for byte as misp-modules
//! answers them directly, and a dead or silent misp-modules never breaks our own modules.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domaintools_fake::FakeApi;
use misp_domaintools::http::{MispModules, MispModulesConfig, Options};
use misp_domaintools::registry::MODULES;
use serde_json::{json, Value};

use crate::common::misp_modules::RealMispModules;
use crate::common::server::{self, TestServer, KEY, USER};

fn beside(url: &str, budget: Duration) -> Options {
    let config = MispModulesConfig {
        url: url.parse().unwrap(),
        budget,
    };
    Options {
        misp_modules: Some(Arc::new(MispModules::new(config).unwrap())),
        ..server::options()
    }
}

async fn start_beside(url: &str, budget: Duration) -> TestServer {
    TestServer::builder()
        .fake(FakeApi::new().with_user(USER, KEY))
        .options(beside(url, budget))
        .start()
        .await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn listing(url: &str) -> Vec<Value> {
    let body = http()
        .get(format!("{url}/modules"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// Waits until the background fetch has merged the upstream listing (it starts with the
/// server); bounded so a broken refresh fails instead of hanging.
async fn merged_listing(ours: &TestServer) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let modules = listing(&ours.url).await;
        if modules.len() > MODULES.len() {
            return modules;
        }
        assert!(
            Instant::now() < deadline,
            "the misp-modules listing never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Status, Content-Type and body bytes of a POST to `{url}/query`.
async fn raw_query(
    url: &str,
    body: &str,
    content_type: Option<&str>,
) -> (u16, Option<String>, Vec<u8>) {
    let mut request = http()
        .post(format!("{url}/query"))
        .timeout(Duration::from_secs(30))
        .body(body.to_owned());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_lists_ours_then_every_misp_modules_module_unchanged() {
    let Some(upstream) = RealMispModules::start().await else {
        return;
    };
    let ours = start_beside(&upstream.url, Duration::from_secs(300)).await;
    let merged = merged_listing(&ours).await;
    let direct = listing(&upstream.url).await;
    assert!(
        direct.len() > 100,
        "misp-modules lists its own ~170 modules"
    );
    let names: Vec<&str> = merged.iter().map(|m| m["name"].as_str().unwrap()).collect();
    let our_names: Vec<&str> = MODULES.iter().map(|m| m.name).collect();
    assert_eq!(names[..MODULES.len()], our_names[..], "ours first");
    assert_eq!(
        merged[MODULES.len()..],
        direct[..],
        "then misp-modules' descriptors, as it lists them"
    );
    assert!(names.contains(&"jinja_template_rendering"));
    assert_eq!(ours.metric("misp_domaintools_misp_modules_up").await, 1.0);
    assert_eq!(
        ours.metric("misp_domaintools_misp_modules_listed").await,
        direct.len() as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_for_misp_modules_own_modules_come_back_byte_for_byte() {
    let Some(upstream) = RealMispModules::start().await else {
        return;
    };
    let ours = start_beside(&upstream.url, Duration::from_secs(300)).await;
    let template = json!({"template": "Event {{ id }}: {{ tags | join(', ') }}", "data": {"id": 7, "tags": ["tlp:amber", "é"]}});
    let cases = [
        (
            json!({"module": "jinja_template_rendering", "text": template.to_string()}).to_string(),
            Some("application/json"),
        ),
        // MISP always sends JSON, but the body and its type are forwarded as they came.
        (
            json!({"module": "jinja_template_rendering", "text": "{\"template\": \"{{ x\"}"})
                .to_string(),
            None,
        ),
        (
            json!({"module": "countrycode", "domain": "www.example.de"}).to_string(),
            Some("application/json"),
        ),
        // A module neither server has: misp-modules' own answer.
        (
            json!({"module": "no-such-module"}).to_string(),
            Some("application/json"),
        ),
    ];
    for (body, content_type) in cases {
        let direct = raw_query(&upstream.url, &body, content_type).await;
        let via_us = raw_query(&ours.url, &body, content_type).await;
        assert_eq!(
            via_us,
            direct,
            "{body}: ours {:?} / direct {:?}",
            String::from_utf8_lossy(&via_us.2),
            String::from_utf8_lossy(&direct.2)
        );
    }
    let jinja = json!({"module": "jinja_template_rendering", "text": template.to_string()});
    let (_, _, rendered) = raw_query(&ours.url, &jinja.to_string(), Some("application/json")).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&rendered).unwrap(),
        json!({"results": [{"types": ["text"], "values": ["Event 7: tlp:amber, é"]}]}),
        "the workflow template really rendered"
    );
    assert!(
        ours.metric("misp_domaintools_misp_modules_queries_total{outcome=\"forwarded\"}")
            .await
            >= 5.0
    );
    // Our own modules are still ours.
    let reply = ours
        .query(json!({"module": "DomainTools-Iris-Investigate", "domain": "google.com", "config": server::config()}))
        .await;
    assert!(reply.get("error").is_none(), "{reply}");
    assert!(!reply["results"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_dead_misp_modules_leaves_our_modules_and_a_clear_error() {
    let port = crate::common::child::free_port();
    let dead = format!("http://127.0.0.1:{port}");
    let ours = start_beside(&dead, Duration::from_secs(300)).await;
    let started = Instant::now();
    let modules = listing(&ours.url).await;
    assert_eq!(modules.len(), MODULES.len(), "ours alone");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a dead misp-modules must not hold /modules up"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while ours
        .metric("misp_domaintools_misp_modules_listing_failures_total")
        .await
        < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "the failed fetch is never counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ours.metric("misp_domaintools_misp_modules_up").await, 0.0);
    let stored = ours
        .query(json!({"module": "countrycode", "domain": "example.de", "event_id": "1"}))
        .await;
    let error = stored["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("countrycode is not served here, and the misp-modules server at {dead} could not be reached")),
        "{error}"
    );
    assert_eq!(stored["results"], json!([]));
    // A hover shows it in the popover, which reads only `results`.
    let hover = ours
        .query(json!({"module": "countrycode", "domain": "example.de"}))
        .await;
    assert_eq!(
        hover["results"],
        json!([{"types": ["text"], "values": {"Error": error}}])
    );
    assert_eq!(
        ours.metric("misp_domaintools_misp_modules_queries_total{outcome=\"unreachable\"}")
            .await,
        2.0
    );
}

#[tokio::test]
async fn a_silent_misp_modules_is_cut_at_its_own_budget() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let ours = start_beside(&url, Duration::from_secs(1)).await;
    let started = Instant::now();
    assert_eq!(listing(&ours.url).await.len(), MODULES.len());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "/modules waited for misp-modules"
    );
    let reply = ours
        .query(json!({"module": "jinja_template_rendering", "text": "{}", "event_id": "1"}))
        .await;
    assert_eq!(
        reply["error"],
        format!("jinja_template_rendering is not served here, and the misp-modules server at {url} did not answer within 1 s.")
    );
    hold.abort();
}
