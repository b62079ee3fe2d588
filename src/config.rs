//! The server's settings: one clap struct, every flag also readable from the environment.
//! Nothing else in the program reads environment variables.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use domaintools::ExposeSecret as _;

use crate::stix::Tlp;
use domaintools::DEFAULT_BASE_URL;

/// A secret setting (API keys, tokens, URLs that may carry a password): usable, never
/// printed. The one secret type of the project, `secrecy`'s.
pub use domaintools::SecretString as Secret;

/// clap's parser for [`Secret`] settings.
fn secret(value: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::from(value))
}

/// Reads the secret in `file` into `value`: one of the two, never both. A trailing line end
/// (what `echo` and editors leave) is not part of the secret. Errors name the file, never
/// what it holds.
fn read_secret_file(
    value: &mut Option<Secret>,
    file: Option<&std::path::Path>,
    names: &str,
) -> Result<(), String> {
    let Some(file) = file else {
        return Ok(());
    };
    if value.is_some() {
        return Err(format!("{names}: set the value or the file, not both"));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{names}: cannot read {}: {e}", file.display()))?;
    let text = text.trim_end_matches(['\n', '\r']);
    if text.is_empty() {
        return Err(format!("{names}: {} is empty", file.display()));
    }
    *value = Some(Secret::from(text));
    Ok(())
}

impl Config {
    /// Reads every secret given as a file (`--api-key-file`, `DOMAINTOOLS_API_KEY_FILE`, …)
    /// into its setting; called once, before anything uses the settings.
    pub fn read_secret_files(&mut self) -> Result<(), String> {
        read_secret_file(
            &mut self.api_key,
            self.api_key_file.as_deref(),
            "--api-key / --api-key-file (DOMAINTOOLS_API_KEY / DOMAINTOOLS_API_KEY_FILE)",
        )?;
        read_secret_file(
            &mut self.proxy,
            self.proxy_file.as_deref(),
            "--proxy / --proxy-file (MISP_DOMAINTOOLS_PROXY / MISP_DOMAINTOOLS_PROXY_FILE)",
        )?;
        read_secret_file(
            &mut self.cache_url,
            self.cache_url_file.as_deref(),
            "--cache-url / --cache-url-file (MISP_DOMAINTOOLS_CACHE_URL / MISP_DOMAINTOOLS_CACHE_URL_FILE)",
        )?;
        read_secret_file(
            &mut self.cache_secret,
            self.cache_secret_file.as_deref(),
            "--cache-secret / --cache-secret-file (MISP_DOMAINTOOLS_CACHE_SECRET / MISP_DOMAINTOOLS_CACHE_SECRET_FILE)",
        )?;
        match (&self.cache_url, &self.cache_secret) {
            (Some(_), None) => {
                return Err("--cache-url needs --cache-secret (MISP_DOMAINTOOLS_CACHE_SECRET or _FILE): \
                            the secret all replicas share, which authenticates what they write to Redis"
                    .to_owned())
            }
            (_, Some(secret)) if secret.expose_secret().chars().count() < 16 => {
                return Err("--cache-secret must be at least 16 characters long".to_owned())
            }
            _ => {}
        }
        if let Some(Command::Opencti(args)) = &mut self.command {
            read_secret_file(
                &mut args.opencti_token,
                args.opencti_token_file.as_deref(),
                "--opencti-token / --opencti-token-file (OPENCTI_TOKEN / OPENCTI_TOKEN_FILE)",
            )?;
        }
        Ok(())
    }
}

/// How the client learns DomainTools' rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RateLimitMode {
    /// From /v1/account, per account, once an hour, plus 503 answers.
    Learn,
    /// From 503 answers only.
    Off,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// misp-domaintools: DomainTools modules for MISP, served over the misp-modules protocol.
///
/// Point MISP's enrichment and import services (Server settings → Plugin settings →
/// Enrichment/Import → services URL and port) at this server instead of misp-modules.
#[derive(Debug, Clone, Parser)]
#[command(name = "misp-domaintools", version, about, long_about)]
pub struct Config {
    /// What to do (default: run the server).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on (misp-modules' -l).
    #[arg(
        short = 'l',
        long,
        env = "MISP_DOMAINTOOLS_LISTEN",
        default_value = "127.0.0.1",
        global = true
    )]
    pub listen: String,

    /// Port to listen on (misp-modules' -p).
    #[arg(
        short = 'p',
        long,
        env = "MISP_DOMAINTOOLS_PORT",
        default_value_t = 6666,
        global = true
    )]
    pub port: u16,

    /// DomainTools API base URL.
    #[arg(long, env = "DOMAINTOOLS_API_URL", default_value = DEFAULT_BASE_URL, global = true)]
    pub api_url: String,

    /// DomainTools API username used when a request's config has none (MISP sends null for an
    /// unset module setting). A username set in MISP wins.
    #[arg(long, env = "DOMAINTOOLS_USERNAME", global = true)]
    pub username: Option<String>,

    /// DomainTools API key used when a request's config has none. A key set in MISP wins.
    #[arg(value_parser = secret,
        long,
        env = "DOMAINTOOLS_API_KEY",
        hide_env_values = true,
        global = true
    )]
    pub api_key: Option<Secret>,

    /// File holding the DomainTools API key (Docker and Kubernetes secrets), instead of
    /// --api-key, which any local user can read in the process list.
    #[arg(long, env = "DOMAINTOOLS_API_KEY_FILE", global = true)]
    pub api_key_file: Option<PathBuf>,

    /// Longest time, in seconds, one DomainTools call may take.
    #[arg(
        long,
        env = "MISP_DOMAINTOOLS_UPSTREAM_TIMEOUT",
        default_value_t = 8,
        global = true
    )]
    pub(crate) upstream_timeout: u64,

    /// Outbound proxy URL for DomainTools calls (default: HTTPS_PROXY/HTTP_PROXY/NO_PROXY).
    #[arg(value_parser = secret, long, env = "MISP_DOMAINTOOLS_PROXY", hide_env_values = true, global = true)]
    pub proxy: Option<Secret>,

    /// File holding the outbound proxy URL (when it carries a password).
    #[arg(long, env = "MISP_DOMAINTOOLS_PROXY_FILE", global = true)]
    pub proxy_file: Option<PathBuf>,

    /// PEM file of certificate authorities to trust besides the system's (a TLS-inspecting
    /// proxy's CA, for instance).
    #[arg(long, env = "MISP_DOMAINTOOLS_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,

    /// Largest accepted /query body, in bytes.
    #[arg(long, env = "MISP_DOMAINTOOLS_BODY_LIMIT", default_value_t = 8 * 1024 * 1024)]
    pub body_limit: usize,

    /// Most client connections open at once (also kept to half the open-files limit). At the
    /// cap the connection idle longest is closed to make room; when none is idle, the new one
    /// is answered 503 and closed.
    #[arg(long, env = "MISP_DOMAINTOOLS_MAX_CONNECTIONS", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Seconds a client has to send a request's headers, counted from when the connection
    /// waits for a request (so it also closes kept-alive HTTP/1 connections left unused).
    #[arg(
        long,
        env = "MISP_DOMAINTOOLS_HEADER_READ_TIMEOUT",
        default_value_t = 30.0
    )]
    pub header_read_timeout: f64,

    /// Seconds a client has to send a whole /query body.
    #[arg(
        long,
        env = "MISP_DOMAINTOOLS_BODY_READ_TIMEOUT",
        default_value_t = 30.0
    )]
    pub body_read_timeout: f64,

    /// Seconds a connection with no request in progress stays open.
    #[arg(long, env = "MISP_DOMAINTOOLS_IDLE_TIMEOUT", default_value_t = 60.0)]
    pub idle_timeout: f64,

    /// Seconds a client may leave a reply unread before its connection is closed.
    #[arg(long, env = "MISP_DOMAINTOOLS_WRITE_TIMEOUT", default_value_t = 30.0)]
    pub write_timeout: f64,

    /// MiB of /query bodies all requests together may hold while they are read; past it a
    /// request is told to try again.
    #[arg(long, env = "MISP_DOMAINTOOLS_REQUEST_BUFFER_MB", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub request_buffer_mb: u32,

    /// MiB of large replies (over 64 KiB) all clients together may hold unread; past it a
    /// request is told to try again.
    #[arg(long, env = "MISP_DOMAINTOOLS_REPLY_BUFFER_MB", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub reply_buffer_mb: u32,

    /// Size of the in-process response cache, in MiB of cached answers (0 turns it off).
    #[arg(long, env = "MISP_DOMAINTOOLS_CACHE_SIZE_MB", default_value_t = 64)]
    pub(crate) cache_size_mb: u64,

    /// Seconds a rendered /query reply is reused for the same request (0: never). A reply
    /// also lives no longer than the cached DomainTools answers it was made from, and Iris-Detect
    /// replies are never reused. It bounds clock-dependent text such as a domain's age.
    #[arg(long, env = "MISP_DOMAINTOOLS_REPLY_CACHE_TTL", default_value_t = 60)]
    pub reply_cache_ttl: u64,

    /// Memory for reused replies, in MiB (0 turns the reply cache off).
    #[arg(
        long,
        env = "MISP_DOMAINTOOLS_REPLY_CACHE_SIZE_MB",
        default_value_t = 32
    )]
    pub reply_cache_size_mb: u64,

    /// Seconds Iris Investigate and Iris Enrich answers are cached (0: not cached).
    #[arg(long, env = "MISP_DOMAINTOOLS_CACHE_TTL_IRIS", default_value_t = 3600)]
    pub(crate) cache_ttl_iris: u64,

    /// Seconds whois-like answers (parsed whois, profile, risk, history, reverse lookups) are
    /// cached (0: not cached).
    #[arg(long, env = "MISP_DOMAINTOOLS_CACHE_TTL_WHOIS", default_value_t = 3600)]
    pub(crate) cache_ttl_whois: u64,

    /// Seconds Iris Detect listings are cached (0, the default: always fresh).
    #[arg(long, env = "MISP_DOMAINTOOLS_CACHE_TTL_DETECT", default_value_t = 0)]
    pub(crate) cache_ttl_detect: u64,

    /// `redis://host:port/db` of a cache shared by several replicas (optional). When Redis is
    /// unreachable the server keeps answering from DomainTools.
    #[arg(value_parser = secret, long, env = "MISP_DOMAINTOOLS_CACHE_URL", hide_env_values = true)]
    pub(crate) cache_url: Option<Secret>,

    /// File holding the Redis URL (when it carries a password).
    #[arg(long, env = "MISP_DOMAINTOOLS_CACHE_URL_FILE")]
    pub cache_url_file: Option<PathBuf>,

    /// Secret the replicas share to authenticate what they write to Redis (HMAC-SHA256, at
    /// least 16 characters; required with --cache-url). Entries not sealed with it are ignored.
    #[arg(value_parser = secret, long, env = "MISP_DOMAINTOOLS_CACHE_SECRET", hide_env_values = true)]
    pub cache_secret: Option<Secret>,

    /// File holding the cache secret.
    #[arg(long, env = "MISP_DOMAINTOOLS_CACHE_SECRET_FILE")]
    pub cache_secret_file: Option<PathBuf>,

    /// Milliseconds single-domain Iris Enrich lookups wait to be sent together in one call of
    /// up to 100 domains (0: no batching).
    #[arg(
        long,
        env = "MISP_DOMAINTOOLS_ENRICH_BATCH_WINDOW_MS",
        default_value_t = 10
    )]
    pub(crate) enrich_batch_window_ms: u64,

    /// Rate limits: `learn` reads each account's limits from DomainTools (/v1/account, once an
    /// hour) and spaces calls accordingly; `off` only reacts to DomainTools' 503 answers.
    #[arg(
        long,
        env = "MISP_DOMAINTOOLS_RATE_LIMITS",
        value_enum,
        default_value = "learn"
    )]
    pub(crate) rate_limits: RateLimitMode,

    /// Seconds a hover request (no event_id) may take: MISP gives up after 5.
    #[arg(long, env = "MISP_DOMAINTOOLS_HOVER_BUDGET", default_value_t = 4.5)]
    pub hover_budget: f64,

    /// Seconds an enrichment or import request may take: MISP gives up after 10.
    #[arg(long, env = "MISP_DOMAINTOOLS_QUERY_BUDGET", default_value_t = 9.5)]
    pub query_budget: f64,

    /// The misp-modules server to serve beside (e.g. http://127.0.0.1:6666): /modules lists
    /// its modules with ours (ours win a name clash), and /query for a module not served here
    /// is forwarded to it unchanged. MISP has one module server URL, so this keeps
    /// misp-modules' own modules (workflows, csvimport, …) working.
    #[arg(long, env = "MISP_DOMAINTOOLS_MISP_MODULES_URL")]
    pub misp_modules_url: Option<url::Url>,

    /// Seconds a query forwarded to --misp-modules-url may take (misp-modules' own default).
    #[arg(
        long,
        env = "MISP_DOMAINTOOLS_MISP_MODULES_BUDGET",
        default_value_t = 300.0
    )]
    pub misp_modules_budget: f64,

    /// Do not serve GET /metrics.
    #[arg(long, env = "MISP_DOMAINTOOLS_DISABLE_METRICS")]
    pub(crate) disable_metrics: bool,

    /// Log format.
    #[arg(
        long,
        env = "MISP_DOMAINTOOLS_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub(crate) log_format: LogFormat,

    /// Log filter (error, warn, info, debug, trace, or per-target directives).
    #[arg(long, env = "RUST_LOG", default_value = "info", global = true)]
    pub(crate) log_level: String,

    /// Serve bundled sample data through the built-in fake DomainTools API: no credentials and
    /// no network needed. Every MISP result says it is demo data; `stix` and `opencti` send
    /// their DomainTools calls to the same fake.
    #[cfg(feature = "demo")]
    #[arg(long, env = "MISP_DOMAINTOOLS_DEMO", global = true)]
    pub demo: bool,

    /// STIX output (`stix`, `opencti`): TLP marking of every object the enrichment creates
    /// [default: TLP:AMBER].
    #[arg(long, env = "DOMAINTOOLS_MARKING", global = true)]
    pub marking: Option<Tlp>,

    /// STIX output (`stix`, `opencti`): most domains mapped when enriching an IPv4 address;
    /// the total DomainTools knows is reported [default: 100].
    #[arg(long, env = "DOMAINTOOLS_IP_DOMAIN_LIMIT", global = true,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub ip_domain_limit: Option<u32>,

    /// Real-Time Threat Feeds to poll and serve to MISP under /feeds/<feed>/, comma-separated:
    /// nod, nad, noh, domaindiscovery, domainrdap, domainrisk, iprisk, iphotlist (MISP-format
    /// feeds) and domainhotlist (freetext). Empty: no feeds. With several replicas see
    /// --feeds-lock-url (docs/feeds.md).
    #[arg(long, env = "MISP_DOMAINTOOLS_FEEDS", value_delimiter = ',')]
    pub feeds: Vec<String>,

    /// Domain patterns the feeds ask DomainTools for (`*` only as prefix or suffix, e.g.
    /// `*.bank,paypal*`), comma-separated; any may match. Empty: every domain.
    #[arg(long, env = "MISP_DOMAINTOOLS_FEEDS_DOMAINS", value_delimiter = ',')]
    pub feeds_domains: Vec<String>,

    /// Risk minimums for domainrisk and domainhotlist, all of which must hold, comma-separated
    /// `score=1..99` with score one of overall, malware, phishing, spam, proximity
    /// (e.g. `overall=70,malware=90`).
    #[arg(long, env = "MISP_DOMAINTOOLS_FEEDS_RISK_MIN", value_delimiter = ',')]
    pub feeds_risk_min: Vec<String>,

    /// `redis://…` of a Redis shared by replicas that all run the same --feeds on one shared
    /// --feeds-dir: a lease there lets exactly one of them poll each cursor.
    #[arg(value_parser = secret, long, env = "MISP_DOMAINTOOLS_FEEDS_LOCK_URL", hide_env_values = true)]
    pub feeds_lock_url: Option<Secret>,

    /// Directory of the feeds' files (itself a valid MISP feed per feed).
    #[arg(long, env = "MISP_DOMAINTOOLS_FEEDS_DIR", default_value = "feeds")]
    pub feeds_dir: PathBuf,

    /// Token MISP must send as `Authorization: Bearer <token>` (a custom feed header) to read
    /// the feeds. Required with --feeds.
    #[arg(value_parser = secret, long, env = "MISP_DOMAINTOOLS_FEEDS_TOKEN", hide_env_values = true)]
    pub feeds_token: Option<Secret>,

    /// File holding the feeds token (Docker/Kubernetes secrets); used when --feeds-token is unset.
    #[arg(long, env = "MISP_DOMAINTOOLS_FEEDS_TOKEN_FILE")]
    pub feeds_token_file: Option<PathBuf>,

    /// Seconds between two polls of one feed; DomainTools asks for at most one a minute.
    #[arg(long, env = "MISP_DOMAINTOOLS_FEEDS_POLL_INTERVAL", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub feeds_poll_interval: u64,

    /// Seconds of feed lines per MISP event (bucket).
    #[arg(long, env = "MISP_DOMAINTOOLS_FEEDS_BUCKET", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub feeds_bucket: u64,

    /// Seconds after its end a bucket still takes late lines before it is sealed and served.
    #[arg(long, env = "MISP_DOMAINTOOLS_FEEDS_GRACE", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub feeds_grace: u64,

    /// Days sealed feed events are kept.
    #[arg(long, env = "MISP_DOMAINTOOLS_FEEDS_RETENTION_DAYS", default_value_t = 7,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub feeds_retention_days: u32,

    /// Mark feed attributes for IDS export (to_ids). Off by default: newly seen is not malicious.
    #[arg(long, env = "MISP_DOMAINTOOLS_FEEDS_TO_IDS")]
    pub feeds_to_ids: bool,
}

