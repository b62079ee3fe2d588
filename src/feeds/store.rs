//! Time buckets of feed lines and their storage as a MISP-format feed on disk.
//!
//! Lines go into the bucket of their feed and hour (de-duplicated by normalised value). A
//! bucket that reaches [`MAX_BUCKET_ATTRIBUTES`] continues in a next part of the same hour, so
//! no event is big enough to hurt MISP. Open buckets are written under `<feed>/open/` after
//! every poll that changed them (so a restart loses nothing written), and once their hour plus
//! the grace period is over they are sealed: written as `<uuid>.json`, listed in
//! `manifest.json`, their hashes appended to `hashes.csv`, and never changed again. Only sealed
//! events are in the MISP feed, so MISP never pulls an event that will still grow.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};
use domaintools::feeds::{Feed, FeedLine};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::stix::ids::uuid5;

/// Attributes per event at most: MISP takes minutes per event of tens of thousands of
/// attributes (MISP/MISP#4640, #9092), so a busy hour is split into parts of this size.
pub const MAX_BUCKET_ATTRIBUTES: usize = 20_000;
/// Parts per feed and hour at most (NOH's busiest hours); lines past them are counted, dropped.
pub const MAX_BUCKET_PARTS: u32 = 50;
/// Namespace of the feeds' UUIDv5s (the UUIDv5 of "misp-domaintools feeds" in the URL namespace).
const NAMESPACE: [u8; 16] = [
    0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
];
/// The organisation every event names as its creator.
pub const ORG_NAME: &str = "DomainTools";

/// What the store needs to know besides the lines.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Bucket length (one hour by default).
    pub bucket: Duration,
    /// How long after its end a bucket still takes late lines before it is sealed.
    pub grace: Duration,
    /// Sealed events older than this many days are removed.
    pub retention_days: u32,
    /// `to_ids` of every attribute.
    pub to_ids: bool,
}

/// Feed uuid, bucket start and part number: one event.
type BucketKey = (DateTime<Utc>, u32);

#[derive(Debug)]
struct Bucket {
    /// Normalised value to (first seen, comment).
    values: BTreeMap<String, (DateTime<Utc>, String)>,
    /// Whether it changed since it was last written.
    dirty: bool,
}

/// One feed's buckets and its MISP feed directory.
#[derive(Debug)]
pub struct FeedStore {
    feed: Feed,
    dir: PathBuf,
    settings: StoreSettings,
    open: BTreeMap<BucketKey, Bucket>,
    /// The sealed events: uuid to manifest entry.
    manifest: BTreeMap<String, Value>,
    /// Lines dropped because the hour had [`MAX_BUCKET_PARTS`] full parts.
    pub dropped: u64,
}

/// Lower case, no trailing dot, IDNA (punycode) as MISP normalises domains; None for what is
/// not a domain name.
pub fn normalise(value: &str) -> Option<String> {
    let trimmed = value.trim().trim_end_matches('.');
    if trimmed.is_empty() || trimmed.len() > 253 {
        return None;
    }
    idna::domain_to_ascii(trimmed)
        .ok()
        .filter(|ascii| ascii.contains('.') && !ascii.starts_with('.'))
}

/// An IP address in its canonical text (`2001:db8::1`, IPv4-mapped kept as written by the
/// standard library), as MISP compares `ip-dst` values; None for what is not one.
pub fn normalise_ip(value: &str) -> Option<String> {
    value
        .trim()
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| ip.to_string())
}

/// A line's value normalised for `feed`: an IP address for the IP feeds, a domain otherwise.
pub fn normalise_for(feed: Feed, value: &str) -> Option<String> {
    if feed.carries_ips() {
        normalise_ip(value)
    } else {
        normalise(value)
    }
}

/// The MISP attribute type of `feed`'s values.
pub fn attribute_type(feed: Feed) -> &'static str {
    if feed.carries_ips() {
        "ip-dst"
    } else if feed.carries_hosts() {
        "hostname"
    } else {
        "domain"
    }
}

/// `md5(value)` in hex, as MISP's `hashes.csv` holds it.
pub fn md5_hex(value: &str) -> String {
    hex::encode(Md5::digest(value.as_bytes()))
}

