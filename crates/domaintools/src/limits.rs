//! Client-side rate limiting per account and DomainTools product: token buckets learned from
//! `/v1/account` (DomainTools' per-minute/per-hour limits) and from 503 answers. A call waits
//! its turn; when the turn would come after the request's deadline, it fails at once instead.

use std::collections::HashMap;
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

/// How long learned limits are trusted before `/v1/account` is read again (the docs' "once
/// an hour"; an account's limits change when its contract does).
pub(crate) const LEARNED_FOR: Duration = Duration::from_secs(3600);

/// Most accounts whose limits are kept. Every username a request brings is an account, so
/// without a bound a client inventing usernames would grow this forever; past it the account
/// learned longest ago is forgotten (and re-learned when it comes back).
pub(crate) const MAX_ACCOUNTS: usize = 4096;

/// When DomainTools says "slow down" for a product whose limit is unknown and the 503 does
/// not say for how long (`Retry-After`), calls pause this long.
const UNKNOWN_LIMIT_PAUSE: Duration = Duration::from_secs(2);

/// The longest pause a `Retry-After` can impose: past a request's budget anyway.
const MAX_PAUSE: Duration = Duration::from_secs(60);

/// The longest wait `reserve` reports: with sane limits, a day is already far past any budget.
const MAX_WAIT: Duration = Duration::from_secs(86_400);

/// Limits outside this range are not real DomainTools limits (`"1e-300"`, `"-5"`, `"NaN"`):
/// they are ignored rather than turned into absurd waits.
const SANE_LIMITS: std::ops::RangeInclusive<f64> = 1.0..=1e9;

#[derive(Debug)]
struct Account {
    learned: Instant,
    /// Order of arrival, which breaks ties between accounts learned at the same instant.
    order: u64,
    /// Token buckets per product, from `/v1/account`.
    buckets: HashMap<String, Bucket>,
}

#[derive(Debug, Default)]
struct State {
    /// Accounts whose limits were read (or are being read), with when.
    accounts: HashMap<String, Account>,
    /// Pauses after 503s for products of unknown limit, per (account, product), until when.
    pauses: HashMap<(String, String), Instant>,
    /// Accounts ever added, for [`Account::order`].
    arrivals: u64,
}

/// Token buckets per account and product, learned from `/v1/account` for [`LEARNED_FOR`] and
/// for at most [`MAX_ACCOUNTS`] accounts, plus the pauses 503 answers impose.
#[derive(Debug)]
pub(crate) struct RateLimits {
    state: Mutex<State>,
    learned_for: Duration,
    max_accounts: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::new(LEARNED_FOR, MAX_ACCOUNTS)
    }
}

impl RateLimits {
    /// Limits trusted for `learned_for`, for at most `max_accounts` accounts.
    pub(crate) fn new(learned_for: Duration, max_accounts: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            learned_for,
            max_accounts: max_accounts.max(1),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the account's limits need fetching (never read, or read over
    /// [`LEARNED_FOR`] ago); marks them as being fetched.
    pub(crate) fn should_learn(&self, account: &str) -> bool {
        let now = Instant::now();
        let mut state = self.state();
        if let Some(known) = state.accounts.get_mut(account) {
            if now.saturating_duration_since(known.learned) < self.learned_for {
                return false;
            }
            // Stale: keep spacing calls by the old limits until the new ones arrive.
            known.learned = now;
            return true;
        }
        if state.accounts.len() >= self.max_accounts {
            let oldest = state
                .accounts
                .iter()
                .min_by_key(|(_, known)| (known.learned, known.order))
                .map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                state.accounts.remove(&oldest);
            }
        }
        state.arrivals += 1;
        let order = state.arrivals;
        state.accounts.insert(
            account.to_owned(),
            Account {
                learned: now,
                order,
                buckets: HashMap::new(),
            },
        );
        true
    }

    /// The learned limit of a product (capacity, calls a second, in words) when nothing but
    /// its token bucket decides (no 503 pause under way): what a bucket shared by several
    /// replicas needs to apply the same rules.
    pub(crate) fn learned(&self, account: &str, product: &str) -> Option<(f64, f64, String)> {
        let state = self.state();
        let key = (account.to_owned(), product.to_owned());
        if state
            .pauses
            .get(&key)
            .is_some_and(|until| *until > Instant::now())
        {
            return None;
        }
        let bucket = state.accounts.get(account)?.buckets.get(product)?;
        Some((bucket.capacity, bucket.per_second, bucket.limit.clone()))
    }

    /// Forgets that an account's limits were fetched (the fetch failed for a passing reason).
    pub(crate) fn unlearn(&self, account: &str) {
        self.state().accounts.remove(account);
    }

    /// How many accounts are known (for tests of the bound).
    #[cfg(test)]
    fn accounts(&self) -> usize {
        self.state().accounts.len()
    }