/// Commands besides serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Asks a running server (at --listen/--port) for /healthcheck; exits 0 when healthy.
    /// Used by the container HEALTHCHECK, where no curl is installed.
    Healthcheck,
    /// Prints the DomainTools enrichment of a domain name or an IPv4 address as a STIX 2.1
    /// bundle (stdout; a one-line summary goes to stderr). Uses --api-url, --username/
    /// DOMAINTOOLS_USERNAME and --api-key/DOMAINTOOLS_API_KEY (or demo mode).
    Stix {
        /// The domain name or IPv4 address to enrich.
        value: String,
    },
    /// Runs as an OpenCTI internal-enrichment connector for Domain-Name and IPv4-Addr
    /// observables: registers with the platform, receives work on an HTTP callback and pushes
    /// bundles over GraphQL (no RabbitMQ connection). Settings from the command line or the
    /// environment win over config.yml.
    Opencti(Box<OpenctiArgs>),
}

/// Settings of the OpenCTI connector mode, named as the Python connector's (and pycti's)
/// environment variables. Each may also come from config.yml (`opencti.url`, `connector.id`,
/// `domaintools.max_tlp`, …); defaults are applied after both.
#[derive(Debug, Clone, Args)]
pub struct OpenctiArgs {
    /// URL of the OpenCTI platform (config.yml: opencti.url).
    #[arg(long, env = "OPENCTI_URL")]
    pub(crate) opencti_url: Option<String>,

