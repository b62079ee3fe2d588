//! DomainTools-Historic (classic Enterprise, expansion): the IP addresses, name servers and
//! registrars a domain has had (hosting history) and the e-mail addresses of its past whois
//! records (whois history).

use serde_json::Value;

use super::classic::{self, Failures, InputKind};
use super::{Context, Input, Module, ModuleError, Reply};
use crate::misp::{Entry, Payload};
use crate::pyfmt;

/// The module's registry entry.
pub(crate) const MODULE: Module = Module {
    name: "DomainTools-Historic",
    descriptor: include_str!("../../modules/DomainTools-Historic.json"),
    run: |ctx, input| Box::pin(run(ctx, input)),
    replies_live_as: Some(domaintools::Family::Classic),
};

/// What other input types get (the reference silently answered "An unknown error has
/// occurred" for them).
pub(crate) const SUPPORTED_INPUTS: &str =
    "DomainTools-Historic supports domain, hostname, url, uri and text inputs";

/// Hosting history, then whois history, of the value's registrable domain.
pub(crate) async fn run(ctx: Context, input: Input) -> Result<Reply, ModuleError> {
    if classic::input_kind(&input.attribute_type) != InputKind::DomainLike {
        return Err(ModuleError::Input(SUPPORTED_INPUTS.to_owned()));
    }
    let domain = classic::lookup_domain(&input)?;
    let caller = ctx.caller();
    let (hosting, whois) = tokio::join!(
        ctx.client.hosting_history(caller, &domain),
        ctx.client.whois_history(caller, &domain),
    );
    let mut failures = Failures::default();
    let hosting = failures.take("Hosting History", hosting);
    let whois = failures.take("Whois History", whois);
    let payload = map(hosting.as_ref(), whois.as_ref());
    classic::finish(&ctx, &payload, &failures)
}

/// Maps both answers (each `None` when its lookup failed), hosting history first.
pub fn map(hosting_history: Option<&Value>, whois_history: Option<&Value>) -> Payload {
    let mut p = Payload::new();
    if let Some(answer) = hosting_history {
        map_hosting_history(&mut p, answer);
    }
    if let Some(answer) = whois_history {
        map_whois_history(&mut p, answer);
    }
    p
}

/// Hosting history (`/v1/{domain}/hosting-history`): each previous and new IP address, name
/// server and registrar, commented with its record date. De-duplication keeps the first
/// (oldest) date of each value. No entry has a category, as in the reference.
pub(crate) fn map_hosting_history(p: &mut Payload, answer: &Value) {
    let changes = [
        (
            "ip_history",
            ["pre_ip", "post_ip"],
            "ip",
            &["ip-src", "ip-dst"][..],
        ),
        (
            "nameserver_history",
            ["pre_mns", "post_mns"],
            "nameserver",
            &["hostname"][..],
        ),
    ];
    for (section, keys, label, types) in changes {
        for item in pyfmt::list(answer, section) {
            let date = record_date(item, "actiondate");
            for key in keys {
                if let Some(value) = item.get(key).filter(|v| !v.is_null()) {
                    p.push(
                        Entry::new(
                            types,
                            label,
                            value.clone(),
                            date.clone(),
                            &["DomainTools", "hosting history", "whois", label, "historic"],
                        )
                        .categories(None),
                    );
                }
            }
        }
    }
    for item in pyfmt::list(answer, "registrar_history") {
        if let Some(registrar) = item.get("registrar").filter(|v| !v.is_null()) {
            p.push(
                Entry::new(
                    &["whois-registrar"],
                    "registrar",
                    registrar.clone(),
                    record_date(item, "date_lastchecked"),
                    &["DomainTools", "hosting history", "registrar", "historic"],
                )
                .categories(None),
            );
        }
    }
}

