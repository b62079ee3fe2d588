//! The Domain Hotlist as a state: every domain with its latest `expires`, served as freetext
//! holding every unexpired entry, because MISP's fixed event with delta merge removes whatever
//! a pull no longer lists. Kept in `<feeds-dir>/domainhotlist/hotlist.json` across restarts.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use domaintools::feeds::FeedLine;

use super::store::normalise;

/// Entries kept at most (the hotlist holds tens of thousands); past it new ones are dropped.
pub const MAX_HOTLIST_ENTRIES: usize = 1_000_000;

/// Domain to expiry.
#[derive(Debug)]
pub struct Hotlist {
    path: PathBuf,
    entries: BTreeMap<String, DateTime<Utc>>,
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
            Ok(bytes) => serde_json::from_slice::<BTreeMap<String, String>>(&bytes)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?
                .into_iter()
                .filter_map(|(domain, expires)| {
                    Some((
                        domain,
                        DateTime::parse_from_rfc3339(&expires)
                            .ok()?
                            .with_timezone(&Utc),
                    ))
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

    /// Records a line; its expiry is `expires`, or a day after it was seen.
    pub fn add(&mut self, line: &FeedLine) {
        let Some(domain) = normalise(&line.domain) else {
            return;
        };
        let expires = line
            .expires
            .unwrap_or(line.timestamp + TimeDelta::hours(24));
        if !self.entries.contains_key(&domain) && self.entries.len() >= MAX_HOTLIST_ENTRIES {
            self.dropped += 1;
            return;
        }
        let entry = self.entries.entry(domain).or_insert(expires);
        if *entry < expires {
            *entry = expires;
        }
        self.dirty = true;
    }

    /// Forgets expired entries and writes the list if it changed.
    pub fn save(&mut self, now: DateTime<Utc>) -> io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|_, expires| *expires > now);
        if !self.dirty && before == self.entries.len() {
            return Ok(());
        }
        let saved: BTreeMap<&str, String> = self
            .entries
            .iter()
            .map(|(domain, expires)| (domain.as_str(), expires.to_rfc3339()))
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
        for (domain, _) in self.entries.iter().filter(|(_, expires)| **expires > now) {
            text.push_str(domain);
            text.push('\n');
        }
        text
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
        hotlist.add(&line("a.example", "2026-01-02T00:00:00Z"));
        hotlist.add(&line("b.example", "2026-01-01T12:00:00Z"));
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .expect("time")
                .with_timezone(&Utc)
        };
        hotlist.save(at("2026-01-01T06:00:00Z")).expect("save");
        let hotlist = Hotlist::open(root.path()).expect("reopen");
        assert_eq!(
            hotlist.freetext(at("2026-01-01T06:00:00Z")),
            "a.example\nb.example\n"
        );
        assert_eq!(hotlist.freetext(at("2026-01-01T13:00:00Z")), "a.example\n");
    }
}
