//! Injected faults: which request gets one, and how each is delivered, down to bodies that
//! break mid-stream or trickle in, so clients' error paths meet the real failures.

use std::convert::Infallible;
use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};

use super::answer::{Answer, Envelope, RATE_LIMITED_MESSAGE};
use super::data::fixtures;
use super::Fault;

/// How many bytes [`Fault::SlowDrip`] sends at a time.
const DRIP_BYTES: usize = 16;
/// How long [`Fault::CutBody`] waits between the part it sends and the break.
const CUT_PAUSE: Duration = Duration::from_millis(20);

/// One injected fault and how many more requests it applies to.
#[derive(Debug)]
pub(super) struct Rule {
    path_prefix: String,
    fault: Fault,
    remaining: Option<usize>,
}

impl Rule {
    pub fn new(path_prefix: &str, fault: Fault, times: Option<usize>) -> Self {
        Self {
            path_prefix: path_prefix.to_owned(),
            fault,
            remaining: times,
        }
    }
}

/// The fault for a request to `path`, if any, consuming one use of its rule.
pub(super) fn take(rules: &mut Vec<Rule>, path: &str) -> Option<Fault> {
    rules.retain(|rule| rule.remaining != Some(0));
    let index = rules
        .iter()
        .position(|rule| path.starts_with(&rule.path_prefix))?;
    let rule = &mut rules[index];
    let fault = rule.fault.clone();
    if let Some(remaining) = rule.remaining.as_mut() {
        *remaining -= 1;
        if *remaining == 0 {
            rules.remove(index);
        }
    }
    Some(fault)
}

/// An answer and the way it reaches the client.
#[derive(Debug)]
pub(super) enum Delivery {
    Whole(Answer),
    /// Sent whole after a pause.
    Delayed(Answer, Duration),
    /// Headers and part of the body, then a broken connection.
    Cut(Answer),
    /// The body a few bytes at a time.
    Drip(Answer, Duration),
}

impl Delivery {
    /// What the client is told in the status line.
    pub fn status(&self) -> u16 {
        match self {
            Delivery::Whole(answer)
            | Delivery::Delayed(answer, _)
            | Delivery::Cut(answer)
            | Delivery::Drip(answer, _) => answer.status.as_u16(),
        }
    }

    pub async fn into_response(self) -> Response {
        match self {
            Delivery::Whole(answer) => answer.into_response(),
            Delivery::Delayed(answer, pause) => {
                tokio::time::sleep(pause).await;
                answer.into_response()
            }
            Delivery::Cut(answer) => {
                let sent = answer.body.slice(..answer.body.len() / 2);
                // The pause lets hyper flush the head and the first half; the error then makes
                // it drop the connection without finishing the chunked body, which the client
                // sees as a truncated answer.
                let broken = stream::once(async {
                    tokio::time::sleep(CUT_PAUSE).await;
                    Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "fake DomainTools API: body cut on purpose",
                    ))
                });
                let body = stream::iter([Ok::<_, io::Error>(sent)]).chain(broken);
                answer.respond_with(Body::from_stream(body))
            }
            Delivery::Drip(answer, interval) => {
                let chunks: Vec<Bytes> = (0..answer.body.len())
                    .step_by(DRIP_BYTES)
                    .map(|start| {
                        let end = (start + DRIP_BYTES).min(answer.body.len());
                        answer.body.slice(start..end)
                    })
                    .collect();
                let drip = stream::iter(chunks.into_iter().enumerate()).then(
                    move |(index, chunk)| async move {
                        if index > 0 {
                            tokio::time::sleep(interval).await;
                        }
                        Ok::<_, Infallible>(chunk)
                    },
                );
                answer.respond_with(Body::from_stream(drip))
            }
        }
    }
}

/// How `fault` answers a request to `path`; `normal` computes the answer the fake would have
/// given, for the faults that deliver it late or broken.
pub(super) fn deliver(fault: Fault, path: &str, normal: impl FnOnce() -> Answer) -> Delivery {
    let family = Envelope::of(path);
    match fault {
        Fault::RateLimited => Delivery::Whole(Answer::error(
            StatusCode::SERVICE_UNAVAILABLE,
            family,
            RATE_LIMITED_MESSAGE,
        )),
        Fault::Status { status, message } => {
            Delivery::Whole(Answer::error(any_status(status), family, &message))
        }
        Fault::NonJson { status, body } => Delivery::Whole(Answer {
            status: any_status(status),
            content_type: "text/plain; charset=utf-8",
            body: Bytes::from(body),
        }),
        Fault::InvalidJson => Delivery::Whole(Answer {
            status: StatusCode::OK,
            content_type: family.content_type(),
            body: Bytes::from_static(br#"{"response": {"results": [{"domain": "google.com","#),
        }),
        Fault::WrongShape => {
            let body: &'static [u8] = match family {
                Envelope::Detect => b"[1,2,3]",
                Envelope::Classic => br#"{"response": "nope"}"#,
            };
            Delivery::Whole(Answer {
                status: StatusCode::OK,
                content_type: family.content_type(),
                body: Bytes::from_static(body),
            })
        }
        Fault::LimitExceeded => Delivery::Whole(Answer::ok(
            Envelope::Classic,
            &fixtures().iris_limit_exceeded,
        )),
        Fault::Slow(pause) => Delivery::Delayed(normal(), pause),
        Fault::CutBody => Delivery::Cut(normal()),
        Fault::SlowDrip { interval } => Delivery::Drip(normal(), interval),
    }
}

/// A status line for any number a test asks for; out-of-range numbers become 500 rather
/// than a panic.
fn any_status(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_apply_in_order_and_run_out() {
        let mut rules = vec![
            Rule::new("/v1/iris", Fault::RateLimited, Some(2)),
            Rule::new("/v1/", Fault::InvalidJson, None),
            Rule::new("/v1/never", Fault::CutBody, Some(0)),
        ];
        let names: Vec<Option<&str>> = (0..4)
            .map(|_| {
                take(&mut rules, "/v1/iris-enrich/").map(|fault| match fault {
                    Fault::RateLimited => "rate",
                    Fault::InvalidJson => "invalid",
                    _ => "other",
                })
            })
            .collect();
        assert_eq!(
            names,
            [Some("rate"), Some("rate"), Some("invalid"), Some("invalid")]
        );
        assert!(take(&mut rules, "/v2/domain-search").is_none());
        assert_eq!(rules.len(), 1);
    }

    #[test]
    fn odd_statuses_do_not_panic() {
        assert_eq!(any_status(1000), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(any_status(0), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(any_status(418), StatusCode::IM_A_TEAPOT);
    }
}
