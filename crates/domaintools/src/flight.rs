//! Request coalescing: concurrent identical upstream requests share one call and its answer.
//! The map holds only weak handles, so when every waiter has gone away (clients disconnected,
//! budgets ran out) the shared call is dropped, and with it the upstream request.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use bytes::Bytes;
use futures_util::future::{BoxFuture, Shared, WeakShared};
use futures_util::FutureExt;

use super::error::Error;

type Call = BoxFuture<'static, Result<Bytes, Error>>;

/// Calls in flight, by request identity.
#[derive(Default)]
pub(crate) struct Flights {
    calls: Mutex<HashMap<String, WeakShared<Call>>>,
}

impl std::fmt::Debug for Flights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights")
            .field("in_flight", &self.len())
            .finish()
    }
}

impl Flights {
    /// Joins the call already in flight for `key`, or starts `start()` and lets later identical
    /// requests join it. Says whether this caller joined (true) or started (false) the call.
    pub(crate) async fn run<F>(
        &self,
        key: &str,
        start: impl FnOnce() -> F,
    ) -> (Result<Bytes, Error>, bool)
    where
        F: Future<Output = Result<Bytes, Error>> + Send + 'static,
    {
        let (shared, joined): (Shared<Call>, bool) = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            match calls.get(key).and_then(WeakShared::upgrade) {
                Some(shared) => (shared, true),
                None => {
                    let shared = start().boxed().shared();
                    if let Some(weak) = shared.downgrade() {
                        calls.insert(key.to_owned(), weak);
                    }
                    (shared, false)
                }
            }
        };
        let result = shared.await;
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        if calls.get(key).is_some_and(|weak| weak.upgrade().is_none()) {
            calls.remove(key);
        }
        (result, joined)
    }

    /// Calls currently shared (for tests and metrics).
    pub(crate) fn len(&self) -> usize {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls
            .values()
            .filter(|weak| weak.upgrade().is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_identical_calls_share_one() {
        let flights = Arc::new(Flights::default());
        let started = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (flights, started) = (flights.clone(), started.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run("k", || async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(Bytes::from_static(b"answer"))
                    })
                    .await
            }));
        }
        let mut joined = 0;
        for task in tasks {
            let (result, j) = task.await.unwrap();
            assert_eq!(result.unwrap(), Bytes::from_static(b"answer"));
            joined += usize::from(j);
        }
        assert_eq!(started.load(Ordering::SeqCst), 1);
        assert_eq!(joined, 19);
        assert_eq!(flights.len(), 0, "finished calls leave the map");
    }

    #[tokio::test]
    async fn a_call_nobody_waits_for_is_dropped() {
        struct Guard(Arc<AtomicUsize>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let flights = Arc::new(Flights::default());
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        let waiter = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run("k", || async move {
                        let _guard = Guard(d);
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        Ok(Bytes::new())
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            1,
            "the upstream work was cancelled"
        );
        assert_eq!(flights.len(), 0);
    }
}
