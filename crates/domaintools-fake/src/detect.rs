//! Iris Detect over the recorded monitors and new/watched/ignored lists: the list filters,
//! `offset`/`limit` paging, synthetic `include_domain_data` fields, and escalate/watch answers.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::answer::{Answer, Envelope};
use super::auth::parse_timestamp;
use super::data::{fixtures, records, set_field};
use super::params::Params;
use super::routes::{flag, number, Context};

/// The most domains a list page holds, and the default page size.
const MAX_LIMIT: usize = 100;
/// The most domains a page holds with `include_domain_data=true`.
const MAX_LIMIT_WITH_DATA: usize = 50;
/// The most domains a `preview=true` page holds.
const PREVIEW_LIMIT: usize = 10;
/// The monitor list's page size when none is asked for (what the recording echoes).
const MONITORS_LIMIT: usize = 500;

const ESCALATION_TYPES: [&str; 2] = ["blocked", "google_safe"];
const SORT_FIELDS: [&str; 3] = ["discovered_date", "changed_date", "risk_score"];

type Outcome = Result<Answer, Answer>;

fn bad_request() -> Answer {
    Answer::bad_request(Envelope::Detect)
}

/// A date parameter as the clients send them: `YYYY-MM-DD`, RFC 3339, the Python client's
/// `2024-01-01 00:00:00+00:00`, or an offset whose `+` an unescaped query turned into a space.
fn parse_when(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return day.and_hms_opt(0, 0, 0).map(|midnight| midnight.and_utc());
    }
    let mut candidates = vec![text.to_owned()];
    if let Some((day, time)) = text.split_once(' ') {
        candidates.push(format!("{day}T{time}"));
    }
    for candidate in candidates.clone() {
        if let Some(space) = candidate.rfind(' ') {
            let mut restored = candidate;
            restored.replace_range(space..=space, "+");
            candidates.push(restored);
        }
    }
    candidates.iter().find_map(|candidate| {
        parse_timestamp(candidate).or_else(|| {
            NaiveDateTime::parse_from_str(candidate, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|naive| naive.and_utc())
        })
    })
}

fn date_param(params: &Params, name: &str) -> Result<Option<DateTime<Utc>>, Answer> {
    params
        .given(name)
        .map(|text| parse_when(text).ok_or_else(bad_request))
        .transpose()
}

fn date_field(domain: &Value, name: &str) -> Option<DateTime<Utc>> {
    domain[name].as_str().and_then(parse_when)
}

/// The filters of a domain list request.
#[derive(Debug, Default)]
struct Filters<'a> {
    monitor_id: Option<&'a str>,
    tlds: Vec<String>,
    risk_ranges: Vec<(i64, i64)>,
    mx_exists: Option<bool>,
    discovered_since: Option<DateTime<Utc>>,
    discovered_before: Option<DateTime<Utc>>,
    changed_since: Option<DateTime<Utc>>,
    escalated_since: Option<DateTime<Utc>>,
    escalation_types: Vec<&'a str>,
    search: Option<String>,
    domain_state: Option<&'a str>,
}

impl<'a> Filters<'a> {
    fn read(params: &'a Params) -> Result<Self, Answer> {
        let risk_ranges = params
            .split_list("risk_score_ranges")
            .into_iter()
            .map(|range| {
                let (low, high) = range.split_once('-').ok_or_else(bad_request)?;
                let low = low.trim().parse().map_err(|_| bad_request())?;
                let high = high.trim().parse().map_err(|_| bad_request())?;
                Ok((low, high))
            })
            .collect::<Result<Vec<_>, Answer>>()?;
        let mx_exists = match params.given("mx_exists") {
            None => None,
            Some(_) => Some(flag(params, "mx_exists").map_err(|_| bad_request())?),
        };
        Ok(Self {
            monitor_id: params.given("monitor_id"),
            tlds: params
                .split_list("tlds")
                .into_iter()
                .map(|tld| tld.trim_start_matches('.').to_lowercase())
                .collect(),
            risk_ranges,
            mx_exists,
            discovered_since: date_param(params, "discovered_since")?,
            discovered_before: date_param(params, "discovered_before")?,
            changed_since: date_param(params, "changed_since")?,
            escalated_since: date_param(params, "escalated_since")?,
            escalation_types: params.split_list("escalation_types"),
            search: params.given("search").map(str::to_lowercase),
            domain_state: params.given("domain_state"),
        })
    }

