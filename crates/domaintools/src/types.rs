//! Response types of the DomainTools endpoints this project calls.
//!
//! Envelopes are typed; Iris result records stay JSON (read as order-preserving
//! `serde_json::Value`s) on purpose: the MISP mappings walk their keys generically, in the
//! API's own order, exactly as the reference modules do, and new keys DomainTools adds must
//! flow through untouched.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// The `response` object of Iris Investigate and Iris Enrich.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IrisResponse {
    /// True when the query matched more domains than Iris returns (HTTP 200 all the same).
    pub limit_exceeded: bool,
    /// True when more pages follow; ask again with `position`.
    pub has_more_results: bool,
    /// Human-readable status ("Enjoy your data.", "Maximum 5000 returned - …").
    pub message: Option<String>,
    /// Results in this answer.
    pub results_count: Option<u64>,
    /// Results the query matched in all.
    pub total_count: Option<u64>,
    /// The domain records, in the API's order.
    pub results: Vec<Record>,
    /// Requested domains DomainTools has no record of.
    pub missing_domains: Vec<String>,
    /// Cursor for the next page, when `has_more_results`.
    pub position: Option<String>,
    /// An error DomainTools reports inside a 200 answer (newer API versions, e.g. code 413).
    pub error: Option<InlineError>,
}

/// One Iris result record as DomainTools sent it: its JSON text, read into a value only when
/// a caller asks. A record as a `Value` takes about 15 times its text (a map, a hash table and
/// an allocation per member), so a 30 MB answer read whole took 444 MiB where the callers
/// read one record (a hover) or a page up to their limit.
#[derive(Debug, Clone)]
pub struct Record(Box<RawValue>);

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(Self)
    }
}

impl Record {
    /// The record as a value. Its text was checked as JSON when the answer was read, so this
    /// reads it again without error (`Null` for the impossible failure).
    pub fn value(&self) -> Value {
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }

    /// The record's JSON text, as DomainTools sent it.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The record's `domain` member when it is a string, read without building the record.
    pub fn domain(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(default)]
            domain: Option<DomainMember>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum DomainMember {
            Text(String),
            Other(serde::de::IgnoredAny),
        }
        match serde_json::from_str::<Probe>(self.0.get()).ok()?.domain? {
            DomainMember::Text(domain) => Some(domain),
            DomainMember::Other(_) => None,
        }
    }
}

/// An `{"code", "message"}` error object.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct InlineError {
    /// DomainTools' code (mirrors an HTTP status).
    pub code: Option<u16>,
    /// DomainTools' explanation.
    pub message: Option<String>,
}

/// The error envelope of every 4xx/5xx answer: `{"error": {"code", "message"}, "resources": …}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub(crate) error: Option<InlineError>,
}
