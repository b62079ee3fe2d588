//! The classic Enterprise modules (Analyze, Pivot, Historic) reproduce the Python reference's
//! golden outputs (reference doc §12.4 and §12.5) entry by entry on the recorded DomainTools
//! answers, allowing only the documented divergences (docs/compatibility.md).

use crate::misp::{render, Form, Payload};
use crate::modules::classic::{map_domain, map_host_domains, map_reverse_whois, map_risk, Flavor};
use crate::modules::historic;
use serde_json::{json, Value};

use super::golden::{self, Divergences};
use super::recorded::{fixture, golden_day};

/// The `response` object of a recorded answer, as the client hands it to the modules.
fn answer(name: &str) -> Value {
    fixture(name)["response"].clone()
}

fn hover(payload: &Payload) -> Vec<Value> {
    render(payload.entries(), Form::Hover, None)
}

fn google_com(flavor: Flavor) -> Vec<Value> {
    hover(&map_domain(
        "google.com",
        Some(&answer("parsed-whois.json")),
        Some(&answer("domain-profile.json")),
        Some(&answer("risk-zerolist.json")),
        flavor,
        golden_day(),
    ))
}

/// Fix 1: each nested key's own value, read from the fixture the golden output came from.
/// (The reference showed the first key's value, e.g. "MarkMonitor, Inc. MarkMonitor Inc.", for
/// all six registrar keys, and "unsigned" for all four other properties.)
fn own_nested_values() -> Vec<(String, Value)> {
    let pw = answer("parsed-whois.json")["parsed_whois"].clone();
    let mut out = Vec::new();
    for (field, name) in [
        ("registrar", "registrar"),
        ("other_properties", "other properties"),
    ] {
        for (key, value) in pw[field].as_object().unwrap() {
            out.push((
                format!("{name} -> {}", key.replace('_', " ")),
                value.clone(),
            ));
        }
    }
    out
}

fn assert_google_com(flavor: Flavor) {
    let values = own_nested_values();
    let values: Vec<(&str, Value)> = values
        .iter()
        .map(|(l, v)| (l.as_str(), v.clone()))
        .collect();
    let tag_order: Vec<&str> = values.iter().map(|(l, _)| *l).collect();
    golden::assert_matches_with(
        &google_com(flavor),
        &golden::load("analyze-google.com.txt"),
        &Divergences {
            tag_order: &tag_order,
            values: &values,
            invalid_types: &["whois-registrant-country"],
        },
    );
}

#[test]
fn analyze_matches_the_reference_on_google_com() {
    assert_google_com(Flavor::Analyze);
}

#[test]
fn pivot_matches_the_reference_on_google_com() {
    assert_google_com(Flavor::Pivot);
}

#[test]
fn the_divergences_on_google_com_are_pinned() {
    let ours = google_com(Flavor::Analyze);
    let find = |label: &str| {
        ours.iter()
            .find(|e| e["values"].get(label).is_some())
            .unwrap_or_else(|| panic!("{label}"))
            .clone()
    };
    // Fix 1: the registrar's IANA id is its own, not the registrar name.
    let iana = find("registrar -> iana id");
    assert_eq!(iana["values"], json!({"registrar -> iana id": "292"}));
    assert_eq!(
        find("registrar -> abuse contact phone")["values"],
        json!({"registrar -> abuse contact phone": "+1.2086851750"})
    );
    assert_eq!(
        find("other properties -> registry domain id")["values"],
        json!({"other properties -> registry domain id": "2138514_DOMAIN_COM-VRSN"})
    );
    // Fix 2: stable tags.
    assert_eq!(iana["tags"], json!(["DomainTools", "whois", "registrar"]));
    assert_eq!(
        find("other properties -> dnssec")["tags"],
        json!(["DomainTools", "whois", "other properties"])
    );
    // A MISP type instead of the label MISP does not know.
    let country = find("whois-registrant-country");
    assert_eq!(country["types"], json!(["text"]));
    assert_eq!(country["values"], json!({"whois-registrant-country": "US"}));
    // Categories MISP accepts for the type (fixed at render time).
    assert_eq!(iana["categories"], json!(["Attribution"]));
}

#[test]
fn pivot_on_an_ip_lists_the_co_located_domains() {
    let mut p = Payload::new();
    map_host_domains(&mut p, &answer("host-domains.json"), Flavor::Pivot, 100);
    golden::assert_matches(
        &hover(&p),
        &golden::load("pivot-ip-199.30.228.112.txt"),
        &[],
    );
}

#[test]
fn analyze_on_an_ip_shows_the_count_only() {
    let mut p = Payload::new();
    map_host_domains(&mut p, &answer("host-domains.json"), Flavor::Analyze, 100);
    golden::assert_matches(
        &hover(&p),
        &golden::load("analyze-ip-199.30.228.112.txt"),
        &[],
    );
}