    /// API token of the connector's OpenCTI user (config.yml: opencti.token). The worker's
    /// callbacks must carry the same token.
    #[arg(value_parser = secret, long, env = "OPENCTI_TOKEN", hide_env_values = true)]
    pub opencti_token: Option<Secret>,

    /// File holding the OpenCTI token (Docker and Kubernetes secrets).
    #[arg(long, env = "OPENCTI_TOKEN_FILE")]
    pub opencti_token_file: Option<PathBuf>,

    /// The connector's UUIDv4, unique per instance (config.yml: connector.id).
    #[arg(long, env = "CONNECTOR_ID")]
    pub(crate) connector_id: Option<String>,

    /// Name shown in OpenCTI [default: DomainTools] (config.yml: connector.name).
    #[arg(long, env = "CONNECTOR_NAME")]
    pub(crate) connector_name: Option<String>,

    /// Observable types to enrich, comma-separated [default: Domain-Name,IPv4-Addr]
    /// (config.yml: connector.scope).
    #[arg(long, env = "CONNECTOR_SCOPE")]
    pub(crate) connector_scope: Option<String>,

    /// INTERNAL_ENRICHMENT (the enrichment, the default) or EXTERNAL_IMPORT (the feeds of
    /// MISP_DOMAINTOOLS_FEEDS imported on a schedule; docs/opencti.md) (config.yml:
    /// connector.type).
    #[arg(long, env = "CONNECTOR_TYPE")]
    pub(crate) connector_type: Option<String>,

