//! The last step of every stored-form reply (enrichment with `event_id`, imports): each entry
//! becomes one MISP stores as it is, because MISP validates every attribute and keeps one per
//! type and value in an event, and a refused row loses its label (MISP's
//! `MispAttribute::$validate`, read in docs/compatibility.md).
//!
//! Per value: the type is corrected where the reference's is wrong for the value (a registrable
//! domain is `domain`, a host under it `hostname`; a registrar's phone, URL, IANA id or abuse
//! e-mail is not `whois-registrar`); a value still invalid for its type is stored as `text` with
//! the reason in the comment; values MISP would see as the same (type and normalized value) are
//! merged into one entry whose comment names every label; only product tags stay, because MISP
//! makes every tag an instance-wide tag.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::validate::{self, Refusal};
use super::{valid_categories, CATALOGUE};
use crate::domain::registrable_domain;

/// The tags that name a product: the only ones kept on stored attributes.
pub const PRODUCT_TAGS: [&str; 4] = ["DomainTools", "Iris", "Iris Detect", "Guided Pivot"];

/// Makes a stored-form result list that MISP accepts row for row. `skip_prefix`, when given, is
/// a note every comment starts with (demo mode): merged comments repeat it only once.
pub fn prepare(results: Vec<Value>, skip_prefix: Option<&str>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(results.len());
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    for result in results {
        let Value::Object(result) = result else {
            continue;
        };
        for row in rows(&result) {
            let key = (row.attribute_type.clone(), row.value.clone());
            match index.get(&key) {
                Some(&at) => merge(&mut out[at], &row, skip_prefix),
                None => {
                    index.insert(key, out.len());
                    out.push(row.into_json());
                }
            }
        }
    }
    out
}

/// Why a stored reply would lose rows in MISP: each refused value with MISP's reason. Empty for
/// every reply [`prepare`] made. Used by the tests and by the refusal counts in the docs.
pub fn refusals(results: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen: HashMap<(String, String, String), usize> = HashMap::new();
    for (i, result) in results.iter().enumerate() {
        let Some(result) = result.as_object() else {
            problems.push(format!("#{i}: not an object"));
            continue;
        };
        let Some(attribute_type) = first_type(result) else {
            problems.push(format!("#{i}: no type"));
            continue;
        };
        // MISP proposes the first category, or the type's default.
        let category = result
            .get("categories")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                CATALOGUE
                    .default_category(&attribute_type)
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        for value in values(result) {
            // `handleModuleResult` drops what PHP's `empty()` calls empty ("" and "0") before
            // anything is validated: lost, but not refused.
            if value.is_empty() || value == "0" {
                continue;
            }
            let normalized = validate::normalize(&attribute_type, &value);
            let problem = if !CATALOGUE.has_type(&attribute_type) {
                Some(Refusal::UnknownType.to_string())
            } else if !CATALOGUE.allows(&category, &attribute_type) {
                Some(format!("not allowed in the category {category:?}"))
            } else {
                validate::check(&attribute_type, &normalized)
                    .err()
                    .map(|r| r.to_string())
            };
            if let Some(problem) = problem {
                if !matches!(validate::check("text", &normalized), Err(Refusal::Empty)) {
                    problems.push(format!("#{i}: {attribute_type} {value:?}: {problem}"));
                }
                continue;
            }
            let key = (attribute_type.clone(), category.clone(), normalized);
            if let Some(first) = seen.insert(key, i) {
                problems.push(format!(
                    "#{i}: {attribute_type} {value:?}: a similar attribute already exists (#{first})"
                ));
            }
        }
    }
    problems
}

/// One value to store.
#[derive(Debug)]
struct Row {
    attribute_type: String,
    value: String,
    comment: String,
    tags: Vec<String>,
    categories: Option<Vec<String>>,
    /// The result used the single-`type` shape (Iris-Detect's, as the reference).
    single_type: bool,
    /// `values` was a plain string rather than a list.
    scalar_value: bool,
    /// Keys the step does not touch (`to_ids`, `distribution`, …), kept as they came.
    extra: Map<String, Value>,
}

impl Row {
    fn into_json(self) -> Value {
        let mut out = Map::new();
        if self.single_type {
            out.insert("type".into(), json!(self.attribute_type));
        } else {
            out.insert("types".into(), json!([self.attribute_type]));
        }
        let value = if self.scalar_value {
            json!(self.value)
        } else {
            json!([self.value])
        };
        out.insert("values".into(), value);
        out.insert("comment".into(), json!(self.comment));
        out.insert("tags".into(), json!(self.tags));
        if let Some(categories) = self.categories {
            out.insert("categories".into(), json!(categories));
        }
        out.extend(self.extra);
        Value::Object(out)
    }
}

fn first_type(result: &Map<String, Value>) -> Option<String> {
    match result.get("types").or_else(|| result.get("type"))? {
        Value::String(t) => Some(t.clone()),
        Value::Array(types) => types.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}

fn values(result: &Map<String, Value>) -> Vec<String> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_owned()),
        _ => None,
    };
    match result.get("values") {
        Some(Value::Array(values)) => values.iter().filter_map(text).collect(),
        Some(other) => text(other).into_iter().collect(),
        None => Vec::new(),
    }
}

