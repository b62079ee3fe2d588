//! The pollers' metrics on `/metrics`: lines read, lines dropped, buckets sealed, the last
//! successful poll, failures by kind, and whether this replica is the one polling. Labels are
//! feed names and fixed failure kinds only.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use domaintools::feeds::Feed;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeedLabel {
    feed: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabel {
    feed: &'static str,
    kind: &'static str,
}

/// The pollers' metrics; cheap to clone (the series are shared).
#[derive(Debug, Clone, Default)]
pub struct FeedMetrics {
    lines: Family<FeedLabel, Counter>,
    dropped: Family<FeedLabel, Counter>,
    sealed: Family<FeedLabel, Counter>,
    last_success: Family<FeedLabel, Gauge>,
    failures: Family<FailureLabel, Counter>,
    leader: Family<FeedLabel, Gauge>,
}

impl FeedMetrics {
    /// The metrics of `feeds`, each series present (at 0) from the start.
    pub fn new(feeds: &[Feed]) -> Self {
        let metrics = Self::default();
        for feed in feeds {
            let label = FeedLabel { feed: feed.name() };
            drop(metrics.lines.get_or_create(&label));
            drop(metrics.dropped.get_or_create(&label));
            drop(metrics.sealed.get_or_create(&label));
            drop(metrics.last_success.get_or_create(&label));
            drop(metrics.leader.get_or_create(&label));
        }
        metrics
    }

    /// Adds the metrics to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "misp_domaintools_feed_lines",
            "Feed lines read from DomainTools, by feed",
            self.lines.clone(),
        );
        registry.register(
            "misp_domaintools_feed_lines_dropped",
            "Feed lines dropped because their hour already had its largest number of events",
            self.dropped.clone(),
        );
        registry.register(
            "misp_domaintools_feed_buckets_sealed",
            "Buckets sealed into MISP events, by feed",
            self.sealed.clone(),
        );
        registry.register(
            "misp_domaintools_feed_last_success_timestamp_seconds",
            "Unix time of the feed's last poll that succeeded (0: none yet)",
            self.last_success.clone(),
        );
        registry.register(
            "misp_domaintools_feed_poll_failures",
            "Failed feed polls, by feed and kind (api, timeout, transport, storage, lease, ...)",
            self.failures.clone(),
        );
        registry.register(
            "misp_domaintools_feed_leader",
            "1 while this process polls the feed's cursor, 0 while another replica does",
            self.leader.clone(),
        );
    }

    fn label(feed: Feed) -> FeedLabel {
        FeedLabel { feed: feed.name() }
    }

    /// One line read.
    pub fn line(&self, feed: Feed) {
        self.lines.get_or_create(&Self::label(feed)).inc();
    }

    /// Lines dropped.
    pub fn dropped(&self, feed: Feed, lines: u64) {
        self.dropped.get_or_create(&Self::label(feed)).inc_by(lines);
    }

    /// Buckets sealed.
    pub fn sealed(&self, feed: Feed, buckets: usize) {
        self.sealed
            .get_or_create(&Self::label(feed))
            .inc_by(u64::try_from(buckets).unwrap_or(u64::MAX));
    }

    /// A poll that succeeded at `unix` seconds.
    pub fn success(&self, feed: Feed, unix: i64) {
        self.last_success
            .get_or_create(&Self::label(feed))
            .set(unix);
    }

    /// A failure of `kind`.
    pub fn failure(&self, feed: Feed, kind: &'static str) {
        self.failures
            .get_or_create(&FailureLabel {
                feed: feed.name(),
                kind,
            })
            .inc();
    }

    /// Whether this process polls `feed`.
    pub fn leading(&self, feed: Feed, leading: bool) {
        self.leader
            .get_or_create(&Self::label(feed))
            .set(i64::from(leading));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_feed_has_its_series_from_the_start() {
        let metrics = FeedMetrics::new(&[Feed::Nod, Feed::DomainHotlist]);
        metrics.line(Feed::Nod);
        metrics.failure(Feed::Nod, "timeout");
        metrics.leading(Feed::Nod, true);
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "misp_domaintools_feed_lines_total{feed=\"nod\"} 1",
            "misp_domaintools_feed_lines_total{feed=\"domainhotlist\"} 0",
            "misp_domaintools_feed_poll_failures_total{feed=\"nod\",kind=\"timeout\"} 1",
            "misp_domaintools_feed_leader{feed=\"nod\"} 1",
            "misp_domaintools_feed_leader{feed=\"domainhotlist\"} 0",
            "misp_domaintools_feed_last_success_timestamp_seconds{feed=\"nod\"} 0",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
