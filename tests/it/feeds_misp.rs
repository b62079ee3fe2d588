//! The feeds end to end: the binary polls the fake's feeds, serves them under `/feeds/`, and
//! PyMISP (MISP's own Python library, from PyPI) loads every served manifest and event, with
//! manifest and `hashes.csv` checked against the events. Also: the token, ETags and 304, the
//! hotlist freetext, a restart that keeps every sealed bucket, and a soak of an hour of NOD.
//!
//! PyMISP comes from the tests' Python venv (`common::python`: `target/py-venv`, which `.ci/run`
//! creates, or `$TESTS_PY_VENV`): without it the PyMISP check is skipped with a notice locally
//! and fails under `CI=true`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use domaintools_fake::{FakeApi, DEMO_API_KEY};
use serde_json::{json, Map, Value};

use crate::common::child::ChildServer;
use crate::common::server::TestServer;

const TOKEN: &str = "feeds-token-for-tests";

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(object) => object,
        _ => unreachable!("a literal object"),
    }
}

fn domain(name: &str) -> Map<String, Value> {
    object(json!({ "domain": name }))
}

/// The Python of the tests' venv, if it has PyMISP.
fn pymisp_python() -> Option<PathBuf> {
    crate::common::python_with("pymisp")
}

struct Feeds {
    server: ChildServer,
    http: reqwest::Client,
}

impl Feeds {
    async fn start(api_url: &str, dir: &Path, extra: &[&str]) -> Self {
        let dir = dir.to_str().expect("utf-8 path");
        let mut args = vec![
            "--api-url",
            api_url,
            "--api-key",
            DEMO_API_KEY,
            "--feeds",
            "nod,noh,domainrisk,domainhotlist,iprisk",
            "--feeds-dir",
            dir,
            "--feeds-token",
            TOKEN,
            "--feeds-poll-interval",
            "1",
            "--feeds-bucket",
            "60",
            "--feeds-grace",
            "1",
        ];
        args.extend_from_slice(extra);
        let server = ChildServer::start(&args, &[]).await;
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        Self { server, http }
    }

    async fn get(&self, path: &str, etag: Option<&str>) -> reqwest::Response {
        let mut request = self
            .http
            .get(format!("{}{path}", self.server.url))
            .header("Authorization", format!("Bearer {TOKEN}"));
        if let Some(etag) = etag {
            request = request.header("If-None-Match", etag);
        }
        request.send().await.expect("server answers")
    }

    async fn json(&self, path: &str) -> Value {
        let response = self.get(path, None).await;
        assert_eq!(response.status(), 200, "{path}");
        serde_json::from_str(&response.text().await.expect("body")).expect("JSON")
    }

    async fn text(&self, path: &str) -> String {
        let response = self.get(path, None).await;
        assert_eq!(response.status(), 200, "{path}");
        response.text().await.expect("text")
    }

