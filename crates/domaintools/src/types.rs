//! Response types of the DomainTools endpoints this project calls.
//!
//! Envelopes are typed; Iris result records stay `serde_json::Value` (order-preserving) on
//! purpose: the MISP mappings walk their keys generically, in the API's own order, exactly as
//! the reference modules do, and new keys DomainTools adds must flow through untouched.

use serde::Deserialize;
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
    pub results: Vec<Value>,
    /// Requested domains DomainTools has no record of.
    pub missing_domains: Vec<String>,
    /// Cursor for the next page, when `has_more_results`.
    pub position: Option<String>,
    /// An error DomainTools reports inside a 200 answer (newer API versions, e.g. code 413).
    pub error: Option<InlineError>,
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
