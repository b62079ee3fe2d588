//! From Iris Investigate records to STIX 2.1 objects: a pure function of the records, the
//! enriched observable, the markings and the clock.
//!
//! What each record gives (the seed's table; descriptions as the Python connector writes them):
//! - `ip[].address` → IPv4-Addr, `resolves-to` domain→IP ("domain-ip"); `ip[].asn[]` →
//!   Autonomous-System, `belongs-to` IP→AS;
//! - `mx[].domain`, `name_server[].domain` → Domain-Name, `resolves-to` ("mx-server",
//!   "name-server"), and their `ip[]` → `resolves-to` from that domain ("mx-server-ip",
//!   "name-server-ip");
//! - `soa_email`, `ssl_email`, `additional_whois_email` and the four contacts' `email` →
//!   Email-Addr, `related-to` ("DNS/SOA", "SSL", "whois", "email-admin", "email-billing",
//!   "email-registrant", "email-technical");
//! - `email_domain` and `redirect_domain` → Domain-Name, `resolves-to` ("email_domain",
//!   "redirect");
//! - `domain_risk.risk_score` → `score` in OpenCTI's SCO extension (a `property-extension`, as
//!   OpenCTI's own exporter writes it) on the record's own domain: the enriched observable, or
//!   each domain of an IP pivot.
//!
//! Where this differs from the Python connector, on purpose (docs/opencti.md):
//! - the score goes on the domain it rates, never on its neighbours, and a missing score is
//!   left missing instead of becoming 100;
//! - dates: one known date is used alone, an unreadable one is skipped, never a crash; they go
//!   only on relationships from the record's domain (they describe its registration), so the
//!   same IP→AS or name-server→IP fact seen from many domains is one relationship;
//! - no relationship from an object to itself (the self-redirect compares values now);
//! - every object once: repeated objects are merged, and one relationship found through
//!   several fields keeps every description ("email-admin, email-registrant");
//! - every created object, relationships included, carries a TLP marking.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Map, Value};

use super::ids;
use super::validate;
use super::{Tlp, OPENCTI_SCO_EXTENSION};

/// The author of every created object: an organization named "DomainTools".
pub(crate) const AUTHOR_NAME: &str = "DomainTools";
const AUTHOR_DESCRIPTION: &str = "DomainTools provides WHOIS, DNS and domain risk data. \
     Objects authored by this identity come from DomainTools Iris Investigate.";

/// Mail and name servers, in the Python connector's order.
const SERVER_FIELDS: [(&str, &str); 2] = [("mx", "mx-server"), ("name_server", "name-server")];
/// E-mail fields and their descriptions, in the Python connector's order (without its dead
/// `email` key, which Iris never sends).
const EMAIL_FIELDS: [(&str, &str); 7] = [
    ("soa_email", "DNS/SOA"),
    ("ssl_email", "SSL"),
    ("additional_whois_email", "whois"),
    ("admin_contact", "email-admin"),
    ("billing_contact", "email-billing"),
    ("registrant_contact", "email-registrant"),
    ("technical_contact", "email-technical"),
];

/// The observable types this enrichment accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservableKind {
    /// `domain-name`: Iris Investigate by `domain`.
    DomainName,
    /// `ipv4-addr`: Iris Investigate by `ip`, each domain found mapped like a domain.
    Ipv4Addr,
}

impl ObservableKind {
    /// The STIX type name.
    pub(crate) fn stix_type(self) -> &'static str {
        match self {
            ObservableKind::DomainName => "domain-name",
            ObservableKind::Ipv4Addr => "ipv4-addr",
        }
    }

    /// OpenCTI's entity type name.
    pub(crate) fn opencti_type(self) -> &'static str {
        match self {
            ObservableKind::DomainName => "Domain-Name",
            ObservableKind::Ipv4Addr => "IPv4-Addr",
        }
    }

    /// From OpenCTI's entity type name, case-insensitively (the platform's scope matching is
    /// case-insensitive too, and the Python connector's default scope says "Ipv4-Addr").
    pub(crate) fn from_opencti_type(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("Domain-Name") {
            Some(ObservableKind::DomainName)
        } else if name.eq_ignore_ascii_case("IPv4-Addr") {
            Some(ObservableKind::Ipv4Addr)
        } else {
            None
        }
    }
}

/// The observable being enriched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observable {
    /// Domain or IPv4.
    pub kind: ObservableKind,
    /// Its value, as looked up.
    pub value: String,
    /// Its STIX id.
    pub id: String,
    /// Whether it already exists where the bundle goes (an OpenCTI observable): then the
    /// bundle only updates its score and leaves its markings and author alone. When false (the
    /// `stix` command) the bundle creates it like any other object.
    pub exists: bool,
}

