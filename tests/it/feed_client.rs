//! The feed client against the fake's feeds over TCP: cursors, 206 pages, windows, the feeds'
//! errors, a cut stream, and `X-Api-Key` as the only credential sent.

use std::time::Duration;

use crate::common::server::{TestFake, TestServer};
use chrono::{TimeDelta, Utc};
use domaintools::feeds::{Bound, Feed, FeedClient, FeedClientConfig, FeedError, FeedQuery};
use domaintools::SecretString;
use domaintools_fake::{FakeApi, Fault, DEMO_API_KEY};
use serde_json::{json, Map, Value};

fn line(domain: &str) -> Map<String, Value> {
    let Value::Object(object) = json!({ "domain": domain }) else {
        unreachable!("a literal object")
    };
    object
}

fn client(fake: &TestFake, key: &str) -> FeedClient {
    let mut config = FeedClientConfig::new(SecretString::from(key.to_owned()), "test");
    config.base_url = fake.base_url();
    config.read_timeout = Duration::from_secs(5);
    FeedClient::new(config).expect("client")
}

async fn collect(
    client: &FeedClient,
    feed: Feed,
    query: &FeedQuery,
) -> Result<Vec<String>, FeedError> {
    let mut domains = Vec::new();
    client
        .poll(feed, query, |line| domains.push(line.domain))
        .await?;
    Ok(domains)
}

#[tokio::test]
async fn a_cursor_follows_206_pages_to_the_200_and_then_only_new_lines() {
    let api = FakeApi::new().with_feed_page_lines(4);
    let names: Vec<String> = (0..10).map(|i| format!("d{i:02}.example")).collect();
    api.push_feed_lines("nod", Utc::now(), names.iter().map(|name| line(name)));
    let fake = TestServer::builder().fake(api.clone()).start_fake().await;
    let client = client(&fake, DEMO_API_KEY);

    let query = FeedQuery::session("cursor-1");
    let mut seen = Vec::new();
    let summary = client
        .poll(Feed::Nod, &query, |line| seen.push(line.domain))
        .await
        .expect("poll");
    assert_eq!(seen, names);
    assert_eq!((summary.pages, summary.lines), (3, 10));
    assert!(collect(&client, Feed::Nod, &query)
        .await
        .expect("empty")
        .is_empty());
    api.push_feed_lines("nod", Utc::now(), [line("new.example")]);
    assert_eq!(
        collect(&client, Feed::Nod, &query).await.expect("new"),
        ["new.example"]
    );

    let requests = api.requests();
    assert!(requests
        .iter()
        .all(|request| request.params.iter().all(|(name, _)| name != "top")));
    assert!(requests
        .iter()
        .all(|request| request.status == 200 || request.status == 206));

    // A window without a cursor cannot be continued: a typed error, not a silent cut.
    let window = FeedQuery::window(Bound::Ago(Duration::from_secs(60)), None);
    assert_eq!(
        collect(&client, Feed::Nod, &window).await,
        Err(FeedError::PartialWithoutSession)
    );
}

#[tokio::test]
async fn windows_backfill_what_a_cursor_missed() {
    let api = FakeApi::new();
    let now = Utc::now();
    api.push_feed_lines("noh", now - TimeDelta::hours(4), [line("a.b.example")]);
    api.push_feed_lines("noh", now - TimeDelta::hours(2), [line("c.d.example")]);
    let fake = TestServer::builder().fake(api.clone()).start_fake().await;
    let client = client(&fake, DEMO_API_KEY);
    let window = FeedQuery::window(
        Bound::At(now - TimeDelta::hours(5)),
        Some(Bound::Ago(Duration::from_secs(3 * 3600))),
    );
    assert_eq!(
        collect(&client, Feed::Noh, &window).await.expect("window"),
        ["a.b.example"]
    );
}

