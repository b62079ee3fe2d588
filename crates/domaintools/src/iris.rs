//! Iris Investigate and Iris Enrich: the problems Iris reports inside a 200 answer, and
//! `position` paging, as one API for every caller (the MISP modules and the STIX enrichment).

use std::fmt;

use reqwest::Method;

use crate::client::{Caller, Client};
use crate::error::{Error, Result};
use crate::types::IrisResponse;

/// Iris Investigate's largest page.
pub const MAX_PAGE_SIZE: usize = 500;

/// Most Iris pages one search reads. Iris serves 500 domains a page and refuses queries that
/// match more than 5,000-10,000 domains, so 20 pages cover everything it will ever return;
/// the cap only guards against a cursor that never ends.
pub const MAX_PAGES: usize = 20;

pub(crate) const INVESTIGATE_PATH: &str = "/v1/iris-investigate/";

impl IrisResponse {
    /// The problem Iris reported inside this 200 answer, as an error: `limit_exceeded` (the
    /// query matched more than Iris returns), or an `error` object in an answer without
    /// results. An answer that has results and an `error` keeps its results.
    pub fn problem(&self) -> Option<Error> {
        if self.limit_exceeded {
            let message = self
                .message
                .clone()
                .or_else(|| self.error.as_ref().and_then(|e| e.message.clone()))
                .filter(|m| !m.trim().is_empty());
            return Some(Error::LimitExceeded { message });
        }
        let error = self.error.as_ref().filter(|_| self.results.is_empty())?;
        let status = error.code.filter(|c| (400..600).contains(c)).unwrap_or(500);
        let message = error
            .message
            .clone()
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| format!("code {}", error.code.unwrap_or_default()));
        Some(Error::Reported { status, message })
    }

    fn checked(self) -> Result<Self> {
        match self.problem() {
            Some(problem) => Err(problem),
            None => Ok(self),
        }
    }
}

/// How a paged Iris Investigate search reads.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    /// Most records to collect.
    pub limit: usize,
    /// `page_size` to send, or `None` to send the caller's parameters unchanged and get
    /// Iris's default page (the MISP modules send exactly what the reference sends).
    pub page_size: Option<usize>,
}

/// What a paged search collected.
#[derive(Debug, Clone, Default)]
pub struct Pages {
    /// Result records, at most the limit, in the API's order.
    pub records: Vec<serde_json::Value>,
    /// Records Iris sent in all, before the limit cut them (zero: the search found nothing).
    pub received: usize,
    /// Domains the search matched, when Iris said (`total_count` of the first page).
    pub total_count: Option<u64>,
    /// Whether more domains exist than were collected (more pages, or over Iris's own limit).
    pub more: bool,
    /// Iris's message when the query matched more domains than it returns (`limit_exceeded`
    /// on a page that still had results).
    pub limit_message: Option<String>,
    /// Pages read.
    pub pages: usize,
    /// Why reading stopped before the end, when it was not the limit.
    pub stopped_early: Option<Stop>,
}

/// Why paging stopped before the search was exhausted or the limit reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// [`MAX_PAGES`] pages were read.
    PageCap,
    /// A later page failed; the earlier pages are kept.
    Failed(Error),
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::PageCap => write!(
                f,
                "this server reads at most {MAX_PAGES} pages of Iris results"
            ),
            Stop::Failed(error) => write!(
                f,
                "reading the next page failed: {}",
                error.to_string().trim_end_matches('.')
            ),
        }
    }
}

impl Pages {
    /// The number of matching domains, as far as it is known: Iris's `total_count`, or what was
    /// collected when the search was exhausted. `None` when more exist but Iris gave no total.
    pub fn total(&self) -> Option<u64> {
        match self.total_count {
            Some(total) => Some(total.max(self.records.len() as u64)),
            None if !self.more => Some(self.records.len() as u64),
            None => None,
        }
    }
}

impl Client {
    /// `POST /v1/iris-investigate/` with the given search parameters (`domain`, `ip`,
    /// `search_hash`, …), sent as a form like the official client does. Problems Iris reports
    /// inside the 200 answer are errors ([`IrisResponse::problem`]).
    pub async fn iris_investigate(
        &self,
        caller: Caller<'_>,
        params: &[(&str, &str)],
    ) -> Result<IrisResponse> {
        self.investigate_page(caller, params).await?.checked()
    }

    /// `POST /v1/iris-enrich/` for up to 100 domains. A single domain joins the lookups of
    /// other requests made within the batch window, so concurrent hovers cost one call.
    /// Problems Iris reports inside the 200 answer are errors.
    pub async fn iris_enrich(&self, caller: Caller<'_>, domains: &[&str]) -> Result<IrisResponse> {
        self.enrich_answer(caller, domains).await?.checked()
    }

