//! The Real-Time Threat Feeds client (`/v1/feed/<feed>/`): NDJSON read line by line as it
//! arrives (an answer can hold millions of lines, so it is never held whole), `X-Api-Key`
//! authentication, `sessionID` cursors, `after`/`before` windows, and `206` answers repeated
//! until the `200` that ends them. There is deliberately no `top`: it silently drops lines.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Longest line accepted: a Domain RDAP line is about 9 KB, so a megabyte means a broken answer.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// `206` pages followed at most in one poll; at 10 million lines a page this is far past any
/// real backlog, and it stops a server that answers 206 forever.
pub const MAX_PAGES: usize = 1000;
/// How far back DomainTools keeps feed lines and accepts a window.
pub const MAX_WINDOW: Duration = Duration::from_secs(5 * 24 * 3600);

/// A feed, by its path under `/v1/feed/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feed {
    /// Newly Observed Domains (apex domains).
    Nod,
    /// Newly Active Domains.
    Nad,
    /// Newly Observed Hosts (full host names).
    Noh,
    /// Domain Discovery.
    DomainDiscovery,
    /// Domain RDAP (only the domain and timestamp are read).
    DomainRdap,
    /// Domain Risk, with scores.
    DomainRisk,
    /// Domain Hotlist: scores and an expiry.
    DomainHotlist,
    /// IP Risk: IP addresses (`ip`) with their context (no recorded answer exists).
    IpRisk,
    /// IP Hotlist: the riskiest IP addresses (its path inferred from python_api's naming).
    IpHotlist,
}

impl Feed {
    /// Every feed.
    pub const ALL: [Feed; 9] = [
        Feed::Nod,
        Feed::Nad,
        Feed::Noh,
        Feed::DomainDiscovery,
        Feed::DomainRdap,
        Feed::DomainRisk,
        Feed::DomainHotlist,
        Feed::IpRisk,
        Feed::IpHotlist,
    ];

    /// The name in the API path (`nod`, `domainhotlist`, …).
    pub fn name(self) -> &'static str {
        match self {
            Feed::Nod => "nod",
            Feed::Nad => "nad",
            Feed::Noh => "noh",
            Feed::DomainDiscovery => "domaindiscovery",
            Feed::DomainRdap => "domainrdap",
            Feed::DomainRisk => "domainrisk",
            Feed::DomainHotlist => "domainhotlist",
            Feed::IpRisk => "iprisk",
            Feed::IpHotlist => "iphotlist",
        }
    }

    /// The feed called `name` in the API path.
    pub fn from_name(name: &str) -> Option<Feed> {
        Feed::ALL.into_iter().find(|feed| feed.name() == name)
    }

    /// Whether its lines are host names rather than registrable domains.
    pub fn carries_hosts(self) -> bool {
        self == Feed::Noh
    }

    /// Whether its lines are IP addresses (`ip`) rather than domains: the `domain` patterns and
    /// the domain risk minimums do not apply.
    pub fn carries_ips(self) -> bool {
        matches!(self, Feed::IpRisk | Feed::IpHotlist)
    }

    /// Whether its lines carry risk scores (and accept the `*_min` filters).
    pub fn has_scores(self) -> bool {
        matches!(self, Feed::DomainRisk | Feed::DomainHotlist)
    }
}

impl fmt::Display for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One end of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// This long before DomainTools' now (sent as negative seconds).
    Ago(Duration),
    /// A fixed instant (sent as `YYYY-MM-DDTHH:MM:SSZ`).
    At(DateTime<Utc>),
}

impl Bound {
    fn to_param(self) -> String {
        match self {
            Bound::Ago(ago) => format!("-{}", ago.as_secs()),
            Bound::At(at) => at.to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }
}

/// The risk score a `*_min` filter applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Score {
    /// `overall_min`
    Overall,
    /// `malware_min`
    Malware,
    /// `phishing_min`
    Phishing,
    /// `spam_min`
    Spam,
    /// `proximity_min`
    Proximity,
}

impl Score {
    /// The score called `name` (`overall`, `malware`, `phishing`, `spam`, `proximity`).
    pub fn from_name(name: &str) -> Option<Score> {
        match name {
            "overall" => Some(Score::Overall),
            "malware" => Some(Score::Malware),
            "phishing" => Some(Score::Phishing),
            "spam" => Some(Score::Spam),
            "proximity" => Some(Score::Proximity),
            _ => None,
        }
    }

