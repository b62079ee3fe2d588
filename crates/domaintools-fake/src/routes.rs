//! Which endpoint a path is, and the classic lookups (whois, profiles, risk, reverse IP and
//! whois, account). Routing is by hand rather than by axum routes because every path takes an
//! optional trailing slash, fixed names win over `/v1/{domain}`, and a bad domain is a 400.

use std::convert::identity;
use std::net::IpAddr;

use axum::http::Method;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::{json, Value};

use super::answer::{Answer, Envelope};
use super::auth::percent_decode;
use super::data::{fixtures, records, set_field};
use super::params::{BodyProblem, Params};
use super::{detect, iris};

/// First path segments after `/v1/` that name an endpoint, never a domain: a path under one of
/// them that no route serves is an unknown endpoint, not a domain profile.
const RESERVED: &[&str] = &[
    "account",
    "iris",
    "iris-investigate",
    "iris-enrich",
    "iris-detect",
    "risk",
    "reputation",
    "reverse-whois",
    "reverse-ip-whois",
    "domain-history",
    "domain-search",
    "feed",
    "download",
    "mark-alert",
    "registrant-alert",
    "ip-monitor",
    "ip-registrant-monitor",
    "name-server-monitor",
];

/// Whois history records per page, at most (API docs).
const HISTORY_PAGE: usize = 100;
/// How far back each round of repeated whois history records is moved.
const HISTORY_ROUND_YEARS: i32 = 6;

/// An authenticated request, as the endpoints see it.
#[derive(Debug)]
pub(super) struct Context<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub params: &'a Params,
    /// The account the credentials belong to.
    pub account: &'a str,
    pub now: DateTime<Utc>,
    pub body_problem: Option<BodyProblem>,
    /// Limits replacing the recorded ones in `/v1/account`.
    pub per_minute_limits: &'a std::collections::BTreeMap<String, u32>,
}

type Outcome = Result<Answer, Answer>;

/// The answer an authenticated request gets when no fault is injected.
pub(super) fn answer(ctx: &Context<'_>) -> Answer {
    let family = Envelope::of(ctx.path);
    if ctx.body_problem.is_some() {
        return Answer::bad_request(family);
    }
    let trimmed = match ctx.path.strip_suffix('/') {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => ctx.path,
    };
    let segments: Vec<&str> = trimmed.split('/').collect();
    let Some(("", segments)) = segments.split_first().map(|(first, rest)| (*first, rest)) else {
        return Answer::unknown_path(family);
    };
    use Method as M;
    let outcome = match segments {
        ["v1", "account"] => allow(ctx, &[M::GET], account),
        ["v1", "iris-investigate"] => allow(ctx, &[M::GET, M::POST], iris::investigate),
        ["v1", "iris-enrich"] => allow(ctx, &[M::GET, M::POST], iris::enrich),
        ["v1", "iris-detect", "monitors"] => allow(ctx, &[M::GET], detect::monitors),
        ["v1", "iris-detect", "domains"] => allow(ctx, &[M::PATCH], detect::manage),
        ["v1", "iris-detect", "domains", list @ ("new" | "watched" | "ignored")] => {
            allow(ctx, &[M::GET], |ctx| detect::list(ctx, list))
        }
        ["v1", "iris-detect", "escalations"] => allow(ctx, &[M::POST], detect::escalate),
        ["v1", "risk"] => allow(ctx, &[M::GET], risk),
        ["v1", "risk", "evidence"] => allow(ctx, &[M::GET], risk_evidence),
        ["v1", "reputation"] => allow(ctx, &[M::GET], reputation),
        ["v1", "reverse-whois"] => allow(ctx, &[M::GET], reverse_whois),
        ["v1", first, ..] if RESERVED.contains(first) => Err(Answer::unknown_path(family)),
        ["v1", target, "whois"] => allow(ctx, &[M::GET], |_| whois(target)),
        ["v1", target, "whois", "parsed"] => allow(ctx, &[M::GET], |_| parsed_whois(target)),
        ["v1", target, "whois", "history"] => {
            allow(ctx, &[M::GET], |ctx| whois_history(ctx, target))
        }
        ["v1", target, "hosting-history"] => allow(ctx, &[M::GET], |_| hosting_history(target)),
        ["v1", target, "reverse-ip"] => allow(ctx, &[M::GET], |ctx| reverse_ip(ctx, target)),
        ["v1", target, "host-domains"] => allow(ctx, &[M::GET], |ctx| host_domains(ctx, target)),
        ["v1", target] => allow(ctx, &[M::GET], |_| domain_profile(target)),
        _ => Err(Answer::unknown_path(family)),
    };
    outcome.unwrap_or_else(identity)
}

