//! Client-side rate limiting per account and DomainTools product: token buckets learned from
//! `/v1/account` (DomainTools' per-minute/per-hour limits) and from 503 answers. A call waits
//! its turn; when the turn would come after the request's deadline, it fails at once instead.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

/// The DomainTools product id of a request path (the ids `/v1/account` uses; also the endpoint
/// label of metrics, which must never carry a looked-up value).
pub fn product(path: &str) -> &'static str {
    let rest = path
        .strip_prefix("/v1/")
        .unwrap_or(path)
        .trim_end_matches('/');
    match rest {
        "account" => return "account-information",
        "risk" => return "risk",
        "risk/evidence" => return "risk-evidence",
        "reputation" => return "reputation",
        "reverse-whois" => return "reverse-whois",
        "iris-investigate" => return "iris-investigate",
        "iris-enrich" => return "iris-enrich",
        "iris-detect/monitors" => return "iris-detect-monitors",
        "iris-detect/domains/new" => return "iris-detect-new-domains",
        "iris-detect/domains/watched" => return "iris-detect-watched-domains",
        "iris-detect/domains/ignored" => return "iris-detect-ignored-domains",
        "iris-detect/escalations" => return "iris-detect-escalate-domains",
        "iris-detect/domains" => return "iris-detect-manage-watchlist-domains",
        _ => {}
    }
    let suffixes = [
        ("/whois/parsed", "parsed-whois"),
        ("/whois/history", "whois-history"),
        ("/whois", "whois"),
        ("/hosting-history", "hosting-history"),
        ("/reverse-ip", "reverse-ip"),
        ("/host-domains", "reverse-ip"),
    ];
    for (suffix, id) in suffixes {
        if rest.ends_with(suffix) {
            return id;
        }
    }
    if !rest.contains('/') && !rest.is_empty() {
        return "domain-profile";
    }
    "other"
}

/// Why a call cannot go out within the request's time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TooLate {
    /// How long the call would have had to wait.
    pub(crate) wait: Duration,
    /// The limit, in words ("20 calls a minute").
    pub(crate) limit: String,
}

#[derive(Debug)]
struct Bucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    updated: Instant,
    limit: String,
}

impl Bucket {
    fn new(capacity: f64, per_second: f64, limit: String) -> Self {
        Self {
            capacity,
            per_second,
            tokens: capacity,
            updated: Instant::now(),
            limit,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.updated = now;
    }
}

/// Token buckets per (account, product), and which accounts' limits are known.
#[derive(Debug, Default)]
pub(crate) struct RateLimits {
    buckets: Mutex<HashMap<(String, String), Bucket>>,
    learned: Mutex<HashSet<String>>,
}

/// When DomainTools says "slow down" for a product we know no limit of, the next call waits this.
const UNKNOWN_LIMIT_PAUSE: Duration = Duration::from_secs(2);

impl RateLimits {
    /// Whether the account's limits still need fetching; marks them as being fetched.
    pub(crate) fn should_learn(&self, account: &str) -> bool {
        self.learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(account.to_owned())
    }

    /// Forgets that an account's limits were fetched (the fetch failed for a passing reason).
    pub(crate) fn unlearn(&self, account: &str) {
        self.learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(account);
    }

    /// Takes the limits of every product from a `/v1/account` answer. Of a per-minute and a
    /// per-hour limit, the stricter long-run rate is kept.
    pub(crate) fn learn(&self, account: &str, answer: &Value) {
        let products = answer["products"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        for product in products {
            let Some(id) = product["id"].as_str() else {
                continue;
            };
            let number = |key: &str| -> Option<f64> {
                match &product[key] {
                    Value::String(s) => s.trim().parse().ok(),
                    Value::Number(n) => n.as_f64(),
                    _ => None,
                }
                .filter(|n: &f64| *n > 0.0)
            };
            let minute =
                number("per_minute_limit").map(|n| (n, n / 60.0, format!("{n} calls a minute")));
            let hour =
                number("per_hour_limit").map(|n| (n, n / 3600.0, format!("{n} calls an hour")));
            let chosen = match (minute, hour) {
                (Some(m), Some(h)) => Some(if h.1 < m.1 { h } else { m }),
                (m, h) => m.or(h),
            };
            if let Some((capacity, rate, limit)) = chosen {
                buckets.insert(
                    (account.to_owned(), id.to_owned()),
                    Bucket::new(capacity, rate, limit),
                );
            }
        }
    }

    /// Reserves a turn for one call: how long to wait before sending it, or `TooLate` (and no
    /// reservation) when the turn would come after `deadline`.
    pub(crate) fn reserve(
        &self,
        account: &str,
        product: &str,
        deadline: Option<Instant>,
    ) -> Result<Duration, TooLate> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Some(bucket) = buckets.get_mut(&(account.to_owned(), product.to_owned())) else {
            return Ok(Duration::ZERO);
        };
        bucket.refill(now);
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 {
            return Ok(Duration::ZERO);
        }
        let wait = Duration::from_secs_f64(-bucket.tokens / bucket.per_second);
        if deadline.is_some_and(|d| now + wait > d) {
            bucket.tokens += 1.0;
            return Err(TooLate {
                wait,
                limit: bucket.limit.clone(),
            });
        }
        Ok(wait)
    }

