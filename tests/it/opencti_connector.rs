//! The OpenCTI connector mode against a fake platform (GraphQL on loopback) and the project's
//! fake DomainTools API: registration and pings, the callback's authentication, the max-TLP
//! gate, enrichments pushed with stixBundlePush, and every failure closing its work in error.

use crate::common::opencti::{
    enrichment_message, fake_domaintools, post_callback, settings, start, FakeOpencti,
    CONNECTOR_ID, TOKEN,
};
use crate::common::server::{KEY, USER};
use crate::common::stix_check::check_with_stix2;
use domaintools_fake::Fault;
use misp_domaintools::stix::{ids, Tlp, OPENCTI_SCO_EXTENSION};
use serde_json::{json, Value};

/// The bundle of the only push about `work_id`.
fn pushed_bundle(platform: &FakeOpencti, work_id: &str) -> Value {
    let pushes: Vec<_> = platform
        .calls_to("stixBundlePush")
        .into_iter()
        .filter(|c| c.variables["work_id"] == work_id)
        .collect();
    assert_eq!(pushes.len(), 1, "one push for {work_id}");
    assert_eq!(pushes[0].variables["connectorId"], CONNECTOR_ID);
    serde_json::from_str(pushes[0].variables["bundle"].as_str().unwrap()).unwrap()
}

fn object_with_value<'b>(bundle: &'b Value, value: &str) -> &'b Value {
    bundle["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["value"] == value)
        .unwrap_or_else(|| panic!("{value} not in the bundle"))
}