    /// EXTERNAL_IMPORT: do not poll DomainTools, only import what a `misp-domaintools serve
    /// --feeds` sharing --feeds-dir (one volume) seals there; no DomainTools key needed.
    #[arg(long, env = "MISP_DOMAINTOOLS_FEEDS_READ_ONLY")]
    pub feeds_read_only: bool,

    /// EXTERNAL_IMPORT: time between two imports, ISO 8601 (PT5M, PT1H) or seconds
    /// [default: PT5M] (config.yml: connector.duration_period).
    #[arg(long, env = "CONNECTOR_DURATION_PERIOD")]
    pub(crate) connector_duration_period: Option<String>,

    /// Enrich new observables automatically [default: false] (config.yml: connector.auto).
    #[arg(long, env = "CONNECTOR_AUTO", value_parser = BoolishValueParser::new())]
    pub(crate) connector_auto: Option<bool>,

    /// Log level: debug, info, warn (warning) or error; overrides RUST_LOG in this mode
    /// (config.yml: connector.log_level).
    #[arg(long, env = "CONNECTOR_LOG_LEVEL")]
    pub(crate) connector_log_level: Option<String>,

    /// Confidence (0-100) of the relationships created [default: 80]
    /// (config.yml: connector.confidence_level).
    #[arg(long, env = "CONNECTOR_CONFIDENCE_LEVEL",
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub(crate) connector_confidence_level: Option<u8>,

