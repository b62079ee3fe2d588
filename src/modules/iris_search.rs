//! Iris Investigate searches that return lists of domains (Iris-Pivot on a non-domain value,
//! Iris-Import's search hash): `position` paging up to the caller's limit, and the note that
//! tells the user how many domains exist when not all of them are shown.

use domaintools::{Pages, Paging};
use serde_json::Value;

use super::{iris_error, Context, ModuleError};
use crate::misp::{Entry, Payload};
use crate::pyfmt;
use crate::pyfmt::truthy;

/// Runs an Iris Investigate search (`params`, e.g. `[("ip", "1.2.3.4")]`) through the
/// client's `position` paging, up to `limit` records. The requests carry exactly the
/// reference's parameters (no `page_size`). A search that finds nothing is an error: Iris's
/// own message when it refused the query, otherwise `no_results` (the reference's "No results
/// found." wording).
pub async fn collect(
    ctx: &Context,
    params: &[(&str, &str)],
    limit: u64,
    no_results: &str,
) -> Result<Pages, ModuleError> {
    let paging = Paging {
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
        page_size: None,
    };
    let pages = ctx
        .client
        .iris_investigate_pages(ctx.caller(), params, paging)
        .await
        .map_err(iris_error)?;
    if pages.received == 0 {
        return Err(ModuleError::NoResults(no_results.to_owned()));
    }
    Ok(pages)
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

/// The sentence that says what a paged search left out, or `None` when everything is shown.
/// `subject` names what was searched ("this IP address", "this search hash"), `verb` what
/// happened to the domains ("shown", "imported"), `limit` is the `results_limit` applied.
pub(crate) fn truncation_note(
    pages: &Pages,
    subject: &str,
    verb: &str,
    shown: usize,
    limit: u64,
) -> Option<String> {
    let total = pages.total();
    let complete = !pages.more && total.is_none_or(|t| t <= shown as u64);
    if complete {
        return None;
    }
    let how_many = match (total, &pages.limit_message) {
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
    let why = match &pages.stopped_early {
        Some(stop) => stop.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use domaintools::Stop;
    use serde_json::json;

    fn collected(n: usize, total: Option<u64>, more: bool) -> Pages {
        Pages {
            records: vec![json!({}); n],
            total_count: total,
            more,
            ..Pages::default()
        }
    }

    #[test]
    fn nothing_to_say_when_everything_is_shown() {
        assert_eq!(
            truncation_note(&collected(2, Some(2), false), "x", "shown", 2, 100),
            None
        );
        assert_eq!(
            truncation_note(&collected(2, None, false), "x", "shown", 2, 100),
            None
        );
    }

    #[test]
    fn the_note_gives_the_real_total() {
        assert_eq!(
            truncation_note(&collected(100, Some(2345), true), "this IP address", "shown", 100, 100)
                .unwrap(),
            "DomainTools Iris has 2,345 domains for this IP address; only the first 100 are shown (results_limit is 100)."
        );
        assert_eq!(
            truncation_note(&collected(100, None, true), "this search hash", "imported", 100, 100)
                .unwrap(),
            "DomainTools Iris has more than 100 domains for this search hash; only the first 100 are imported (results_limit is 100)."
        );
    }

    #[test]
    fn the_note_quotes_iris_when_its_limit_was_exceeded() {
        let mut c = collected(3, None, true);
        c.limit_message = Some("Maximum 5000 returned - you may need to refine your query.".into());
        assert_eq!(
            truncation_note(&c, "this IP address", "shown", 3, 100).unwrap(),
            "DomainTools Iris matched more domains for this IP address than it returns (Maximum 5000 returned - you may need to refine your query.); only the first 3 are shown (that is all Iris returns for one query)."
        );
    }

    #[test]
    fn the_note_says_why_paging_stopped() {
        let mut c = collected(10_000, Some(12_000), true);
        c.stopped_early = Some(Stop::PageCap);
        assert!(truncation_note(&c, "x", "imported", 10_000, 50_000)
            .unwrap()
            .ends_with("(this server reads at most 20 pages of Iris results)."));
        c.stopped_early = Some(Stop::Failed(domaintools::Error::Api {
            status: 503,
            message: "busy".into(),
        }));
        assert!(truncation_note(&c, "x", "imported", 10_000, 50_000)
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
            truncation_note(&collected(1, Some(2), true), "this registrar", "shown", 1, 1)
                .unwrap(),
            "DomainTools Iris has 2 domains for this registrar; only the first is shown (results_limit is 1)."
        );
    }
}
