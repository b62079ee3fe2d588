//! DomainTools-Iris-Pivot: enrichment from Iris Investigate. A domain gets its full pivot
//! profile with guided-pivot counts; an IP, email, name server, registrar, registrant or SSL
//! hash gets the domains connected to it, capped by `results_limit`, and how many there are.

use serde_json::Value;

use super::iris_error;
use super::iris_record::checked_domain;
use super::iris_search;
use super::{Context, Input, Module, ModuleError, Reply};
use crate::misp::{Entry, Payload, EXTERNAL_ANALYSIS};
use crate::pyfmt;
use crate::pyfmt::{is_truthy, list, truthy};
use domaintools::Stop;

/// The module's registry entry.
pub(crate) const MODULE: Module = Module {
    name: "DomainTools-Iris-Pivot",
    descriptor: include_str!("../../modules/DomainTools-Iris-Pivot.json"),
    run: |ctx, input| Box::pin(run(ctx, input)),
    replies_live_as: Some(domaintools::Family::Iris),
};

/// Connections shared with fewer domains than this are tagged "Guided Pivot" (reference).
pub const DEFAULT_GUIDED_PIVOT_THRESHOLD: u64 = 300;
/// Connected domains shown for a non-domain pivot when `results_limit` is unset.
pub(crate) const DEFAULT_RESULTS_LIMIT: u64 = 100;

const IRIS_TAGS: [&str; 2] = ["DomainTools", "Iris"];
const ATTRIBUTION: &str = "Attribution";
const NETWORK_ACTIVITY: &str = "Network activity";

/// The Iris Investigate search a non-domain attribute becomes (the reference's `PIVOT_MAP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pivot {
    /// The Iris Investigate parameter.
    pub parameter: &'static str,
    /// What the value is, for messages ("this IP address").
    pub(crate) subject: &'static str,
}

/// The pivot for a MISP attribute type other than `domain`, or `None` when Iris-Pivot does
/// not take that type.
pub(crate) fn pivot_for(attribute_type: &str) -> Option<Pivot> {
    let (parameter, subject) = match attribute_type {
        "ip-src" | "ip-dst" => ("ip", "this IP address"),
        "whois-registrant-email" | "email-dst" | "email-src" => ("email", "this email address"),
        "hostname" => ("nameserver_host", "this name server"),
        "whois-registrar" => ("registrar", "this registrar"),
        "whois-registrant-name" => ("registrant", "this registrant"),
        "x509-fingerprint-sha1" => ("ssl_hash", "this SSL certificate"),
        _ => return None,
    };
    Some(Pivot { parameter, subject })
}

async fn run(ctx: Context, input: Input) -> Result<Reply, ModuleError> {
    if input.attribute_type == "domain" {
        return run_domain(ctx, input).await;
    }
    let pivot = pivot_for(&input.attribute_type).ok_or_else(|| {
        ModuleError::Input(format!(
            "DomainTools-Iris-Pivot does not pivot on {} attributes.",
            input.attribute_type
        ))
    })?;
    let limit = ctx
        .settings
        .number("results_limit", DEFAULT_RESULTS_LIMIT)?;
    let value = input.value.trim();
    if value.is_empty() {
        return Err(ModuleError::Input(format!(
            "The {} value is empty.",
            input.attribute_type
        )));
    }
    // The reference's hint: name servers are searched by host, so a web host finds nothing.
    let no_results = if input.attribute_type == "hostname" {
        "No results found. Try searching by domain."
    } else {
        "No results found."
    };
    let collected =
        iris_search::collect(&ctx, &[(pivot.parameter, value)], limit, no_results).await?;
    let payload = map_connected(&collected.records, collected.total(), pivot.subject);
    let note = iris_search::truncation_note(
        &collected,
        pivot.subject,
        "shown",
        collected.records.len(),
        limit,
    );
    // A page that failed midway is an error next to the partial results; a cap is not.
    let (error, comment) = match collected.stopped_early {
        Some(Stop::Failed(_)) => (note, None),
        _ => (None, note),
    };
    Ok(Reply {
        error,
        comment,
        ..ctx.reply(payload)
    })
}

