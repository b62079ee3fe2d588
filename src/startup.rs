//! Start-up wiring shared by the commands: the DomainTools client and the server state built
//! from the settings, and where the `stix` and `opencti` commands send their calls.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use domaintools::{CacheConfig, Client, ClientConfig, Credentials, Proxy, Ttls};

use crate::config::{Config, RateLimitMode};
use crate::demo::{self, DemoApi};
use crate::http::body::ByteBudget;
use crate::http::connections::ConnectionLimits;
use crate::http::{AppState, MispModules, MispModulesConfig, Options, ReplyCacheConfig};
use crate::protocol::DefaultCredentials;
use crate::registry;

/// Builds the server state for `config`, talking to DomainTools at `api_url`; `forced`
/// credentials (demo mode) replace any the requests carry.
pub(crate) fn build_state(
    config: &Config,
    api_url: String,
    forced: Option<DefaultCredentials>,
) -> anyhow::Result<AppState> {
    let api_url_for_feeds = api_url.clone();
    let forced_key = forced.as_ref().and_then(|forced| forced.api_key.clone());
    let client = build_client(config, api_url, forced.is_some(), "MISP")?;
    let registry = registry::Registry::new(registry::MODULES).map_err(anyhow::Error::msg)?;
    let default_credentials = forced.clone().unwrap_or_else(|| DefaultCredentials {
        username: config.username.clone(),
        api_key: config.api_key.clone(),
    });
    let options = Options {
        default_credentials,
        demo: forced.is_some(),
        body_limit: config.body_limit,
        hover_budget: seconds(config.hover_budget, "--hover-budget")?,
        query_budget: seconds(config.query_budget, "--query-budget")?,
        metrics_endpoint: !config.disable_metrics,
        misp_modules: match &config.misp_modules_url {
            Some(url) => Some(Arc::new(
                MispModules::new(MispModulesConfig {
                    url: url.clone(),
                    budget: seconds(config.misp_modules_budget, "--misp-modules-budget")?,
                })
                .map_err(anyhow::Error::msg)?,
            )),
            None => None,
        },
        connections: ConnectionLimits {
            max_connections: config.max_connections as usize,
            header_read_timeout: seconds(config.header_read_timeout, "--header-read-timeout")?,
            idle_timeout: seconds(config.idle_timeout, "--idle-timeout")?,
            write_timeout: seconds(config.write_timeout, "--write-timeout")?,
        },
        body_read_timeout: seconds(config.body_read_timeout, "--body-read-timeout")?,
        request_buffer: ByteBudget::new(mib(config.request_buffer_mb)),
        reply_buffer: ByteBudget::new(mib(config.reply_buffer_mb)),
        module_runtime: Some(module_runtime()?),
        reply_cache: ReplyCacheConfig {
            ttl: Duration::from_secs(config.reply_cache_ttl),
            max_bytes: config.reply_cache_size_mb.saturating_mul(1024 * 1024),
        },
        feeds: feeds_service(config, &api_url_for_feeds, forced_key, forced.is_some())?,
        ..Options::default()
    };
    Ok(AppState::new(registry, client, options))
}

fn mib(n: u32) -> usize {
    (n as usize).saturating_mul(1024 * 1024)
}

/// The worker pool modules run on, built once and kept for the life of the process (a runtime
/// may not be dropped from async code).
fn module_runtime() -> anyhow::Result<tokio::runtime::Handle> {
    static MODULES: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    if let Some(runtime) = MODULES.get() {
        return Ok(runtime.handle().clone());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("modules")
        .enable_all()
        .build()
        .context("starting the module worker pool")?;
    Ok(MODULES.get_or_init(|| runtime).handle().clone())
}

/// A positive number of seconds from a setting.
fn seconds(value: f64, setting: &str) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        value.is_finite() && value > 0.0 && value <= 3600.0,
        "{setting} must be a number of seconds between 0 and 3600, not {value}"
    );
    Ok(Duration::from_secs_f64(value))
}

/// The text of `--ca-file`, when one is named.
fn ca_file_pem(config: &Config) -> anyhow::Result<Option<Vec<u8>>> {
    match &config.ca_file {
        Some(path) => {
            Ok(Some(std::fs::read(path).with_context(|| {
                format!("--ca-file: cannot read {}", path.display())
            })?))
        }
        None => Ok(None),
    }
}

/// The authorities of `--ca-file`, which every outbound TLS connection trusts besides the
/// built-in roots (DomainTools, its feeds, Redis, OpenCTI, RabbitMQ).
pub(crate) fn extra_roots(config: &Config) -> anyhow::Result<domaintools::ExtraRoots> {
    match ca_file_pem(config)? {
        Some(pem) => domaintools::ExtraRoots::from_pem(&pem).context("--ca-file"),
        None => Ok(domaintools::ExtraRoots::none()),
    }
}

/// The DomainTools client for `config`, reporting `partner` as `app_partner`.
pub(crate) fn build_client(
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
    client_config.extra_roots_pem = ca_file_pem(config)?;
    client_config.cache = CacheConfig {
        ttls: Ttls {
            iris: Duration::from_secs(config.cache_ttl_iris),
            classic: Duration::from_secs(config.cache_ttl_whois),
            detect: Duration::from_secs(config.cache_ttl_detect),
        },
        max_bytes: config.cache_size_mb.saturating_mul(1024 * 1024),
        redis_url: config.cache_url.clone(),
        redis_secret: config.cache_secret.clone(),
    };
    client_config.enrich_batch_window = Duration::from_millis(config.enrich_batch_window_ms);
    client_config.learn_rate_limits = config.rate_limits == RateLimitMode::Learn;
    Client::new(client_config).context("DomainTools client")
}