    /// DomainTools API username; falls back to DOMAINTOOLS_USERNAME
    /// (config.yml: domaintools.api_username). The key is DOMAINTOOLS_API_KEY
    /// (config.yml: domaintools.api_key).
    #[arg(long, env = "DOMAINTOOLS_API_USERNAME")]
    pub api_username: Option<String>,

    /// Most restrictive TLP of an observable sent to DomainTools [default: TLP:AMBER]
    /// (config.yml: domaintools.max_tlp).
    #[arg(long, env = "DOMAINTOOLS_MAX_TLP")]
    pub(crate) max_tlp: Option<Tlp>,

    /// Base URL at which the OpenCTI worker reaches this connector
    /// [default: http://127.0.0.1:<callback port>] (config.yml:
    /// connector.listen_protocol_api_uri). In Docker, the service's name, e.g.
    /// http://connector-domaintools:7070.
    #[arg(long, env = "CONNECTOR_LISTEN_PROTOCOL_API_URI")]
    pub callback_uri: Option<String>,

    /// Path of the callback [default: /api/callback] (config.yml:
    /// connector.listen_protocol_api_path).
    #[arg(long, env = "CONNECTOR_LISTEN_PROTOCOL_API_PATH")]
    pub(crate) callback_path: Option<String>,

    /// Port the callback listens on, at --listen [default: 7070] (config.yml:
    /// connector.listen_protocol_api_port).
    #[arg(long, env = "CONNECTOR_LISTEN_PROTOCOL_API_PORT")]
    pub(crate) callback_port: Option<u16>,