async fn run_domain(ctx: Context, input: Input) -> Result<Reply, ModuleError> {
    // Checked before any call: the reference failed midway through its output instead.
    let threshold = ctx
        .settings
        .number("guided_pivot_threshold", DEFAULT_GUIDED_PIVOT_THRESHOLD)?;
    let domain = checked_domain(&input.value)?;
    let response = ctx
        .client
        .iris_investigate(ctx.caller(), &[("domain", domain.as_str())])
        .await
        .map_err(iris_error)?;
    let record = response
        .results
        .last()
        .map(domaintools::Record::value)
        .ok_or_else(|| ModuleError::NoResults("No results found.".into()))?;
    Ok(ctx.reply(map_domain(&record, threshold)))
}

/// The entries for the domains a pivot found, then the number of connected domains (when
/// known), which the reference did not show.
pub fn map_connected(records: &[Value], total: Option<u64>, subject: &str) -> Payload {
    let mut p = iris_search::domain_entries(records);
    if let Some(total) = total {
        p.push(Entry::new(
            &["text"],
            "Connected Domains",
            total,
            format!("Connected Domains: domains sharing {subject} in DomainTools Iris"),
            &IRIS_TAGS,
        ));
    }
    p
}

/// Maps one Iris Investigate record to the reference's full pivot profile, in its order.
/// `threshold` is `guided_pivot_threshold`: connections with `1 <= count < threshold` domains
/// get the "Guided Pivot" tag.
pub fn map_domain(record: &Value, threshold: u64) -> Payload {
    let mut b = Builder {
        p: Payload::new(),
        threshold,
    };
    for (key, label, comment) in [
        ("popularity_rank", "Rank", "Rank from DomainTools"),
        ("spf_info", "SPF", "SPF Info from DomainTools"),
        (
            "website_response",
            "Website Response",
            "Website Response from DomainTools",
        ),
    ] {
        b.plain(record, key, label, comment);
    }

    b.add(
        record.get("create_date"),
        "whois-creation-date",
        "Create Date",
        ATTRIBUTION,
    );
    b.add(
        record.get("expiration_date"),
        "text",
        "Expiration Date",
        EXTERNAL_ANALYSIS,
    );
    b.add(
        record.get("redirect_domain"),
        "domain",
        "Redirect Domain",
        EXTERNAL_ANALYSIS,
    );
    b.add(
        record.get("registrar"),
        "whois-registrar",
        "Registrar",
        ATTRIBUTION,
    );
    b.add(record.get("adsense"), "text", "Adsense", EXTERNAL_ANALYSIS);

    for (key, label) in [
        ("technical_contact", "Technical Contact"),
        ("registrant_contact", "Registrant Contact"),
        ("admin_contact", "Admin Contact"),
        ("billing_contact", "Billing Contact"),
    ] {
        if let Some(contact) = truthy(record, key) {
            b.address(contact, label);
        }
    }

    for ip in list(record, "ip") {
        b.add(ip.get("address"), "ip-dst", "IP Address", EXTERNAL_ANALYSIS);
        b.add(
            ip.get("country_code"),
            "text",
            "Country Code",
            EXTERNAL_ANALYSIS,
        );
        b.add(ip.get("isp"), "text", "IP ISP", EXTERNAL_ANALYSIS);
        for asn in list(ip, "asn") {
            b.add(Some(asn), "text", "IP ASN", EXTERNAL_ANALYSIS);
        }
    }
    for ssl in list(record, "ssl_info") {
        b.add(
            ssl.get("organization"),
            "text",
            "SSL Org",
            EXTERNAL_ANALYSIS,
        );
        b.add(ssl.get("subject"), "text", "SSL Subject", EXTERNAL_ANALYSIS);
        b.add(
            ssl.get("hash"),
            "x509-fingerprint-sha1",
            "SSL Hash",
            EXTERNAL_ANALYSIS,
        );
        for email in list(ssl, "email") {
            b.add(Some(email), "email-dst", "SSL Email", NETWORK_ACTIVITY);
        }
    }
    for name_server in list(record, "name_server") {
        b.add(
            name_server.get("host"),
            "hostname",
            "Name Server Host",
            EXTERNAL_ANALYSIS,
        );
        b.add(
            name_server.get("domain"),
            "domain",
            "Name Server Domain",
            EXTERNAL_ANALYSIS,
        );
        for ip in list(name_server, "ip") {
            b.add(Some(ip), "ip-src", "Name Server IP", EXTERNAL_ANALYSIS);
        }
    }
    // Unlike the hover modules, every mail server is listed.
    for mx in list(record, "mx") {
        b.add(
            mx.get("host"),
            "hostname",
            "Mail Server Host",
            EXTERNAL_ANALYSIS,
        );
        b.add(
            mx.get("domain"),
            "domain",
            "Mail Server Domain",
            EXTERNAL_ANALYSIS,
        );
        for ip in list(mx, "ip") {
            b.add(Some(ip), "ip-src", "Mail Server IP", EXTERNAL_ANALYSIS);
        }
    }
    for soa in list(record, "soa_email") {
        b.add(Some(soa), "email-dst", "SOA email", NETWORK_ACTIVITY);
    }
    for email in list(record, "additional_whois_email") {
        b.add(
            Some(email),
            "whois-registrant-email",
            "Whois Email",
            ATTRIBUTION,
        );
    }

    if let Some(risk) = truthy(record, "domain_risk") {
        b.plain(
            risk,
            "risk_score",
            "Risk Score",
            "Risk Score from DomainTools",
        );
        for component in list(risk, "components") {
            let Some(name) = component.get("name").filter(|n| is_truthy(n)) else {
                continue;
            };
            let name = pyfmt::py_str(name);
            // The reference formats the score into a string ("87", "None").
            let score = pyfmt::py_str(component.get("risk_score").unwrap_or(&Value::Null));
            let label = format!("{name} Risk Component");
            b.p.push(Entry::new(
                &["text"],
                label.clone(),
                score,
                format!("{label} from DomainTools"),
                &IRIS_TAGS,
            ));
        }
    }
    b.p
}

