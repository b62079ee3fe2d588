//! The feeds import (`CONNECTOR_TYPE=EXTERNAL_IMPORT`): the sealed buckets the feed pollers
//! keep under `--feeds-dir` (the very events MISP pulls) and the Domain Hotlist, sent to
//! OpenCTI as STIX 2.1 bundles, with the mapping of OpenCTI's own DomainTools feeds connector
//! (`external-import/domaintools-feeds`):
//! - the stream feeds (NOD, NAD, NOH, Domain Discovery, Domain RDAP): Domain-Name observables,
//!   host names of NOH included (that connector's choice), labelled with the feed's name; the
//!   IP feeds (IP Risk, IP Hotlist), which that connector predates: IPv4-Addr and IPv6-Addr
//!   observables, as its `create_obs` types IP addresses;
//! - Domain Risk and the Domain Hotlist: Indicators `[domain-name:value = '…']` named after the
//!   domain, labelled with the feed's name and each non-zero risk (`malware=72`), confidence
//!   the overall risk (50 without one) as that connector sets it, plus OpenCTI's score (the
//!   overall risk, in OpenCTI's extension as the platform exports it) and, for the hotlist,
//!   `valid_until` from `expires`, which that connector leaves out;
//! - every object by the "DomainTools" organization, marked with the TLP of `DOMAINTOOLS_MARKING`
//!   (TLP:CLEAR by default, that connector's default).
//!
//! One run is one work (`workAdd`, as pycti's `initiate_work`), created only when there is
//! something to send, closed with `toProcessed`. What was sent is the connector's state on the
//! platform (pycti's `set_state`, carried by the pings): per feed, the seal time through which
//! every sealed event was sent (and the events sealed in that second), and for the hotlist the
//! last change sent. It is pinged as soon as it moves (every [`STATE_PING_EVERY`] at most
//! during a long run), so a restart sends nothing twice but what the last seconds sent; a
//! "reset state" on the platform sends everything kept again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use domaintools::feeds::Feed;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use super::connector::Pinger;
use super::graphql::requests::Runs;
use super::graphql::Platform;
use super::work::{send_bundle, Push};
use crate::feeds::hotlist::{Entry, Hotlist};
use crate::feeds::store::{self, Scores, SealedEntry, SealedValue};
use crate::stix::{ids, validate, Tlp, OPENCTI_SCO_EXTENSION};
use crate::telemetry::logged;
use domaintools::classic::shown;

/// Objects per bundle at most, the author aside: a sealed event of 20 000 values goes as 20
/// bundles, each a few hundred kilobytes (what `stixBundlePush` and a worker take at once).
pub const MAX_BUNDLE_OBJECTS: usize = 1_000;
/// Longest time the state may lag behind what was sent during a run.
pub const STATE_PING_EVERY: Duration = Duration::from_secs(10);
/// The works' name, as OpenCTI's DomainTools feeds connector names them.
pub const FRIENDLY_NAME: &str = "DomainTools Feeds";
/// OpenCTI's extension on SDOs (pycti's `STIX_EXT_OCTI`): an indicator's score and main
/// observable type.
const OPENCTI_SDO_EXTENSION: &str = "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba";
/// The author's name (the same organization as the enrichment's).
const AUTHOR_NAME: &str = "DomainTools";

/// What was sent, as kept in the connector's state on the platform.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportState {
    /// Per feed name.
    #[serde(default)]
    pub feeds: BTreeMap<String, SentMark>,
    /// The hotlist's last change sent (RFC 3339, nanoseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotlist_through: Option<String>,
    /// The end of the last run (pycti's connectors keep `last_run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
}

/// The sealed events of one feed already sent. Seals are in time order (each is written with
/// the time it was sealed), so a time and the few events sealed in that very second say it all
/// in a few bytes, however long the retention.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMark {
    /// Every event sealed before this second (Unix) was sent.
    pub sealed_through: i64,
    /// The events sealed in that second that were sent.
    #[serde(default)]
    pub at_mark: Vec<String>,
}

impl SentMark {
    /// Whether `entry` was sent.
    pub fn sent(&self, entry: &SealedEntry) -> bool {
        entry.sealed_at < self.sealed_through
            || (entry.sealed_at == self.sealed_through && self.at_mark.contains(&entry.uuid))
    }