    /// Takes the limits of every product from a `/v1/account` answer, replacing what was
    /// known. Of a per-minute and a per-hour limit, the stricter long-run rate is kept.
    pub(crate) fn learn(&self, account: &str, answer: &Value) {
        let products = answer["products"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut buckets = HashMap::new();
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
                .filter(|n: &f64| SANE_LIMITS.contains(n))
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
                buckets.insert(id.to_owned(), Bucket::new(capacity, rate, limit));
            }
        }
        let mut state = self.state();
        // An account forgotten meanwhile (the bound) is not brought back by a late answer.
        if let Some(known) = state.accounts.get_mut(account) {
            known.buckets = buckets;
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
        let mut state = self.state();
        let key = (account.to_owned(), product.to_owned());
        if let Some(&until) = state.pauses.get(&key) {
            if until <= now {
                state.pauses.remove(&key);
            } else {
                let wait = until - now;
                if deadline.is_some_and(|d| until > d) {
                    return Err(TooLate {
                        wait,
                        limit: "a limit DomainTools reported with a 503".to_owned(),
                    });
                }
                return Ok(wait);
            }
        }
        let Some(bucket) = state
            .accounts
            .get_mut(account)
            .and_then(|known| known.buckets.get_mut(product))
        else {
            return Ok(Duration::ZERO);
        };
        bucket.refill(now);
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 {
            return Ok(Duration::ZERO);
        }
        let wait = Duration::try_from_secs_f64(-bucket.tokens / bucket.per_second)
            .unwrap_or(MAX_WAIT)
            .min(MAX_WAIT);
        if deadline.is_some_and(|d| now + wait > d) {
            bucket.tokens += 1.0;
            return Err(TooLate {
                wait,
                limit: bucket.limit.clone(),
            });
        }
        Ok(wait)
    }

    /// DomainTools answered 503: a product of known limit has its remaining turns spent; one
    /// of unknown limit pauses for `retry_after` (or [`UNKNOWN_LIMIT_PAUSE`]), then is
    /// forgotten. Returns that pause, for the other replicas.
    pub(crate) fn slow_down(
        &self,
        account: &str,
        product: &str,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let now = Instant::now();
        let mut state = self.state();
        if let Some(bucket) = state
            .accounts
            .get_mut(account)
            .and_then(|known| known.buckets.get_mut(product))
        {
            bucket.refill(now);
            bucket.tokens = bucket.tokens.min(0.0);
            return None;
        }
        let pause = retry_after.unwrap_or(UNKNOWN_LIMIT_PAUSE).min(MAX_PAUSE);
        Self::pause_in(&mut state, self.max_accounts, account, product, now + pause);
        Some(pause)
    }

    /// Another replica had a 503 for a product of unknown limit: calls here pause for what
    /// is `left` of its pause too (at most [`MAX_PAUSE`]: whoever can write to Redis must not
    /// stop the calls for longer).
    pub(crate) fn pause_for(&self, account: &str, product: &str, left: Duration) {
        if left.is_zero() {
            return;
        }
        let until = Instant::now() + left.min(MAX_PAUSE);
        Self::pause_in(
            &mut self.state(),
            self.max_accounts,
            account,
            product,
            until,
        );
    }

    /// Pauses `(account, product)` until `until`, or longer if it is already.
    fn pause_in(state: &mut State, max: usize, account: &str, product: &str, until: Instant) {
        let now = Instant::now();
        // Pauses are short-lived; the ones over are dropped here, so a client inventing
        // accounts cannot grow this map either.
        state.pauses.retain(|_, until| *until > now);
        let key = (account.to_owned(), product.to_owned());
        if let Some(known) = state.pauses.get_mut(&key) {
            *known = (*known).max(until);
            return;
        }
        if state.pauses.len() >= max {
            return;
        }
        state.pauses.insert(key, until);
    }
}

