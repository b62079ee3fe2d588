//! DomainTools Real-Time Threat Feeds for MISP (domain feeds, and the IP feeds as `ip-dst`):
//! one poller per feed follows a DomainTools
//! `sessionID` cursor, puts the lines into time buckets ([`store`]) kept as a MISP-format feed
//! under `--feeds-dir`, and the server serves that directory to MISP (`/feeds/<feed>/…`), plus
//! the Domain Hotlist as a freetext feed of every unexpired entry ([`hotlist`]).
//!
//! Replicas: the directory is the whole state, so replicas share it on one volume and exactly
//! one of them polls (`--feeds` set on one replica only); the others serve. A Redis leader lock
//! would let every replica run the same settings, but is not built yet.

pub mod hotlist;
pub mod leader;
pub mod metrics;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use domaintools::feeds::{Feed, FeedClient, FeedClientConfig, FeedQuery, Score};
use domaintools::ExtraRoots;
use domaintools::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use self::hotlist::Hotlist;
use self::metrics::FeedMetrics;
use self::store::{FeedStore, StoreSettings};

/// The path of the hotlist's freetext feed under `/feeds/domainhotlist/`.
pub const HOTLIST_FILE: &str = "freetext.txt";

/// What the feeds need from the command line.
#[derive(Debug, Clone)]
pub struct FeedsSettings {
    /// The feeds to poll and serve.
    pub feeds: Vec<Feed>,
    /// Where the MISP feeds are kept.
    pub dir: PathBuf,
    /// What MISP must send as `Authorization: Bearer …`; none: nothing is served (the OpenCTI
    /// import polls without serving).
    pub token: Option<SecretString>,
    /// Time between two polls of one feed.
    pub poll_interval: Duration,
    /// Redis of the replicas' leases (None: this process polls every feed).
    pub lock_url: Option<SecretString>,
    /// Domain patterns sent with every feed.
    pub domains: Vec<String>,
    /// Risk minimums sent with the risk feeds.
    pub minimums: Vec<(Score, u8)>,
    /// Bucket length, grace, retention, `to_ids`.
    pub store: StoreSettings,
    /// Authorities trusted besides the built-in roots (`--ca-file`), for the feeds API and
    /// a `rediss://` lock.
    pub roots: ExtraRoots,
    /// The outbound proxy for the feeds API (`--proxy`; none in demo mode).
    pub proxy: domaintools::Proxy,
}

/// The running feeds: pollers in the background, the directory served. Cheap to clone.
#[derive(Clone)]
pub struct FeedsService {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    token: Option<SecretString>,
    feeds: Vec<Feed>,
    stores: Vec<(Feed, Mutex<FeedStore>)>,
    hotlist: Option<Mutex<Hotlist>>,
    metrics: FeedMetrics,
}

impl std::fmt::Debug for FeedsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedsService")
            .field("dir", &self.inner.dir)
            .field("feeds", &self.inner.feeds)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The cursor of `feed` for this API key and filters: stable across restarts, so a restarted
/// poller continues where the previous one stopped, and new filters start a new cursor; the
/// key itself never leaves the hash.
fn session_id(api_key: &SecretString, feed: Feed, query: &FeedQuery) -> String {
    let digest = Sha256::digest(format!(
        "{}\n{}\n{:?}\n{:?}",
        api_key.expose_secret(),
        feed.name(),
        query.domains,
        query.minimums
    ));
    format!(
        "misp-domaintools-{}-{}",
        feed.name(),
        &hex::encode(digest)[..20]
    )
}

