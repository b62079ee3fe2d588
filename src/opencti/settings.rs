//! The connector's settings: the command line and environment (through clap, the only reader
//! of environment variables) first, then `config.yml` with the Python connector's keys, then
//! the defaults. Everything is checked here, once, before anything connects: a wrong TLP name
//! or a missing token stops the start with a clear message instead of failing each work.

use domaintools::ExposeSecret;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml_ng::Value as Yaml;

use super::graphql::requests::ConnectorType;
use super::graphql::BrokerConnection;
use crate::config::{Config, OpenctiArgs, Secret};
use crate::stix::{EnrichSettings, IrisProduct, ObservableKind, Tlp};

/// pycti's default callback port.
pub const DEFAULT_CALLBACK_PORT: u16 = 7070;
/// pycti's default callback path.
pub const DEFAULT_CALLBACK_PATH: &str = "/api/callback";
/// How often pycti pings the platform; it marks a connector inactive after 5 minutes.
pub const PING_INTERVAL: Duration = Duration::from_secs(40);
/// How often the feeds import runs unless told otherwise: a few times per hour, so a bucket
/// sealed at the top of the hour (plus its grace) reaches OpenCTI within minutes.
pub const DEFAULT_DURATION_PERIOD: Duration = Duration::from_secs(300);
/// The file read when no other is named, like the Python connector's.
const DEFAULT_CONFIG_FILE: &str = "config.yml";

/// Everything the connector mode needs, resolved.
#[derive(Debug, Clone)]
pub struct ConnectorSettings {
    /// Enrichment on request, or the scheduled import of the feeds.
    pub kind: ConnectorType,
    /// Import mode: time between two runs.
    pub duration_period: Duration,
    /// Import mode: the feeds imported (their sealed buckets under `--feeds-dir`).
    pub feeds: Vec<domaintools::feeds::Feed>,
    /// Base URL of the platform (no trailing slash); GraphQL is at `<url>/graphql`.
    pub opencti_url: String,
    /// The connector user's token: sent to the platform, expected on callbacks.
    pub opencti_token: Secret,
    /// The connector's id (a UUID).
    pub connector_id: String,
    /// Its display name.
    pub name: String,
    /// Entity types it enriches, as OpenCTI names them.
    pub scope: Vec<String>,
    /// Enrich new observables without being asked.
    pub auto: bool,
    /// Log filter for this mode, when set.
    pub log_level: Option<String>,
    /// Most restrictive TLP sent to DomainTools.
    pub max_tlp: Tlp,
    /// Marking, IP domain limit and confidence of the enrichment.
    pub enrich: EnrichSettings,
    /// DomainTools API username.
    pub username: Option<String>,
    /// DomainTools API key.
    pub api_key: Option<Secret>,
    /// Base URL the worker posts to; `None`: `http://127.0.0.1:<bound port>`.
    pub callback_uri: Option<String>,
    /// Path of the callback, starting with `/`.
    pub callback_path: String,
    /// Address the callback listens on.
    pub listen: String,
    /// Port the callback listens on (0: any free port, for tests).
    pub callback_port: u16,
    /// Interval between pings.
    pub ping_interval: Duration,
    /// Enrichments processed at the same time.
    pub concurrency: usize,
    /// How work arrives.
    pub listen_protocol: ListenProtocol,
    /// How bundles go back.
    pub queue_protocol: QueueProtocol,
    /// pycti's `MQ_*` overrides of the broker registration hands out.
    pub mq: MqOverrides,
    /// Authorities the platform's and the broker's TLS may chain to besides the built-in
    /// roots (`--ca-file`; pycti would read `REQUESTS_CA_BUNDLE` and `MQ_USE_SSL_CA`).
    pub roots: domaintools::ExtraRoots,
}

/// `CONNECTOR_LISTEN_PROTOCOL`, spelled as pycti spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenProtocol {
    /// The listen queue on RabbitMQ (pycti's default).
    Amqp,
    /// The callback the platform's worker posts to.
    Api,
}

impl std::fmt::Display for ListenProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ListenProtocol::Amqp => "AMQP",
            ListenProtocol::Api => "API",
        })
    }
}

/// `CONNECTOR_QUEUE_PROTOCOL`, spelled as pycti spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueProtocol {
    /// Split bundles on the push queue (pycti's default).
    Amqp,
    /// `stixBundlePush`.
    Api,
}

