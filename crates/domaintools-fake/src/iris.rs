//! Iris Investigate and Iris Enrich over the recorded amazon.com and google.com records:
//! search by domain or by pivot value, `position` paging, and synthetic records (`many-N`,
//! `*.example`, `synthetic-*.com`) for tests that need more results than were ever recorded.

use std::collections::HashSet;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::answer::{Answer, Envelope};
use super::data::{fixtures, records, set_field};
use super::params::Params;
use super::routes::{flag, normalize_domain, number, Context};
use super::MANY_LIMIT;

/// Domains per request, at most (API docs, Investigate and Enrich alike).
const MAX_DOMAINS: usize = 100;
/// Results per Investigate page: the default and the most `page_size` may ask for.
const MAX_PAGE_SIZE: usize = 500;
const DONE_MESSAGE: &str = "Enjoy your data.";
const MORE_MESSAGE: &str = "There is more data for you to enjoy.";
/// The recorded domain synthetic records are cloned from.
const TEMPLATE_DOMAIN: &str = "google.com";
/// Names of synthetic domains: any valid domain under this TLD is known to the fake.
const SYNTHETIC_SUFFIX: &str = ".example";

/// Where the four whois contacts sit in a record; `{contacts}` in a pivot path visits each.
const CONTACTS: [&str; 4] = [
    "admin_contact",
    "billing_contact",
    "registrant_contact",
    "technical_contact",
];

/// Investigate search parameters the fake matches, and the record fields each compares with
/// (case-insensitively, whole value). `x[]` walks a list.
const PIVOTS: &[(&str, &[&str])] = &[
    ("ip", &["ip[].address.value"]),
    (
        "email",
        &[
            "{contacts}.email[].value",
            "soa_email[].value",
            "additional_whois_email[].value",
            "ssl_email[].value",
            "ssl_info[].email[].value",
        ],
    ),
    ("email_domain", &["email_domain[].value"]),
    ("email_dns_soa", &["soa_email[].value"]),
    ("nameserver_host", &["name_server[].host.value"]),
    ("nameserver_domain", &["name_server[].domain.value"]),
    ("nameserver_ip", &["name_server[].ip[].value"]),
    ("mailserver_host", &["mx[].host.value"]),
    ("mailserver_domain", &["mx[].domain.value"]),
    ("mailserver_ip", &["mx[].ip[].value"]),
    ("registrar", &["registrar.value"]),
    (
        "registrant",
        &[
            "registrant_name.value",
            "registrant_org.value",
            "{contacts}.name.value",
            "{contacts}.org.value",
        ],
    ),
    ("registrant_org", &["registrant_org.value"]),
    ("contact_name", &["{contacts}.name.value"]),
    ("contact_phone", &["{contacts}.phone.value"]),
    ("contact_street", &["{contacts}.street.value"]),
    ("ssl_hash", &["ssl_info[].hash.value"]),
    ("ssl_subject", &["ssl_info[].subject.value"]),
    ("ssl_org", &["ssl_info[].organization.value"]),
    (
        "ssl_email",
        &["ssl_email[].value", "ssl_info[].email[].value"],
    ),
    ("redirect_domain", &["redirect_domain.value"]),
    ("adsense", &["adsense.value"]),
    ("google_analytics", &["google_analytics.value"]),
];

/// Search parameters the API has but the recorded records hold no data for: they are valid
/// searches that match nothing.
const UNMATCHABLE: &[&str] = &[
    "historical_registrant",
    "historical_free_text",
    "whois",
    "ssl_common_name",
    "ssl_alt_names",
    "ssl_duration",
    "iana_id",
    "server_type",
    "website_title",
    "tagged_with_all",
    "tagged_with_any",
    "google_analytics_4",
    "google_tag_manager",
    "baidu_analytics",
    "facebook",
    "hotjar",
    "matomo",
    "statcounter_project",
    "statcounter_security",
    "yandex_metrica",
];

/// Parameters that do not change which results a query has, left out of the `position`
/// fingerprint so any page may be asked for with any page size.
const NOT_PART_OF_THE_QUERY: &[&str] = &[
    "position",
    "page_size",
    "api_username",
    "api_key",
    "timestamp",
    "signature",
    "app_name",
    "app_version",
    "app_partner",
    "format",
    "next",
];

