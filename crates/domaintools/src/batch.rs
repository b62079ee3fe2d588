//! Iris Enrich batching: single-domain lookups of the same account made within a short window
//! go out as one call of up to 100 domains (Iris Enrich's maximum), and each caller gets its
//! own domain's answer. MISP's bulk enrichment fires one request per attribute; this turns
//! hundreds of calls into a few.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::client::{Client, OwnedCaller};
use super::error::{Error, Result};

/// Iris Enrich's limit of domains per call.
pub(crate) const MAX_BATCH: usize = 100;

type Waiter = (String, oneshot::Sender<Result<Bytes>>);

#[derive(Debug)]
struct Pending {
    id: u64,
    caller: OwnedCaller,
    domains: Vec<String>,
    waiters: Vec<Waiter>,
}

/// Batches waiting for their window to close, one per account and module.
#[derive(Debug)]
pub(crate) struct EnrichBatcher {
    window: Duration,
    pending: Mutex<HashMap<String, Pending>>,
    next_id: AtomicU64,
}

impl EnrichBatcher {
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    /// Whether lookups are batched at all.
    pub(crate) fn enabled(&self) -> bool {
        !self.window.is_zero()
    }

    /// Adds `domain` to the account's open batch (opening one if needed) and waits for the
    /// single-domain answer body.
    pub(crate) async fn submit(
        &self,
        client: Client,
        caller: OwnedCaller,
        domain: String,
    ) -> Result<Bytes> {
        let batch_key = format!(
            "{}\0{}\0{}",
            caller.credentials.username(),
            caller.credentials.key_fingerprint(),
            caller.app_name
        );
        let (tx, rx) = oneshot::channel();
        let full = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let batch = match pending.entry(batch_key.clone()) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let (client, key, window) = (client.clone(), batch_key.clone(), self.window);
                    tokio::spawn(async move {
                        tokio::time::sleep(window).await;
                        client.flush_enrich_batch(&key, id).await;
                    });
                    entry.insert(Pending {
                        id,
                        caller: caller.clone(),
                        domains: Vec::new(),
                        waiters: Vec::new(),
                    })
                }
            };
            if !batch.domains.contains(&domain) {
                batch.domains.push(domain.clone());
            }
            batch.waiters.push((domain, tx));
            // The batch serves every member, so it may take as long as the most patient one;
            // each member still stops waiting at its own deadline.
            batch.caller.deadline = match (batch.caller.deadline, caller.deadline) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
            if batch.domains.len() >= MAX_BATCH {
                pending.remove(&batch_key)
            } else {
                None
            }
        };
        if let Some(batch) = full {
            tokio::spawn(async move { deliver(&client, batch).await });
        }
        rx.await.unwrap_or_else(|_| {
            Err(Error::Transport(
                "the batched lookup was abandoned".to_owned(),
            ))
        })
    }

    /// Takes the batch `id` of `key` if it is still open (it may have been sent when full).
    fn take(&self, key: &str, id: u64) -> Option<Pending> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.get(key).is_some_and(|p| p.id == id) {
            pending.remove(key)
        } else {
            None
        }
    }
}

impl Client {
    /// Sends the batch `id` of `key` when its window closes.
    async fn flush_enrich_batch(&self, key: &str, id: u64) {
        if let Some(batch) = self.batcher().take(key, id) {
            deliver(self, batch).await;
        }
    }
}

/// Makes the batch's call and answers every member.
async fn deliver(client: &Client, batch: Pending) {
    match client.enrich_batch(&batch.caller, &batch.domains).await {
        Ok(answers) => {
            for (domain, tx) in batch.waiters {
                let answer = answers
                    .iter()
                    .find(|(d, _)| *d == domain)
                    .map(|(_, body)| body.clone())
                    .ok_or_else(|| Error::Decode(format!("no answer for {domain} in the batch")));
                let _ = tx.send(answer);
            }
        }
        Err(error) => {
            for (_, tx) in batch.waiters {
                let _ = tx.send(Err(error.clone()));
            }
        }
    }
}