#[test]
fn reverse_whois_lists_every_domain_then_the_counts() {
    let response = answer("reverse-whois.json");
    let mut p = Payload::new();
    map_reverse_whois(&mut p, &response, u64::MAX);
    let ours = hover(&p);
    assert_eq!(ours.len(), 25_002, "no results_limit, as the reference");
    let domains = response["domains"].as_array().unwrap();
    for (entry, domain) in ours.iter().zip(domains) {
        assert_eq!(entry["types"], json!(["domain"]));
        assert_eq!(entry["values"], json!({"reverse whois domain": domain}));
        assert_eq!(entry["comment"], "reverse whois domain from DomainTools");
        assert_eq!(
            entry["tags"],
            json!(["DomainTools", "reverse whois domain"])
        );
        assert!(entry.get("categories").is_none());
    }
    golden::assert_matches(
        &ours[25_000..],
        &golden::load("reverse-whois-counts.txt"),
        &[],
    );
}

#[test]
fn historic_on_google_com_gives_92_entries_first_and_last_as_the_reference() {
    // The reference's run: hosting history of google.com, whois history of woot.com (the
    // recorded answers), 91 unique IP addresses then 1 e-mail address.
    let p = historic::map(
        Some(&answer("hosting-history.json")),
        Some(&answer("whois-history.json")),
    );
    let ours = hover(&p);
    assert_eq!(ours.len(), 92);
    let ips = ours
        .iter()
        .filter(|e| e["values"].get("ip").is_some())
        .count();
    assert_eq!(ips, 91);
    let ends = [ours[0].clone(), ours[91].clone()];
    golden::assert_matches(
        &ends,
        &golden::load("historic-google.com-first-last.txt"),
        &[],
    );
}

#[test]
fn risk_for_hug_rest_has_the_score_and_five_cumulative_reasons() {
    let mut p = Payload::new();
    map_risk(&mut p, &answer("risk.json"));
    golden::assert_matches(&hover(&p), &golden::load("risk-hug.rest.txt"), &[]);
}

#[test]
fn a_zero_risk_score_is_omitted_but_its_reason_kept() {
    let mut p = Payload::new();
    map_risk(&mut p, &answer("risk-zerolist.json"));
    let ours = hover(&p);
    assert_eq!(ours.len(), 1);
    assert_eq!(
        ours[0]["values"],
        json!({"risk score reason": "name: zerolist, risk_score: 0"})
    );
}

#[test]
fn stored_form_keeps_the_entries_with_plain_values() {
    // Compatibility fix 3 applies to the classic modules too: same entries, `values: [v]`.
    let p = map_domain(
        "google.com",
        Some(&answer("parsed-whois.json")),
        Some(&answer("domain-profile.json")),
        Some(&answer("risk-zerolist.json")),
        Flavor::Pivot,
        golden_day(),
    );
    let stored = render(p.entries(), Form::Stored, None);
    assert_eq!(stored.len(), 27);
    assert_eq!(
        stored[0]["values"],
        json!(["Select Request Email Form at https://domains.markmonitor.com/whois/google.com"])
    );
    let iana = stored
        .iter()
        .find(|e| e["values"] == json!(["292"]))
        .unwrap();
    assert_eq!(
        iana["comment"], "registrar -> iana id from DomainTools",
        "the comment already names the label"
    );
}

#[test]
fn classic_modules_emit_types_and_categories_misp_accepts() {
    use crate::misp::CATALOGUE;
    let mut payloads = vec![
        map_domain(
            "google.com",
            Some(&answer("parsed-whois.json")),
            Some(&answer("domain-profile.json")),
            Some(&answer("risk.json")),
            Flavor::Pivot,
            golden_day(),
        ),
        historic::map(
            Some(&answer("hosting-history.json")),
            Some(&answer("whois-history.json")),
        ),
    ];
    let mut ips = Payload::new();
    map_host_domains(&mut ips, &answer("host-domains.json"), Flavor::Pivot, 100);
    map_reverse_whois(&mut ips, &answer("reverse-whois.json"), u64::MAX);
    payloads.push(ips);
    let mut checked = 0;
    for payload in &payloads {
        for form in [Form::Hover, Form::Stored] {
            for entry in render(payload.entries(), form, None) {
                for t in entry["types"].as_array().unwrap() {
                    let t = t.as_str().unwrap();
                    assert!(CATALOGUE.has_type(t), "unknown MISP type {t:?} in {entry}");
                    for c in entry
                        .get("categories")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let c = c.as_str().unwrap();
                        assert!(
                            CATALOGUE.allows(c, t),
                            "MISP refuses {t:?} under {c:?}: {entry}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 40, "{checked}");
}
