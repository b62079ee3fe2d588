//! How one Iris record is read: the one reading of its fields shared by the STIX mapping
//! (`stix::mapping`) and the MISP objects (`modules::iris_objects`), so both see the same
//! values, the same dates, the same risk score and the same AS numbers.

use chrono::NaiveDate;
use serde_json::Value;

/// Mail and name servers, in the Python connector's order, with the connector's descriptions.
pub const SERVER_FIELDS: [(&str, &str); 2] = [("mx", "mx-server"), ("name_server", "name-server")];

/// E-mail fields and their descriptions, in the Python connector's order (without its dead
/// `email` key, which Iris never sends). The `_contact` ones hold an `email` list.
pub const EMAIL_FIELDS: [(&str, &str); 7] = [
    ("soa_email", "DNS/SOA"),
    ("ssl_email", "SSL"),
    ("additional_whois_email", "whois"),
    ("admin_contact", "email-admin"),
    ("billing_contact", "email-billing"),
    ("registrant_contact", "email-registrant"),
    ("technical_contact", "email-technical"),
];

/// The elements of an array member, or none.
pub fn list<'v>(value: &'v Value, key: &str) -> &'v [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// An Iris pivot value (`{"value": …, "count": …}`) or a plain string; empty means absent.
pub fn item_str(item: &Value) -> Option<&str> {
    let text = match item {
        Value::String(s) => s.as_str(),
        Value::Object(members) => members.get("value")?.as_str()?,
        _ => return None,
    };
    (!text.trim().is_empty()).then_some(text)
}

/// [`item_str`] of a member.
pub fn pivot_str<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    item_str(value.get(key)?)
}

/// The guided-pivot count of a pivot value: how many domains share it (Iris Investigate only;
/// Iris Enrich sends values without counts).
pub fn count(item: &Value) -> Option<u64> {
    item.get("count")?.as_u64()
}

/// The e-mail pivot values of one of [`EMAIL_FIELDS`]: a list, or a contact's `email` list.
pub fn emails<'v>(record: &'v Value, field: &str) -> &'v [Value] {
    if field.ends_with("_contact") {
        record
            .get(field)
            .map(|contact| list(contact, "email"))
            .unwrap_or(&[])
    } else {
        list(record, field)
    }
}

/// `domain_risk.risk_score`, 0 to 100: `None` when absent or null, `Err` with the raw value
/// when it is something else (never guessed: the Python connector made a missing score 100).
pub fn risk_score(record: &Value) -> Option<Result<u64, &Value>> {
    let raw = record.get("domain_risk")?.get("risk_score")?;
    let score = match raw {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Value::Null => return None,
        _ => None,
    }
    .filter(|score| *score <= 100);
    Some(score.ok_or(raw))
}

/// The risk components (`proximity`, `threat_profile_phishing`, …) with their scores, in the
/// record's order; components without a readable score are left out.
pub fn risk_components(record: &Value) -> Vec<(&str, u64)> {
    record
        .get("domain_risk")
        .map(|risk| list(risk, "components"))
        .unwrap_or_default()
        .iter()
        .filter_map(|c| {
            let name = c.get("name")?.as_str().filter(|n| !n.trim().is_empty())?;
            let score = c.get("risk_score")?.as_u64().filter(|s| *s <= 100)?;
            Some((name, score))
        })
        .collect()
}

/// A `YYYY-MM-DD` date field: `None` when absent or empty, `Err` with the text when unreadable.
pub fn date<'v>(record: &'v Value, field: &str) -> Option<Result<NaiveDate, &'v str>> {
    let text = pivot_str(record, field)?;
    Some(NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| text))
}

/// An AS number: an integer, or digits with an optional "AS"; `None` when not one.
pub fn asn_number(raw: &Value) -> Option<u32> {
    match raw {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let digits = s.trim();
            let digits = digits
                .strip_prefix("AS")
                .or_else(|| digits.strip_prefix("as"))
                .unwrap_or(digits);
            digits.parse::<u64>().ok()
        }
        _ => None,
    }
    .and_then(|n| u32::try_from(n).ok())
}