    /// DomainTools answered 503: spend the product's remaining turns so the next call waits.
    pub(crate) fn slow_down(&self, account: &str, product: &str) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets
            .entry((account.to_owned(), product.to_owned()))
            .or_insert_with(|| {
                let rate = 1.0 / UNKNOWN_LIMIT_PAUSE.as_secs_f64();
                Bucket::new(
                    1.0,
                    rate,
                    "a limit DomainTools reported with a 503".to_owned(),
                )
            });
        bucket.refill(now);
        bucket.tokens = bucket.tokens.min(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_map_to_product_ids_without_lookup_values() {
        let cases = [
            ("/v1/account", "account-information"),
            ("/v1/iris-investigate/", "iris-investigate"),
            ("/v1/iris-enrich/", "iris-enrich"),
            ("/v1/iris-detect/domains/new/", "iris-detect-new-domains"),
            (
                "/v1/iris-detect/escalations/",
                "iris-detect-escalate-domains",
            ),
            ("/v1/google.com/whois/parsed", "parsed-whois"),
            ("/v1/woot.com/whois/history", "whois-history"),
            ("/v1/google.com/whois", "whois"),
            ("/v1/google.com/hosting-history", "hosting-history"),
            ("/v1/199.30.228.112/host-domains", "reverse-ip"),
            ("/v1/google.com", "domain-profile"),
            ("/v1/risk", "risk"),
            ("/v1/risk/evidence/", "risk-evidence"),
            ("/v1/reverse-whois", "reverse-whois"),
        ];
        for (path, id) in cases {
            assert_eq!(product(path), id, "{path}");
        }
    }

    fn account(per_minute: &str, per_hour: Option<&str>) -> Value {
        json!({"products": [{"id": "iris-investigate", "per_minute_limit": per_minute, "per_hour_limit": per_hour}]})
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_up_to_the_limit_goes_at_once_then_calls_wait_their_turn() {
        let limits = RateLimits::default();
        limits.learn("a", &account("20", None));
        for _ in 0..20 {
            assert_eq!(
                limits.reserve("a", "iris-investigate", None).unwrap(),
                Duration::ZERO
            );
        }
        assert_eq!(
            limits.reserve("a", "iris-investigate", None).unwrap(),
            Duration::from_secs(3)
        );
        assert_eq!(
            limits.reserve("a", "iris-investigate", None).unwrap(),
            Duration::from_secs(6)
        );
        assert_eq!(
            limits.reserve("b", "iris-investigate", None).unwrap(),
            Duration::ZERO,
            "other accounts are separate"
        );
        assert_eq!(
            limits.reserve("a", "iris-enrich", None).unwrap(),
            Duration::ZERO,
            "unknown products are not throttled"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_past_the_deadline_fails_at_once_without_reserving() {
        let limits = RateLimits::default();
        limits.learn("a", &account("1", None));
        assert_eq!(
            limits.reserve("a", "iris-investigate", None).unwrap(),
            Duration::ZERO
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let too_late = limits
            .reserve("a", "iris-investigate", Some(deadline))
            .unwrap_err();
        assert_eq!(too_late.wait, Duration::from_secs(60));
        assert_eq!(too_late.limit, "1 calls a minute");
        assert_eq!(
            limits.reserve("a", "iris-investigate", None).unwrap(),
            Duration::from_secs(60),
            "nothing was reserved"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_stricter_of_minute_and_hour_limits_wins() {
        let limits = RateLimits::default();
        limits.learn("a", &account("30", Some("10")));
        for _ in 0..10 {
            limits.reserve("a", "iris-investigate", None).unwrap();
        }
        assert_eq!(
            limits.reserve("a", "iris-investigate", None).unwrap(),
            Duration::from_secs(360)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_503_makes_the_next_call_wait() {
        let limits = RateLimits::default();
        limits.slow_down("a", "risk");
        assert_eq!(
            limits.reserve("a", "risk", None).unwrap(),
            UNKNOWN_LIMIT_PAUSE
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            limits.reserve("a", "risk", None).unwrap(),
            Duration::ZERO,
            "the pause is over"
        );
    }

    #[test]
    fn accounts_are_learned_once() {
        let limits = RateLimits::default();
        assert!(limits.should_learn("a"));
        assert!(!limits.should_learn("a"));
        limits.unlearn("a");
        assert!(limits.should_learn("a"));
    }
}
