//! A small Prometheus metrics registry (counters, gauges, histograms) rendered in the text
//! exposition format. Labels carry only module names, endpoint families, statuses and
//! outcomes: never a credential, a lookup value or a URL.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Latency buckets, in seconds.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Size buckets (batch sizes).
pub const SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0];

type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
struct Histogram {
    buckets: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Debug)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug)]
struct Family {
    help: &'static str,
    kind: Kind,
    values: BTreeMap<Labels, f64>,
    histograms: BTreeMap<Labels, Histogram>,
}

/// The registry. One per server; shared with the DomainTools client.
#[derive(Debug, Default)]
pub struct Metrics {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_family<R>(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        f: impl FnOnce(&mut Family) -> R,
    ) -> R {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.entry(name).or_insert_with(|| Family {
            help,
            kind,
            values: BTreeMap::new(),
            histograms: BTreeMap::new(),
        });
        f(family)
    }

    /// Adds `by` to a counter.
    pub fn add(
        &self,
        name: &'static str,
        help: &'static str,
        pairs: &[(&'static str, &str)],
        by: f64,
    ) {
        self.with_family(name, help, Kind::Counter, |f| {
            *f.values.entry(labels(pairs)).or_insert(0.0) += by
        });
    }

    /// Adds one to a counter.
    pub fn inc(&self, name: &'static str, help: &'static str, pairs: &[(&'static str, &str)]) {
        self.add(name, help, pairs, 1.0);
    }

    /// Moves a gauge by `by` (negative to decrease).
    pub fn gauge_add(
        &self,
        name: &'static str,
        help: &'static str,
        pairs: &[(&'static str, &str)],
        by: f64,
    ) {
        self.with_family(name, help, Kind::Gauge, |f| {
            *f.values.entry(labels(pairs)).or_insert(0.0) += by
        });
    }

    /// Records one observation in a histogram.
    pub fn observe(
        &self,
        name: &'static str,
        help: &'static str,
        buckets: &'static [f64],
        pairs: &[(&'static str, &str)],
        value: f64,
    ) {
        self.with_family(name, help, Kind::Histogram, |f| {
            let h = f
                .histograms
                .entry(labels(pairs))
                .or_insert_with(|| Histogram {
                    buckets,
                    counts: vec![0; buckets.len()],
                    sum: 0.0,
                    count: 0,
                });
            for (i, bound) in h.buckets.iter().enumerate() {
                if value <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.sum += value;
            h.count += 1;
        });
    }

    /// The current value of a counter or gauge (0 when never set); for tests and logs.
    pub fn value(&self, name: &str, pairs: &[(&'static str, &str)]) -> f64 {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        families
            .get(name)
            .and_then(|f| f.values.get(&labels(pairs)))
            .copied()
            .unwrap_or(0.0)
    }

    /// The sum of a counter over all its label sets.
    pub fn total(&self, name: &str) -> f64 {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        families
            .get(name)
            .map(|f| f.values.values().sum())
            .unwrap_or(0.0)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (name, family) in families.iter() {
            let kind = match family.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in &family.values {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    render_labels(labels, None),
                    number(*value)
                );
            }
            for (labels, h) in &family.histograms {
                for (bound, count) in h.buckets.iter().zip(&h.counts) {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {count}",
                        render_labels(labels, Some(&number(*bound)))
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {}",
                    render_labels(labels, Some("+Inf")),
                    h.count
                );
                let _ = writeln!(
                    out,
                    "{name}_sum{} {}",
                    render_labels(labels, None),
                    number(h.sum)
                );
                let _ = writeln!(
                    out,
                    "{name}_count{} {}",
                    render_labels(labels, None),
                    h.count
                );
            }
        }
        out
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.inc("x_total", "Things.", &[("module", "A")]);
        m.inc("x_total", "Things.", &[("module", "A")]);
        m.gauge_add("g", "Gauge.", &[], 3.0);
        m.observe("h_seconds", "Latency.", &[0.1, 1.0], &[("e", "q\"")], 0.5);
        let text = m.render();
        assert!(
            text.contains("# TYPE x_total counter\nx_total{module=\"A\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("g 3\n"));
        assert!(
            text.contains("h_seconds_bucket{e=\"q\\\"\",le=\"0.1\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("h_seconds_bucket{e=\"q\\\"\",le=\"1\"} 1\n"));
        assert!(text.contains("h_seconds_bucket{e=\"q\\\"\",le=\"+Inf\"} 1\n"));
        assert!(text.contains("h_seconds_count{e=\"q\\\"\"} 1\n"));
        assert_eq!(m.value("x_total", &[("module", "A")]), 2.0);
        assert_eq!(m.total("x_total"), 2.0);
    }
}