    fn admit(&self, domain: &Value) -> bool {
        let escalations = domain["escalations"].as_array().map(Vec::as_slice);
        let escalations = escalations.unwrap_or_default();
        let on_or_after = |name: &str, since: Option<DateTime<Utc>>| {
            since.is_none_or(|since| date_field(domain, name).is_some_and(|date| date >= since))
        };
        self.monitor_id.is_none_or(|wanted| {
            domain["monitor_ids"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(wanted)))
        }) && (self.tlds.is_empty()
            || domain["tld"]
                .as_str()
                .is_some_and(|tld| self.tlds.iter().any(|wanted| wanted == tld)))
            && (self.risk_ranges.is_empty()
                || domain["risk_score"].as_i64().is_some_and(|score| {
                    self.risk_ranges
                        .iter()
                        .any(|(low, high)| (*low..=*high).contains(&score))
                }))
            && self
                .mx_exists
                .is_none_or(|wanted| domain["mx_exists"].as_bool() == Some(wanted))
            && on_or_after("discovered_date", self.discovered_since)
            && self.discovered_before.is_none_or(|before| {
                date_field(domain, "discovered_date").is_some_and(|date| date < before)
            })
            && on_or_after("changed_date", self.changed_since)
            && self.escalated_since.is_none_or(|since| {
                escalations.iter().any(|escalation| {
                    date_field(escalation, "created").is_some_and(|date| date >= since)
                })
            })
            && (self.escalation_types.is_empty()
                || escalations.iter().any(|escalation| {
                    escalation["escalation_type"]
                        .as_str()
                        .is_some_and(|kind| self.escalation_types.contains(&kind))
                }))
            && self.search.as_ref().is_none_or(|needle| {
                domain["domain"]
                    .as_str()
                    .is_some_and(|name| name.to_lowercase().contains(needle.as_str()))
            })
            && self
                .domain_state
                .is_none_or(|state| domain["status"].as_str() == Some(state))
    }
}

/// Orders a list by `sort[]` fields, all in the direction of `order` (default `desc`); with no
/// `sort`, the recorded order stays.
fn sort(domains: &mut [&Value], params: &Params) -> Result<(), Answer> {
    let fields = params.split_list("sort");
    if fields.iter().any(|field| !SORT_FIELDS.contains(field)) {
        return Err(bad_request());
    }
    let descending = match params.given("order") {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(bad_request()),
    };
    if fields.is_empty() {
        return Ok(());
    }
    domains.sort_by(|a, b| {
        let ordering = fields
            .iter()
            .map(|field| match *field {
                "risk_score" => a[*field].as_i64().cmp(&b[*field].as_i64()),
                _ => date_field(a, field).cmp(&date_field(b, field)),
            })
            .find(|ordering| ordering.is_ne())
            .unwrap_or(Ordering::Equal);
        if descending {
            ordering.reverse()
        } else {
            ordering
        }
    });
    Ok(())
}