/// Runs `endpoint` if the method is one it serves (HEAD counting as GET).
fn allow(
    ctx: &Context<'_>,
    methods: &[Method],
    endpoint: impl FnOnce(&Context<'_>) -> Outcome,
) -> Outcome {
    let method = if ctx.method == Method::HEAD {
        &Method::GET
    } else {
        ctx.method
    };
    if methods.contains(method) {
        endpoint(ctx)
    } else {
        Err(Answer::method_not_allowed(Envelope::of(ctx.path)))
    }
}

// ---- helpers shared with the Iris endpoints -------------------------------------------------

/// A domain as DomainTools compares them (lowercase, no trailing dot), or `None` when the text
/// is not shaped like a domain name: the real API answers those with a 400 (`/v1/ss/…`).
pub(super) fn normalize_domain(raw: &str) -> Option<String> {
    let decoded = percent_decode(raw).unwrap_or_else(|| raw.to_owned());
    let name = decoded.trim().trim_end_matches('.').to_lowercase();
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    };
    (name.len() <= 253 && name.contains('.') && name.split('.').all(valid_label)).then_some(name)
}

/// A boolean parameter (`true`/`false`, as the client sends them, or `1`/`0`).
pub(super) fn flag(params: &Params, name: &str) -> Result<bool, Answer> {
    match params.given(name).map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(_) => Err(Answer::bad_request(Envelope::Classic)),
    }
}

/// A non-negative integer parameter, `default` when absent.
pub(super) fn number(params: &Params, name: &str, default: usize) -> Result<usize, Answer> {
    match params.given(name) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| Answer::bad_request(Envelope::Classic)),
    }
}

/// The recorded answer when the target is `known`, the recorded 404 for any other valid
/// domain or IP address, the recorded 400 for a value that is neither.
fn recorded_for(raw: &str, known: &str, fixture: &Value) -> Outcome {
    let domain = normalize_domain(raw)
        .or_else(|| ip_address(raw).map(|ip| ip.to_string()))
        .ok_or_else(|| Answer::bad_request(Envelope::Classic))?;
    if domain == known {
        Ok(Answer::ok(Envelope::Classic, fixture))
    } else {
        Err(Answer::no_data())
    }
}

// ---- classic endpoints ----------------------------------------------------------------------

/// The recorded account, answered as the account that asked.
fn account(ctx: &Context<'_>) -> Outcome {
    let mut account = fixtures().account.clone();
    if let Some(products) = account
        .pointer_mut("/response/products")
        .and_then(Value::as_array_mut)
    {
        for product in products {
            let id = product["id"].as_str().unwrap_or_default().to_owned();
            if let Some(limit) = ctx.per_minute_limits.get(&id) {
                product["per_minute_limit"] = Value::from(limit.to_string());
                product["per_hour_limit"] = Value::Null;
            }
        }
    }
    if let Some(username) = account.pointer_mut("/response/account/api_username") {
        *username = Value::from(ctx.account);
    }
    Ok(Answer::ok(Envelope::Classic, &account))
}

fn whois(raw: &str) -> Outcome {
    recorded_for(raw, "google.com", &fixtures().whois)
}

fn parsed_whois(raw: &str) -> Outcome {
    recorded_for(raw, "google.com", &fixtures().parsed_whois)
}

fn hosting_history(raw: &str) -> Outcome {
    recorded_for(raw, "google.com", &fixtures().hosting_history)
}

fn domain_profile(raw: &str) -> Outcome {
    recorded_for(raw, "google.com", &fixtures().domain_profile)
}