/// The deterministic uuid of the event for `feed`'s bucket starting at `start`, part `part`.
pub fn event_uuid(feed: Feed, start: DateTime<Utc>, part: u32) -> String {
    uuid5(
        &NAMESPACE,
        format!("{}/{}/{part}", feed.name(), start.timestamp()).as_bytes(),
    )
}

/// The uuid of the DomainTools organisation in every event.
pub fn org_uuid() -> String {
    uuid5(&NAMESPACE, b"organisation/DomainTools")
}

/// The feed's name as DomainTools writes it.
pub fn title(feed: Feed) -> &'static str {
    match feed {
        Feed::Nod => "Newly Observed Domains",
        Feed::Nad => "Newly Active Domains",
        Feed::Noh => "Newly Observed Hosts",
        Feed::DomainDiscovery => "Domain Discovery",
        Feed::DomainRdap => "Domain RDAP",
        Feed::DomainRisk => "Domain Risk",
        Feed::DomainHotlist => "Domain Hotlist",
        Feed::IpRisk => "IP Risk",
        Feed::IpHotlist => "IP Hotlist",
    }
}

fn tag(feed: Feed) -> Value {
    json!({ "name": format!("domaintools:feed=\"{}\"", feed.name()) })
}

/// The scores of a line, in words, for the attribute's comment.
pub fn scores_comment(line: &FeedLine) -> String {
    [
        ("overall", line.overall_risk),
        ("malware", line.malware_risk),
        ("phishing", line.phishing_risk),
        ("spam", line.spam_risk),
        ("proximity", line.proximity_risk),
    ]
    .into_iter()
    .filter_map(|(name, score)| score.map(|score| format!("{name} risk {score}")))
    .collect::<Vec<_>>()
    .join(", ")
}

/// An IP feed line's network, in words, for the attribute's comment: "AS64496, Example
/// Hosting, US".
pub fn network_comment(line: &FeedLine) -> String {
    let asn = line.asn.as_deref().map(|asn| {
        let number = asn.trim_start_matches(['A', 'S', 'a', 's']);
        format!("AS{number}")
    });
    [asn, line.organization.clone(), line.country.clone()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
}

/// A line's scores (risk feeds and the hotlist).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scores {
    /// `overall_risk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall: Option<u8>,
    /// `malware_risk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malware: Option<u8>,
    /// `phishing_risk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phishing: Option<u8>,
    /// `spam_risk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spam: Option<u8>,
    /// `proximity_risk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proximity: Option<u8>,
}

impl Scores {
    /// The scores named in an attribute comment written by [`scores_comment`].
    pub fn from_comment(comment: &str) -> Self {
        let mut scores = Self::default();
        for part in comment.split(',') {
            let Some((name, value)) = part.trim().split_once(" risk ") else {
                continue;
            };
            let Ok(value) = value.trim().parse::<u8>() else {
                continue;
            };
            let slot = match name {
                "overall" => &mut scores.overall,
                "malware" => &mut scores.malware,
                "phishing" => &mut scores.phishing,
                "spam" => &mut scores.spam,
                "proximity" => &mut scores.proximity,
                _ => continue,
            };
            *slot = Some(value);
        }
        scores
    }