    /// The query parameter of its minimum.
    pub fn param(self) -> &'static str {
        match self {
            Score::Overall => "overall_min",
            Score::Malware => "malware_min",
            Score::Phishing => "phishing_min",
            Score::Spam => "spam_min",
            Score::Proximity => "proximity_min",
        }
    }
}

/// What to ask a feed for. At least one of `session_id`, `after`, `before` must be set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedQuery {
    /// DomainTools' cursor: a new id answers the last hour, each later call what came since.
    pub session_id: Option<String>,
    /// Lines seen after this.
    pub after: Option<Bound>,
    /// Lines seen up to this.
    pub before: Option<Bound>,
    /// Domain patterns (`*` only as prefix or suffix); any may match.
    pub domains: Vec<String>,
    /// Risk minimums (1–99), all of which must hold (risk feeds only).
    pub minimums: Vec<(Score, u8)>,
    /// On a new session, start at the beginning of the 5-day window instead of the last hour.
    pub from_beginning: bool,
}

impl FeedQuery {
    /// A poll of the cursor `session_id`.
    pub fn session(session_id: impl Into<String>) -> Self {
        Self {
            session_id: Some(session_id.into()),
            ..Self::default()
        }
    }

    /// A backfill of the window (`after`, `before`], without a cursor.
    pub fn window(after: Bound, before: Option<Bound>) -> Self {
        Self {
            after: Some(after),
            before,
            ..Self::default()
        }
    }

    fn params(&self) -> Result<Vec<(&'static str, String)>, FeedError> {
        if self.session_id.is_none() && self.after.is_none() && self.before.is_none() {
            return Err(FeedError::Query(
                "a feed query needs a sessionID, after or before".into(),
            ));
        }
        for bound in [self.after, self.before].into_iter().flatten() {
            if let Bound::Ago(ago) = bound {
                if ago > MAX_WINDOW {
                    return Err(FeedError::Query(
                        "DomainTools keeps feed lines for 5 days: the window reaches further back"
                            .into(),
                    ));
                }
            }
        }
        let mut params = Vec::new();
        if let Some(id) = &self.session_id {
            params.push(("sessionID", id.clone()));
        }
        if let Some(after) = self.after {
            params.push(("after", after.to_param()));
        }
        if let Some(before) = self.before {
            params.push(("before", before.to_param()));
        }
        for domain in &self.domains {
            params.push(("domain", domain.clone()));
        }
        for (score, minimum) in &self.minimums {
            if !(1..=99).contains(minimum) {
                return Err(FeedError::Query(format!(
                    "{} must be from 1 to 99",
                    score.param()
                )));
            }
            params.push((score.param(), minimum.to_string()));
        }
        if self.from_beginning {
            params.push(("fromBeginning", "true".into()));
        }
        Ok(params)
    }
}

/// The fields this project reads from a line; the rest (RDAP records) is skipped unparsed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FeedLine {
    /// When DomainTools saw it.
    #[serde(deserialize_with = "instant")]
    pub timestamp: DateTime<Utc>,
    /// The domain, the host name for Newly Observed Hosts, or the IP address of the IP feeds
    /// (their `ip` field).
    #[serde(alias = "ip")]
    pub domain: String,
    /// Risk feeds: each may be `null`.
    #[serde(default)]
    pub overall_risk: Option<u8>,
    /// Risk feeds.
    #[serde(default)]
    pub malware_risk: Option<u8>,
    /// Risk feeds.
    #[serde(default)]
    pub phishing_risk: Option<u8>,
    /// Risk feeds.
    #[serde(default)]
    pub spam_risk: Option<u8>,
    /// Risk feeds.
    #[serde(default)]
    pub proximity_risk: Option<u8>,
    /// Hotlist: when the entry stops being hot.
    #[serde(default, deserialize_with = "optional_instant")]
    pub expires: Option<DateTime<Utc>>,
    /// IP feeds: the AS number, as text (no IP answer was ever recorded, so a number or a
    /// text is taken and anything else ignored rather than refusing the line).
    #[serde(default, deserialize_with = "lenient_text")]
    pub asn: Option<String>,
    /// IP feeds: the network's organization.
    #[serde(default, deserialize_with = "lenient_text")]
    pub organization: Option<String>,
    /// IP feeds: the country.
    #[serde(default, deserialize_with = "lenient_text")]
    pub country: Option<String>,
}

/// Longest text kept from a lenient field.
const MAX_LENIENT_TEXT: usize = 100;

/// A text or a number as text, shortened; `None` for anything else (null, objects, lists).
fn lenient_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let text = match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => text,
        serde_json::Value::Number(number) => number.to_string(),
        _ => return Ok(None),
    };
    let text: String = text.trim().chars().take(MAX_LENIENT_TEXT).collect();
    Ok((!text.is_empty()).then_some(text))
}

