//! The fake's answers before they become HTTP responses: status, content type and body, plus
//! the real API's error envelopes.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};

use super::data::fixtures;

/// The content type of classic, Iris Investigate and Iris Enrich answers.
pub(super) const CLASSIC_JSON: &str = "application/json;charset=utf-8";
/// The content type of Iris Detect answers.
pub(super) const DETECT_JSON: &str = "application/json";

/// The support link the current API puts in every error envelope.
const SUPPORT_URL: &str = "https://docs.domaintools.com";

/// Message of the real API's per-minute throttling answer (legacy error-code page).
pub(super) const RATE_LIMITED_MESSAGE: &str = "You have exceeded the maximum number of requests per minute allowed under your service level (/min).";

/// The envelope and content type of a path's answers, which differ between product families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Envelope {
    /// `{"response": …}`, `application/json;charset=utf-8`.
    Classic,
    /// Bare objects, `application/json`.
    Detect,
}

impl Envelope {
    pub fn of(path: &str) -> Self {
        if path.starts_with("/v1/iris-detect") {
            Envelope::Detect
        } else {
            Envelope::Classic
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Envelope::Classic => CLASSIC_JSON,
            Envelope::Detect => DETECT_JSON,
        }
    }
}

/// One complete answer.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Bytes,
}

impl Answer {
    pub fn json(status: StatusCode, family: Envelope, value: &Value) -> Self {
        Self {
            status,
            content_type: family.content_type(),
            body: Bytes::from(value.to_string()),
        }
    }

    pub fn ok(family: Envelope, value: &Value) -> Self {
        Self::json(StatusCode::OK, family, value)
    }

    /// A classic answer: `value` wrapped in `{"response": …}`.
    pub fn response(value: Value) -> Self {
        Self::ok(Envelope::Classic, &json!({ "response": value }))
    }

    /// The real error envelope with any status and message.
    pub fn error(status: StatusCode, family: Envelope, message: &str) -> Self {
        let envelope = json!({
            "error": { "code": status.as_u16(), "message": message },
            "resources": { "support": SUPPORT_URL },
        });
        Self::json(status, family, &envelope)
    }

    /// The recorded 400: missing or malformed parameters, invalid domain.
    pub fn bad_request(family: Envelope) -> Self {
        Self::json(StatusCode::BAD_REQUEST, family, &fixtures().error_400)
    }

    /// The recorded 403: any authentication failure.
    pub fn forbidden(family: Envelope) -> Self {
        Self::json(StatusCode::FORBIDDEN, family, &fixtures().error_403)
    }

    /// The recorded 404 for a domain or IP the API has no data on.
    pub fn no_data() -> Self {
        Self::json(
            StatusCode::NOT_FOUND,
            Envelope::Classic,
            &fixtures().error_404,
        )
    }

    /// 404 for a path no endpoint serves.
    pub fn unknown_path(family: Envelope) -> Self {
        Self::error(
            StatusCode::NOT_FOUND,
            family,
            "The requested API endpoint does not exist.",
        )
    }

    pub fn method_not_allowed(family: Envelope) -> Self {
        Self::error(
            StatusCode::METHOD_NOT_ALLOWED,
            family,
            "This endpoint does not support the request method.",
        )
    }

    /// This answer's status and headers around `body`, which may be streamed.
    pub fn respond_with(&self, body: Body) -> Response {
        let content_type = HeaderValue::from_static(self.content_type);
        (self.status, [(header::CONTENT_TYPE, content_type)], body).into_response()
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        self.respond_with(Body::from(self.body.clone()))
    }
}
