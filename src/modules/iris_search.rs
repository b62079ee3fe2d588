//! Iris Investigate searches that return lists of domains (Iris-Pivot on a non-domain value,
//! Iris-Import's search hash): `position` paging up to the caller's limit, and the note that
//! tells the user how many domains exist when not all of them are shown.

use serde_json::Value;

use super::iris_hover::check_response;
use super::{Context, ModuleError};
use crate::misp::{Entry, Payload};
use crate::pyfmt;
use crate::pyfmt::truthy;
use domaintools;

/// Most Iris pages one search reads. Iris serves 500 domains a page and refuses queries that
/// match more than 5,000-10,000 domains, so 20 pages cover everything it will ever return;
/// the cap only guards against a cursor that never ends.
pub const MAX_PAGES: usize = 20;

/// What a paged search collected.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// Result records, at most `limit` of them, in the API's order.
    pub records: Vec<Value>,
    /// Domains the search matched, when Iris said (`total_count`).
    pub total_count: Option<u64>,
    /// Whether more domains exist than were collected (more pages, or over Iris's own limit).
    pub more: bool,
    /// Iris's message when the query matched more domains than it returns (`limit_exceeded`).
    pub limit_message: Option<String>,
    /// Pages read.
    pub pages: usize,
    /// Why reading stopped before the end, when it was not the caller's limit.
    pub stopped_early: Option<Stop>,
}

/// Why paging stopped before the search was exhausted or the limit reached.
#[derive(Debug, Clone)]
pub enum Stop {
    /// [`MAX_PAGES`] pages were read.
    PageCap,
    /// A later page failed; the earlier pages are kept.
    Failed(domaintools::Error),
}

/// Runs an Iris Investigate search (`params`, e.g. `[("ip", "1.2.3.4")]`) and follows
/// `position` until `limit` records are collected, the search is exhausted, or [`MAX_PAGES`].
///
/// The first request carries exactly the reference's parameters; only later pages add
/// `position`. A first page without results is an error: Iris's own limit message when it
/// refused the query, otherwise `no_results` (the reference's "No results found." wording).
pub async fn collect(
    ctx: &Context,
    params: &[(&str, &str)],
    limit: u64,
    no_results: &str,
) -> Result<Collected, ModuleError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut out = Collected::default();
    let mut position: Option<String> = None;
    loop {
        let mut page_params: Vec<(&str, &str)> = params.to_vec();
        if let Some(position) = &position {
            page_params.push(("position", position.as_str()));
        }
        let page = match ctx
            .client
            .iris_investigate(ctx.caller(), &page_params)
            .await
        {
            Ok(page) => page,
            Err(error) if out.pages > 0 => {
                out.stopped_early = Some(Stop::Failed(error));
                out.more = true;
                break;
            }
            Err(error) => return Err(error.into()),
        };
        out.pages += 1;
        if out.pages == 1 {
            if page.results.is_empty() {
                check_response(&page)?;
                return Err(ModuleError::NoResults(no_results.to_owned()));
            }
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
        out.records.extend(page.results);
        if out.records.len() >= limit {
            out.more |= out.records.len() > limit || page.has_more_results;
            out.records.truncate(limit);
            break;
        }
        // Follow the cursor only while Iris says there is more and the cursor moves on.
        let next = page
            .position
            .filter(|p| page.has_more_results && !p.is_empty() && Some(p) != position.as_ref());
        let Some(next) = next else {
            out.more |= page.has_more_results;
            break;
        };
        if out.pages >= MAX_PAGES {
            out.more = true;
            out.stopped_early = Some(Stop::PageCap);
            break;
        }
        position = Some(next);
    }
    Ok(out)
}

/// The reference's entries for a list of Iris records: one "Domain" entry per record, in the
/// API's order, de-duplicated like every other entry (label + value).
pub fn domain_entries(records: &[Value]) -> Payload {
    let mut p = Payload::new();
    for record in records {
        // Only plain names make attributes; anything else in `domain` is not a domain.
        if let Some(domain) = truthy(record, "domain").filter(|d| d.is_string()) {
            let entry = Entry::new(
                &["domain"],
                "Domain",
                domain.clone(),
                "Domain from DomainTools Iris",
                &["DomainTools", "Iris"],
            );
            let stored = Entry {
                comment: stored_comment(record),
                ..entry.clone()
            };
            p.push(entry.stored_as(stored));
        }
    }
    p
}

/// A stored domain's own comment: what Iris says about it (risk score, creation and
/// expiration dates, whether it is active), so that an imported domain tells its story without
/// the import's summary on it.
fn stored_comment(record: &Value) -> String {
    let mut facts = Vec::new();
    if let Some(score) = record
        .get("domain_risk")
        .and_then(|r| r.get("risk_score"))
        .filter(|s| s.is_number())
    {
        facts.push(format!("risk score {score}"));
    }
    for (key, what) in [("create_date", "created"), ("expiration_date", "expires")] {
        if let Some(day) = record
            .get(key)
            .and_then(|d| d.get("value"))
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
        {
            facts.push(format!("{what} {day}"));
        }
    }
    match record.get("active").and_then(Value::as_bool) {
        Some(true) => facts.push("active".to_owned()),
        Some(false) => facts.push("inactive".to_owned()),
        None => {}
    }
    if facts.is_empty() {
        "Domain from DomainTools Iris".to_owned()
    } else {
        format!("Domain from DomainTools Iris: {}", facts.join(", "))
    }
}

