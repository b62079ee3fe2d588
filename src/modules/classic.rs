//! What the classic Enterprise modules (DomainTools-Analyze, -Pivot and -Historic) share: the
//! input families of the reference's dispatch table, the domain checks that keep a value from
//! changing a request path, partial results with readable per-lookup errors, and the pure
//! mappings of the classic answers (parsed whois, domain profile, risk, reverse whois, host
//! domains) to MISP entries in the reference's order, with its labels, types, comments and tags.
//!
//! The reference's helpers are reproduced with the project's documented fixes: a nested value
//! is emitted with its own value (the reference re-emitted the first one), tags keep their
//! first-insertion order, and a label that is not a MISP type gets the type `text`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{iris_record, Context, Input, ModuleError, Reply};
use crate::misp::{dedup_tags, Entry, Payload, CATALOGUE, EXTERNAL_ANALYSIS};
use crate::pyfmt::{self, is_truthy, list};
use domaintools::{classic, ReverseWhoisMode};

/// Which of the two look-alike modules runs: Analyze is a hover module (counts only, reverse
/// whois as a quote), Pivot an expansion module (domain lists, reverse whois purchased).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// DomainTools-Analyze.
    Analyze,
    /// DomainTools-Pivot.
    Pivot,
}

/// The reference's kinds of input (its dispatch table, reference §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputKind {
    /// `domain`, `hostname`, `url`, `uri`, `text`: reduced to the registrable domain.
    DomainLike,
    /// E-mail addresses, registrant name and phone, creation date: reverse whois.
    Contact,
    /// `ip-src`, `ip-dst`: host domains.
    Ip,
    /// Anything else (`x509-fingerprint-sha1`): the classic lookups have nothing for it.
    Other,
}

/// The kind of input a MISP attribute type is.
pub(crate) fn input_kind(attribute_type: &str) -> InputKind {
    match attribute_type {
        "domain" | "hostname" | "url" | "uri" | "text" => InputKind::DomainLike,
        "email-src"
        | "email-dst"
        | "target-email"
        | "whois-registrant-email"
        | "whois-registrant-name"
        | "whois-registrant-phone"
        | "whois-creation-date" => InputKind::Contact,
        "ip-src" | "ip-dst" => InputKind::Ip,
        _ => InputKind::Other,
    }
}

/// Runs DomainTools-Analyze or DomainTools-Pivot on one attribute.
pub(crate) async fn run(ctx: Context, input: Input, flavor: Flavor) -> Result<Reply, ModuleError> {
    let mut failures = Failures::default();
    let caller = ctx.caller();
    let payload = match input_kind(&input.attribute_type) {
        InputKind::DomainLike => {
            let domain = lookup_domain(&input)?;
            // The three lookups are independent: ask concurrently, map in the reference's order
            // so entries and de-duplication come out exactly as if they had run one by one.
            let (whois, profile, risk) = tokio::join!(
                ctx.client.parsed_whois(caller, &domain),
                ctx.client.domain_profile(caller, &domain),
                ctx.client.risk(caller, &domain),
            );
            let whois = failures.take("Parsed Whois", whois);
            let profile = failures.take("Domain Profile", profile);
            let risk = failures.take("Risk", risk);
            map_domain(
                &domain,
                whois.as_ref(),
                profile.as_ref(),
                risk.as_ref(),
                flavor,
                ctx.now,
            )
        }
        InputKind::Contact => {
            let terms = input.value.trim();
            if terms.is_empty() {
                return Err(ModuleError::Input(format!(
                    "The {} value is empty; there is nothing to search for.",
                    input.attribute_type
                )));
            }
            let mode = match flavor {
                Flavor::Analyze => ReverseWhoisMode::Quote,
                Flavor::Pivot => ReverseWhoisMode::Purchase,
            };
            // Read the setting before calling, so a bad value costs no lookup.
            let results_limit = match flavor {
                Flavor::Analyze => u64::MAX,
                Flavor::Pivot => ctx.settings.number("results_limit", 100)?,
            };
            let answer = ctx.client.reverse_whois(caller, terms, mode).await;
            let mut p = Payload::new();
            if let Some(answer) = failures.take("Reverse Whois", answer) {
                map_reverse_whois(&mut p, &answer, results_limit);
            }
            p
        }
        InputKind::Ip => {
            // Read the setting before calling, so a bad value costs no lookup.
            let results_limit = match flavor {
                Flavor::Analyze => 0,
                Flavor::Pivot => ctx.settings.number("results_limit", 100)?,
            };
            // Not trimmed: white space in an IP value is refused like any other stray
            // character, the same as in domain values.
            let ip = input.value.as_str();
            classic::validate_ip(ip).map_err(|e| ModuleError::Input(e.to_string()))?;
            // Analyze only shows the count, so it asks for no domains at all, as the reference.
            let limit = (flavor == Flavor::Analyze).then_some(0);
            let answer = ctx.client.host_domains(caller, ip, limit).await;
            let mut p = Payload::new();
            if let Some(answer) = failures.take("Host Domains", answer) {
                map_host_domains(&mut p, &answer, flavor, results_limit);
            }
            p
        }
        InputKind::Other => {
            return Err(ModuleError::Input(format!(
                "{} has no lookup for {} values; DomainTools-Iris-Pivot can pivot on them.",
                ctx.module, input.attribute_type
            )))
        }
    };
    finish(&ctx, &payload, &failures)
}

