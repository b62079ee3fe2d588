//! `misp-domaintools` (no command): the misp-modules server, until the shutdown signal.

use std::future::Future;

use anyhow::Context as _;

use crate::config::Config;
use crate::protocol::DefaultCredentials;
use crate::startup::build_state;
use crate::{demo, domain, http, telemetry};

/// Runs the server described by `config` until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    telemetry::init(&config.log_level, config.log_format);
    http::connections::raise_open_files_limit();
    domain::warm_up();
    // In demo mode the fake DomainTools API runs in this process, on a loopback port, for as
    // long as the server does.
    let demo_api = demo::start(&config, "credentials sent by MISP are ignored").await?;
    let state = match &demo_api {
        Some(running) => {
            let (username, api_key) = running.credentials();
            let forced = DefaultCredentials {
                username: Some(username.to_owned()),
                api_key: Some(api_key.into()),
            };
            build_state(&config, running.base_url(), Some(forced))?
        }
        None => build_state(&config, config.api_url.clone(), None)?,
    };
    let listener = http::bind(&config.listen, config.port)
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.listen, config.port))?;
    tracing::info!(
        address = %listener.local_addr()?,
        api_url = %domaintools::redacted_url(state.api_url()),
        modules = state.registry().modules().len(),
        "misp-domaintools {} listening",
        env!("CARGO_PKG_VERSION")
    );
    http::serve(listener, state, shutdown).await?;
    Ok(())
}