#[tokio::test]
async fn registers_pings_and_refuses_callbacks_without_the_token() {
    let platform = FakeOpencti::start().await;
    let (_fake, dt) = fake_domaintools().await;
    let connector = start(settings(&platform, &[]), &dt.base_url(), USER, KEY);
    let uri = platform.callback_uri().await;

    let register = &platform.calls_to("registerConnector")[0];
    assert_eq!(
        register.authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
    let input = &register.variables["input"];
    assert_eq!(input["id"], CONNECTOR_ID);
    assert_eq!(input["name"], "DomainTools");
    assert_eq!(input["type"], "INTERNAL_ENRICHMENT");
    assert_eq!(input["scope"], json!(["Domain-Name", "IPv4-Addr"]));
    assert_eq!(input["auto"], false);
    // As the Python connector's manifest says (playbook_supported: true).
    assert_eq!(input["playbook_compatible"], true);
    // 6.9.17 (the fake's release) takes pycti's enrichment fields.
    assert_eq!(input["auto_update"], false);
    assert_eq!(input["enrichment_resolution"], "none");
    assert!(
        uri.starts_with("http://127.0.0.1:") && uri.ends_with("/api/callback"),
        "{uri}"
    );

    // The first ping right after registration, then one per interval (150 ms here, 40 s by
    // default).
    let calls = platform
        .wait_for("three pings", |calls| {
            calls.iter().filter(|c| c.field == "pingConnector").count() >= 3
        })
        .await;
    let ping = calls.iter().find(|c| c.field == "pingConnector").unwrap();
    assert_eq!(ping.variables["id"], CONNECTOR_ID);
    assert_eq!(ping.variables["connectorInfo"]["run_and_terminate"], false);

    let message = enrichment_message("work-1", "entity-1", "Domain-Name").to_string();
    for token in [None, Some("wrong-token"), Some("")] {
        let (status, answer) = post_callback(&uri, token, &message).await;
        assert_eq!(status, 401, "{token:?}");
        assert_eq!(answer, json!({"error": "Invalid credentials"}));
    }
    let (status, _) = post_callback(&uri, Some(TOKEN), "{not json").await;
    assert_eq!(status, 400);
    let wrong_path = uri.replace("/api/callback", "/api/other");
    assert_eq!(
        post_callback(&wrong_path, Some(TOKEN), &message).await.0,
        404
    );
    let health = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(uri.replace("/api/callback", "/healthcheck"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);

    // Nothing refused reached the platform's works or DomainTools.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(platform.work_calls("work-1").is_empty());
    assert!(platform.calls_to("stixCyberObservable").is_empty());
    connector.stop().await.unwrap();
}

#[tokio::test]
async fn a_tlp_above_the_maximum_closes_the_work_in_error_and_sends_nothing() {
    let platform = FakeOpencti::start().await;
    let (fake, dt) = fake_domaintools().await;
    platform.add_observable("entity-red", "Domain-Name", "google.com", Some("TLP:RED"));
    platform.add_observable(
        "entity-strict",
        "Domain-Name",
        "google.com",
        Some("TLP:AMBER+STRICT"),
    );
    let _connector = start(settings(&platform, &[]), &dt.base_url(), USER, KEY);
    let uri = platform.callback_uri().await;

    for (work, entity, tlp) in [
        ("work-red", "entity-red", "TLP:RED"),
        ("work-strict", "entity-strict", "TLP:AMBER+STRICT"),
    ] {
        let message = enrichment_message(work, entity, "Domain-Name").to_string();
        let (status, answer) = post_callback(&uri, Some(TOKEN), &message).await;
        assert_eq!(status, 202);
        assert_eq!(answer["message"], "Message successfully received");
        let processed = platform.processed(work).await;
        assert_eq!(processed.variables["inError"], true);
        assert_eq!(
            processed.variables["message"],
            format!(
                "Do not send any data, TLP of the observable ({tlp}) is greater than MAX TLP \
                 (TLP:AMBER)."
            )
        );
        let fields: Vec<String> = platform
            .work_calls(work)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["toReceived", "toProcessed"]);
    }
    assert!(platform.calls_to("stixBundlePush").is_empty());
    assert_eq!(
        fake.calls_to("/v1/iris-investigate/"),
        0,
        "nothing sent to DomainTools"
    );
}

#[tokio::test]
async fn a_domain_is_enriched_and_its_bundle_pushed() {
    let platform = FakeOpencti::start().await;
    let (fake, dt) = fake_domaintools().await;
    platform.add_observable(
        "entity-google",
        "Domain-Name",
        "google.com",
        Some("TLP:GREEN"),
    );
    let _connector = start(settings(&platform, &[]), &dt.base_url(), USER, KEY);
    let uri = platform.callback_uri().await;

    let mut message = enrichment_message("work-google", "entity-google", "Domain-Name");
    message["internal"]["draft_id"] = json!("draft-7");
    let (status, _) = post_callback(&uri, Some(TOKEN), &message.to_string()).await;
    assert_eq!(status, 202);
    let processed = platform.processed("work-google").await;
    assert_eq!(processed.variables["inError"], false);
    assert_eq!(
        processed.variables["message"],
        "Observable found on DomainTools: google.com (risk score 0) gave 17 STIX objects. \
         3 values skipped as invalid."
    );

    // received → read → push → processed, all inside the work's draft.
    let sequence: Vec<(String, Option<String>)> = platform
        .calls()
        .into_iter()
        .filter(|c| {
            !matches!(
                c.field.as_str(),
                "about" | "pingConnector" | "registerConnector"
            )
        })
        .map(|c| (c.field, c.draft_id))
        .collect();
    let draft = Some("draft-7".to_owned());
    assert_eq!(
        sequence,
        [
            ("toReceived".to_owned(), draft.clone()),
            ("stixCyberObservable".to_owned(), draft.clone()),
            ("stixBundlePush".to_owned(), draft.clone()),
            ("toProcessed".to_owned(), draft),
        ]
    );

    let bundle = pushed_bundle(&platform, "work-google");
    assert!(
        bundle.get("spec_version").is_none(),
        "STIX 2.1 bundles have none"
    );
    // The observable is the platform's: its id, its score, no new marking or author.
    let google = object_with_value(&bundle, "google.com");
    assert_eq!(google["id"], ids::domain_name_id("google.com"));
    assert_eq!(google["extensions"][OPENCTI_SCO_EXTENSION]["score"], 0);
    assert!(google.get("x_opencti_score").is_none());
    assert!(google.get("object_marking_refs").is_none());
    let objects = bundle["objects"].as_array().unwrap();
    for object in objects.iter().filter(|o| o["type"] == "relationship") {
        // AMBER (the default marking) is stricter than the observable's GREEN.
        assert_eq!(
            object["object_marking_refs"],
            json!([Tlp::Amber.marking_id()])
        );
        assert_eq!(object["confidence"], 80);
        if object["relationship_type"] != "belongs-to" {
            assert_eq!(
                object["source_ref"], google["id"],
                "links start at google.com"
            );
        }
    }
    check_with_stix2(&bundle);

    // DomainTools saw one Investigate call, for the domain, as the OpenCTI integration.
    // The background read of the account's rate limits is not a lookup.
    let requests: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path != "/v1/account")
        .collect();
    assert_eq!(requests.len(), 1);
    let params = &requests[0].params;
    assert!(params.contains(&("domain".into(), "google.com".into())));
    assert!(params.contains(&("app_partner".into(), "OpenCTI".into())));

    // Neither secret shows in anything the connector sent the platform about the work.
    for call in platform.work_calls("work-google") {
        let text = call.variables.to_string();
        assert!(!text.contains(TOKEN) && !text.contains(KEY));
    }
}