/// The pause a 503's `Retry-After` asks for, in seconds (the HTTP-date form is not used by
/// DomainTools and is ignored).
pub(crate) fn retry_after(value: Option<&str>) -> Option<Duration> {
    let seconds: f64 = value?.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
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

    /// Limits as the client sees them: marked as being learned, then learned.
    fn learned(answer: &Value) -> RateLimits {
        let limits = RateLimits::default();
        assert!(limits.should_learn("a"));
        limits.learn("a", answer);
        limits
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_up_to_the_limit_goes_at_once_then_calls_wait_their_turn() {
        let limits = learned(&account("20", None));
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
        let limits = learned(&account("1", None));
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
        let limits = learned(&account("30", Some("10")));
        for _ in 0..10 {
            limits.reserve("a", "iris-investigate", None).unwrap();
        }
        assert_eq!(
            limits.reserve("a", "iris-investigate", None).unwrap(),
            Duration::from_secs(360)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_503_of_unknown_limit_pauses_as_it_says_then_is_forgotten() {
        let limits = RateLimits::default();
        limits.slow_down("a", "risk", None);
        assert_eq!(
            limits.reserve("a", "risk", None).unwrap(),
            UNKNOWN_LIMIT_PAUSE
        );
        assert_eq!(
            limits.reserve("a", "risk", None).unwrap(),
            UNKNOWN_LIMIT_PAUSE,
            "every call in the pause waits for its end, none for a turn after it"
        );
        tokio::time::advance(UNKNOWN_LIMIT_PAUSE).await;
        for _ in 0..10 {
            assert_eq!(
                limits.reserve("a", "risk", None).unwrap(),
                Duration::ZERO,
                "the pause is over and forgotten: no throttling afterwards"
            );
        }
        limits.slow_down("a", "risk", Some(Duration::from_secs(7)));
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            limits
                .reserve("a", "risk", Some(deadline))
                .unwrap_err()
                .wait,
            Duration::from_secs(7),
            "Retry-After sets the pause"
        );
        limits.slow_down("a", "risk", Some(Duration::from_secs(1_000_000)));
        assert_eq!(limits.reserve("a", "risk", None).unwrap(), MAX_PAUSE);
    }

    #[tokio::test(start_paused = true)]
    async fn another_replicas_pause_is_kept_bounded_and_never_shortened() {
        let limits = RateLimits::default();
        assert_eq!(
            limits.slow_down("a", "risk", Some(Duration::from_secs(5))),
            Some(Duration::from_secs(5)),
            "the pause is handed on to the other replicas"
        );
        limits.pause_for("a", "risk", Duration::from_secs(1));
        assert_eq!(
            limits.reserve("a", "risk", None).unwrap(),
            Duration::from_secs(5),
            "a shorter pause from Redis does not cut ours"
        );
        limits.pause_for("b", "risk", Duration::from_secs(86_400));
        assert_eq!(limits.reserve("b", "risk", None).unwrap(), MAX_PAUSE);
        limits.pause_for("c", "risk", Duration::ZERO);
        assert_eq!(limits.reserve("c", "risk", None).unwrap(), Duration::ZERO);
        let known = learned(&account("60", None));
        assert_eq!(
            known.slow_down("a", "iris-investigate", None),
            None,
            "a known limit is drained, not paused"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_503_for_a_known_limit_spends_the_remaining_turns() {
        let limits = learned(&account("60", None));
        limits.slow_down("a", "iris-investigate", None);
        assert_eq!(
            limits.reserve("a", "iris-investigate", None).unwrap(),
            Duration::from_secs(1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn learned_limits_expire_after_an_hour_and_are_learned_again() {
        let limits = RateLimits::default();
        assert!(limits.should_learn("a"));
        assert!(!limits.should_learn("a"));
        tokio::time::advance(LEARNED_FOR - Duration::from_secs(1)).await;
        assert!(!limits.should_learn("a"), "still fresh");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(limits.should_learn("a"), "an hour old: read again");
        assert!(!limits.should_learn("a"), "once");
        limits.unlearn("a");
        assert!(limits.should_learn("a"), "a failed read is retried");
    }

    #[tokio::test(start_paused = true)]
    async fn the_set_of_accounts_is_bounded() {
        let limits = RateLimits::new(LEARNED_FOR, 100);
        for n in 0..10_000 {
            let name = format!("user-{n}-{}", "x".repeat(1000));
            limits.should_learn(&name);
            limits.learn(&name, &account("20", None));
            limits.slow_down(&name, "risk", None);
        }
        assert_eq!(limits.accounts(), 100);
        assert!(limits.state().pauses.len() <= 100);
        let first = format!("user-0-{}", "x".repeat(1000));
        assert!(
            limits.should_learn(&first),
            "a forgotten account is learned again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn absurd_limits_never_panic_and_never_throttle() {
        let absurd = [
            json!("1e-300"),
            json!("-5"),
            json!("NaN"),
            json!("inf"),
            json!("-inf"),
            json!("1e308"),
            json!(1e-300),
            json!(-1),
            json!(0),
            json!(u64::MAX),
            json!(""),
            json!([1]),
            json!({"a": 1}),
            json!(true),
            json!("0.0000001"),
        ];
        for minute in &absurd {
            for hour in &absurd {
                let limits = learned(&json!({"products": [
                    {"id": "risk", "per_minute_limit": minute, "per_hour_limit": hour},
                    {"id": 7, "per_minute_limit": "1"},
                    "not an object",
                ]}));
                for _ in 0..3 {
                    let wait = limits.reserve("a", "risk", Some(Instant::now())).unwrap();
                    assert_eq!(wait, Duration::ZERO, "{minute} / {hour}");
                }
            }
        }
        // The largest sane limit still gives finite, bounded waits.
        let limits = learned(&json!({"products": [{"id": "risk", "per_hour_limit": 1}]}));
        limits.reserve("a", "risk", None).unwrap();
        assert_eq!(
            limits.reserve("a", "risk", None).unwrap(),
            Duration::from_secs(3600)
        );
        assert_eq!(retry_after(Some("1e300")), None);
        assert_eq!(retry_after(Some("-1")), None);
        assert_eq!(retry_after(Some("NaN")), None);
        assert_eq!(retry_after(Some(" 3 ")), Some(Duration::from_secs(3)));
    }
}
