//! The Domain Hotlist as a state: every domain with its latest `expires`, served as freetext
//! holding every unexpired entry, because MISP's fixed event with delta merge removes whatever
//! a pull no longer lists. Kept in `<feeds-dir>/domainhotlist/hotlist.json` across restarts,
//! with each entry's scores and the time it last changed (a new entry, or a later expiry),
//! which is how the OpenCTI import sends only what changed since its last run.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use domaintools::feeds::FeedLine;
use serde::{Deserialize, Serialize};

use super::store::normalise;
pub use super::store::Scores;

/// Entries kept at most (the hotlist holds tens of thousands); past it new ones are dropped.
pub const MAX_HOTLIST_ENTRIES: usize = 1_000_000;

/// One domain of the hotlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When it stops being hot.
    pub expires: DateTime<Utc>,
    /// When this process last added it or moved its expiry.
    pub updated: DateTime<Utc>,
    /// Its scores, from the line that last changed it.
    pub scores: Scores,
}

/// An entry as saved; the first releases saved the expiry alone.
#[derive(Deserialize)]
#[serde(untagged)]
enum Saved {
    Full {
        expires: String,
        updated: String,
        #[serde(default)]
        scores: Scores,
    },
    ExpiryOnly(String),
}

#[derive(Serialize)]
struct SavedRef<'a> {
    expires: String,
    updated: String,
    #[serde(skip_serializing_if = "is_empty")]
    scores: &'a Scores,
}

fn is_empty(scores: &&Scores) -> bool {
    **scores == Scores::default()
}

fn instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// Domain to entry.
#[derive(Debug)]
pub struct Hotlist {
    path: PathBuf,
    entries: BTreeMap<String, Entry>,
    dirty: bool,
    /// Entries refused because the list was full.
    pub dropped: u64,
}

