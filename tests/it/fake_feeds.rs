//! The fake's Real-Time Threat Feeds over real TCP: `X-Api-Key` auth, `sessionID` cursors,
//! `after`/`before` windows, 206 pages repeated until 200, filters, errors and the demo replay.

use std::time::Duration;

use crate::common::server::{TestFake, TestServer};
use chrono::{TimeDelta, Utc};
use domaintools_fake::{FakeApi, DEMO_API_KEY};
use serde_json::{json, Map, Value};

fn line(domain: &str) -> Map<String, Value> {
    let Value::Object(object) = json!({ "domain": domain }) else {
        unreachable!("a literal object")
    };
    object
}

async fn get(fake: &TestFake, feed: &str, query: &[(&str, &str)]) -> (u16, Vec<Value>) {
    let response = reqwest::Client::new()
        .get(format!("{}/v1/feed/{feed}/", fake.base_url()))
        .header("X-Api-Key", DEMO_API_KEY)
        .query(query)
        .send()
        .await
        .expect("fake answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let lines = if status / 100 == 2 {
        text.lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
            .collect()
    } else {
        vec![serde_json::from_str(&text).expect("JSON error envelope")]
    };
    (status, lines)
}

fn domains(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .map(|line| line["domain"].as_str().expect("domain"))
        .collect()
}

#[tokio::test]
async fn a_session_answers_the_last_hour_then_only_what_is_new() {
    let api = FakeApi::new();
    let now = Utc::now();
    api.push_feed_lines("nod", now - TimeDelta::hours(2), [line("old.example")]);
    api.push_feed_lines(
        "nod",
        now - TimeDelta::minutes(5),
        [line("a.example"), line("b.example")],
    );
    let fake = TestServer::builder().fake(api.clone()).start_fake().await;

    let response = reqwest::Client::new()
        .get(format!("{}/v1/feed/nod/?sessionID=s1", fake.base_url()))
        .header("X-Api-Key", DEMO_API_KEY)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let text = response.text().await.expect("body");
    let first: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(domains(&first), ["a.example", "b.example"]);
    assert!(first[0]["timestamp"]
        .as_str()
        .expect("timestamp")
        .ends_with('Z'));

    let (status, empty) = get(&fake, "nod", &[("sessionID", "s1")]).await;
    assert_eq!(
        (status, empty.len()),
        (200, 0),
        "an empty window is an empty 200"
    );

    api.push_feed_lines("nod", Utc::now(), [line("c.example")]);
    let (status, next) = get(&fake, "nod", &[("sessionID", "s1")]).await;
    assert_eq!((status, domains(&next)), (200, vec!["c.example"]));

    // Another session id is a cursor of its own; another feed shares nothing.
    let (_, other) = get(&fake, "nod", &[("sessionID", "s2")]).await;
    assert_eq!(domains(&other), ["a.example", "b.example", "c.example"]);
    let (_, nad) = get(&fake, "nad", &[("sessionID", "s1")]).await;
    assert!(nad.is_empty());
}

#[tokio::test]
async fn pages_are_206_until_the_identical_request_gets_200() {
    let api = FakeApi::new().with_feed_page_lines(3);
    let now = Utc::now();
    let names: Vec<String> = (0..7).map(|i| format!("d{i}.example")).collect();
    api.push_feed_lines("nod", now, names.iter().map(|name| line(name)));
    let fake = TestServer::builder().fake(api.clone()).start_fake().await;

    let mut seen = Vec::new();
    let mut statuses = Vec::new();
    loop {
        let (status, lines) = get(&fake, "nod", &[("sessionID", "paged")]).await;
        statuses.push(status);
        seen.extend(domains(&lines).into_iter().map(str::to_owned));
        if status == 200 {
            break;
        }
        assert!(statuses.len() < 10, "never reached 200");
    }
    assert_eq!(statuses, [206, 206, 200]);
    assert_eq!(seen, names);

    // Without a session the same request gets the same first page again.
    let (status, lines) = get(&fake, "nod", &[("after", "-60")]).await;
    assert_eq!((status, lines.len()), (206, 3));
    assert_eq!(domains(&lines), ["d0.example", "d1.example", "d2.example"]);
    // `top` cuts silently with a 200.
    let (status, lines) = get(&fake, "nod", &[("after", "-60"), ("top", "2")]).await;
    assert_eq!((status, lines.len()), (200, 2));
}

