//! Iris Detect: the new/watched domain listings (offset/limit pages) and the escalation POST,
//! with typed parameters so list filters always go out as the repeated `name[]=` keys the API
//! and DomainTools' own client use.

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::client::{Caller, Client};
use super::error::{Error, Result};

/// The largest page Iris Detect serves (50 when domain data is included).
pub const MAX_PAGE_SIZE: u64 = 100;

/// Which watchlist to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectList {
    /// Newly discovered domains that still need a decision.
    New,
    /// Domains an analyst chose to watch.
    Watched,
}

impl DetectList {
    /// The endpoint's path (with the trailing slash the API and the official client use).
    pub fn path(self) -> &'static str {
        match self {
            DetectList::New => "/v1/iris-detect/domains/new/",
            DetectList::Watched => "/v1/iris-detect/domains/watched/",
        }
    }

    /// The list's name, as people say it ("new", "watched").
    pub fn name(self) -> &'static str {
        match self {
            DetectList::New => "new",
            DetectList::Watched => "watched",
        }
    }
}

/// Where a domain was escalated to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscalationType {
    /// The organisation's own blocklist (the API's `blocked`).
    Blocked,
    /// Google Safe Browsing (the API's `google_safe`).
    GoogleSafe,
}

impl EscalationType {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationType::Blocked => "blocked",
            EscalationType::GoogleSafe => "google_safe",
        }
    }
}

/// The filters and paging of one listing request. Unset options are not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectQuery {
    /// Only domains of this monitor.
    pub monitor_id: Option<String>,
    /// Include name servers, mail servers, IPs and whois details (smaller pages).
    pub include_domain_data: bool,
    /// Preview mode: a few results, not counted against hourly limits.
    pub preview: bool,
    /// Index of the first domain of the page.
    pub offset: u64,
    /// Page size; `None` lets the API choose (100).
    pub limit: Option<u64>,
    /// Domains discovered at or after this date (`YYYY-MM-DD` or ISO 8601).
    pub discovered_since: Option<String>,
    /// Domains changed at or after this date.
    pub changed_since: Option<String>,
    /// Domains escalated at or after this date (watched list).
    pub escalated_since: Option<String>,
    /// Risk-score ranges such as `70-99`, sent as `risk_score_ranges[]`.
    pub risk_score_ranges: Vec<String>,
    /// Escalation types, sent as `escalation_types[]` (watched list).
    pub escalation_types: Vec<EscalationType>,
}

impl DetectQuery {
    /// The query parameters, in the order DomainTools' Python client sends them.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        if let Some(monitor_id) = &self.monitor_id {
            out.push(("monitor_id", monitor_id.clone()));
        }
        out.push(("include_domain_data", bool_param(self.include_domain_data)));
        out.push(("preview", bool_param(self.preview)));
        out.push(("offset", self.offset.to_string()));
        if let Some(limit) = self.limit {
            out.push(("limit", limit.to_string()));
        }
        for (key, value) in [
            ("discovered_since", &self.discovered_since),
            ("changed_since", &self.changed_since),
            ("escalated_since", &self.escalated_since),
        ] {
            if let Some(value) = value {
                out.push((key, value.clone()));
            }
        }
        for escalation in &self.escalation_types {
            out.push(("escalation_types[]", escalation.as_str().to_owned()));
        }
        for range in &self.risk_score_ranges {
            out.push(("risk_score_ranges[]", range.clone()));
        }
        out
    }
}

fn bool_param(b: bool) -> String {
    if b { "true" } else { "false" }.to_owned()
}

/// One page of a watchlist (Iris Detect answers carry no `response` wrapper).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WatchlistPage {
    /// The domains of this page. Kept as JSON: the module reads a handful of fields and must
    /// not fail a whole import because DomainTools changed an unrelated one.
    pub watchlist_domains: Vec<Value>,
    /// Domains matching the filters, all pages together.
    pub total_count: Option<u64>,
    /// Domains in this page.
    pub count: Option<u64>,
    /// The page's offset, as the API understood it.
    pub offset: Option<u64>,
    /// The page size the API applied.
    pub limit: Option<u64>,
}

/// The answer to an escalation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EscalationResponse {
    /// One record per escalated domain.
    pub escalations: Vec<Escalation>,
}

/// One escalation record.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Escalation {
    /// The watchlist domain that was escalated.
    pub watchlist_domain_id: Option<String>,
    /// `blocked` or `google_safe`.
    pub escalation_type: Option<String>,
    /// The escalation's own id.
    pub id: Option<String>,
}

impl Client {
    /// `GET /v1/iris-detect/domains/{new,watched}/`: one page of a watchlist.
    pub async fn iris_detect_domains(
        &self,
        caller: Caller<'_>,
        list: DetectList,
        query: &DetectQuery,
    ) -> Result<WatchlistPage> {
        let params = query.params();
        let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let value: Value = self
            .call(caller, Method::GET, list.path(), &borrowed)
            .await?;
        if let Some(error) = super::classic::in_band_error(&value) {
            return Err(error);
        }
        // Every field is optional so a page survives DomainTools adding or dropping one, but a
        // page without its domain list is not a page: "No results found" would be a lie.
        if value.get("watchlist_domains").is_none() {
            return Err(Error::Decode(format!(
                "{}: unexpected shape: no watchlist_domains",
                list.path()
            )));
        }
        serde_json::from_value(value)
            .map_err(|e| Error::Decode(format!("{}: unexpected shape: {e}", list.path())))
    }

