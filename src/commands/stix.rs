//! `misp-domaintools stix <value>`: one enrichment printed as a STIX 2.1 bundle.

use anyhow::Context as _;
use domaintools::Caller;
use domaintools::ExposeSecret;

use crate::config::Config;
use crate::startup::upstream;
use crate::{stix, telemetry};

/// `misp-domaintools stix <value>`: prints the enrichment of a domain name or an IPv4 address
/// as a STIX 2.1 bundle on stdout, and a one-line summary on stderr.
pub async fn run(config: &Config, value: &str) -> anyhow::Result<()> {
    // stdout carries the bundle alone.
    telemetry::init_stderr(&config.log_level, config.log_format);
    let observable = stix::Observable::parse(value).map_err(anyhow::Error::msg)?;
    let upstream = upstream(
        config,
        config.username.clone(),
        config
            .api_key
            .as_ref()
            .map(|k| k.expose_secret().to_owned()),
    )
    .await?;
    let credentials = upstream.credentials.as_ref().context(
        "DomainTools credentials are needed: --username/DOMAINTOOLS_USERNAME and \
         --api-key/DOMAINTOOLS_API_KEY (or --demo)",
    )?;
    let settings = stix::EnrichSettings {
        marking: config.marking.unwrap_or(stix::Tlp::Amber),
        ip_domain_limit: config.ip_domain_limit.map_or(100, |limit| limit as usize),
        confidence: None,
        product: stix::IrisProduct::Investigate,
    };
    let caller = Caller::new(credentials, "DomainTools-STIX");
    let enrichment = stix::enrich(
        &upstream.client,
        caller,
        &observable,
        &settings,
        None,
        chrono::Utc::now(),
    )
    .await?;
    for skipped in &enrichment.mapping.skipped {
        tracing::info!(
            what = skipped.what,
            value = %skipped.value,
            record = %skipped.record,
            "skipped an invalid value"
        );
    }
    let text = serde_json::to_string_pretty(&enrichment.bundle)?;
    println!("{text}");
    eprintln!("{}", enrichment.summary);
    Ok(())
}