/// The registrable domain of a domain-like input, checked so it can go into a URL path.
///
/// `domain` and `hostname` values must be host names themselves: a `/`, `?`, `#`, `%`, space or
/// control character in one is refused rather than silently cut off (URLs and free text are
/// reduced like the reference, since those characters are normal there). The registrable
/// domain is then checked as the path segment it becomes.
pub(crate) fn lookup_domain(input: &Input) -> Result<String, ModuleError> {
    let refused = |e: domaintools::Error| ModuleError::Input(e.to_string());
    if matches!(input.attribute_type.as_str(), "domain" | "hostname") {
        classic::check_host_characters(&input.value).map_err(refused)?;
    }
    let domain = iris_record::lookup_domain(&input.value)?;
    classic::validate_domain(&domain).map_err(|e| {
        // Say where the refused name came from when it is not the value as given.
        if domain == input.value {
            refused(e)
        } else {
            ModuleError::Input(format!(
                "{e} It is the registrable domain of the {} value.",
                input.attribute_type
            ))
        }
    })?;
    Ok(domain)
}

/// The lookups of one request that failed, in the order they were made.
#[derive(Debug, Default)]
pub(crate) struct Failures(Vec<(&'static str, String)>);

impl Failures {
    /// The answer of a successful lookup; a failure is remembered for the reply.
    pub(crate) fn take(
        &mut self,
        service: &'static str,
        result: Result<Value, domaintools::Error>,
    ) -> Option<Value> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.0.push((service, error.to_string()));
                None
            }
        }
    }

    /// One readable message: services that failed the same way are named together
    /// ("Parsed Whois, Domain Profile and Risk lookups failed: DomainTools API error 403: …").
    pub(crate) fn message(&self) -> Option<String> {
        let mut groups: Vec<(Vec<&str>, &str)> = Vec::new();
        for (service, error) in &self.0 {
            match groups.iter_mut().find(|(_, e)| e == error) {
                Some((services, _)) => services.push(service),
                None => groups.push((vec![service], error)),
            }
        }
        let parts: Vec<String> = groups
            .iter()
            .map(|(services, error)| {
                let (names, noun) = match services.as_slice() {
                    [one] => ((*one).to_owned(), "lookup"),
                    [init @ .., last] => (format!("{} and {last}", init.join(", ")), "lookups"),
                    [] => (String::new(), "lookup"),
                };
                format!("{names} {noun} failed: {error}")
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// The reply: whatever was found, rendered, with the failures next to it (the reference also
/// keeps the results of the lookups that worked). Nothing found and nothing failed: "No
/// results found." instead of the reference's "An unknown error has occurred".
pub(crate) fn finish(
    ctx: &Context,
    payload: &Payload,
    failures: &Failures,
) -> Result<Reply, ModuleError> {
    let error = failures.message();
    if payload.is_empty() && error.is_none() {
        return Err(ModuleError::NoResults("No results found.".into()));
    }
    Ok(Reply {
        results: ctx.render(payload),
        error,
        ..Reply::default()
    })
}

/// Maps the answers of the three domain lookups (each `None` when it failed), in the
/// reference's order: parsed whois, domain profile, risk. `domain` is the registrable domain
/// as the user wrote it (it appears in the domain-age text).
pub fn map_domain(
    domain: &str,
    parsed_whois: Option<&Value>,
    profile: Option<&Value>,
    risk: Option<&Value>,
    flavor: Flavor,
    now: DateTime<Utc>,
) -> Payload {
    let mut p = Payload::new();
    if let Some(answer) = parsed_whois {
        map_parsed_whois(&mut p, domain, answer, flavor, now);
    }
    if let Some(answer) = profile {
        map_domain_profile(&mut p, answer);
    }
    if let Some(answer) = risk {
        map_risk(&mut p, answer);
    }
    p
}

/// Parsed whois (`/v1/{domain}/whois/parsed`, the `response` object).
pub(crate) fn map_parsed_whois(
    p: &mut Payload,
    domain: &str,
    answer: &Value,
    flavor: Flavor,
    now: DateTime<Utc>,
) {
    let Some(pw) = answer.get("parsed_whois") else {
        return;
    };
    if pw.get("source").is_some_and(is_truthy) {
        // An IP-style (RIR) record: only the expansion module lists its fields.
        if flavor == Flavor::Pivot {
            map_network_record(p, pw);
        }
        return;
    }
    for (key, label) in [
        ("email", "whois-registrant-email"),
        ("org", "whois-registrant-org"),
        ("country", "whois-registrant-country"),
        ("phone", "whois-registrant-phone"),
        ("fax", "whois-registrant-phone"),
        ("name", "whois-registrant-name"),
        ("city", "text"),
        ("country", "text"),
        ("state", "text"),
        ("postal", "text"),
        ("street", "text"),
    ] {
        multiplex(p, pw, key, label);
    }
    simple_parse(p, "registrar", pw, &Template::new(&["whois-registrar"]));
    simple_parse(
        p,
        "created_date",
        pw,
        &Template::new(&["whois-creation-date"]),
    );
    if let Some(created) = pw.get("created_date").filter(|v| is_truthy(v)) {
        // The reference fails the whole lookup on a date it cannot parse; we just skip the age.
        if let Some(age) = pyfmt::age(&pyfmt::py_str(created), now) {
            p.push(Entry::new(
                &["text"],
                "domain age",
                format!("{domain} created {age} ago"),
                "domain age from DomainTools",
                &["DomainTools", "domain age"],
            ));
        }
    }
    simple_parse(p, "other_properties", pw, &Template::new(&["text"]));
}

/// The reference's `multiplex_atrb`: `contacts.<c>.<key>` over admin, billing, registrant and
/// tech, and only the **last** value collected becomes an entry (list items already seen are
/// skipped, except in the tech contact). The label doubles as the MISP type; a label MISP does
/// not know as a type (`whois-registrant-country`) gets the type `text`.
fn multiplex(p: &mut Payload, pw: &Value, key: &str, label: &'static str) {
    let mut values: Vec<&Value> = Vec::new();
    for contact in ["admin", "billing", "registrant", "tech"] {
        let Some(value) = pw
            .get("contacts")
            .and_then(|c| c.get(contact))
            .and_then(|c| c.get(key))
        else {
            continue;
        };
        match value {
            Value::Array(items) => {
                for item in items {
                    if *item != "" && (contact == "tech" || !values.contains(&item)) {
                        values.push(item);
                    }
                }
            }
            other => {
                if *other != "" {
                    values.push(other);
                }
            }
        }
    }
    if let Some(last) = values.last() {
        p.push(
            Entry::new(
                &[misp_type(label)],
                label,
                (*last).clone(),
                format!("{label} from DomainTools"),
                &["DomainTools", "whois", label],
            )
            .categories(None),
        );
    }
}

/// `label` when MISP knows it as an attribute type, otherwise `text`.
fn misp_type(label: &'static str) -> &'static str {
    if CATALOGUE.has_type(label) {
        label
    } else {
        "text"
    }
}

/// The Pivot listing of an IP-style parsed whois record (`source` set): every contact's and
/// network's fields through `simple_parse`. Two reference slips are corrected: the network's
/// `ref`, `remarks`, `source`, `status` and `updated_date` are read from the network (the
/// reference read them from the last contact), and `contacts` given as an object is walked by
/// its contact records (the reference walked the keys' characters).
fn map_network_record(p: &mut Payload, pw: &Value) {
    const CONTACT_FIELDS: &[(&str, &[&str])] = &[
        ("abuse_mailbox", &["email-src", "email-dst"]),
        ("address", &["text"]),
        ("changed_by", &["text"]),
        ("descr", &["text"]),
        ("fax", &["whois-registrant-phone"]),
        ("notify_email", &["whois-registrant-email"]),
        ("phone", &["whois-registrant-phone"]),
        ("remarks", &["text"]),
        ("contact_keys", &["text"]),
        ("mnt_keys", &["text"]),
        ("other", &["text"]),
        ("country", &["text"]),
        ("created_date", &["whois-creation-date"]),
        ("id", &["text"]),
        ("name", &["whois-registrant-name"]),
        ("ref", &["url", "uri"]),
        ("source", &["text"]),
        ("type", &["text"]),
        ("updated_date", &["text"]),
    ];
    const NETWORK_FIELDS: &[(&str, &[&str])] = &[
        ("asn", &["text"]),
        ("changed_by", &["text"]),
        ("contact_keys", &["text"]),
        ("country", &["text"]),
        ("created_date", &["whois-creation-date"]),
        ("customer", &["text"]),
        ("descr", &["text"]),
        ("id", &["text"]),
        ("mnt_keys", &["text"]),
        ("name", &["whois-registrant-name"]),
        ("notify_email", &["whois-registrant-email"]),
        ("org", &["text"]),
        ("other", &["text"]),
        ("parent", &["text"]),
        ("parent_id", &["text"]),
        ("phone", &["whois-registrant-phone"]),
        ("range", &["text"]),
        ("ref", &["text"]),
        ("remarks", &["text"]),
        ("source", &["text"]),
        ("status", &["text"]),
        ("updated_date", &["text"]),
    ];
    for (section, fields) in [("contacts", CONTACT_FIELDS), ("networks", NETWORK_FIELDS)] {
        let records: Vec<&Value> = match pw.get(section) {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(Value::Object(map)) => map.values().collect(),
            _ => Vec::new(),
        };
        for record in records {
            for (key, types) in fields {
                simple_parse(p, key, record, &Template::new(types));
            }
        }
    }
}

/// Domain profile (`/v1/{domain}`): each field when present and not `""` (so 0 is kept).
pub(crate) fn map_domain_profile(p: &mut Payload, answer: &Value) {
    let at = |path: &[&str]| {
        path.iter()
            .try_fold(answer, |v, key| v.get(*key))
            .filter(|v| **v != "")
    };
    let plain = |types: &[&'static str], label: &str, value: &Value| {
        Entry::new(
            types,
            label,
            value.clone(),
            format!("{label} from DomainTools"),
            &["DomainTools", "whois", label],
        )
        .categories(None)
    };
    if let Some(ip) = at(&["server", "ip_address"]) {
        p.push(plain(&["ip-src", "ip-dst"], "domain ip address", ip));
    }
    if let Some(name) = at(&["registrant", "name"]) {
        p.push(plain(&["whois-registrant-name"], "registrant name", name));
    }
    if let Some(email) = at(&["registrant", "email"]) {
        p.push(plain(
            &["whois-registrant-email"],
            "registrant email",
            email,
        ));
    }
    if let Some(count) = at(&["registrant", "domains"]) {
        p.push(Entry::new(
            &["text"],
            "registrant domain count",
            format!("registrant has {} other domains", pyfmt::py_str(count)),
            "registrant domain count from DomainTools",
            &["DomainTools", "whois", "registrant domain count"],
        ));
    }
    if let Some(count) = at(&["server", "other_domains"]) {
        p.push(Entry::new(
            &["text"],
            "co-located domain count",
            format!("IP is shared with {} other domains", pyfmt::py_str(count)),
            "co-located domain count from DomainTools",
            &["DomainTools", "co-located domain count"],
        ));
    }
    for server in list(answer, "name_servers") {
        // Records are `{server, product_url}`; a bare string is taken as the server itself.
        let server = match server {
            Value::Object(_) => server.get("server"),
            Value::String(_) => Some(server),
            _ => None,
        };
        if let Some(server) = server {
            p.push(
                Entry::new(
                    &["hostname"],
                    "name server",
                    server.clone(),
                    "name server from DomainTools",
                    &["DomainTools", "whois", "nameserver"],
                )
                .categories(None),
            );
        }
    }
    if let Some(created) = at(&["registration", "created"]) {
        p.push(plain(&["whois-creation-date"], "creation date", created));
    }
    if let Some(registrar) = at(&["registration", "registrar"]) {
        p.push(plain(&["whois-registrar"], "registrar", registrar));
    }
}

/// Risk (`/v1/risk`): the score when not 0, then one "risk score reason" entry per component,
/// each holding the reasons of all components so far (cumulative, as the reference).
pub(crate) fn map_risk(p: &mut Payload, answer: &Value) {
    simple_parse(p, "risk_score", answer, &Template::new(&["text"]));
    let mut reasons: Vec<String> = Vec::new();
    for component in list(answer, "components") {
        if let Some(fields) = component.as_object() {
            for (key, value) in fields {
                reasons.push(format!("{key}: {}", pyfmt::py_str(value)));
            }
        }
        if !reasons.is_empty() {
            p.push(Entry::new(
                &["text"],
                "risk score reason",
                reasons.join(", "),
                "risk score reason from DomainTools",
                &["DomainTools", "risk score reason"],
            ));
        }
    }
}

/// Reverse whois (`/v1/reverse-whois`): the domains (purchase mode only), at most
/// `results_limit` of them, with a note saying how many exist when some are left out (the
/// reference listed every one: 25,000 attributes for a big registrant), then the current and
/// historic counts.
pub(crate) fn map_reverse_whois(p: &mut Payload, answer: &Value, results_limit: u64) {
    let domains = list(answer, "domains");
    let mut kept: u64 = 0;
    let mut distinct = std::collections::HashSet::new();
    for domain in domains {
        if !is_truthy(domain) || !distinct.insert(pyfmt::py_str(domain)) {
            continue;
        }
        if kept >= results_limit {
            continue;
        }
        let added = p.push(
            Entry::new(
                &["domain"],
                "reverse whois domain",
                domain.clone(),
                "reverse whois domain from DomainTools",
                &["DomainTools", "reverse whois domain"],
            )
            .categories(None),
        );
        if added {
            kept += 1;
        }
    }
    let listed = distinct.len() as u64;
    if listed > kept {
        let n = |v: u64| pyfmt::thousands(i64::try_from(v).unwrap_or(i64::MAX));
        let first = if kept == 1 {
            "only the first is shown".to_owned()
        } else {
            format!("only the first {} are shown", n(kept))
        };
        p.push(Entry::new(
            &["text"],
            "reverse whois domains",
            format!(
                "DomainTools Reverse Whois lists {} domains; {first} (results_limit is {}).",
                n(listed),
                n(results_limit)
            ),
            "reverse whois domains from DomainTools",
            &["DomainTools", "reverse whois"],
        ));
    }
    let Some(counts) = answer.get("domain_count").filter(|v| is_truthy(v)) else {
        return;
    };
    if let Some(current) = counts.get("current") {
        p.push(Entry::new(
            &["text"],
            "current domain count",
            current.clone(),
            "domain count current from DomainTools",
            &["DomainTools", "reverse whois domain"],
        ));
    }
    if let Some(historic) = counts.get("historic") {
        p.push(Entry::new(
            &["text"],
            "historic domain count",
            historic.clone(),
            "historic domain count from DomainTools",
            &["DomainTools", "reverse whois"],
        ));
    }
}

/// Host domains (`/v1/{ip}/host-domains`): the co-located domain count, and for Pivot the
/// domains themselves, at most `results_limit` of them. As in the reference, an empty name
/// uses up one place of the limit.
pub fn map_host_domains(p: &mut Payload, answer: &Value, flavor: Flavor, results_limit: u64) {
    let Some(host) = answer.get("ip_addresses").filter(|v| is_truthy(v)) else {
        return;
    };
    if host.get("ip_address").is_none_or(|ip| *ip == "") {
        return;
    }
    p.push(Entry::new(
        &["text"],
        "co-located domain count",
        host.get("domain_count").cloned().unwrap_or(Value::Null),
        "co-located domain count from DomainTools",
        &["DomainTools", "co-located domain count"],
    ));
    if flavor == Flavor::Analyze {
        return;
    }
    let names = list(host, "domain_names");
    let take = usize::try_from(results_limit).unwrap_or(usize::MAX);
    for name in names.iter().take(take) {
        p.push(
            Entry::new(
                &["domain"],
                "co-located domain",
                name.clone(),
                "co-located domain from DomainTools",
                &["DomainTools", "co-located domain"],
            )
            .categories(None),
        );
    }
}

/// The formatting context of the reference's `simple_parse`: MISP types, comment and label
/// templates (`{0}` is replaced by the field name), tags and categories.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    types: Vec<&'static str>,
    comment: String,
    label: String,
    tags: Vec<String>,
    categories: Option<Vec<&'static str>>,
}

impl Template {
    /// The reference's defaults: "{0} from DomainTools", label "{0}", tags DomainTools and
    /// whois, category External analysis.
    pub(crate) fn new(types: &[&'static str]) -> Self {
        Self {
            types: types.to_vec(),
            comment: "{0} from DomainTools".to_owned(),
            label: "{0}".to_owned(),
            tags: dedup_tags(["DomainTools", "whois"]),
            categories: Some(vec![EXTERNAL_ANALYSIS]),
        }
    }

    /// The template for the children of field `name`: "name -> {0}", tag `name` added.
    fn nested(&self, name: &str) -> Self {
        let child = format!("{name} -> {{0}}");
        Self {
            comment: fill(&self.comment, &child),
            label: fill(&self.label, &child),
            ..self.tagged(name)
        }
    }

    /// The same template with one more tag (kept in first-insertion order, no duplicates).
    fn tagged(&self, tag: &str) -> Self {
        Self {
            tags: dedup_tags(self.tags.iter().map(String::as_str).chain([tag])),
            ..self.clone()
        }
    }
}

/// Python's `template.format(value)` for the `{0}`-only templates used here (a template
/// without `{0}` is returned unchanged, which is how fixed labels work).
fn fill(template: &str, value: &str) -> String {
    template.replace("{0}", value)
}

/// The reference's `simple_parse(what, from)`, with compatibility fix 1: a nested object's
/// keys each carry their own value (the reference re-read a shared register and repeated the
/// first key's value for all of them).
///
/// - `from` an object, `what` = `"*"`: every key of `from`, tag `*` added.
/// - `from` an object: `from[what]` when truthy; an object value recurses into its keys with
///   label and comment "what -> key", a list recurses into its items as "what -> *", a
///   scalar becomes an entry labelled `what` (underscores read as spaces).
/// - `from` a list: each item, as "what -> …".
/// - `from` a scalar: an entry with that value (0 and null are kept, "" is dropped).
pub(crate) fn simple_parse(p: &mut Payload, what: &str, from: &Value, t: &Template) {
    let name = what.replace('_', " ");
    match from {
        Value::Object(map) if what == "*" => {
            let t = t.tagged("*");
            for key in map.keys() {
                simple_parse(p, key, from, &t);
            }
        }
        Value::Object(map) => {
            let Some(value) = map.get(what).filter(|v| is_truthy(v)) else {
                return;
            };
            match value {
                Value::Object(inner) => {
                    let t = t.nested(&name);
                    for key in inner.keys() {
                        simple_parse(p, key, value, &t);
                    }
                }
                Value::Array(items) => {
                    let t = t.nested(&name);
                    for item in items {
                        simple_parse(p, "*", item, &t);
                    }
                }
                scalar => push_parsed(p, &name, scalar, t),
            }
        }
        Value::Array(items) => {
            let t = t.nested(&name);
            for item in items {
                simple_parse(p, what, item, &t);
            }
        }
        scalar => push_parsed(p, &name, scalar, t),
    }
}

fn push_parsed(p: &mut Payload, name: &str, value: &Value, t: &Template) {
    let tags: Vec<&str> = t.tags.iter().map(String::as_str).collect();
    p.push(
        Entry::new(
            &t.types,
            fill(&t.label, name),
            value.clone(),
            fill(&t.comment, name),
            &tags,
        )
        .categories(t.categories.as_deref()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap()
    }

    /// (label, value) of every entry.
    fn shown(p: &Payload) -> Vec<(String, Value)> {
        p.entries()
            .iter()
            .map(|e| (e.label.clone(), e.value.clone()))
            .collect()
    }

    fn pairs(items: &[(&str, Value)]) -> Vec<(String, Value)> {
        items
            .iter()
            .map(|(l, v)| ((*l).to_owned(), v.clone()))
            .collect()
    }

    fn contacts(c: Value) -> Value {
        json!({"parsed_whois": {"contacts": c}})
    }

    #[test]
    fn families_follow_the_reference_dispatch_table() {
        for t in ["domain", "hostname", "url", "uri", "text"] {
            assert_eq!(input_kind(t), InputKind::DomainLike, "{t}");
        }
        for t in [
            "email-src",
            "email-dst",
            "target-email",
            "whois-registrant-email",
            "whois-registrant-name",
            "whois-registrant-phone",
            "whois-creation-date",
        ] {
            assert_eq!(input_kind(t), InputKind::Contact, "{t}");
        }
        assert_eq!(input_kind("ip-src"), InputKind::Ip);
        assert_eq!(input_kind("ip-dst"), InputKind::Ip);
        assert_eq!(input_kind("x509-fingerprint-sha1"), InputKind::Other);
    }

    #[test]
    fn multiplex_keeps_only_the_last_contact_value() {
        let mut p = Payload::new();
        let answer = contacts(json!({
            "admin": {"email": "admin@x.com", "street": ["1 Main St", "Suite 2"]},
            "billing": {"email": ""},
            "registrant": {"email": "reg@x.com", "street": ["1 Main St"]},
            "tech": {"email": "tech@x.com", "street": []}
        }));
        map_parsed_whois(&mut p, "x.com", &answer, Flavor::Analyze, now());
        assert_eq!(
            shown(&p),
            pairs(&[
                ("whois-registrant-email", json!("tech@x.com")),
                ("text", json!("Suite 2")),
            ])
        );
        let e = &p.entries()[0];
        assert_eq!(e.types, ["whois-registrant-email"]);
        assert_eq!(e.comment, "whois-registrant-email from DomainTools");
        assert_eq!(e.tags, ["DomainTools", "whois", "whois-registrant-email"]);
        assert_eq!(e.categories, None);
    }

    #[test]
    fn multiplex_tech_lists_skip_no_duplicates_and_others_do() {
        // admin, billing and registrant skip items already collected; tech does not, so a
        // repeated tech item can still be the last (and so the emitted) value.
        let mut p = Payload::new();
        let answer = contacts(json!({
            "admin": {"street": ["A", "B"]},
            "registrant": {"street": ["B", "A"]},
        }));
        map_parsed_whois(&mut p, "x.com", &answer, Flavor::Analyze, now());
        assert_eq!(shown(&p), pairs(&[("text", json!("B"))]));

        let mut p = Payload::new();
        let answer = contacts(json!({
            "admin": {"street": ["A", "B"]},
            "tech": {"street": ["B", "A"]},
        }));
        map_parsed_whois(&mut p, "x.com", &answer, Flavor::Analyze, now());
        assert_eq!(shown(&p), pairs(&[("text", json!("A"))]));
    }

    #[test]
    fn fax_dedups_with_an_equal_phone_and_country_gets_a_valid_type() {
        let mut p = Payload::new();
        let answer = contacts(json!({
            "registrant": {"phone": "+1.555", "fax": "+1.555", "country": "US"}
        }));
        map_parsed_whois(&mut p, "x.com", &answer, Flavor::Analyze, now());
        assert_eq!(
            shown(&p),
            pairs(&[
                ("whois-registrant-country", json!("US")),
                ("whois-registrant-phone", json!("+1.555")),
                ("text", json!("US")),
            ])
        );
        assert_eq!(
            p.entries()[0].types,
            ["text"],
            "whois-registrant-country is not a MISP type"
        );
        assert_eq!(p.entries()[1].types, ["whois-registrant-phone"]);
    }

    #[test]
    fn nested_values_are_their_own() {
        let mut p = Payload::new();
        let answer = json!({"parsed_whois": {
            "registrar": {"name": "", "iana_id": "292", "url": "http://r.example"},
            "other_properties": {"dnssec": "unsigned", "list": ["a", "b"], "zero": 0}
        }});
        map_parsed_whois(&mut p, "x.com", &answer, Flavor::Analyze, now());
        assert_eq!(
            shown(&p),
            pairs(&[
                ("registrar -> iana id", json!("292")),
                ("registrar -> url", json!("http://r.example")),
                ("other properties -> dnssec", json!("unsigned")),
                ("other properties -> list -> *", json!("a")),
                ("other properties -> list -> *", json!("b")),
            ])
        );
        let registrar = &p.entries()[0];
        assert_eq!(registrar.types, ["whois-registrar"]);
        assert_eq!(registrar.comment, "registrar -> iana id from DomainTools");
        assert_eq!(registrar.tags, ["DomainTools", "whois", "registrar"]);
        assert_eq!(
            p.entries()[3].tags,
            ["DomainTools", "whois", "other properties", "list"]
        );
    }

    #[test]
    fn list_items_that_are_objects_are_walked_with_a_star_tag() {
        let mut p = Payload::new();
        simple_parse(
            &mut p,
            "address",
            &json!({"address": [{"street": "Main", "city": "X"}]}),
            &Template::new(&["text"]),
        );
        assert_eq!(
            shown(&p),
            pairs(&[
                ("address -> street", json!("Main")),
                ("address -> city", json!("X")),
            ])
        );
        assert_eq!(
            p.entries()[0].tags,
            ["DomainTools", "whois", "address", "*"]
        );
    }

    #[test]
    fn created_date_gives_the_date_and_the_age() {
        let mut p = Payload::new();
        let answer = json!({"parsed_whois": {"created_date": "1997-09-15T07:00:00+00:00"}});
        map_parsed_whois(&mut p, "Google.com", &answer, Flavor::Pivot, now());
        assert_eq!(
            shown(&p),
            pairs(&[
                ("created date", json!("1997-09-15T07:00:00+00:00")),
                ("domain age", json!("Google.com created 29.2 years ago")),
            ])
        );
        let mut p = Payload::new();
        let answer = json!({"parsed_whois": {"created_date": "sometime"}});
        map_parsed_whois(&mut p, "x.com", &answer, Flavor::Pivot, now());
        assert_eq!(shown(&p), pairs(&[("created date", json!("sometime"))]));
    }

    #[test]
    fn ip_style_records_are_listed_by_pivot_only() {
        let answer = json!({"parsed_whois": {
            "source": "ARIN",
            "contacts": [{"name": "Net Admin", "phone": "+1.555", "address": ["1 St", "Town"], "type": "admin"}],
            "networks": [{"asn": "AS15169", "range": "8.8.8.0 - 8.8.8.255", "status": "assigned", "ref": "https://rdap.example/ip"}]
        }});
        let mut p = Payload::new();
        map_parsed_whois(&mut p, "x.com", &answer, Flavor::Analyze, now());
        assert!(p.is_empty());
        let mut p = Payload::new();
        map_parsed_whois(&mut p, "x.com", &answer, Flavor::Pivot, now());
        assert_eq!(
            shown(&p),
            pairs(&[
                ("address -> *", json!("1 St")),
                ("address -> *", json!("Town")),
                ("phone", json!("+1.555")),
                ("name", json!("Net Admin")),
                ("type", json!("admin")),
                ("asn", json!("AS15169")),
                ("range", json!("8.8.8.0 - 8.8.8.255")),
                ("ref", json!("https://rdap.example/ip")),
                ("status", json!("assigned")),
            ])
        );
        let name = p.entries().iter().find(|e| e.label == "name").unwrap();
        assert_eq!(name.types, ["whois-registrant-name"]);
    }

    #[test]
    fn empty_answers_give_nothing() {
        let mut p = Payload::new();
        map_parsed_whois(&mut p, "x.com", &json!({}), Flavor::Pivot, now());
        map_parsed_whois(
            &mut p,
            "x.com",
            &contacts(json!({"admin": {"email": ""}, "tech": {"street": []}})),
            Flavor::Pivot,
            now(),
        );
        map_domain_profile(&mut p, &json!({}));
        map_domain_profile(
            &mut p,
            &json!({"server": {"ip_address": ""}, "name_servers": []}),
        );
        map_risk(&mut p, &json!({"risk_score": 0, "components": []}));
        map_reverse_whois(&mut p, &json!({"domain_count": {}}), 100);
        map_host_domains(&mut p, &json!({"ip_addresses": {}}), Flavor::Pivot, 100);
        map_host_domains(
            &mut p,
            &json!({"ip_addresses": {"ip_address": "", "domain_count": 3}}),
            Flavor::Pivot,
            100,
        );
        assert!(p.is_empty(), "{:?}", shown(&p));
    }

    #[test]
    fn domain_profile_keeps_zero_counts_and_reads_name_servers() {
        let mut p = Payload::new();
        map_domain_profile(
            &mut p,
            &json!({
                "registrant": {"name": "X", "email": "x@x.com", "domains": 0},
                "server": {"ip_address": "1.2.3.4", "other_domains": 0},
                "name_servers": [{"server": "NS1.X.COM"}, {"product_url": "no server"}, "ns2.x.com"],
                "registration": {"created": "2001-01-01", "registrar": "R"}
            }),
        );
        assert_eq!(
            shown(&p),
            pairs(&[
                ("domain ip address", json!("1.2.3.4")),
                ("registrant name", json!("X")),
                ("registrant email", json!("x@x.com")),
                (
                    "registrant domain count",
                    json!("registrant has 0 other domains")
                ),
                (
                    "co-located domain count",
                    json!("IP is shared with 0 other domains")
                ),
                ("name server", json!("NS1.X.COM")),
                ("name server", json!("ns2.x.com")),
                ("creation date", json!("2001-01-01")),
                ("registrar", json!("R")),
            ])
        );
        let email = &p.entries()[2];
        assert_eq!(email.tags, ["DomainTools", "whois", "registrant email"]);
        assert_eq!(email.categories, None);
        assert_eq!(
            p.entries()[3].categories,
            Some(vec![EXTERNAL_ANALYSIS]),
            "the counts are the entries with a category"
        );
    }

    #[test]
    fn risk_reasons_are_cumulative() {
        let mut p = Payload::new();
        map_risk(
            &mut p,
            &json!({"risk_score": 87, "components": [
                {"name": "proximity", "risk_score": 87},
                {"name": "threat_profile", "risk_score": 50, "threats": ["phishing", "spam"]},
                "not an object"
            ]}),
        );
        assert_eq!(
            shown(&p),
            pairs(&[
                ("risk score", json!(87)),
                ("risk score reason", json!("name: proximity, risk_score: 87")),
                (
                    "risk score reason",
                    json!("name: proximity, risk_score: 87, name: threat_profile, risk_score: 50, threats: ['phishing', 'spam']")
                ),
            ])
        );
        let score = &p.entries()[0];
        assert_eq!(score.comment, "risk score from DomainTools");
        assert_eq!(score.tags, ["DomainTools", "whois"]);
        assert_eq!(p.entries()[1].tags, ["DomainTools", "risk score reason"]);
    }

    #[test]
    fn reverse_whois_lists_domains_then_counts() {
        let mut p = Payload::new();
        map_reverse_whois(
            &mut p,
            &json!({"domain_count": {"current": 2, "historic": 5}, "domains": ["a.com", "", "b.com", "a.com"]}),
            100,
        );
        assert_eq!(
            shown(&p),
            pairs(&[
                ("reverse whois domain", json!("a.com")),
                ("reverse whois domain", json!("b.com")),
                ("current domain count", json!(2)),
                ("historic domain count", json!(5)),
            ])
        );
        assert_eq!(p.entries()[0].types, ["domain"]);
        assert_eq!(p.entries()[0].categories, None);
        assert_eq!(
            p.entries()[2].comment,
            "domain count current from DomainTools"
        );
        assert_eq!(p.entries()[3].tags, ["DomainTools", "reverse whois"]);
    }

    #[test]
    fn reverse_whois_keeps_results_limit_domains_the_counts_and_says_how_many_exist() {
        let mut p = Payload::new();
        map_reverse_whois(
            &mut p,
            &json!({"domain_count": {"current": 2, "historic": 5},
                    "domains": ["a.com", "", "b.com", "c.com", "d.com"]}),
            2,
        );
        assert_eq!(
            shown(&p),
            pairs(&[
                ("reverse whois domain", json!("a.com")),
                ("reverse whois domain", json!("b.com")),
                (
                    "reverse whois domains",
                    json!("DomainTools Reverse Whois lists 4 domains; only the first 2 are shown (results_limit is 2).")
                ),
                ("current domain count", json!(2)),
                ("historic domain count", json!(5)),
            ])
        );
        let mut all = Payload::new();
        map_reverse_whois(&mut all, &json!({"domains": ["a.com", "b.com"]}), 2);
        assert_eq!(all.len(), 2, "no note when nothing is left out");
    }

    #[test]
    fn host_domains_count_then_domains_up_to_the_limit() {
        let answer = json!({"ip_addresses": {"ip_address": "1.2.3.4", "domain_count": 4,
                            "domain_names": ["a.com", "", "b.com", "c.com"]}});
        let mut p = Payload::new();
        map_host_domains(&mut p, &answer, Flavor::Analyze, 100);
        assert_eq!(shown(&p), pairs(&[("co-located domain count", json!(4))]));

        let mut p = Payload::new();
        map_host_domains(&mut p, &answer, Flavor::Pivot, 3);
        assert_eq!(
            shown(&p),
            pairs(&[
                ("co-located domain count", json!(4)),
                ("co-located domain", json!("a.com")),
                ("co-located domain", json!("b.com")),
            ]),
            "the empty name uses up one of the three places"
        );
        let mut p = Payload::new();
        map_host_domains(&mut p, &answer, Flavor::Pivot, 0);
        assert_eq!(p.len(), 1);
    }

    fn context() -> Context {
        Context {
            client: domaintools::Client::new(domaintools::ClientConfig::new("MISP", "test"))
                .unwrap(),
            credentials: domaintools::Credentials::new("u", "k"),
            settings: super::super::Settings::default(),
            form: crate::misp::Form::Hover,
            now: now(),
            demo: false,
            module: "DomainTools-Analyze",
            started: tokio::time::Instant::now(),
            budget: std::time::Duration::from_secs(10),
        }
    }

    #[test]
    fn nothing_found_and_nothing_failed_is_no_results_not_an_unknown_error() {
        let error = finish(&context(), &Payload::new(), &Failures::default()).unwrap_err();
        assert!(matches!(error, ModuleError::NoResults(_)));
        assert_eq!(error.to_string(), "No results found.");

        let mut failures = Failures::default();
        failures.take("Risk", Err(domaintools::Error::Decode("x".into())));
        let reply = finish(&context(), &Payload::new(), &failures).unwrap();
        assert!(reply.results.is_empty());
        assert_eq!(
            reply.error.as_deref(),
            Some(
                "Risk lookup failed: the DomainTools API sent an answer that could not be read (x)"
            )
        );
    }

    #[test]
    fn mappers_survive_answers_of_any_shape() {
        let odd = [
            json!(null),
            json!(0),
            json!("x"),
            json!([]),
            json!({}),
            json!([1, "a", null, {"b": []}]),
            json!({"parsed_whois": "x"}),
            json!({"parsed_whois": {"contacts": "admin", "registrar": [1, {"a": null}], "created_date": 5}}),
            json!({"parsed_whois": {"source": "RIPE", "contacts": {"a": {"name": "n"}}, "networks": "x"}}),
            json!({"parsed_whois": {"contacts": {"admin": {"email": [null, 1, ["x"]]}}, "other_properties": {"a": {"b": {"c": [{"d": 1}]}}}}}),
            json!({"server": "x", "registrant": [], "name_servers": {"server": "a"}, "registration": {"created": null}}),
            json!({"risk_score": {"x": 1}, "components": {"name": "x"}}),
            json!({"components": [[1, 2], {"name": {"nested": true}}]}),
            json!({"domains": "a.com", "domain_count": ["current"]}),
            json!({"domains": [null, 1, {"x": 1}], "domain_count": {"current": null}}),
            json!({"ip_addresses": [{"ip_address": "1.2.3.4"}]}),
            json!({"ip_addresses": {"ip_address": 7, "domain_names": "a.com"}}),
        ];
        for answer in &odd {
            for flavor in [Flavor::Analyze, Flavor::Pivot] {
                let p = map_domain(
                    "x.com",
                    Some(answer),
                    Some(answer),
                    Some(answer),
                    flavor,
                    now(),
                );
                let mut p2 = Payload::new();
                map_reverse_whois(&mut p2, answer, 100);
                map_host_domains(&mut p2, answer, flavor, u64::MAX);
                for form in [crate::misp::Form::Hover, crate::misp::Form::Stored] {
                    crate::misp::render(p.entries(), form, None);
                    crate::misp::render(p2.entries(), form, None);
                }
            }
        }
    }

    #[test]
    fn failures_read_as_one_message() {
        let api = |m: &str| domaintools::Error::Api {
            status: 403,
            message: m.into(),
        };
        let mut f = Failures::default();
        assert_eq!(f.message(), None);
        assert!(f.take("Parsed Whois", Err(api("No."))).is_none());
        assert_eq!(
            f.message().unwrap(),
            "Parsed Whois lookup failed: DomainTools API error 403: No."
        );
        assert!(f.take("Domain Profile", Ok(json!({}))).is_some());
        f.take("Risk", Err(api("No.")));
        f.take(
            "Hosting History",
            Err(domaintools::Error::Timeout(std::time::Duration::from_secs(
                8,
            ))),
        );
        assert_eq!(
            f.message().unwrap(),
            "Parsed Whois and Risk lookups failed: DomainTools API error 403: No.; Hosting History lookup failed: DomainTools API did not answer within 8 s"
        );
        let mut three = Failures::default();
        for s in ["A", "B", "C"] {
            three.take(s, Err(api("x")));
        }
        assert!(three
            .message()
            .unwrap()
            .starts_with("A, B and C lookups failed"));
    }
}