/// The rows of one result: one per value, each checked and typed for MISP.
fn rows(result: &Map<String, Value>) -> Vec<Row> {
    let Some(declared) = first_type(result) else {
        return Vec::new();
    };
    let comment = result
        .get("comment")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let tags: Vec<String> = result
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|t| PRODUCT_TAGS.contains(t))
        .map(str::to_owned)
        .collect();
    let categories: Option<Vec<&str>> = result
        .get("categories")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(Value::as_str).collect());
    let extra: Map<String, Value> = result
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "type" | "types" | "values" | "comment" | "tags" | "categories"
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    values(result)
        .into_iter()
        .filter_map(|raw| {
            let (attribute_type, value, note) = storable(&declared, &raw)?;
            let comment = match note {
                Some(note) if comment.is_empty() => note,
                Some(note) => format!("{comment} ({note})"),
                None => comment.clone(),
            };
            let categories = categories.as_ref().map(|c| {
                let owned: Vec<&'static str> = c
                    .iter()
                    .filter_map(|c| CATALOGUE.category_name(c))
                    .collect();
                valid_categories(&attribute_type, &owned)
            });
            Some(Row {
                attribute_type,
                value,
                comment,
                tags: tags.clone(),
                categories,
                single_type: result.contains_key("type") && !result.contains_key("types"),
                scalar_value: result.get("values").is_some_and(|v| !v.is_array()),
                extra: extra.clone(),
            })
        })
        .collect()
}

/// The type and value to store `raw` under, and a note for the comment when it is not the
/// declared type. `None` when MISP would store nothing (an empty value).
fn storable(declared: &str, raw: &str) -> Option<(String, String, Option<String>)> {
    let attribute_type = if CATALOGUE.has_type(declared) {
        corrected_type(declared, raw)
    } else {
        "text"
    };
    let normalized = validate::normalize(attribute_type, raw);
    match validate::check(attribute_type, &normalized) {
        Ok(()) => Some((attribute_type.to_owned(), normalized, None)),
        Err(Refusal::Empty) => None,
        Err(refusal) => {
            let text = validate::normalize("text", raw);
            match validate::check("text", &text) {
                Ok(()) => Some((
                    "text".to_owned(),
                    text,
                    Some(format!("not a valid {attribute_type}: {refusal}")),
                )),
                Err(Refusal::TooLong) => Some((
                    "text".to_owned(),
                    truncate(&text, 65_535),
                    Some("cut to the 65,535 bytes MISP stores".to_owned()),
                )),
                Err(_) => None,
            }
        }
    }
}

/// The right MISP type for a value the reference typed `declared`.
fn corrected_type(declared: &str, value: &str) -> &'static str {
    let trimmed = value.trim();
    let lower = trimmed.to_lowercase();
    let registrable = || registrable_domain(&lower).is_some_and(|d| d == lower);
    match declared {
        // A registrable domain is a domain. (Not the reverse: a name DomainTools calls a
        // domain may be registered under a private suffix such as sa.com.)
        "hostname" if validate::is_domain(&lower) && registrable() => "domain",
        // Parsed Whois gives every field of the registrar block the registrar's type.
        "whois-registrar" => {
            if validate::is_email(&lower) && !trimmed.contains(' ') {
                "email"
            } else if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
                "url"
            } else if is_phone(trimmed) {
                "phone-number"
            } else if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
                // The IANA id.
                "text"
            } else if validate::is_domain(&lower) && registrable_domain(&lower).is_some() {
                // The registrar's whois server.
                "hostname"
            } else {
                "whois-registrar"
            }
        }
        _ => CATALOGUE.type_name(declared).unwrap_or("text"),
    }
}

/// `+1.2086851750`, `+44 20 7946 0000`: a leading `+` and digits with separators.
fn is_phone(value: &str) -> bool {
    let Some(rest) = value.strip_prefix('+') else {
        return false;
    };
    rest.bytes().filter(u8::is_ascii_digit).count() >= 6
        && rest
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b' ' | b'-' | b'(' | b')'))
}