#[tokio::test]
async fn an_ip_is_enriched_through_its_domains_with_stricter_markings_kept() {
    let platform = FakeOpencti::start().await;
    let (fake, dt) = fake_domaintools().await;
    platform.add_observable(
        "entity-ip",
        "IPv4-Addr",
        "54.239.28.85",
        Some("TLP:AMBER+STRICT"),
    );
    let settings = settings(
        &platform,
        &["--max-tlp", "TLP:RED", "--connector-confidence-level", "55"],
    );
    let _connector = start(settings, &dt.base_url(), USER, KEY);
    let uri = platform.callback_uri().await;

    let message = enrichment_message("work-ip", "entity-ip", "IPv4-Addr").to_string();
    assert_eq!(post_callback(&uri, Some(TOKEN), &message).await.0, 202);
    let processed = platform.processed("work-ip").await;
    assert_eq!(
        processed.variables["inError"], false,
        "{:?}",
        processed.variables
    );
    assert_eq!(
        processed.variables["message"],
        "Observable found on DomainTools: 1 domain on 54.239.28.85 mapped to 43 STIX objects."
    );
    let bundle = pushed_bundle(&platform, "work-ip");
    let ip = object_with_value(&bundle, "54.239.28.85");
    let amazon = object_with_value(&bundle, "amazon.com");
    assert_eq!(
        amazon["extensions"][OPENCTI_SCO_EXTENSION]["score"], 0,
        "the domain's own score"
    );
    assert!(ip["extensions"][OPENCTI_SCO_EXTENSION]
        .get("score")
        .is_none());
    let objects = bundle["objects"].as_array().unwrap();
    let link = objects
        .iter()
        .find(|o| o["source_ref"] == amazon["id"] && o["target_ref"] == ip["id"])
        .expect("amazon.com resolves to the enriched IP");
    assert_eq!(link["description"], "domain-ip");
    assert_eq!(
        link["object_marking_refs"],
        json!([Tlp::AmberStrict.marking_id()])
    );
    assert_eq!(link["confidence"], 55);
    assert_eq!(
        amazon["object_marking_refs"],
        json!([Tlp::Amber.marking_id()])
    );
    check_with_stix2(&bundle);

    // The background read of the account's rate limits is not a lookup.
    let requests: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path != "/v1/account")
        .collect();
    assert_eq!(requests.len(), 1);
    assert!(requests[0]
        .params
        .contains(&("ip".into(), "54.239.28.85".into())));
    assert!(requests[0]
        .params
        .contains(&("page_size".into(), "100".into())));
}

