//! The client's metrics, as `prometheus-client` families: each name and help text is written
//! once, here, and the server registers them into the registry behind its `GET /metrics`.
//! Labels carry endpoint families, statuses and outcomes only: never a credential, a lookup
//! value or a URL.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets, in seconds (shared with the server's own query histogram).
pub const SECONDS_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Iris Enrich batch-size buckets.
const SIZE_BUCKETS: [f64; 8] = [1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0];

/// A latency histogram with [`SECONDS_BUCKETS`].
pub fn seconds_histogram() -> Histogram {
    Histogram::new(SECONDS_BUCKETS)
}

/// Labels of a metric kept per DomainTools endpoint family (its rate-limit product).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Endpoint {
    pub(crate) endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EndpointStatus {
    pub(crate) endpoint: &'static str,
    /// The HTTP status, or the failure kind (`timeout`, `connect_error`, `transport_error`).
    pub(crate) status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EndpointReason {
    pub(crate) endpoint: &'static str,
    pub(crate) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CacheLookup {
    pub(crate) layer: &'static str,
    pub(crate) result: &'static str,
}

/// Why a shared-cache entry was refused: `malformed`, `oversized`, `foreign_secret`
/// (sealed with another secret) or `tampered` (its MAC does not match).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CacheRejection {
    pub(crate) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CacheLayer {
    pub(crate) layer: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the client keeps. Clones share the same values.
#[derive(Clone, Debug)]
pub struct ClientMetrics {
    pub(crate) upstream_requests: Family<EndpointStatus, Counter>,
    pub(crate) upstream_duration: Histograms<Endpoint>,
    pub(crate) upstream_in_flight: Gauge,
    pub(crate) upstream_cancelled: Family<Endpoint, Counter>,
    pub(crate) upstream_retries: Family<EndpointReason, Counter>,
    pub(crate) coalesced: Family<Endpoint, Counter>,
    pub(crate) rate_limit_wait: Histograms<Endpoint>,
    pub(crate) rate_limit_rejections: Family<Endpoint, Counter>,
    pub(crate) enrich_batch_size: Histogram,
    pub(crate) cache_lookups: Family<CacheLookup, Counter>,
    pub(crate) cache_errors: Family<CacheLayer, Counter>,
    pub(crate) cache_rejected: Family<CacheRejection, Counter>,
    pub(crate) redis_available: Gauge,
}

impl Default for ClientMetrics {
    /// Metrics that count but are registered nowhere (a client nobody scrapes).
    fn default() -> Self {
        Self {
            upstream_requests: Family::default(),
            upstream_duration: Family::new_with_constructor(seconds_histogram),
            upstream_in_flight: Gauge::default(),
            upstream_cancelled: Family::default(),
            upstream_retries: Family::default(),
            coalesced: Family::default(),
            rate_limit_wait: Family::new_with_constructor(seconds_histogram),
            rate_limit_rejections: Family::default(),
            enrich_batch_size: Histogram::new(SIZE_BUCKETS),
            cache_lookups: Family::default(),
            cache_errors: Family::default(),
            cache_rejected: Family::default(),
            redis_available: Gauge::default(),
        }
    }
}

impl ClientMetrics {
    /// Registers every metric into `registry` (counter names without their `_total` suffix,
    /// help texts without their final period: the exposition adds both;
    /// the registry then reads the values this client counts).
    pub fn register(&self, registry: &mut Registry) {
        let metrics = self;
        registry.register(
            "misp_domaintools_upstream_requests",
            "Requests sent to DomainTools, by endpoint and HTTP status (or failure kind)",
            metrics.upstream_requests.clone(),
        );
        registry.register(
            "misp_domaintools_upstream_duration_seconds",
            "Time DomainTools took to answer",
            metrics.upstream_duration.clone(),
        );
        registry.register(
            "misp_domaintools_upstream_in_flight",
            "Requests to DomainTools currently under way",
            metrics.upstream_in_flight.clone(),
        );
        registry.register(
            "misp_domaintools_upstream_cancelled",
            "Requests to DomainTools abandoned before their answer because nobody waited any more",
            metrics.upstream_cancelled.clone(),
        );
        registry.register(
            "misp_domaintools_upstream_retries",
            "Upstream calls retried after a 503 or a broken connection",
            metrics.upstream_retries.clone(),
        );
        registry.register(
            "misp_domaintools_coalesced_requests",
            "Lookups answered by joining an identical upstream call already in flight",
            metrics.coalesced.clone(),
        );
        registry.register(
            "misp_domaintools_rate_limit_wait_seconds",
            "Time calls waited for their turn under the account's DomainTools rate limit",
            metrics.rate_limit_wait.clone(),
        );
        registry.register(
            "misp_domaintools_rate_limit_rejections",
            "Calls refused at once because their rate-limit turn came after the request's deadline",
            metrics.rate_limit_rejections.clone(),
        );
        registry.register(
            "misp_domaintools_enrich_batch_size",
            "Domains per Iris Enrich call made for batched lookups",
            metrics.enrich_batch_size.clone(),
        );
        registry.register(
            "misp_domaintools_cache_lookups",
            "Cache lookups by layer (memory, redis) and result (hit, miss, skipped: Redis taken as away)",
            metrics.cache_lookups.clone(),
        );
        registry.register(
            "misp_domaintools_cache_errors",
            "Shared cache (Redis) operations that failed; the server fell back to DomainTools",
            metrics.cache_errors.clone(),
        );
        registry.register(
            "misp_domaintools_cache_rejected",
            "Shared cache (Redis) entries refused unread or unused, by reason (malformed, oversized, foreign_secret, tampered)",
            metrics.cache_rejected.clone(),
        );
        registry.register(
            "misp_domaintools_cache_redis_available",
            "1 while the shared cache (Redis) is used, 0 while its circuit breaker sends lookups straight to DomainTools",
            metrics.redis_available.clone(),
        );
    }

    pub(crate) fn endpoint(endpoint: &'static str) -> Endpoint {
        Endpoint { endpoint }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_todays_names() {
        let mut registry = Registry::default();
        let metrics = ClientMetrics::default();
        metrics.register(&mut registry);
        metrics
            .upstream_requests
            .get_or_create(&EndpointStatus {
                endpoint: "iris-investigate",
                status: "200".into(),
            })
            .inc();
        metrics
            .upstream_duration
            .get_or_create(&ClientMetrics::endpoint("iris-investigate"))
            .observe(0.5);
        metrics.upstream_in_flight.inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                "misp_domaintools_upstream_requests_total{endpoint=\"iris-investigate\",status=\"200\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "misp_domaintools_upstream_duration_seconds_bucket{le=\"0.5\",endpoint=\"iris-investigate\"} 1\n"
        ) || text.contains(
            "misp_domaintools_upstream_duration_seconds_bucket{endpoint=\"iris-investigate\",le=\"0.5\"} 1\n"
        ), "{text}");
        assert!(
            text.contains("misp_domaintools_upstream_in_flight 1\n"),
            "{text}"
        );
    }
}