/// RFC 3339 (`2025-12-09T19:22:14Z`), read here rather than through chrono's serde feature,
/// which the rest of the workspace does not need.
fn instant<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(serde::de::Error::custom)
}

fn optional_instant<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    match <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) => DateTime::parse_from_rfc3339(&text)
            .map(|at| Some(at.with_timezone(&Utc)))
            .map_err(serde::de::Error::custom),
    }
}

/// How one poll went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollSummary {
    /// Lines handed to the caller.
    pub lines: u64,
    /// Lines that were not a feed line (not JSON, no domain or timestamp): skipped, counted.
    pub skipped: u64,
    /// HTTP answers it took (more than one after `206`s).
    pub pages: usize,
}

/// What can go wrong polling a feed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// The query cannot be sent as it is.
    #[error("invalid feed query: {0}")]
    Query(String),
    /// DomainTools answered with an error status (400/422 bad parameters, 401/403 key, 404
    /// feed not in the account, 406 `fromBeginning` on an existing session, 5xx).
    #[error("DomainTools feed error {status}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// DomainTools' explanation, or the reason phrase.
        message: String,
    },
    /// A `206` without a `sessionID`: repeating it would answer the same lines, so the window
    /// must be narrowed instead.
    #[error("the feed window holds more lines than one answer: narrow it or use a sessionID")]
    PartialWithoutSession,
    /// `206` answers kept coming past [`MAX_PAGES`].
    #[error("DomainTools kept answering 206 after {0} pages")]
    EndlessPages(usize),
    /// A line longer than [`MAX_LINE_BYTES`].
    #[error("a feed line is longer than {0} bytes")]
    LineTooLong(usize),
    /// Not the NDJSON a feed answers.
    #[error("the feed answer is not NDJSON (content type {0})")]
    NotNdjson(String),
    /// No answer in time.
    #[error("DomainTools feed did not answer within {} s", .0.as_secs().max(1))]
    Timeout(Duration),
    /// Connection refused, DNS, TLS, or a broken connection mid-answer.
    #[error("the connection to the DomainTools feed failed ({0})")]
    Transport(String),
    /// The client settings are unusable.
    #[error("invalid feed client setting: {0}")]
    Config(String),
}

impl FeedError {
    /// A short fixed name of the kind of failure, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            FeedError::Query(_) => "query",
            FeedError::Api { .. } => "api",
            FeedError::PartialWithoutSession => "partial_without_session",
            FeedError::EndlessPages(_) => "endless_pages",
            FeedError::LineTooLong(_) => "line_too_long",
            FeedError::NotNdjson(_) => "not_ndjson",
            FeedError::Timeout(_) => "timeout",
            FeedError::Transport(_) => "transport",
            FeedError::Config(_) => "config",
        }
    }

    /// Whether the next poll may succeed where this one failed.
    pub fn is_transient(&self) -> bool {
        match self {
            FeedError::Api { status, .. } => *status >= 500 || *status == 429,
            FeedError::Timeout(_) | FeedError::Transport(_) | FeedError::EndlessPages(_) => true,
            _ => false,
        }
    }
}

/// Settings of a [`FeedClient`].
#[derive(Clone)]
pub struct FeedClientConfig {
    /// `https://api.domaintools.com` (or a fake's `http://127.0.0.1:…`).
    pub base_url: String,
    /// Sent as `X-Api-Key` and nowhere else.
    pub api_key: SecretString,
    /// `app_partner` / `app_name` / `app_version` parameters.
    pub app_partner: String,
    /// `app_name`.
    pub app_name: String,
    /// `app_version`.
    pub app_version: String,
    /// To connect.
    pub connect_timeout: Duration,
    /// Between two pieces of an answer: a stream may run long, but must not stall.
    pub read_timeout: Duration,
    /// Authorities trusted besides the built-in roots (`--ca-file`).
    pub roots: crate::tls::ExtraRoots,
    /// The outbound proxy (`--proxy`), as for the API client.
    pub proxy: crate::Proxy,
}

impl fmt::Debug for FeedClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeedClientConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"[redacted]")
            .field("app_name", &self.app_name)
            .finish_non_exhaustive()
    }
}