/// Where the `stix` command and the connector send DomainTools calls: the configured API, or
/// in demo mode the built-in fake (kept running as long as this lives).
#[derive(Debug)]
pub(crate) struct Upstream {
    pub(crate) client: Client,
    pub(crate) credentials: Option<Credentials>,
    /// The API's base URL (the demo's in demo mode), for the feed client.
    pub(crate) api_url: String,
    /// The API key alone (the feeds authenticate with `X-Api-Key`, no username).
    pub(crate) api_key: Option<crate::config::Secret>,
    _demo_api: Option<DemoApi>,
}

pub(crate) async fn upstream(
    config: &Config,
    username: Option<String>,
    api_key: Option<String>,
) -> anyhow::Result<Upstream> {
    if let Some(running) = demo::start(config, "the demo account is used").await? {
        let (username, api_key) = running.credentials();
        return Ok(Upstream {
            client: build_client(config, running.base_url(), true, "OpenCTI")?,
            credentials: Some(Credentials::new(username, api_key)),
            api_url: running.base_url(),
            api_key: Some(crate::config::Secret::from(api_key.to_owned())),
            _demo_api: Some(running),
        });
    }
    let key = api_key.clone().map(crate::config::Secret::from);
    let credentials = match (username, api_key) {
        (Some(username), Some(api_key)) => Some(Credentials::new(username, api_key)),
        _ => None,
    };
    Ok(Upstream {
        client: build_client(config, config.api_url.clone(), false, "OpenCTI")?,
        credentials,
        api_url: config.api_url.clone(),
        api_key: key,
        _demo_api: None,
    })
}

/// The feeds `--feeds` asks for, started; None without `--feeds`.
fn feeds_service(
    config: &Config,
    api_url: &str,
    forced_key: Option<crate::config::Secret>,
    demo: bool,
) -> anyhow::Result<Option<crate::feeds::FeedsService>> {
    use anyhow::Context as _;
    let Some(mut settings) = feeds_settings(config, true)? else {
        return Ok(None);
    };
    if demo {
        // Demo mode: the feeds come from the built-in fake on loopback, never via a proxy.
        settings.proxy = Proxy::None;
    }
    let api_key = forced_key
        .or_else(|| config.api_key.clone())
        .context("--feeds needs the DomainTools API key (--api-key / DOMAINTOOLS_API_KEY)")?;
    crate::feeds::FeedsService::start(settings, api_url, api_key).map(Some)
}

/// The feeds settings of the command line; None without `--feeds`. Serving them to MISP
/// (`serving`) needs the feeds token; the OpenCTI import polls without it.
pub(crate) fn feeds_settings(
    config: &Config,
    serving: bool,
) -> anyhow::Result<Option<crate::feeds::FeedsSettings>> {
    use anyhow::Context as _;
    let names: Vec<&str> = config
        .feeds
        .iter()
        .map(|name| name.trim())
        .filter(|name| !name.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(None);
    }
    let mut feeds = Vec::new();
    for name in names {
        let feed = domaintools::feeds::Feed::from_name(name)
            .with_context(|| format!("--feeds: unknown feed {name:?}"))?;
        if !feeds.contains(&feed) {
            feeds.push(feed);
        }
    }
    let token = match (&config.feeds_token, &config.feeds_token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --feeds-token-file {}", path.display()))?;
            Some(crate::config::Secret::from(text.trim().to_owned()))
        }
        (None, None) if serving => anyhow::bail!(
            "--feeds needs --feeds-token (or --feeds-token-file): the feeds carry licensed data"
        ),
        (None, None) => None,
    };
    use domaintools::ExposeSecret as _;
    anyhow::ensure!(
        token
            .as_ref()
            .is_none_or(|token| !token.expose_secret().is_empty()),
        "the feeds token is empty"
    );
    let mut minimums = Vec::new();
    for text in config
        .feeds_risk_min
        .iter()
        .map(|text| text.trim())
        .filter(|t| !t.is_empty())
    {
        let parsed = text.split_once('=').and_then(|(name, value)| {
            let score = domaintools::feeds::Score::from_name(name.trim())?;
            let value = value
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|v| (1..=99).contains(v))?;
            Some((score, value))
        });
        minimums.push(parsed.with_context(|| {
            format!(
                "--feeds-risk-min: {text:?} is not score=1..99 (overall, malware, phishing, spam, proximity)"
            )
        })?);
    }
    let domains: Vec<String> = config
        .feeds_domains
        .iter()
        .map(|pattern| pattern.trim().to_owned())
        .filter(|pattern| !pattern.is_empty())
        .collect();
    for pattern in &domains {
        let inner = pattern.trim_start_matches('*').trim_end_matches('*');
        anyhow::ensure!(
            !inner.contains('*') && !inner.is_empty(),
            "--feeds-domains: {pattern:?} may use * only as prefix or suffix"
        );
    }
    let settings = crate::feeds::FeedsSettings {
        roots: extra_roots(config)?,
        proxy: match &config.proxy {
            Some(url) => Proxy::Url(url.clone()),
            None => Proxy::FromEnvironment,
        },
        lock_url: config.feeds_lock_url.clone(),
        domains,
        minimums,
        feeds,
        dir: config.feeds_dir.clone(),
        token,
        poll_interval: Duration::from_secs(config.feeds_poll_interval),
        store: crate::feeds::store::StoreSettings {
            bucket: Duration::from_secs(config.feeds_bucket),
            grace: Duration::from_secs(config.feeds_grace),
            retention_days: config.feeds_retention_days,
            to_ids: config.feeds_to_ids,
        },
    };
    Ok(Some(settings))
}