#[tokio::test]
async fn windows_filters_and_errors() {
    let api = FakeApi::new();
    let now = Utc::now();
    api.push_feed_lines("nod", now - TimeDelta::hours(3), [line("three.example")]);
    api.push_feed_lines("nod", now - TimeDelta::minutes(30), [line("half.test")]);
    let Value::Object(risky) =
        json!({"domain": "risky.example", "overall_risk": 90, "malware_risk": 95})
    else {
        unreachable!()
    };
    let Value::Object(calm) =
        json!({"domain": "calm.example", "overall_risk": 10, "malware_risk": null})
    else {
        unreachable!()
    };
    api.push_feed_lines("domainrisk", now, [risky, calm]);
    api.push_feed_lines("domainhotlist", now, [line("hot.example")]);
    let fake = TestServer::builder().fake(api.clone()).start_fake().await;

    let (_, lines) = get(&fake, "nod", &[("after", "-14400"), ("before", "-3600")]).await;
    assert_eq!(domains(&lines), ["three.example"]);
    let stamp = (now - TimeDelta::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (_, lines) = get(&fake, "nod", &[("after", stamp.as_str())]).await;
    assert_eq!(domains(&lines), ["half.test"]);
    let (_, lines) = get(&fake, "nod", &[("after", "-14400"), ("domain", "*.test")]).await;
    assert_eq!(domains(&lines), ["half.test"]);
    let (_, lines) = get(
        &fake,
        "domainrisk",
        &[("after", "-60"), ("malware_min", "90")],
    )
    .await;
    assert_eq!(domains(&lines), ["risky.example"]);
    let (_, lines) = get(&fake, "domainhotlist", &[("after", "-60")]).await;
    let expires = lines[0]["expires"].as_str().expect("expires");
    let seen = lines[0]["timestamp"].as_str().expect("timestamp");
    assert!(expires > seen, "expires a day after the line was seen");

    for (query, status) in [
        (vec![], 400),
        (vec![("after", "-432001")], 400),
        (vec![("after", "soon")], 400),
        (vec![("after", "-60"), ("top", "0")], 400),
        (vec![("after", "-60"), ("overall_min", "100")], 400),
        (vec![("after", "-60"), ("fromBeginning", "true")], 422),
    ] {
        let (got, body) = get(&fake, "nod", &query).await;
        assert_eq!(got, status, "{query:?}");
        assert_eq!(body[0]["error"]["code"], status, "{query:?}");
    }
    let (status, _) = get(
        &fake,
        "nod",
        &[("sessionID", "fb"), ("fromBeginning", "true")],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = get(
        &fake,
        "nod",
        &[("sessionID", "fb"), ("fromBeginning", "true")],
    )
    .await;
    assert_eq!(status, 406);
    let (status, _) = get(&fake, "nosuchfeed", &[("after", "-60")]).await;
    assert_eq!(status, 404);

    for key in [None, Some("wrong-key")] {
        let mut request =
            reqwest::Client::new().get(format!("{}/v1/feed/nod/?after=-60", fake.base_url()));
        if let Some(key) = key {
            request = request.header("X-Api-Key", key);
        }
        let response = request.send().await.expect("answer");
        assert_eq!(response.status(), 403, "{key:?}");
    }
}

#[tokio::test]
async fn the_demo_replays_recorded_lines_with_fresh_timestamps() {
    let fake = TestServer::builder()
        .fake(FakeApi::new().with_feed_replay(Duration::from_secs(60)))
        .start_fake()
        .await;
    let recorded: Vec<String> = domaintools_fake::recorded_feed_lines("nod")
        .iter()
        .map(|line| line["domain"].as_str().expect("domain").to_owned())
        .collect();
    let (status, lines) = get(&fake, "nod", &[("sessionID", "demo")]).await;
    assert_eq!(status, 200);
    assert!(
        (59..=61).contains(&lines.len()),
        "an hour at one a minute: {}",
        lines.len()
    );
    let hour_ago = (Utc::now() - TimeDelta::minutes(61))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for line in &lines {
        assert!(recorded.iter().any(|domain| domain == &line["domain"]));
        assert!(line["timestamp"].as_str().expect("timestamp") > hour_ago.as_str());
    }
    let (_, hotlist) = get(&fake, "domainhotlist", &[("after", "-120")]).await;
    assert!(!hotlist.is_empty());
    assert!(hotlist.iter().all(|line| line["overall_risk"].is_number()));
}