impl FeedsService {
    /// Opens the stores (with what an earlier run left) and starts one poller per feed
    /// against `api_url` with `api_key`.
    pub fn start(
        settings: FeedsSettings,
        api_url: &str,
        api_key: SecretString,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.dir)
            .with_context(|| format!("cannot create --feeds-dir {}", settings.dir.display()))?;
        let mut stores = Vec::new();
        let mut hotlist = None;
        for feed in &settings.feeds {
            if *feed == Feed::DomainHotlist {
                hotlist = Some(Mutex::new(Hotlist::open(&settings.dir)?));
            } else {
                let store = FeedStore::open(&settings.dir, *feed, settings.store.clone())
                    .with_context(|| format!("cannot open the {feed} feed store"))?;
                stores.push((*feed, Mutex::new(store)));
            }
        }
        let mut client_config = FeedClientConfig::new(api_key.clone(), env!("CARGO_PKG_VERSION"));
        client_config.base_url = api_url.to_owned();
        client_config.roots = settings.roots.clone();
        client_config.proxy = settings.proxy.clone();
        let client = FeedClient::new(client_config)?;
        let service = Self {
            inner: Arc::new(Inner {
                dir: settings.dir.clone(),
                token: settings.token.clone(),
                feeds: settings.feeds.clone(),
                stores,
                hotlist,
                metrics: FeedMetrics::new(&settings.feeds),
            }),
        };
        for feed in settings.feeds {
            let service = service.clone();
            let client = client.clone();
            // Domain patterns filter domains: the IP feeds get none.
            let domains = if feed.carries_ips() {
                Vec::new()
            } else {
                settings.domains.clone()
            };
            let mut query = FeedQuery {
                domains,
                ..FeedQuery::default()
            };
            if feed.has_scores() {
                query.minimums = settings.minimums.clone();
            }
            query.session_id = Some(session_id(&api_key, feed, &query));
            let lock_url = settings.lock_url.clone();
            let roots = settings.roots.clone();
            let interval = settings.poll_interval;
            // Long enough to survive a slow poll, short enough that a dead poller is replaced
            // within a few intervals.
            let lease = (interval * 3).max(Duration::from_secs(3));
            tokio::spawn(async move {
                let cursor = query.session_id.clone().unwrap_or_default();
                let mut leases = None;
                let mut leading = false;
                loop {
                    let lead = match &lock_url {
                        None => true,
                        Some(url) => {
                            if leases.is_none() {
                                match leader::Leases::connect(url, &roots, lease).await {
                                    Ok(connected) => leases = Some(connected),
                                    Err(error) => {
                                        service.inner.metrics.failure(feed, "lease");
                                        tracing::warn!(%feed, error = %format!("{error:#}"), "feed lease unavailable: not polling");
                                    }
                                }
                            }
                            match &leases {
                                Some(leases) => leases.hold(&cursor).await,
                                None => false,
                            }
                        }
                    };
                    service.inner.metrics.leading(feed, lead);
                    if lead {
                        if !leading && lock_url.is_some() {
                            tracing::info!(%feed, "this replica now polls the feed");
                            service.reload(feed);
                        }
                        leading = true;
                        service.poll_once(&client, feed, &query).await;
                    } else {
                        leading = false;
                    }
                    tokio::time::sleep(interval).await;
                }
            });
        }
        Ok(service)
    }

    /// Re-reads `feed`'s files, which another replica may have written.
    fn reload(&self, feed: Feed) {
        let outcome = if feed == Feed::DomainHotlist {
            self.inner
                .hotlist
                .as_ref()
                .map(|hotlist| Hotlist::open(&self.inner.dir).map(|fresh| *lock(hotlist) = fresh))
        } else {
            self.inner
                .stores
                .iter()
                .find(|(f, _)| *f == feed)
                .map(|(_, store)| lock(store).reopen())
        };
        if let Some(Err(error)) = outcome {
            tracing::warn!(%feed, %error, "cannot re-read the feed directory");
        }
    }

    async fn poll_once(&self, client: &FeedClient, feed: Feed, query: &FeedQuery) {
        let metrics = &self.inner.metrics;
        let (polled, stored) = if feed == Feed::DomainHotlist {
            let Some(hotlist) = &self.inner.hotlist else {
                return;
            };
            let result = client
                .poll(feed, query, |line| {
                    metrics.line(feed);
                    lock(hotlist).add(&line, Utc::now());
                })
                .await;
            let saved = lock(hotlist).save(Utc::now());
            (result, saved)
        } else {
            let Some((_, store)) = self.inner.stores.iter().find(|(f, _)| *f == feed) else {
                return;
            };
            let result = client
                .poll(feed, query, |line| {
                    metrics.line(feed);
                    lock(store).add(&line);
                })
                .await;
            // Written even after a failed poll: the lines that did arrive are already off
            // DomainTools' cursor.
            let flushed = {
                let mut store = lock(store);
                if store.dropped > 0 {
                    tracing::warn!(%feed, dropped = store.dropped,
                        "feed lines dropped: an hour had more than 50 full events");
                    metrics.dropped(feed, store.dropped);
                    store.dropped = 0;
                }
                store.flush(Utc::now())
            };
            if let Ok(sealed) = &flushed {
                metrics.sealed(feed, *sealed);
            }
            (result, flushed.map(drop))
        };
        match &polled {
            Ok(_) => metrics.success(feed, Utc::now().timestamp()),
            Err(error) => {
                metrics.failure(feed, error.kind());
                tracing::warn!(%feed, %error, "feed poll failed");
            }
        }
        if let Err(error) = stored {
            metrics.failure(feed, "storage");
            tracing::warn!(%feed, %error, "cannot write the feed directory");
        }
    }

    /// The pollers' metrics, for `/metrics`.
    pub fn metrics(&self) -> &FeedMetrics {
        &self.inner.metrics
    }

    /// The `/feeds/…` routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/feeds/{feed}/{file}", get(serve_file))
            .with_state(self.clone())
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.inner.token else {
            return false;
        };
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
        else {
            return false;
        };
        bool::from(
            given
                .trim()
                .as_bytes()
                .ct_eq(token.expose_secret().as_bytes()),
        )
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// Whether `If-None-Match` names `etag` (or `*`).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .map(str::trim)
                .any(|tag| tag == etag || tag == "*" || tag.strip_prefix("W/") == Some(etag))
        })
}

