//! `misp-domaintools opencti`: the OpenCTI internal-enrichment connector.

use domaintools::ExposeSecret;
use std::future::Future;

use anyhow::Context as _;

use crate::config::{Config, OpenctiArgs};
use crate::startup::upstream;
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
    let credentials = upstream.credentials.clone().context(
        "DomainTools credentials are needed: DOMAINTOOLS_API_USERNAME and DOMAINTOOLS_API_KEY \
         (config.yml: domaintools.api_username, domaintools.api_key), or --demo",
    )?;
    opencti::run(settings, upstream.client.clone(), credentials, shutdown).await
}