#[tokio::test]
async fn the_feeds_errors_are_typed() {
    let api = FakeApi::new();
    let fake = TestServer::builder().fake(api.clone()).start_fake().await;
    let wrong = client(&fake, "not-the-key");
    match collect(&wrong, Feed::Nod, &FeedQuery::session("x")).await {
        Err(FeedError::Api { status: 403, .. }) => {}
        other => panic!("expected a 403, got {other:?}"),
    }
    let client = client(&fake, DEMO_API_KEY);
    let mut query = FeedQuery::session("fresh");
    query.from_beginning = true;
    collect(&client, Feed::Nod, &query)
        .await
        .expect("new session from the beginning");
    match collect(&client, Feed::Nod, &query).await {
        Err(error @ FeedError::Api { status: 406, .. }) => assert!(!error.is_transient()),
        other => panic!("expected a 406, got {other:?}"),
    }
    api.inject(
        "/v1/feed/nod/",
        Fault::Status {
            status: 503,
            message: "busy".into(),
        },
        Some(1),
    );
    match collect(&client, Feed::Nod, &FeedQuery::session("x")).await {
        Err(error @ FeedError::Api { status: 503, .. }) => {
            assert!(error.is_transient());
            assert!(error.to_string().contains("busy"));
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    api.push_feed_lines(
        "nod",
        Utc::now(),
        (0..200).map(|i| line(&format!("cut{i}.example"))),
    );
    api.inject("/v1/feed/nod/", Fault::CutBody, Some(1));
    match collect(&client, Feed::Nod, &FeedQuery::session("cut")).await {
        Err(error @ FeedError::Transport(_)) => assert!(error.is_transient()),
        other => panic!("expected a broken stream, got {other:?}"),
    }
    // Nothing the client sent carried the key as a parameter.
    assert!(api.requests().iter().all(|request| request
        .params
        .iter()
        .all(|(name, value)| name != "api_key" && value != DEMO_API_KEY)));
}

/// A loopback HTTP server answering every request with `app`; its base URL.
async fn serve_loopback(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn a_redirect_is_an_error_and_the_key_goes_nowhere_else() {
    use axum::response::IntoResponse as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // `X-Api-Key` is no header reqwest drops on a cross-host redirect: following one would
    // hand the key to whoever the Location names.
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let elsewhere = serve_loopback(axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { "{\"domain\": \"stolen.example\"}\n" }
    }))
    .await;
    for status in [301u16, 302, 307, 308] {
        let target = format!("{elsewhere}/v1/feed/nod/");
        let redirector = serve_loopback(axum::Router::new().fallback(move || {
            let target = target.clone();
            async move {
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [(axum::http::header::LOCATION, target)],
                )
                    .into_response()
            }
        }))
        .await;
        let mut config = FeedClientConfig::new(SecretString::from(DEMO_API_KEY.to_owned()), "t");
        config.base_url = redirector;
        let client = FeedClient::new(config).expect("client");
        match collect(&client, Feed::Nod, &FeedQuery::session("r")).await {
            Err(FeedError::Api { status: got, .. }) => assert_eq!(got, status),
            other => panic!("a {status} must be an error, got {other:?}"),
        }
    }
    assert_eq!(reached.load(Ordering::SeqCst), 0, "a redirect was followed");
}

#[tokio::test]
async fn the_feeds_go_through_the_configured_proxy() {
    use std::sync::{Arc, Mutex};
    // A forward proxy that answers itself: plain-HTTP requests reach it in absolute form.
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let proxy = serve_loopback(axum::Router::new().fallback(
        move |request: axum::extract::Request| {
            log.lock().unwrap().push(request.uri().to_string());
            async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
                "{\"timestamp\": \"2026-12-01T00:00:00Z\", \"domain\": \"via-proxy.example\"}\n",
                )
            }
        },
    ))
    .await;
    let mut config = FeedClientConfig::new(SecretString::from(DEMO_API_KEY.to_owned()), "t");
    // Nothing listens there: only the proxy can answer.
    config.base_url = "http://192.0.2.1:9".to_owned();
    config.proxy = domaintools::Proxy::Url(SecretString::from(proxy));
    let client = FeedClient::new(config).expect("client");
    let domains = collect(&client, Feed::Nod, &FeedQuery::session("p"))
        .await
        .expect("the proxy's answer");
    assert_eq!(domains, ["via-proxy.example"]);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with("http://192.0.2.1:9/v1/feed/nod/"),
        "{seen:?}"
    );
}