/// woot.com's history, paged with `offset`/`limit` and ordered by `sort`.
fn whois_history(ctx: &Context<'_>, raw: &str) -> Outcome {
    let domain = normalize_domain(raw).ok_or_else(|| Answer::bad_request(Envelope::Classic))?;
    if domain != "woot.com" {
        return Err(Answer::no_data());
    }
    let offset = number(ctx.params, "offset", 0)?;
    let limit = number(ctx.params, "limit", HISTORY_PAGE)?.min(HISTORY_PAGE);
    let ascending = match ctx.params.given("sort") {
        None | Some("date_desc") => false,
        Some("date_asc") => true,
        Some(_) => return Err(Answer::bad_request(Envelope::Classic)),
    };
    let fixture = &fixtures().whois_history;
    let recorded = records(fixture, "/response/history");
    let total = fixture
        .pointer("/response/record_count")
        .and_then(Value::as_u64)
        .and_then(|count| usize::try_from(count).ok())
        .unwrap_or(recorded.len());
    let history: Vec<Value> = (offset..total.min(offset.saturating_add(limit)))
        .filter_map(|position| {
            let newest_first = if ascending {
                total - 1 - position
            } else {
                position
            };
            history_record(recorded, newest_first)
        })
        .collect();
    Ok(Answer::response(
        json!({ "record_count": total, "history": history }),
    ))
}

/// Record `index` (0 = newest) of the history: the recorded ones, then rounds of them moved
/// back in time so the full `record_count` exists and stays in date order.
fn history_record(recorded: &[Value], index: usize) -> Option<Value> {
    let mut record = recorded.get(index % recorded.len().max(1))?.clone();
    let rounds = i32::try_from(index / recorded.len()).ok()?;
    if rounds > 0 {
        let date = record.get("date").and_then(Value::as_str)?;
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
        let year = date.year() - rounds * HISTORY_ROUND_YEARS;
        let moved = date
            .with_year(year)
            .or_else(|| NaiveDate::from_ymd_opt(year, date.month(), 28))?;
        set_field(
            &mut record,
            "date",
            moved.format("%Y-%m-%d").to_string().into(),
        );
    }
    Some(record)
}

/// Keeps at most `limit` names in one `{ip_address, domain_count, domain_names}` entry: the
/// API applies the limit per IP address.
fn limit_names(entry: &mut Value, limit: Option<usize>) {
    if let (Some(limit), Some(names)) = (
        limit,
        entry.get_mut("domain_names").and_then(Value::as_array_mut),
    ) {
        names.truncate(limit);
    }
}

fn optional_limit(params: &Params) -> Result<Option<usize>, Answer> {
    match params.given("limit") {
        None => Ok(None),
        Some(_) => number(params, "limit", 0).map(Some),
    }
}

fn reverse_ip(ctx: &Context<'_>, raw: &str) -> Outcome {
    let domain = normalize_domain(raw).ok_or_else(|| Answer::bad_request(Envelope::Classic))?;
    if domain != "google.com" {
        return Err(Answer::no_data());
    }
    let limit = optional_limit(ctx.params)?;
    let mut answer = fixtures().reverse_ip.clone();
    if let Some(entries) = answer
        .pointer_mut("/response/ip_addresses")
        .and_then(Value::as_array_mut)
    {
        entries
            .iter_mut()
            .for_each(|entry| limit_names(entry, limit));
    }
    Ok(Answer::ok(Envelope::Classic, &answer))
}

/// An IP address path value (IPv6 ones arrive percent-encoded only if the client chose to).
fn ip_address(raw: &str) -> Option<IpAddr> {
    let decoded = percent_decode(raw).unwrap_or_else(|| raw.to_owned());
    decoded.trim().parse().ok()
}

fn host_domains(ctx: &Context<'_>, raw: &str) -> Outcome {
    let ip = ip_address(raw).ok_or_else(|| Answer::bad_request(Envelope::Classic))?;
    if ip.to_string() != "199.30.228.112" {
        return Err(Answer::no_data());
    }
    let limit = optional_limit(ctx.params)?;
    let mut answer = fixtures().host_domains.clone();
    if let Some(entry) = answer.pointer_mut("/response/ip_addresses") {
        limit_names(entry, limit);
    }
    Ok(Answer::ok(Envelope::Classic, &answer))
}