/// The AS numbers of an `ip[]` element, raw (an `asn[]` item is a pivot value or a number).
pub fn asn_values(ip: &Value) -> impl Iterator<Item = &Value> {
    list(ip, "asn")
        .iter()
        .map(|asn| asn.get("value").unwrap_or(asn))
}

/// The Iris tags of a record (`tags[].label`).
pub fn tags(record: &Value) -> Vec<&str> {
    list(record, "tags")
        .iter()
        .filter_map(|t| {
            t.get("label")
                .and_then(Value::as_str)
                .or_else(|| t.as_str())
        })
        .filter(|t| !t.trim().is_empty())
        .collect()
}

/// The tracking codes Iris reports, as (record key, Iris search parameter, what it is): the
/// older single-valued `google_analytics` and `adsense`, and the lists of the newer trackers.
pub const TRACKING_CODES: [(&str, &str, &str); 11] = [
    ("google_analytics", "google_analytics", "Google Analytics"),
    ("ga4", "google_analytics_4", "Google Analytics 4"),
    ("gtm_codes", "google_tag_manager", "Google Tag Manager"),
    ("fb_codes", "facebook", "Facebook"),
    ("hotjar_codes", "hotjar", "Hotjar"),
    ("matomo_codes", "matomo", "Matomo"),
    ("yandex_codes", "yandex_metrica", "Yandex Metrica"),
    ("baidu_codes", "baidu_analytics", "Baidu Analytics"),
    (
        "statcounter_project_codes",
        "statcounter_project",
        "StatCounter project",
    ),
    (
        "statcounter_security_codes",
        "statcounter_security",
        "StatCounter security",
    ),
    ("adsense", "adsense", "Google AdSense"),
];

/// The pivot values of a field that Iris sends either as one pivot value or as a list of them.
pub fn one_or_many<'v>(record: &'v Value, key: &str) -> Vec<&'v Value> {
    match record.get(key) {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(item @ (Value::Object(_) | Value::String(_))) => vec![item],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn risk_scores_are_read_or_refused_never_guessed() {
        assert_eq!(risk_score(&json!({})), None);
        assert_eq!(
            risk_score(&json!({"domain_risk": {"risk_score": null}})),
            None
        );
        assert_eq!(
            risk_score(&json!({"domain_risk": {"risk_score": 87}})),
            Some(Ok(87))
        );
        assert_eq!(
            risk_score(&json!({"domain_risk": {"risk_score": 87.0}})),
            Some(Ok(87))
        );
        assert!(matches!(
            risk_score(&json!({"domain_risk": {"risk_score": 101}})),
            Some(Err(_))
        ));
        assert!(matches!(
            risk_score(&json!({"domain_risk": {"risk_score": "high"}})),
            Some(Err(_))
        ));
    }

    #[test]
    fn as_numbers_take_integers_and_as_prefixed_digits() {
        assert_eq!(asn_number(&json!(16509)), Some(16509));
        assert_eq!(asn_number(&json!("AS64501")), Some(64501));
        assert_eq!(asn_number(&json!(-1)), None);
        assert_eq!(asn_number(&json!(4_294_967_296_u64)), None);
    }

    #[test]
    fn tracking_codes_come_as_one_value_or_a_list() {
        let record = json!({"google_analytics": {"value": "UA-1", "count": 3},
                            "ga4": [{"value": "G-1", "count": 2}, {"value": "G-2", "count": 9}]});
        assert_eq!(one_or_many(&record, "google_analytics").len(), 1);
        assert_eq!(one_or_many(&record, "ga4").len(), 2);
        assert!(one_or_many(&record, "hotjar_codes").is_empty());
    }
}