    /// Records `entry` as sent; entries come oldest seal first.
    pub fn record(&mut self, entry: &SealedEntry) {
        if entry.sealed_at > self.sealed_through {
            self.sealed_through = entry.sealed_at;
            self.at_mark = vec![entry.uuid.clone()];
        } else if entry.sealed_at == self.sealed_through && !self.at_mark.contains(&entry.uuid) {
            self.at_mark.push(entry.uuid.clone());
        }
    }
}

impl ImportState {
    /// The state the platform holds; anything unreadable (another connector's, a reset) is
    /// an empty state: everything kept is sent again, nothing is lost.
    pub fn parse(text: Option<&str>) -> Self {
        match text.map(serde_json::from_str::<ImportState>) {
            None => Self::default(),
            Some(Ok(state)) => state,
            Some(Err(error)) => {
                tracing::warn!(error = %logged(&error), "the connector state is not this import's; starting over");
                Self::default()
            }
        }
    }

    fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// What the feeds become.
fn is_indicator_feed(feed: Feed) -> bool {
    matches!(feed, Feed::DomainRisk | Feed::DomainHotlist)
}

fn stix_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The author: the enrichment's organization (same id), without its description, which
/// speaks of Iris Investigate: an upsert without one keeps the platform's.
fn author(timestamp: &str) -> Value {
    json!({
        "type": "identity",
        "spec_version": "2.1",
        "id": ids::identity_id(AUTHOR_NAME, "organization"),
        "created": timestamp,
        "modified": timestamp,
        "name": AUTHOR_NAME,
        "identity_class": "organization",
    })
}

/// A value the connector's check accepts as a domain: underscores are allowed (some host
/// names have them), as OpenCTI's feeds connector allows them.
fn is_domain(value: &str) -> bool {
    validate::is_domain(&value.replace('_', "-"))
}

/// The observable of a stream feed's value: a Domain-Name, or for the IP feeds an IPv4-Addr
/// or IPv6-Addr (as that connector's `create_obs` types IP addresses).
fn observable(feed: Feed, value: &str, marking: Tlp, author_id: &str) -> Value {
    let (kind, id) = match value.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) if feed.carries_ips() => {
            ("ipv4-addr", ids::ipv4_addr_id(value))
        }
        Ok(std::net::IpAddr::V6(_)) if feed.carries_ips() => {
            ("ipv6-addr", ids::ipv6_addr_id(value))
        }
        _ => ("domain-name", ids::domain_name_id(value)),
    };
    json!({
        "type": kind,
        "spec_version": "2.1",
        "id": id,
        "value": value,
        "object_marking_refs": [marking.marking_id()],
        "extensions": { OPENCTI_SCO_EXTENSION: {
            "extension_type": "property-extension",
            "created_by_ref": author_id,
            "labels": [feed.name()],
        }},
    })
}

/// `[domain-name:value = '…']`, quotes and backslashes escaped as STIX patterning wants.
fn pattern(value: &str) -> String {
    format!(
        "[domain-name:value = '{}']",
        value.replace('\\', "\\\\").replace('\'', "\\'")
    )
}

/// The labels OpenCTI's feeds connector gives: the feed, then each non-zero risk but the
/// overall one.
fn labels(feed: Feed, scores: &Scores) -> Vec<String> {
    let mut labels = vec![feed.name().to_owned()];
    for (name, score) in [
        ("phishing", scores.phishing),
        ("malware", scores.malware),
        ("spam", scores.spam),
        ("proximity", scores.proximity),
    ] {
        if let Some(score) = score.filter(|score| *score > 0) {
            labels.push(format!("{name}={score}"));
        }
    }
    labels
}

/// An indicator's description (the validator wants one beside the name): the feed and the
/// scores in words, as MISP's attribute comments say them.
fn description(feed: Feed, scores: &Scores) -> String {
    let mut text = format!("Listed in the DomainTools {} feed", store::title(feed));
    let words: Vec<String> = [
        ("overall", scores.overall),
        ("malware", scores.malware),
        ("phishing", scores.phishing),
        ("spam", scores.spam),
        ("proximity", scores.proximity),
    ]
    .into_iter()
    .filter_map(|(name, score)| score.map(|score| format!("{name} risk {score}")))
    .collect();
    if !words.is_empty() {
        text.push_str(": ");
        text.push_str(&words.join(", "));
    }
    text.push('.');
    text
}