impl std::fmt::Display for QueueProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QueueProtocol::Amqp => "amqp",
            QueueProtocol::Api => "api",
        })
    }
}

/// pycti's `MQ_HOST`, `MQ_PORT`, `MQ_VHOST`, `MQ_USE_SSL`, `MQ_USER`, `MQ_PASS`: what is set
/// replaces what registration returned (a platform behind NAT hands out a broker address the
/// connector cannot reach).
#[derive(Debug, Clone, Default)]
pub struct MqOverrides {
    /// Host.
    pub host: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// Virtual host.
    pub vhost: Option<String>,
    /// TLS.
    pub use_ssl: Option<bool>,
    /// User.
    pub user: Option<String>,
    /// Password.
    pub pass: Option<Secret>,
}

impl MqOverrides {
    /// `registered` with the overrides applied.
    pub fn apply(&self, registered: &BrokerConnection) -> BrokerConnection {
        let mut connection = registered.clone();
        if let Some(host) = &self.host {
            connection.host = host.clone();
        }
        if let Some(port) = self.port {
            connection.port = port;
        }
        if let Some(vhost) = &self.vhost {
            connection.vhost = vhost.clone();
        }
        if let Some(use_ssl) = self.use_ssl {
            connection.use_ssl = use_ssl;
        }
        if let Some(user) = &self.user {
            connection.user = user.clone();
        }
        if let Some(pass) = &self.pass {
            connection.pass = pass.clone();
        }
        connection
    }
}