type Outcome = Result<Answer, Answer>;

fn bad_request() -> Answer {
    Answer::bad_request(Envelope::Classic)
}

/// One result, before it is materialized (synthetic ones only for the page sent).
#[derive(Debug, Clone)]
enum Item {
    Recorded(&'static Value),
    Synthetic(String),
}

/// What an Investigate request searches for.
#[derive(Debug, Default)]
struct Search<'a> {
    domains: Option<Vec<String>>,
    many: Option<u64>,
    pivots: Vec<(&'static [&'static str], &'a str)>,
    /// An ordinary `search_hash`: the fake has no saved searches, so it means "everything".
    any: bool,
    unmatchable: bool,
    tld: Option<&'a str>,
    active: Option<bool>,
}

impl Search<'_> {
    fn is_empty(&self) -> bool {
        self.domains.is_none()
            && self.many.is_none()
            && self.pivots.is_empty()
            && !self.any
            && !self.unmatchable
    }

    /// Whether a record satisfies every criterion except the domain list.
    fn admits(&self, record: &Value) -> bool {
        !self.unmatchable
            && self
                .pivots
                .iter()
                .all(|(paths, wanted)| pivot_matches(record, paths, wanted))
            && self
                .tld
                .is_none_or(|tld| record["tld"].as_str() == Some(tld))
            && self
                .active
                .is_none_or(|active| record["active"].as_bool() == Some(active))
    }
}

/// `many-N` as a number; values too large for `u64` count as over any limit.
fn many(value: &str) -> Option<u64> {
    let digits = value.strip_prefix("many-")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().unwrap_or(u64::MAX))
}

fn read_search(params: &Params) -> Result<Search<'_>, Answer> {
    let mut search = Search::default();
    for (name, paths) in PIVOTS {
        if let Some(value) = params.given(name) {
            match (*name, many(value)) {
                ("registrar", Some(n)) => search.many = Some(n),
                _ => search.pivots.push((paths, value)),
            }
        }
    }
    if let Some(hash) = params.given("search_hash") {
        match many(hash) {
            Some(n) => search.many = Some(n),
            None => search.any = true,
        }
    }
    search.unmatchable = UNMATCHABLE.iter().any(|name| params.given(name).is_some());
    if params.given("domain").is_some() {
        search.domains = Some(domain_list(params)?);
    }
    search.tld = params.given("tld");
    if params.given("active").is_some() {
        search.active = Some(flag(params, "active")?);
    }
    if search.is_empty() {
        return Err(bad_request());
    }
    Ok(search)
}

/// The `domain` comma list, normalized, without repeats; required, at most 100.
fn domain_list(params: &Params) -> Result<Vec<String>, Answer> {
    let raw: Vec<&str> = params
        .given("domain")
        .ok_or_else(bad_request)?
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    if raw.is_empty() || raw.len() > MAX_DOMAINS {
        return Err(bad_request());
    }
    let mut seen = HashSet::new();
    Ok(raw
        .into_iter()
        .map(|name| normalize_domain(name).unwrap_or_else(|| name.to_lowercase()))
        .filter(|name| seen.insert(name.clone()))
        .collect())
}

/// Also `synthetic-*.com`: distinct registrable domains under a public suffix, for tests that
/// go through the MISP modules (which find no registrable domain in `*.example` names).
fn is_synthetic(domain: &str) -> bool {
    let under_com = domain
        .strip_prefix("synthetic-")
        .and_then(|rest| rest.strip_suffix(".com"))
        .is_some_and(|label| !label.is_empty() && !label.contains('.'));
    (domain.ends_with(SYNTHETIC_SUFFIX) || under_com)
        && normalize_domain(domain).as_deref() == Some(domain)
}

fn synthetic_name(index: u64) -> String {
    format!("d{index:04}{SYNTHETIC_SUFFIX}")
}

/// A recorded record renamed: what the fake knows about a synthetic domain.
fn renamed(template: &Value, domain: &str) -> Value {
    let mut record = template.clone();
    set_field(&mut record, "domain", domain.into());
    let whois_url = format!("https://whois.domaintools.com/{domain}");
    set_field(&mut record, "whois_url", whois_url.into());
    let tld = domain.rsplit('.').next().unwrap_or_default();
    set_field(&mut record, "tld", tld.into());
    record
}

