//! One Iris record as MISP entries, shared by DomainTools-Iris-Investigate, -Iris-Enrich and
//! -Iris-Pivot (the reference's `iris_hover`): in the reference's order, with its labels,
//! types, comments, tags and both kinds of guided-pivot entry, for hovers and stored results alike.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{iris_error, Context, Input, ModuleError, Reply};
use crate::domain::registrable_domain;
use crate::misp::{Entry, Payload};
use crate::pyfmt::{self, is_truthy, list, truthy};

/// Which Iris product answered: Investigate records carry guided-pivot counts and get the
/// infrastructure entries; Enrich records have values only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    /// Iris Investigate.
    Investigate,
    /// Iris Enrich.
    Enrich,
}

/// The reference's fixed guided-pivot window for hover entries: `1 < count <= 500`
/// (not the configurable Iris-Pivot threshold).
const GUIDED_PIVOT_MIN: i64 = 1;
const GUIDED_PIVOT_MAX: i64 = 500;

/// Looks the value's registrable domain up in Iris and maps the record.
pub(crate) async fn run(
    ctx: Context,
    input: Input,
    product: Product,
) -> Result<Reply, ModuleError> {
    let domain = checked_domain(&input.value)?;
    let response = match product {
        Product::Investigate => {
            ctx.client
                .iris_investigate(ctx.caller(), &[("domain", domain.as_str())])
                .await
        }
        Product::Enrich => {
            ctx.client
                .iris_enrich(ctx.caller(), &[domain.as_str()])
                .await
        }
    }
    .map_err(iris_error)?;
    let record = response
        .results
        .last()
        .map(domaintools::Record::value)
        .ok_or_else(|| ModuleError::NoResults("No results found.".into()))?;
    let payload = map(&domain, &record, product, ctx.now);
    Ok(ctx.reply(payload))
}

/// The registrable domain of a domain-like value, or a clear error.
pub(crate) fn lookup_domain(value: &str) -> Result<String, ModuleError> {
    registrable_domain(value).ok_or_else(|| {
        ModuleError::Input(format!(
            "{} has no registrable domain to look up (IP addresses, bare suffixes and local names have none).",
            domaintools::classic::shown(value)
        ))
    })
}

/// The registrable domain to send to Iris, checked like the one the classic modules put in a
/// path: a comma in it would make Iris look up several domains (charged to the caller), and
/// other characters no domain has are refused rather than sent.
pub(crate) fn checked_domain(value: &str) -> Result<String, ModuleError> {
    let domain = lookup_domain(value)?;
    domaintools::classic::validate_domain(&domain)
        .map_err(|e| ModuleError::Input(e.to_string()))?;
    Ok(domain)
}

