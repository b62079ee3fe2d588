//! The one axum handler every request goes through: read parameters, authenticate, pick a
//! fault or route, log, wait, answer, in the order the real API's observable behaviour needs.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::Response;

use super::answer::{Answer, Envelope};
use super::faults::{self, Delivery};
use super::params;
use super::routes::{self, Context};
use super::{FakeApi, LoggedRequest};

/// Bodies larger than this are refused: Iris Enrich's 100 domains fit many times over.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

pub(super) async fn handle(State(fake): State<FakeApi>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await.ok();
    let (params, body_problem) = params::parse(parts.uri.query(), content_type, body.as_deref());

    let now = fake.config.now();
    let delivery =
        match super::auth::authenticate(&fake.config, &params, &parts.headers, &path, now) {
            Err(refusal) => {
                tracing::debug!(?refusal, %path, "fake DomainTools API refused credentials");
                Delivery::Whole(Answer::forbidden(Envelope::of(&path)))
            }
            Ok(account) => {
                let context = Context {
                    method: &parts.method,
                    path: &path,
                    params: &params,
                    account: &account,
                    now,
                    body_problem,
                    per_minute_limits: &fake.config.per_minute_limits,
                };
                let normal = || routes::answer(&context);
                match fake.take_fault(&path) {
                    Some(fault) => faults::deliver(fault, &path, normal),
                    None => Delivery::Whole(normal()),
                }
            }
        };

    // Logged before any waiting, so a test can see a call while its answer is still delayed.
    fake.log(LoggedRequest {
        method: parts.method.as_str().to_owned(),
        path,
        params: params.loggable(),
        username: params.first("api_username").map(str::to_owned),
        status: delivery.status(),
    });
    let latency = fake.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    delivery.into_response().await
}