fn investigate_records() -> &'static [Value] {
    records(&fixtures().iris_investigate, "/response/results")
}

fn recorded(list: &'static [Value], domain: &str) -> Option<&'static Value> {
    list.iter()
        .find(|record| record["domain"].as_str() == Some(domain))
}

fn template() -> Option<&'static Value> {
    recorded(investigate_records(), TEMPLATE_DOMAIN)
}

/// `POST|GET /v1/iris-investigate/`.
pub(super) fn investigate(ctx: &Context<'_>) -> Outcome {
    let params = ctx.params;
    let search = read_search(params)?;
    let limit_exceeded = || {
        Ok(Answer::ok(
            Envelope::Classic,
            &fixtures().iris_limit_exceeded,
        ))
    };
    // The recorded query that matched too much.
    if params.given("ip") == Some("8.8.8.8") || search.many.is_some_and(|n| n > MANY_LIMIT) {
        return limit_exceeded();
    }
    let page_size = number(params, "page_size", MAX_PAGE_SIZE)?.min(MAX_PAGE_SIZE);
    if page_size == 0 {
        return Err(bad_request());
    }
    let fingerprint = fingerprint(params);
    let offset = match params.given("position") {
        None => 0,
        Some(token) => decode_position(token, &fingerprint).ok_or_else(bad_request)?,
    };

    let synthetic_admitted = template()
        .map(|template| search.admits(&renamed(template, &synthetic_name(1))))
        .unwrap_or(false);
    let mut missing = Vec::new();
    let candidates: Vec<Item> = match (search.many, &search.domains) {
        (Some(n), domains) => {
            let wanted: Option<HashSet<&String>> = domains.as_ref().map(|d| d.iter().collect());
            let names: Vec<String> = (1..=n)
                .map(synthetic_name)
                .filter(|name| wanted.as_ref().is_none_or(|set| set.contains(name)))
                .collect();
            if let Some(domains) = domains {
                missing.extend(domains.iter().filter(|d| !names.contains(d)).cloned());
            }
            names.into_iter().map(Item::Synthetic).collect()
        }
        (None, Some(domains)) => domains
            .iter()
            .filter_map(|domain| {
                let found = match recorded(investigate_records(), domain) {
                    Some(record) => Some(Item::Recorded(record)),
                    None if is_synthetic(domain) => Some(Item::Synthetic(domain.clone())),
                    None => None,
                };
                if found.is_none() {
                    missing.push(domain.clone());
                }
                found
            })
            .collect(),
        (None, None) => investigate_records().iter().map(Item::Recorded).collect(),
    };
    let matching: Vec<Item> = candidates
        .into_iter()
        .filter(|item| match item {
            Item::Recorded(record) => search.admits(record),
            Item::Synthetic(_) => synthetic_admitted,
        })
        .collect();

    let total = matching.len();
    let results: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(page_size)
        .filter_map(|item| match item {
            Item::Recorded(record) => Some((*record).clone()),
            Item::Synthetic(name) => template().map(|template| renamed(template, name)),
        })
        .collect();
    let next = offset.saturating_add(results.len());
    let has_more = next < total;
    let mut answer = json!({
        "limit_exceeded": false,
        "has_more_results": has_more,
        "message": if has_more { MORE_MESSAGE } else { DONE_MESSAGE },
        "results_count": results.len(),
        "total_count": total,
        "results": results,
        "missing_domains": missing,
    });
    if has_more {
        set_field(
            &mut answer,
            "position",
            encode_position(next, &fingerprint).into(),
        );
    }
    Ok(Answer::response(answer))
}

/// A digest of what the query asks for, so a `position` only continues the query it came
/// from, as the real API's cursors do.
fn fingerprint(params: &Params) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .filter(|(key, _)| !NOT_PART_OF_THE_QUERY.contains(key))
        .collect();
    pairs.sort_unstable();
    let mut digest = Sha256::new();
    for (key, value) in pairs {
        digest.update(key.as_bytes());
        digest.update([0]);
        digest.update(value.as_bytes());
        digest.update([0]);
    }
    hex::encode(&digest.finalize()[..8])
}