fn truncate(text: &str, max: usize) -> String {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Folds `row` into the entry already stored for its type and value.
fn merge(existing: &mut Value, row: &Row, skip_prefix: Option<&str>) {
    let Some(existing) = existing.as_object_mut() else {
        return;
    };
    let mut comment = existing
        .get("comment")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let addition = match skip_prefix {
        Some(prefix) => row
            .comment
            .strip_prefix(prefix)
            .map_or(row.comment.as_str(), str::trim_start),
        None => row.comment.as_str(),
    };
    if !addition.is_empty() && !comment.contains(addition) {
        if comment.is_empty() {
            comment = addition.to_owned();
        } else {
            comment = format!("{comment}; {addition}");
        }
    }
    existing.insert("comment".into(), Value::String(comment));
    if let Some(Value::Array(tags)) = existing.get_mut("tags") {
        for tag in &row.tags {
            if !tags.iter().any(|t| t == tag) {
                tags.push(json!(tag));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(t: &str, v: &str, comment: &str, tags: &[&str]) -> Value {
        json!({"types": [t], "values": [v], "comment": comment, "tags": tags,
               "categories": ["External analysis"]})
    }

    #[test]
    fn invalid_values_become_text_with_the_reason() {
        let out = prepare(
            vec![entry(
                "whois-registrant-email",
                "select request email form at https://x.example/whois",
                "Registrant Email from DomainTools",
                &["DomainTools", "Iris"],
            )],
            None,
        );
        assert_eq!(out[0]["types"], json!(["text"]));
        assert_eq!(
            out[0]["comment"],
            "Registrant Email from DomainTools (not a valid whois-registrant-email: Email address has an invalid format.)"
        );
        assert!(refusals(&out).is_empty());
    }

    #[test]
    fn same_type_and_value_merge_and_name_every_label() {
        let out = prepare(
            vec![
                entry(
                    "text",
                    "Google LLC",
                    "Technical Contact Org from Domaintools",
                    &["DomainTools", "Technical Contact Org"],
                ),
                entry(
                    "text",
                    "Google LLC",
                    "Admin Contact Org from Domaintools",
                    &["DomainTools", "Admin Contact Org"],
                ),
                entry(
                    "ip-dst",
                    "142.251.33.68",
                    "IP address from DomainTools",
                    &["DomainTools", "Iris"],
                ),
                entry(
                    "ip-dst",
                    "142.251.33.68",
                    "Ip Address: ~258 domains share this value",
                    &["DomainTools", "Guided Pivot"],
                ),
            ],
            None,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0]["comment"],
            "Technical Contact Org from Domaintools; Admin Contact Org from Domaintools"
        );
        assert_eq!(
            out[0]["tags"],
            json!(["DomainTools"]),
            "label tags are dropped"
        );
        assert_eq!(
            out[1]["tags"],
            json!(["DomainTools", "Iris", "Guided Pivot"])
        );
        assert!(refusals(&out).is_empty());
    }

    #[test]
    fn domains_hosts_and_registrar_fields_get_their_types() {
        let out = prepare(
            vec![
                entry("hostname", "google.com", "Mx Domain", &[]),
                entry("hostname", "NS1.GOOGLE.COM", "name server", &[]),
                entry(
                    "domain",
                    "googleusercontente.sa.com",
                    "Iris Detect domain",
                    &[],
                ),
                entry(
                    "whois-registrar",
                    "+1.2086851750",
                    "registrar -> abuse contact phone",
                    &[],
                ),
                entry(
                    "whois-registrar",
                    "abusecomplaints@markmonitor.com",
                    "abuse",
                    &[],
                ),
                entry("whois-registrar", "292", "iana id", &[]),
                entry("whois-registrar", "http://www.markmonitor.com", "url", &[]),
                entry(
                    "whois-registrar",
                    "whois.markmonitor.com",
                    "whois server",
                    &[],
                ),
                entry("whois-registrar", "MarkMonitor, Inc.", "name", &[]),
            ],
            None,
        );
        let types: Vec<&str> = out
            .iter()
            .map(|e| e["types"][0].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "domain",
                "hostname",
                "domain",
                "phone-number",
                "email",
                "text",
                "url",
                "hostname",
                "whois-registrar"
            ]
        );
        assert_eq!(
            out[1]["values"],
            json!(["ns1.google.com"]),
            "stored normalized"
        );
        assert!(refusals(&out).is_empty(), "{:?}", refusals(&out));
    }

    #[test]
    fn the_single_type_shape_and_string_values_are_kept() {
        let out = prepare(
            vec![
                json!({"type": "domain", "values": "a.example.com", "tags": ["DomainTools", "Iris Detect", "Name Server"], "comment": "x"}),
                json!({"type": "domain", "values": "", "comment": "empty"}),
            ],
            None,
        );
        assert_eq!(out.len(), 1, "an empty value stores nothing");
        assert_eq!(
            out[0],
            json!({"type": "domain", "values": "a.example.com", "comment": "x", "tags": ["DomainTools", "Iris Detect"]})
        );
    }

    #[test]
    fn a_demo_prefix_is_not_repeated_by_merging() {
        let out = prepare(
            vec![
                entry("text", "x", "[DEMO] A", &[]),
                entry("text", "x", "[DEMO] B", &[]),
            ],
            Some("[DEMO]"),
        );
        assert_eq!(out[0]["comment"], "[DEMO] A; B");
    }

    #[test]
    fn refusals_reports_what_misp_would_refuse() {
        let bad = vec![
            entry(
                "ip-dst",
                "ip address (~258 domains share this value.)",
                "Guided Pivot",
                &[],
            ),
            entry("text", "CA", "a", &[]),
            entry("text", "CA", "b", &[]),
            entry("no-such-type", "x", "c", &[]),
        ];
        assert_eq!(refusals(&bad).len(), 3, "{:?}", refusals(&bad));
        assert!(refusals(&prepare(bad, None)).is_empty());
    }
}