impl ConnectorSettings {
    /// Resolves the settings, reading `args.config_file` (or `./config.yml` when it exists).
    pub fn resolve(config: &Config, args: &OpenctiArgs) -> Result<Self, String> {
        let (path, required) = match &args.config_file {
            Some(path) => (path.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        let yaml = read_config_file(&path, required)?;
        Self::from_parts(config, args, yaml.as_deref())
    }

    /// Resolves the settings from the parsed command line and the text of a config.yml.
    pub fn from_parts(
        config: &Config,
        args: &OpenctiArgs,
        yaml_text: Option<&str>,
    ) -> Result<Self, String> {
        let yaml = match yaml_text {
            Some(text) => serde_yaml_ng::from_str::<Yaml>(text)
                .map_err(|e| format!("config.yml is not valid YAML: {e}"))?,
            None => Yaml::Null,
        };
        let file = |path: &[&str]| scalar(&yaml, path);

        let opencti_url = args
            .opencti_url
            .clone()
            .or_else(|| file(&["opencti", "url"]))
            .ok_or("OPENCTI_URL (config.yml: opencti.url) is required")?;
        let opencti_url = check_url(&opencti_url, "OPENCTI_URL")?;
        let opencti_token = args
            .opencti_token
            .clone()
            .or_else(|| file(&["opencti", "token"]).map(Secret::from))
            .filter(|token| !token.expose_secret().trim().is_empty())
            .ok_or("OPENCTI_TOKEN (config.yml: opencti.token) is required")?;
        let connector_id = args
            .connector_id
            .clone()
            .or_else(|| file(&["connector", "id"]))
            .ok_or("CONNECTOR_ID (config.yml: connector.id) is required: a UUIDv4 of your own")?;
        if !is_uuid(&connector_id) {
            return Err(format!("CONNECTOR_ID {connector_id:?} is not a UUID"));
        }
        let kind = match args
            .connector_type
            .clone()
            .or_else(|| file(&["connector", "type"]))
        {
            None => ConnectorType::InternalEnrichment,
            Some(kind) if kind.trim().eq_ignore_ascii_case("INTERNAL_ENRICHMENT") => {
                ConnectorType::InternalEnrichment
            }
            Some(kind) if kind.trim().eq_ignore_ascii_case("EXTERNAL_IMPORT") => {
                ConnectorType::ExternalImport
            }
            Some(kind) => {
                return Err(format!(
                    "CONNECTOR_TYPE is {kind:?}; this connector is INTERNAL_ENRICHMENT (the \
                     enrichment) or EXTERNAL_IMPORT (the feeds)"
                ))
            }
        };
        let importing = kind == ConnectorType::ExternalImport;
        let duration_period = match args
            .connector_duration_period
            .clone()
            .or_else(|| file(&["connector", "duration_period"]))
        {
            Some(text) => parse_duration(&text).ok_or_else(|| {
                format!(
                    "CONNECTOR_DURATION_PERIOD {text:?} is not an ISO 8601 duration of at least \
                     a second (PT5M, PT1H, P1D) nor a number of seconds"
                )
            })?,
            None => DEFAULT_DURATION_PERIOD,
        };
        let feed_names: Vec<String> = if config.feeds.iter().any(|name| !name.trim().is_empty()) {
            config.feeds.clone()
        } else {
            list_or_scalar(&yaml, &["domaintools", "feed_type"])
                .map(|text| text.split(',').map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let mut feeds = Vec::new();
        for name in feed_names
            .iter()
            .map(|name| name.trim())
            .filter(|name| !name.is_empty())
        {
            let feed = domaintools::feeds::Feed::from_name(name)
                .ok_or_else(|| format!("MISP_DOMAINTOOLS_FEEDS: unknown feed {name:?}"))?;
            if !feeds.contains(&feed) {
                feeds.push(feed);
            }
        }
        if importing && feeds.is_empty() {
            return Err("CONNECTOR_TYPE=EXTERNAL_IMPORT imports the feeds named in \
                 MISP_DOMAINTOOLS_FEEDS (config.yml: domaintools.feed_type), e.g. nod,domainhotlist"
                .to_owned());
        }
        let name = args
            .connector_name
            .clone()
            .or_else(|| file(&["connector", "name"]))
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| "DomainTools".to_owned());
        let product = args
            .domaintools_product
            .clone()
            .or_else(|| file(&["domaintools", "product"]))
            .map(|text| text.parse::<IrisProduct>())
            .transpose()
            .map_err(|e| format!("DOMAINTOOLS_PRODUCT {e}"))?
            .unwrap_or_default();
        let scope_text = args
            .connector_scope
            .clone()
            .or_else(|| list_or_scalar(&yaml, &["connector", "scope"]))
            .unwrap_or_else(|| match (importing, product) {
                // What the import creates; the platform only shows it.
                (true, _) => "Domain-Name,Indicator".to_owned(),
                (false, IrisProduct::Investigate) => "Domain-Name,IPv4-Addr".to_owned(),
                (false, IrisProduct::Enrich) => "Domain-Name".to_owned(),
            });
        let scope = if importing {
            import_scope(&scope_text)?
        } else {
            parse_scope(&scope_text)?
        };
        if !importing
            && product == IrisProduct::Enrich
            && scope.iter().any(|kind| kind == "IPv4-Addr")
        {
            return Err(
                "CONNECTOR_SCOPE has IPv4-Addr, but Iris Enrich (DOMAINTOOLS_PRODUCT=enrich) \
                 looks up domains only: set CONNECTOR_SCOPE=Domain-Name"
                    .to_owned(),
            );
        }
        let auto = match args.connector_auto {
            Some(auto) => auto,
            None => match file(&["connector", "auto"]) {
                Some(text) => parse_bool(&text)
                    .ok_or_else(|| format!("connector.auto {text:?} is not true or false"))?,
                None => false,
            },
        };
        let log_level = args
            .connector_log_level
            .clone()
            .or_else(|| file(&["connector", "log_level"]))
            .map(|level| log_filter(&level))
            .transpose()?;
        let confidence = match args.connector_confidence_level {
            Some(level) => level,
            None => match file(&["connector", "confidence_level"]) {
                Some(text) => text
                    .parse::<u8>()
                    .ok()
                    .filter(|level| *level <= 100)
                    .ok_or_else(|| format!("connector.confidence_level {text:?} is not 0-100"))?,
                None => 80,
            },
        };
        let max_tlp = match args.max_tlp {
            Some(tlp) => tlp,
            None => file(&["domaintools", "max_tlp"])
                .map(|text| text.parse::<Tlp>())
                .transpose()
                .map_err(|e| format!("domaintools.max_tlp: {e}"))?
                .unwrap_or(Tlp::Amber),
        };
        // The feeds are marked as OpenCTI's DomainTools feeds connector marks them by default
        // (TLP:CLEAR, its `tlp_level`), the enrichment as before (TLP:AMBER).
        let marking = match config.marking {
            Some(tlp) => tlp,
            None => file(&["domaintools", "marking"])
                .or_else(|| file(&["domaintools", "tlp_level"]))
                .map(|text| text.parse::<Tlp>())
                .transpose()
                .map_err(|e| format!("domaintools.marking: {e}"))?
                .unwrap_or(if importing { Tlp::Clear } else { Tlp::Amber }),
        };
        let ip_domain_limit = match config.ip_domain_limit {
            Some(limit) => limit as usize,
            None => match file(&["domaintools", "ip_domain_limit"]) {
                Some(text) => text
                    .parse::<usize>()
                    .ok()
                    .filter(|limit| (1..=10_000).contains(limit))
                    .ok_or_else(|| {
                        format!("domaintools.ip_domain_limit {text:?} is not 1-10000")
                    })?,
                None => 100,
            },
        };
        let username = args
            .api_username
            .clone()
            .or_else(|| file(&["domaintools", "api_username"]))
            .or_else(|| config.username.clone())
            .filter(|name| !name.trim().is_empty());
        let api_key = config
            .api_key
            .clone()
            .or_else(|| file(&["domaintools", "api_key"]).map(Secret::from))
            .filter(|key| !key.expose_secret().trim().is_empty());
        let callback_uri = args
            .callback_uri
            .clone()
            .or_else(|| file(&["connector", "listen_protocol_api_uri"]))
            .map(|uri| check_url(&uri, "CONNECTOR_LISTEN_PROTOCOL_API_URI"))
            .transpose()?;
        let callback_path = args
            .callback_path
            .clone()
            .or_else(|| file(&["connector", "listen_protocol_api_path"]))
            .unwrap_or_else(|| DEFAULT_CALLBACK_PATH.to_owned());
        // Plain path characters only, and not the health check's path.
        let plain = callback_path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c));
        if !callback_path.starts_with('/') || !plain || callback_path == "/healthcheck" {
            return Err(format!(
                "CONNECTOR_LISTEN_PROTOCOL_API_PATH {callback_path:?} must be a path like \
                 /api/callback (letters, digits, / - _ .; not /healthcheck)"
            ));
        }
        let callback_port = match args.callback_port {
            Some(port) => port,
            None => match file(&["connector", "listen_protocol_api_port"]) {
                Some(text) => text.parse::<u16>().map_err(|_| {
                    format!("connector.listen_protocol_api_port {text:?} is not a port")
                })?,
                None => DEFAULT_CALLBACK_PORT,
            },
        };
        let listen_protocol = match args
            .listen_protocol
            .clone()
            .or_else(|| file(&["connector", "listen_protocol"]))
        {
            None => ListenProtocol::Amqp,
            Some(text) => match text.trim().to_ascii_uppercase().as_str() {
                "AMQP" => ListenProtocol::Amqp,
                "API" => ListenProtocol::Api,
                _ => {
                    return Err(format!(
                        "CONNECTOR_LISTEN_PROTOCOL {text:?} is not AMQP or API"
                    ))
                }
            },
        };
        let queue_protocol = match args
            .queue_protocol
            .clone()
            .or_else(|| file(&["connector", "queue_protocol"]))
        {
            None => QueueProtocol::Amqp,
            Some(text) => match text.trim().to_ascii_lowercase().as_str() {
                "amqp" => QueueProtocol::Amqp,
                "api" => QueueProtocol::Api,
                _ => {
                    return Err(format!(
                        "CONNECTOR_QUEUE_PROTOCOL {text:?} is not amqp or api"
                    ))
                }
            },
        };
        let mq_port = match args.mq_port {
            Some(port) => Some(port),
            None => file(&["mq", "port"])
                .map(|text| {
                    text.parse::<u16>()
                        .map_err(|_| format!("mq.port {text:?} is not a port"))
                })
                .transpose()?,
        };
        let mq_use_ssl = match args.mq_use_ssl {
            Some(use_ssl) => Some(use_ssl),
            None => file(&["mq", "use_ssl"])
                .map(|text| {
                    parse_bool(&text)
                        .ok_or_else(|| format!("mq.use_ssl {text:?} is not true or false"))
                })
                .transpose()?,
        };
        let mq = MqOverrides {
            host: args.mq_host.clone().or_else(|| file(&["mq", "host"])),
            port: mq_port,
            vhost: args.mq_vhost.clone().or_else(|| file(&["mq", "vhost"])),
            use_ssl: mq_use_ssl,
            user: args.mq_user.clone().or_else(|| file(&["mq", "user"])),
            pass: args
                .mq_pass
                .clone()
                .or_else(|| file(&["mq", "pass"]).map(Secret::from)),
        };
        Ok(Self {
            kind,
            duration_period,
            feeds,
            opencti_url,
            opencti_token,
            connector_id,
            name,
            scope,
            auto,
            log_level,
            max_tlp,
            enrich: EnrichSettings {
                marking,
                ip_domain_limit,
                confidence: Some(confidence),
                product,
            },
            username,
            api_key,
            callback_uri,
            callback_path,
            listen: config.listen.clone(),
            callback_port,
            ping_interval: PING_INTERVAL,
            concurrency: 2,
            listen_protocol,
            queue_protocol,
            mq,
            roots: crate::startup::extra_roots(config).map_err(|e| format!("{e:#}"))?,
        })
    }
}

/// The file's text; a missing default file is no error, a missing named one is.
fn read_config_file(path: &Path, required: bool) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// A scalar at `path` as text (YAML numbers and booleans included); null and empty are absent.
fn scalar(yaml: &Yaml, path: &[&str]) -> Option<String> {
    let mut node = yaml;
    for key in path {
        node = node.get(key)?;
    }
    let text = match node {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!text.trim().is_empty()).then_some(text)
}

/// A scalar, or a YAML list joined with commas (scope may be written either way).
fn list_or_scalar(yaml: &Yaml, path: &[&str]) -> Option<String> {
    let mut node = yaml;
    for key in path {
        node = node.get(key)?;
    }
    match node {
        Yaml::Sequence(items) => Some(
            items
                .iter()
                .filter_map(Yaml::as_str)
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => scalar(yaml, path),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// The scope, in OpenCTI's spelling; only the two types this connector enriches.
fn parse_scope(text: &str) -> Result<Vec<String>, String> {
    let mut scope = Vec::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let kind = ObservableKind::from_opencti_type(item).ok_or_else(|| {
            format!(
                "CONNECTOR_SCOPE: {item:?} is not enriched by DomainTools (Domain-Name, IPv4-Addr)"
            )
        })?;
        let name = kind.opencti_type().to_owned();
        if !scope.contains(&name) {
            scope.push(name);
        }
    }
    if scope.is_empty() {
        return Err("CONNECTOR_SCOPE is empty".to_owned());
    }
    Ok(scope)
}

/// The import's scope: any entity type names, shown by the platform, not checked.
fn import_scope(text: &str) -> Result<Vec<String>, String> {
    let mut scope: Vec<String> = Vec::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        if !item
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            return Err(format!(
                "CONNECTOR_SCOPE: {item:?} is not an entity type name"
            ));
        }
        if !scope.iter().any(|known| known == item) {
            scope.push(item.to_owned());
        }
    }
    if scope.is_empty() {
        return Err("CONNECTOR_SCOPE is empty".to_owned());
    }
    Ok(scope)
}

/// An ISO 8601 duration as pycti's connectors take it (`PT5M`, `PT1H30M`, `P1D`, `PT45S`;
/// no years or months, whose length varies), or a plain number of seconds; at least a second.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim().to_ascii_uppercase();
    if let Ok(seconds) = text.parse::<u64>() {
        return (seconds >= 1).then(|| Duration::from_secs(seconds));
    }
    let rest = text.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((days, time)) => (days, Some(time)),
        None => (rest, None),
    };
    let mut total: u64 = 0;
    let mut any = false;
    let mut add = |part: &str, units: &[(char, u64)]| -> Option<()> {
        let mut number = String::new();
        let mut allowed = units.iter();
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            // Units in order, each once.
            let (_, factor) = allowed.by_ref().find(|(unit, _)| *unit == c)?;
            let value: u64 = number.parse().ok()?;
            total = total.checked_add(value.checked_mul(*factor)?)?;
            number.clear();
            any = true;
        }
        number.is_empty().then_some(())
    };
    add(days, &[('W', 604_800), ('D', 86_400)])?;
    if let Some(time) = time {
        if time.is_empty() {
            return None;
        }
        add(time, &[('H', 3_600), ('M', 60), ('S', 1)])?;
    }
    (any && total >= 1).then(|| Duration::from_secs(total))
}

