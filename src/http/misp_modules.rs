//! The misp-modules server this one serves beside (`--misp-modules-url`): MISP has one module
//! server URL per family, so pointing it here must not hide misp-modules' own modules.
//! `/modules` lists ours and the upstream's (ours win a name clash) from a listing refreshed in
//! the background, so a slow or dead upstream never delays it; `/query` for a module we do not
//! serve is forwarded as it came and the answer streamed back as it comes.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::stream;
use serde_json::Value;
use url::Url;

use super::metrics::Metrics;

/// How to reach the misp-modules server.
#[derive(Clone)]
pub struct MispModulesConfig {
    /// Its base URL (`http://127.0.0.1:6666`).
    pub url: Url,
    /// How long a forwarded query may take in all (misp-modules' own default is 300 s).
    pub budget: Duration,
}

/// The URL may carry a password: `Debug` (and so `Options`' and `AppState`'s) shows it without.
impl std::fmt::Debug for MispModulesConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MispModulesConfig")
            .field("url", &shown(&self.url))
            .field("budget", &self.budget)
            .finish()
    }
}

/// How often the upstream listing is fetched again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// How long one listing fetch may take: it runs in the background, but a hung upstream must
/// not stop later refreshes.
const LISTING_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest upstream listing read (misp-modules 3.1 lists 170 modules in 200 KB).
const MAX_LISTING_BYTES: usize = 16 * 1024 * 1024;
/// The largest forwarded answer streamed back; past it the answer is cut.
pub const MAX_ANSWER_BYTES: u64 = 256 * 1024 * 1024;

/// Why the upstream could not be used. The `Display` text is what the MISP user reads; the
/// URL in it never carries credentials.
#[derive(Debug, thiserror::Error)]
enum MispModulesError {
    #[error("the misp-modules server at {0} could not be reached ({1})")]
    Unreachable(String, String),
    #[error("the misp-modules server at {0} did not answer within {1} s")]
    Timeout(String, u64),
    #[error("the misp-modules server at {0} answered /modules with HTTP {1}")]
    Status(String, u16),
    #[error("the misp-modules server at {0} sent a /modules listing that is not a JSON list of modules ({1})")]
    Listing(String, String),
}

/// The upstream and the last listing it gave.
#[derive(Debug)]
pub struct MispModules {
    config: MispModulesConfig,
    shown: String,
    http: reqwest::Client,
    /// Our descriptors, then the upstream's that do not clash, as `/modules` serves them;
    /// `None` until a fetch succeeded, and again after one failed.
    merged: RwLock<Option<Bytes>>,
}