/// The indicator of a risk feed's or the hotlist's value.
#[allow(clippy::too_many_arguments)]
fn indicator(
    feed: Feed,
    value: &str,
    scores: &Scores,
    valid_from: DateTime<Utc>,
    valid_until: Option<DateTime<Utc>>,
    marking: Tlp,
    author_id: &str,
    timestamp: &str,
) -> Value {
    let pattern = pattern(value);
    let mut extension = Map::new();
    extension.insert("extension_type".into(), "property-extension".into());
    extension.insert("main_observable_type".into(), "Domain-Name".into());
    if let Some(score) = scores.overall {
        extension.insert("score".into(), json!(score.min(100)));
    }
    let mut object = json!({
        "type": "indicator",
        "spec_version": "2.1",
        "id": ids::deterministic_id("indicator", &json!({ "pattern": pattern.trim() })),
        "created": timestamp,
        "modified": timestamp,
        "name": value,
        "description": description(feed, scores),
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": stix_time(valid_from),
        "labels": labels(feed, scores),
        "confidence": scores.overall.unwrap_or(50).min(100),
        "created_by_ref": author_id,
        "object_marking_refs": [marking.marking_id()],
        "extensions": { OPENCTI_SDO_EXTENSION: Value::Object(extension) },
    });
    if let Some(until) = valid_until {
        object["valid_until"] = json!(stix_time(until));
    }
    object
}

/// One bundle: the author, then `objects`.
fn bundle(objects: Vec<Value>, timestamp: &str) -> Value {
    let mut all = Vec::with_capacity(objects.len() + 1);
    all.push(author(timestamp));
    all.extend(objects);
    crate::stix::mapping::bundle(all, &ids::uuid4())
}

/// The objects of a sealed event's values (invalid ones left out, counted in the log).
pub fn event_objects(
    feed: Feed,
    values: &[SealedValue],
    marking: Tlp,
    now: DateTime<Utc>,
) -> Vec<Value> {
    let timestamp = stix_time(now);
    let author_id = ids::identity_id(AUTHOR_NAME, "organization");
    let mut skipped = 0usize;
    let objects: Vec<Value> = values
        .iter()
        .filter(|value| {
            let valid = if feed.carries_ips() {
                value.value.parse::<std::net::IpAddr>().is_ok()
            } else {
                is_domain(&value.value)
            };
            skipped += usize::from(!valid);
            valid
        })
        .map(|value| {
            if is_indicator_feed(feed) {
                indicator(
                    feed,
                    &value.value,
                    &value.scores,
                    value.first_seen,
                    None,
                    marking,
                    &author_id,
                    &timestamp,
                )
            } else {
                observable(feed, &value.value, marking, &author_id)
            }
        })
        .collect();
    if skipped > 0 {
        tracing::debug!(%feed, skipped, "values that are not domain names were left out");
    }
    objects
}

/// The indicators of hotlist entries.
pub fn hotlist_objects(
    entries: &[(String, Entry)],
    marking: Tlp,
    now: DateTime<Utc>,
) -> Vec<Value> {
    let timestamp = stix_time(now);
    let author_id = ids::identity_id(AUTHOR_NAME, "organization");
    entries
        .iter()
        .filter_map(|(domain, entry)| {
            // An entry kept by an earlier release has no change time: it is valid from now.
            let from = if entry.updated <= DateTime::UNIX_EPOCH {
                now
            } else {
                entry.updated
            };
            // valid_until must come after valid_from.
            (is_domain(domain) && entry.expires > from).then_some((domain, entry, from))
        })
        .map(|(domain, entry, from)| {
            indicator(
                Feed::DomainHotlist,
                domain,
                &entry.scores,
                from,
                Some(entry.expires),
                marking,
                &author_id,
                &timestamp,
            )
        })
        .collect()
}

/// The import, once registered.
pub struct Importer {
    /// The platform, release known.
    pub platform: Platform,
    /// The pings, and the state they carry.
    pub pinger: Pinger,
    /// The connector's id on the platform.
    pub connector_id: String,
    /// The connector's user (the bundles' applicant).
    pub applicant: Option<String>,
    /// Where bundles go.
    pub push: Push,
    /// The feeds imported.
    pub feeds: Vec<Feed>,
    /// `--feeds-dir`.
    pub dir: PathBuf,
    /// The TLP of every object.
    pub marking: Tlp,
}