    /// `GET /v1/iris-detect/monitors/`: the account's monitors as (id, monitored term) pairs,
    /// at most 500 (one page), to say which term found a watchlist domain.
    pub async fn iris_detect_monitors(&self, caller: Caller<'_>) -> Result<Vec<(String, String)>> {
        const PATH: &str = "/v1/iris-detect/monitors/";
        let value: Value = self
            .call(caller, Method::GET, PATH, &[("limit", "500")])
            .await?;
        if let Some(error) = super::classic::in_band_error(&value) {
            return Err(error);
        }
        let Some(monitors) = value.get("monitors").and_then(Value::as_array) else {
            return Err(Error::Decode(format!(
                "{PATH}: unexpected shape: no monitors"
            )));
        };
        Ok(monitors
            .iter()
            .filter_map(|m| {
                let id = m.get("id")?.as_str()?;
                let term = m.get("term")?.as_str()?;
                Some((id.to_owned(), term.to_owned()))
            })
            .collect())
    }

    /// `POST /v1/iris-detect/escalations/`: escalates watchlist domains (form body with one
    /// `watchlist_domain_ids[]` per id, as the official client sends it).
    pub async fn iris_detect_escalate(
        &self,
        caller: Caller<'_>,
        escalation: EscalationType,
        watchlist_domain_ids: &[&str],
    ) -> Result<EscalationResponse> {
        if watchlist_domain_ids.is_empty() {
            return Err(Error::InvalidInput(
                "an escalation needs at least one watchlist domain id".to_owned(),
            ));
        }
        let mut params: Vec<(&str, &str)> = Vec::with_capacity(watchlist_domain_ids.len() + 1);
        params.push(("escalation_type", escalation.as_str()));
        params.extend(
            watchlist_domain_ids
                .iter()
                .map(|id| ("watchlist_domain_ids[]", *id)),
        );
        self.call(
            caller,
            Method::POST,
            "/v1/iris-detect/escalations/",
            &params,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_query_is_what_the_reference_sends() {
        let q = DetectQuery::default();
        let shown: Vec<String> = q.params().iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            shown,
            ["include_domain_data=false", "preview=false", "offset=0"]
        );
    }

    #[test]
    fn every_filter_and_repeated_list_keys() {
        let q = DetectQuery {
            monitor_id: Some("nAwmQg2pqg".into()),
            include_domain_data: true,
            preview: true,
            offset: 200,
            limit: Some(50),
            discovered_since: Some("2024-01-01".into()),
            changed_since: Some("2024-01-02".into()),
            escalated_since: Some("2024-01-03T00:00:00+00:00".into()),
            risk_score_ranges: vec!["70-99".into(), "100-100".into()],
            escalation_types: vec![EscalationType::Blocked, EscalationType::GoogleSafe],
        };
        let shown: Vec<String> = q.params().iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            shown,
            [
                "monitor_id=nAwmQg2pqg",
                "include_domain_data=true",
                "preview=true",
                "offset=200",
                "limit=50",
                "discovered_since=2024-01-01",
                "changed_since=2024-01-02",
                "escalated_since=2024-01-03T00:00:00+00:00",
                "escalation_types[]=blocked",
                "escalation_types[]=google_safe",
                "risk_score_ranges[]=70-99",
                "risk_score_ranges[]=100-100",
            ]
        );
    }

    #[test]
    fn recorded_pages_decode() {
        let page: WatchlistPage = serde_json::from_str(include_str!(
            "../../domaintools-fake/fixtures/domaintools/iris-detect-new.json"
        ))
        .unwrap();
        assert_eq!(
            (page.total_count, page.count, page.offset, page.limit),
            (Some(30640), Some(100), Some(0), Some(100))
        );
        assert_eq!(page.watchlist_domains.len(), 100);
        let escalated: EscalationResponse = serde_json::from_str(include_str!(
            "../../domaintools-fake/fixtures/domaintools/iris-detect-escalate.json"
        ))
        .unwrap();
        assert_eq!(
            escalated.escalations[0].watchlist_domain_id.as_deref(),
            Some("OWxzqKqQEY")
        );
        assert_eq!(
            escalated.escalations[0].escalation_type.as_deref(),
            Some("google_safe")
        );
    }

    #[test]
    fn paths_and_names() {
        assert_eq!(DetectList::New.path(), "/v1/iris-detect/domains/new/");
        assert_eq!(
            DetectList::Watched.path(),
            "/v1/iris-detect/domains/watched/"
        );
        assert_eq!(DetectList::Watched.name(), "watched");
    }
}
