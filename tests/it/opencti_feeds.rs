//! The feeds as an OpenCTI external import: the pollers fill `--feeds-dir` from the fake's
//! feeds (the IP Risk feed's synthetic lines included), the import sends the sealed buckets and the hotlist through a real `rabbitmq-server`
//! (pycti's envelope and splitter) to the fake platform, one work per run, and the bundles
//! pass the OASIS `stix2` library and `stix2-validator --strict`. A restart sends nothing
//! again, a new sealed bucket alone goes out, a reset state on the platform sends everything
//! kept again; over the API transport every bundle stays under the bound.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use clap::Parser as _;
use domaintools::feeds::Feed;
use domaintools::SecretString;
use domaintools_fake::{FakeApi, DEMO_API_KEY};
use misp_domaintools::config::{Command, Config};
use misp_domaintools::feeds::store::StoreSettings;
use misp_domaintools::feeds::{FeedsService, FeedsSettings};
use misp_domaintools::opencti::import::{ImportState, MAX_BUNDLE_OBJECTS};
use misp_domaintools::opencti::{self, ConnectorSettings};
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

use crate::common::opencti::{
    BrokerInfo, FakeOpencti, PlatformQueues, CONNECTOR_ID, CONNECTOR_USER_ID, TOKEN,
};
use crate::common::rabbitmq::{RabbitMq, PASS, USER as BROKER_USER};
use crate::common::server::TestServer;
use crate::common::stix_check::{check_with_stix2, validate_strict};

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(object) => object,
        _ => unreachable!("a literal object"),
    }
}

fn domain(name: &str) -> Map<String, Value> {
    object(json!({ "domain": name }))
}

/// A minute-aligned instant `minutes` ago: lines fall into known one-minute buckets, sealed
/// at the first poll.
fn minutes_ago(minutes: i64) -> DateTime<Utc> {
    let now = Utc::now();
    now - TimeDelta::minutes(minutes) - TimeDelta::seconds(now.timestamp().rem_euclid(60))
        + TimeDelta::seconds(5)
}

/// The import's settings against `platform`, with fast pings and runs.
fn import_settings(platform: &FakeOpencti, feeds: &str, extra: &[&str]) -> ConnectorSettings {
    let mut args = vec![
        "misp-domaintools",
        "--listen",
        "127.0.0.1",
        "--feeds",
        feeds,
        "opencti",
        "--opencti-url",
        &platform.url,
        "--opencti-token",
        TOKEN,
        "--connector-id",
        CONNECTOR_ID,
        "--connector-type",
        "EXTERNAL_IMPORT",
        "--callback-port",
        "0",
    ];
    args.extend_from_slice(extra);
    let config = Config::try_parse_from(args).unwrap();
    let Some(Command::Opencti(opencti_args)) = config.command.clone() else {
        panic!("not the opencti command");
    };
    let mut settings = ConnectorSettings::from_parts(&config, &opencti_args, None).unwrap();
    settings.ping_interval = Duration::from_millis(150);
    settings.duration_period = Duration::from_millis(300);
    settings
}

/// The pollers of `feeds` into `dir`, one-minute buckets, a second of grace.
fn pollers(api_url: &str, dir: &Path, feeds: &[Feed]) -> FeedsService {
    let settings = FeedsSettings {
        feeds: feeds.to_vec(),
        dir: dir.to_path_buf(),
        token: None,
        poll_interval: Duration::from_secs(1),
        lock_url: None,
        roots: domaintools::ExtraRoots::none(),
        proxy: domaintools::Proxy::None,
        domains: Vec::new(),
        minimums: Vec::new(),
        store: StoreSettings {
            bucket: Duration::from_secs(60),
            grace: Duration::from_secs(1),
            retention_days: 7,
            to_ids: false,
        },
    };
    FeedsService::start(settings, api_url, SecretString::from(DEMO_API_KEY)).unwrap()
}

