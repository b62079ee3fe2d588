//! The Real-Time Threat Feeds (`/v1/feed/<feed>/`): NDJSON answers cut from an in-memory store of
//! lines, with the API's cursor semantics (reference `domaintools-feeds.md` §1).
//!
//! - `sessionID`: a new id answers the last hour (or the whole 5-day window with
//!   `fromBeginning=true`); each later call with the same id answers every line stored since.
//! - `after` / `before`: negative seconds relative to now or `YYYY-MM-DDTHH:MM:SSZ`, at most
//!   5 days back; they also narrow a session's answer.
//! - More matching lines than the page size ([`crate::FakeApi::with_feed_page_lines`]; the real
//!   API's is 10 million) answer `206` with one page; with a `sessionID` the identical request
//!   then continues where the page ended, until a `200`. Without one it repeats the same page,
//!   which is why clients loop only with a session.
//! - `top` keeps the first lines and silently drops the rest (a session still moves past them).
//! - `domain` filters (repeatable, `*` as prefix or suffix) and the risk feeds' `*_min` filters.
//! - An empty window is a `200` with an empty body; missing or malformed parameters a `400`,
//!   `fromBeginning` without a session `422` and on an existing session `406`.
//!
//! Lines come from tests ([`crate::FakeApi::push_feed_lines`]) or, in demo mode, from the
//! recorded lines replayed with fresh timestamps ([`crate::FakeApi::with_feed_replay`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Map, Value};

use super::answer::{Answer, Envelope, NDJSON};
use super::params::Params;

/// Every feed path the fake serves (no IP feed body was ever recorded: their demo lines are
/// synthetic, [`synthetic_ip_lines`]).
pub const FEEDS: &[&str] = &[
    "nod",
    "nad",
    "noh",
    "domaindiscovery",
    "domainrdap",
    "domainrisk",
    "domainhotlist",
    "iprisk",
    "iphotlist",
];

/// The API keeps five days of lines and accepts windows that far back.
const RETENTION: TimeDelta = TimeDelta::days(5);
/// A new session starts with the last hour.
const NEW_SESSION_WINDOW: TimeDelta = TimeDelta::hours(1);
/// Hotlist entries expire a day after they were seen.
const HOTLIST_LIFETIME: TimeDelta = TimeDelta::hours(24);
/// The real API's page: past it an answer is a 206.
pub const DEFAULT_PAGE_LINES: usize = 10_000_000;
/// Lines kept per feed at most, so a runaway test cannot eat the machine.
const MAX_STORED_LINES: usize = 2_000_000;
/// Sessions remembered at most; the oldest is forgotten past it.
const MAX_SESSIONS: usize = 10_000;
/// The risk feeds' minimum filters ([new] API).
const RISK_FILTERS: [(&str, &str); 5] = [
    ("overall_min", "overall_risk"),
    ("malware_min", "malware_risk"),
    ("phishing_min", "phishing_risk"),
    ("spam_min", "spam_risk"),
    ("proximity_min", "proximity_risk"),
];

macro_rules! recorded {
    ($($file:literal),* $(,)?) => {
        &[$(($file, include_str!(concat!("../fixtures/domaintools-feeds/", $file)))),*]
    };
}

/// The recorded answers, by file name (`<feed>_<n>.ndjson`).
const RECORDED: &[(&str, &str)] = recorded![
    "nod_1.ndjson",
    "nod_2.ndjson",
    "nod_3.ndjson",
    "nad_1.ndjson",
    "nad_2.ndjson",
    "nad_3.ndjson",
    "noh_1.ndjson",
    "noh_2.ndjson",
    "noh_3.ndjson",
    "domaindiscovery_1.ndjson",
    "domaindiscovery_2.ndjson",
    "domaindiscovery_3.ndjson",
    "domainrdap_1.ndjson",
    "domainrdap_2.ndjson",
    "domainrisk_1.ndjson",
    "domainrisk_2.ndjson",
    "domainrisk_3.ndjson",
    "domainhotlist_1.ndjson",
    "domainhotlist_2.ndjson",
    "domainhotlist_3.ndjson",
];