    /// Waits until `feed`'s manifest lists at least `events` events; returns the manifest.
    async fn manifest_with(&self, feed: &str, events: usize) -> Map<String, Value> {
        let started = Instant::now();
        loop {
            let manifest = self.json(&format!("/feeds/{feed}/manifest.json")).await;
            let manifest = manifest.as_object().expect("manifest object").clone();
            if manifest.len() >= events {
                return manifest;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{feed}: {} events after 30 s; output:\n{}",
                manifest.len(),
                self.server.output()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Downloads a feed as MISP does (manifest, every event, hashes.csv) into `into`.
    async fn download(&self, feed: &str, into: &Path) -> Vec<Value> {
        std::fs::create_dir_all(into).expect("dir");
        let manifest = self.json(&format!("/feeds/{feed}/manifest.json")).await;
        std::fs::write(into.join("manifest.json"), manifest.to_string()).expect("write");
        let mut events = Vec::new();
        for uuid in manifest.as_object().expect("object").keys() {
            let event = self.json(&format!("/feeds/{feed}/{uuid}.json")).await;
            std::fs::write(into.join(format!("{uuid}.json")), event.to_string()).expect("write");
            events.push(event);
        }
        let hashes = self.text(&format!("/feeds/{feed}/hashes.csv")).await;
        std::fs::write(into.join("hashes.csv"), hashes).expect("write");
        events
    }
}

fn check_with_pymisp(python: &Path, dir: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/feeds/check_misp_feed.py");
    let output = Command::new(python)
        .arg(script)
        .arg(dir)
        .output()
        .expect("python runs");
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "the checker printed no summary: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(
        output.status.success() && summary["valid"] == true,
        "PyMISP: {summary}"
    );
    summary
}

fn values(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .flat_map(|event| {
            event["Event"]["Attribute"]
                .as_array()
                .expect("attributes")
                .clone()
        })
        .map(|attribute| attribute["value"].as_str().expect("value").to_owned())
        .collect()
}

/// A minute-aligned instant `minutes` ago, so lines fall into known one-minute buckets.
fn minutes_ago(minutes: i64) -> DateTime<Utc> {
    let now = Utc::now();
    now - TimeDelta::minutes(minutes) - TimeDelta::seconds(now.timestamp().rem_euclid(60))
        + TimeDelta::seconds(5)
}

#[tokio::test]
async fn served_feeds_load_in_pymisp_agree_with_their_hashes_and_survive_a_restart() {
    let api = FakeApi::new();
    api.push_feed_lines(
        "nod",
        minutes_ago(40),
        ["architekt-nms.de", "afterjpeg.xyz", "Upper.Example."].map(domain),
    );
    api.push_feed_lines(
        "nod",
        minutes_ago(20),
        ["afterjpeg.xyz", "b.example"].map(domain),
    );
    api.push_feed_lines(
        "noh",
        minutes_ago(30),
        ["didi.4eministries.thinkific.com", "x.y.example.com"].map(domain),
    );
    api.push_feed_lines(
        "domainrisk",
        minutes_ago(30),
        [object(
            json!({"domain": "l1engage.online", "phishing_risk": 1, "malware_risk": 72,
            "spam_risk": 1, "proximity_risk": 67, "overall_risk": 72}),
        )],
    );
    api.push_feed_lines(
        "domainhotlist",
        minutes_ago(10),
        [object(
            json!({"domain": "abyevrs04.icu", "overall_risk": 100}),
        )],
    );
    // The IP feeds: the fake's synthetic lines, with their documented fields.
    api.push_feed_lines(
        "iprisk",
        minutes_ago(30),
        domaintools_fake::synthetic_ip_feed_lines("iprisk"),
    );
    let fake = TestServer::builder().fake(api.clone()).start_fake().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Patterns that keep every domain pushed: they must not reach the IP feeds.
    let filters = [
        "--feeds-risk-min",
        "overall=50",
        "--feeds-domains",
        "*.de,*.xyz,upper*,*.example,*.com,*.online,*.icu",
    ];
    let feeds = Feeds::start(&fake.base_url(), dir.path(), &filters).await;

    let manifest = feeds.manifest_with("nod", 2).await;
    feeds.manifest_with("noh", 1).await;
    feeds.manifest_with("domainrisk", 1).await;

    // The pollers' metrics.
    let metric = |name: &'static str| feeds.server.metric(&feeds.http, name);
    assert_eq!(
        metric("misp_domaintools_feed_lines_total{feed=\"nod\"}").await,
        5.0,
        "every nod line read is counted"
    );
    assert!(metric("misp_domaintools_feed_buckets_sealed_total{feed=\"nod\"}").await >= 2.0);
    let last = metric("misp_domaintools_feed_last_success_timestamp_seconds{feed=\"noh\"}").await;
    assert!(
        (last - Utc::now().timestamp() as f64).abs() < 60.0,
        "the last successful poll is recent: {last}"
    );
    assert_eq!(
        metric("misp_domaintools_feed_leader{feed=\"domainhotlist\"}").await,
        1.0
    );
    assert_eq!(
        metric("misp_domaintools_feed_poll_failures_total").await,
        0.0
    );

    // Token: none, wrong, right.
    let url = format!("{}/feeds/nod/manifest.json", feeds.server.url);
    let none = feeds.http.get(&url).send().await.expect("answer");
    assert_eq!(none.status(), 401);
    let wrong = feeds
        .http
        .get(&url)
        .bearer_auth("nope")
        .send()
        .await
        .expect("answer");
    assert_eq!(wrong.status(), 401);
    // ETag and 304.
    let first = feeds.get("/feeds/nod/manifest.json", None).await;
    let etag = first.headers()["etag"].to_str().expect("etag").to_owned();
    let again = feeds.get("/feeds/nod/manifest.json", Some(&etag)).await;
    assert_eq!(again.status(), 304);
    let uuid = manifest.keys().next().expect("an event").clone();
    let event = feeds.get(&format!("/feeds/nod/{uuid}.json"), None).await;
    let event_etag = event.headers()["etag"].to_str().expect("etag").to_owned();
    let cached = feeds
        .get(&format!("/feeds/nod/{uuid}.json"), Some(&event_etag))
        .await;
    assert_eq!(cached.status(), 304);
    for bad in [
        "/feeds/nod/..%2F..%2Fetc%2Fpasswd",
        "/feeds/nad/manifest.json",
        "/feeds/nod/x.json",
    ] {
        assert_eq!(feeds.get(bad, None).await.status(), 404, "{bad}");
    }

    let download = tempfile::tempdir().expect("tempdir");
    let nod = feeds.download("nod", &download.path().join("nod")).await;
    let noh = feeds.download("noh", &download.path().join("noh")).await;
    let risk = feeds
        .download("domainrisk", &download.path().join("domainrisk"))
        .await;
    assert_eq!(
        values(&nod),
        [
            "afterjpeg.xyz",
            "architekt-nms.de",
            "b.example",
            "upper.example"
        ]
        .map(str::to_owned)
        .into(),
        "normalised, and de-duplicated within each bucket"
    );
    for event in &nod {
        let event = &event["Event"];
        assert_eq!(event["Orgc"]["name"], "DomainTools");
        assert_eq!(event["Tag"][0]["name"], "domaintools:feed=\"nod\"");
        for attribute in event["Attribute"].as_array().expect("attributes") {
            assert_eq!(attribute["type"], "domain");
            assert_eq!(attribute["to_ids"], false);
        }
    }
    assert!(noh[0]["Event"]["Attribute"]
        .as_array()
        .expect("attributes")
        .iter()
        .all(|attribute| attribute["type"] == "hostname"));
    assert_eq!(
        risk[0]["Event"]["Attribute"][0]["comment"],
        "overall risk 72, malware risk 72, phishing risk 1, spam risk 1, proximity risk 67"
    );
    let ips = feeds
        .download("iprisk", &download.path().join("iprisk"))
        .await;
    let expected: BTreeSet<String> = domaintools_fake::synthetic_ip_feed_lines("iprisk")
        .iter()
        .map(|line| line["ip"].as_str().expect("ip").to_owned())
        .collect();
    assert_eq!(
        values(&ips),
        expected,
        "every IP, the domain patterns not applied"
    );
    for attribute in ips[0]["Event"]["Attribute"].as_array().expect("attributes") {
        assert_eq!(attribute["type"], "ip-dst");
    }
    assert_eq!(
        ips[0]["Event"]["Tag"][0]["name"],
        "domaintools:feed=\"iprisk\""
    );
    let hotlist = feeds.text("/feeds/domainhotlist/freetext.txt").await;
    assert_eq!(hotlist, "abyevrs04.icu\n");
    // The risk minimum went to DomainTools with the risk feeds only, and no poll sent `top`.
    assert_eq!(values(&risk), ["l1engage.online".to_owned()].into());
    for request in api.requests() {
        let has_min = request
            .params
            .iter()
            .any(|(k, v)| k == "overall_min" && v == "50");
        let scored = request.path.contains("domainrisk") || request.path.contains("hotlist");
        assert_eq!(has_min, scored, "{}", request.path);
        let patterned = request.params.iter().any(|(k, _)| k == "domain");
        assert_eq!(
            patterned,
            !request.path.contains("/iprisk/"),
            "{}",
            request.path
        );
        assert!(request.params.iter().all(|(name, _)| name != "top"));
    }

    if let Some(python) = pymisp_python() {
        for feed in ["nod", "noh", "domainrisk", "iprisk"] {
            let summary = check_with_pymisp(&python, &download.path().join(feed));
            assert!(summary["events"].as_u64() > Some(0), "{feed}: {summary}");
        }
    }

    let output = feeds.server.output();
    assert!(
        !output.contains(TOKEN) && !output.contains(DEMO_API_KEY),
        "a secret was logged"
    );

    // A restart keeps every sealed bucket, under the same uuids, and the cursor continues.
    let sealed: BTreeSet<String> = manifest.keys().cloned().collect();
    drop(feeds);
    api.push_feed_lines("nod", minutes_ago(5), [domain("after-restart.example")]);
    let feeds = Feeds::start(&fake.base_url(), dir.path(), &filters).await;
    let manifest = feeds.manifest_with("nod", sealed.len() + 1).await;
    let now_sealed: BTreeSet<String> = manifest.keys().cloned().collect();
    assert!(now_sealed.is_superset(&sealed), "a sealed bucket was lost");
    let nod = feeds
        .download("nod", &download.path().join("nod-after"))
        .await;
    assert!(values(&nod).contains("after-restart.example"));
    assert!(values(&nod).contains("architekt-nms.de"));
    assert_eq!(
        feeds.text("/feeds/domainhotlist/freetext.txt").await,
        "abyevrs04.icu\n"
    );
    if let Some(python) = pymisp_python() {
        check_with_pymisp(&python, &download.path().join("nod-after"));
    }
}

/// NOD runs at about 200,000 domains a day, 8,334 an hour: that hour, pushed in six rounds a
/// second apart into one-minute buckets, must leave the server's memory where the first
/// round left it, and every domain in the served feed.
#[tokio::test]
async fn an_hour_of_nod_keeps_memory_flat() {
    const PER_HOUR: usize = 200_000 / 24;
    const ROUNDS: usize = 6;
    let api = FakeApi::new();
    let fake = TestServer::builder().fake(api.clone()).start_fake().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let feeds = Feeds::start(&fake.base_url(), dir.path(), &[]).await;
    let per_round = PER_HOUR / ROUNDS;
    let mut after_first = 0;
    let mut pushed = 0;
    // The poller's session exists before the first line, so every later line reaches it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for round in 0..ROUNDS {
        // Round r covers minutes 60-10r .. 50-10r ago; each minute is its own bucket.
        for minute in 0..10 {
            let at = minutes_ago(60 - i64::try_from(round * 10 + minute).expect("small"));
            let count = per_round / 10 + usize::from(minute < per_round % 10);
            let lines = (0..count).map(|i| domain(&format!("r{round}m{minute}-{i}.example")));
            api.push_feed_lines("nod", at, lines);
            pushed += count;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if round == 0 {
            after_first = feeds.server.memory_kib().0;
        }
    }
    // Every domain arrives in a sealed event (all but the current minute's bucket are sealed).
    let started = Instant::now();
    loop {
        let hashes = feeds.text("/feeds/nod/hashes.csv").await;
        if hashes.lines().count() >= pushed {
            assert_eq!(hashes.lines().count(), pushed);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} of {pushed} domains served",
            hashes.lines().count()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (rss, _) = feeds.server.memory_kib();
    assert!(after_first > 0, "RSS readable");
    eprintln!("soak: {pushed} NOD lines; RSS {after_first} KiB after ten minutes, {rss} KiB after the hour");
    // Flat: the rest of the hour costs less than 16 MiB over the first ten minutes.
    assert!(
        rss < after_first + 16 * 1024,
        "RSS grew from {after_first} KiB to {rss} KiB over an hour of NOD"
    );
}

#[test]
fn feeds_without_a_token_or_with_an_unknown_feed_refuse_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path().to_str().expect("utf-8");
    for (args, expected) in [
        (vec!["--feeds", "nod"], "--feeds-token"),
        (
            vec!["--feeds", "nod,nosuch", "--feeds-token", "t"],
            "unknown feed \"nosuch\"",
        ),
        (
            vec![
                "--feeds",
                "domainrisk",
                "--feeds-token",
                "t",
                "--feeds-risk-min",
                "overall=100",
            ],
            "--feeds-risk-min",
        ),
        (
            vec![
                "--feeds",
                "nod",
                "--feeds-token",
                "t",
                "--feeds-domains",
                "a*b.com",
            ],
            "--feeds-domains",
        ),
    ] {
        let output = crate::common::child::binary()
            .args(["--port", "0", "--api-key", "k", "--feeds-dir", dir])
            .args(&args)
            .output()
            .expect("binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} started");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// A Redis on a free port, stopped when dropped.
/// Two replicas with the same `--feeds` on one directory and one Redis: one polls each cursor
/// (half the calls two pollers would make), and when it dies the other takes over.
#[tokio::test]
async fn two_replicas_poll_each_cursor_once() {
    if !crate::common::redis_present() {
        return;
    }
    let redis = crate::common::redis::RedisServer::start(&[]).await;
    let lock = redis.url();
    let api = FakeApi::new();
    let fake = TestServer::builder().fake(api.clone()).start_fake().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let args = ["--feeds-lock-url", lock.as_str()];
    let first = Feeds::start(&fake.base_url(), dir.path(), &args).await;
    let second = Feeds::start(&fake.base_url(), dir.path(), &args).await;

    tokio::time::sleep(Duration::from_secs(2)).await;
    api.clear_requests();
    tokio::time::sleep(Duration::from_secs(5)).await;
    // One poller a second for five seconds makes at most six calls; two would make about ten.
    let calls = api.calls_to("/v1/feed/nod/");
    assert!(
        (1..=7).contains(&calls),
        "{calls} nod polls in 5 s from two replicas"
    );

    // Exactly one of them says it leads each cursor.
    let leader = "misp_domaintools_feed_leader{feed=\"nod\"}";
    let leaders = first.server.metric(&first.http, leader).await
        + second.server.metric(&second.http, leader).await;
    assert_eq!(leaders, 1.0, "one leader per cursor");

    // The poller dies; within the lease (3 s) the other polls, and serves what it sealed.
    drop(first);
    api.push_feed_lines("nod", minutes_ago(3), [domain("after-failover.example")]);
    let started = Instant::now();
    loop {
        let manifest = second.json("/feeds/nod/manifest.json").await;
        let found = manifest.as_object().is_some_and(|m| !m.is_empty());
        if found {
            let download = tempfile::tempdir().expect("tempdir");
            let events = second.download("nod", download.path()).await;
            if values(&events).contains("after-failover.example") {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the second replica never took over; output:\n{}",
            second.server.output()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(redis);
}
