//! The `/query` fuzzing entry point, shared by the cargo-fuzz target
//! (`fuzz/fuzz_targets/query.rs`, nightly) and its stable replay (`tests/fuzz_corpus.rs`), so
//! both drive exactly the same code: the whole router, body parsing to reply, in front of the
//! in-process fake DomainTools API.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use domaintools::{Client, ClientConfig, Proxy};
use domaintools_fake::{FakeApi, RunningFake};
use misp_domaintools::http::{router, AppState, Options};
use misp_domaintools::protocol::DefaultCredentials;
use misp_domaintools::registry::{Registry, MODULES};
use serde_json::Value;
use tower::ServiceExt;

const USER: &str = "fuzz-user";
const KEY: &str = "FUZZ-KEY-never-shown";

struct Harness {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
    _fake: RunningFake,
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
        let (app, fake) = runtime.block_on(async {
            let fake = FakeApi::new().with_user(USER, KEY);
            let running = fake.spawn().await.expect("the fake API on loopback");
            let mut config = ClientConfig::new("MISP", "fuzz");
            config.base_url = running.base_url();
            config.proxy = Proxy::None;
            config.timeout = Duration::from_secs(2);
            // Inputs that look up reverse whois would otherwise wait on its 10-a-minute limit.
            config.learn_rate_limits = false;
            let options = Options {
                // Inputs without credentials still reach the modules and the fake.
                default_credentials: DefaultCredentials {
                    username: Some(USER.to_owned()),
                    api_key: Some(KEY.into()),
                },
                hover_budget: Duration::from_secs(2),
                query_budget: Duration::from_secs(2),
                ..Options::default()
            };
            let state = AppState::new(
                Registry::new(MODULES).expect("the module registry"),
                Client::new(config).expect("the DomainTools client"),
                options,
            );
            (router(state), running)
        });
        Harness {
            runtime,
            app,
            _fake: fake,
        }
    })
}

/// Posts `body` to `/query` and checks what any answer must be: HTTP 200 with a `results`
/// list, or a `misp_standard` object of `Attribute` and `Object` lists (and any `error` a
/// non-empty string), or 400 with an `error`; never a panic, a 5xx,
/// a body that is not a JSON object, or the API key.
pub fn query(body: &[u8]) -> Result<(), String> {
    let harness = harness();
    harness.runtime.block_on(async {
        let request = Request::post("/query")
            .body(Body::from(body.to_vec()))
            .map_err(|e| format!("request: {e}"))?;
        let response = harness
            .app
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| format!("router: {e}"))?;
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024)
            .await
            .map_err(|e| format!("reply body: {e}"))?;
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
            200 => super::well_formed_results(&reply["results"]) && error_ok,
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