impl MispModules {
    /// An upstream at `config.url`; nothing is fetched yet.
    pub fn new(config: MispModulesConfig) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            // The answer must come back byte for byte: no transparent decompression.
            .no_gzip()
            // misp-modules runs beside MISP; a proxy meant for the internet is not for it.
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("the misp-modules client cannot be built: {e}"))?;
        Ok(Self {
            shown: shown(&config.url),
            config,
            http,
            merged: RwLock::new(None),
        })
    }

    /// The upstream's URL without credentials, as logs and errors show it.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The merged `/modules` body, when the last fetch succeeded.
    pub fn listing(&self) -> Option<Bytes> {
        self.merged.read().ok().and_then(|m| m.clone())
    }

    /// Fetches the upstream listing once and merges it with `ours` (a JSON array of our
    /// descriptors). On failure the listing is ours alone until the next success.
    pub(crate) async fn refresh(&self, ours: &Bytes, metrics: &Metrics) {
        match self.fetch_listing(ours).await {
            Ok((merged, count)) => {
                metrics.misp_modules_listing(true, count);
                if let Ok(mut slot) = self.merged.write() {
                    *slot = Some(merged);
                }
            }
            Err(error) => {
                metrics.misp_modules_listing(false, 0);
                tracing::warn!(%error, "serving our modules only until misp-modules answers");
                if let Ok(mut slot) = self.merged.write() {
                    *slot = None;
                }
            }
        }
    }

    async fn fetch_listing(&self, ours: &Bytes) -> Result<(Bytes, usize), MispModulesError> {
        let url = self.endpoint("modules");
        let request = self.http.get(url).timeout(LISTING_TIMEOUT).send();
        let mut response = request
            .await
            .map_err(|e| self.transport(e, LISTING_TIMEOUT))?;
        if !response.status().is_success() {
            return Err(MispModulesError::Status(
                self.shown.clone(),
                response.status().as_u16(),
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport(e, LISTING_TIMEOUT))?
        {
            if body.len() + chunk.len() > MAX_LISTING_BYTES {
                return Err(MispModulesError::Listing(
                    self.shown.clone(),
                    format!("larger than {MAX_LISTING_BYTES} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let listing = |e: String| MispModulesError::Listing(self.shown.clone(), e);
        let theirs: Vec<Value> =
            serde_json::from_slice(&body).map_err(|e| listing(e.to_string()))?;
        let mut merged: Vec<Value> =
            serde_json::from_slice(ours).map_err(|e| listing(e.to_string()))?;
        let our_names: Vec<String> = merged
            .iter()
            .filter_map(|d| d["name"].as_str().map(str::to_owned))
            .collect();
        let mut count = 0;
        for descriptor in theirs {
            let Some(name) = descriptor.get("name").and_then(Value::as_str) else {
                continue;
            };
            if our_names.iter().any(|n| n == name) {
                continue;
            }
            count += 1;
            merged.push(descriptor);
        }
        let bytes = serde_json::to_vec(&merged).map_err(|e| listing(e.to_string()))?;
        Ok((Bytes::from(bytes), count))
    }

    /// Forwards a `/query` body unchanged and streams the answer back: status, content type,
    /// length and body as misp-modules sent them. When misp-modules cannot be reached, the
    /// message for the user (the caller answers it like every other module problem).
    pub(crate) async fn forward(
        &self,
        body: Bytes,
        content_type: Option<HeaderValue>,
        module: &str,
        metrics: &Metrics,
    ) -> Result<Response, String> {
        let budget = self.config.budget;
        let mut request = self.http.post(self.endpoint("query")).timeout(budget);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(error) => {
                let error = self.transport(error, budget);
                metrics.misp_modules_query("unreachable");
                tracing::warn!(module.name = %module, %error, "forwarded query failed");
                return Err(format!("{module} is not served here, and {error}."));
            }
        };
        metrics.misp_modules_query("forwarded");
        let status =
            StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        // Passed on when the answer fits the bound, so MISP reads it exactly as misp-modules
        // sent it (chunked otherwise).
        let content_length = response
            .content_length()
            .filter(|length| *length <= MAX_ANSWER_BYTES);
        let shown = self.shown.clone();
        // Streamed, within the budget the request already carries, and cut past the size
        // bound so a runaway answer cannot fill memory anywhere on the way.
        let chunks = stream::unfold((response, 0u64), move |(mut response, sent)| {
            let shown = shown.clone();
            async move {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        let sent = sent + chunk.len() as u64;
                        if sent > MAX_ANSWER_BYTES {
                            tracing::warn!(upstream = %shown, "forwarded answer cut at the size bound");
                            return Some((
                                Err(std::io::Error::other("answer too large")),
                                (response, sent),
                            ));
                        }
                        Some((Ok(chunk), (response, sent)))
                    }
                    Ok(None) => None,
                    Err(error) => {
                        tracing::warn!(upstream = %shown, error = %domaintools::error::reqwest_chain(error), "forwarded answer broke off");
                        None
                    }
                }
            }
        });
        let mut out = Response::new(Body::from_stream(chunks));
        *out.status_mut() = status;
        if let Some(content_type) = content_type {
            out.headers_mut().insert(header::CONTENT_TYPE, content_type);
        }
        if let Some(length) = content_length {
            out.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        Ok(out)
    }

    fn endpoint(&self, path: &str) -> Url {
        let mut url = self.config.url.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/{path}"));
        url
    }

    fn transport(&self, error: reqwest::Error, budget: Duration) -> MispModulesError {
        if error.is_timeout() {
            MispModulesError::Timeout(self.shown.clone(), budget.as_secs())
        } else {
            MispModulesError::Unreachable(
                self.shown.clone(),
                domaintools::error::reqwest_chain(error),
            )
        }
    }
}

/// Runs [`MispModules::refresh`] now and then every [`REFRESH_EVERY`], for as long as the server.
pub(crate) async fn keep_fresh(upstream: Arc<MispModules>, ours: Bytes, metrics: Arc<Metrics>) {
    let mut ticks = tokio::time::interval(REFRESH_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        upstream.refresh(&ours, &metrics).await;
    }
}

/// `url` without user name and password.
fn shown(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.as_str().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show_and_paths_join() {
        let upstream = MispModules::new(MispModulesConfig {
            url: Url::parse("http://user:s3cret@127.0.0.1:6666/mm/").unwrap(),
            budget: Duration::from_secs(300),
        })
        .unwrap();
        assert_eq!(upstream.shown(), "http://127.0.0.1:6666/mm");
        assert!(!format!("{upstream:?}").contains("s3cret"), "{upstream:?}");
        assert_eq!(
            upstream.endpoint("query").as_str(),
            "http://user:s3cret@127.0.0.1:6666/mm/query"
        );
    }
}