impl Observable {
    /// A value given on the command line: an IPv4 address, or a domain name (lowercased, as
    /// DomainTools stores names).
    pub fn parse(input: &str) -> Result<Self, String> {
        let value = input.trim();
        if validate::is_ipv4(value) {
            return Ok(Self {
                kind: ObservableKind::Ipv4Addr,
                value: value.to_owned(),
                id: ids::ipv4_addr_id(value),
                exists: false,
            });
        }
        let lower = value.to_lowercase();
        if validate::is_domain(&lower) {
            return Ok(Self {
                id: ids::domain_name_id(&lower),
                kind: ObservableKind::DomainName,
                value: lower,
                exists: false,
            });
        }
        Err(format!(
            "{:?} is neither a domain name nor an IPv4 address",
            truncate(input, 100)
        ))
    }

    /// An observable the platform already holds, with its standard id.
    pub fn existing(kind: ObservableKind, value: &str, standard_id: &str) -> Result<Self, String> {
        let valid = match kind {
            ObservableKind::DomainName => validate::is_domain(value),
            ObservableKind::Ipv4Addr => validate::is_ipv4(value),
        };
        if !valid {
            return Err(format!(
                "the {} value {:?} cannot be looked up in DomainTools",
                kind.opencti_type(),
                truncate(value, 100)
            ));
        }
        let prefix = format!("{}--", kind.stix_type());
        if !standard_id.starts_with(&prefix) {
            return Err(format!(
                "the observable's id {:?} is not a {} id",
                truncate(standard_id, 100),
                kind.stix_type()
            ));
        }
        Ok(Self {
            kind,
            value: value.to_owned(),
            id: standard_id.to_owned(),
            exists: true,
        })
    }
}

/// How objects are marked, attributed and dated.
#[derive(Debug, Clone)]
pub struct MapOptions {
    /// The TLP marking of every created observable (default TLP:AMBER).
    pub marking: Tlp,
    /// The TLP marking of every relationship: never less restrictive than `marking`, and the
    /// connector raises it to the enriched observable's own TLP, since a relationship says
    /// something about that observable.
    pub(crate) relationship_marking: Tlp,
    /// `confidence` on relationships, when set.
    pub confidence: Option<u8>,
    /// `created`/`modified` of the objects created now.
    pub now: DateTime<Utc>,
}

impl MapOptions {
    /// Everything marked `marking`, no confidence.
    pub fn new(marking: Tlp, now: DateTime<Utc>) -> Self {
        Self {
            marking,
            relationship_marking: marking,
            confidence: None,
            now,
        }
    }
}

/// A value left out because it is not what its field should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// What it should have been ("domain", "IPv4 address", "e-mail address", …).
    pub what: &'static str,
    /// The value, shortened to 100 characters.
    pub value: String,
    /// The record (domain) it was found in.
    pub record: String,
}

/// The mapping's result.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// Author identity first, then the enriched observable, then everything found, each once.
    pub objects: Vec<Value>,
    /// Values skipped as invalid.
    pub skipped: Vec<Skipped>,
    /// Records mapped (one per domain).
    pub records: usize,
    /// The enriched domain's risk score, when DomainTools gave one.
    pub score: Option<u64>,
}

impl Mapping {
    /// Objects other than the author and the enriched observable: what the enrichment found.
    pub fn found(&self) -> usize {
        self.objects.len().saturating_sub(2)
    }
}

/// Maps Iris Investigate `records` found for `observable`.
pub fn map_records(observable: &Observable, records: &[Value], options: &MapOptions) -> Mapping {
    let mut builder = Builder::new(options);
    builder.push_observable(observable);
    for record in records {
        builder.map_record(observable, record);
    }
    Mapping {
        objects: builder.objects,
        skipped: builder.skipped,
        records: builder.records,
        score: builder.score,
    }
}

/// A STIX 2.1 bundle (which, unlike 2.0, has no `spec_version` of its own).
pub fn bundle(objects: Vec<Value>, uuid: &str) -> Value {
    json!({"type": "bundle", "id": format!("bundle--{uuid}"), "objects": objects})
}

/// The relationship dates a record gives.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: Option<NaiveDate>,
    stop: Option<NaiveDate>,
}

impl Span {
    /// pycti hashes `datetime.isoformat()`: no zone designator.
    fn naive(date: Option<NaiveDate>) -> Option<String> {
        date.map(|d| format!("{}T00:00:00", d.format("%Y-%m-%d")))
    }

