//! The one error type of the DomainTools client. Its `Display` is written for the person who
//! reads it in MISP: it never holds a key, a signature or a request URL.

use std::time::Duration;

/// Everything that can go wrong talking to DomainTools.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// DomainTools answered with an error status; `message` comes from its error envelope
    /// (or is the status's reason phrase when the body carried none).
    #[error("DomainTools API error {status}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// DomainTools' own explanation.
        message: String,
    },
    /// DomainTools (or whatever answered at the API address) redirected the call; redirects
    /// are never followed, since the signed request would go to another address.
    #[error("DomainTools API answered {status} with a redirect to {to}; redirects are not followed (check --api-url and the proxy settings)")]
    Redirected {
        /// The HTTP status (301, 302, 303, 307, 308).
        status: u16,
        /// Where it pointed: scheme, host and port only.
        to: String,
    },
    /// A 200 answer that says the query matched more records than DomainTools returns
    /// (`limit_exceeded: true`, which DomainTools' own client reports as a 503).
    #[error("DomainTools API error 503: Limit exceeded: {}", .message.as_deref().unwrap_or("the query matched too many records"))]
    LimitExceeded {
        /// DomainTools' explanation, when it gave one.
        message: Option<String>,
    },
    /// A 200 answer that carries an error object (`{"error": {"code", "message"}}`) instead
    /// of data.
    #[error("DomainTools API error {status}: {message}")]
    Reported {
        /// DomainTools' code (an HTTP status; 500 when it gave none).
        status: u16,
        /// DomainTools' explanation.
        message: String,
    },
    /// No answer within the allowed time.
    #[error("DomainTools API did not answer within {} s", .0.as_secs().max(1))]
    Timeout(Duration),
    /// The request's time budget ran out before DomainTools answered.
    #[error("Timeout: DomainTools did not answer within this request's time budget ({}).", seconds(*.0))]
    Deadline(Duration),
    /// The account's DomainTools rate limit would delay the call past the request's budget.
    #[error("DomainTools rate limit for {product} ({limit}) reached: the next call could go out in {}, after this request's time budget. Try again shortly.", seconds(*.wait))]
    RateLimited {
        /// The DomainTools product id.
        product: String,
        /// The limit, in words.
        limit: String,
        /// How long the call would have waited.
        wait: Duration,
    },
    /// The API could not be reached at all (DNS, refused connection, TLS).
    #[error("could not connect to the DomainTools API ({0})")]
    Connect(String),
    /// The connection broke while the request or the answer was under way.
    #[error("the connection to the DomainTools API failed ({0})")]
    Transport(String),
    /// The answer arrived but is not what this endpoint returns.
    #[error("the DomainTools API sent an answer that could not be read ({0})")]
    Decode(String),
    /// The lookup value cannot be sent safely (for instance it would change the request path).
    #[error("{0}")]
    InvalidInput(String),
    /// The client was built with unusable settings.
    #[error("invalid DomainTools client setting: {0}")]
    Config(String),
}

impl Error {
    /// Whether trying the same call again later may succeed (rate limits, overload, broken
    /// connections), as opposed to answers that will not change.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api { status, .. } | Error::Reported { status, .. } => {
                *status == 503 || *status == 502 || *status == 504
            }
            Error::LimitExceeded { .. } => true,
            Error::Timeout(_)
            | Error::Deadline(_)
            | Error::RateLimited { .. }
            | Error::Connect(_)
            | Error::Transport(_) => true,
            Error::Decode(_)
            | Error::InvalidInput(_)
            | Error::Config(_)
            | Error::Redirected { .. } => false,
        }
    }

    /// Builds a transport error from reqwest's, with the URL (which holds the signature of GET
    /// requests) stripped and the cause chain kept.
    pub(crate) fn from_reqwest(err: reqwest::Error, timeout: Duration) -> Self {
        let connect = err.is_connect();
        // A connect timeout (3 s, a SYN nobody answered) is a connection failure, retried as
        // one: reported as "did not answer within {the whole call's timeout}" it named a
        // wait that never happened.
        if err.is_timeout() && !connect {
            return Error::Timeout(timeout);
        }
        let text = reqwest_chain(err);
        if connect {
            Error::Connect(text)
        } else {
            Error::Transport(text)
        }
    }
}

/// "4.5 s", "1 s": durations as people read them.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

/// reqwest's error and its causes as one line, without the URL (which holds the signature of
/// GET requests, or a token in other clients' URLs).
pub fn reqwest_chain(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Shortcut for results of this client.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_like_the_compatibility_policy() {
        let e = Error::Api {
            status: 403,
            message: "You are not authorized to access this API product.".into(),
        };
        assert_eq!(
            e.to_string(),
            "DomainTools API error 403: You are not authorized to access this API product."
        );
        assert_eq!(
            Error::Timeout(Duration::from_secs(8)).to_string(),
            "DomainTools API did not answer within 8 s"
        );
    }

    #[test]
    fn budget_and_rate_limit_messages() {
        assert_eq!(
            Error::Deadline(Duration::from_millis(4500)).to_string(),
            "Timeout: DomainTools did not answer within this request's time budget (4.5 s)."
        );
        let e = Error::RateLimited {
            product: "iris-investigate".into(),
            limit: "20 calls a minute".into(),
            wait: Duration::from_secs(3),
        };
        assert_eq!(
            e.to_string(),
            "DomainTools rate limit for iris-investigate (20 calls a minute) reached: the next call could go out in 3 s, after this request's time budget. Try again shortly."
        );
    }

    #[test]
    fn transient_errors_are_the_retryable_ones() {
        assert!(Error::Api {
            status: 503,
            message: String::new()
        }
        .is_transient());
        assert!(!Error::Api {
            status: 403,
            message: String::new()
        }
        .is_transient());
        assert!(Error::Timeout(Duration::from_secs(1)).is_transient());
        assert!(!Error::Decode(String::new()).is_transient());
    }
}