fn encode_position(offset: usize, fingerprint: &str) -> String {
    format!("{fingerprint}{offset:08x}")
}

fn decode_position(token: &str, fingerprint: &str) -> Option<usize> {
    let offset = token.strip_prefix(fingerprint)?;
    usize::from_str_radix(offset, 16).ok()
}

/// An Investigate record as Enrich returns it: the same, without any `count`.
fn without_counts(value: &Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(
            members
                .iter()
                .filter(|(key, _)| *key != "count")
                .map(|(key, member)| (key.clone(), without_counts(member)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_counts).collect()),
        other => other.clone(),
    }
}

/// `POST|GET /v1/iris-enrich/`.
pub(super) fn enrich(ctx: &Context<'_>) -> Outcome {
    let domains = domain_list(ctx.params)?;
    let enrich_records = records(&fixtures().iris_enrich, "/response/results");
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for domain in domains {
        let found = if let Some(record) = recorded(enrich_records, &domain) {
            Some(record.clone())
        } else if let Some(record) = recorded(investigate_records(), &domain) {
            Some(without_counts(record))
        } else if is_synthetic(&domain) {
            recorded(enrich_records, TEMPLATE_DOMAIN).map(|template| renamed(template, &domain))
        } else {
            None
        };
        match found {
            Some(record) => results.push(record),
            None => missing.push(domain),
        }
    }
    Ok(Answer::response(json!({
        "limit_exceeded": false,
        "message": DONE_MESSAGE,
        "results_count": results.len(),
        "results": results,
        "missing_domains": missing,
    })))
}

fn pivot_matches(record: &Value, paths: &[&str], wanted: &str) -> bool {
    let wanted = wanted.to_lowercase();
    paths.iter().any(|path| {
        let segments: Vec<&str> = path.split('.').collect();
        let mut found = Vec::new();
        collect(record, &segments, &mut found);
        found.iter().any(|value| {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                _ => return false,
            };
            !text.is_empty() && text.to_lowercase() == wanted
        })
    })
}

/// The values at a pivot path.
fn collect<'a>(value: &'a Value, segments: &[&str], found: &mut Vec<&'a Value>) {
    let Some((first, rest)) = segments.split_first() else {
        found.push(value);
        return;
    };
    if *first == "{contacts}" {
        for contact in CONTACTS.iter().filter_map(|name| value.get(name)) {
            collect(contact, rest, found);
        }
        return;
    }
    match first.strip_suffix("[]") {
        Some(key) => {
            for item in value
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                collect(item, rest, found);
            }
        }
        None => {
            if let Some(child) = value.get(*first) {
                collect(child, rest, found);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrich_is_investigate_without_counts() {
        let investigate = recorded(investigate_records(), "google.com").unwrap();
        let enrich = recorded(
            records(&fixtures().iris_enrich, "/response/results"),
            "google.com",
        )
        .unwrap();
        assert_eq!(&without_counts(investigate), enrich);
    }

    #[test]
    fn pivots_walk_lists_and_contacts() {
        let amazon = recorded(investigate_records(), "amazon.com").unwrap();
        assert!(pivot_matches(
            amazon,
            &["ip[].address.value"],
            "176.32.103.205"
        ));
        assert!(pivot_matches(
            amazon,
            &["{contacts}.email[].value"],
            "HOSTMASTER@amazon.com"
        ));
        assert!(!pivot_matches(amazon, &["adsense.value"], ""));
        assert!(!pivot_matches(amazon, &["no.such[].path"], "x"));
    }

    #[test]
    fn many_values() {
        assert_eq!(many("many-12"), Some(12));
        assert_eq!(many("many-99999999999999999999999"), Some(u64::MAX));
        assert_eq!(many("many-"), None);
        assert_eq!(many("many-1x"), None);
        assert_eq!(many("abc"), None);
    }

    #[test]
    fn positions_belong_to_their_query() {
        let token = encode_position(500, "abcd");
        assert_eq!(decode_position(&token, "abcd"), Some(500));
        assert_eq!(decode_position(&token, "ffff"), None);
        assert_eq!(decode_position("abcdzz", "abcd"), None);
    }
}