    fn stix(date: NaiveDate) -> String {
        format!("{}T00:00:00Z", date.format("%Y-%m-%d"))
    }
}

/// The kinds of SCO keyed by `value`.
#[derive(Debug, Clone, Copy)]
enum ValueSco {
    Domain,
    Ipv4,
    Email,
}

impl ValueSco {
    fn stix_type(self) -> &'static str {
        match self {
            ValueSco::Domain => "domain-name",
            ValueSco::Ipv4 => "ipv4-addr",
            ValueSco::Email => "email-addr",
        }
    }

    fn what(self) -> &'static str {
        match self {
            ValueSco::Domain => "domain",
            ValueSco::Ipv4 => "IPv4 address",
            ValueSco::Email => "e-mail address",
        }
    }

    fn valid(self, value: &str) -> bool {
        match self {
            ValueSco::Domain => validate::is_domain(value),
            ValueSco::Ipv4 => validate::is_ipv4(value),
            ValueSco::Email => validate::is_email(value),
        }
    }
}

struct Builder<'a> {
    options: &'a MapOptions,
    author: String,
    timestamp: String,
    objects: Vec<Value>,
    /// Position of each id in `objects`: the one place duplicates are caught.
    index: HashMap<String, usize>,
    skipped: Vec<Skipped>,
    records: usize,
    score: Option<u64>,
}

impl<'a> Builder<'a> {
    fn new(options: &'a MapOptions) -> Self {
        let author = ids::identity_id(AUTHOR_NAME, "organization");
        let timestamp = options.now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let mut builder = Self {
            options,
            author: author.clone(),
            timestamp: timestamp.clone(),
            objects: Vec::new(),
            index: HashMap::new(),
            skipped: Vec::new(),
            records: 0,
            score: None,
        };
        // Unmarked on purpose: it is the author of every enrichment and carries no
        // DomainTools data; a marking would hide the author from users without that clearance.
        builder.push(json!({
            "type": "identity",
            "spec_version": "2.1",
            "id": author,
            "created": timestamp,
            "modified": timestamp,
            "name": AUTHOR_NAME,
            "description": AUTHOR_DESCRIPTION,
            "identity_class": "organization",
        }));
        builder
    }

