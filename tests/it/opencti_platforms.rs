//! The connector against each platform release it supports: every GraphQL document and its
//! variables, as built for that release, validated against the release's merged schema
//! (`opencti_schema`); the fake platform of each release refuses anything else, so a full run
//! against it (registration, pings, an enrichment) proves the connector spoke that release.
//! Also: OpenCTI 7's callback JWT, made as the platform makes it, and playbook steps.

use std::time::Duration;

use jsonwebtoken::{jwk::Jwk, Algorithm, EncodingKey, Header};
use misp_domaintools::opencti::graphql::{requests, Release};
use serde_json::{json, Value};

use crate::common::opencti::{
    enrichment_message, fake_domaintools, post_callback, settings, settings_with, start,
    FakeOpencti, CONNECTOR_ID, TOKEN,
};
use crate::common::opencti_schema::{self, RELEASES};
use crate::common::server::{KEY, USER};

/// The releases tried: the six schemas read, and a 7.x version (pycti 7's).
const ALL: [&str; 7] = [
    "6.0.0",
    "6.5.6",
    "6.5.7",
    "6.8.8",
    "6.8.9",
    "6.9.17",
    "7.260817.0",
];

fn registration(callback: Option<&str>) -> requests::Registration {
    requests::Registration {
        kind: requests::ConnectorType::InternalEnrichment,
        id: CONNECTOR_ID.to_owned(),
        name: "DomainTools".to_owned(),
        scope: vec!["Domain-Name".to_owned(), "IPv4-Addr".to_owned()],
        auto: false,
        playbook_compatible: true,
        listen_callback_uri: callback.map(str::to_owned),
    }
}

