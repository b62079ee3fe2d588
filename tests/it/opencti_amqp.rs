//! The connector on RabbitMQ, pycti's default transport: a real `rabbitmq-server` on loopback
//! behind the fake platform, which hands out its connection at registration. A work published
//! on the listen queue as the platform publishes it comes out as pycti's split bundles on the
//! push queue, counted with `addExpectations`, acknowledged once reported; the connector
//! survives a broker restart; a stop with work queued loses none of it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use crate::common::opencti::{
    enrichment_message, fake_domaintools, settings_with, start, BrokerInfo, FakeOpencti,
    PlatformQueues, CONNECTOR_ID, CONNECTOR_USER_ID,
};
use crate::common::rabbitmq::{RabbitMq, PASS, USER as BROKER_USER};
use crate::common::server::{KEY, USER};

fn broker_info(rabbit: &RabbitMq) -> BrokerInfo {
    BrokerInfo {
        port: rabbit.port,
        user: BROKER_USER.to_owned(),
        pass: PASS.to_owned(),
    }
}

/// Waits until `work_id` is processed, `limit` at most.
async fn processed_within(platform: &FakeOpencti, work_id: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        if let Some(call) = platform
            .calls_to("toProcessed")
            .into_iter()
            .find(|c| c.variables["id"] == work_id)
        {
            return call.variables;
        }
        assert!(
            started.elapsed() < limit,
            "work {work_id} not processed within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The bundle inside one push envelope.
fn content(envelope: &Value) -> Value {
    let text = base64::engine::general_purpose::STANDARD
        .decode(envelope["content"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_work_comes_out_split_on_the_push_queue_acknowledged_and_reported() {
    let Some(rabbit) = RabbitMq::start() else {
        return;
    };
    let broker = broker_info(&rabbit);
    let platform = FakeOpencti::start_release("6.9.17", Some(broker.clone()), None).await;
    platform.add_observable("entity-google", "Domain-Name", "google.com", None);
    let queues = PlatformQueues::declare(&broker, CONNECTOR_ID).await;
    let (_fake, dt) = fake_domaintools().await;
    let connector = start(settings_with(&platform, &[]), &dt.base_url(), USER, KEY);
    platform
        .wait_for("registration", |calls| {
            calls.iter().any(|c| c.field == "registerConnector")
        })
        .await;
    let register = &platform.calls_to("registerConnector")[0];
    assert_eq!(
        register.variables["input"]["listen_callback_uri"],
        Value::Null,
        "no callback when listening on the queue"
    );
    assert_eq!(register.variables["input"]["playbook_compatible"], true);

    queues
        .publish_work(&enrichment_message(
            "work-q1",
            "entity-google",
            "Domain-Name",
        ))
        .await;
    let processed = processed_within(&platform, "work-q1", Duration::from_secs(20)).await;
    assert_eq!(processed["inError"], false, "{processed}");

    let fields: Vec<String> = platform
        .work_calls("work-q1")
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert_eq!(fields, ["toReceived", "addExpectations", "toProcessed"]);
    let expectations = platform.calls_to("addExpectations")[0].variables["expectations"]
        .as_u64()
        .unwrap();
    assert!(platform.calls_to("stixBundlePush").is_empty());

    let pushed = queues.take_pushed().await;
    assert_eq!(
        pushed.len() as u64,
        expectations,
        "one bundle per expectation"
    );
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/stix-google.com.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let golden_ids: BTreeSet<String> = golden["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    let mut seen = BTreeSet::new();
    let mut last_seq = 0;
    for (index, envelope) in pushed.iter().enumerate() {
        assert_eq!(envelope["bundle_type"], "QUEUE_BUNDLE");
        assert_eq!(envelope["work_id"], "work-q1");
        assert_eq!(envelope["applicant_id"], CONNECTOR_USER_ID);
        assert_eq!(envelope["action_sequence"], index + 1);
        assert_eq!(envelope["update"], false);
        assert_eq!(envelope["entities_types"], serde_json::json!([]));
        let bundle = content(envelope);
        assert_eq!(bundle["type"], "bundle");
        let objects = bundle["objects"].as_array().unwrap();
        assert_eq!(objects.len(), 1);
        let seq = bundle["x_opencti_seq"].as_u64().unwrap();
        assert!(seq >= last_seq, "dependencies first");
        last_seq = seq;
        assert_eq!(objects[0]["nb_deps"], seq);
        seen.insert(objects[0]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, golden_ids, "every object of the enrichment, once");

    connector.stop().await.unwrap();
    assert_eq!(
        queues.listen_ready().await,
        0,
        "the work message was acknowledged"
    );
    assert!(
        platform.violations().is_empty(),
        "{:?}",
        platform.violations()
    );
    queues.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_consumes_again_after_a_broker_restart() {
    let Some(mut rabbit) = RabbitMq::start() else {
        return;
    };
    let broker = broker_info(&rabbit);
    let platform = FakeOpencti::start_release("6.9.17", Some(broker.clone()), None).await;
    platform.add_observable("entity-google", "Domain-Name", "google.com", None);
    let queues = PlatformQueues::declare(&broker, CONNECTOR_ID).await;
    let (_fake, dt) = fake_domaintools().await;
    let connector = start(settings_with(&platform, &[]), &dt.base_url(), USER, KEY);
    queues
        .publish_work(&enrichment_message(
            "work-before",
            "entity-google",
            "Domain-Name",
        ))
        .await;
    processed_within(&platform, "work-before", Duration::from_secs(20)).await;
    queues.close().await;

    tokio::task::block_in_place(|| {
        rabbit.stop_server();
        rabbit.start_server();
    });
    let queues = PlatformQueues::declare(&broker, CONNECTOR_ID).await;
    queues
        .publish_work(&enrichment_message(
            "work-after",
            "entity-google",
            "Domain-Name",
        ))
        .await;
    let processed = processed_within(&platform, "work-after", Duration::from_secs(40)).await;
    assert_eq!(processed["inError"], false, "{processed}");
    let pushed = queues.take_pushed().await;
    assert!(
        pushed
            .iter()
            .any(|envelope| envelope["work_id"] == "work-after"),
        "the bundles after the restart reach the push queue"
    );
    connector.stop().await.unwrap();
    assert_eq!(queues.listen_ready().await, 0);
    queues.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_with_work_queued_loses_none_of_it() {
    let Some(rabbit) = RabbitMq::start() else {
        return;
    };
    let broker = broker_info(&rabbit);
    let platform = FakeOpencti::start_release("6.9.17", Some(broker.clone()), None).await;
    platform.add_observable("entity-google", "Domain-Name", "google.com", None);
    let queues = PlatformQueues::declare(&broker, CONNECTOR_ID).await;
    let (fake, dt) = fake_domaintools().await;
    // Slow enough that most of the queue is still waiting when the stop comes.
    fake.set_latency(Duration::from_millis(1500));
    let works: Vec<String> = (1..=8).map(|n| format!("work-stop-{n}")).collect();
    for work in &works {
        queues
            .publish_work(&enrichment_message(work, "entity-google", "Domain-Name"))
            .await;
    }
    let connector = start(settings_with(&platform, &[]), &dt.base_url(), USER, KEY);
    platform
        .wait_for("a work under way", |calls| {
            calls.iter().any(|c| c.field == "toReceived")
        })
        .await;
    let stopping = Instant::now();
    connector.stop().await.unwrap();
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "stopped in {took:?}, inside Docker's 10 s"
    );

    let processed: BTreeSet<String> = platform
        .calls_to("toProcessed")
        .into_iter()
        .map(|c| c.variables["id"].as_str().unwrap().to_owned())
        .collect();
    let waiting = queues.listen_ready().await as usize;
    assert!(waiting > 0, "the stop came with work still queued");
    assert_eq!(
        processed.len() + waiting,
        works.len(),
        "every work is either done and reported or back on the queue: {processed:?}"
    );

    // The next start takes what was left, and every work ends reported.
    fake.set_latency(Duration::ZERO);
    let connector = start(settings_with(&platform, &[]), &dt.base_url(), USER, KEY);
    for work in &works {
        processed_within(&platform, work, Duration::from_secs(30)).await;
    }
    connector.stop().await.unwrap();
    assert_eq!(queues.listen_ready().await, 0);
    assert!(
        platform.violations().is_empty(),
        "{:?}",
        platform.violations()
    );
    queues.close().await;
}

#[test]
fn the_split_is_pycti_s_own() {
    for name in ["stix-google.com.json", "stix-ip-54.239.28.85.json"] {
        let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
        let bundle: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let ours = misp_domaintools::opencti::split::split_bundle(&bundle).unwrap();
        let Some(theirs) = crate::common::stix_check::split_with_pycti(&bundle) else {
            return;
        };
        assert_eq!(theirs["expectations"], ours.expectations, "{name}");
        let ours: Vec<Value> = ours
            .bundles
            .iter()
            .map(|text| serde_json::from_str(text).unwrap())
            .collect();
        assert_eq!(
            theirs["bundles"],
            Value::Array(ours),
            "{name}: same bundles, same order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_behind_a_corporate_ca_needs_the_ca_file() {
    use domaintools::ExtraRoots;
    use misp_domaintools::opencti::amqp::Broker;
    use misp_domaintools::opencti::graphql::BrokerConnection;
    let ca = crate::common::tls::TestCa::new();
    let Some(rabbit) = RabbitMq::start_with_tls(&ca.server_cert()) else {
        return;
    };
    let tls_port = rabbit.tls_port.unwrap();
    let tls = BrokerConnection {
        host: "127.0.0.1".to_owned(),
        vhost: "/".to_owned(),
        use_ssl: true,
        port: tls_port,
        user: BROKER_USER.to_owned(),
        pass: PASS.into(),
    };
    // Without the CA: refused, with the reason and without the password.
    let refused = Broker::new(tls.clone(), &ExtraRoots::none())
        .connect("test")
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("certificate"), "{refused}");
    assert!(!refused.contains(PASS), "{refused}");

    // With it: the whole work over AMQPS (listen queue and push queue), while the platform's
    // side of the test uses the plain port.
    let broker = broker_info(&rabbit);
    let platform = FakeOpencti::start_release("6.9.17", Some(broker.clone()), None).await;
    platform.add_observable("entity-google", "Domain-Name", "google.com", None);
    let queues = PlatformQueues::declare(&broker, CONNECTOR_ID).await;
    let (_fake, dt) = fake_domaintools().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write_pem(dir.path());
    let tls_port = tls_port.to_string();
    let connector = start(
        settings_with(
            &platform,
            &[
                "--ca-file",
                ca_file.to_str().unwrap(),
                "--mq-port",
                &tls_port,
                "--mq-use-ssl",
                "true",
            ],
        ),
        &dt.base_url(),
        USER,
        KEY,
    );
    queues
        .publish_work(&enrichment_message(
            "work-amqps",
            "entity-google",
            "Domain-Name",
        ))
        .await;
    let processed = processed_within(&platform, "work-amqps", Duration::from_secs(20)).await;
    assert_eq!(processed["inError"], false, "{processed}");
    assert!(
        !queues.take_pushed().await.is_empty(),
        "the bundles went out on the TLS connection"
    );
    connector.stop().await.unwrap();
    queues.close().await;
}