    /// Adds an object unless its id is already there; says whether it was added.
    fn push(&mut self, object: Value) -> bool {
        let Some(id) = object.get("id").and_then(Value::as_str).map(str::to_owned) else {
            return false;
        };
        if self.index.contains_key(&id) {
            return false;
        }
        self.index.insert(id, self.objects.len());
        self.objects.push(object);
        true
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Value> {
        let position = *self.index.get(id)?;
        self.objects.get_mut(position)
    }

    fn skip(&mut self, what: &'static str, value: &str, record: &str) {
        tracing::debug!(what, value = %truncate(value, 100), record, "skipping an invalid value");
        self.skipped.push(Skipped {
            what,
            value: truncate(value, 100),
            record: truncate(record, 100),
        });
    }

    fn push_observable(&mut self, observable: &Observable) {
        let object = if observable.exists {
            json!({
                "type": observable.kind.stix_type(),
                "spec_version": "2.1",
                "id": observable.id,
                "value": observable.value,
            })
        } else {
            self.new_sco(
                observable.kind.stix_type(),
                &observable.id,
                "value",
                json!(observable.value),
            )
        };
        self.push(object);
    }

    fn new_sco(&self, stix_type: &str, id: &str, key: &str, value: Value) -> Value {
        let mut object = Map::new();
        object.insert("type".into(), stix_type.into());
        object.insert("spec_version".into(), "2.1".into());
        object.insert("id".into(), id.into());
        object.insert(key.into(), value);
        object.insert(
            "object_marking_refs".into(),
            json!([self.options.marking.marking_id()]),
        );
        object.insert(
            "extensions".into(),
            json!({ OPENCTI_SCO_EXTENSION: {
                "extension_type": "property-extension",
                "created_by_ref": self.author,
            } }),
        );
        Value::Object(object)
    }

    /// The id of the SCO for `value`, created if new; `None` (and counted) when invalid.
    fn value_sco(&mut self, kind: ValueSco, value: &str, record: &str) -> Option<String> {
        if !kind.valid(value) {
            self.skip(kind.what(), value, record);
            return None;
        }
        let id = match kind {
            ValueSco::Domain => ids::domain_name_id(value),
            ValueSco::Ipv4 => ids::ipv4_addr_id(value),
            ValueSco::Email => ids::email_addr_id(value),
        };
        if !self.index.contains_key(&id) {
            let object = self.new_sco(kind.stix_type(), &id, "value", json!(value));
            self.push(object);
        }
        Some(id)
    }

    /// The autonomous system numbered `raw` (an integer, or digits with an optional "AS").
    fn autonomous_system(&mut self, raw: &Value, record: &str) -> Option<String> {
        let number = match raw {
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
        .and_then(|n| u32::try_from(n).ok());
        let Some(number) = number else {
            self.skip("AS number", &compact(raw), record);
            return None;
        };
        let id = ids::autonomous_system_id(number);
        if !self.index.contains_key(&id) {
            let object = self.new_sco("autonomous-system", &id, "number", json!(number));
            self.push(object);
        }
        Some(id)
    }

    fn set_score(&mut self, id: &str, score: u64) {
        let Some(Value::Object(object)) = self.get_mut(id) else {
            return;
        };
        // In OpenCTI's extension only: a top-level `x_opencti_score` beside it says the same
        // thing twice, and a STIX validator flags it as a custom property outside an extension.
        let extensions = object
            .entry("extensions")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(extensions) = extensions {
            let extension = extensions
                .entry(OPENCTI_SCO_EXTENSION)
                .or_insert_with(|| json!({ "extension_type": "property-extension" }));
            if let Value::Object(extension) = extension {
                extension.insert("score".into(), json!(score));
            }
        }
    }

    fn relate(
        &mut self,
        relationship_type: &str,
        source: &str,
        target: &str,
        description: Option<&str>,
        span: Span,
    ) {
        if source == target {
            return;
        }
        let id = ids::relationship_id(
            relationship_type,
            source,
            target,
            Span::naive(span.start).as_deref(),
            Span::naive(span.stop).as_deref(),
        );
        if let Some(Value::Object(existing)) = self.get_mut(&id) {
            if let Some(description) = description {
                merge_description(existing, description);
            }
            return;
        }
        let mut object = Map::new();
        object.insert("type".into(), "relationship".into());
        object.insert("spec_version".into(), "2.1".into());
        object.insert("id".into(), id.into());
        object.insert("created".into(), self.timestamp.clone().into());
        object.insert("modified".into(), self.timestamp.clone().into());
        object.insert("relationship_type".into(), relationship_type.into());
        if let Some(description) = description {
            object.insert("description".into(), description.into());
        }
        object.insert("source_ref".into(), source.into());
        object.insert("target_ref".into(), target.into());
        if let Some(start) = span.start {
            object.insert("start_time".into(), Span::stix(start).into());
        }
        if let Some(stop) = span.stop {
            object.insert("stop_time".into(), Span::stix(stop).into());
        }
        if let Some(confidence) = self.options.confidence {
            object.insert("confidence".into(), json!(confidence.min(100)));
        }
        object.insert("created_by_ref".into(), self.author.clone().into());
        let marking = self.options.relationship_marking.max(self.options.marking);
        object.insert("object_marking_refs".into(), json!([marking.marking_id()]));
        self.push(Value::Object(object));
    }

    fn map_record(&mut self, observable: &Observable, record: &Value) {
        let Some(domain) = pivot_str(record, "domain") else {
            self.skip(
                "domain",
                &compact(record.get("domain").unwrap_or(&Value::Null)),
                "",
            );
            return;
        };
        let domain = domain.to_owned();
        let is_observable = observable.kind == ObservableKind::DomainName
            && domain.eq_ignore_ascii_case(&observable.value);
        let source = if is_observable {
            observable.id.clone()
        } else {
            match self.value_sco(ValueSco::Domain, &domain, &domain) {
                Some(id) => id,
                None => return,
            }
        };
        self.records += 1;

        if let Some(score) = self.risk_score(record, &domain) {
            self.set_score(&source, score);
            if is_observable {
                self.score = Some(score);
            }
        }
        let span = self.span(record, &domain);
        let none = Span::default();

        for ip in list(record, "ip") {
            let Some(address) = pivot_str(ip, "address") else {
                continue;
            };
            let Some(ip_id) = self.value_sco(ValueSco::Ipv4, address, &domain) else {
                continue;
            };
            self.relate("resolves-to", &source, &ip_id, Some("domain-ip"), span);
            for asn in list(ip, "asn") {
                let raw = asn.get("value").unwrap_or(asn);
                if let Some(as_id) = self.autonomous_system(raw, &domain) {
                    self.relate("belongs-to", &ip_id, &as_id, None, none);
                }
            }
        }
        // Iris matched the domain on the pivot IP: keep the link even if the record's A
        // records have since moved on.
        if observable.kind == ObservableKind::Ipv4Addr {
            self.relate(
                "resolves-to",
                &source,
                &observable.id,
                Some("domain-ip"),
                span,
            );
        }

        for (field, description) in SERVER_FIELDS {
            for server in list(record, field) {
                let Some(server_domain) = pivot_str(server, "domain") else {
                    continue;
                };
                if server_domain.eq_ignore_ascii_case(&domain) {
                    continue;
                }
                let Some(server_id) = self.value_sco(ValueSco::Domain, server_domain, &domain)
                else {
                    continue;
                };
                self.relate("resolves-to", &source, &server_id, Some(description), span);
                let ip_description = format!("{description}-ip");
                for ip in list(server, "ip") {
                    let Some(address) = item_str(ip) else {
                        continue;
                    };
                    if let Some(ip_id) = self.value_sco(ValueSco::Ipv4, address, &domain) {
                        self.relate(
                            "resolves-to",
                            &server_id,
                            &ip_id,
                            Some(&ip_description),
                            none,
                        );
                    }
                }
            }
        }

        for (field, description) in EMAIL_FIELDS {
            let emails = if field.ends_with("_contact") {
                record
                    .get(field)
                    .map(|contact| list(contact, "email"))
                    .unwrap_or(&[])
            } else {
                list(record, field)
            };
            for email in emails {
                let Some(address) = item_str(email) else {
                    continue;
                };
                if let Some(email_id) = self.value_sco(ValueSco::Email, address, &domain) {
                    self.relate("related-to", &source, &email_id, Some(description), span);
                }
            }
        }

        for email_domain in list(record, "email_domain") {
            let Some(value) = item_str(email_domain) else {
                continue;
            };
            if value.eq_ignore_ascii_case(&domain) {
                continue;
            }
            if let Some(id) = self.value_sco(ValueSco::Domain, value, &domain) {
                self.relate("resolves-to", &source, &id, Some("email_domain"), span);
            }
        }

        if let Some(redirect) = pivot_str(record, "redirect_domain") {
            if !redirect.eq_ignore_ascii_case(&domain) {
                if let Some(id) = self.value_sco(ValueSco::Domain, redirect, &domain) {
                    self.relate("resolves-to", &source, &id, Some("redirect"), span);
                }
            }
        }
    }

    /// `domain_risk.risk_score`, 0 to 100; absent stays absent (the Python connector made it
    /// 100, rating unknown domains as the most dangerous).
    fn risk_score(&mut self, record: &Value, domain: &str) -> Option<u64> {
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
        if score.is_none() {
            self.skip("risk score", &compact(raw), domain);
        }
        score
    }

    /// Creation and expiration dates; either may be missing or unreadable on its own.
    fn span(&mut self, record: &Value, domain: &str) -> Span {
        let start = self.date(record, "create_date", domain);
        let stop = self.date(record, "expiration_date", domain);
        match (start, stop) {
            (Some(start), Some(stop)) if start >= stop => {
                // One of the two is wrong and nothing says which: use neither.
                self.skip(
                    "date range",
                    &format!("created {start}, expires {stop}"),
                    domain,
                );
                Span::default()
            }
            _ => Span { start, stop },
        }
    }

    /// A `YYYY-MM-DD` date field; an unreadable one is skipped and counted.
    fn date(&mut self, record: &Value, field: &str, domain: &str) -> Option<NaiveDate> {
        let text = pivot_str(record, field)?;
        match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(date) => Some(date),
            Err(_) => {
                self.skip("date", text, domain);
                None
            }
        }
    }
}

/// Appends `description` to a relationship's, unless already there.
fn merge_description(object: &mut Map<String, Value>, description: &str) {
    match object.get("description").and_then(Value::as_str) {
        Some(existing) if existing.split(", ").any(|d| d == description) => {}
        Some(existing) => {
            let merged = format!("{existing}, {description}");
            object.insert("description".into(), merged.into());
        }
        None => {
            object.insert("description".into(), description.into());
        }
    }
}

/// The elements of an array member, or none.
fn list<'v>(value: &'v Value, key: &str) -> &'v [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// An Iris pivot value (`{"value": …, "count": …}`) or a plain string; empty means absent.
fn item_str(item: &Value) -> Option<&str> {
    let text = match item {
        Value::String(s) => s.as_str(),
        Value::Object(members) => members.get("value")?.as_str()?,
        _ => return None,
    };
    (!text.trim().is_empty()).then_some(text)
}

