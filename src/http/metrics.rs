//! `GET /metrics`: the server's own query metrics beside the DomainTools client's, in one
//! `prometheus-client` registry rendered as OpenMetrics text.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use domaintools::metrics::seconds_histogram;
use domaintools::ClientMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModuleOutcome {
    module: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Lookup {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Module {
    module: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// Every metric `/metrics` shows.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    queries: Family<ModuleOutcome, Counter>,
    query_duration: Family<Module, Histogram, fn() -> Histogram>,
    misp_modules_up: Gauge,
    misp_modules_listed: Gauge,
    listing_failures: Counter,
    forwarded_queries: Family<Outcome, Counter>,
    reply_cache: Family<Lookup, Counter>,
}

impl Metrics {
    /// The server's metrics and those `client` and the feed pollers count, in one registry.
    pub(crate) fn new(
        client: &ClientMetrics,
        feeds: Option<&crate::feeds::metrics::FeedMetrics>,
    ) -> Self {
        let mut registry = Registry::default();
        let queries = Family::<ModuleOutcome, Counter>::default();
        let query_duration = Family::new_with_constructor(seconds_histogram as fn() -> Histogram);
        registry.register(
            "misp_domaintools_queries",
            "Queries answered, by module and outcome",
            queries.clone(),
        );
        registry.register(
            "misp_domaintools_query_duration_seconds",
            "Time to answer a query, by module",
            query_duration.clone(),
        );
        let misp_modules_up = Gauge::default();
        let misp_modules_listed = Gauge::default();
        let listing_failures = Counter::default();
        let forwarded_queries = Family::<Outcome, Counter>::default();
        registry.register(
            "misp_domaintools_misp_modules_up",
            "1 when the last /modules fetch from --misp-modules-url succeeded, else 0",
            misp_modules_up.clone(),
        );
        registry.register(
            "misp_domaintools_misp_modules_listed",
            "Modules of --misp-modules-url listed beside ours",
            misp_modules_listed.clone(),
        );
        registry.register(
            "misp_domaintools_misp_modules_listing_failures",
            "Failed /modules fetches from --misp-modules-url",
            listing_failures.clone(),
        );
        registry.register(
            "misp_domaintools_misp_modules_queries",
            "Queries for modules not served here, forwarded to --misp-modules-url, by outcome",
            forwarded_queries.clone(),
        );
        let reply_cache = Family::<Lookup, Counter>::default();
        registry.register(
            "misp_domaintools_reply_cache_lookups",
            "Rendered replies looked up before running a module, by result (hit, miss)",
            reply_cache.clone(),
        );
        client.register(&mut registry);
        if let Some(feeds) = feeds {
            feeds.register(&mut registry);
        }
        Self {
            registry,
            queries,
            query_duration,
            misp_modules_up,
            misp_modules_listed,
            listing_failures,
            forwarded_queries,
            reply_cache,
        }
    }

    /// Counts one answered query; `module` is a registered name (or "unknown"), so request
    /// text never creates series.
    pub(crate) fn query(&self, module: &'static str, outcome: &'static str, seconds: f64) {
        self.queries
            .get_or_create(&ModuleOutcome { module, outcome })
            .inc();
        self.query_duration
            .get_or_create(&Module { module })
            .observe(seconds);
    }

    /// Records one upstream `/modules` fetch and how many of its modules are listed.
    pub(crate) fn misp_modules_listing(&self, ok: bool, modules: usize) {
        self.misp_modules_up.set(i64::from(ok));
        self.misp_modules_listed
            .set(i64::try_from(modules).unwrap_or(i64::MAX));
        if !ok {
            self.listing_failures.inc();
        }
    }

    /// Counts one forwarded query ("forwarded" or "unreachable").
    pub(crate) fn misp_modules_query(&self, outcome: &'static str) {
        self.forwarded_queries
            .get_or_create(&Outcome { outcome })
            .inc();
    }

    /// Counts a reply-cache lookup of a reply that could be kept.
    pub(crate) fn reply_cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.reply_cache.get_or_create(&Lookup { result }).inc();
    }

    /// The OpenMetrics text exposition.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