    /// The scores of `line`.
    pub fn of(line: &FeedLine) -> Self {
        Self {
            overall: line.overall_risk,
            malware: line.malware_risk,
            phishing: line.phishing_risk,
            spam: line.spam_risk,
            proximity: line.proximity_risk,
        }
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader (or a crash)
/// never sees half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(tmp, path)
}

impl FeedStore {
    /// The store of `feed` under `root/<feed>/`, with what an earlier run left there.
    pub fn open(root: &Path, feed: Feed, settings: StoreSettings) -> io::Result<Self> {
        let dir = root.join(feed.name());
        fs::create_dir_all(dir.join("open"))?;
        let manifest = match fs::read(dir.join("manifest.json")) {
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(entries)) => entries.into_iter().collect(),
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{} is not a MISP manifest",
                            dir.join("manifest.json").display()
                        ),
                    ))
                }
            },
            Err(error) if error.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(error),
        };
        let mut store = Self {
            feed,
            dir,
            settings,
            open: BTreeMap::new(),
            manifest,
            dropped: 0,
        };
        store.load_open()?;
        if !store.dir.join("hashes.csv").exists() {
            write_atomic(&store.dir.join("hashes.csv"), b"")?;
        }
        // Left as it is when present: on a shared volume another replica may be writing it.
        if !store.dir.join("manifest.json").exists() {
            store.write_manifest()?;
        }
        Ok(store)
    }

    /// Reads the directory again (a replica that just became the poller: the previous one
    /// wrote there since this one started).
    pub fn reopen(&mut self) -> io::Result<()> {
        let root = self.dir.parent().map(Path::to_path_buf).unwrap_or_default();
        *self = FeedStore::open(&root, self.feed, self.settings.clone())?;
        Ok(())
    }

    /// The directory MISP's files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Open buckets written by an earlier run, back in memory.
    fn load_open(&mut self) -> io::Result<()> {
        for entry in fs::read_dir(self.dir.join("open"))? {
            let path = entry?.path();
            if path.extension().and_then(|ext| ext.to_str()) != Some("json") {
                continue;
            }
            let Some((start, part)) = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .and_then(|stem| stem.split_once('-'))
                .and_then(|(start, part)| Some((start.parse::<i64>().ok()?, part.parse().ok()?)))
            else {
                continue;
            };
            let Some(start) = DateTime::from_timestamp(start, 0) else {
                continue;
            };
            let event: Value = serde_json::from_slice(&fs::read(&path)?)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
            let mut values = BTreeMap::new();
            for attribute in event["Event"]["Attribute"].as_array().into_iter().flatten() {
                let (Some(value), Some(seen)) = (
                    attribute["value"].as_str(),
                    attribute["first_seen"]
                        .as_str()
                        .and_then(|seen| DateTime::parse_from_rfc3339(seen).ok()),
                ) else {
                    continue;
                };
                let comment = attribute["comment"].as_str().unwrap_or("").to_owned();
                values.insert(value.to_owned(), (seen.with_timezone(&Utc), comment));
            }
            self.open.insert(
                (start, part),
                Bucket {
                    values,
                    dirty: false,
                },
            );
        }
        Ok(())
    }

    fn bucket_start(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let length = TimeDelta::from_std(self.settings.bucket).unwrap_or(TimeDelta::hours(1));
        at.duration_trunc(length).unwrap_or(at)
    }

    /// Adds a line to its bucket; false if it was already there, not a domain, or dropped.
    pub fn add(&mut self, line: &FeedLine) -> bool {
        let Some(value) = normalise_for(self.feed, &line.domain) else {
            return false;
        };
        let start = self.bucket_start(line.timestamp);
        let mut part = 0;
        loop {
            // A sealed event never changes: a late line for its hour goes into a later part.
            if !self.open.contains_key(&(start, part))
                && self
                    .manifest
                    .contains_key(&event_uuid(self.feed, start, part))
            {
                part += 1;
                if part == MAX_BUCKET_PARTS {
                    self.dropped += 1;
                    return false;
                }
                continue;
            }
            let bucket = self.open.entry((start, part)).or_insert_with(|| Bucket {
                values: BTreeMap::new(),
                dirty: false,
            });
            if bucket.values.contains_key(&value) {
                return false;
            }
            if bucket.values.len() < MAX_BUCKET_ATTRIBUTES {
                let comment = if self.feed.carries_ips() {
                    network_comment(line)
                } else {
                    scores_comment(line)
                };
                bucket.values.insert(value, (line.timestamp, comment));
                bucket.dirty = true;
                return true;
            }
            part += 1;
            if part == MAX_BUCKET_PARTS {
                self.dropped += 1;
                return false;
            }
        }
    }

    /// The event of an open or sealed bucket.
    fn event(&self, (start, part): BucketKey, bucket: &Bucket, timestamp: i64) -> Value {
        let uuid = event_uuid(self.feed, start, part);
        let kind = attribute_type(self.feed);
        let attributes: Vec<Value> = bucket
            .values
            .iter()
            .map(|(value, (seen, comment))| {
                json!({
                    "uuid": uuid5(&NAMESPACE, format!("{uuid}/{value}").as_bytes()),
                    "type": kind,
                    "category": "Network activity",
                    "value": value,
                    "to_ids": self.settings.to_ids,
                    "comment": comment,
                    "distribution": "5",
                    "timestamp": timestamp.to_string(),
                    "first_seen": seen.to_rfc3339_opts(SecondsFormat::Secs, true),
                })
            })
            .collect();
        let mut info = format!(
            "DomainTools {} {} UTC",
            title(self.feed),
            start.format("%Y-%m-%d %H:%M")
        );
        if part > 0 {
            info.push_str(&format!(" (part {})", part + 1));
        }
        json!({ "Event": {
            "uuid": uuid,
            "info": info,
            "date": start.format("%Y-%m-%d").to_string(),
            "timestamp": timestamp.to_string(),
            "publish_timestamp": timestamp.to_string(),
            "published": true,
            "analysis": "2",
            "threat_level_id": "4",
            "distribution": "3",
            "Orgc": { "name": ORG_NAME, "uuid": org_uuid() },
            "Tag": [tag(self.feed)],
            "Attribute": attributes,
        }})
    }

    /// Writes the changed open buckets, seals those whose grace period is over, and removes
    /// sealed events past the retention. Returns how many buckets were sealed.
    pub fn flush(&mut self, now: DateTime<Utc>) -> io::Result<usize> {
        let length = TimeDelta::from_std(self.settings.bucket).unwrap_or(TimeDelta::hours(1));
        let grace = TimeDelta::from_std(self.settings.grace).unwrap_or(TimeDelta::minutes(10));
        let mut sealed = Vec::new();
        let mut changed = Vec::new();
        for (key, bucket) in &self.open {
            if key.0 + length + grace <= now {
                sealed.push(*key);
            } else if bucket.dirty {
                changed.push(*key);
            }
        }
        for key in changed {
            let event = self.event(key, &self.open[&key], now.timestamp());
            write_atomic(
                &self
                    .dir
                    .join("open")
                    .join(format!("{}-{}.json", key.0.timestamp(), key.1)),
                event.to_string().as_bytes(),
            )?;
            if let Some(bucket) = self.open.get_mut(&key) {
                bucket.dirty = false;
            }
        }
        let mut hashes = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.join("hashes.csv"))?;
        for key in &sealed {
            let Some(bucket) = self.open.remove(key) else {
                continue;
            };
            if bucket.values.is_empty() {
                continue;
            }
            let event = self.event(*key, &bucket, now.timestamp());
            let uuid = event_uuid(self.feed, key.0, key.1);
            write_atomic(
                &self.dir.join(format!("{uuid}.json")),
                event.to_string().as_bytes(),
            )?;
            let mut lines = String::new();
            for value in bucket.values.keys() {
                lines.push_str(&format!("{},{uuid}\n", md5_hex(value)));
            }
            hashes.write_all(lines.as_bytes())?;
            hashes.sync_all()?;
            let Value::Object(mut entry) = event["Event"].clone() else {
                continue;
            };
            entry.remove("Attribute");
            entry.remove("uuid");
            entry.remove("publish_timestamp");
            entry.remove("published");
            entry.remove("distribution");
            self.manifest.insert(uuid, Value::Object(entry));
            self.write_manifest()?;
            let open_file =
                self.dir
                    .join("open")
                    .join(format!("{}-{}.json", key.0.timestamp(), key.1));
            match fs::remove_file(open_file) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
        }
        self.expire(now)?;
        Ok(sealed.len())
    }

    /// Removes sealed events older than the retention, from the files and `hashes.csv`.
    fn expire(&mut self, now: DateTime<Utc>) -> io::Result<()> {
        let oldest = (now - TimeDelta::days(i64::from(self.settings.retention_days)))
            .format("%Y-%m-%d")
            .to_string();
        let expired: BTreeSet<String> = self
            .manifest
            .iter()
            .filter(|(_, entry)| {
                entry["date"]
                    .as_str()
                    .is_some_and(|date| date < oldest.as_str())
            })
            .map(|(uuid, _)| uuid.clone())
            .collect();
        if expired.is_empty() {
            return Ok(());
        }
        for uuid in &expired {
            self.manifest.remove(uuid);
            match fs::remove_file(self.dir.join(format!("{uuid}.json"))) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
        }
        self.write_manifest()?;
        // hashes.csv is filtered line by line into a new file: it can be large.
        let kept = self.dir.join("hashes.csv.tmp");
        {
            let reader = io::BufReader::new(fs::File::open(self.dir.join("hashes.csv"))?);
            let mut writer = io::BufWriter::new(fs::File::create(&kept)?);
            for line in reader.lines() {
                let line = line?;
                let keep = line
                    .split_once(',')
                    .is_some_and(|(_, uuid)| !expired.contains(uuid));
                if keep {
                    writeln!(writer, "{line}")?;
                }
            }
            writer.flush()?;
            writer.get_ref().sync_all()?;
        }
        fs::rename(kept, self.dir.join("hashes.csv"))
    }

    fn write_manifest(&self) -> io::Result<()> {
        let manifest: Map<String, Value> = self
            .manifest
            .iter()
            .map(|(uuid, entry)| (uuid.clone(), entry.clone()))
            .collect();
        write_atomic(
            &self.dir.join("manifest.json"),
            Value::Object(manifest).to_string().as_bytes(),
        )
    }

    /// Sealed events, for tests and the log.
    pub fn sealed(&self) -> usize {
        self.manifest.len()
    }

    /// Values held in open buckets (what a soak test watches).
    pub fn open_values(&self) -> usize {
        self.open.values().map(|bucket| bucket.values.len()).sum()
    }
}