/// [`item_str`] of a member.
fn pivot_str<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    item_str(value.get(key)?)
}

/// A JSON value as short text, for skip reports.
fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// At most `max` characters of `text`.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn options() -> MapOptions {
        MapOptions::new(Tlp::Amber, now())
    }

    fn by_id<'m>(mapping: &'m Mapping, id: &str) -> &'m Value {
        mapping
            .objects
            .iter()
            .find(|o| o["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing"))
    }

    fn relationships<'m>(mapping: &'m Mapping, description: &str) -> Vec<&'m Value> {
        mapping
            .objects
            .iter()
            .filter(|o| o["type"] == "relationship" && o["description"] == description)
            .collect()
    }

    fn record() -> Value {
        json!({
            "domain": "example.com",
            "create_date": {"value": "2001-02-03", "count": 1},
            "expiration_date": {"value": "2031-02-03", "count": 1},
            "domain_risk": {"risk_score": 87},
            "ip": [
                {"address": {"value": "192.0.2.1"}, "asn": [{"value": 64500}, {"value": "AS64501"}]},
                {"address": {"value": "not-an-ip"}, "asn": [{"value": 64500}]},
                {"address": {"value": "192.0.2.2"}, "asn": [{"value": -1}]}
            ],
            "mx": [{"host": {"value": "mx.mail.example"}, "domain": {"value": "mail.example"},
                    "ip": [{"value": "198.51.100.7"}]}],
            "name_server": [
                {"domain": {"value": "dns.example"}, "ip": [{"value": "198.51.100.53"}]},
                {"domain": {"value": "dns.example"}, "ip": [{"value": "198.51.100.53"}]},
                {"domain": {"value": "example.com"}, "ip": [{"value": "203.0.113.9"}]}
            ],
            "soa_email": [{"value": "hostmaster@dns.example"}],
            "additional_whois_email": [{"value": "abuse@registrar.example"}, {"value": "redacted for privacy"}],
            "admin_contact": {"email": [{"value": "owner@example.com"}]},
            "registrant_contact": {"email": [{"value": "owner@example.com"}]},
            "billing_contact": {"email": []},
            "email_domain": [{"value": "registrar.example"}, {"value": "example.com"}, {"value": "dns.example"}],
            "redirect_domain": {"value": "example.com"}
        })
    }

    #[test]
    fn domain_enrichment_maps_every_field_once() {
        let observable = Observable::parse("Example.COM").unwrap();
        assert_eq!(observable.value, "example.com");
        let mapping = map_records(&observable, &[record()], &options());

        // Score on the enriched domain only.
        let domain = by_id(&mapping, &observable.id);
        assert_eq!(domain["extensions"][OPENCTI_SCO_EXTENSION]["score"], 87);
        assert!(
            domain.get("x_opencti_score").is_none(),
            "the score once, in the extension"
        );
        assert_eq!(mapping.score, Some(87));
        let scored = mapping.objects.iter().filter(|o| {
            o["extensions"][OPENCTI_SCO_EXTENSION]
                .get("score")
                .is_some()
        });
        assert_eq!(scored.count(), 1);
        // Every OpenCTI extension says what kind it is (the STIX 2.1 rule for extensions).
        for object in &mapping.objects {
            if let Some(extension) = object["extensions"].get(OPENCTI_SCO_EXTENSION) {
                assert_eq!(
                    extension["extension_type"], "property-extension",
                    "{object}"
                );
            }
        }

        // Every id once.
        let mut ids: Vec<&str> = mapping
            .objects
            .iter()
            .filter_map(|o| o["id"].as_str())
            .collect();
        let total = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), total, "duplicate ids");

        // No self-loops: neither the name server nor the e-mail domain nor the redirect that
        // equal the domain.
        assert!(mapping
            .objects
            .iter()
            .filter(|o| o["type"] == "relationship")
            .all(|o| o["source_ref"] != o["target_ref"]));
        assert!(relationships(&mapping, "redirect").is_empty());
        assert!(!mapping.objects.iter().any(|o| o["value"] == "203.0.113.9"));

        // Two name-server entries for one domain: one relationship. dns.example is also an
        // e-mail domain: one relationship with both descriptions.
        let dns = ids::domain_name_id("dns.example");
        let to_dns: Vec<&Value> = mapping
            .objects
            .iter()
            .filter(|o| o["target_ref"] == dns.as_str())
            .collect();
        assert_eq!(to_dns.len(), 1);
        assert_eq!(to_dns[0]["description"], "name-server, email_domain");
        let owner = ids::email_addr_id("owner@example.com");
        let to_owner: Vec<&Value> = mapping
            .objects
            .iter()
            .filter(|o| o["target_ref"] == owner.as_str())
            .collect();
        assert_eq!(to_owner.len(), 1);
        assert_eq!(to_owner[0]["description"], "email-admin, email-registrant");

        // Dates only on relationships from the enriched domain.
        let a_record = &relationships(&mapping, "domain-ip")[0];
        assert_eq!(a_record["start_time"], "2001-02-03T00:00:00Z");
        assert_eq!(a_record["stop_time"], "2031-02-03T00:00:00Z");
        assert_eq!(
            a_record["id"],
            ids::relationship_id(
                "resolves-to",
                &observable.id,
                &ids::ipv4_addr_id("192.0.2.1"),
                Some("2001-02-03T00:00:00"),
                Some("2031-02-03T00:00:00"),
            )
        );
        let ns_ip = &relationships(&mapping, "name-server-ip")[0];
        assert!(ns_ip.get("start_time").is_none());
        let belongs: Vec<&Value> = mapping
            .objects
            .iter()
            .filter(|o| o["relationship_type"] == "belongs-to")
            .collect();
        assert_eq!(belongs.len(), 2, "AS64500 and AS64501, from 192.0.2.1");
        assert!(belongs.iter().all(|o| o.get("start_time").is_none()));

        // Markings everywhere but on the author; the enriched domain is created here.
        for object in &mapping.objects {
            if object["type"] == "identity" {
                assert!(object.get("object_marking_refs").is_none());
            } else {
                assert_eq!(
                    object["object_marking_refs"],
                    json!([Tlp::Amber.marking_id()])
                );
            }
        }

        // Invalid values skipped and counted: an IP, an AS number, an e-mail.
        let skipped: Vec<(&str, &str)> = mapping
            .skipped
            .iter()
            .map(|s| (s.what, s.value.as_str()))
            .collect();
        assert_eq!(
            skipped,
            [
                ("IPv4 address", "not-an-ip"),
                ("AS number", "-1"),
                ("e-mail address", "redacted for privacy"),
            ]
        );
        assert_eq!(mapping.records, 1);
    }

    #[test]
    fn one_date_is_used_alone_and_bad_dates_are_skipped() {
        let observable = Observable::parse("example.com").unwrap();
        let mut only_expiration = record();
        only_expiration["create_date"] = json!({"value": ""});
        let mapping = map_records(&observable, &[only_expiration], &options());
        let a = relationships(&mapping, "domain-ip")[0];
        assert!(a.get("start_time").is_none());
        assert_eq!(a["stop_time"], "2031-02-03T00:00:00Z");

        let mut only_creation = record();
        only_creation["expiration_date"] = json!({"value": "31/12/2030"});
        let mapping = map_records(&observable, &[only_creation], &options());
        let a = relationships(&mapping, "domain-ip")[0];
        assert_eq!(a["start_time"], "2001-02-03T00:00:00Z");
        assert!(a.get("stop_time").is_none());
        assert!(mapping
            .skipped
            .iter()
            .any(|s| s.what == "date" && s.value == "31/12/2030"));

        let mut reversed = record();
        reversed["expiration_date"] = json!({"value": "1999-01-01"});
        let mapping = map_records(&observable, &[reversed], &options());
        let a = relationships(&mapping, "domain-ip")[0];
        assert!(a.get("start_time").is_none() && a.get("stop_time").is_none());
        assert!(mapping.skipped.iter().any(|s| s.what == "date range"));
    }

    #[test]
    fn missing_score_stays_missing() {
        let observable = Observable::parse("example.com").unwrap();
        let mut unscored = record();
        if let Some(members) = unscored.as_object_mut() {
            members.remove("domain_risk");
        }
        let mapping = map_records(&observable, &[unscored], &options());
        assert!(mapping
            .objects
            .iter()
            .all(|o| o["extensions"][OPENCTI_SCO_EXTENSION]
                .get("score")
                .is_none()));
        assert_eq!(mapping.score, None);
    }

    #[test]
    fn ip_enrichment_links_each_domain_to_the_ip_with_its_own_score() {
        let observable = Observable::existing(
            ObservableKind::Ipv4Addr,
            "192.0.2.1",
            &ids::ipv4_addr_id("192.0.2.1"),
        )
        .unwrap();
        let mut second = record();
        second["domain"] = json!("other.example");
        second["domain_risk"] = json!({"risk_score": 12});
        second["ip"] = json!([]);
        let mut invalid = record();
        invalid["domain"] = json!("not a domain");
        let mapping = map_records(&observable, &[record(), second, invalid], &options());
        assert_eq!(mapping.records, 2);
        assert_eq!(mapping.score, None);

        // The IP is the platform's: not re-marked, not re-attributed, sent once.
        let ip = by_id(&mapping, &observable.id);
        assert!(ip.get("object_marking_refs").is_none() && ip.get("extensions").is_none());
        assert_eq!(
            mapping
                .objects
                .iter()
                .filter(|o| o["id"] == observable.id.as_str())
                .count(),
            1
        );

        for (domain, score) in [("example.com", 87), ("other.example", 12)] {
            let id = ids::domain_name_id(domain);
            assert_eq!(
                by_id(&mapping, &id)["extensions"][OPENCTI_SCO_EXTENSION]["score"],
                score
            );
            let links = mapping
                .objects
                .iter()
                .filter(|o| {
                    o["source_ref"] == id.as_str() && o["target_ref"] == observable.id.as_str()
                })
                .count();
            assert_eq!(links, 1, "{domain} linked to the IP once");
        }
        assert!(mapping
            .skipped
            .iter()
            .any(|s| s.what == "domain" && s.value == "not a domain"));
    }

    #[test]
    fn records_of_any_shape_never_panic() {
        let observable = Observable::parse("example.com").unwrap();
        let shapes = [
            json!(null),
            json!([]),
            json!("example.com"),
            json!({"domain": 5}),
            json!({"domain": "example.com", "ip": "x", "mx": [1, null, {"domain": []}],
                   "name_server": {"a": 1}, "soa_email": [null, 3, {"value": 7}],
                   "admin_contact": [], "technical_contact": {"email": "x"},
                   "email_domain": [{"value": null}], "redirect_domain": [],
                   "create_date": 20010203, "expiration_date": {"value": []},
                   "domain_risk": {"risk_score": "high"}}),
            json!({"domain": "example.com", "domain_risk": {"risk_score": 250}}),
            json!({"domain": "example.com", "domain_risk": {"risk_score": 42.0}}),
            json!({"domain": "example.com", "ip": [{"address": {"value": "192.0.2.1"},
                   "asn": [{"value": 4294967296u64}, {"value": 1.5}, {"value": "ASX"}]}]}),
        ];
        let mapping = map_records(&observable, &shapes, &options());
        assert_eq!(mapping.score, Some(42));
        assert!(mapping
            .skipped
            .iter()
            .any(|s| s.what == "risk score" && s.value == "250"));
        assert_eq!(
            mapping
                .skipped
                .iter()
                .filter(|s| s.what == "AS number")
                .count(),
            3
        );
    }

    #[test]
    fn relationship_marking_is_never_below_the_object_marking() {
        let observable = Observable::parse("example.com").unwrap();
        let mut options = options();
        options.relationship_marking = Tlp::Red;
        options.confidence = Some(80);
        let mapping = map_records(&observable, &[record()], &options);
        for object in &mapping.objects {
            match object["type"].as_str() {
                Some("relationship") => {
                    assert_eq!(
                        object["object_marking_refs"],
                        json!([Tlp::Red.marking_id()])
                    );
                    assert_eq!(object["confidence"], 80);
                }
                Some("identity") => {}
                _ => assert_eq!(
                    object["object_marking_refs"],
                    json!([Tlp::Amber.marking_id()])
                ),
            }
        }
        options.relationship_marking = Tlp::Clear;
        let mapping = map_records(&observable, &[record()], &options);
        let a = relationships(&mapping, "domain-ip")[0];
        assert_eq!(a["object_marking_refs"], json!([Tlp::Amber.marking_id()]));
    }

    #[test]
    fn observables_from_input() {
        let ip = Observable::parse(" 142.251.33.78 ").unwrap();
        assert_eq!(ip.kind, ObservableKind::Ipv4Addr);
        assert_eq!(ip.value, "142.251.33.78");
        assert!(Observable::parse("not a domain").is_err());
        assert!(Observable::parse("localhost").is_err());
        assert!(
            Observable::existing(ObservableKind::DomainName, "example.com", "ipv4-addr--x")
                .is_err()
        );
        assert!(
            Observable::existing(ObservableKind::Ipv4Addr, "example.com", "ipv4-addr--x").is_err()
        );
        assert_eq!(
            ObservableKind::from_opencti_type("Ipv4-Addr"),
            Some(ObservableKind::Ipv4Addr)
        );
        assert_eq!(ObservableKind::from_opencti_type("Url"), None);
    }
}