impl std::fmt::Debug for Importer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field("connector_id", &self.connector_id)
            .field("feeds", &self.feeds)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// What a run sent.
#[derive(Debug, Default)]
struct Sent {
    events: usize,
    objects: usize,
    bundles: usize,
}

fn pycti_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| format!("reading the feeds directory stopped: {error}"))?
        .map_err(|error| format!("cannot read the feeds directory: {error}"))
}

impl Importer {
    /// Runs now, then every `every`, until `stop`: a run under way then has
    /// [`super::connector::STOP_GRACE`] to end between two bundles, else it is cut short (what
    /// it sent is in the state, pinged on the way out).
    pub async fn run(&self, every: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            let mut grace = stop.clone();
            let cut_short = async move {
                let _ = grace.wait_for(|stopped| *stopped).await;
                tokio::time::sleep(super::connector::STOP_GRACE).await;
            };
            let outcome = tokio::select! {
                outcome = self.run_once(&stop) => outcome,
                () = cut_short => {
                    tracing::warn!("stopping in the middle of a feeds import run");
                    let _ = tokio::time::timeout(Duration::from_secs(2), self.pinger.ping()).await;
                    return;
                }
            };
            match outcome {
                Ok(Some(summary)) => tracing::info!("{summary}"),
                Ok(None) => tracing::debug!("no new sealed feed buckets"),
                Err(error) => {
                    tracing::warn!(error = %logged(&error), "the feeds import failed; next run later")
                }
            }
            let now = Utc::now();
            self.pinger.set_runs(Runs {
                last: Some(pycti_time(now)),
                next: chrono::TimeDelta::from_std(every)
                    .ok()
                    .map(|delta| pycti_time(now + delta)),
            });
            if let Err(error) = self.pinger.ping().await {
                tracing::warn!(error = %logged(&error), "cannot ping OpenCTI with the import's state");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
    }

    /// One run: `Ok(None)` when there was nothing to send.
    async fn run_once(&self, stop: &watch::Receiver<bool>) -> Result<Option<String>, String> {
        let mut state = ImportState::parse(self.pinger.state().as_deref());
        let mut work: Option<String> = None;
        let mut sent = Sent::default();
        let mut pinged = Instant::now();
        let outcome = self
            .send_all(&mut state, &mut work, &mut sent, &mut pinged, stop)
            .await;
        state.last_run = Some(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true));
        self.pinger.set_state(state.to_text());
        let summary = format!(
            "sent {} sealed feed events and hotlist changes as {} objects in {} bundles",
            sent.events, sent.objects, sent.bundles
        );
        if let Some(work_id) = &work {
            let (message, in_error) = match &outcome {
                Ok(()) => (summary.clone(), false),
                Err(error) => (format!("{summary}, then: {error}"), true),
            };
            if let Err(error) = self
                .platform
                .work_processed(work_id, &message, in_error)
                .await
            {
                tracing::warn!(
                    error = %logged(&error),
                    work.id = %shown(work_id),
                    "cannot report the work's end"
                );
            }
        }
        outcome?;
        Ok(work.map(|_| summary))
    }

    /// The work of this run, created with the first bundle.
    async fn work(&self, work: &mut Option<String>) -> Result<String, String> {
        if let Some(id) = work {
            return Ok(id.clone());
        }
        let id = self
            .platform
            .work_add(&self.connector_id, FRIENDLY_NAME)
            .await
            .map_err(|error| format!("cannot start a work: {error}"))?;
        *work = Some(id.clone());
        Ok(id)
    }

    async fn send(
        &self,
        objects: Vec<Value>,
        work: &mut Option<String>,
        sent: &mut Sent,
    ) -> Result<(), String> {
        if objects.is_empty() {
            return Ok(());
        }
        let work_id = self.work(work).await?;
        let count = objects.len();
        let bundle = bundle(objects, &stix_time(Utc::now()));
        send_bundle(
            &self.platform,
            &self.push,
            &self.connector_id,
            &bundle,
            Some(&work_id),
            self.applicant.as_deref(),
            None,
        )
        .await?;
        sent.objects += count;
        sent.bundles += 1;
        Ok(())
    }