/// pycti's log level names as a tracing filter.
fn log_filter(level: &str) -> Result<String, String> {
    match level.trim().to_ascii_lowercase().as_str() {
        "debug" => Ok("debug".to_owned()),
        "info" => Ok("info".to_owned()),
        "warn" | "warning" => Ok("warn".to_owned()),
        "error" => Ok("error".to_owned()),
        "trace" => Ok("trace".to_owned()),
        other => Err(format!(
            "CONNECTOR_LOG_LEVEL {other:?} is not debug, info, warn or error"
        )),
    }
}

/// An http(s) URL without a trailing slash; the error names the setting, never its value
/// (it could hold credentials).
fn check_url(text: &str, setting: &str) -> Result<String, String> {
    let trimmed = text.trim().trim_end_matches('/');
    match url::Url::parse(trimmed) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(trimmed.to_owned())
        }
        _ => Err(format!("{setting} is not an http:// or https:// URL")),
    }
}

/// 8-4-4-4-12 hexadecimal digits.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Command;
    use clap::Parser;

    const ID: &str = "5b6e3d8a-4a0c-4f1e-9c37-2f5f3e0c9a11";

    fn parse(args: &[&str]) -> (Config, OpenctiArgs) {
        let config = Config::try_parse_from(args).unwrap();
        match config.command.clone() {
            Some(Command::Opencti(opencti)) => (config, *opencti),
            other => panic!("{other:?}"),
        }
    }

    const YAML: &str = r#"