/// The recorded lines of `feed`, parsed, in file order.
pub fn recorded_lines(feed: &str) -> Vec<Map<String, Value>> {
    RECORDED
        .iter()
        .filter(|(file, _)| file.rsplit_once('_').map(|(name, _)| name) == Some(feed))
        .flat_map(|(_, text)| text.lines())
        .filter_map(|line| match serde_json::from_str(line) {
            Ok(Value::Object(object)) => Some(object),
            _ => None,
        })
        .collect()
}

/// Lines for the IP feeds built from their documented fields (reference
/// `ip_feeds_FIELDS_ONLY.md`: the keys XSOAR's DomainTools feed reads), with addresses from the
/// documentation ranges (RFC 5737, RFC 3849) and AS numbers from RFC 5398: nothing real.
/// Empty for any other feed.
pub fn synthetic_ip_lines(feed: &str) -> Vec<Map<String, Value>> {
    let hot = match feed {
        "iprisk" => false,
        "iphotlist" => true,
        _ => return Vec::new(),
    };
    let addresses = [
        ("192.0.2.10", "US", "Example Hosting", 64496),
        ("192.0.2.77", "US", "Example Hosting", 64496),
        ("198.51.100.23", "DE", "Beispiel Netz", 64497),
        ("203.0.113.5", "NL", "Voorbeeld Cloud", 64498),
        ("203.0.113.200", "FR", "Exemple Réseau", 64499),
        ("2001:db8::53", "JP", "Example IPv6", 64500),
    ];
    addresses
        .iter()
        .enumerate()
        .map(|(index, (ip, country, organization, asn))| {
            // Deterministic, varied numbers; the hotlist's are the high ones.
            let base = if hot { 70 } else { 5 } + (index as u64 * 7) % 25;
            let mut line = Map::new();
            let mut put = |key: &str, value: Value| {
                line.insert(key.to_owned(), value);
            };
            put("ip", Value::from(*ip));
            put("asn", Value::from(*asn));
            put("organization", Value::from(*organization));
            put("city", Value::from("Example City"));
            put("country", Value::from(*country));
            put("latitude", Value::from(10.5 + index as f64));
            put("longitude", Value::from(-20.25 - index as f64));
            put("pdns_resolutions", Value::from(100 + index as u64 * 13));
            put("bad_pdns_resolutions", Value::from(base / 2));
            put("total_domains", Value::from(40 + index as u64));
            put("zerolist_domains", Value::from(index as u64 % 3));
            put("zerolist_ip", Value::from(false));
            put("third_party_threats", Value::from(index as u64 % 4));
            put("all_threats_combined_count", Value::from(base / 3));
            for key in [
                "all_threats_combined_percent",
                "all_threats_percent",
                "combined_phishing_percent",
                "combined_malware_percent",
                "combined_spam_percent",
                "percent_phishing",
                "percent_malware",
                "percent_spam",
            ] {
                put(key, Value::from(base.min(99)));
            }
            for kind in ["malicious", "compromised", "predicted"] {
                for threat in ["phishing", "malware", "spam"] {
                    put(&format!("{kind}_{threat}"), Value::from(base / 10));
                }
            }
            line
        })
        .collect()
}

/// What demo mode replays for `feed`: its recorded lines, or the IP feeds' synthetic ones.
fn replay_lines(feed: &str) -> Vec<Map<String, Value>> {
    let recorded = recorded_lines(feed);
    if recorded.is_empty() {
        synthetic_ip_lines(feed)
    } else {
        recorded
    }
}

#[derive(Debug)]
struct Line {
    seq: u64,
    at: DateTime<Utc>,
    object: Map<String, Value>,
}

/// Demo mode: recorded line `k % n` of each feed appears at `origin + k * interval`.
#[derive(Debug, Clone, Copy)]
struct Replay {
    interval: Duration,
    origin: Option<DateTime<Utc>>,
}

