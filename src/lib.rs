//! misp-domaintools: the DomainTools modules for MISP, served over the misp-modules protocol.
//!
//! # Layout
//! - [`config`]: the command line and environment settings (the only reader of env vars).
//! - [`server`]: `router(state)`, `serve(listener, state, shutdown)` and the HTTP handlers.
//! - [`protocol`]: the misp-modules request and reply format.
//! - [`registry`]: the explicit list of modules and the `/modules` listing.
//! - [`modules`]: one file per DomainTools module, each with a pure mapping function.
//! - [`misp`]: MISP result entries, de-duplication and hover/stored rendering.
//! - [`domain`]: registrable-domain reduction (ICANN public suffixes, like the reference).
//! - [`pyfmt`]: the Python formatting the reference's output depends on.
//! - [`domaintools`]: the DomainTools API client (knows nothing of MISP or axum).
//! - [`fake_api`]: a fixture-driven fake of the DomainTools API, for tests and `--demo`.
//! - [`metrics`]: the Prometheus metrics registry behind `GET /metrics`.
//! - [`stix`]: the DomainTools enrichment as STIX 2.1 (the `stix` command, the connector).
//! - [`opencti`]: the OpenCTI internal-enrichment connector mode.
//! - [`telemetry`]: logging set-up.

pub mod config;
pub mod domain;
pub mod domaintools;
pub mod fake_api;
pub mod metrics;
pub mod misp;
pub mod modules;
pub mod opencti;
pub mod protocol;
pub mod pyfmt;
pub mod registry;
pub mod server;
pub mod stix;
pub mod telemetry;

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::{Config, OpenctiArgs, RateLimitMode};
use crate::domaintools::{CacheConfig, Caller, Client, ClientConfig, Credentials, Proxy, Ttls};
use crate::protocol::DefaultCredentials;
use crate::server::{AppState, Options};

/// Runs the server described by `config` until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    telemetry::init(&config.log_level, config.log_format);
    domain::warm_up();
    // In demo mode the fake DomainTools API runs in this process, on a loopback port, for as
    // long as the server does.
    // In demo mode the fake DomainTools API runs in this process, on a loopback port, for as
    // long as the server does.
    let (state, _demo_api) = if config.demo {
        let running = start_demo_api("credentials sent by MISP are ignored").await?;
        let demo = DefaultCredentials {
            username: Some(fake_api::DEMO_USERNAME.to_owned()),
            api_key: Some(fake_api::DEMO_API_KEY.to_owned()),
        };
        (
            build_state(&config, running.base_url(), Some(demo))?,
            Some(running),
        )
    } else {
        (build_state(&config, config.api_url.clone(), None)?, None)
    };
    let listener = server::bind(&config.listen, config.port)
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.listen, config.port))?;
    tracing::info!(
        address = %listener.local_addr()?,
        api_url = %state.api_url(),
        modules = state.registry().modules().len(),
        "misp-domaintools {} listening",
        env!("CARGO_PKG_VERSION")
    );
    server::serve(listener, state, shutdown).await?;
    Ok(())
}

/// Asks the server configured by `config` for `/healthcheck` (a wildcard listen address is
/// reached on loopback).
pub async fn healthcheck(config: &Config) -> anyhow::Result<()> {
    let host = match config.listen.as_str() {
        "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
        other => other,
    };
    let url = format!("http://{host}:{}/healthcheck", config.port);
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()?;
    let bytes = client
        .get(&url)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let body: serde_json::Value = serde_json::from_slice(&bytes)?;
    anyhow::ensure!(body["status"] == true, "{url} answered {body}");
    Ok(())
}

/// Builds the server state for `config`, talking to DomainTools at `api_url`; `forced`
/// credentials (demo mode) replace any the requests carry.
fn build_state(
    config: &Config,
    api_url: String,
    forced: Option<DefaultCredentials>,
) -> anyhow::Result<AppState> {
    let client = build_client(config, api_url, forced.is_some(), "MISP")?;
    let registry = registry::Registry::new(registry::MODULES).map_err(anyhow::Error::msg)?;
    let default_credentials = forced.clone().unwrap_or_else(|| DefaultCredentials {
        username: config.username.clone(),
        api_key: config.api_key.as_ref().map(|k| k.expose().to_owned()),
    });
    let options = Options {
        default_credentials,
        demo: forced.is_some(),
        body_limit: config.body_limit,
        hover_budget: seconds(config.hover_budget, "--hover-budget")?,
        query_budget: seconds(config.query_budget, "--query-budget")?,
        metrics_endpoint: !config.disable_metrics,
        ..Options::default()
    };
    Ok(AppState::new(registry, client, options))
}

