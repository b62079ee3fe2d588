//! The project's fake DomainTools API as a standalone process, for the side-by-side benchmark
//! (`bench/run.sh`): both servers, ours and the Python reference, talk to the same fake, so the
//! upstream they see is identical and its request log counts the calls each one makes.
//!
//! ```sh
//! cargo run --release --example fake_api -- --port 47300 --latency-ms 100 \
//!     --user bench-user --key bench-key
//! ```
//!
//! Besides the DomainTools paths the fake serves, a few control paths under `/_fake/` (a prefix
//! no DomainTools path has) let the benchmark steer and read it between phases:
//! - `GET /_fake/stats`: `{"total": N, "paths": {"/v1/account": n, …}}`, calls logged since the
//!   last reset (rejected ones included);
//! - `POST /_fake/reset`: forgets the request log (the log grows with every call, so the
//!   benchmark resets it between phases to keep this process small);
//! - `POST /_fake/latency?ms=N`: the extra latency added before every answer.
//!
//! It listens on 127.0.0.1 only: the fake has no business on any other interface.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use domaintools_fake::FakeApi;
use serde::Deserialize;
use serde_json::{json, Value};

/// A fake DomainTools API on 127.0.0.1, with benchmark control paths under /_fake/.
#[derive(Debug, Parser)]
struct Args {
    /// Port on 127.0.0.1 (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Latency added before every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// An account to accept besides the built-in demo one (needs --key).
    #[arg(long, requires = "key")]
    user: Option<String>,
    /// The API key of --user.
    #[arg(long, requires = "user")]
    key: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Latency {
    ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut fake = FakeApi::new();
    if let (Some(user), Some(key)) = (&args.user, &args.key) {
        fake = fake.with_user(user, key);
    }
    fake.set_latency(Duration::from_millis(args.latency_ms));

    let control = Router::new()
        .route("/_fake/stats", get(stats))
        .route("/_fake/reset", post(reset))
        .route("/_fake/latency", post(set_latency))
        .with_state(fake.clone());
    // The control routes are matched first; everything else falls through to the fake's own
    // handler, exactly as the tests use it.
    let app = control.merge(fake.router());

    // The server's bind (listen backlog 4096), so a burst of connections is not throttled
    // by SYN retries here rather than measured in the servers under test.
    let listener = domaintools_fake::bind_loopback(args.port)
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    // The one line the benchmark script reads to learn the port.
    println!(
        "fake DomainTools API listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn stats(State(fake): State<FakeApi>) -> Json<Value> {
    let mut paths: BTreeMap<String, u64> = BTreeMap::new();
    let log = fake.requests();
    for request in &log {
        *paths.entry(request.path.clone()).or_default() += 1;
    }
    Json(json!({"total": log.len(), "paths": paths}))
}

async fn reset(State(fake): State<FakeApi>) -> Json<Value> {
    fake.clear_requests();
    Json(json!({"reset": true}))
}

async fn set_latency(State(fake): State<FakeApi>, Query(latency): Query<Latency>) -> Json<Value> {
    fake.set_latency(Duration::from_millis(latency.ms));
    Json(json!({"latency_ms": latency.ms}))
}