/// What tests and the handler share: the lines, the sessions' cursors, the page size.
#[derive(Debug)]
pub(super) struct Store {
    lines: BTreeMap<&'static str, VecDeque<Line>>,
    next_seq: u64,
    /// (account, feed, sessionID) to the last sequence number served, and when it was created.
    sessions: HashMap<(String, String, String), (u64, u64)>,
    session_counter: u64,
    page_lines: usize,
    replay: Option<Replay>,
    /// How many lines of each feed the replay has produced.
    replayed: BTreeMap<&'static str, u64>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            lines: FEEDS.iter().map(|feed| (*feed, VecDeque::new())).collect(),
            next_seq: 1,
            sessions: HashMap::new(),
            session_counter: 0,
            page_lines: DEFAULT_PAGE_LINES,
            replay: None,
            replayed: BTreeMap::new(),
        }
    }
}

fn feed_name(feed: &str) -> Option<&'static str> {
    FEEDS.iter().copied().find(|known| *known == feed)
}

fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Store {
    pub fn set_page_lines(&mut self, lines: usize) {
        self.page_lines = lines.max(1);
    }

    pub fn set_replay(&mut self, interval: Duration) {
        self.replay = Some(Replay {
            interval: interval.max(Duration::from_millis(1)),
            origin: None,
        });
    }

    /// Stores `object` as a line of `feed` seen at `at`: its `timestamp` is set to `at` (and a
    /// hotlist line gets `expires` a day later unless it has one). False for an unknown feed.
    pub fn push(&mut self, feed: &str, at: DateTime<Utc>, mut object: Map<String, Value>) -> bool {
        let Some(feed) = feed_name(feed) else {
            return false;
        };
        object.insert("timestamp".into(), Value::String(format_time(at)));
        if feed.ends_with("hotlist") {
            object.insert(
                "expires".into(),
                Value::String(format_time(at + HOTLIST_LIFETIME)),
            );
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let lines = self.lines.entry(feed).or_default();
        lines.push_back(Line { seq, at, object });
        if lines.len() > MAX_STORED_LINES {
            lines.pop_front();
        }
        true
    }

    /// Produces the replayed lines due by `now` and forgets lines past the retention.
    fn advance(&mut self, now: DateTime<Utc>) {
        if let Some(mut replay) = self.replay {
            let origin = *replay.origin.get_or_insert(now - NEW_SESSION_WINDOW);
            self.replay = Some(replay);
            let step = TimeDelta::from_std(replay.interval).unwrap_or(TimeDelta::seconds(60));
            for feed in FEEDS {
                let recorded = replay_lines(feed);
                if recorded.is_empty() {
                    continue;
                }
                let mut produced = self.replayed.get(feed).copied().unwrap_or(0);
                while let Some(at) = i32::try_from(produced)
                    .ok()
                    .and_then(|k| step.checked_mul(k))
                    .and_then(|offset| origin.checked_add_signed(offset))
                    .filter(|at| *at <= now)
                {
                    let index = usize::try_from(produced).unwrap_or(0) % recorded.len();
                    self.push(feed, at, recorded[index].clone());
                    produced += 1;
                }
                self.replayed.insert(feed, produced);
            }
        }
        let oldest = now - RETENTION;
        for lines in self.lines.values_mut() {
            while lines.front().is_some_and(|line| line.at < oldest) {
                lines.pop_front();
            }
        }
    }
}

/// A 400 with the API's envelope and a message naming the problem.
fn bad(message: &str) -> Answer {
    Answer::error(StatusCode::BAD_REQUEST, Envelope::Classic, message)
}

/// `after` / `before`: negative seconds relative to now, or `YYYY-MM-DDTHH:MM:SSZ`.
fn parse_bound(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Ok(seconds) = text.parse::<i64>() {
        if seconds > 0 {
            return None;
        }
        return now.checked_add_signed(TimeDelta::try_seconds(seconds)?);
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%SZ")
        .ok()
        .map(|naive| naive.and_utc())
}

/// `*` only as a prefix or suffix, as the API documents.
fn domain_matches(pattern: &str, domain: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let domain = domain.to_ascii_lowercase();
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(suffix), _) => domain.ends_with(suffix.trim_end_matches('*')),
        (None, Some(prefix)) => domain.starts_with(prefix),
        (None, None) => domain == pattern,
    }
}

fn risk_at_least(object: &Map<String, Value>, field: &str, minimum: u64) -> bool {
    object
        .get(field)
        .and_then(Value::as_u64)
        .is_some_and(|risk| risk >= minimum)
}