/// `GET /v1/iris-detect/domains/{new,watched,ignored}/`.
pub(super) fn list(ctx: &Context<'_>, which: &str) -> Outcome {
    let fixture = match which {
        "new" => &fixtures().detect_new,
        "watched" => &fixtures().detect_watched,
        _ => &fixtures().detect_ignored,
    };
    let params = ctx.params;
    let include_data = flag(params, "include_domain_data").map_err(|_| bad_request())?;
    let preview = flag(params, "preview").map_err(|_| bad_request())?;
    let most = if include_data {
        MAX_LIMIT_WITH_DATA
    } else {
        MAX_LIMIT
    };
    let mut limit = number(params, "limit", most)
        .map_err(|_| bad_request())?
        .min(most);
    if preview {
        limit = limit.min(PREVIEW_LIMIT);
    }
    if limit == 0 {
        return Err(bad_request());
    }
    let offset = number(params, "offset", 0).map_err(|_| bad_request())?;
    let filters = Filters::read(params)?;
    let mut matching: Vec<&Value> = records(fixture, "/watchlist_domains")
        .iter()
        .filter(|domain| filters.admit(domain))
        .collect();
    sort(&mut matching, params)?;
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|domain| {
            let mut domain = (*domain).clone();
            if include_data {
                add_domain_data(&mut domain);
            }
            domain
        })
        .collect();
    Ok(Answer::ok(
        Envelope::Detect,
        &json!({
            "watchlist_domains": page,
            "total_count": matching.len(),
            "count": page.len(),
            "offset": offset,
            "limit": limit,
        }),
    ))
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Picks one of `choices` with a digest byte.
fn pick<'a>(choices: &[&'a str], byte: u8) -> &'a str {
    choices
        .get(usize::from(byte) % choices.len().max(1))
        .copied()
        .unwrap_or_default()
}

/// The fields `include_domain_data=true` adds (OpenAPI shapes; never recorded), derived from
/// the domain's name so the same domain always gets the same data.
fn add_domain_data(domain: &mut Value) {
    const REGISTRARS: [&str; 5] = [
        "NameSilo, LLC",
        "NameCheap, Inc.",
        "GoDaddy.com, LLC",
        "Dynadot Inc",
        "Gname.com Pte. Ltd.",
    ];
    const COUNTRIES: [&str; 5] = ["US", "DE", "NL", "SG", "FR"];
    const ISPS: [&str; 4] = [
        "Cloudflare, Inc.",
        "Amazon.com, Inc.",
        "Hetzner Online GmbH",
        "OVH SAS",
    ];
    // RFC 5737 documentation networks: addresses that can never be someone's real host.
    const NETWORKS: [&str; 3] = ["192.0.2", "198.51.100", "203.0.113"];

    let name = domain["domain"].as_str().unwrap_or_default().to_owned();
    let hash = digest(&name);
    let host = |prefix: &str, byte: u8| format!("{prefix}.dns-{}.example", byte % 50);
    let mx = if domain["mx_exists"].as_bool() == Some(true) {
        json!([{ "host": format!("mx.mail-{}.example", hash[1] % 50) }])
    } else {
        json!([])
    };
    let create_date = date_field(domain, "discovered_date")
        .map(|date| date.format("%Y%m%d").to_string())
        .and_then(|day| day.parse::<u64>().ok())
        .unwrap_or(20240101);
    let fields = [
        (
            "name_server",
            json!([{ "host": host("ns1", hash[0]) }, { "host": host("ns2", hash[0]) }]),
        ),
        ("mx", mx),
        (
            "ip",
            json!([{
                "ip": format!("{}.{}", pick(&NETWORKS, hash[2]), 1 + hash[3] % 254),
                "country_code": pick(&COUNTRIES, hash[4]),
                "isp": pick(&ISPS, hash[5]),
            }]),
        ),
        ("registrar", json!(pick(&REGISTRARS, hash[6]))),
        ("create_date", json!(create_date)),
        (
            "registrant_contact_email",
            json!([format!(
                "{}@privacy-proxy.example",
                hex::encode(&hash[8..12])
            )]),
        ),
    ];
    for (key, value) in fields {
        set_field(domain, key, value);
    }
}