impl Collected {
    /// The number of matching domains, as far as it is known: Iris's `total_count`, or what was
    /// collected when the search was exhausted. `None` when more exist but Iris gave no total.
    pub fn total(&self) -> Option<u64> {
        match self.total_count {
            Some(total) => Some(total.max(self.records.len() as u64)),
            None if !self.more => Some(self.records.len() as u64),
            None => None,
        }
    }

    /// The sentence that says what was left out, or `None` when everything is shown.
    /// `subject` names what was searched ("this IP address", "this search hash"), `verb` what
    /// happened to the domains ("shown", "imported"), `limit` is the `results_limit` applied.
    pub fn truncation_note(
        &self,
        subject: &str,
        verb: &str,
        shown: usize,
        limit: u64,
    ) -> Option<String> {
        let total = self.total();
        let complete = !self.more && total.is_none_or(|t| t <= shown as u64);
        if complete {
            return None;
        }
        let how_many = match (total, &self.limit_message) {
            (_, Some(message)) => format!(
                "DomainTools Iris matched more domains for {subject} than it returns ({})",
                message.trim()
            ),
            (Some(total), None) => format!(
                "DomainTools Iris has {} domains for {subject}",
                pyfmt::thousands(i64::try_from(total).unwrap_or(i64::MAX))
            ),
            (None, None) => format!(
                "DomainTools Iris has more than {} domains for {subject}",
                pyfmt::thousands(shown as i64)
            ),
        };
        let why = match &self.stopped_early {
            Some(Stop::PageCap) => {
                format!("this server reads at most {MAX_PAGES} pages of Iris results")
            }
            Some(Stop::Failed(error)) => format!(
                "reading the next page failed: {}",
                error.to_string().trim_end_matches('.')
            ),
            None if shown as u64 >= limit => format!("results_limit is {limit}"),
            None => "that is all Iris returns for one query".to_owned(),
        };
        let which = match shown {
            0 => "none are".to_owned(),
            1 => "only the first is".to_owned(),
            n => format!("only the first {} are", pyfmt::thousands(n as i64)),
        };
        Some(format!("{how_many}; {which} {verb} ({why})."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collected(n: usize, total: Option<u64>, more: bool) -> Collected {
        Collected {
            records: vec![json!({}); n],
            total_count: total,
            more,
            ..Collected::default()
        }
    }

    #[test]
    fn nothing_to_say_when_everything_is_shown() {
        assert_eq!(
            collected(2, Some(2), false).truncation_note("x", "shown", 2, 100),
            None
        );
        assert_eq!(
            collected(2, None, false).truncation_note("x", "shown", 2, 100),
            None
        );
    }

    #[test]
    fn the_note_gives_the_real_total() {
        assert_eq!(
            collected(100, Some(2345), true)
                .truncation_note("this IP address", "shown", 100, 100)
                .unwrap(),
            "DomainTools Iris has 2,345 domains for this IP address; only the first 100 are shown (results_limit is 100)."
        );
        assert_eq!(
            collected(100, None, true)
                .truncation_note("this search hash", "imported", 100, 100)
                .unwrap(),
            "DomainTools Iris has more than 100 domains for this search hash; only the first 100 are imported (results_limit is 100)."
        );
    }

    #[test]
    fn the_note_quotes_iris_when_its_limit_was_exceeded() {
        let mut c = collected(3, None, true);
        c.limit_message = Some("Maximum 5000 returned - you may need to refine your query.".into());
        assert_eq!(
            c.truncation_note("this IP address", "shown", 3, 100).unwrap(),
            "DomainTools Iris matched more domains for this IP address than it returns (Maximum 5000 returned - you may need to refine your query.); only the first 3 are shown (that is all Iris returns for one query)."
        );
    }

    #[test]
    fn the_note_says_why_paging_stopped() {
        let mut c = collected(10_000, Some(12_000), true);
        c.stopped_early = Some(Stop::PageCap);
        assert!(c
            .truncation_note("x", "imported", 10_000, 50_000)
            .unwrap()
            .ends_with("(this server reads at most 20 pages of Iris results)."));
        c.stopped_early = Some(Stop::Failed(domaintools::Error::Api {
            status: 503,
            message: "busy".into(),
        }));
        assert!(c
            .truncation_note("x", "imported", 10_000, 50_000)
            .unwrap()
            .ends_with("(reading the next page failed: DomainTools API error 503: busy)."));
    }

    #[test]
    fn domain_entries_skip_missing_and_duplicate_names() {
        let records = [
            json!({"domain": "a.example"}),
            json!({"domain": ""}),
            json!({"other": 1}),
            json!({"domain": 42}),
            json!({"domain": "a.example"}),
            json!({"domain": "b.example"}),
        ];
        let p = domain_entries(&records);
        let names: Vec<_> = p.entries().iter().map(|e| e.value.clone()).collect();
        assert_eq!(names, [json!("a.example"), json!("b.example")]);
        let e = &p.entries()[0];
        assert_eq!(
            (e.types.as_slice(), e.label.as_str(), e.comment.as_str()),
            (&["domain"][..], "Domain", "Domain from DomainTools Iris")
        );
        assert_eq!(e.tags, ["DomainTools", "Iris"]);
    }

    #[test]
    fn the_note_reads_well_for_one_domain() {
        assert_eq!(
            collected(1, Some(2), true)
                .truncation_note("this registrar", "shown", 1, 1)
                .unwrap(),
            "DomainTools Iris has 2 domains for this registrar; only the first is shown (results_limit is 1)."
        );
    }

    #[test]
    fn total_never_undercounts_what_was_collected() {
        assert_eq!(collected(5, Some(3), false).total(), Some(5));
        assert_eq!(collected(5, None, true).total(), None);
    }
}