/// Maps one Iris record (for registrable domain `domain`, seen at `now`) to MISP entries.
pub fn map(domain: &str, record: &Value, product: Product, now: DateTime<Utc>) -> Payload {
    let mut p = Payload::new();
    let iris = ["DomainTools", "Iris"];

    if let Some(created) = nested_value(record, "create_date").filter(|v| *v != "") {
        let created_text = pyfmt::py_str(created);
        p.push(Entry::new(
            &["datetime"],
            "Create Date",
            format!("{created_text} 00:00:00"),
            "Create Date from DomainTools",
            &["DomainTools", "Create Date"],
        ));
        if let Some(age) = pyfmt::age(&created_text, now) {
            p.push(Entry::new(
                &["text"],
                "Domain Age",
                format!("{domain} created {age} ago"),
                "Domain Age from DomainTools",
                &["DomainTools", "Domain Age"],
            ));
        }
    }
    if let Some(expires) = nested_value(record, "expiration_date").filter(|v| *v != "") {
        p.push(Entry::new(
            &["datetime"],
            "Expiration Date",
            format!("{} 00:00:00", pyfmt::py_str(expires)),
            "Expiration Date from DomainTools",
            &["DomainTools", "Expiration Date"],
        ));
    }
    if let Some(contact) = truthy(record, "registrant_contact") {
        if let Some(name) = contact.get("name").and_then(|n| truthy(n, "value")) {
            p.push(Entry::new(
                &["text"],
                "Registrant Name",
                name.clone(),
                "registrant name from DomainTools",
                &iris,
            ));
        }
        for email in list(contact, "email") {
            if let Some(value) = truthy(email, "value") {
                p.push(Entry::new(
                    &["whois-registrant-email"],
                    "Registrant Email",
                    value.clone(),
                    "Registrant Email from DomainTools",
                    &iris,
                ));
            }
        }
    }
    if let Some(registrar) = truthy(record, "registrar").and_then(|r| truthy(r, "value")) {
        p.push(Entry::new(
            &["text"],
            "Registrar Name",
            registrar.clone(),
            "Registrar from DomainTools",
            &iris,
        ));
    }
    if let Some(org) = truthy(record, "registrant_org").and_then(|o| truthy(o, "value")) {
        p.push(Entry::new(
            &["text"],
            "Registrant Organization",
            org.clone(),
            "Registrant Organization from DomainTools",
            &["DomainTools", "Iris", "registrant org"],
        ));
    }
    if let Some(risk) = truthy(record, "domain_risk") {
        if let Some(score) = truthy(risk, "risk_score") {
            p.push(Entry::new(
                &["text"],
                "Risk Score",
                score.clone(),
                "Risk from DomainTools",
                &iris,
            ));
        }
        let mut threats: Vec<String> = Vec::new();
        let mut evidence: Vec<String> = Vec::new();
        for component in list(risk, "components") {
            let name = component.get("name").map(pyfmt::py_str).unwrap_or_default();
            let score = component
                .get("risk_score")
                .map(pyfmt::py_str)
                .unwrap_or_else(|| "None".into());
            p.push(Entry::new(
                &["text"],
                "Risk Score Component",
                format!("{name} ({score})"),
                "Risk Score Component from DomainTools",
                &iris,
            ));
            threats.extend(list(component, "threats").iter().map(pyfmt::py_str));
            evidence.extend(list(component, "evidence").iter().map(pyfmt::py_str));
        }
        for (items, label, comment) in [
            (
                threats,
                "Risk Score Component Threats",
                "Risk Score Threats from DomainTools",
            ),
            (
                evidence,
                "Risk Score Component Evidence",
                "Risk Score Evidence from DomainTools",
            ),
        ] {
            let mut items = items;
            items.sort();
            items.dedup();
            if !items.is_empty() {
                p.push(Entry::new(
                    &["text"],
                    label,
                    items.join(", "),
                    comment,
                    &iris,
                ));
            }
        }
    }
    for ssl in list(record, "ssl_info") {
        if let Some(org) = ssl.get("organization").and_then(|o| truthy(o, "value")) {
            p.push(Entry::new(
                &["text"],
                "SSL Org",
                org.clone(),
                "SSL Org from DomainTools",
                &iris,
            ));
        }
    }
    if truthy(record, "active").is_some() {
        p.push(
            Entry::new(
                &["text"],
                "Active",
                "True",
                "Active from DomainTools",
                &iris,
            )
            .categories(None),
        );
    }
    if let Some(rank) = truthy(record, "popularity_rank") {
        p.push(Entry::new(
            &["text"],
            "Rank",
            rank.clone(),
            "Rank from DomainTools",
            &iris,
        ));
    }

    if product == Product::Investigate {
        for ip in list(record, "ip") {
            for (key, types, label, comment) in [
                (
                    "address",
                    "ip-dst",
                    "IP Address",
                    "IP address from DomainTools",
                ),
                (
                    "country_code",
                    "text",
                    "IP Country Code",
                    "country code from DomainTools",
                ),
                ("isp", "text", "IP ISP", "ISP from DomainTools"),
            ] {
                if let Some(value) = ip.get(key).and_then(|v| truthy(v, "value")) {
                    p.push(Entry::new(&[types], label, value.clone(), comment, &iris));
                }
            }
        }
        for name_server in list(record, "name_server") {
            if let Some(host) = name_server.get("host").and_then(|h| truthy(h, "value")) {
                p.push(Entry::new(
                    &["hostname"],
                    "Name Server",
                    host.clone(),
                    "Name Server from DomainTools",
                    &iris,
                ));
            }
        }
        // The reference shows only the first two mail servers in the popover.
        for mx in list(record, "mx").iter().take(2) {
            if let Some(host) = mx.get("host").and_then(|h| truthy(h, "value")) {
                p.push(Entry::new(
                    &["text"],
                    "Mail Server Host",
                    host.clone(),
                    "Mail Server from DomainTools",
                    &iris,
                ));
            }
        }
        if let Some(created) = truthy(record, "create_date") {
            guided_or_value(&mut p, created, "create date");
        }
    }

    // The guided-pivot pass: counts in 2..=500 become "Guided Pivot" entries, the rest values.
    for (key, label) in [
        ("technical_contact", "technical contact"),
        ("admin_contact", "admin contact"),
        ("billing_contact", "billing contact"),
    ] {
        if let Some(contact) = truthy(record, key) {
            each_field(&mut p, contact, label);
        }
    }
    for (key, label) in [
        ("redirect_domain", "redirect domain"),
        ("registrar", "registrar"),
        ("google_analytics", "google analytics"),
    ] {
        if let Some(value) = truthy(record, key) {
            guided_or_value(&mut p, value, label);
        }
    }
    for (key, label) in [
        ("registrant_contact", "registrant contact"),
        ("registrant_org", "registrant organization"),
        ("registrant_name", "registrant name"),
    ] {
        if let Some(value) = truthy(record, key) {
            each_field(&mut p, value, label);
        }
    }
    for (key, label) in [("ip", "ip"), ("ssl_info", "ssl"), ("mx", "mx")] {
        for item in list(record, key) {
            each_field(&mut p, item, label);
        }
    }
    for email_domain in list(record, "email_domain") {
        guided_or_value(&mut p, email_domain, "email domain");
    }
    for name_server in list(record, "name_server") {
        each_field(&mut p, name_server, "name server");
    }
    p
}