/// Every request the connector can send to `release`, as it builds them.
fn every_request(release: Release) -> Vec<(&'static str, requests::Request)> {
    let step = requests::PlaybookStep {
        execution_id: "b1f3a8f2-5f0e-4d52-9b8e-5e9b5d7b2a11",
        event_id: "1717171717171-0",
        execution_start: "2026-12-01T19:40:00+00:00",
        data_instance_id: "domain-name--dd686e37-6889-53bd-8ae1-b1a503452613",
        playbook_id: "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d",
        previous_step_id: "c0ffee00-0000-4000-8000-000000000001",
        step_id: "c0ffee00-0000-4000-8000-000000000002",
        previous_bundle: r#"{"type":"bundle","id":"bundle--1","objects":[]}"#,
    };
    let mut all = vec![
        ("about", requests::about()),
        ("register", requests::register(release, &registration(None))),
        (
            "ping (no state)",
            requests::ping(release, CONNECTOR_ID, None),
        ),
        (
            "ping (state)",
            requests::ping(release, CONNECTOR_ID, Some(r#"{"last_run": 1}"#)),
        ),
        (
            "toReceived",
            requests::work_received("work-1", "Connector ready to process the operation"),
        ),
        (
            "toProcessed",
            requests::work_processed("work-1", "done", false),
        ),
        ("addExpectations", requests::add_expectations("work-1", 17)),
        (
            "workAdd",
            requests::work_add(CONNECTOR_ID, "DomainTools Feeds"),
        ),
        (
            "register (external import)",
            requests::register(
                release,
                &requests::Registration {
                    kind: requests::ConnectorType::ExternalImport,
                    scope: vec!["Domain-Name".to_owned(), "Indicator".to_owned()],
                    auto: false,
                    playbook_compatible: false,
                    ..registration(None)
                },
            ),
        ),
        (
            "ping (runs)",
            requests::ping_with_runs(
                release,
                CONNECTOR_ID,
                Some(r#"{"feeds":{}}"#),
                &requests::Runs {
                    last: Some("2026-12-01T22:00:00Z".to_owned()),
                    next: Some("2026-12-01T22:05:00Z".to_owned()),
                },
            ),
        ),
        ("stixCyberObservable", requests::read_observable("entity-1")),
        (
            "playbookStepExecution",
            requests::playbook_step(release, &step, r#"{"type":"bundle","objects":[]}"#),
        ),
    ];
    if release.has_listen_callback() {
        all.push((
            "register (API listening)",
            requests::register(
                release,
                &registration(Some("http://connector:7070/api/callback")),
            ),
        ));
    }
    if release.has_bundle_push() {
        for work in [Some("work-1"), None] {
            all.push((
                "stixBundlePush",
                requests::push_bundle(release, CONNECTOR_ID, r#"{"type":"bundle"}"#, work),
            ));
        }
    }
    all
}

#[test]
fn every_document_and_its_variables_fit_each_release() {
    for version in ALL {
        let release = Release::parse(version).unwrap();
        for (name, request) in every_request(release) {
            if let Err(problem) =
                opencti_schema::validate(version, request.query, &request.variables)
            {
                panic!("{name} for {version}: {problem}\n{}", request.query);
            }
        }
    }
}

#[test]
fn the_validation_refuses_what_a_release_does_not_know() {
    // The newest form of each request, sent to the oldest release: each is refused, so the
    // test above would see a document or an input field a release does not accept.
    let newest = Release::parse("7.260817.0").unwrap();
    let oldest = "6.0.0";
    let with_callback = requests::register(newest, &registration(Some("http://c/api/callback")));
    for (name, request) in [
        ("register", with_callback),
        ("ping", requests::ping(newest, CONNECTOR_ID, None)),
        (
            "push",
            requests::push_bundle(newest, CONNECTOR_ID, "{}", Some("work-1")),
        ),
    ] {
        assert!(
            opencti_schema::validate(oldest, request.query, &request.variables).is_err(),
            "{name} accepted by {oldest}"
        );
    }
    // An input field 6.5.7 does not know (auto_update came in 6.8.9).
    let register = requests::register(Release::parse("6.8.9").unwrap(), &registration(None));
    assert!(opencti_schema::validate("6.5.7", register.query, &register.variables).is_err());
    // jwks is 7.x only.
    let register = requests::register(newest, &registration(None));
    assert!(opencti_schema::validate("6.9.17", register.query, &register.variables).is_err());
}

#[test]
fn stored_schemas_are_the_merged_platform_files() {
    let Some(shared) = opencti_schema::shared_dir() else {
        eprintln!("NOTICE: ../shared/opencti/schema not here; stored schemas not rebuilt");
        return;
    };
    for release in RELEASES {
        let merged = opencti_schema::merge(&opencti_schema::release_files(&shared, release));
        if std::env::var_os("UPDATE_OPENCTI_SCHEMAS").is_some() {
            std::fs::write(opencti_schema::stored_path(release), &merged).unwrap();
        }
        assert!(
            merged == opencti_schema::stored(release),
            "tests/data/opencti-schema/opencti-{release}.graphql is not the merge of \
             ../shared/opencti/schema/{release}/ (UPDATE_OPENCTI_SCHEMAS=1 rewrites it)"
        );
    }
}

/// A full run on `version`: registration, pings, one enrichment (API listening where the
/// release has it), and nothing the release's schema refuses.
async fn run_on(version: &str) {
    let release = Release::parse(version).unwrap();
    let platform = FakeOpencti::start_release(version, None, Some(jwks().1)).await;
    platform.add_observable("entity-google", "Domain-Name", "google.com", None);
    let (_fake, dt) = fake_domaintools().await;
    if !release.has_listen_callback() {
        // Too old to post work to a connector: the start says what to change, and stops.
        let connector = start(settings(&platform, &[]), &dt.base_url(), USER, KEY);
        let error = connector.ended().await.unwrap_err().to_string();
        assert!(
            error.contains("CONNECTOR_LISTEN_PROTOCOL=AMQP"),
            "{version}: {error}"
        );
        // On the queue it registers (the broker here is absent, so nothing more happens).
        let connector = start(settings_with(&platform, &[]), &dt.base_url(), USER, KEY);
        platform
            .wait_for("two pings", |calls| {
                calls.iter().filter(|c| c.field == "pingConnector").count() >= 2
            })
            .await;
        let register = platform.calls_to("registerConnector");
        let input = &register[0].variables["input"];
        assert!(
            input.get("listen_callback_uri").is_none(),
            "{version}: {input}"
        );
        assert!(input.get("auto_update").is_none(), "{version}: {input}");
        connector.stop().await.unwrap();
    } else {
        let connector = start(settings(&platform, &[]), &dt.base_url(), USER, KEY);
        let uri = platform.callback_uri().await;
        let message = enrichment_message("work-run", "entity-google", "Domain-Name").to_string();
        let (status, _) = post_callback(&uri, Some(TOKEN), &message).await;
        assert_eq!(status, 202, "{version}");
        let processed = platform.processed("work-run").await;
        assert_eq!(
            processed.variables["inError"], false,
            "{version}: {:?}",
            processed.variables
        );
        connector.stop().await.unwrap();
    }
    assert!(
        platform.violations().is_empty(),
        "{version}: {:?}",
        platform.violations()
    );
}

#[tokio::test]
async fn the_connector_speaks_every_release() {
    for version in ALL {
        run_on(version).await;
    }
}

/// The test key pair of "the platform" (generated for these tests, `openssl genrsa 2048`),
/// and its public JWK set as registration returns it: a JSON text.
fn jwks() -> (EncodingKey, String) {
    let pem = include_bytes!("../data/opencti-jwt-test-key.pem");
    let key = EncodingKey::from_rsa_pem(pem).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("opencti-test-key-1".to_owned());
    (key, json!({ "keys": [jwk] }).to_string())
}

/// A JWT as the 7.x platform makes it for its worker: RS256, `kid` of its key, issuer
/// `opencti`, subject `connector`.
fn platform_jwt(key: &EncodingKey, kid: &str, claims: Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

#[tokio::test]
async fn opencti_7_callbacks_carry_the_platform_jwt() {
    let (key, set) = jwks();
    let platform = FakeOpencti::start_release("7.260817.0", None, Some(set)).await;
    platform.add_observable("entity-google", "Domain-Name", "google.com", None);
    let (_fake, dt) = fake_domaintools().await;
    let connector = start(settings(&platform, &[]), &dt.base_url(), USER, KEY);
    let uri = platform.callback_uri().await;
    let now = jsonwebtoken::get_current_timestamp();
    let kid = "opencti-test-key-1";
    let good = platform_jwt(
        &key,
        kid,
        json!({"iss": "opencti", "sub": "connector", "iat": now, "exp": now + 300}),
    );
    let message = |work: &str| enrichment_message(work, "entity-google", "Domain-Name").to_string();

    let (status, _) = post_callback(&uri, Some(&good), &message("work-jwt")).await;
    assert_eq!(status, 202);
    assert_eq!(
        platform.processed("work-jwt").await.variables["inError"],
        false
    );

    let expired = platform_jwt(
        &key,
        kid,
        json!({"iss": "opencti", "sub": "connector", "iat": now - 600, "exp": now - 60}),
    );
    let mut forged = good.clone();
    let signature_start = forged.rfind('.').unwrap() + 1;
    let flipped = if &forged[signature_start..=signature_start] == "A" {
        "B"
    } else {
        "A"
    };
    forged.replace_range(signature_start..=signature_start, flipped);
    let other_key = platform_jwt(
        &key,
        "another-kid",
        json!({"iss": "opencti", "sub": "connector", "exp": now + 300}),
    );
    let wrong_subject = platform_jwt(
        &key,
        kid,
        json!({"iss": "opencti", "sub": "user", "exp": now + 300}),
    );
    let wrong_issuer = platform_jwt(
        &key,
        kid,
        json!({"iss": "someone", "sub": "connector", "exp": now + 300}),
    );
    for (name, token) in [
        ("expired", expired),
        ("forged", forged),
        ("unknown kid", other_key),
        ("wrong subject", wrong_subject),
        ("wrong issuer", wrong_issuer),
    ] {
        let (status, answer) = post_callback(&uri, Some(&token), &message("work-refused")).await;
        assert_eq!(status, 401, "{name}");
        assert_eq!(answer, json!({"error": "Invalid credentials"}));
    }
    // The connector's own token, which the 6.x worker sends, still opens the callback.
    let (status, _) = post_callback(&uri, Some(TOKEN), &message("work-token")).await;
    assert_eq!(status, 202);
    platform.processed("work-token").await;
    assert!(platform.work_calls("work-refused").is_empty());
    assert!(
        platform.violations().is_empty(),
        "{:?}",
        platform.violations()
    );
    connector.stop().await.unwrap();
}

#[tokio::test]
async fn the_token_is_checked_before_the_body_is_read() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let platform = FakeOpencti::start().await;
    let (_fake, dt) = fake_domaintools().await;
    let connector = start(settings(&platform, &[]), &dt.base_url(), USER, KEY);
    let uri = platform.callback_uri().await;
    let address = uri
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    // Announce 30 MiB and send none of it: an answer proves nothing of the body was awaited.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /api/callback HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer wrong\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                30 * 1024 * 1024
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = vec![0; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // A body above the limit, with the right token, is refused without being kept.
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(17 * 1024 * 1024));
    let (status, _) = post_callback(&uri, Some(TOKEN), &big).await;
    assert_eq!(status, 413);
    connector.stop().await.unwrap();
}

#[tokio::test]
async fn a_playbook_step_answers_with_playbook_step_execution() {
    let platform = FakeOpencti::start().await;
    platform.add_observable(
        "entity-google",
        "Domain-Name",
        "google.com",
        Some("TLP:GREEN"),
    );
    let (_fake, dt) = fake_domaintools().await;
    let connector = start(settings(&platform, &[]), &dt.base_url(), USER, KEY);
    let uri = platform.callback_uri().await;
    let google = misp_domaintools::stix::ids::domain_name_id("google.com");
    let incoming = json!({"type": "bundle", "id": "bundle--5b8f0c52-4f34-4f7a-8b0e-6a1b2c3d4e5f",
        "objects": [{"type": "domain-name", "spec_version": "2.1", "id": google,
                     "value": "google.com", "x_opencti_id": "entity-google",
                     "object_marking_refs": ["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"]}]});
    let mut message = enrichment_message("work-playbook", &google, "Domain-Name");
    message["event"]["entity_id"] = json!("entity-google");
    message["event"]["bundle"] = incoming.clone();
    message["internal"]["playbook"] = json!({
        "event_id": "1717171717171-0", "execution_id": "b1f3a8f2-5f0e-4d52-9b8e-5e9b5d7b2a11",
        "playbook_id": "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d", "data_instance_id": google,
        "step_id": "c0ffee00-0000-4000-8000-000000000002",
        "previous_step_id": "c0ffee00-0000-4000-8000-000000000001"});
    let (status, _) = post_callback(&uri, Some(TOKEN), &message.to_string()).await;
    assert_eq!(status, 202);
    let processed = platform.processed("work-playbook").await;
    assert_eq!(
        processed.variables["inError"], false,
        "{:?}",
        processed.variables
    );
    assert!(
        platform.calls_to("stixBundlePush").is_empty(),
        "no push in a playbook"
    );
    let steps = platform.calls_to("playbookStepExecution");
    assert_eq!(steps.len(), 1);
    let step = &steps[0].variables;
    assert_eq!(step["playbook_id"], "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d");
    assert_eq!(step["step_id"], "c0ffee00-0000-4000-8000-000000000002");
    assert_eq!(
        step["previous_step_id"],
        "c0ffee00-0000-4000-8000-000000000001"
    );
    assert_eq!(step["event_id"], "1717171717171-0");
    let previous: Value = serde_json::from_str(step["previous_bundle"].as_str().unwrap()).unwrap();
    assert_eq!(previous, incoming);
    let start_text = step["execution_start"].as_str().unwrap();
    assert!(
        start_text.ends_with("+00:00") && start_text.len() == 25,
        "{start_text}"
    );
    let bundle: Value = serde_json::from_str(step["bundle"].as_str().unwrap()).unwrap();
    let objects = bundle["objects"].as_array().unwrap();
    let domain = objects.iter().find(|o| o["id"] == google).unwrap();
    // The step's own object, kept (its marking, its platform id) and enriched (its score).
    assert_eq!(domain["x_opencti_id"], "entity-google");
    assert_eq!(
        domain["object_marking_refs"],
        json!(["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"])
    );
    assert_eq!(
        domain["extensions"][misp_domaintools::stix::OPENCTI_SCO_EXTENSION]["score"],
        0
    );
    assert_eq!(
        objects.iter().filter(|o| o["id"] == google).count(),
        1,
        "one object per id"
    );
    assert!(objects.len() > 10, "the enrichment's objects follow");
    assert!(
        platform.violations().is_empty(),
        "{:?}",
        platform.violations()
    );
    connector.stop().await.unwrap();
}

/// The worker's POST, as [`post_callback`] but an answer that never comes is `None` (the
/// worker then sends the message again).
async fn post_or_nothing(uri: &str, body: String) -> Option<u16> {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .post(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_on_the_callback_answers_202_only_for_work_done() {
    let platform = FakeOpencti::start().await;
    platform.add_observable("entity-google", "Domain-Name", "google.com", None);
    let (fake, dt) = fake_domaintools().await;
    // Longer than the stop's grace: the works under way cannot finish in it.
    fake.set_latency(Duration::from_secs(12));
    let connector = start(settings(&platform, &[]), &dt.base_url(), USER, KEY);
    let uri = platform.callback_uri().await;
    let works: Vec<String> = (1..=6).map(|n| format!("work-api-stop-{n}")).collect();
    let posts: Vec<_> = works
        .iter()
        .map(|work| {
            let uri = uri.clone();
            let body = enrichment_message(work, "entity-google", "Domain-Name").to_string();
            tokio::spawn(async move { post_or_nothing(&uri, body).await })
        })
        .collect();
    platform
        .wait_for("two works under way", |calls| {
            calls.iter().filter(|c| c.field == "toReceived").count() >= 2
        })
        .await;
    // Every POST must have reached the connector before the stop (a work under way, or
    // answered "busy"): one still being sent when the listener closes is refused, and that
    // is the worker's retry, not the behaviour under test.
    let arrived = std::time::Instant::now();
    while posts.iter().filter(|post| post.is_finished()).count()
        + platform.calls_to("toReceived").len()
        < works.len()
    {
        assert!(
            arrived.elapsed() < Duration::from_secs(10),
            "the posts did not all reach the connector"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopping = std::time::Instant::now();
    connector.stop().await.unwrap();
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "stopped in {took:?}, inside Docker's 10 s"
    );
    let mut statuses = Vec::new();
    for post in posts {
        statuses.push(post.await.unwrap());
    }
    for (work, status) in works.iter().zip(&statuses) {
        let processed = platform
            .calls_to("toProcessed")
            .iter()
            .any(|c| c.variables["id"] == work.as_str());
        if *status == Some(202) {
            assert!(processed, "{work} answered 202 but never reported");
        } else {
            // 503 (busy, or stopping): the worker sends it again later.
            assert_eq!(*status, Some(503), "{work}");
        }
    }
    assert!(
        !statuses.contains(&Some(202)),
        "none could finish: {statuses:?}"
    );
}
