//! The reply cache: rendered `/query` replies, kept in front of the modules so that a repeated
//! request (MISP shows the same hover again and again) costs a digest and a lookup instead of
//! decoding and mapping the DomainTools answer anew. The upstream cache below stays the one
//! that saves quota; this one saves CPU.
//!
//! A reply is keyed by a SHA-256 digest of the exact request body (credentials, settings,
//! input, `event_id` and all, so a reply never crosses accounts, forms or settings) and of
//! the server's mode. It lives no longer than the upstream answers it was made from, nor
//! than `ttl`, which bounds clock-dependent text such as "created 25 years ago".

use std::time::Duration;

use axum::body::Bytes;
use moka::sync::Cache;
use moka::Expiry;
use sha2::{Digest, Sha256};

/// Settings of the reply cache.
#[derive(Debug, Clone, Copy)]
pub struct ReplyCacheConfig {
    /// Longest life of a reply (zero: no reply cache).
    pub ttl: Duration,
    /// Memory for replies, in bytes of reply bodies.
    pub max_bytes: u64,
}

impl ReplyCacheConfig {
    /// No reply cache: every request runs its module (the library's default; the command
    /// line's is [`ReplyCacheConfig::ON`]).
    pub const OFF: Self = Self {
        ttl: Duration::ZERO,
        max_bytes: 0,
    };

    /// The command line's default: replies reused for 60 s, in 32 MiB.
    pub const ON: Self = Self {
        ttl: Duration::from_secs(60),
        max_bytes: 32 * 1024 * 1024,
    };
}

/// A cached reply: its bytes, the module that made it (a registered name, for metrics and
/// logs) and how long it may live.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) body: Bytes,
    pub(crate) module: &'static str,
    ttl: Duration,
}

struct PerEntry;

impl Expiry<[u8; 32], Stored> for PerEntry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Stored,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The cache itself.
pub(crate) struct ReplyCache {
    replies: Cache<[u8; 32], Stored>,
    ttl: Duration,
    /// Largest reply kept: one reply must not push out hundreds of others.
    max_entry: usize,
}

impl std::fmt::Debug for ReplyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyCache")
            .field("ttl", &self.ttl)
            .field("entries", &self.replies.entry_count())
            .finish()
    }
}

impl ReplyCache {
    /// A reply cache, or `None` when the settings turn it off.
    pub(crate) fn new(config: ReplyCacheConfig) -> Option<Self> {
        if config.ttl.is_zero() || config.max_bytes == 0 {
            return None;
        }
        let replies = Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|_key: &[u8; 32], value: &Stored| {
                u32::try_from(value.body.len() + 64).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntry)
            .build();
        Some(Self {
            replies,
            ttl: config.ttl,
            max_entry: usize::try_from(config.max_bytes / 16).unwrap_or(usize::MAX),
        })
    }

    /// The key of a request body in a server running in `demo` mode or not.
    pub(crate) fn key(body: &[u8], demo: bool) -> [u8; 32] {
        let mut digest = Sha256::new();
        digest.update(if demo {
            b"reply-v1:demo\0"
        } else {
            b"reply-v1:live\0"
        });
        digest.update(body);
        digest.finalize().into()
    }

    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<Stored> {
        self.replies.get(key)
    }

    /// Keeps `body` for at most `upstream_ttl` (the lifetime of the answers it was made from)
    /// and the cache's own bound.
    pub(crate) fn put(
        &self,
        key: [u8; 32],
        module: &'static str,
        body: Bytes,
        upstream_ttl: Duration,
    ) {
        let ttl = upstream_ttl.min(self.ttl);
        if ttl.is_zero() || body.len() > self.max_entry {
            return;
        }
        self.replies.insert(key, Stored { body, module, ttl });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_body_and_mode() {
        let a = ReplyCache::key(br#"{"module":"x","config":{"api_key":"k1"}}"#, false);
        let b = ReplyCache::key(br#"{"module":"x","config":{"api_key":"k2"}}"#, false);
        assert_ne!(a, b);
        assert_ne!(
            a,
            ReplyCache::key(br#"{"module":"x","config":{"api_key":"k1"}}"#, true)
        );
        assert_eq!(
            a,
            ReplyCache::key(br#"{"module":"x","config":{"api_key":"k1"}}"#, false)
        );
    }

    #[test]
    fn replies_live_no_longer_than_their_answers() {
        let cache = ReplyCache::new(ReplyCacheConfig::ON).unwrap();
        let key = ReplyCache::key(b"{}", false);
        cache.put(key, "m", Bytes::from_static(b"{}"), Duration::ZERO);
        assert!(
            cache.get(&key).is_none(),
            "an uncached upstream means no reply cache"
        );
        cache.put(
            key,
            "m",
            Bytes::from_static(b"{}"),
            Duration::from_secs(3600),
        );
        assert_eq!(cache.get(&key).unwrap().body, Bytes::from_static(b"{}"));
        assert!(ReplyCache::new(ReplyCacheConfig::OFF).is_none());
    }

    #[test]
    fn oversized_replies_are_not_kept() {
        let cache = ReplyCache::new(ReplyCacheConfig {
            ttl: Duration::from_secs(60),
            max_bytes: 1600,
        })
        .unwrap();
        let key = ReplyCache::key(b"big", false);
        cache.put(
            key,
            "m",
            Bytes::from(vec![b' '; 200]),
            Duration::from_secs(60),
        );
        assert!(cache.get(&key).is_none());
    }
}