/// The answer to an authenticated request under `/v1/feed/`.
pub(super) fn answer(
    store: &mut Store,
    account: &str,
    path: &str,
    params: &Params,
    now: DateTime<Utc>,
) -> Answer {
    let name = path
        .strip_prefix("/v1/feed/")
        .map(|rest| rest.trim_end_matches('/'))
        .unwrap_or_default();
    let Some(feed) = feed_name(name) else {
        return Answer::unknown_path(Envelope::Classic);
    };
    store.advance(now);

    let session = params.given("sessionID");
    let after = params.given("after");
    let before = params.given("before");
    if session.is_none() && after.is_none() && before.is_none() {
        return bad("At least one of sessionID, after or before is required.");
    }
    let oldest = now - RETENTION;
    let mut bounds = [None, None];
    for (slot, (name, text)) in bounds
        .iter_mut()
        .zip([("after", after), ("before", before)])
    {
        if let Some(text) = text {
            match parse_bound(text, now) {
                Some(at) if at >= oldest => *slot = Some(at),
                Some(_) => return bad(&format!("{name} reaches back more than 5 days.")),
                None => {
                    return bad(&format!(
                        "{name} must be negative seconds or YYYY-MM-DDTHH:MM:SSZ."
                    ))
                }
            }
        }
    }
    let [after, before] = bounds;
    let top = match params.given("top").map(str::parse::<usize>) {
        None => None,
        Some(Ok(top)) if top > 0 => Some(top),
        Some(_) => return bad("top must be a positive integer."),
    };
    let from_beginning = params
        .given("fromBeginning")
        .is_some_and(|value| value.eq_ignore_ascii_case("true"));
    let mut minimums = Vec::new();
    for (param, field) in RISK_FILTERS {
        if let Some(text) = params.given(param) {
            match text.parse::<u64>() {
                Ok(minimum) if (1..=99).contains(&minimum) => minimums.push((field, minimum)),
                _ => return bad(&format!("{param} must be an integer from 1 to 99.")),
            }
        }
    }
    let patterns = params.list("domain");

    let key = session.map(|id| (account.to_owned(), feed.to_owned(), id.to_owned()));
    let existing = key
        .as_ref()
        .and_then(|key| store.sessions.get(key))
        .map(|(seq, _)| *seq);
    if from_beginning {
        if key.is_none() {
            return Answer::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                Envelope::Classic,
                "fromBeginning needs a sessionID.",
            );
        }
        if existing.is_some() {
            return Answer::error(
                StatusCode::NOT_ACCEPTABLE,
                Envelope::Classic,
                "fromBeginning is only accepted on a new session.",
            );
        }
    }
    let since = match (key.is_some(), existing) {
        (_, Some(_)) => None,
        (true, None) if from_beginning => Some(oldest),
        (true, None) => Some(now - NEW_SESSION_WINDOW),
        (false, _) => None,
    };

    let lines = &store.lines[feed];
    let newest_seq = lines.back().map_or(0, |line| line.seq);
    let mut selected: Vec<&Line> = Vec::new();
    let mut more = false;
    let mut last_seq = existing.unwrap_or(0);
    for line in lines.iter().filter(|line| {
        existing.is_none_or(|seq| line.seq > seq)
            && since.is_none_or(|since| line.at > since)
            && after.is_none_or(|after| line.at > after)
            && before.is_none_or(|before| line.at <= before)
            && (patterns.is_empty()
                || line
                    .object
                    .get("domain")
                    .and_then(Value::as_str)
                    .is_some_and(|domain| patterns.iter().any(|p| domain_matches(p, domain))))
            && minimums
                .iter()
                .all(|(field, minimum)| risk_at_least(&line.object, field, *minimum))
    }) {
        if selected.len() == store.page_lines {
            more = true;
            break;
        }
        last_seq = line.seq;
        selected.push(line);
    }
    let status = if more && top.is_none_or(|top| top > store.page_lines) {
        StatusCode::PARTIAL_CONTENT
    } else {
        // A complete answer (or one cut by `top`) moves the session past everything stored.
        last_seq = newest_seq.max(existing.unwrap_or(0));
        StatusCode::OK
    };
    if let Some(top) = top {
        selected.truncate(top);
    }
    let mut body = String::new();
    for line in &selected {
        body.push_str(&Value::Object(line.object.clone()).to_string());
        body.push('\n');
    }
    if let Some(key) = key {
        if !store.sessions.contains_key(&key) && store.sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = store
                .sessions
                .iter()
                .min_by_key(|(_, (_, created))| *created)
                .map(|(key, _)| key.clone())
            {
                store.sessions.remove(&oldest);
            }
        }
        store.session_counter += 1;
        let created = store
            .sessions
            .get(&key)
            .map_or(store.session_counter, |(_, created)| *created);
        store.sessions.insert(key, (last_seq, created));
    }
    Answer {
        status,
        content_type: NDJSON,
        body: Bytes::from(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recorded_feed_has_lines_with_a_domain() {
        for feed in &FEEDS[..7] {
            let lines = recorded_lines(feed);
            assert!(!lines.is_empty(), "{feed}");
            assert!(
                lines.iter().all(|line| line["domain"].is_string()),
                "{feed}"
            );
        }
        assert!(recorded_lines("iprisk").is_empty());
    }

    #[test]
    fn the_ip_feeds_replay_synthetic_lines_with_their_documented_fields() {
        const DOCUMENTED: [&str; 32] = [
            "ip",
            "asn",
            "organization",
            "city",
            "country",
            "latitude",
            "longitude",
            "pdns_resolutions",
            "bad_pdns_resolutions",
            "total_domains",
            "zerolist_domains",
            "zerolist_ip",
            "third_party_threats",
            "all_threats_combined_count",
            "all_threats_combined_percent",
            "all_threats_percent",
            "combined_phishing_percent",
            "combined_malware_percent",
            "combined_spam_percent",
            "malicious_phishing",
            "malicious_malware",
            "malicious_spam",
            "percent_phishing",
            "percent_malware",
            "percent_spam",
            "compromised_phishing",
            "compromised_malware",
            "compromised_spam",
            "predicted_phishing",
            "predicted_malware",
            "predicted_spam",
            "timestamp",
        ];
        for feed in ["iprisk", "iphotlist"] {
            let lines = synthetic_ip_lines(feed);
            assert!(!lines.is_empty(), "{feed}");
            for line in &lines {
                let ip = line["ip"].as_str().expect("ip");
                assert!(ip.parse::<std::net::IpAddr>().is_ok(), "{ip}");
                for key in line.keys() {
                    assert!(
                        DOCUMENTED.contains(&key.as_str()),
                        "{feed}: {key} is undocumented"
                    );
                }
                assert_eq!(
                    line.len(),
                    DOCUMENTED.len() - 1,
                    "every field but timestamp"
                );
            }
            let mut store = Store::default();
            store.set_replay(Duration::from_secs(60));
            let now = Utc::now();
            store.advance(now);
            assert!(!store.lines[feed].is_empty(), "{feed} replays in demo mode");
            assert!(store.lines[feed]
                .iter()
                .all(|line| line.object["timestamp"].is_string()));
        }
        assert!(synthetic_ip_lines("nod").is_empty());
    }

    #[test]
    fn patterns_take_a_star_at_either_end_only() {
        assert!(domain_matches("*.xyz", "afterjpeg.xyz"));
        assert!(domain_matches("after*", "afterjpeg.xyz"));
        assert!(domain_matches("AfterJpeg.xyz", "afterjpeg.xyz"));
        assert!(!domain_matches("*.com", "afterjpeg.xyz"));
        assert!(!domain_matches("a*z", "afterjpeg.xyz"));
    }

    #[test]
    fn bounds_in_both_forms() {
        let now = Utc::now();
        assert_eq!(parse_bound("-60", now), Some(now - TimeDelta::seconds(60)));
        assert!(parse_bound("60", now).is_none());
        assert!(parse_bound("2025-12-09T19:22:14Z", now).is_some());
        assert!(parse_bound("yesterday", now).is_none());
        assert!(parse_bound(&i64::MIN.to_string(), now).is_none());
    }
}