/// Collects the pivot profile's entries with the configured threshold.
struct Builder {
    p: Payload,
    threshold: u64,
}

impl Builder {
    /// The reference's `simple_parse` of a top-level scalar: omitted when falsy.
    fn plain(&mut self, record: &Value, key: &str, label: &str, comment: &str) {
        if let Some(value) = truthy(record, key).filter(|v| is_scalar(v)) {
            self.p.push(Entry::new(
                &["text"],
                label,
                value.clone(),
                comment,
                &IRIS_TAGS,
            ));
        }
    }

    /// The reference's `iris_add`: a `{value, count}` pivot becomes one entry whose comment
    /// carries the count ("(GP: 1,234)") and whose tags say "Guided Pivot" when
    /// `1 <= count < threshold`. Empty values and non-pivot shapes produce nothing.
    fn add(
        &mut self,
        item: Option<&Value>,
        types: &'static str,
        label: &str,
        category: &'static str,
    ) {
        let Some(item) = item.filter(|i| i.is_object()) else {
            return;
        };
        let Some(value) = truthy(item, "value").filter(|v| is_scalar(v)) else {
            return;
        };
        let count = item
            .get("count")
            .and_then(Value::as_i64)
            .filter(|c| *c != 0);
        let comment = match count {
            Some(count) => format!(
                "{label} (GP: {}) from DomainTools Iris",
                pyfmt::thousands(count)
            ),
            None => format!("{label} from DomainTools Iris"),
        };
        let guided = count.is_some_and(|c| c >= 1 && (c as u64) < self.threshold);
        let mut tags: Vec<&str> = IRIS_TAGS.to_vec();
        if guided {
            tags.push("Guided Pivot");
        }
        self.p.push(
            Entry::new(&[types], label, value.clone(), comment, &tags)
                .categories(Some(&[category])),
        );
    }