    /// How work arrives: AMQP (the connector's RabbitMQ listen queue) or API (the platform's
    /// worker posts it to the callback; OpenCTI 6.5.7 or later) [default: AMQP]
    /// (config.yml: connector.listen_protocol).
    #[arg(long, env = "CONNECTOR_LISTEN_PROTOCOL")]
    pub listen_protocol: Option<String>,

    /// How bundles go back: amqp (split onto the push queue) or api (stixBundlePush)
    /// [default: amqp] (config.yml: connector.queue_protocol).
    #[arg(long, env = "CONNECTOR_QUEUE_PROTOCOL")]
    pub queue_protocol: Option<String>,

    /// RabbitMQ host, instead of the one registration returns (config.yml: mq.host).
    #[arg(long, env = "MQ_HOST")]
    pub mq_host: Option<String>,

    /// RabbitMQ port, instead of registration's (config.yml: mq.port).
    #[arg(long, env = "MQ_PORT")]
    pub mq_port: Option<u16>,

    /// RabbitMQ virtual host, instead of registration's (config.yml: mq.vhost).
    #[arg(long, env = "MQ_VHOST")]
    pub mq_vhost: Option<String>,

    /// RabbitMQ over TLS, instead of registration's choice (config.yml: mq.use_ssl).
    #[arg(long, env = "MQ_USE_SSL", value_parser = BoolishValueParser::new())]
    pub mq_use_ssl: Option<bool>,

    /// RabbitMQ user, instead of registration's (config.yml: mq.user).
    #[arg(long, env = "MQ_USER")]
    pub mq_user: Option<String>,

    /// RabbitMQ password, instead of registration's (config.yml: mq.pass).
    #[arg(value_parser = secret, long, env = "MQ_PASS", hide_env_values = true)]
    pub mq_pass: Option<Secret>,