/// `record[key]["value"]` when both exist (the reference's `safe_path`: 0 and null pass).
fn nested_value<'a>(record: &'a Value, key: &str) -> Option<&'a Value> {
    record.get(key)?.get("value")
}

/// The reference's `get_count_or_value`: every field of an object, labelled "{label} {key}".
fn each_field(p: &mut Payload, object: &Value, label: &str) {
    if let Some(map) = object.as_object() {
        for (key, value) in map {
            guided_or_value(p, value, &format!("{label} {key}"));
        }
    }
}

/// The reference's `extract_nested_value`: a `{value, count}` becomes a Guided Pivot entry when
/// `1 < count <= 500`, otherwise a value entry; lists are walked; scalars are ignored.
fn guided_or_value(p: &mut Payload, value: &Value, label: &str) {
    if !is_truthy(value) {
        return;
    }
    if let Value::Array(items) = value {
        for item in items {
            guided_or_value(p, item, label);
        }
        return;
    }
    let Value::Object(object) = value else {
        return;
    };
    let types: &[&'static str] = &[attribute_type(label)];
    let count = object.get("count").and_then(Value::as_i64);
    if let Some(count) = count.filter(|c| *c > GUIDED_PIVOT_MIN && *c <= GUIDED_PIVOT_MAX) {
        let title = pyfmt::title(label);
        let described = Entry::new(
            types,
            title.clone(),
            object.get("value").cloned().unwrap_or(Value::Null),
            format!("{title} from Domaintools; Guided Pivot: ~{count} domains share this value."),
            &["DomainTools", "Guided Pivot"],
        );
        p.push(
            Entry::new(
                types,
                "Guided Pivot",
                format!("{label} (~{count} domains share this value.)"),
                "Guided Pivot",
                &["DomainTools", "Guided Pivot"],
            )
            .stored_as(described),
        );
    } else {
        let title = pyfmt::title(label);
        p.push(Entry::new(
            types,
            title.clone(),
            object.get("value").cloned().unwrap_or(Value::Null),
            format!("{title} from Domaintools"),
            &["DomainTools", &title],
        ));
    }
}

/// The reference's `ATTRIBUTE_TYPES_MAP`: hostnames and IPs get their MISP types, the rest text.
fn attribute_type(label: &str) -> &'static str {
    match label {
        "email domain" | "mx host" | "mx domain" | "name server host" | "name server domain" => {
            "hostname"
        }
        "ip address" | "mx ip" | "name server ip" => "ip-dst",
        _ => "text",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn guided_pivot_window_is_two_to_five_hundred() {
        let mut p = Payload::new();
        for count in [0, 1, 2, 500, 501] {
            guided_or_value(
                &mut p,
                &json!({"value": format!("v{count}"), "count": count}),
                "ip address",
            );
        }
        let labels: Vec<_> = p
            .entries()
            .iter()
            .map(|e| (e.label.as_str(), e.types[0]))
            .collect();
        assert_eq!(
            labels,
            [
                ("Ip Address", "ip-dst"),
                ("Ip Address", "ip-dst"),
                ("Guided Pivot", "ip-dst"),
                ("Guided Pivot", "ip-dst"),
                ("Ip Address", "ip-dst")
            ]
        );
    }

    #[test]
    fn missing_value_is_kept_as_null() {
        let mut p = Payload::new();
        guided_or_value(&mut p, &json!({"count": 9999}), "registrar");
        assert_eq!(p.entries()[0].value, Value::Null);
        assert_eq!(p.entries()[0].comment, "Registrar from Domaintools");
    }

    #[test]
    fn threats_and_evidence_are_sorted_unions() {
        let record = json!({"domain_risk": {"risk_score": 87, "components": [
            {"name": "threat_profile", "risk_score": 87, "threats": ["phishing", "malware"], "evidence": ["registrant"]},
            {"name": "proximity", "risk_score": 50, "threats": ["malware", "spam"]}
        ]}});
        let p = map("x.com", &record, Product::Enrich, Utc::now());
        let shown: Vec<_> = p
            .entries()
            .iter()
            .map(|e| (e.label.as_str(), e.value.clone()))
            .collect();
        assert_eq!(
            shown,
            [
                ("Risk Score", json!(87)),
                ("Risk Score Component", json!("threat_profile (87)")),
                ("Risk Score Component", json!("proximity (50)")),
                (
                    "Risk Score Component Threats",
                    json!("malware, phishing, spam")
                ),
                ("Risk Score Component Evidence", json!("registrant")),
            ]
        );
    }

    #[test]
    fn inactive_zero_rank_and_zero_risk_are_omitted() {
        let record = json!({"active": false, "popularity_rank": 0, "domain_risk": {"risk_score": 0, "components": []}});
        assert!(map("x.com", &record, Product::Investigate, Utc::now()).is_empty());
    }

    #[test]
    fn mail_servers_are_capped_at_two_for_investigate() {
        let mx = |h: &str| json!({"host": {"value": h, "count": 9999}, "domain": {"value": "", "count": 0}, "ip": [], "priority": 10});
        let record = json!({"mx": [mx("a.example"), mx("b.example"), mx("c.example")]});
        let p = map("x.com", &record, Product::Investigate, Utc::now());
        let hosts = p
            .entries()
            .iter()
            .filter(|e| e.label == "Mail Server Host")
            .count();
        assert_eq!(hosts, 2);
        let mx_hosts = p.entries().iter().filter(|e| e.label == "Mx Host").count();
        assert_eq!(mx_hosts, 3, "the guided-pivot pass is not capped");
    }
}