    /// An Iris Investigate search that follows `position` until `paging.limit` records are
    /// collected, the search is exhausted, a page brings nothing new, or [`MAX_PAGES`].
    ///
    /// A first page without results is `Ok` with no records, unless Iris reported a problem,
    /// which is the error. A later page that fails ends the search with what came before
    /// ([`Stop::Failed`]).
    pub async fn iris_investigate_pages(
        &self,
        caller: Caller<'_>,
        params: &[(&str, &str)],
        paging: Paging,
    ) -> Result<Pages> {
        let limit = paging.limit;
        let page_size = paging
            .page_size
            .map(|size| size.clamp(1, MAX_PAGE_SIZE).to_string());
        let mut out = Pages::default();
        let mut position: Option<String> = None;
        loop {
            let mut page_params: Vec<(&str, &str)> = params.to_vec();
            if let Some(size) = &page_size {
                page_params.push(("page_size", size));
            }
            if let Some(position) = &position {
                page_params.push(("position", position));
            }
            let first = out.pages == 0;
            let page = match self.investigate_page(caller, &page_params).await {
                Ok(page) if page.results.is_empty() => match page.problem() {
                    Some(problem) if first => return Err(problem),
                    Some(problem) => Err(problem),
                    None => Ok(page),
                },
                other => other,
            };
            let page = match page {
                Ok(page) => page,
                Err(error) if !first => {
                    out.stopped_early = Some(Stop::Failed(error));
                    out.more = true;
                    break;
                }
                Err(error) => return Err(error),
            };
            out.pages += 1;
            if first {
                out.total_count = page.total_count;
            }
            if page.limit_exceeded {
                out.limit_message = Some(
                    page.message
                        .clone()
                        .or_else(|| page.error.as_ref().and_then(|e| e.message.clone()))
                        .unwrap_or_else(|| "the query matched too many domains".to_owned()),
                );
                out.more = true;
            }
            let before = out.records.len();
            let sent = page.results.len();
            out.received += sent;
            // Only the records within the limit are read into values.
            out.records.extend(
                page.results
                    .iter()
                    .take(limit.saturating_sub(before))
                    .map(crate::types::Record::value),
            );
            if before + sent >= limit {
                out.more |= before + sent > limit || page.has_more_results;
                break;
            }
            // Follow the cursor only while Iris says there is more, the cursor moves on and
            // pages bring records: a server that keeps saying "more" cannot keep this going.
            let next = page
                .position
                .filter(|p| page.has_more_results && !p.is_empty() && Some(p) != position.as_ref());
            let Some(next) = next else {
                out.more |= page.has_more_results;
                break;
            };
            if out.records.len() == before {
                out.more = true;
                break;
            }
            if out.pages >= MAX_PAGES {
                out.more = true;
                out.stopped_early = Some(Stop::PageCap);
                break;
            }
            position = Some(next);
        }
        Ok(out)
    }

    /// One Iris Investigate answer, in-band problems included.
    async fn investigate_page(
        &self,
        caller: Caller<'_>,
        params: &[(&str, &str)],
    ) -> Result<IrisResponse> {
        self.call_iris(caller, Method::POST, INVESTIGATE_PATH, params)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::InlineError;
    use serde_json::json;

    fn response(value: serde_json::Value) -> IrisResponse {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn in_band_problems_become_errors() {
        let limit = response(json!({"limit_exceeded": true, "message": "Maximum 5000 returned"}));
        assert_eq!(
            limit.problem(),
            Some(Error::LimitExceeded {
                message: Some("Maximum 5000 returned".into())
            })
        );
        let reported =
            response(json!({"results": [], "error": {"code": 413, "message": "Too big"}}));
        assert_eq!(
            reported.problem().unwrap().to_string(),
            "DomainTools API error 413: Too big"
        );
        let coded = IrisResponse {
            error: Some(InlineError {
                code: Some(404),
                message: None,
            }),
            ..IrisResponse::default()
        };
        assert_eq!(
            coded.problem().unwrap().to_string(),
            "DomainTools API error 404: code 404"
        );
        let with_results = response(
            json!({"results": [{"domain": "a.example"}], "error": {"message": "partial"}}),
        );
        assert_eq!(with_results.problem(), None);
        assert_eq!(response(json!({"results": []})).problem(), None);
    }

    #[test]
    fn stops_read_as_reasons() {
        assert_eq!(
            Stop::PageCap.to_string(),
            "this server reads at most 20 pages of Iris results"
        );
        let failed = Stop::Failed(Error::Api {
            status: 503,
            message: "busy".into(),
        });
        assert_eq!(
            failed.to_string(),
            "reading the next page failed: DomainTools API error 503: busy"
        );
    }

    #[test]
    fn total_never_undercounts_what_was_collected() {
        let pages = |n: usize, total: Option<u64>, more: bool| Pages {
            records: vec![json!({}); n],
            total_count: total,
            more,
            ..Pages::default()
        };
        assert_eq!(pages(5, Some(3), false).total(), Some(5));
        assert_eq!(pages(5, None, true).total(), None);
        assert_eq!(pages(5, None, false).total(), Some(5));
    }
}
