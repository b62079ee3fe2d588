//! `misp-domaintools opencti`: the OpenCTI connector, the enrichment (INTERNAL_ENRICHMENT) or
//! the feeds import (EXTERNAL_IMPORT).

use domaintools::ExposeSecret;
use std::future::Future;

use anyhow::Context as _;

use crate::config::{Config, OpenctiArgs};
use crate::opencti::graphql::requests::ConnectorType;
use crate::startup::{feeds_settings, upstream};
use crate::{opencti, telemetry};

/// `misp-domaintools opencti`: the OpenCTI connector, until Ctrl-C or SIGTERM.
pub async fn run(
    config: &Config,
    args: &OpenctiArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let settings = opencti::ConnectorSettings::resolve(config, args).map_err(anyhow::Error::msg)?;
    let level = settings
        .log_level
        .clone()
        .unwrap_or_else(|| config.log_level.clone());
    telemetry::init(&level, config.log_format);
    let upstream = upstream(
        config,
        settings.username.clone(),
        settings
            .api_key
            .as_ref()
            .map(|k| k.expose_secret().to_owned()),
    )
    .await?;
    if settings.kind == ConnectorType::ExternalImport {
        // The feeds of the settings (MISP_DOMAINTOOLS_FEEDS or config.yml's feed_type).
        let mut feeds_config = config.clone();
        feeds_config.feeds = settings
            .feeds
            .iter()
            .map(|feed| feed.name().to_owned())
            .collect();
        let feeds = feeds_settings(&feeds_config, false)?
            .context("CONNECTOR_TYPE=EXTERNAL_IMPORT needs MISP_DOMAINTOOLS_FEEDS")?;
        let dir = feeds.dir.clone();
        // Kept for the life of the import: its pollers fill the directory the import reads.
        let _pollers = if args.feeds_read_only {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create --feeds-dir {}", dir.display()))?;
            None
        } else {
            let api_key = upstream.api_key.clone().context(
                "the feeds import polls DomainTools with DOMAINTOOLS_API_KEY (config.yml: \
                 domaintools.api_key), or --demo; with MISP_DOMAINTOOLS_FEEDS_READ_ONLY=true it \
                 only reads what a `serve --feeds` seals in the shared --feeds-dir",
            )?;
            Some(crate::feeds::FeedsService::start(
                feeds,
                &upstream.api_url,
                api_key,
            )?)
        };
        return opencti::run_import(settings, dir, shutdown).await;
    }
    let credentials = upstream.credentials.clone().context(
        "DomainTools credentials are needed: DOMAINTOOLS_API_USERNAME and DOMAINTOOLS_API_KEY \
         (config.yml: domaintools.api_username, domaintools.api_key), or --demo",
    )?;
    opencti::run(settings, upstream.client.clone(), credentials, shutdown).await
}