    /// Pings the new state when the last ping is older than [`STATE_PING_EVERY`].
    async fn keep(&self, state: &ImportState, pinged: &mut Instant) {
        self.pinger.set_state(state.to_text());
        if pinged.elapsed() >= STATE_PING_EVERY {
            if let Err(error) = self.pinger.ping().await {
                tracing::warn!(error = %logged(&error), "cannot ping OpenCTI with the import's state");
            }
            *pinged = Instant::now();
        }
    }

    async fn send_all(
        &self,
        state: &mut ImportState,
        work: &mut Option<String>,
        sent: &mut Sent,
        pinged: &mut Instant,
        stop: &watch::Receiver<bool>,
    ) -> Result<(), String> {
        for &feed in &self.feeds {
            if feed == Feed::DomainHotlist {
                self.send_hotlist(state, work, sent, pinged, stop).await?;
                continue;
            }
            let dir = self.dir.clone();
            let entries = blocking(move || store::sealed_entries(&dir, feed)).await?;
            let mark = state.feeds.get(feed.name()).cloned().unwrap_or_default();
            for entry in entries.into_iter().filter(|entry| !mark.sent(entry)) {
                if *stop.borrow() {
                    return Ok(());
                }
                let dir = self.dir.clone();
                let uuid = entry.uuid.clone();
                let values = blocking(move || store::sealed_values(&dir, feed, &uuid)).await?;
                // Gone since the manifest was read: past its retention.
                if let Some(values) = values {
                    for chunk in values.chunks(MAX_BUNDLE_OBJECTS) {
                        let objects = event_objects(feed, chunk, self.marking, Utc::now());
                        self.send(objects, work, sent).await?;
                    }
                    sent.events += 1;
                }
                state
                    .feeds
                    .entry(feed.name().to_owned())
                    .or_default()
                    .record(&entry);
                self.keep(state, pinged).await;
            }
        }
        Ok(())
    }