impl FeedClientConfig {
    /// Defaults for the real API.
    pub fn new(api_key: SecretString, app_version: impl Into<String>) -> Self {
        Self {
            base_url: crate::DEFAULT_BASE_URL.to_owned(),
            api_key,
            app_partner: "misp-domaintools".into(),
            app_name: "misp-domaintools-feeds".into(),
            app_version: app_version.into(),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            roots: crate::tls::ExtraRoots::none(),
            proxy: crate::Proxy::FromEnvironment,
        }
    }
}

/// A client of the feeds; cheap to clone.
#[derive(Clone)]
pub struct FeedClient {
    http: reqwest::Client,
    config: std::sync::Arc<FeedClientConfig>,
}

impl fmt::Debug for FeedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeedClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl FeedClient {
    /// A client for `config`.
    pub fn new(mut config: FeedClientConfig) -> Result<Self, FeedError> {
        config.base_url = config.base_url.trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&config.base_url)
            .map_err(|error| FeedError::Config(format!("base URL: {error}")))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(FeedError::Config(
                "base URL must be https:// or http://".into(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("misp-domaintools/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            // `X-Api-Key` is no header reqwest strips on a redirect to another host: a
            // redirect is an error (its status and text), never followed.
            .redirect(reqwest::redirect::Policy::none());
        builder = config
            .proxy
            .configure(builder)
            .map_err(|_| FeedError::Config("the proxy URL cannot be parsed".into()))?;
        for root in config.roots.reqwest_certificates() {
            builder = builder.add_root_certificate(root);
        }
        let http = builder
            .build()
            .map_err(|error| FeedError::Config(error.to_string()))?;
        Ok(Self {
            http,
            config: std::sync::Arc::new(config),
        })
    }

    /// Polls `feed`, handing each line to `on_line` as it arrives. With a `sessionID`, `206`
    /// answers are repeated until the `200`; without one a `206` is
    /// [`FeedError::PartialWithoutSession`] (the lines of the first page were handed over).
    pub async fn poll(
        &self,
        feed: Feed,
        query: &FeedQuery,
        mut on_line: impl FnMut(FeedLine),
    ) -> Result<PollSummary, FeedError> {
        let mut params = query.params()?;
        params.push(("app_partner", self.config.app_partner.clone()));
        params.push(("app_name", self.config.app_name.clone()));
        params.push(("app_version", self.config.app_version.clone()));
        let url = format!("{}/v1/feed/{}/", self.config.base_url, feed.name());
        let mut summary = PollSummary::default();
        loop {
            if summary.pages == MAX_PAGES {
                return Err(FeedError::EndlessPages(MAX_PAGES));
            }
            summary.pages += 1;
            let status = self.page(&url, &params, &mut summary, &mut on_line).await?;
            match status {
                200 => return Ok(summary),
                206 if query.session_id.is_some() => continue,
                206 => return Err(FeedError::PartialWithoutSession),
                other => {
                    return Err(FeedError::Api {
                        status: other,
                        message: "unexpected success status".into(),
                    })
                }
            }
        }
    }

    /// One HTTP answer, streamed into `on_line`; its status.
    async fn page(
        &self,
        url: &str,
        params: &[(&'static str, String)],
        summary: &mut PollSummary,
        on_line: &mut impl FnMut(FeedLine),
    ) -> Result<u16, FeedError> {
        let mut response = self
            .http
            .get(url)
            .header("X-Api-Key", self.config.api_key.expose_secret())
            .header("Accept", "application/x-ndjson")
            .query(params)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(api_error(response).await);
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        // An empty window may come without a content type; anything else must be NDJSON.
        let is_ndjson = content_type.is_empty()
            || content_type.starts_with("application/x-ndjson")
            || content_type.starts_with("application/json");
        if !is_ndjson {
            return Err(FeedError::NotNdjson(content_type));
        }
        let mut splitter = LineSplitter::default();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            splitter.push(&chunk, |line| deliver(line, summary, on_line))?;
        }
        splitter.finish(|line| deliver(line, summary, on_line))?;
        Ok(status.as_u16())
    }
}

fn deliver(line: &[u8], summary: &mut PollSummary, on_line: &mut impl FnMut(FeedLine)) {
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    match serde_json::from_slice::<FeedLine>(line) {
        Ok(parsed) if !parsed.domain.is_empty() => {
            summary.lines += 1;
            on_line(parsed);
        }
        _ => summary.skipped += 1,
    }
}

fn transport(error: reqwest::Error) -> FeedError {
    // Without the URL: it carries no key (that is a header) but says nothing useful either.
    let error = error.without_url();
    if error.is_timeout() {
        FeedError::Timeout(Duration::ZERO)
    } else {
        FeedError::Transport(error.to_string())
    }
}

/// The API's error envelope (`{"error": {"message"}}`), read up to a few kilobytes.
async fn api_error(mut response: reqwest::Response) -> FeedError {
    const MAX_ERROR_BYTES: usize = 16 * 1024;
    let status = response.status();
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ERROR_BYTES {
            break;
        }
    }
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|value| {
            value
                .pointer("/error/message")
                .and_then(|message| message.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    FeedError::Api {
        status: status.as_u16(),
        message,
    }
}

/// Splits a byte stream into lines without holding more than one unfinished line.
#[derive(Debug, Default)]
struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, mut chunk: &[u8], mut line: impl FnMut(&[u8])) -> Result<(), FeedError> {
        while let Some(end) = chunk.iter().position(|byte| *byte == b'\n') {
            if self.partial.is_empty() {
                line(&chunk[..end]);
            } else {
                self.partial.extend_from_slice(&chunk[..end]);
                if self.partial.len() > MAX_LINE_BYTES {
                    return Err(FeedError::LineTooLong(MAX_LINE_BYTES));
                }
                line(&self.partial);
                self.partial.clear();
            }
            chunk = &chunk[end + 1..];
        }
        if self.partial.len() + chunk.len() > MAX_LINE_BYTES {
            return Err(FeedError::LineTooLong(MAX_LINE_BYTES));
        }
        self.partial.extend_from_slice(chunk);
        Ok(())
    }

    fn finish(self, mut line: impl FnMut(&[u8])) -> Result<(), FeedError> {
        if !self.partial.is_empty() {
            line(&self.partial);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Result<Vec<String>, FeedError> {
        let mut lines = Vec::new();
        let mut splitter = LineSplitter::default();
        for chunk in chunks {
            splitter.push(chunk, |line| {
                lines.push(String::from_utf8_lossy(line).into_owned())
            })?;
        }
        splitter.finish(|line| lines.push(String::from_utf8_lossy(line).into_owned()))?;
        Ok(lines)
    }

    #[test]
    fn lines_survive_any_chunking() {
        let text = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}";
        for cut in 0..text.len() {
            let (left, right) = text.split_at(cut);
            assert_eq!(
                split(&[left, right]).expect("short lines"),
                ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn an_endless_line_is_refused_without_growing() {
        let chunk = vec![b'x'; 64 * 1024];
        let mut splitter = LineSplitter::default();
        let mut outcome = Ok(());
        for _ in 0..(MAX_LINE_BYTES / chunk.len() + 2) {
            outcome = splitter.push(&chunk, |_| {});
            if outcome.is_err() {
                break;
            }
        }
        assert_eq!(outcome, Err(FeedError::LineTooLong(MAX_LINE_BYTES)));
        assert!(splitter.partial.len() <= MAX_LINE_BYTES);
    }

    #[test]
    fn queries_need_a_cursor_or_a_window_and_never_send_top() {
        assert!(FeedQuery::default().params().is_err());
        let too_far = FeedQuery::window(Bound::Ago(MAX_WINDOW + Duration::from_secs(1)), None);
        assert!(too_far.params().is_err());
        let mut query = FeedQuery::session("abc");
        query.minimums.push((Score::Overall, 0));
        assert!(query.params().is_err());
        query.minimums = vec![(Score::Malware, 90)];
        query.domains.push("*.xyz".into());
        let params = query.params().expect("valid");
        assert_eq!(
            params,
            [
                ("sessionID", "abc".to_owned()),
                ("domain", "*.xyz".to_owned()),
                ("malware_min", "90".to_owned())
            ]
        );
        assert!(params.iter().all(|(name, _)| *name != "top"));
    }

    #[test]
    fn recorded_lines_parse_and_rdap_records_are_skipped() {
        let rdap = r#"{"timestamp":"2026-01-16T10:20:07Z","domain":"maitre-parfumeur.com","raw_record":{"requests":[{"data":"{}"}]},"parsed_record":{"parsed_fields":{}}}"#;
        let line: FeedLine = serde_json::from_str(rdap).expect("rdap line");
        assert_eq!(line.domain, "maitre-parfumeur.com");
        let risk = r#"{"timestamp":"2025-09-16T13:34:07Z","domain":"jiaoyisuo.live","phishing_risk":null,"malware_risk":null,"spam_risk":null,"proximity_risk":70,"overall_risk":70}"#;
        let line: FeedLine = serde_json::from_str(risk).expect("risk line");
        assert_eq!((line.overall_risk, line.malware_risk), (Some(70), None));
    }
}
