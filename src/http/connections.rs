//! Serving connections when some clients are hostile: every connection is bounded in time
//! (headers, idle, writes) and in number, and the process's open-files limit is raised to what
//! the system allows.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tower::ServiceExt;

/// How long and how many connections may stay open.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Most connections open at once (further bounded by the open-files limit).
    pub max_connections: usize,
    /// Longest wait for a request's complete headers (HTTP/1: from the moment the connection
    /// waits for a request, so it also bounds an idle kept-alive connection).
    pub header_read_timeout: Duration,
    /// A connection with no request in progress for this long is closed.
    pub idle_timeout: Duration,
    /// A write the client does not take within this long closes the connection.
    pub write_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            // Longer than clients keep idle pooled connections before reusing them in a
            // burst: a server closing a kept-alive connection as the client sends on it
            // loses that request.
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Open-files descriptors kept back from the connection cap for everything else (upstream
/// connections, Redis, the listener, logs).
const RESERVED_FILES: u64 = 64;

/// Raises the soft open-files limit to the hard one (systemd starts services at a soft 1024)
/// and logs both; returns the soft limit now in force.
pub fn raise_open_files_limit() -> Option<u64> {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
    let raised = rlimit::increase_nofile_limit(hard).unwrap_or(soft);
    tracing::info!(
        soft_before = soft,
        hard,
        soft_now = raised,
        "open-files limit"
    );
    Some(raised)
}

/// The connection cap: the configured one, or what the open-files limit leaves room for
/// (each connection may need a second descriptor for its upstream call).
pub fn effective_cap(configured: usize, open_files: Option<u64>) -> usize {
    let by_files = open_files.map_or(usize::MAX, |limit| {
        usize::try_from(limit.saturating_sub(RESERVED_FILES) / 2).unwrap_or(usize::MAX)
    });
    configured.min(by_files).max(1)
}

/// What the watchdog of one connection knows.
#[derive(Debug)]
struct Activity {
    /// Requests in progress (from the call of the service until the reply body is dropped).
    busy: AtomicUsize,
    /// When `busy` last changed (or the connection opened).
    changed: Mutex<Instant>,
    /// Told when the connection is evicted to make room.
    evict: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            busy: AtomicUsize::new(0),
            changed: Mutex::new(Instant::now()),
            evict: Notify::new(),
        }
    }

    fn touch(&self) {
        *self.changed.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn is_idle(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0
    }

    /// Completes once the connection has had no request in progress for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            if !self.is_idle() {
                tokio::time::sleep(idle).await;
                continue;
            }
            let deadline = *self.changed.lock().unwrap_or_else(|e| e.into_inner()) + idle;
            if Instant::now() >= deadline && self.is_idle() {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One request in progress; dropped with the reply body.
struct Busy(Arc<Activity>);

impl Busy {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::AcqRel);
        activity.touch();
        Self(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

/// The open connections, oldest first.
#[derive(Debug)]
struct Registry {
    cap: usize,
    open: Mutex<BTreeMap<u64, Arc<Activity>>>,
    next: AtomicU64,
}

impl Registry {
    /// Admits a new connection: at the cap the oldest idle one is evicted to make room;
    /// `None` when every connection is busy.
    fn admit(&self) -> Option<(u64, Arc<Activity>)> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= self.cap {
            let oldest_idle = open
                .iter()
                .find(|(_, activity)| activity.is_idle())
                .map(|(id, _)| *id)?;
            if let Some(evicted) = open.remove(&oldest_idle) {
                evicted.evict.notify_one();
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new());
        open.insert(id, activity.clone());
        Some((id, activity))
    }

    fn remove(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

/// What a connection refused at the cap is told before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 55\r\nconnection: close\r\n\r\n{\"error\": \"Too many open connections; try again later.\"}";

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests finish
/// for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open_files = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|(soft, _)| soft);
    let cap = effective_cap(limits.max_connections, open_files);
    if cap < limits.max_connections {
        tracing::warn!(
            cap,
            configured = limits.max_connections,
            open_files,
            "connections capped by the open-files limit"
        );
    }
    let registry = Arc::new(Registry {
        cap,
        open: Mutex::new(BTreeMap::new()),
        next: AtomicU64::new(0),
    });
    let limits = Arc::new(limits);
    // Dropping the sender tells every connection to finish; each holds a receiver until done.
    let (stop_tx, stop_rx) = watch::channel(());
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    let mut accept_errors_logged = None::<Instant>;
    loop {
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors (EMFILE/ENFILE) or a connection reset before it was
                    // taken: wait a little instead of spinning, and say so once a minute.
                    if accept_errors_logged.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                        tracing::warn!(%error, "cannot accept a connection");
                        accept_errors_logged = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some((id, activity)) = registry.admit() else {
            refuse(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let limits = limits.clone();
        let registry = registry.clone();
        let mut stop_rx = stop_rx.clone();
        let done_rx = done_rx.clone();
        tokio::spawn(async move {
            serve_one(stream, app, &limits, &activity, &mut stop_rx).await;
            registry.remove(id);
            drop(done_rx);
        });
    }
    drop(stop_tx);
    drop(done_rx);
    // Every connection task holds a receiver until it ends.
    if tokio::time::timeout(grace, done_tx.closed()).await.is_err() {
        tracing::warn!(
            grace_s = grace.as_secs_f64(),
            "requests still in flight after the shutdown grace period; stopping anyway"
        );
    }
    Ok(())
}

/// Tells a connection over the cap so, without waiting for it.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(REFUSAL);
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = tokio::time::timeout(Duration::from_millis(100), stream.shutdown()).await;
    });
}

async fn serve_one(
    stream: TcpStream,
    app: Router,
    limits: &ConnectionLimits,
    activity: &Arc<Activity>,
    stop: &mut watch::Receiver<()>,
) {
    let mut timed = tokio_io_timeout::TimeoutStream::new(stream);
    timed.set_write_timeout(Some(limits.write_timeout));
    let io = TokioIo::new(Box::pin(timed));
    let tracked = activity.clone();
    let service = tower::service_fn(move |request: Request<Incoming>| {
        let busy = Busy::begin(&tracked);
        let app = app.clone();
        async move {
            let response = app.oneshot(request.map(Body::new)).await?;
            // The request stays in progress until its reply has been handed over.
            Ok::<_, Infallible>(response.map(move |body| {
                Body::new(body.map_frame(move |frame| {
                    let _in_progress = &busy;
                    frame
                }))
            }))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64);
    let connection = builder.serve_connection(io, TowerToHyperService::new(service));
    let mut connection = std::pin::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::trace!(error = %error, "connection ended with an error");
                }
                return;
            }
            () = activity.evict.notified() => {
                tracing::debug!("idle connection closed to make room for a new one");
                return;
            }
            () = activity.idle_for(limits.idle_timeout) => return,
            _ = stop.changed(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_upstream_descriptors() {
        assert_eq!(effective_cap(4096, Some(1024)), 480);
        assert_eq!(effective_cap(4096, Some(1_048_576)), 4096);
        assert_eq!(effective_cap(100, None), 100);
        assert_eq!(effective_cap(4096, Some(10)), 1);
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room() {
        let registry = Registry {
            cap: 2,
            open: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
        };
        let (_, first) = registry.admit().unwrap();
        let (_, second) = registry.admit().unwrap();
        let busy_first = Busy::begin(&first);
        let (third_id, _) = registry.admit().expect("the idle second one is evicted");
        assert_eq!(third_id, 2);
        assert!(!registry.open.lock().unwrap().contains_key(&1));
        let _busy_third = Busy::begin(&registry.open.lock().unwrap()[&third_id].clone());
        assert!(registry.admit().is_none(), "every connection is busy");
        drop(busy_first);
        assert!(registry.admit().is_some(), "the first is idle again");
        drop(second);
    }
}