#[tokio::test]
async fn failures_close_the_work_in_error_with_a_clear_message() {
    let platform = FakeOpencti::start().await;
    let (fake, dt) = fake_domaintools().await;
    platform.add_observable("entity-google", "Domain-Name", "google.com", None);
    platform.add_observable("entity-busy", "IPv4-Addr", "8.8.8.8", None);
    platform.add_observable("entity-unknown", "Domain-Name", "nothing-here.test", None);
    platform.add_observable("entity-url", "Url", "https://example.com/", None);
    platform.add_observable(
        "entity-purple",
        "Domain-Name",
        "google.com",
        Some("TLP:PURPLE"),
    );
    let _connector = start(settings(&platform, &[]), &dt.base_url(), USER, KEY);
    let uri = platform.callback_uri().await;

    async fn run(platform: &FakeOpencti, uri: &str, work: &str, entity: &str) -> Value {
        let message = enrichment_message(work, entity, "Domain-Name").to_string();
        assert_eq!(post_callback(uri, Some(TOKEN), &message).await.0, 202);
        platform.processed(work).await.variables
    }

    // DomainTools fails: rate limited, through the first try and both retries.
    fake.inject("/v1/iris-investigate/", Fault::RateLimited, Some(3));
    let outcome = run(&platform, &uri, "work-503", "entity-google").await;
    assert_eq!(outcome["inError"], true);
    assert_eq!(
        outcome["message"],
        "DomainTools API error 503: You have exceeded the maximum number of requests per minute \
         allowed under your service level (/min)."
    );
    // An IP that matches too much: Iris returns nothing at all.
    let outcome = run(&platform, &uri, "work-busy", "entity-busy").await;
    assert_eq!(outcome["inError"], true);
    assert!(outcome["message"]
        .as_str()
        .unwrap()
        .starts_with("DomainTools Iris Investigate matched too many domains for 8.8.8.8"));
    // Unknown to DomainTools: done, not an error, nothing pushed.
    let outcome = run(&platform, &uri, "work-unknown", "entity-unknown").await;
    assert_eq!(outcome["inError"], false);
    assert_eq!(
        outcome["message"],
        "nothing-here.test not found on DomainTools."
    );
    // Not an observable this connector enriches; not readable; an unknown TLP.
    let outcome = run(&platform, &uri, "work-url", "entity-url").await;
    assert_eq!(outcome["inError"], true);
    assert_eq!(
        outcome["message"],
        "Url observables are not enriched by DomainTools (Domain-Name and IPv4-Addr are)."
    );
    let outcome = run(&platform, &uri, "work-gone", "entity-gone").await;
    assert_eq!(outcome["inError"], true);
    assert!(outcome["message"]
        .as_str()
        .unwrap()
        .contains("check that the connector's user"));
    let outcome = run(&platform, &uri, "work-purple", "entity-purple").await;
    assert_eq!(outcome["inError"], true);
    assert!(outcome["message"].as_str().unwrap().contains("TLP:PURPLE"));
    assert!(platform.calls_to("stixBundlePush").is_empty());

    // The platform refuses the bundle.
    platform.fail_pushes();
    let outcome = run(&platform, &uri, "work-push", "entity-google").await;
    assert_eq!(outcome["inError"], true);
    assert_eq!(
        outcome["message"],
        "The bundle could not be sent to OpenCTI: OpenCTI refused the request: Bundle push is disabled"
    );
}

#[tokio::test]
async fn a_refused_token_stops_the_connector_at_registration() {
    let platform = FakeOpencti::start().await;
    let (_fake, dt) = fake_domaintools().await;
    let mut settings = settings(&platform, &[]);
    settings.opencti_token = misp_domaintools::config::Secret::from("not-the-token".to_owned());
    let mut connector = start(settings, &dt.base_url(), USER, KEY);
    let task = connector.task.take().unwrap();
    let error = tokio::time::timeout(std::time::Duration::from_secs(10), task)
        .await
        .expect("the connector stops")
        .unwrap()
        .unwrap_err();
    let text = format!("{error:#}");
    assert!(text.contains("You must be logged in"), "{text}");
    assert!(!text.contains("not-the-token"));
}

#[tokio::test]
async fn an_iris_enrich_account_enriches_domains_through_iris_enrich() {
    let platform = FakeOpencti::start().await;
    let (fake, dt) = fake_domaintools().await;
    platform.add_observable("entity-google", "Domain-Name", "google.com", None);
    let connector = start(
        settings(&platform, &["--domaintools-product", "enrich"]),
        &dt.base_url(),
        USER,
        KEY,
    );
    let uri = platform.callback_uri().await;
    let register = &platform.calls_to("registerConnector")[0];
    assert_eq!(
        register.variables["input"]["scope"],
        json!(["Domain-Name"]),
        "Iris Enrich has no IP pivot to offer"
    );
    let message = enrichment_message("work-enrich", "entity-google", "Domain-Name").to_string();
    let (status, _) = post_callback(&uri, Some(TOKEN), &message).await;
    assert_eq!(status, 202);
    let processed = platform.processed("work-enrich").await;
    assert_eq!(
        processed.variables["inError"], false,
        "{:?}",
        processed.variables
    );
    assert_eq!(fake.calls_to("/v1/iris-enrich/"), 1);
    assert_eq!(fake.calls_to("/v1/iris-investigate/"), 0);
    let bundle = pushed_bundle(&platform, "work-enrich");
    assert!(bundle["objects"].as_array().unwrap().len() > 10);
    connector.stop().await.unwrap();
}