impl Hotlist {
    /// The hotlist under `root`, with what an earlier run saved.
    pub fn open(root: &Path) -> io::Result<Self> {
        let dir = root.join("domainhotlist");
        fs::create_dir_all(&dir)?;
        let path = dir.join("hotlist.json");
        let entries = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<BTreeMap<String, Saved>>(&bytes)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?
                .into_iter()
                .filter_map(|(domain, saved)| {
                    let entry = match saved {
                        Saved::Full {
                            expires,
                            updated,
                            scores,
                        } => Entry {
                            expires: instant(&expires)?,
                            updated: instant(&updated)?,
                            scores,
                        },
                        // Unknown: as old as can be, so an import sends it once.
                        Saved::ExpiryOnly(expires) => Entry {
                            expires: instant(&expires)?,
                            updated: DateTime::UNIX_EPOCH,
                            scores: Scores::default(),
                        },
                    };
                    Some((domain, entry))
                })
                .collect(),
            Err(error) if error.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(error),
        };
        Ok(Self {
            path,
            entries,
            dirty: false,
            dropped: 0,
        })
    }

    /// Records a line received at `now`; its expiry is `expires`, or a day after it was seen.
    pub fn add(&mut self, line: &FeedLine, now: DateTime<Utc>) {
        let Some(domain) = normalise(&line.domain) else {
            return;
        };
        let expires = line
            .expires
            .unwrap_or(line.timestamp + TimeDelta::hours(24));
        match self.entries.get_mut(&domain) {
            Some(entry) => {
                if entry.expires >= expires {
                    return;
                }
                entry.expires = expires;
                entry.updated = now;
                entry.scores = Scores::of(line);
            }
            None => {
                if self.entries.len() >= MAX_HOTLIST_ENTRIES {
                    self.dropped += 1;
                    return;
                }
                self.entries.insert(
                    domain,
                    Entry {
                        expires,
                        updated: now,
                        scores: Scores::of(line),
                    },
                );
            }
        }
        self.dirty = true;
    }

    /// Forgets expired entries and writes the list if it changed.
    pub fn save(&mut self, now: DateTime<Utc>) -> io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|_, entry| entry.expires > now);
        if !self.dirty && before == self.entries.len() {
            return Ok(());
        }
        let saved: BTreeMap<&str, SavedRef<'_>> = self
            .entries
            .iter()
            .map(|(domain, entry)| {
                (
                    domain.as_str(),
                    SavedRef {
                        expires: entry.expires.to_rfc3339(),
                        updated: entry.updated.to_rfc3339(),
                        scores: &entry.scores,
                    },
                )
            })
            .collect();
        let bytes = serde_json::to_vec(&saved).map_err(io::Error::other)?;
        let tmp = self.path.with_extension("tmp");
        {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        fs::rename(tmp, &self.path)?;
        self.dirty = false;
        Ok(())
    }

    /// Every unexpired domain, one a line.
    pub fn freetext(&self, now: DateTime<Utc>) -> String {
        let mut text = String::new();
        for (domain, _) in self.entries.iter().filter(|(_, entry)| entry.expires > now) {
            text.push_str(domain);
            text.push('\n');
        }
        text
    }

    /// The unexpired entries that changed after `since` (all of them without it).
    pub fn changed_since(
        &self,
        since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries
            .iter()
            .filter(move |(_, entry)| {
                entry.expires > now && since.is_none_or(|since| entry.updated > since)
            })
            .map(|(domain, entry)| (domain.as_str(), entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_every_unexpired_entry_and_keeps_them_across_restarts() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut hotlist = Hotlist::open(root.path()).expect("open");
        let line = |domain: &str, expires: &str| -> FeedLine {
            serde_json::from_value(serde_json::json!({
                "domain": domain, "timestamp": "2026-01-01T00:00:00Z", "expires": expires
            }))
            .expect("line")
        };
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .expect("time")
                .with_timezone(&Utc)
        };
        let received = at("2026-01-01T01:00:00Z");
        hotlist.add(&line("a.example", "2026-01-02T00:00:00Z"), received);
        hotlist.add(&line("b.example", "2026-01-01T12:00:00Z"), received);
        hotlist.save(at("2026-01-01T06:00:00Z")).expect("save");
        let mut hotlist = Hotlist::open(root.path()).expect("reopen");
        assert_eq!(
            hotlist.freetext(at("2026-01-01T06:00:00Z")),
            "a.example\nb.example\n"
        );
        assert_eq!(hotlist.freetext(at("2026-01-01T13:00:00Z")), "a.example\n");

        // Only a new entry or a later expiry counts as a change.
        let later = at("2026-01-01T02:00:00Z");
        hotlist.add(&line("a.example", "2026-01-01T23:00:00Z"), later);
        hotlist.add(&line("b.example", "2026-01-01T18:00:00Z"), later);
        hotlist.add(&line("c.example", "2026-01-01T18:00:00Z"), later);
        let changed: Vec<&str> = hotlist
            .changed_since(Some(received), at("2026-01-01T06:00:00Z"))
            .map(|(domain, _)| domain)
            .collect();
        assert_eq!(changed, ["b.example", "c.example"]);
        assert_eq!(hotlist.changed_since(None, later).count(), 3);
    }

    #[test]
    fn an_expiry_only_file_of_an_earlier_release_still_opens() {
        let root = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(root.path().join("domainhotlist")).expect("dir");
        fs::write(
            root.path().join("domainhotlist/hotlist.json"),
            r#"{"a.example":"2026-01-02T00:00:00+00:00"}"#,
        )
        .expect("write");
        let hotlist = Hotlist::open(root.path()).expect("open");
        let at = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let entries: Vec<_> = hotlist
            .changed_since(Some(DateTime::UNIX_EPOCH), at)
            .collect();
        assert!(entries.is_empty(), "an unknown change time is the oldest");
        assert_eq!(hotlist.changed_since(None, at).count(), 1);
    }
}