    /// The reference's `iris_address`: a contact's fields in its order, then its emails.
    fn address(&mut self, contact: &Value, label: &str) {
        let registrant = label == "Registrant Contact";
        for (key, field) in [
            ("name", "Name"),
            ("org", "Org"),
            ("street", "Street"),
            ("state", "State"),
            ("city", "City"),
            ("country", "Country"),
            ("fax", "Fax"),
            ("postal", "Postal"),
            ("phone", "Phone"),
        ] {
            let (types, category) = if registrant && key == "name" {
                ("whois-registrant-name", ATTRIBUTION)
            } else {
                ("text", EXTERNAL_ANALYSIS)
            };
            self.add(
                truthy(contact, key),
                types,
                &format!("{label} {field}"),
                category,
            );
        }
        let (types, category) = if registrant {
            ("whois-registrant-email", ATTRIBUTION)
        } else {
            ("text", EXTERNAL_ANALYSIS)
        };
        for email in list(contact, "email") {
            self.add(Some(email), types, &format!("{label} Email"), category);
        }
    }
}

/// Strings, numbers and booleans; nested objects and lists are not attribute values.
fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shown(p: &Payload) -> Vec<(String, Value, String, Vec<String>)> {
        p.entries()
            .iter()
            .map(|e| {
                (
                    e.label.clone(),
                    e.value.clone(),
                    e.comment.clone(),
                    e.tags.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn every_input_type_maps_to_its_iris_parameter() {
        let cases = [
            ("ip-src", "ip"),
            ("ip-dst", "ip"),
            ("whois-registrant-email", "email"),
            ("email-dst", "email"),
            ("email-src", "email"),
            ("hostname", "nameserver_host"),
            ("whois-registrar", "registrar"),
            ("whois-registrant-name", "registrant"),
            ("x509-fingerprint-sha1", "ssl_hash"),
        ];
        for (attribute_type, parameter) in cases {
            assert_eq!(
                pivot_for(attribute_type).map(|p| p.parameter),
                Some(parameter),
                "{attribute_type}"
            );
        }
        assert_eq!(pivot_for("domain"), None, "domains get the full profile");
        assert_eq!(pivot_for("url"), None);
    }

    #[test]
    fn the_descriptor_lists_the_reference_inputs_in_order() {
        let d: Value = serde_json::from_str(MODULE.descriptor).unwrap();
        assert_eq!(
            d["mispattributes"]["input"],
            json!([
                "domain",
                "ip-src",
                "ip-dst",
                "whois-registrant-email",
                "email-dst",
                "email-src",
                "hostname",
                "whois-registrar",
                "whois-registrant-name",
                "x509-fingerprint-sha1"
            ])
        );
        for t in d["mispattributes"]["input"]
            .as_array()
            .unwrap()
            .iter()
            .skip(1)
        {
            assert!(pivot_for(t.as_str().unwrap()).is_some(), "{t}");
        }
        assert_eq!(
            d["meta"]["config"],
            json!([
                "username",
                "api_key",
                "results_limit",
                "guided_pivot_threshold"
            ])
        );
        assert_eq!(d["meta"]["module-type"], json!(["expansion"]));
    }

    #[test]
    fn guided_pivot_tag_is_for_counts_from_one_below_the_threshold() {
        let record = json!({"ip": [
            {"address": {"value": "10.0.0.0", "count": 0}},
            {"address": {"value": "10.0.0.1", "count": 1}},
            {"address": {"value": "10.0.0.9", "count": 9}},
            {"address": {"value": "10.0.0.10", "count": 10}},
            {"address": {"value": "10.0.0.11", "count": 14122845}}
        ]});
        let p = map_domain(&record, 10);
        let got: Vec<_> = p
            .entries()
            .iter()
            .map(|e| {
                (
                    e.comment.as_str(),
                    e.tags.iter().any(|t| t == "Guided Pivot"),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("IP Address from DomainTools Iris", false),
                ("IP Address (GP: 1) from DomainTools Iris", true),
                ("IP Address (GP: 9) from DomainTools Iris", true),
                ("IP Address (GP: 10) from DomainTools Iris", false),
                ("IP Address (GP: 14,122,845) from DomainTools Iris", false),
            ]
        );
    }

    #[test]
    fn default_threshold_is_three_hundred() {
        let record = json!({"registrar": {"value": "R", "count": 299}, "adsense": {"value": "pub-1", "count": 300}});
        let p = map_domain(&record, DEFAULT_GUIDED_PIVOT_THRESHOLD);
        assert_eq!(p.entries()[0].tags, ["DomainTools", "Iris", "Guided Pivot"]);
        assert_eq!(p.entries()[0].categories, Some(vec![ATTRIBUTION]));
        assert_eq!(p.entries()[1].tags, ["DomainTools", "Iris"]);
    }

    #[test]
    fn threshold_setting_null_empty_and_garbage() {
        use super::super::Settings;
        let settings =
            |v: Value| Settings::from_value(Some(&json!({ "guided_pivot_threshold": v })));
        let read = |s: Settings| s.number("guided_pivot_threshold", DEFAULT_GUIDED_PIVOT_THRESHOLD);
        assert_eq!(read(settings(Value::Null)).unwrap(), 300);
        assert_eq!(read(settings(json!(""))).unwrap(), 300);
        assert_eq!(read(Settings::default()).unwrap(), 300);
        assert_eq!(read(settings(json!("10"))).unwrap(), 10);
        assert_eq!(
            read(settings(json!("abc"))).unwrap_err().to_string(),
            "The guided_pivot_threshold setting must be a whole number, not \"abc\"."
        );
    }

    #[test]
    fn contacts_follow_the_reference_field_order_and_types() {
        let v = |s: &str| json!({"value": s, "count": 5});
        let contact = json!({
            "phone": v("+1"), "postal": v("94043"), "fax": v("+2"), "country": v("us"),
            "city": v("MV"), "state": v("CA"), "street": v("1 Main"), "org": v("Org"),
            "name": v("Jane"), "email": [v("a@x.com"), v("b@x.com")]
        });
        let record = json!({"registrant_contact": contact, "admin_contact": {"name": v("Bob"), "email": []}});
        let p = map_domain(&record, 300);
        let labels: Vec<_> = p.entries().iter().map(|e| e.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "Registrant Contact Name",
                "Registrant Contact Org",
                "Registrant Contact Street",
                "Registrant Contact State",
                "Registrant Contact City",
                "Registrant Contact Country",
                "Registrant Contact Fax",
                "Registrant Contact Postal",
                "Registrant Contact Phone",
                "Registrant Contact Email",
                "Registrant Contact Email",
                "Admin Contact Name",
            ]
        );
        assert_eq!(p.entries()[0].types, ["whois-registrant-name"]);
        assert_eq!(p.entries()[9].types, ["whois-registrant-email"]);
        assert_eq!(p.entries()[9].categories, Some(vec![ATTRIBUTION]));
        assert_eq!(p.entries()[11].types, ["text"]);
    }

    #[test]
    fn falsy_and_odd_values_are_omitted_without_panicking() {
        let record = json!({
            "popularity_rank": 0, "spf_info": "", "website_response": null,
            "create_date": {"value": "", "count": 3}, "registrar": "not a pivot",
            "ip": [{"address": null, "asn": [{"value": 0, "count": 1}, 7]}, "junk"],
            "ssl_info": {"not": "a list"},
            "technical_contact": {"name": {"value": "N"}},
            "domain_risk": {"risk_score": 0, "components": [{"risk_score": 3}, {"name": "proximity"}]}
        });
        let p = map_domain(&record, 300);
        assert_eq!(
            shown(&p),
            [
                (
                    "Technical Contact Name".into(),
                    json!("N"),
                    "Technical Contact Name from DomainTools Iris".into(),
                    vec!["DomainTools".to_owned(), "Iris".to_owned()]
                ),
                (
                    "proximity Risk Component".into(),
                    json!("None"),
                    "proximity Risk Component from DomainTools".into(),
                    vec!["DomainTools".to_owned(), "Iris".to_owned()]
                ),
            ]
        );
    }

    #[test]
    fn risk_components_are_strings_and_the_score_an_int() {
        let record = json!({"domain_risk": {"risk_score": 87, "components": [{"name": "threat_profile", "risk_score": 87}]}});
        let p = map_domain(&record, 300);
        assert_eq!(p.entries()[0].value, json!(87));
        assert_eq!(p.entries()[0].comment, "Risk Score from DomainTools");
        assert_eq!(p.entries()[1].value, json!("87"));
        assert_eq!(p.entries()[1].label, "threat_profile Risk Component");
    }

    #[test]
    fn infrastructure_lists_every_mail_server_and_ip() {
        let v = |s: &str| json!({"value": s, "count": 1000});
        let mx =
            |h: &str, ip: &str| json!({"host": v(h), "domain": v("example.net"), "ip": [v(ip)]});
        let record = json!({
            "mx": [mx("a.example.net", "192.0.2.1"), mx("b.example.net", "192.0.2.2"), mx("c.example.net", "192.0.2.3")],
            "name_server": [{"host": v("ns1.example.net"), "domain": v("example.net"), "ip": [v("192.0.2.53")]}],
            "ssl_info": [{"organization": v("Org"), "subject": v("CN=x"), "hash": v("ab"), "email": [v("ssl@x.com")]}],
            "soa_email": [v("soa@x.com")], "additional_whois_email": [v("w@x.com")]
        });
        let p = map_domain(&record, 300);
        let got: Vec<_> = p
            .entries()
            .iter()
            .map(|e| (e.label.as_str(), e.types[0]))
            .collect();
        assert_eq!(
            got,
            [
                ("SSL Org", "text"),
                ("SSL Subject", "text"),
                ("SSL Hash", "x509-fingerprint-sha1"),
                ("SSL Email", "email-dst"),
                ("Name Server Host", "hostname"),
                ("Name Server Domain", "domain"),
                ("Name Server IP", "ip-src"),
                ("Mail Server Host", "hostname"),
                ("Mail Server Domain", "domain"),
                ("Mail Server IP", "ip-src"),
                ("Mail Server Host", "hostname"),
                ("Mail Server IP", "ip-src"),
                ("Mail Server Host", "hostname"),
                ("Mail Server IP", "ip-src"),
                ("SOA email", "email-dst"),
                ("Whois Email", "whois-registrant-email"),
            ]
        );
    }

    #[test]
    fn connected_domains_then_their_count() {
        let records = [
            json!({"domain": "a.example"}),
            json!({"domain": "b.example"}),
        ];
        let p = map_connected(&records, Some(2345), "this IP address");
        let last = p.entries().last().unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(last.label, "Connected Domains");
        assert_eq!(last.value, json!(2345));
        assert_eq!(
            last.comment,
            "Connected Domains: domains sharing this IP address in DomainTools Iris"
        );
        assert_eq!(
            map_connected(&records, None, "x").len(),
            2,
            "no count when Iris gave none"
        );
    }
}
