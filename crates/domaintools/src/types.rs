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
/// Read from an answer's bytes, a record is a slice of them (no copy): the answer's memory
/// is all the records take.
#[derive(Debug, Clone)]
pub struct Record(Text);

#[derive(Debug, Clone)]
enum Text {
    Owned(Box<RawValue>),
    /// UTF-8 JSON, checked when the answer was read.
    Shared(bytes::Bytes),
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(|raw| Self(Text::Owned(raw)))
    }
}

impl Record {
    /// The record at `raw`, which must be a part of `answer` (as when `raw` was borrowed
    /// while reading `answer`); `None` when it is not.
    pub(crate) fn within(answer: &bytes::Bytes, raw: &RawValue) -> Option<Self> {
        let text = raw.get();
        let start = (text.as_ptr() as usize).checked_sub(answer.as_ptr() as usize)?;
        let end = start.checked_add(text.len())?;
        (end <= answer.len()).then(|| Self(Text::Shared(answer.slice(start..end))))
    }

    /// The record as a value. Its text was checked as JSON when the answer was read, so this
    /// reads it again without error (`Null` for the impossible failure).
    pub fn value(&self) -> Value {
        // Read as text: the parser then checks no string's UTF-8 again, one check for all.
        serde_json::from_str(self.json()).unwrap_or(Value::Null)
    }

    /// The record's JSON text, as DomainTools sent it.
    pub fn json(&self) -> &str {
        match &self.0 {
            Text::Owned(raw) => raw.get(),
            Text::Shared(bytes) => std::str::from_utf8(bytes).unwrap_or("null"),
        }
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
        match serde_json::from_str::<Probe>(self.json()).ok()?.domain? {
            DomainMember::Text(domain) => Some(domain),
            DomainMember::Other(_) => None,
        }
    }
}

/// [`IrisResponse`] as read from an answer's bytes: the records borrowed from them, to become
/// slices of the answer ([`IrisWire::into_response`]). Named like the public type so that
/// decoding errors read the same.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename = "IrisResponse")]
pub(crate) struct IrisWire<'a> {
    limit_exceeded: bool,
    has_more_results: bool,
    message: Option<String>,
    results_count: Option<u64>,
    total_count: Option<u64>,
    #[serde(borrow)]
    results: Vec<&'a RawValue>,
    missing_domains: Vec<String>,
    position: Option<String>,
    error: Option<InlineError>,
}

impl IrisWire<'_> {
    /// The answer, its records slices of `answer` (the bytes this was read from).
    pub(crate) fn into_response(self, answer: &bytes::Bytes) -> IrisResponse {
        let results = self
            .results
            .into_iter()
            .map(|raw| {
                Record::within(answer, raw).unwrap_or_else(|| Record(Text::Owned(raw.to_owned())))
            })
            .collect();
        IrisResponse {
            limit_exceeded: self.limit_exceeded,
            has_more_results: self.has_more_results,
            message: self.message,
            results_count: self.results_count,
            total_count: self.total_count,
            results,
            missing_domains: self.missing_domains,
            position: self.position,
            error: self.error,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_slices_of_the_answer_and_read_as_they_were_sent() {
        let answer = bytes::Bytes::from_static(
            br#"{"results": [{"domain": "a.example", "n": 1.50, "s": "\u00e9"}, {"x": []}], "position": "p"}"#,
        );
        let wire: IrisWire<'_> = serde_json::from_slice(&answer).unwrap();
        let response = wire.into_response(&answer);
        assert_eq!(response.position.as_deref(), Some("p"));
        assert_eq!(response.results.len(), 2);
        let first = &response.results[0];
        assert!(matches!(&first.0, Text::Shared(_)));
        assert_eq!(
            first.json(),
            r#"{"domain": "a.example", "n": 1.50, "s": "\u00e9"}"#
        );
        assert_eq!(
            first.value(),
            serde_json::json!({"domain": "a.example", "n": 1.5, "s": "é"})
        );
        assert_eq!(first.domain().as_deref(), Some("a.example"));
        assert_eq!(response.results[1].domain(), None);
        let elsewhere: Box<RawValue> = serde_json::from_str("{}").unwrap();
        assert!(Record::within(&answer, &elsewhere).is_none());
    }
}