/// A record id in DomainTools' style (10 letters and digits), stable for the same inputs.
fn record_id(seed: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    digest(seed)
        .iter()
        .take(10)
        .map(|byte| char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]))
        .collect()
}

/// The fake's clock in the microsecond `+00:00` form the Detect write endpoints answer with.
fn stamp(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// The first recorded answer entry, whose shape (and `created_by`/`assigned_by`) the write
/// endpoints answer with.
fn recorded_template(fixture: &Value, pointer: &str) -> Value {
    records(fixture, pointer)
        .first()
        .cloned()
        .unwrap_or_else(|| json!({}))
}

/// The `watchlist_domain_ids` of a write request: required, none blank.
fn watchlist_ids(params: &Params) -> Result<Vec<&str>, Answer> {
    let ids: Vec<&str> = params
        .list("watchlist_domain_ids")
        .into_iter()
        .map(str::trim)
        .collect();
    if ids.is_empty() || ids.iter().any(|id| id.is_empty()) {
        return Err(bad_request());
    }
    Ok(ids)
}

/// `POST /v1/iris-detect/escalations/`.
pub(super) fn escalate(ctx: &Context<'_>) -> Outcome {
    let kind = ctx
        .params
        .given("escalation_type")
        .filter(|kind| ESCALATION_TYPES.contains(kind))
        .ok_or_else(bad_request)?;
    let ids = watchlist_ids(ctx.params)?;
    let now = stamp(ctx.now);
    let template = recorded_template(&fixtures().detect_escalate, "/escalations");
    let escalations: Vec<Value> = ids
        .iter()
        .map(|id| {
            let mut escalation = template.clone();
            let fields = [
                ("watchlist_domain_id", json!(id)),
                ("escalation_type", json!(kind)),
                ("id", json!(record_id(&format!("escalation:{id}:{kind}")))),
                ("created_date", json!(now)),
                ("updated_date", json!(now)),
            ];
            for (key, value) in fields {
                set_field(&mut escalation, key, value);
            }
            escalation
        })
        .collect();
    Ok(Answer::ok(
        Envelope::Detect,
        &json!({ "escalations": escalations }),
    ))
}

/// The recorded domain with this watchlist id, in any list.
fn recorded_domain(id: &str) -> Option<&'static Value> {
    let f = fixtures();
    [
        &f.detect_new,
        &f.detect_watched,
        &f.detect_ignored,
        &f.detect_manage,
    ]
    .into_iter()
    .flat_map(|fixture| records(fixture, "/watchlist_domains"))
    .find(|domain| domain["id"].as_str() == Some(id))
}

/// `PATCH /v1/iris-detect/domains/`: watch or ignore recorded domains.
pub(super) fn manage(ctx: &Context<'_>) -> Outcome {
    let state = ctx
        .params
        .given("state")
        .filter(|state| matches!(*state, "watched" | "ignored"))
        .ok_or_else(bad_request)?;
    let now = stamp(ctx.now);
    let template = recorded_template(&fixtures().detect_manage, "/watchlist_domains");
    let domains = watchlist_ids(ctx.params)?
        .into_iter()
        .map(|id| {
            let domain = recorded_domain(id).ok_or_else(bad_request)?;
            let mut changed = template.clone();
            let fields = [
                ("state", json!(state)),
                ("domain", domain["domain"].clone()),
                ("discovered_date", domain["discovered_date"].clone()),
                ("changed_date", domain["changed_date"].clone()),
                ("id", json!(id)),
                ("assigned_date", json!(now)),
            ];
            for (key, value) in fields {
                set_field(&mut changed, key, value);
            }
            Ok(changed)
        })
        .collect::<Result<Vec<Value>, Answer>>()?;
    Ok(Answer::ok(
        Envelope::Detect,
        &json!({ "watchlist_domains": domains }),
    ))
}