/// The `domain` parameter of risk and reputation, required.
fn domain_param(params: &Params) -> Result<String, Answer> {
    params
        .given("domain")
        .and_then(normalize_domain)
        .ok_or_else(|| Answer::bad_request(Envelope::Classic))
}

fn risk(ctx: &Context<'_>) -> Outcome {
    match domain_param(ctx.params)?.as_str() {
        "google.com" => Ok(Answer::ok(Envelope::Classic, &fixtures().risk_zerolist)),
        "hug.rest" => Ok(Answer::ok(Envelope::Classic, &fixtures().risk)),
        _ => Err(Answer::no_data()),
    }
}

/// Risk evidence has the risk answer's shape; hug.rest's recorded risk stands in for it.
fn risk_evidence(ctx: &Context<'_>) -> Outcome {
    match domain_param(ctx.params)?.as_str() {
        "google.com" => Ok(Answer::ok(Envelope::Classic, &fixtures().risk_evidence)),
        "hug.rest" => Ok(Answer::ok(Envelope::Classic, &fixtures().risk)),
        _ => Err(Answer::no_data()),
    }
}

fn reputation(ctx: &Context<'_>) -> Outcome {
    let domain = domain_param(ctx.params)?;
    let include_reasons = flag(ctx.params, "include_reasons")?;
    let (mut answer, reasons) = match domain.as_str() {
        "google.com" => (fixtures().reputation["response"].clone(), json!([])),
        "hug.rest" => (
            json!({ "domain": "hug.rest", "risk_score": 100 }),
            json!(["domain name", "registrant", "name server"]),
        ),
        _ => return Err(Answer::no_data()),
    };
    if include_reasons {
        set_field(&mut answer, "reasons", reasons);
    }
    Ok(Answer::response(answer))
}

/// The recorded purchase for terms mentioning "google", zero counts for anything else;
/// `mode=quote` leaves out the domain list, as the API does.
fn reverse_whois(ctx: &Context<'_>) -> Outcome {
    let bad = || Answer::bad_request(Envelope::Classic);
    let terms = ctx.params.given("terms").ok_or_else(bad)?;
    let purchase = match ctx.params.given("mode") {
        None | Some("purchase") => true,
        Some("quote") => false,
        Some(_) => return Err(bad()),
    };
    if !matches!(
        ctx.params.given("scope"),
        None | Some("current" | "historic")
    ) {
        return Err(bad());
    }
    let matches_recording = terms
        .split('|')
        .any(|term| term.to_lowercase().contains("google"));
    if matches_recording && purchase {
        return Ok(Answer::ok(Envelope::Classic, &fixtures().reverse_whois));
    }
    let recorded = &fixtures().reverse_whois["response"];
    let zero = json!({ "current": 0, "historic": 0 });
    let pick = |key: &str| {
        if matches_recording {
            recorded[key].clone()
        } else {
            zero.clone()
        }
    };
    let mut answer = json!({
        "domain_count": pick("domain_count"),
        "report_price": pick("report_price"),
        "report_cost": pick("report_cost"),
    });
    if purchase {
        set_field(&mut answer, "domains", json!([]));
    }
    Ok(Answer::response(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_shapes() {
        assert_eq!(
            normalize_domain("Google.COM.").as_deref(),
            Some("google.com")
        );
        assert_eq!(
            normalize_domain("b%C3%BCcher.de").as_deref(),
            Some("bücher.de")
        );
        assert_eq!(
            normalize_domain("199.30.228.112").as_deref(),
            Some("199.30.228.112")
        );
        for bad in [
            "ss", "", ".", "a..b", "-a.com", "a b.com", "a/b.com", "%", "x.c%om",
        ] {
            assert_eq!(normalize_domain(bad), None, "{bad:?}");
        }
        assert_eq!(normalize_domain(&"a.".repeat(200)), None);
    }

    #[test]
    fn history_rounds_move_back_in_time() {
        let recorded = records(&fixtures().whois_history, "/response/history");
        let date = |index| {
            history_record(recorded, index).unwrap()["date"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(date(0), "2026-01-13");
        assert_eq!(date(100), "2020-01-13");
        assert_eq!(date(200), "2014-01-13");
        let dates: Vec<String> = (0..624).map(date).collect();
        assert!(dates.windows(2).all(|pair| pair[0] >= pair[1]));
    }
}