/// Whois history (`/v1/{domain}/whois/history`): every e-mail address found in each past
/// record's text, commented with the record's date; the first record naming an address wins.
pub(crate) fn map_whois_history(p: &mut Payload, answer: &Value) {
    for item in pyfmt::list(answer, "history") {
        let record = item
            .get("whois")
            .and_then(|w| w.get("record"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let date = record_date(item, "date");
        for email in emails(record) {
            p.push(
                Entry::new(
                    &["whois-registrant-email"],
                    "email",
                    email,
                    date.clone(),
                    &["DomainTools", "whois history"],
                )
                .categories(None),
            );
        }
    }
}

/// "record date: {date}", with Python's `str()` of whatever the date field holds.
fn record_date(item: &Value, key: &str) -> String {
    format!(
        "record date: {}",
        pyfmt::py_str(item.get(key).unwrap_or(&Value::Null))
    )
}

/// The e-mail addresses in `text`, as the reference's
/// `re.findall(r"([a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+)")` finds them (a trailing
/// dot is part of the match), without repeats, in order of first appearance (the reference
/// used a Python set, whose order depends on the hash seed).
pub(crate) fn emails(text: &str) -> Vec<String> {
    let local = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-');
    let host = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
    let tail = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
    let bytes = text.as_bytes();
    let run = |from: usize, class: &dyn Fn(u8) -> bool| {
        bytes[from..]
            .iter()
            .position(|b| !class(*b))
            .map_or(bytes.len(), |n| from + n)
    };
    // Where a match whose local part ends at `at` ends, if there is one: "@", a run of host
    // characters (the host part cannot contain ".", so it is the whole run), ".", and a run
    // of tail characters.
    let end_of_match = |at: usize| {
        if bytes.get(at) != Some(&b'@') {
            return None;
        }
        let dot = run(at + 1, &host);
        if dot == at + 1 || bytes.get(dot) != Some(&b'.') {
            return None;
        }
        let end = run(dot + 1, &tail);
        (end > dot + 1).then_some(end)
    };
    let mut found: Vec<String> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !local(bytes[i]) {
            i += 1;
            continue;
        }
        // The local part is greedy and cannot contain "@", so a match starting anywhere in
        // this run of local characters needs the run to end at "@".
        let at = run(i, &local);
        match end_of_match(at) {
            Some(end) => {
                // Only ASCII bytes matched, so these are character boundaries.
                let email = text[i..end].to_owned();
                if !found.contains(&email) {
                    found.push(email);
                }
                i = end;
            }
            None => i = at,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shown(p: &Payload) -> Vec<(String, Value, String)> {
        p.entries()
            .iter()
            .map(|e| (e.label.clone(), e.value.clone(), e.comment.clone()))
            .collect()
    }

    #[test]
    fn emails_are_found_like_the_reference_regex() {
        assert_eq!(
            emails("Registrant Email: a.b+c@d-e.co.uk.\nTech: x@y.com, x@y.com"),
            ["a.b+c@d-e.co.uk.", "x@y.com"]
        );
        assert_eq!(emails("a@b.c@d.e"), ["a@b.c"]);
        assert_eq!(
            emails("no@tld and @x.com and y@.com and z@host."),
            Vec::<String>::new()
        );
        assert_eq!(
            emails("café@example.com"),
            Vec::<String>::new(),
            "é is not in the ASCII class"
        );
        assert_eq!(emails("é x@y.com"), ["x@y.com"]);
        assert_eq!(emails("<abuse@markmonitor.com>"), ["abuse@markmonitor.com"]);
        assert_eq!(emails("me@a-b.c-d"), ["me@a-b.c-d"]);
        assert_eq!(emails(""), Vec::<String>::new());
        assert_eq!(emails("@@@...---"), Vec::<String>::new());
    }

    #[test]
    fn emails_never_panic_and_only_return_substrings() {
        let alphabet = [
            "a", "Z", "9", "_", ".", "+", "-", "@", " ", "é", "日", "\u{0}", "\n", "💥",
        ];
        // Every string of up to four symbols from the alphabet: 14^4 + … cases.
        let mut cases = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for prefix in &cases {
                for symbol in alphabet {
                    next.push(format!("{prefix}{symbol}"));
                }
            }
            cases.extend(next.into_iter().filter(|c| c.chars().count() <= 4));
            cases.sort();
            cases.dedup();
        }
        assert!(cases.len() > 30_000);
        for case in &cases {
            for email in emails(case) {
                assert!(case.contains(&email) && email.contains('@'), "{case:?}");
            }
            let padded = format!("x{case}y@d.co{case}");
            for email in emails(&padded) {
                assert!(padded.contains(&email), "{padded:?}");
            }
        }
        let map_both = |v: Value| map(Some(&v), Some(&v));
        for odd in [
            json!({"ip_history": [1, "x", {"pre_ip": [1]}], "history": [{"whois": {"record": 5}}]}),
            json!({"nameserver_history": [{"pre_mns": {}}], "registrar_history": [null]}),
        ] {
            map_both(odd);
        }
    }

    #[test]
    fn hosting_history_maps_ips_name_servers_and_registrars_keeping_the_first_date() {
        let answer = json!({
            "ip_history": [
                {"pre_ip": null, "post_ip": "1.1.1.1", "actiondate": "2004-01-01"},
                {"pre_ip": "1.1.1.1", "post_ip": "2.2.2.2", "actiondate": "2005-01-01"},
                {"pre_ip": "2.2.2.2", "post_ip": "", "actiondate": "2006-01-01"}
            ],
            "nameserver_history": [
                {"pre_mns": "ns1.old.com", "post_mns": "ns1.new.com", "actiondate": "2007-01-01"}
            ],
            "registrar_history": [
                {"registrar": "R1", "date_lastchecked": "2008-01-01"},
                {"registrar": "", "date_lastchecked": "2009-01-01"},
                {"date_lastchecked": "2010-01-01"}
            ]
        });
        let p = map(Some(&answer), None);
        let rows: Vec<_> = shown(&p);
        assert_eq!(
            rows,
            [
                (
                    "ip".into(),
                    json!("1.1.1.1"),
                    "record date: 2004-01-01".into()
                ),
                (
                    "ip".into(),
                    json!("2.2.2.2"),
                    "record date: 2005-01-01".into()
                ),
                (
                    "nameserver".into(),
                    json!("ns1.old.com"),
                    "record date: 2007-01-01".into()
                ),
                (
                    "nameserver".into(),
                    json!("ns1.new.com"),
                    "record date: 2007-01-01".into()
                ),
                (
                    "registrar".into(),
                    json!("R1"),
                    "record date: 2008-01-01".into()
                ),
            ]
        );
        let ns = &p.entries()[2];
        assert_eq!(ns.types, ["hostname"]);
        assert_eq!(
            ns.tags,
            [
                "DomainTools",
                "hosting history",
                "whois",
                "nameserver",
                "historic"
            ]
        );
        assert_eq!(ns.categories, None);
        assert_eq!(
            p.entries()[4].tags,
            ["DomainTools", "hosting history", "registrar", "historic"]
        );
    }

    #[test]
    fn whois_history_lists_each_address_once_with_its_first_date() {
        let answer = json!({"history": [
            {"date": "2026-01-13", "whois": {"record": "Abuse: abuse@r.com\nTech: t@x.com"}},
            {"date": "2020-01-01", "whois": {"record": "Abuse: abuse@r.com\nOwner: o@x.com"}},
            {"date": "2019-01-01", "whois": {}},
            {"date": "2018-01-01"}
        ]});
        let p = map(None, Some(&answer));
        assert_eq!(
            shown(&p),
            [
                (
                    "email".into(),
                    json!("abuse@r.com"),
                    "record date: 2026-01-13".into()
                ),
                (
                    "email".into(),
                    json!("t@x.com"),
                    "record date: 2026-01-13".into()
                ),
                (
                    "email".into(),
                    json!("o@x.com"),
                    "record date: 2020-01-01".into()
                ),
            ]
        );
        assert_eq!(p.entries()[0].types, ["whois-registrant-email"]);
        assert_eq!(p.entries()[0].tags, ["DomainTools", "whois history"]);
    }

    #[test]
    fn empty_answers_give_nothing() {
        assert!(map(Some(&json!({})), Some(&json!({}))).is_empty());
        assert!(map(
            Some(&json!({"ip_history": [], "nameserver_history": null, "registrar_history": "x"})),
            Some(&json!({"history": [], "record_count": 0}))
        )
        .is_empty());
        assert!(map(None, None).is_empty());
    }
}