opencti:
  url: 'http://opencti:8080/'
  token: 'yaml-token'
connector:
  id: '5b6e3d8a-4a0c-4f1e-9c37-2f5f3e0c9a11'
  type: 'INTERNAL_ENRICHMENT'
  name: 'DomainTools (yaml)'
  scope: 'Domain-Name,Ipv4-Addr'
  auto: true
  log_level: 'warning'
  confidence_level: 60
  listen_protocol_api_uri: 'http://connector-domaintools:7070'
  listen_protocol_api_port: 7071
domaintools:
  api_username: 'yaml-user'
  api_key: 'yaml-key'
  max_tlp: 'TLP:GREEN'
  ip_domain_limit: 25
"#;

    #[test]
    fn yaml_fills_what_the_command_line_leaves_out() {
        let (config, args) = parse(&["x", "opencti", "--connector-name", "CLI name"]);
        let settings = ConnectorSettings::from_parts(&config, &args, Some(YAML)).unwrap();
        assert_eq!(settings.opencti_url, "http://opencti:8080");
        assert_eq!(settings.opencti_token.expose_secret(), "yaml-token");
        assert_eq!(settings.connector_id, ID);
        assert_eq!(settings.name, "CLI name", "the command line wins");
        assert_eq!(settings.scope, ["Domain-Name", "IPv4-Addr"]);
        assert!(settings.auto);
        assert_eq!(settings.log_level.as_deref(), Some("warn"));
        assert_eq!(settings.enrich.confidence, Some(60));
        assert_eq!(settings.enrich.ip_domain_limit, 25);
        assert_eq!(settings.enrich.marking, Tlp::Amber);
        assert_eq!(settings.max_tlp, Tlp::Green);
        assert_eq!(settings.username.as_deref(), Some("yaml-user"));
        assert_eq!(
            settings.api_key.as_ref().map(ExposeSecret::expose_secret),
            Some("yaml-key")
        );
        assert_eq!(
            settings.callback_uri.as_deref(),
            Some("http://connector-domaintools:7070")
        );
        assert_eq!(settings.callback_port, 7071);
        assert_eq!(settings.callback_path, "/api/callback");
        let debug = format!("{settings:?}");
        assert!(
            !debug.contains("yaml-token") && !debug.contains("yaml-key"),
            "{debug}"
        );
    }

    #[test]
    fn defaults_and_required_settings() {
        let (config, args) = parse(&[
            "x",
            "opencti",
            "--opencti-url",
            "https://cti.example",
            "--opencti-token",
            "t",
            "--connector-id",
            ID,
        ]);
        let settings = ConnectorSettings::from_parts(&config, &args, None).unwrap();
        assert_eq!(settings.name, "DomainTools");
        assert_eq!(settings.scope, ["Domain-Name", "IPv4-Addr"]);
        assert!(!settings.auto);
        assert_eq!(settings.max_tlp, Tlp::Amber);
        assert_eq!(settings.enrich.confidence, Some(80));
        assert_eq!(settings.enrich.ip_domain_limit, 100);
        assert_eq!(settings.callback_port, 7070);
        assert_eq!(settings.callback_uri, None);
        assert_eq!(settings.ping_interval, Duration::from_secs(40));

        let (config, args) = parse(&["x", "opencti"]);
        let error = ConnectorSettings::from_parts(&config, &args, None).unwrap_err();
        assert!(error.contains("OPENCTI_URL"), "{error}");
    }

    #[test]
    fn wrong_values_stop_the_start() {
        let base = [
            "x",
            "opencti",
            "--opencti-url",
            "http://o",
            "--opencti-token",
            "t",
        ];
        for (extra, expected) in [
            (vec!["--connector-id", "not-a-uuid"], "not a UUID"),
            (
                vec!["--connector-id", ID, "--connector-scope", "Url"],
                "CONNECTOR_SCOPE",
            ),
            (
                vec!["--connector-id", ID, "--connector-type", "STREAM"],
                "CONNECTOR_TYPE",
            ),
            (
                vec!["--connector-id", ID, "--connector-type", "EXTERNAL_IMPORT"],
                "MISP_DOMAINTOOLS_FEEDS",
            ),
            (
                vec![
                    "--connector-id",
                    ID,
                    "--connector-type",
                    "EXTERNAL_IMPORT",
                    "--connector-duration-period",
                    "PT0S",
                ],
                "CONNECTOR_DURATION_PERIOD",
            ),
            (
                vec!["--connector-id", ID, "--connector-log-level", "loud"],
                "CONNECTOR_LOG_LEVEL",
            ),
            (vec!["--connector-id", ID, "--callback-path", "api"], "PATH"),
            (
                vec!["--connector-id", ID, "--listen-protocol", "HTTP"],
                "CONNECTOR_LISTEN_PROTOCOL",
            ),
            (
                vec!["--connector-id", ID, "--queue-protocol", "kafka"],
                "CONNECTOR_QUEUE_PROTOCOL",
            ),
            (
                vec!["--connector-id", ID, "--domaintools-product", "hover"],
                "DOMAINTOOLS_PRODUCT",
            ),
            (
                vec![
                    "--connector-id",
                    ID,
                    "--domaintools-product",
                    "enrich",
                    "--connector-scope",
                    "Domain-Name,IPv4-Addr",
                ],
                "looks up domains only",
            ),
        ] {
            let mut args: Vec<&str> = base.to_vec();
            args.extend(extra);
            let (config, opencti) = parse(&args);
            let error = ConnectorSettings::from_parts(&config, &opencti, None).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
        // clap refuses an unknown TLP before anything else.
        assert!(Config::try_parse_from(["x", "opencti", "--max-tlp", "TLP:BLUE"]).is_err());
        let (config, args) = parse(&["x", "opencti", "--connector-id", ID]);
        let error = ConnectorSettings::from_parts(
            &config,
            &args,
            Some("opencti: {url: 'http://o', token: 't'}\ndomaintools: {max_tlp: 'TLP:BLUE'}"),
        )
        .unwrap_err();
        assert!(error.contains("max_tlp"), "{error}");
        let error =
            ConnectorSettings::from_parts(&config, &args, Some("opencti: [unclosed")).unwrap_err();
        assert!(error.contains("YAML"), "{error}");
        let error = ConnectorSettings::from_parts(
            &config,
            &args,
            Some("opencti: {url: 'ftp://user:hunter2@o', token: 't'}"),
        )
        .unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn durations_read_as_pycti_connectors_write_them() {
        let secs = |s: u64| Some(Duration::from_secs(s));
        assert_eq!(parse_duration("PT5M"), secs(300));
        assert_eq!(parse_duration("pt1h30m"), secs(5400));
        assert_eq!(parse_duration("P1D"), secs(86_400));
        assert_eq!(parse_duration("P1DT1S"), secs(86_401));
        assert_eq!(parse_duration("PT45S"), secs(45));
        assert_eq!(parse_duration("600"), secs(600));
        for bad in [
            "", "P", "PT", "PT0S", "0", "PT5X", "PT5", "PT1M1H", "P1M", "5m", "PT-1M",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_feeds_import_is_an_external_import() {
        let (config, args) = parse(&[
            "x",
            "--feeds",
            "nod,domainhotlist",
            "opencti",
            "--connector-id",
            ID,
            "--connector-type",
            "external_import",
        ]);
        let yaml = "opencti: {url: 'http://o', token: 't'}";
        let settings = ConnectorSettings::from_parts(&config, &args, Some(yaml)).unwrap();
        assert_eq!(settings.kind, ConnectorType::ExternalImport);
        assert_eq!(
            settings.feeds,
            [
                domaintools::feeds::Feed::Nod,
                domaintools::feeds::Feed::DomainHotlist
            ]
        );
        assert_eq!(settings.scope, ["Domain-Name", "Indicator"]);
        assert_eq!(
            settings.enrich.marking,
            Tlp::Clear,
            "the feeds connector's default"
        );
        assert_eq!(settings.duration_period, DEFAULT_DURATION_PERIOD);

        // The Python connector's keys.
        let (config, args) = parse(&["x", "opencti", "--connector-id", ID]);
        let yaml = "opencti: {url: 'http://o', token: 't'}\nconnector: {type: EXTERNAL_IMPORT, \
                    duration_period: PT1H, scope: stix2}\ndomaintools: {feed_type: noh, \
                    tlp_level: amber+strict}";
        let settings = ConnectorSettings::from_parts(&config, &args, Some(yaml)).unwrap();
        assert_eq!(settings.feeds, [domaintools::feeds::Feed::Noh]);
        assert_eq!(settings.scope, ["stix2"]);
        assert_eq!(settings.enrich.marking, Tlp::AmberStrict);
        assert_eq!(settings.duration_period, Duration::from_secs(3600));
    }

    #[test]
    fn a_named_config_file_must_exist() {
        let (config, mut args) = parse(&["x", "opencti"]);
        args.config_file = Some(PathBuf::from("/nonexistent/config.yml"));
        let error = ConnectorSettings::resolve(&config, &args).unwrap_err();
        assert!(error.contains("/nonexistent/config.yml"), "{error}");
    }

    #[test]
    fn protocols_broker_overrides_and_product() {
        let (config, args) = parse(&["x", "opencti", "--connector-id", ID]);
        let yaml = "opencti: {url: 'http://o', token: 't'}";
        let settings = ConnectorSettings::from_parts(&config, &args, Some(yaml)).unwrap();
        // pycti's defaults.
        assert_eq!(settings.listen_protocol, ListenProtocol::Amqp);
        assert_eq!(settings.queue_protocol, QueueProtocol::Amqp);
        assert_eq!(settings.enrich.product, IrisProduct::Investigate);
        assert_eq!(settings.scope, ["Domain-Name", "IPv4-Addr"]);
        let registered = BrokerConnection {
            host: "rabbitmq".to_owned(),
            vhost: "/".to_owned(),
            use_ssl: false,
            port: 5672,
            user: "opencti".to_owned(),
            pass: Secret::from("from-platform".to_owned()),
        };
        let kept = settings.mq.apply(&registered);
        assert_eq!((kept.host.as_str(), kept.port), ("rabbitmq", 5672));

        let (config, args) = parse(&[
            "x",
            "opencti",
            "--connector-id",
            ID,
            "--listen-protocol",
            "api",
            "--queue-protocol",
            "API",
            "--mq-host",
            "broker.example",
            "--mq-port",
            "5671",
            "--mq-use-ssl",
            "true",
            "--mq-pass",
            "mq-secret",
            "--domaintools-product",
            "enrich",
        ]);
        let yaml = "opencti: {url: 'http://o', token: 't'}\nmq: {vhost: 'octi', user: 'connector'}";
        let settings = ConnectorSettings::from_parts(&config, &args, Some(yaml)).unwrap();
        assert_eq!(settings.listen_protocol, ListenProtocol::Api);
        assert_eq!(settings.queue_protocol, QueueProtocol::Api);
        assert_eq!(settings.enrich.product, IrisProduct::Enrich);
        assert_eq!(settings.scope, ["Domain-Name"], "Iris Enrich: domains only");
        let connection = settings.mq.apply(&registered);
        assert_eq!(connection.host, "broker.example");
        assert_eq!(connection.port, 5671);
        assert!(connection.use_ssl);
        assert_eq!(connection.vhost, "octi");
        assert_eq!(connection.user, "connector");
        assert_eq!(connection.pass.expose_secret(), "mq-secret");
        let debug = format!("{settings:?} {connection:?}");
        assert!(
            !debug.contains("mq-secret") && !debug.contains("from-platform"),
            "{debug}"
        );
    }
}
