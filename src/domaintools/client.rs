//! The DomainTools HTTP client: one shared connection pool, HMAC-signed requests, one method
//! per endpoint, and one place where HTTP statuses and error envelopes become typed errors.

use std::time::Duration;

use bytes::BytesMut;
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::auth::{self, Credentials, SignHash};
use super::error::{Error, Result};
use super::types::{ErrorEnvelope, IrisResponse};

/// Where DomainTools lives.
pub const DEFAULT_BASE_URL: &str = "https://api.domaintools.com";

/// Answers larger than this are refused: the largest real answers (reverse whois with 25,000
/// domains) are well under 1 MiB, so anything near this is broken or hostile.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// How the client finds an outbound proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proxy {
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the process environment (reqwest's default).
    FromEnvironment,
    /// Always connect directly.
    None,
    /// Every request through this proxy URL.
    Url(String),
}

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. [`DEFAULT_BASE_URL`] or a local fake; a path prefix is allowed and is not
    /// part of the signed path.
    pub base_url: String,
    /// Longest time one upstream call may take, connection included.
    pub timeout: Duration,
    /// Longest time to establish a connection.
    pub connect_timeout: Duration,
    /// Outbound proxy.
    pub proxy: Proxy,
    /// Sent as `app_partner` on every call (DomainTools' integration analytics).
    pub app_partner: String,
    /// Sent as `app_version` on every call.
    pub app_version: String,
}

impl ClientConfig {
    /// Defaults for the real API with the given identification.
    pub fn new(app_partner: impl Into<String>, app_version: impl Into<String>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            timeout: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(3),
            proxy: Proxy::FromEnvironment,
            app_partner: app_partner.into(),
            app_version: app_version.into(),
        }
    }
}

/// Who is calling: the credentials to sign with and the `app_name` to report (the MISP module).
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The account.
    pub credentials: &'a Credentials,
    /// Reported as `app_name`.
    pub app_name: &'a str,
}

/// A DomainTools API client. Cheap to clone; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    timeout: Duration,
    app_partner: String,
    app_version: String,
}

impl Client {
    /// Builds the client and its connection pool.
    pub fn new(config: ClientConfig) -> Result<Self> {
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&base_url)
            .map_err(|e| Error::Config(format!("base URL {base_url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "base URL {base_url:?} must start with https:// (or http:// for a local fake)"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("misp-domaintools/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60));
        builder = match &config.proxy {
            Proxy::FromEnvironment => builder,
            Proxy::None => builder.no_proxy(),
            Proxy::Url(url) => builder.proxy(
                reqwest::Proxy::all(url)
                    .map_err(|_| Error::Config(format!("proxy URL {url:?}")))?,
            ),
        };
        let http = builder
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base_url,
            timeout: config.timeout,
            app_partner: config.app_partner,
            app_version: config.app_version,
        })
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET /v1/account`: the account's products, limits and usage.
    pub async fn account(&self, caller: Caller<'_>) -> Result<Value> {
        self.call(caller, Method::GET, "/v1/account", &[]).await
    }

    /// `POST /v1/iris-investigate/` with the given search parameters (`domain`, `ip`,
    /// `search_hash`, `position`, …), sent as a form like the official client does.
    pub async fn iris_investigate(
        &self,
        caller: Caller<'_>,
        params: &[(&str, &str)],
    ) -> Result<IrisResponse> {
        self.call(caller, Method::POST, "/v1/iris-investigate/", params)
            .await
    }

    /// `POST /v1/iris-enrich/` for up to 100 domains.
    pub async fn iris_enrich(&self, caller: Caller<'_>, domains: &[&str]) -> Result<IrisResponse> {
        if domains.is_empty() || domains.len() > 100 {
            return Err(Error::InvalidInput(format!(
                "Iris Enrich takes 1 to 100 domains per call, not {}",
                domains.len()
            )));
        }
        let joined = domains.join(",");
        self.call(
            caller,
            Method::POST,
            "/v1/iris-enrich/",
            &[("domain", joined.as_str())],
        )
        .await
    }

    /// Sends one signed request and decodes the answer. Classic and Iris endpoints wrap their
    /// data in `{"response": …}`; Iris Detect does not, so the wrapper is removed when present.
    pub async fn call<T: DeserializeOwned>(
        &self,
        caller: Caller<'_>,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<T> {
        let body = self.send(caller, method, path, params).await?;
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| Error::Decode(format!("{path}: not JSON: {e}")))?;
        let value = match value {
            Value::Object(mut map) if map.contains_key("response") => {
                map.remove("response").unwrap_or(Value::Null)
            }
            other => other,
        };
        serde_json::from_value(value)
            .map_err(|e| Error::Decode(format!("{path}: unexpected shape: {e}")))
    }

    /// Sends one signed request; returns the body of a 2xx answer, or the typed error.
    async fn send(
        &self,
        caller: Caller<'_>,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<bytes::Bytes> {
        let timestamp = auth::timestamp(Utc::now());
        let signature = auth::sign(caller.credentials, &timestamp, path, SignHash::Sha256);
        // The official client's parameter order: identification, auth, then the endpoint's own.
        let mut all: Vec<(&str, &str)> = Vec::with_capacity(params.len() + 6);
        all.push(("app_partner", &self.app_partner));
        all.push(("app_name", caller.app_name));
        all.push(("app_version", &self.app_version));
        all.push(("api_username", caller.credentials.username()));
        all.push(("timestamp", &timestamp));
        all.push(("signature", &signature));
        all.extend_from_slice(params);

        let url = format!("{}{path}", self.base_url);
        let request = if method == Method::GET {
            self.http.get(url).query(&all)
        } else {
            self.http.request(method, url).form(&all)
        };
        let response = request
            .send()
            .await
            .map_err(|e| Error::from_reqwest(e, self.timeout))?;
        let status = response.status();
        let body = read_capped(response, self.timeout).await?;
        if status.is_success() {
            return Ok(body);
        }
        Err(api_error(status, &body))
    }
}

/// Reads a body, refusing absurd sizes.
async fn read_capped(mut response: reqwest::Response, timeout: Duration) -> Result<bytes::Bytes> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Error::from_reqwest(e, timeout))?
    {
        if buf.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Error::Decode(format!(
                "answer larger than {} MiB",
                MAX_BODY_BYTES / 1024 / 1024
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Maps a non-2xx answer to [`Error::Api`], taking the message from the error envelope.
fn api_error(status: StatusCode, body: &[u8]) -> Error {
    let message = serde_json::from_slice::<ErrorEnvelope>(body)
        .ok()
        .and_then(|envelope| envelope.error)
        .and_then(|error| error.message)
        .filter(|message| !message.trim().is_empty())
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("no error message in the answer")
                .to_owned()
        });
    Error::Api {
        status: status.as_u16(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelope_message_is_used() {
        let body = include_bytes!("../../fixtures/domaintools/error-403-bad-credentials.json");
        assert_eq!(
            api_error(StatusCode::FORBIDDEN, body).to_string(),
            "DomainTools API error 403: The credentials you entered do not match an active account."
        );
    }

    #[test]
    fn non_json_error_body_falls_back_to_the_reason_phrase() {
        assert_eq!(
            api_error(StatusCode::INTERNAL_SERVER_ERROR, b"oops not json").to_string(),
            "DomainTools API error 500: Internal Server Error"
        );
    }

    #[test]
    fn base_url_must_be_http() {
        let mut config = ClientConfig::new("MISP", "0");
        config.base_url = "ftp://example.com".into();
        assert!(matches!(Client::new(config), Err(Error::Config(_))));
    }
}