/// A positive number of seconds from a setting.
fn seconds(value: f64, setting: &str) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        value.is_finite() && value > 0.0 && value <= 3600.0,
        "{setting} must be a number of seconds between 0 and 3600, not {value}"
    );
    Ok(Duration::from_secs_f64(value))
}

/// The DomainTools client for `config`, reporting `partner` as `app_partner`.
fn build_client(
    config: &Config,
    api_url: String,
    demo: bool,
    partner: &str,
) -> anyhow::Result<Client> {
    let mut client_config = ClientConfig::new(partner, env!("CARGO_PKG_VERSION"));
    client_config.base_url = api_url;
    client_config.timeout = Duration::from_secs(config.upstream_timeout.max(1));
    client_config.proxy = match (&config.proxy, demo) {
        // The demo API is on loopback: never send it through a proxy.
        (_, true) => Proxy::None,
        (Some(url), false) => Proxy::Url(url.clone()),
        (None, false) => Proxy::FromEnvironment,
    };
    client_config.cache = CacheConfig {
        ttls: Ttls {
            iris: Duration::from_secs(config.cache_ttl_iris),
            whois: Duration::from_secs(config.cache_ttl_whois),
            detect: Duration::from_secs(config.cache_ttl_detect),
        },
        max_bytes: config.cache_size_mb.saturating_mul(1024 * 1024),
        redis_url: config.cache_url.as_ref().map(|url| url.expose().to_owned()),
    };
    client_config.enrich_batch_window = Duration::from_millis(config.enrich_batch_window_ms);
    client_config.learn_rate_limits = config.rate_limits == RateLimitMode::Learn;
    Client::new(client_config).context("DomainTools client")
}

/// Where the `stix` command and the connector send DomainTools calls: the configured API, or
/// in demo mode the built-in fake (kept running as long as this lives).
#[derive(Debug)]
struct Upstream {
    client: Client,
    credentials: Option<Credentials>,
    _demo_api: Option<fake_api::RunningFake>,
}

/// Starts the built-in fake DomainTools API for demo mode, and says so loudly.
async fn start_demo_api(credentials_note: &str) -> anyhow::Result<fake_api::RunningFake> {
    let running = fake_api::FakeApi::new()
        .spawn()
        .await
        .context("starting the built-in demo DomainTools API")?;
    tracing::warn!(
        demo_api = %running.base_url(),
        "DEMO MODE: answers come from bundled sample data (google.com, amazon.com, …) through the \
         built-in fake DomainTools API, not from DomainTools; {credentials_note}"
    );
    Ok(running)
}

async fn upstream(
    config: &Config,
    username: Option<String>,
    api_key: Option<String>,
) -> anyhow::Result<Upstream> {
    if config.demo {
        let running = start_demo_api("the demo account is used").await?;
        return Ok(Upstream {
            client: build_client(config, running.base_url(), true, "OpenCTI")?,
            credentials: Some(Credentials::new(
                fake_api::DEMO_USERNAME,
                fake_api::DEMO_API_KEY,
            )),
            _demo_api: Some(running),
        });
    }
    let credentials = match (username, api_key) {
        (Some(username), Some(api_key)) => Some(Credentials::new(username, api_key)),
        _ => None,
    };
    Ok(Upstream {
        client: build_client(config, config.api_url.clone(), false, "OpenCTI")?,
        credentials,
        _demo_api: None,
    })
}

/// `misp-domaintools stix <value>`: prints the enrichment of a domain name or an IPv4 address
/// as a STIX 2.1 bundle on stdout, and a one-line summary on stderr.
pub async fn stix_command(config: &Config, value: &str) -> anyhow::Result<()> {
    // stdout carries the bundle alone.
    telemetry::init_stderr(&config.log_level, config.log_format);
    let observable = stix::Observable::parse(value).map_err(anyhow::Error::msg)?;
    let upstream = upstream(
        config,
        config.username.clone(),
        config.api_key.as_ref().map(|k| k.expose().to_owned()),
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

/// `misp-domaintools opencti`: the OpenCTI connector, until Ctrl-C or SIGTERM.
pub async fn opencti_command(
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
        settings.api_key.as_ref().map(|k| k.expose().to_owned()),
    )
    .await?;
    let credentials = upstream.credentials.clone().context(
        "DomainTools credentials are needed: DOMAINTOOLS_API_USERNAME and DOMAINTOOLS_API_KEY \
         (config.yml: domaintools.api_username, domaintools.api_key), or --demo",
    )?;
    opencti::run(settings, upstream.client.clone(), credentials, shutdown).await
}