struct RunningImport {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningImport {
    fn start(settings: ConnectorSettings, dir: &Path) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(opencti::run_import(
            settings,
            dir.to_path_buf(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(15), &mut self.task)
            .await
            .expect("the import stops")
            .unwrap()
            .unwrap();
    }
}

/// The bundle inside one push envelope.
fn content(envelope: &Value) -> Value {
    let text = base64::engine::general_purpose::STANDARD
        .decode(envelope["content"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&text).unwrap()
}

/// Every envelope taken from the push queue until `done` holds for the objects (by id), 30 s
/// at most.
async fn pushed_until(
    queues: &PlatformQueues,
    envelopes: &mut Vec<Value>,
    objects: &mut BTreeMap<String, Value>,
    what: &str,
    done: impl Fn(&BTreeMap<String, Value>) -> bool,
) {
    let started = Instant::now();
    loop {
        for envelope in queues.take_pushed().await {
            for object in content(&envelope)["objects"].as_array().unwrap() {
                let mut object = object.clone();
                // pycti's splitter's count, which the worker reads and drops.
                object.as_object_mut().unwrap().remove("nb_deps");
                objects.insert(object["id"].as_str().unwrap().to_owned(), object);
            }
            envelopes.push(envelope);
        }
        if done(objects) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: not there after 30 s; objects: {:?}",
            objects.keys().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn values_of(objects: &BTreeMap<String, Value>, kind: &str) -> BTreeSet<String> {
    objects
        .values()
        .filter(|object| object["type"] == kind)
        .map(|object| {
            object
                .get("value")
                .or_else(|| object.get("name"))
                .and_then(Value::as_str)
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn validate(objects: &BTreeMap<String, Value>) {
    let bundle = json!({
        "type": "bundle",
        "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
        "objects": objects.values().cloned().collect::<Vec<_>>(),
    });
    check_with_stix2(&bundle);
    let path = std::env::temp_dir().join(format!(
        "misp-domaintools-import-{}-{}.json",
        std::process::id(),
        objects.len()
    ));
    std::fs::write(&path, bundle.to_string()).unwrap();
    validate_strict(std::slice::from_ref(&path));
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_buckets_reach_opencti_once_through_rabbitmq_and_a_restart_sends_nothing_again() {
    let Some(rabbit) = RabbitMq::start() else {
        return;
    };
    let broker = BrokerInfo {
        port: rabbit.port,
        user: BROKER_USER.to_owned(),
        pass: PASS.to_owned(),
    };
    let api = FakeApi::new();
    api.push_feed_lines(
        "nod",
        minutes_ago(40),
        ["architekt-nms.de", "afterjpeg.xyz", "Upper.Example."].map(domain),
    );
    api.push_feed_lines("nod", minutes_ago(20), ["b.example"].map(domain));
    api.push_feed_lines(
        "noh",
        minutes_ago(30),
        ["didi.4eministries.thinkific.com"].map(domain),
    );
    api.push_feed_lines(
        "domainrisk",
        minutes_ago(30),
        [object(
            json!({"domain": "l1engage.online", "phishing_risk": 1, "malware_risk": 72,
                   "spam_risk": 0, "proximity_risk": 67, "overall_risk": 72}),
        )],
    );
    api.push_feed_lines(
        "domainhotlist",
        minutes_ago(10),
        [object(
            json!({"domain": "abyevrs04.icu", "overall_risk": 100, "malware_risk": 100}),
        )],
    );
    api.push_feed_lines(
        "iprisk",
        minutes_ago(30),
        domaintools_fake::synthetic_ip_feed_lines("iprisk"),
    );
    let fake = TestServer::builder().fake(api.clone()).start_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let feeds = [
        Feed::Nod,
        Feed::Noh,
        Feed::DomainRisk,
        Feed::DomainHotlist,
        Feed::IpRisk,
    ];
    let _pollers = pollers(&fake.base_url(), dir.path(), &feeds);

    let platform = FakeOpencti::start_release("6.9.17", Some(broker.clone()), None).await;
    let queues = PlatformQueues::declare(&broker, CONNECTOR_ID).await;
    let names = "nod,noh,domainrisk,domainhotlist,iprisk";
    let import = RunningImport::start(import_settings(&platform, names, &[]), dir.path());

    let mut envelopes = Vec::new();
    let mut objects = BTreeMap::new();
    pushed_until(
        &queues,
        &mut envelopes,
        &mut objects,
        "every feed",
        |objects| {
            values_of(objects, "domain-name").len() == 5
                && values_of(objects, "indicator").len() == 2
                && values_of(objects, "ipv4-addr").len() == 5
                && values_of(objects, "ipv6-addr").len() == 1
        },
    )
    .await;
    let register = &platform.calls_to("registerConnector")[0];
    assert_eq!(register.variables["input"]["type"], "EXTERNAL_IMPORT");
    assert_eq!(
        register.variables["input"]["scope"],
        json!(["Domain-Name", "Indicator"])
    );
    assert_eq!(
        register.variables["input"]["listen_callback_uri"],
        Value::Null
    );

    assert_eq!(
        values_of(&objects, "domain-name"),
        BTreeSet::from(
            [
                "architekt-nms.de",
                "afterjpeg.xyz",
                "upper.example",
                "b.example",
                "didi.4eministries.thinkific.com",
            ]
            .map(str::to_owned)
        )
    );
    let risk = objects
        .values()
        .find(|o| o["name"] == "l1engage.online")
        .unwrap();
    assert_eq!(risk["pattern"], "[domain-name:value = 'l1engage.online']");
    assert_eq!(
        risk["labels"],
        json!(["domainrisk", "phishing=1", "malware=72", "proximity=67"])
    );
    assert_eq!(risk["confidence"], 72);
    assert!(risk.get("valid_until").is_none());
    let ipv6 = objects.values().find(|o| o["type"] == "ipv6-addr").unwrap();
    assert_eq!(ipv6["value"], "2001:db8::53");
    assert_eq!(
        ipv6["extensions"]["extension-definition--f93e2c80-4231-4f9a-af8b-95c9bd566a82"]["labels"],
        json!(["iprisk"])
    );
    let hot = objects
        .values()
        .find(|o| o["name"] == "abyevrs04.icu")
        .unwrap();
    assert_eq!(hot["labels"], json!(["domainhotlist", "malware=100"]));
    let from = DateTime::parse_from_rfc3339(hot["valid_from"].as_str().unwrap()).unwrap();
    let until = DateTime::parse_from_rfc3339(hot["valid_until"].as_str().unwrap()).unwrap();
    assert!(until > from, "{hot}");
    for object in objects.values() {
        if object["type"] != "identity" {
            assert_eq!(
                object["object_marking_refs"],
                json!(["marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"]),
                "TLP:CLEAR by default, as the DomainTools feeds connector: {object}"
            );
        }
    }
    validate(&objects);

    // Let the runs settle: the last work closed, the state pinged.
    let works = platform
        .wait_for("the works closed", |calls| {
            let added = calls.iter().filter(|c| c.field == "workAdd").count();
            let closed = calls.iter().filter(|c| c.field == "toProcessed").count();
            added > 0 && added == closed
        })
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before: usize = works.iter().filter(|c| c.field == "workAdd").count();
    assert_eq!(
        platform.calls_to("workAdd").len(),
        before,
        "no run found more"
    );
    for processed in platform.calls_to("toProcessed") {
        assert_eq!(
            processed.variables["inError"], false,
            "{:?}",
            processed.variables
        );
    }
    // Every envelope belongs to a work, and each work's expectations are its bundles.
    let mut per_work: BTreeMap<String, u64> = BTreeMap::new();
    for envelope in &envelopes {
        assert_eq!(envelope["applicant_id"], CONNECTOR_USER_ID);
        *per_work
            .entry(envelope["work_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for call in platform.calls_to("addExpectations") {
        *expected
            .entry(call.variables["id"].as_str().unwrap().to_owned())
            .or_default() += call.variables["expectations"].as_u64().unwrap();
    }
    assert_eq!(per_work, expected);
    let state = ImportState::parse(platform.state().as_deref());
    assert_eq!(
        state.feeds.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(["nod", "noh", "domainrisk", "iprisk"].map(str::to_owned)),
        "{state:?}"
    );
    assert!(state.hotlist_through.is_some());
    import.stop().await;

    // A restart: the state comes back with the registration, nothing is sent again.
    let works_before = platform.calls_to("workAdd").len();
    let import = RunningImport::start(import_settings(&platform, names, &[]), dir.path());
    platform
        .wait_for("runs after the restart", |calls| {
            calls
                .iter()
                .filter(|c| c.field == "registerConnector")
                .count()
                == 2
                && calls
                    .iter()
                    .rev()
                    .take_while(|c| c.field != "registerConnector")
                    .filter(|c| c.field == "pingConnector")
                    .count()
                    >= 8
        })
        .await;
    assert_eq!(platform.calls_to("workAdd").len(), works_before);
    assert!(queues.take_pushed().await.is_empty(), "nothing sent twice");

    // A new sealed bucket goes out alone.
    api.push_feed_lines("nod", minutes_ago(5), ["new.example"].map(domain));
    let mut fresh = Vec::new();
    let mut fresh_objects = BTreeMap::new();
    pushed_until(
        &queues,
        &mut fresh,
        &mut fresh_objects,
        "the new bucket",
        |o| !values_of(o, "domain-name").is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    for envelope in queues.take_pushed().await {
        fresh.push(envelope);
    }
    assert_eq!(
        values_of(&fresh_objects, "domain-name"),
        BTreeSet::from(["new.example".to_owned()])
    );
    assert_eq!(fresh.len(), 2, "the author and the one observable");

    // The platform's "reset state": everything kept is sent again.
    platform.reset_state();
    let mut again = Vec::new();
    let mut again_objects = BTreeMap::new();
    pushed_until(&queues, &mut again, &mut again_objects, "the resend", |o| {
        values_of(o, "domain-name").len() == 6
            && values_of(o, "indicator").len() == 2
            && values_of(o, "ipv4-addr").len() == 5
    })
    .await;
    import.stop().await;
    assert!(
        platform.violations().is_empty(),
        "{:?}",
        platform.violations()
    );
    queues.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_api_a_big_bucket_goes_in_bounded_bundles() {
    let api = FakeApi::new();
    let lines: Vec<Map<String, Value>> = (0..2 * MAX_BUNDLE_OBJECTS + 100)
        .map(|i| domain(&format!("d{i}.example.com")))
        .collect();
    api.push_feed_lines("nod", minutes_ago(30), lines);
    let fake = TestServer::builder().fake(api.clone()).start_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let _pollers = pollers(&fake.base_url(), dir.path(), &[Feed::Nod]);
    let platform = FakeOpencti::start().await;
    let import = RunningImport::start(
        import_settings(&platform, "nod", &["--queue-protocol", "api"]),
        dir.path(),
    );
    let processed = platform.processed("work-import-1").await;
    assert_eq!(
        processed.variables["inError"], false,
        "{:?}",
        processed.variables
    );
    import.stop().await;
    let pushes = platform.calls_to("stixBundlePush");
    let mut sizes = Vec::new();
    let mut values = BTreeSet::new();
    for push in &pushes {
        assert_eq!(push.variables["work_id"], "work-import-1");
        let bundle: Value =
            serde_json::from_str(push.variables["bundle"].as_str().unwrap()).unwrap();
        let objects = bundle["objects"].as_array().unwrap();
        sizes.push(objects.len());
        assert_eq!(objects[0]["type"], "identity", "each bundle has its author");
        for object in &objects[1..] {
            values.insert(object["value"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        sizes,
        [MAX_BUNDLE_OBJECTS + 1, MAX_BUNDLE_OBJECTS + 1, 101],
        "bounded bundles"
    );
    assert_eq!(values.len(), 2 * MAX_BUNDLE_OBJECTS + 100);
    assert!(
        platform.violations().is_empty(),
        "{:?}",
        platform.violations()
    );
}