/// `GET /v1/iris-detect/monitors/`, with per-monitor counts from the recorded lists when
/// `include_counts=true`.
pub(super) fn monitors(ctx: &Context<'_>) -> Outcome {
    let params = ctx.params;
    let offset = number(params, "offset", 0).map_err(|_| bad_request())?;
    let limit = number(params, "limit", MONITORS_LIMIT).map_err(|_| bad_request())?;
    let counts_since = if flag(params, "include_counts").map_err(|_| bad_request())? {
        // The API needs the start of the counting window with `include_counts`.
        Some(date_param(params, "datetime_counts_since")?.ok_or_else(bad_request)?)
    } else {
        None
    };
    let all = records(&fixtures().detect_monitors, "/monitors");
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|monitor| {
            let mut monitor = monitor.clone();
            if let Some(since) = counts_since {
                let counts = domain_counts(monitor["id"].as_str().unwrap_or_default(), since);
                set_field(&mut monitor, "domain_counts", counts);
            }
            monitor
        })
        .collect();
    Ok(Answer::ok(
        Envelope::Detect,
        &json!({
            "total_count": all.len(),
            "offset": offset,
            "limit": limit,
            "monitors": page,
        }),
    ))
}

fn domain_counts(monitor_id: &str, since: DateTime<Utc>) -> Value {
    let f = fixtures();
    let of = |fixture: &'static Value| {
        records(fixture, "/watchlist_domains")
            .iter()
            .filter(move |domain| {
                domain["monitor_ids"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(monitor_id)))
            })
    };
    let after = |domain: &Value, field: &str| date_field(domain, field).is_some_and(|d| d >= since);
    let new = of(&f.detect_new)
        .filter(|d| after(d, "discovered_date"))
        .count();
    let watched = of(&f.detect_watched)
        .filter(|d| after(d, "changed_date"))
        .count();
    let escalated = of(&f.detect_watched)
        .chain(of(&f.detect_ignored))
        .filter(|d| {
            d["escalations"]
                .as_array()
                .is_some_and(|list| list.iter().any(|e| after(e, "created")))
        })
        .count();
    let changed = of(&f.detect_new)
        .chain(of(&f.detect_watched))
        .filter(|d| after(d, "changed_date"))
        .count();
    json!({ "new": new, "watched": watched, "escalated": escalated, "changed": changed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn dates_in_every_form_clients_send() {
        let midnight = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        for text in [
            "2024-01-01",
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00+00:00",
            "2024-01-01 00:00:00+00:00",
            "2024-01-01T00:00:00 00:00",
            "2024-01-01T01:00:00+01:00",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.000000Z",
        ] {
            assert_eq!(parse_when(text), Some(midnight), "{text}");
        }
        assert_eq!(parse_when("yesterday"), None);
        assert_eq!(parse_when("2024-13-01"), None);
    }

    #[test]
    fn domain_data_is_deterministic_and_documentation_only() {
        let mut a = json!({ "domain": "x.com", "mx_exists": true, "discovered_date": "2025-04-05T11:07:35.212000Z" });
        let mut b = a.clone();
        add_domain_data(&mut a);
        add_domain_data(&mut b);
        assert_eq!(a, b);
        assert_eq!(a["create_date"], 20250405);
        assert_eq!(a["mx"].as_array().unwrap().len(), 1);
        let ip = a["ip"][0]["ip"].as_str().unwrap();
        assert!(
            NETWORKS_FOR_TEST.iter().any(|net| ip.starts_with(net)),
            "{ip}"
        );
        let mut not_an_object = json!([1]);
        add_domain_data(&mut not_an_object);
        assert_eq!(not_an_object, json!([1]));
    }

    const NETWORKS_FOR_TEST: [&str; 3] = ["192.0.2.", "198.51.100.", "203.0.113."];

    #[test]
    fn record_ids_look_like_the_apis() {
        let id = record_id("seed");
        assert_eq!(id.len(), 10);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(id, record_id("seed"));
        assert_ne!(id, record_id("other"));
    }
}
