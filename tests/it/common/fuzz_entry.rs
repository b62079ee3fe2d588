//! The `/query` fuzzing entry point, shared by the cargo-fuzz target
//! (`fuzz/fuzz_targets/query.rs`, nightly) and its stable replay (`tests/it/fuzz_corpus.rs`), so
//! both drive exactly the same code: the whole router, body parsing to reply, in front of the
//! in-process fake DomainTools API. The fuzz target includes this file and `server.rs` by
//! `#[path]`, as siblings, hence `super::server`.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use misp_domaintools::http::Options;
use serde_json::Value;

use super::server::{TestRouter, TestServer, KEY, USER};

struct Harness {
    runtime: tokio::runtime::Runtime,
    router: TestRouter,
}

/// One runtime, one fake and one router for the whole run: building them per input would
/// make the fuzzer measure start-up instead of parsing.
fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let router = runtime.block_on(
            TestServer::builder()
                .options(Options {
                    hover_budget: Duration::from_secs(2),
                    query_budget: Duration::from_secs(2),
                    ..Options::default()
                })
                // Inputs without credentials still reach the modules and the fake.
                .default_credentials(USER, KEY)
                .client(|config| {
                    config.timeout = Duration::from_secs(2);
                    // Inputs that look up reverse whois would otherwise wait on its 10-a-minute
                    // limit.
                    config.learn_rate_limits = false;
                })
                .router(),
        );
        Harness { runtime, router }
    })
}

/// Posts `body` to `/query` and checks what any answer must be: HTTP 200 with a `results`
/// list (and any `error` a non-empty string), or 400 with an `error`; never a panic, a 5xx,
/// a body that is not a JSON object, or the API key.
pub fn query(body: &[u8]) -> Result<(), String> {
    let harness = harness();
    harness.runtime.block_on(async {
        let request = Request::post("/query")
            .body(Body::from(body.to_vec()))
            .map_err(|e| format!("request: {e}"))?;
        let (status, bytes) = harness.router.send(request).await?;
        let text = String::from_utf8_lossy(&bytes);
        if text.contains(KEY) {
            return Err("the reply holds the API key".to_owned());
        }
        let reply: Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("HTTP {status}, reply not JSON ({e}): {text:.200}"))?;
        let error = reply.get("error");
        let error_ok = match error {
            None => true,
            Some(Value::String(s)) => {
                !s.trim().is_empty() && !s.contains("Internal error in the module")
            }
            Some(_) => false,
        };
        let ok = match status {
            200 => reply["results"].is_array() && error_ok,
            400 => error.is_some() && error_ok,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("HTTP {status}: {text:.300}"))
        }
    })
}