fn answer(headers: &HeaderMap, etag: String, content_type: &'static str, body: Body) -> Response {
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    if not_modified(headers, &etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response();
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::ETAG, etag_value),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-cache"),
            ),
        ],
        body,
    )
        .into_response()
}

/// A uuid-shaped name (36 characters of hex digits and hyphens): nothing else reaches the disk.
fn is_uuid(name: &str) -> bool {
    name.len() == 36
        && name
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte) || byte == b'-')
}

async fn serve_file(
    State(service): State<FeedsService>,
    UrlPath((feed, file)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !service.authorised(&headers) {
        return plain(
            StatusCode::UNAUTHORIZED,
            "a valid feeds token is required (Authorization: Bearer …)\n",
        );
    }
    let Some(feed) = Feed::from_name(&feed).filter(|feed| service.inner.feeds.contains(feed))
    else {
        return plain(StatusCode::NOT_FOUND, "no such feed\n");
    };
    if feed == Feed::DomainHotlist {
        let Some(hotlist) = &service.inner.hotlist else {
            return plain(StatusCode::NOT_FOUND, "no such feed\n");
        };
        if file != HOTLIST_FILE {
            return plain(
                StatusCode::NOT_FOUND,
                "the hotlist is served as freetext.txt\n",
            );
        }
        let text = lock(hotlist).freetext(Utc::now());
        let etag = format!(
            "\"{}\"",
            &hex::encode(Sha256::digest(text.as_bytes()))[..32]
        );
        return answer(
            &headers,
            etag,
            "text/plain; charset=utf-8",
            Body::from(text),
        );
    }
    let content_type = match file.as_str() {
        "manifest.json" => "application/json",
        "hashes.csv" => "text/csv; charset=utf-8",
        name if name.strip_suffix(".json").is_some_and(is_uuid) => "application/json",
        _ => return plain(StatusCode::NOT_FOUND, "no such file\n"),
    };
    let path = service.inner.dir.join(feed.name()).join(&file);
    match open_file(&path).await {
        Ok((etag, body)) => answer(&headers, etag, content_type, body),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            plain(StatusCode::NOT_FOUND, "no such event\n")
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read a feed file");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the feed file cannot be read\n",
            )
        }
    }
}

/// A file's ETag (size and modification time: every write is a rename to a new file) and its
/// contents as a stream of chunks, so a large `hashes.csv` is never held whole.
async fn open_file(path: &Path) -> std::io::Result<(String, Body)> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let metadata = file.metadata()?;
    let modified = metadata
        .modified()
        .ok()
        .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |at| at.as_nanos());
    let etag = format!("\"{:x}-{modified:x}\"", metadata.len());
    // A blocking reader feeds a short channel: the body holds a few chunks at a time.
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        loop {
            let mut chunk = vec![0u8; 64 * 1024];
            match file.read(&mut chunk) {
                Ok(0) => return,
                Ok(read) => {
                    chunk.truncate(read);
                    if sender.blocking_send(Ok(bytes::Bytes::from(chunk))).is_err() {
                        return;
                    }
                }
                Err(error) => {
                    let _ = sender.blocking_send(Err(error));
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    Ok((etag, Body::from_stream(stream)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_stable_per_key_and_feed_and_hide_the_key() {
        let key = SecretString::from("secret-key-123");
        let all = FeedQuery::default();
        let id = session_id(&key, Feed::Nod, &all);
        assert_eq!(id, session_id(&key, Feed::Nod, &all));
        assert_ne!(id, session_id(&key, Feed::Nad, &all));
        let filtered = FeedQuery {
            domains: vec!["*.bank".into()],
            ..FeedQuery::default()
        };
        assert_ne!(id, session_id(&key, Feed::Nod, &filtered));
        assert!(!id.contains("secret"));
    }

    #[test]
    fn only_uuid_names_reach_the_disk() {
        assert!(is_uuid("0b7d5d1e-4a77-5c1e-8a3f-0123456789ab"));
        assert!(!is_uuid("../../../../etc/passwd-0000000000000"));
        assert!(!is_uuid("manifest"));
    }
}
