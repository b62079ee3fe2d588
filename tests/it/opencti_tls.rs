//! The connector's own outbound TLS: a platform at `https://` behind a corporate CA is reached
//! with `--ca-file` and refused, with a readable reason, without it.

use std::time::Duration;

use domaintools::ExtraRoots;
use domaintools_fake::FakeApi;
use misp_domaintools::config::Secret;
use misp_domaintools::opencti::graphql::Platform;

use crate::common::opencti::{
    enrichment_message, post_callback, settings, start, FakeOpencti, CONNECTOR_ID, TOKEN,
};
use crate::common::server::TestServer;
use crate::common::tls::TestCa;

const USER: &str = "opencti-tls-test";
const KEY: &str = "SECRET-opencti-tls-key";

#[tokio::test]
async fn a_platform_behind_a_corporate_ca_needs_the_ca_file() {
    let ca = TestCa::new();
    let platform = FakeOpencti::start_https(&ca).await;
    assert!(platform.url.starts_with("https://127.0.0.1:"));
    platform.add_observable("entity-google", "Domain-Name", "google.com", None);

    // Without the CA: a clear transport error naming the certificate, nothing reaches the
    // platform, the token is not in the message.
    let mut untrusted = Platform::new(
        &platform.url,
        Secret::from(TOKEN),
        Duration::from_secs(5),
        &ExtraRoots::none(),
    )
    .unwrap();
    let error = untrusted.learn_release().await.unwrap_err().to_string();
    assert!(error.contains("certificate"), "{error}");
    assert!(!error.contains(TOKEN), "{error}");
    assert!(platform.calls().is_empty(), "{:?}", platform.calls());

    // With it (the global `--ca-file`, as an operator sets it): registration, a work and its
    // report, all over TLS.
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write_pem(dir.path());
    let ca_file = ca_file.to_str().unwrap();
    let dt = TestServer::builder()
        .fake(FakeApi::new().with_user(USER, KEY))
        .start_fake()
        .await;
    let connector = start(
        settings(&platform, &["--ca-file", ca_file]),
        &dt.base_url(),
        USER,
        KEY,
    );
    let uri = platform.callback_uri().await;
    let message = enrichment_message("work-tls", "entity-google", "Domain-Name").to_string();
    let (status, _) = post_callback(&uri, Some(TOKEN), &message).await;
    assert_eq!(status, 202);
    let processed = platform.processed("work-tls").await;
    assert_eq!(processed.variables["inError"], false, "{processed:?}");
    assert_eq!(platform.calls_to("stixBundlePush").len(), 1);
    connector.stop().await.unwrap();

    // A CA file that holds no certificate stops the start with a message naming the flag.
    std::fs::write(dir.path().join("empty.pem"), "no certificate here").unwrap();
    let config = <misp_domaintools::config::Config as clap::Parser>::try_parse_from([
        "misp-domaintools",
        "--ca-file",
        dir.path().join("empty.pem").to_str().unwrap(),
        "opencti",
        "--opencti-url",
        &platform.url,
        "--opencti-token",
        TOKEN,
        "--connector-id",
        CONNECTOR_ID,
    ])
    .unwrap();
    let Some(misp_domaintools::config::Command::Opencti(args)) = config.command.clone() else {
        panic!("not the opencti command");
    };
    let refused =
        misp_domaintools::opencti::ConnectorSettings::from_parts(&config, &args, None).unwrap_err();
    assert!(refused.contains("--ca-file"), "{refused}");
}