/// A sealed event as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEntry {
    /// The event's uuid.
    pub uuid: String,
    /// When it was sealed (its `timestamp`, Unix seconds).
    pub sealed_at: i64,
}

/// One value of a sealed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValue {
    /// The domain (or host name).
    pub value: String,
    /// When DomainTools first saw it in the bucket.
    pub first_seen: DateTime<Utc>,
    /// Its scores, for the risk feeds.
    pub scores: Scores,
}

fn bad_data(path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

/// The sealed events of `feed` under `root` (as written by whichever process polls), the
/// oldest seal first; none before the first poll.
pub fn sealed_entries(root: &Path, feed: Feed) -> io::Result<Vec<SealedEntry>> {
    let path = root.join(feed.name()).join("manifest.json");
    let manifest = match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<Map<String, Value>>(&bytes)
            .map_err(|error| bad_data(&path, error))?,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut entries: Vec<SealedEntry> = manifest
        .into_iter()
        .filter(|(uuid, _)| uuid.len() == 36)
        .map(|(uuid, entry)| SealedEntry {
            sealed_at: entry["timestamp"]
                .as_str()
                .and_then(|text| text.parse().ok())
                .or_else(|| entry["timestamp"].as_i64())
                .unwrap_or(0),
            uuid,
        })
        .collect();
    entries.sort_by(|a, b| (a.sealed_at, &a.uuid).cmp(&(b.sealed_at, &b.uuid)));
    Ok(entries)
}

/// The values of the sealed event `uuid` of `feed`; `None` when it is gone (past retention).
pub fn sealed_values(root: &Path, feed: Feed, uuid: &str) -> io::Result<Option<Vec<SealedValue>>> {
    let path = root.join(feed.name()).join(format!("{uuid}.json"));
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let event: Value = serde_json::from_slice(&bytes).map_err(|error| bad_data(&path, error))?;
    drop(bytes);
    let attributes = event["Event"]["Attribute"]
        .as_array()
        .ok_or_else(|| bad_data(&path, "no Event.Attribute"))?;
    let values = attributes
        .iter()
        .filter_map(|attribute| {
            Some(SealedValue {
                value: attribute["value"].as_str()?.to_owned(),
                first_seen: DateTime::parse_from_rfc3339(attribute["first_seen"].as_str()?)
                    .ok()?
                    .with_timezone(&Utc),
                scores: Scores::from_comment(attribute["comment"].as_str().unwrap_or("")),
            })
        })
        .collect();
    Ok(Some(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_come_back_from_their_comment() {
        let line: FeedLine = serde_json::from_value(json!({"domain": "a.example",
            "timestamp": "2026-01-01T00:00:00Z", "overall_risk": 72, "malware_risk": 72,
            "phishing_risk": 1, "proximity_risk": null}))
        .expect("line");
        let comment = scores_comment(&line);
        assert_eq!(Scores::from_comment(&comment), Scores::of(&line));
        assert_eq!(Scores::from_comment(""), Scores::default());
        assert_eq!(
            Scores::from_comment("overall risk 300, x"),
            Scores::default()
        );
    }

    #[test]
    fn sealed_events_are_read_back_oldest_seal_first() {
        let root = tempfile::tempdir().expect("tempdir");
        assert!(sealed_entries(root.path(), Feed::DomainRisk)
            .expect("none")
            .is_empty());
        let mut store = FeedStore::open(root.path(), Feed::DomainRisk, settings()).expect("store");
        let risky: FeedLine = serde_json::from_value(json!({"domain": "r.example",
            "timestamp": "2026-01-01T09:10:00Z", "overall_risk": 90}))
        .expect("line");
        store.add(&risky);
        store.add(&line("s.example", "2026-01-01T10:10:00Z"));
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .expect("time")
                .with_timezone(&Utc)
        };
        store.flush(at("2026-01-01T11:00:00Z")).expect("flush");
        store.flush(at("2026-01-01T11:30:00Z")).expect("flush");
        let entries = sealed_entries(root.path(), Feed::DomainRisk).expect("entries");
        let nine = event_uuid(Feed::DomainRisk, at("2026-01-01T09:00:00Z"), 0);
        let ten = event_uuid(Feed::DomainRisk, at("2026-01-01T10:00:00Z"), 0);
        assert_eq!(
            entries,
            [
                SealedEntry {
                    uuid: nine.clone(),
                    sealed_at: at("2026-01-01T11:00:00Z").timestamp()
                },
                SealedEntry {
                    uuid: ten,
                    sealed_at: at("2026-01-01T11:30:00Z").timestamp()
                },
            ]
        );
        let values = sealed_values(root.path(), Feed::DomainRisk, &nine)
            .expect("read")
            .expect("present");
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].value, "r.example");
        assert_eq!(values[0].scores.overall, Some(90));
        assert_eq!(values[0].first_seen, at("2026-01-01T09:10:00Z"));
        let gone = event_uuid(Feed::DomainRisk, at("2026-01-01T08:00:00Z"), 0);
        assert_eq!(
            sealed_values(root.path(), Feed::DomainRisk, &gone).expect("read"),
            None
        );
    }

    fn line(domain: &str, at: &str) -> FeedLine {
        serde_json::from_value(json!({"domain": domain, "timestamp": at})).expect("line")
    }

    fn settings() -> StoreSettings {
        StoreSettings {
            bucket: Duration::from_secs(3600),
            grace: Duration::from_secs(600),
            retention_days: 2,
            to_ids: false,
        }
    }

    #[test]
    fn values_are_normalised_as_misp_does() {
        assert_eq!(normalise("Example.COM.").as_deref(), Some("example.com"));
        assert_eq!(normalise("bücher.de").as_deref(), Some("xn--bcher-kva.de"));
        assert_eq!(normalise("nodot"), None);
        assert_eq!(normalise(""), None);
        assert_eq!(md5_hex("example.com"), "5ababd603b22780302dd8d83498e5172");
    }

    #[test]
    fn buckets_dedupe_seal_after_grace_and_survive_a_restart() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut store = FeedStore::open(root.path(), Feed::Nod, settings()).expect("store");
        assert!(store.add(&line("a.example", "2026-01-01T10:05:00Z")));
        assert!(!store.add(&line("A.example.", "2026-01-01T10:06:00Z")));
        assert!(store.add(&line("b.example", "2026-01-01T11:01:00Z")));
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .expect("time")
                .with_timezone(&Utc)
        };
        assert_eq!(store.flush(at("2026-01-01T11:09:00Z")).expect("flush"), 0);
        drop(store);

        let mut store = FeedStore::open(root.path(), Feed::Nod, settings()).expect("reopen");
        assert_eq!(
            store.open_values(),
            2,
            "open buckets come back after a restart"
        );
        assert_eq!(store.flush(at("2026-01-01T11:10:00Z")).expect("flush"), 1);
        assert_eq!(store.sealed(), 1);
        let uuid = event_uuid(Feed::Nod, at("2026-01-01T10:00:00Z"), 0);
        let event: Value = serde_json::from_slice(
            &fs::read(store.dir().join(format!("{uuid}.json"))).expect("event"),
        )
        .expect("json");
        assert_eq!(event["Event"]["Attribute"][0]["value"], "a.example");
        assert_eq!(event["Event"]["Orgc"]["name"], ORG_NAME);
        let hashes = fs::read_to_string(store.dir().join("hashes.csv")).expect("hashes");
        assert_eq!(hashes, format!("{},{uuid}\n", md5_hex("a.example")));
        // A late line for the sealed 10:00 hour goes into its part 2, leaving part 1 as it was.
        let sealed_event = fs::read(store.dir().join(format!("{uuid}.json"))).expect("event");
        assert!(store.add(&line("late.example", "2026-01-01T10:30:00Z")));
        assert_eq!(store.flush(at("2026-01-01T11:12:00Z")).expect("flush"), 1);
        assert_eq!(
            fs::read(store.dir().join(format!("{uuid}.json"))).expect("event"),
            sealed_event
        );
        let late = event_uuid(Feed::Nod, at("2026-01-01T10:00:00Z"), 1);
        assert!(store.dir().join(format!("{late}.json")).exists());
        assert_eq!(store.flush(at("2026-01-01T12:10:00Z")).expect("flush"), 1);
        assert_eq!(store.sealed(), 3);
        // Two days of retention: on the 4th both events of the 1st are gone, hashes too.
        assert_eq!(store.flush(at("2026-01-04T00:00:00Z")).expect("expire"), 0);
        assert_eq!(store.sealed(), 0);
        assert!(!store.dir().join(format!("{uuid}.json")).exists());
        let hashes = fs::read_to_string(store.dir().join("hashes.csv")).expect("hashes");
        assert_eq!(hashes, "");
        assert!(!hashes.contains(&uuid));
    }

    #[test]
    fn ip_feeds_keep_ip_addresses_as_ip_dst() {
        assert_eq!(normalise_ip(" 192.0.2.7 ").as_deref(), Some("192.0.2.7"));
        assert_eq!(
            normalise_ip("2001:DB8:0:0:0:0:0:1").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(normalise_ip("example.com"), None);
        assert_eq!(
            normalise_for(Feed::Nod, "192.0.2.7").as_deref(),
            Some("192.0.2.7")
        );
        assert_eq!(normalise_for(Feed::IpRisk, "example.com"), None);
        let root = tempfile::tempdir().expect("tempdir");
        let mut store = FeedStore::open(root.path(), Feed::IpRisk, settings()).expect("store");
        let ip: FeedLine = serde_json::from_value(json!({"ip": "198.51.100.20",
            "timestamp": "2026-01-01T10:05:00Z", "country": "US", "asn": 64496}))
        .expect("an IP feed line");
        assert!(store.add(&ip));
        assert!(!store.add(&line("not-an-ip.example", "2026-01-01T10:06:00Z")));
        let at = DateTime::parse_from_rfc3339("2026-01-01T11:10:00Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(store.flush(at).expect("flush"), 1);
        let uuid = event_uuid(Feed::IpRisk, at - TimeDelta::minutes(70), 0);
        let event: Value = serde_json::from_slice(
            &fs::read(store.dir().join(format!("{uuid}.json"))).expect("event"),
        )
        .expect("json");
        let attribute = &event["Event"]["Attribute"][0];
        assert_eq!(attribute["type"], "ip-dst");
        assert_eq!(attribute["value"], "198.51.100.20");
        assert_eq!(attribute["comment"], "AS64496, US");
        let odd: FeedLine = serde_json::from_value(json!({"ip": "192.0.2.1",
            "timestamp": "2026-01-01T10:05:00Z", "asn": "AS64497", "organization": {"x": 1},
            "country": null}))
        .expect("odd fields do not refuse the line");
        assert_eq!(network_comment(&odd), "AS64497");
        assert_eq!(
            event["Event"]["info"],
            "DomainTools IP Risk 2026-01-01 10:00 UTC"
        );
    }

    #[test]
    fn a_full_bucket_continues_in_a_next_part() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut store = FeedStore::open(root.path(), Feed::Noh, settings()).expect("store");
        for i in 0..=MAX_BUCKET_ATTRIBUTES {
            assert!(store.add(&line(&format!("h{i}.example.com"), "2026-01-01T10:00:00Z")));
        }
        assert_eq!(store.open.len(), 2);
    }
}