    /// DomainTools product the account has: investigate (Iris Investigate, domains and IPv4
    /// addresses) or enrich (Iris Enrich, domains only) [default: investigate]
    /// (config.yml: domaintools.product).
    #[arg(long, env = "DOMAINTOOLS_PRODUCT")]
    pub domaintools_product: Option<String>,

    /// config.yml to read [default: ./config.yml when it exists].
    #[arg(long = "config", env = "MISP_DOMAINTOOLS_CONFIG")]
    pub(crate) config_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn defaults_match_misp_modules() {
        let c = Config::try_parse_from(["misp-domaintools"]).unwrap();
        assert_eq!((c.listen.as_str(), c.port), ("127.0.0.1", 6666));
        assert_eq!(c.api_url, "https://api.domaintools.com");
        assert_eq!(c.upstream_timeout, 8);
        assert_eq!(c.body_limit, 8 * 1024 * 1024);
        #[cfg(feature = "demo")]
        assert!(!c.demo);
    }

    #[test]
    fn demo_flag_only_with_the_demo_feature() {
        let help = Config::command().render_long_help().to_string();
        assert_eq!(help.contains("--demo"), cfg!(feature = "demo"), "{help}");
    }

    #[test]
    fn a_shared_cache_needs_its_secret() {
        let mut c = Config::try_parse_from(["x", "--cache-url", "redis://127.0.0.1:1/0"]).unwrap();
        let error = c.read_secret_files().unwrap_err();
        assert!(error.contains("--cache-secret"), "{error}");
        let mut c =
            Config::try_parse_from(["x", "--cache-url", "redis://h/0", "--cache-secret", "short"])
                .unwrap();
        assert!(c.read_secret_files().unwrap_err().contains("16 characters"));
        let mut c = Config::try_parse_from([
            "x",
            "--cache-url",
            "redis://h/0",
            "--cache-secret",
            "sixteen-characters-or-more",
        ])
        .unwrap();
        c.read_secret_files().unwrap();
        assert!(!format!("{c:?}").contains("sixteen-characters"));
    }

    #[test]
    fn short_flags_like_misp_modules() {
        let c =
            Config::try_parse_from(["x", "-l", "0.0.0.0", "-p", "7000", "--api-key", "k"]).unwrap();
        assert_eq!((c.listen.as_str(), c.port), ("0.0.0.0", 7000));
        assert!(
            !format!("{c:?}").contains("\"k\""),
            "the key is redacted in Debug"
        );
    }

    #[test]
    fn help_names_every_environment_variable() {
        let help = Config::command().render_long_help().to_string();
        for var in [
            "MISP_DOMAINTOOLS_LISTEN",
            "MISP_DOMAINTOOLS_PORT",
            "DOMAINTOOLS_API_URL",
            "DOMAINTOOLS_USERNAME",
            "DOMAINTOOLS_API_KEY",
            "MISP_DOMAINTOOLS_UPSTREAM_TIMEOUT",
            "MISP_DOMAINTOOLS_PROXY",
            "MISP_DOMAINTOOLS_BODY_LIMIT",
            "MISP_DOMAINTOOLS_LOG_FORMAT",
            "RUST_LOG",
            "MISP_DOMAINTOOLS_CACHE_SIZE_MB",
            "MISP_DOMAINTOOLS_REPLY_CACHE_TTL",
            "MISP_DOMAINTOOLS_REPLY_CACHE_SIZE_MB",
            "MISP_DOMAINTOOLS_CACHE_TTL_IRIS",
            "MISP_DOMAINTOOLS_CACHE_TTL_WHOIS",
            "MISP_DOMAINTOOLS_CACHE_TTL_DETECT",
            "MISP_DOMAINTOOLS_CACHE_URL",
            "MISP_DOMAINTOOLS_CACHE_SECRET",
            "MISP_DOMAINTOOLS_CACHE_SECRET_FILE",
            "MISP_DOMAINTOOLS_ENRICH_BATCH_WINDOW_MS",
            "MISP_DOMAINTOOLS_RATE_LIMITS",
            "MISP_DOMAINTOOLS_HOVER_BUDGET",
            "MISP_DOMAINTOOLS_QUERY_BUDGET",
            "MISP_DOMAINTOOLS_DISABLE_METRICS",
        ] {
            assert!(help.contains(var), "{var} missing from --help");
        }
        assert_eq!(
            help.contains("MISP_DOMAINTOOLS_DEMO"),
            cfg!(feature = "demo")
        );
        Config::command().debug_assert();
    }
}
