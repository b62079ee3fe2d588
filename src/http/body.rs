//! Bodies within bounds: a `/query` body is read against its size limit, a deadline and one
//! server-wide budget of buffered request bytes; a large reply holds bytes of a reply budget
//! until the client has taken it, so clients that never read cannot pile replies up.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a request body was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Larger than the body limit (said by Content-Length, or found while reading).
    #[error(
        "The request body is larger than this server accepts ({limit} bytes; see --body-limit)."
    )]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// Other requests' bodies already hold the server-wide budget.
    #[error("The server is reading too many other requests right now; try again shortly.")]
    Busy,
    /// Not complete within the body-read timeout.
    #[error("The request body did not arrive within {} s.", .0.as_secs())]
    TooSlow(Duration),
    /// The connection broke while reading.
    #[error("The request body could not be read ({0}).")]
    Broken(String),
}

/// One byte budget shared by all requests (or all replies), counted in bytes.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    semaphore: Arc<Semaphore>,
    total: usize,
}

impl ByteBudget {
    /// A budget of `bytes` (at least one).
    pub fn new(bytes: usize) -> Self {
        let total = bytes.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            semaphore: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    fn permits(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.min(self.total)).unwrap_or(u32::MAX)
    }

    /// Takes `bytes` now, or `None` when they are not free.
    pub fn try_take(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        self.semaphore
            .clone()
            .try_acquire_many_owned(self.permits(bytes))
            .ok()
    }

    /// Takes `bytes`, waiting at most `wait` for them.
    pub async fn take_within(&self, bytes: usize, wait: Duration) -> Option<OwnedSemaphorePermit> {
        let acquire = self
            .semaphore
            .clone()
            .acquire_many_owned(self.permits(bytes));
        tokio::time::timeout(wait, acquire).await.ok()?.ok()
    }
}

/// A body read whole, with the budget it holds (released when this is dropped).
#[derive(Debug)]
pub struct ReadBody {
    /// The bytes.
    pub bytes: Bytes,
    _held: Vec<OwnedSemaphorePermit>,
}

/// Reads `body` whole: refused at once when its Content-Length is over `limit` (before any of
/// it is read, so no `100 Continue` is sent), and cut when it grows past `limit`, when its
/// bytes cannot be reserved from `budget`, or when it takes longer than `timeout` in all.
pub async fn read(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    budget: &ByteBudget,
    timeout: Duration,
) -> Result<ReadBody, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut held = Vec::new();
    if let Some(n) = declared {
        held.push(budget.try_take(n as usize).ok_or(BodyError::Busy)?);
    }
    let reading = async {
        let mut buf = Vec::with_capacity(declared.map_or(0, |n| n as usize));
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BodyError::Broken(e.to_string()))?;
            if buf.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge { limit });
            }
            // A body without Content-Length reserves as it grows.
            if declared.is_none() {
                held.push(budget.try_take(chunk.len()).ok_or(BodyError::Busy)?);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    };
    let bytes = tokio::time::timeout(timeout, reading)
        .await
        .map_err(|_| BodyError::TooSlow(timeout))??;
    Ok(ReadBody {
        bytes: Bytes::from(bytes),
        _held: held,
    })
}

/// Replies up to this size are sent at once; larger ones are streamed under the reply budget.
pub const STREAMED_REPLY: usize = 64 * 1024;

/// A large reply as a body handed out in [`STREAMED_REPLY`] pieces: the connection takes the
/// next piece only once the client has read enough of the previous ones, so `held` (the reply
/// budget) is released when the client has the reply, or when the write timeout drops it.
pub fn streamed(bytes: Bytes, held: OwnedSemaphorePermit) -> Body {
    let pieces = futures_util::stream::unfold(Some((bytes, held)), |state| async move {
        let (mut rest, held) = state?;
        if rest.is_empty() {
            return None;
        }
        let piece = rest.split_to(rest.len().min(STREAMED_REPLY));
        Some((Ok::<_, std::convert::Infallible>(piece), Some((rest, held))))
    });
    Body::from_stream(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(length: Option<usize>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(n) = length {
            headers.insert(header::CONTENT_LENGTH, n.into());
        }
        headers
    }

    #[tokio::test]
    async fn bodies_are_bounded_by_the_limit_the_budget_and_the_deadline() {
        let budget = ByteBudget::new(100);
        let second = Duration::from_secs(1);
        let ok = read(&headers(Some(3)), Body::from("abc"), 10, &budget, second)
            .await
            .unwrap();
        assert_eq!(&ok.bytes[..], b"abc");
        assert_eq!(
            read(&headers(Some(11)), Body::from("x"), 10, &budget, second)
                .await
                .unwrap_err(),
            BodyError::TooLarge { limit: 10 },
            "refused on its Content-Length alone"
        );
        assert_eq!(
            read(
                &headers(None),
                Body::from("x".repeat(11)),
                10,
                &budget,
                second
            )
            .await
            .unwrap_err(),
            BodyError::TooLarge { limit: 10 }
        );
        let _hold = budget.try_take(95).unwrap();
        assert_eq!(
            read(&headers(Some(5)), Body::from("abcde"), 10, &budget, second)
                .await
                .unwrap_err(),
            BodyError::Busy,
            "only 2 bytes of the budget are free"
        );
        drop(ok);
    }

    #[tokio::test]
    async fn a_body_that_never_ends_is_cut_at_the_deadline() {
        let budget = ByteBudget::new(100);
        let never =
            Body::from_stream(futures_util::stream::pending::<Result<Bytes, std::io::Error>>());
        let error = read(
            &headers(None),
            never,
            10,
            &budget,
            Duration::from_millis(50),
        )
        .await
        .unwrap_err();
        assert_eq!(error, BodyError::TooSlow(Duration::from_millis(50)));
    }

    #[tokio::test]
    async fn a_streamed_reply_gives_its_budget_back_once_sent() {
        use http_body_util::BodyExt;
        let budget = ByteBudget::new(200_000);
        let held = budget.try_take(150_000).unwrap();
        let body = streamed(Bytes::from(vec![7u8; 150_000]), held);
        assert!(budget.try_take(100_000).is_none());
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 150_000);
        assert!(budget.try_take(200_000).is_some());
    }
}