    async fn send_hotlist(
        &self,
        state: &mut ImportState,
        work: &mut Option<String>,
        sent: &mut Sent,
        pinged: &mut Instant,
        stop: &watch::Receiver<bool>,
    ) -> Result<(), String> {
        let since = state
            .hotlist_through
            .as_deref()
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|at| at.with_timezone(&Utc));
        let dir = self.dir.clone();
        let now = Utc::now();
        let mut changed = blocking(move || {
            let hotlist = Hotlist::open(&dir)?;
            Ok(hotlist
                .changed_since(since, now)
                .map(|(domain, entry)| (domain.to_owned(), entry.clone()))
                .collect::<Vec<_>>())
        })
        .await?;
        changed.sort_by(|a, b| (a.1.updated, &a.0).cmp(&(b.1.updated, &b.0)));
        let mut start = 0;
        while start < changed.len() {
            if *stop.borrow() {
                return Ok(());
            }
            let end = (start + MAX_BUNDLE_OBJECTS).min(changed.len());
            let chunk = &changed[start..end];
            self.send(hotlist_objects(chunk, self.marking, Utc::now()), work, sent)
                .await?;
            sent.events += chunk.len();
            // The mark moves past this chunk only when the next one starts later: entries
            // changed at the same instant are never split across it.
            let last = chunk[chunk.len() - 1].1.updated;
            if changed.get(end).is_none_or(|next| next.1.updated > last) {
                state.hotlist_through = Some(last.to_rfc3339_opts(SecondsFormat::Nanos, true));
                self.keep(state, pinged).await;
            }
            start = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn the_mark_says_what_was_sent_in_a_few_bytes() {
        let entry = |uuid: &str, sealed_at: i64| SealedEntry {
            uuid: uuid.to_owned(),
            sealed_at,
        };
        let mut mark = SentMark::default();
        assert!(!mark.sent(&entry("a", 10)));
        mark.record(&entry("a", 10));
        mark.record(&entry("b", 10));
        assert!(mark.sent(&entry("a", 10)) && mark.sent(&entry("b", 10)));
        assert!(
            !mark.sent(&entry("c", 10)),
            "sealed in the same second, not yet sent"
        );
        assert!(mark.sent(&entry("z", 9)));
        mark.record(&entry("d", 20));
        assert_eq!(mark.at_mark, ["d"]);
        assert!(mark.sent(&entry("c", 10)) && !mark.sent(&entry("e", 21)));
        let state = ImportState {
            feeds: BTreeMap::from([("nod".to_owned(), mark)]),
            ..ImportState::default()
        };
        assert_eq!(ImportState::parse(Some(&state.to_text())), state);
        assert_eq!(ImportState::parse(Some("[1, 2]")), ImportState::default());
        assert_eq!(ImportState::parse(None), ImportState::default());
    }

    #[test]
    fn feeds_map_as_opencti_s_domaintools_feeds_connector_maps_them() {
        let now = at("2026-01-01T12:00:00Z");
        let values = vec![
            SealedValue {
                value: "l1engage.online".to_owned(),
                first_seen: at("2026-01-01T10:10:00Z"),
                scores: Scores {
                    overall: Some(72),
                    malware: Some(72),
                    phishing: Some(0),
                    spam: Some(1),
                    proximity: None,
                },
            },
            SealedValue {
                value: "not a domain".to_owned(),
                first_seen: at("2026-01-01T10:10:00Z"),
                scores: Scores::default(),
            },
        ];
        let risk = event_objects(Feed::DomainRisk, &values, Tlp::Clear, now);
        assert_eq!(risk.len(), 1, "an invalid value is left out");
        let indicator = &risk[0];
        assert_eq!(
            indicator["pattern"],
            "[domain-name:value = 'l1engage.online']"
        );
        assert_eq!(indicator["name"], "l1engage.online");
        assert_eq!(
            indicator["labels"],
            json!(["domainrisk", "malware=72", "spam=1"])
        );
        assert_eq!(indicator["confidence"], 72);
        assert_eq!(
            indicator["description"],
            "Listed in the DomainTools Domain Risk feed: overall risk 72, malware risk 72, \
             phishing risk 0, spam risk 1."
        );
        assert_eq!(indicator["valid_from"], "2026-01-01T10:10:00.000Z");
        assert_eq!(indicator["extensions"][OPENCTI_SDO_EXTENSION]["score"], 72);
        assert_eq!(
            indicator["object_marking_refs"],
            json!([Tlp::Clear.marking_id()])
        );
        // pycti's Indicator.generate_id("[domain-name:value = 'l1engage.online']").
        assert_eq!(
            indicator["id"],
            ids::deterministic_id(
                "indicator",
                &json!({"pattern": "[domain-name:value = 'l1engage.online']"})
            )
        );
        let nod = event_objects(Feed::Noh, &values[..1], Tlp::Amber, now);
        assert_eq!(nod[0]["type"], "domain-name");
        assert_eq!(nod[0]["id"], ids::domain_name_id("l1engage.online"));
        assert_eq!(
            nod[0]["extensions"][OPENCTI_SCO_EXTENSION]["labels"],
            json!(["noh"])
        );
        let entry = Entry {
            expires: at("2026-01-02T00:00:00Z"),
            updated: at("2026-01-01T11:00:00Z"),
            scores: Scores {
                overall: None,
                ..Scores::default()
            },
        };
        let old = Entry {
            updated: DateTime::UNIX_EPOCH,
            ..entry.clone()
        };
        let hot = hotlist_objects(
            &[
                ("hot.example".to_owned(), entry),
                ("old.example".to_owned(), old),
            ],
            Tlp::Clear,
            now,
        );
        assert_eq!(hot[0]["valid_until"], "2026-01-02T00:00:00.000Z");
        assert_eq!(hot[0]["valid_from"], "2026-01-01T11:00:00.000Z");
        assert_eq!(
            hot[1]["valid_from"], "2026-01-01T12:00:00.000Z",
            "unknown: now"
        );
        assert_eq!(hot[0]["confidence"], 50, "the connector's default");
        assert!(hot[0]["extensions"][OPENCTI_SDO_EXTENSION]
            .get("score")
            .is_none());
        assert_eq!(pattern("a'b\\c"), "[domain-name:value = 'a\\'b\\\\c']");
        let ip = |value: &str| SealedValue {
            value: value.to_owned(),
            first_seen: at("2026-01-01T10:10:00Z"),
            scores: Scores::default(),
        };
        let ips = event_objects(
            Feed::IpRisk,
            &[ip("192.0.2.7"), ip("2001:db8::1"), ip("bad.example")],
            Tlp::Clear,
            now,
        );
        let kinds: Vec<&str> = ips.iter().map(|o| o["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["ipv4-addr", "ipv6-addr"]);
        assert_eq!(ips[0]["id"], ids::ipv4_addr_id("192.0.2.7"));
        assert_eq!(ips[1]["id"], ids::ipv6_addr_id("2001:db8::1"));
    }
}
