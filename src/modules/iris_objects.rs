//! Iris records as MISP objects on MISP's own templates, for the `misp_standard` modules
//! (DomainTools-Iris-Investigate-Objects and -Iris-Enrich-Objects): a pure function of the
//! enriched attribute, the records (read through [`crate::iris`], as the STIX mapping reads
//! them) and the options.
//!
//! Per record (domain D):
//! - `domain-ip` (D): `domain`, every `ip`, `registration-date`, `first-seen`, and one `text`
//!   line with the site's facts (title, server type, HTTP response, redirect, rank, trackers);
//!   it references the enriched attribute (`describes` for the enriched domain itself,
//!   `resolves-to` for an IP pivot, `related-to` for other pivots), each `asn` (`belongs-to`)
//!   and the redirect domain's own `domain-ip` (`related-to`);
//! - `asn` (per AS number): `asn`, `description` (the ISP), `country`;
//! - `whois` (D): registrar, dates, registrant name, organisation, e-mail and phone; the other
//!   e-mail addresses of the record are `email` attributes it references (`related-to`);
//! - `dns-record` (D): A, MX, NS and SPF (TXT) records;
//! - `x509` (per SSL certificate SHA-1): fingerprint, subject, organisation, e-mail addresses;
//!
//! whois, dns-record and x509 reference the enriched attribute for its own domain, and the
//! record's `domain-ip` for domains found by a pivot. The verdict (risk score, its band, the
//! components, Iris tags, active) is a set of `domaintools-iris:` machine tags on the enriched
//! attribute (stored form), on the `domain` of the `domain-ip` of a pivot's domains, and text
//! attributes in a hover (MISP's popover shows no tags). Every pivotable value with a
//! guided-pivot count says it in its comment, and a `link` to the same search in the Iris UI
//! is added where fewer than the threshold share it. Every uuid is a UUIDv5 of what the thing
//! is, so enriching again proposes the same objects, which MISP then recognises.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use serde_json::{json, Map, Value};

use super::{ModuleError, Settings};
use crate::iris::{self, item_str, list, pivot_str, EMAIL_FIELDS};
use crate::misp::{Form, CATALOGUE};
use crate::stix::ids::uuid5;
use crate::stix::validate;

/// The namespace of every uuid this mapping makes (a fixed random UUID, so they never collide
/// with another tool's UUIDv5 of the same name).
const NAMESPACE: [u8; 16] = [
    0x6b, 0x1f, 0x0d, 0x3e, 0x52, 0x8a, 0x4c, 0x3b, 0x9e, 0x07, 0x1d, 0xa4, 0x5c, 0x21, 0x7e, 0x90,
];

/// The machine-tag namespace of the verdict (documented in docs/compatibility.md).
pub const TAG_NAMESPACE: &str = "domaintools-iris";
/// Iris UI searches; `?q=<parameter>:"<value>"` opens the same pivot there.
pub const IRIS_SEARCH: &str = "https://iris.domaintools.com/investigate/search/";

/// Risk score from which a domain is `malicious` (Cortex's level; XSOAR's default "Bad").
pub const DEFAULT_HIGH_THRESHOLD: u64 = 70;
/// Risk score from which a domain is `suspicious`.
pub const DEFAULT_MEDIUM_THRESHOLD: u64 = 50;

/// One MISP object template (from PyMISP's data, bundled under `data/misp/objects/`).
#[derive(Debug)]
pub struct Template {
    /// Template name (`domain-ip`).
    pub name: String,
    uuid: String,
    version: u64,
    meta_category: String,
    description: String,
    relations: HashMap<String, Relation>,
    required_one_of: Vec<String>,
}

#[derive(Debug)]
struct Relation {
    misp_type: String,
    multiple: bool,
    to_ids: Option<bool>,
    disable_correlation: bool,
    categories: Vec<String>,
    required: bool,
}

fn template(raw: &str) -> Template {
    let d: Value = serde_json::from_str(raw).expect("a bundled object template is valid JSON");
    let required: HashSet<&str> = d["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let relations = d["attributes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, a)| {
            let relation = Relation {
                misp_type: a["misp-attribute"].as_str().unwrap_or("text").to_owned(),
                multiple: a["multiple"].as_bool().unwrap_or(false),
                to_ids: a["to_ids"].as_bool(),
                disable_correlation: a["disable_correlation"].as_bool().unwrap_or(false),
                categories: a["categories"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect(),
                required: required.contains(name.as_str()),
            };
            (name.clone(), relation)
        })
        .collect();
    Template {
        name: d["name"].as_str().unwrap_or_default().to_owned(),
        uuid: d["uuid"].as_str().unwrap_or_default().to_owned(),
        version: d["version"].as_u64().unwrap_or_default(),
        meta_category: d["meta-category"].as_str().unwrap_or("network").to_owned(),
        description: d["description"].as_str().unwrap_or_default().to_owned(),
        relations,
        required_one_of: d["requiredOneOf"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect(),
    }
}

/// The templates this mapping fills, by name.
static TEMPLATES: LazyLock<HashMap<&'static str, Template>> = LazyLock::new(|| {
    [
        (
            "asn",
            include_str!("../../data/misp/objects/asn/definition.json"),
        ),
        (
            "dns-record",
            include_str!("../../data/misp/objects/dns-record/definition.json"),
        ),
        (
            "domain-ip",
            include_str!("../../data/misp/objects/domain-ip/definition.json"),
        ),
        (
            "whois",
            include_str!("../../data/misp/objects/whois/definition.json"),
        ),
        (
            "x509",
            include_str!("../../data/misp/objects/x509/definition.json"),
        ),
    ]
    .into_iter()
    .map(|(name, raw)| (name, template(raw)))
    .collect()
});

/// What the mapping is told besides the records.
#[derive(Debug, Clone)]
pub struct Options {
    /// Risk score from which the verdict is `malicious`.
    pub high: u64,
    /// Risk score from which the verdict is `suspicious`.
    pub medium: u64,
    /// A pivot link is added for values fewer than this many domains share.
    pub pivot_threshold: u64,
    /// Hover (verdict as text attributes) or stored (verdict as tags on the input).
    pub form: Form,
    /// Put in front of every comment (the demo mode's warning).
    pub note: Option<&'static str>,
}

impl Options {
    /// From the request's settings: `risk_high_threshold`, `risk_medium_threshold` (0–100,
    /// medium ≤ high) and `guided_pivot_threshold` (Iris-Pivot's setting, same default).
    pub fn from_settings(
        settings: &Settings,
        form: Form,
        note: Option<&'static str>,
    ) -> Result<Self, ModuleError> {
        let high = settings.number("risk_high_threshold", DEFAULT_HIGH_THRESHOLD)?;
        let medium = settings.number("risk_medium_threshold", DEFAULT_MEDIUM_THRESHOLD)?;
        if high > 100 || medium > high {
            return Err(ModuleError::Config(format!(
                "The risk thresholds must satisfy risk_medium_threshold ≤ risk_high_threshold ≤ 100 (they are {medium} and {high})."
            )));
        }
        let pivot_threshold = settings.number(
            "guided_pivot_threshold",
            super::iris_pivot::DEFAULT_GUIDED_PIVOT_THRESHOLD,
        )?;
        Ok(Self {
            high,
            medium,
            pivot_threshold,
            form,
            note,
        })
    }

    /// The verdict band of a score: Cortex's levels.
    pub fn band(&self, score: u64) -> &'static str {
        if score >= self.high {
            "malicious"
        } else if score >= self.medium {
            "suspicious"
        } else {
            "safe"
        }
    }
}

/// The attribute being enriched.
#[derive(Debug, Clone)]
pub struct Enriched {
    /// Its MISP type.
    pub attribute_type: String,
    /// Its value as MISP sent it.
    pub value: String,
    /// Its uuid: MISP's, or (for a request without one) a UUIDv5 of type and value.
    pub uuid: String,
    /// The attribute as MISP sent it, echoed back with the verdict's tags.
    pub attribute: Option<Map<String, Value>>,
}

impl Enriched {
    /// From a module input.
    pub fn new(attribute_type: &str, value: &str, attribute: Option<&Map<String, Value>>) -> Self {
        let uuid = attribute
            .and_then(|a| a.get("uuid"))
            .and_then(Value::as_str)
            .map(|u| u.trim().to_lowercase())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| name_uuid(&["attribute", attribute_type, value]));
        Self {
            attribute_type: attribute_type.to_owned(),
            value: value.to_owned(),
            uuid,
            attribute: attribute.cloned(),
        }
    }
}

fn name_uuid(parts: &[&str]) -> String {
    uuid5(&NAMESPACE, parts.join("\u{1f}").as_bytes())
}

/// What an object's attribute says besides its value.
#[derive(Debug, Default)]
struct Extra {
    comment: Option<String>,
    tags: Vec<Value>,
}

#[derive(Debug)]
struct Object {
    template: &'static Template,
    uuid: String,
    comment: String,
    attributes: Vec<Value>,
    seen: HashSet<(String, String)>,
    references: Vec<Value>,
}

/// The answer being built.
#[derive(Debug)]
pub struct Builder<'a> {
    options: &'a Options,
    input: Enriched,
    input_tags: Vec<Value>,
    attributes: Vec<Value>,
    attribute_uuids: HashSet<String>,
    objects: Vec<Object>,
    index: HashMap<String, usize>,
    /// Values left out because MISP would refuse them for their type.
    pub skipped: usize,
}

impl<'a> Builder<'a> {
    /// An empty answer about `input`.
    pub fn new(options: &'a Options, input: Enriched) -> Self {
        Self {
            options,
            input,
            input_tags: Vec::new(),
            attributes: Vec::new(),
            attribute_uuids: HashSet::new(),
            objects: Vec::new(),
            index: HashMap::new(),
            skipped: 0,
        }
    }

    fn comment(&self, text: &str) -> String {
        match self.options.note {
            Some(note) => format!("{note} {text}"),
            None => text.to_owned(),
        }
    }

    /// The object `name` for `key`, created if new.
    fn object(&mut self, name: &'static str, key: &str, comment: &str) -> usize {
        let uuid = name_uuid(&["object", name, key]);
        if let Some(&i) = self.index.get(&uuid) {
            return i;
        }
        let template = TEMPLATES
            .get(name)
            .expect("the mapping only names bundled templates");
        let comment = self.comment(comment);
        self.index.insert(uuid.clone(), self.objects.len());
        self.objects.push(Object {
            template,
            uuid,
            comment,
            attributes: Vec::new(),
            seen: HashSet::new(),
            references: Vec::new(),
        });
        self.objects.len() - 1
    }

    fn uuid_of(&self, object: usize) -> String {
        self.objects[object].uuid.clone()
    }

    /// Adds `value` under `relation`, as MISP would store it; false when MISP would refuse it,
    /// when the relation takes one value and has one, or when it is there already.
    fn add(&mut self, object: usize, relation: &str, value: &str, extra: Extra) -> bool {
        let template = self.objects[object].template;
        let Some(rel) = template.relations.get(relation) else {
            return false;
        };
        let Some(value) = normalize(&rel.misp_type, value) else {
            self.skipped += 1;
            return false;
        };
        let o = &self.objects[object];
        if !rel.multiple
            && o.attributes
                .iter()
                .any(|a| a["object_relation"] == relation)
        {
            return false;
        }
        if o.seen.contains(&(relation.to_owned(), value.clone())) {
            return false;
        }
        let uuid = name_uuid(&["object-attribute", &o.uuid, relation, &value]);
        let category = rel
            .categories
            .iter()
            .find(|c| CATALOGUE.allows(c, &rel.misp_type))
            .cloned()
            .or_else(|| {
                CATALOGUE
                    .default_category(&rel.misp_type)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "Other".to_owned());
        let mut a = Map::new();
        a.insert("object_relation".into(), relation.into());
        a.insert("type".into(), rel.misp_type.clone().into());
        a.insert("category".into(), category.into());
        a.insert("value".into(), value.clone().into());
        a.insert(
            "to_ids".into(),
            // Context, not detection: the analyst decides what becomes an IDS signature.
            rel.to_ids.unwrap_or(false).into(),
        );
        a.insert("disable_correlation".into(), rel.disable_correlation.into());
        a.insert("uuid".into(), uuid.into());
        let comment = extra.comment.map(|c| self.comment(&c)).unwrap_or_default();
        a.insert("comment".into(), comment.into());
        if !extra.tags.is_empty() {
            a.insert("Tag".into(), Value::Array(extra.tags));
        }
        let o = &mut self.objects[object];
        o.seen.insert((relation.to_owned(), value));
        o.attributes.push(Value::Object(a));
        true
    }

    /// A reference from `object` to `target` (a uuid of this answer or the input's).
    fn reference(&mut self, object: usize, target: &str, relationship: &str, comment: &str) {
        let source = self.objects[object].uuid.clone();
        if source == target {
            return;
        }
        let uuid = name_uuid(&["reference", &source, relationship, target]);
        let o = &mut self.objects[object];
        if o.references.iter().any(|r| r["uuid"] == uuid.as_str()) {
            return;
        }
        o.references.push(json!({
            "uuid": uuid,
            "object_uuid": source,
            "referenced_uuid": target,
            "relationship_type": relationship,
            "comment": comment,
        }));
    }

    /// A standalone attribute; its uuid, or `None` when MISP would refuse the value.
    fn standalone(&mut self, misp_type: &str, value: &str, comment: &str) -> Option<String> {
        let Some(value) = normalize(misp_type, value) else {
            self.skipped += 1;
            return None;
        };
        let uuid = name_uuid(&["attribute", misp_type, &value]);
        if self.attribute_uuids.insert(uuid.clone()) {
            let category = ["Network activity", "External analysis"]
                .into_iter()
                .find(|c| CATALOGUE.allows(c, misp_type))
                .or_else(|| CATALOGUE.default_category(misp_type))
                .unwrap_or("Other");
            let comment = self.comment(comment);
            self.attributes.push(json!({
                "type": misp_type,
                "category": category,
                "value": value,
                "to_ids": false,
                "uuid": uuid,
                "comment": comment,
            }));
        }
        Some(uuid)
    }

    /// A link to the same pivot in the Iris UI, when fewer than the threshold (and more than
    /// the record itself) share the value.
    fn pivot_link(&mut self, parameter: &str, item: &Value, what: &str, domain: &str) {
        let (Some(value), Some(count)) = (item_str(item), iris::count(item)) else {
            return;
        };
        if count <= 1 || count >= self.options.pivot_threshold {
            return;
        }
        let url = pivot_url(parameter, value);
        self.standalone(
            "link",
            &url,
            &format!(
                "Iris guided pivot: {count} domains share the {what} {value} (seen on {domain})"
            ),
        );
    }

    /// The comment of a pivotable value: its guided-pivot count, when Iris gave one.
    fn counted(item: &Value, what: &str) -> Extra {
        Extra {
            comment: Some(match iris::count(item) {
                Some(count) => format!("{what}; Iris guided pivot: {count} domains share it"),
                None => what.to_owned(),
            }),
            tags: Vec::new(),
        }
    }

    /// The verdict of a record as machine tags.
    fn verdict_tags(&self, record: &Value) -> Vec<Value> {
        let mut tags = Vec::new();
        let mut tag = |predicate: &str, value: &str, colour: Option<&str>| {
            let value = value.replace('"', "'");
            let mut t = Map::new();
            t.insert(
                "name".into(),
                format!("{TAG_NAMESPACE}:{predicate}=\"{value}\"").into(),
            );
            if let Some(colour) = colour {
                t.insert("colour".into(), colour.into());
            }
            tags.push(Value::Object(t));
        };
        if let Some(Ok(score)) = iris::risk_score(record) {
            let band = self.options.band(score);
            tag("risk-score", &score.to_string(), None);
            let colour = match band {
                "malicious" => "#cc0033",
                "suspicious" => "#ff9900",
                _ => "#339900",
            };
            tag("verdict", band, Some(colour));
        }
        for (name, score) in iris::risk_components(record) {
            tag(
                &format!("risk-{}", name.replace('_', "-")),
                &score.to_string(),
                None,
            );
        }
        for label in iris::tags(record) {
            tag("tag", label, None);
        }
        if let Some(active) = record.get("active").and_then(Value::as_bool) {
            tag("active", if active { "true" } else { "false" }, None);
        }
        tags
    }

    /// The verdict of the enriched domain as text, for the hover popover (which shows no tags).
    fn verdict_text(&mut self, record: &Value) {
        if let Some(Ok(score)) = iris::risk_score(record) {
            let band = self.options.band(score);
            let components: Vec<String> = iris::risk_components(record)
                .iter()
                .map(|(name, score)| format!("{name} {score}"))
                .collect();
            let mut line = format!("DomainTools risk score {score} ({band})");
            if !components.is_empty() {
                line.push_str(&format!(": {}", components.join(", ")));
            }
            self.standalone("text", &line, "Risk score from DomainTools Iris");
        }
        let labels = iris::tags(record);
        if !labels.is_empty() {
            self.standalone(
                "text",
                &format!("Iris tags: {}", labels.join(", ")),
                "Tags from DomainTools Iris",
            );
        }
        if let Some(active) = record.get("active").and_then(Value::as_bool) {
            let state = if active { "active" } else { "inactive" };
            self.standalone(
                "text",
                &format!("Domain {state}"),
                "Activity from DomainTools Iris",
            );
        }
    }

    /// Tags for the enriched attribute itself (stored form).
    pub fn tag_input(&mut self, predicate: &str, value: &str) {
        self.input_tags.push(json!({
            "name": format!("{TAG_NAMESPACE}:{predicate}=\"{}\"", value.replace('"', "'"))
        }));
    }

    /// Maps one record. `own`: the record is the enriched value's own domain (not a domain
    /// found by a pivot).
    pub fn record(&mut self, record: &Value, own: bool) {
        let Some(domain) = pivot_str(record, "domain")
            .map(|d| d.trim().trim_end_matches('.').to_lowercase())
            .filter(|d| validate::is_domain(d))
        else {
            self.skipped += 1;
            return;
        };
        let dip = self.object(
            "domain-ip",
            &domain,
            &format!("{domain} in DomainTools Iris"),
        );
        let dip_uuid = self.uuid_of(dip);
        let verdict = self.verdict_tags(record);
        let domain_extra = if own {
            match self.options.form {
                Form::Stored => self.input_tags.extend(verdict),
                Form::Hover => self.verdict_text(record),
            }
            Extra::default()
        } else {
            Extra {
                comment: Some(format!("Domain connected to {}", self.input.value)),
                tags: verdict,
            }
        };
        self.add(dip, "domain", &domain, domain_extra);
        let input_uuid = self.input.uuid.clone();
        let relationship = match (own, self.input.attribute_type.as_str()) {
            (true, _) => "describes",
            (false, "ip-src" | "ip-dst") => "resolves-to",
            _ => "related-to",
        };
        self.reference(dip, &input_uuid, relationship, "DomainTools Iris");
        let anchor = if own { input_uuid } else { dip_uuid.clone() };

        for ip in list(record, "ip") {
            let Some(address) = ip.get("address") else {
                continue;
            };
            if let Some(value) = item_str(address) {
                self.add(dip, "ip", value, Self::counted(address, "IP address"));
                self.pivot_link("ip", address, "IP address", &domain);
            }
            for raw in iris::asn_values(ip) {
                let Some(number) = iris::asn_number(raw) else {
                    self.skipped += 1;
                    continue;
                };
                let number = number.to_string();
                let asn = self.object("asn", &number, &format!("AS{number} in DomainTools Iris"));
                if !self.add(asn, "asn", &number, Extra::default())
                    && self.objects[asn].attributes.is_empty()
                {
                    continue;
                }
                if let Some(isp) = pivot_str(ip, "isp") {
                    self.add(asn, "description", isp, Self::counted(&ip["isp"], "ISP"));
                }
                if let Some(country) = pivot_str(ip, "country_code") {
                    self.add(asn, "country", country, Extra::default());
                }
                let asn_uuid = self.uuid_of(asn);
                self.reference(dip, &asn_uuid, "belongs-to", "IP addresses announced by");
            }
        }
        if let Some(Ok(created)) = iris::date(record, "create_date") {
            let created = created.format("%Y-%m-%d").to_string();
            self.add(dip, "registration-date", &created, Extra::default());
        }
        if let Some(first_seen) = pivot_str(record, "first_seen") {
            self.add(
                dip,
                "first-seen",
                first_seen,
                Extra {
                    comment: Some("First seen by DomainTools".into()),
                    tags: Vec::new(),
                },
            );
        }
        let facts = self.facts(record, &domain);
        if !facts.is_empty() {
            self.add(dip, "text", &facts.join("; "), Extra::default());
        }
        if let Some(redirect) = record.get("redirect_domain") {
            if let Some(target) = item_str(redirect)
                .map(|r| r.trim().trim_end_matches('.').to_lowercase())
                .filter(|r| *r != domain && validate::is_domain(r))
            {
                let other = self.object(
                    "domain-ip",
                    &target,
                    &format!("{target} in DomainTools Iris"),
                );
                self.add(
                    other,
                    "domain",
                    &target,
                    Self::counted(redirect, "Redirect domain"),
                );
                let other_uuid = self.uuid_of(other);
                self.reference(dip, &other_uuid, "related-to", "redirects to");
                self.pivot_link("redirect_domain", redirect, "redirect domain", &domain);
            }
        }

        self.whois(record, &domain, &anchor);
        self.dns(record, &domain, &anchor);
        self.certificates(record, &domain, &anchor);
    }

    /// The site's facts for the `domain-ip` text, and the pivot links of its trackers.
    fn facts(&mut self, record: &Value, domain: &str) -> Vec<String> {
        let mut facts = Vec::new();
        for (key, parameter, what) in [
            ("website_title", "website_title", "website title"),
            ("server_type", "server_type", "server type"),
        ] {
            if let Some(item) = record.get(key) {
                if let Some(value) = item_str(item) {
                    facts.push(format!("{}: {}", capitalised(what), value.trim()));
                    self.pivot_link(parameter, item, what, domain);
                }
            }
        }
        if let Some(code) = record.get("website_response").and_then(Value::as_u64) {
            facts.push(format!("HTTP response: {code}"));
        }
        if let Some(redirect) = pivot_str(record, "redirect_domain") {
            facts.push(format!("Redirect domain: {redirect}"));
        }
        if let Some(rank) = record.get("popularity_rank").and_then(Value::as_u64) {
            if rank > 0 {
                facts.push(format!("Popularity rank: {rank}"));
            }
        }
        for (key, parameter, what) in iris::TRACKING_CODES {
            let items = iris::one_or_many(record, key);
            let codes: Vec<&str> = items.iter().filter_map(|i| item_str(i)).collect();
            if codes.is_empty() {
                continue;
            }
            facts.push(format!("{what}: {}", codes.join(", ")));
            for item in items {
                self.pivot_link(parameter, item, &format!("{what} code"), domain);
            }
        }
        facts
    }

    fn whois(&mut self, record: &Value, domain: &str, anchor: &str) {
        let w = self.object(
            "whois",
            domain,
            &format!("Whois of {domain} from DomainTools Iris"),
        );
        self.add(w, "domain", domain, Extra::default());
        if let Some(registrar) = record.get("registrar") {
            if let Some(value) = item_str(registrar) {
                self.add(w, "registrar", value, Self::counted(registrar, "Registrar"));
                self.pivot_link("registrar", registrar, "registrar", domain);
            }
        }
        for (field, relation) in [
            ("create_date", "creation-date"),
            ("expiration_date", "expiration-date"),
        ] {
            if let Some(Ok(date)) = iris::date(record, field) {
                let date = date.format("%Y-%m-%d").to_string();
                self.add(w, relation, &date, Extra::default());
            }
        }
        let contact = record.get("registrant_contact").unwrap_or(&Value::Null);
        for (item, relation, parameter, what) in [
            (
                contact.get("name"),
                "registrant-name",
                "registrant",
                "registrant name",
            ),
            (
                record.get("registrant_name"),
                "registrant-name",
                "registrant",
                "registrant name",
            ),
            (
                record.get("registrant_org"),
                "registrant-org",
                "registrant_org",
                "registrant organisation",
            ),
            (
                contact.get("org"),
                "registrant-org",
                "registrant_org",
                "registrant organisation",
            ),
            (
                contact.get("phone"),
                "registrant-phone",
                "contact_phone",
                "registrant phone",
            ),
        ] {
            let Some(item) = item else { continue };
            if let Some(value) = item_str(item) {
                self.add(w, relation, value, Self::counted(item, &capitalised(what)));
                self.pivot_link(parameter, item, what, domain);
            }
        }
        // The registrant's first address is the whois object's; every other address of the
        // record is an `email` attribute the whois object references, once.
        let registrant_email = iris::emails(record, "registrant_contact")
            .iter()
            .find_map(|item| {
                let address = item_str(item)?;
                self.add(
                    w,
                    "registrant-email",
                    address,
                    Self::counted(item, "Registrant e-mail"),
                )
                .then(|| address.to_lowercase())
            });
        for (field, description) in EMAIL_FIELDS {
            let parameter = match field {
                "soa_email" => "email_dns_soa",
                "ssl_email" => "ssl_email",
                _ => "email",
            };
            for item in iris::emails(record, field) {
                let Some(address) = item_str(item) else {
                    continue;
                };
                self.pivot_link(parameter, item, "e-mail address", domain);
                if registrant_email.as_deref() == Some(address.to_lowercase().as_str()) {
                    continue;
                }
                let comment =
                    format!("E-mail address ({description}) of {domain} in DomainTools Iris");
                if let Some(uuid) = self.standalone("email", address, &comment) {
                    self.reference(w, &uuid, "related-to", description);
                }
            }
        }
        self.reference(w, anchor, "describes", "DomainTools Iris");
    }

    fn dns(&mut self, record: &Value, domain: &str, anchor: &str) {
        let d = self.object(
            "dns-record",
            domain,
            &format!("DNS of {domain} from DomainTools Iris"),
        );
        self.add(d, "queried-domain", domain, Extra::default());
        for ip in list(record, "ip") {
            if let Some(address) = pivot_str(ip, "address") {
                let relation = if address.contains(':') {
                    "aaaa-record"
                } else {
                    "a-record"
                };
                self.add(
                    d,
                    relation,
                    address,
                    Self::counted(&ip["address"], "IP address"),
                );
            }
        }
        for (field, relation, host_parameter, domain_parameter, ip_parameter, what) in [
            (
                "mx",
                "mx-record",
                "mailserver_host",
                "mailserver_domain",
                "mailserver_ip",
                "mail server",
            ),
            (
                "name_server",
                "ns-record",
                "nameserver_host",
                "nameserver_domain",
                "nameserver_ip",
                "name server",
            ),
        ] {
            for server in list(record, field) {
                if let Some(host) = server.get("host") {
                    if let Some(value) = item_str(host) {
                        self.add(d, relation, value, Self::counted(host, &capitalised(what)));
                        self.pivot_link(host_parameter, host, what, domain);
                    }
                }
                if let Some(server_domain) = server.get("domain") {
                    self.pivot_link(
                        domain_parameter,
                        server_domain,
                        &format!("{what} domain"),
                        domain,
                    );
                }
                for ip in list(server, "ip") {
                    self.pivot_link(ip_parameter, ip, &format!("{what} IP address"), domain);
                }
            }
        }
        if let Some(spf) = record.get("spf_info").and_then(Value::as_str) {
            if !spf.trim().is_empty() {
                self.add(d, "txt-record", spf.trim(), Extra::default());
            }
        }
        for item in list(record, "email_domain") {
            self.pivot_link("email_domain", item, "e-mail domain", domain);
        }
        self.reference(d, anchor, "describes", "DomainTools Iris");
    }

    fn certificates(&mut self, record: &Value, domain: &str, anchor: &str) {
        for ssl in list(record, "ssl_info") {
            let Some(hash_item) = ssl.get("hash") else {
                continue;
            };
            let Some(hash) =
                item_str(hash_item).and_then(|h| normalize("x509-fingerprint-sha1", h))
            else {
                self.skipped += 1;
                continue;
            };
            let x = self.object("x509", &hash, "SSL certificate from DomainTools Iris");
            self.add(
                x,
                "x509-fingerprint-sha1",
                &hash,
                Self::counted(hash_item, "SSL certificate SHA-1"),
            );
            self.pivot_link("ssl_hash", hash_item, "SSL certificate", domain);
            for (key, relation, parameter, what) in [
                ("subject", "subject", "ssl_subject", "SSL subject"),
                (
                    "organization",
                    "subject-organization",
                    "ssl_org",
                    "SSL organisation",
                ),
            ] {
                if let Some(item) = ssl.get(key) {
                    if let Some(value) = item_str(item) {
                        self.add(x, relation, value, Self::counted(item, what));
                        self.pivot_link(parameter, item, what, domain);
                    }
                }
            }
            for item in list(ssl, "email") {
                if let Some(address) = item_str(item) {
                    self.add(x, "email", address, Self::counted(item, "SSL e-mail"));
                    self.pivot_link("ssl_email", item, "SSL e-mail", domain);
                }
            }
            self.reference(x, anchor, "identifies", "DomainTools Iris");
        }
    }

    /// The `results` object: the enriched attribute first (stored form, with its verdict),
    /// then the standalone attributes, and the objects that meet their template (others, and
    /// references to them, are dropped).
    pub fn finish(self) -> Map<String, Value> {
        let complete: Vec<&Object> = self.objects.iter().filter(|o| meets_template(o)).collect();
        let kept: HashSet<&str> = complete.iter().map(|o| o.uuid.as_str()).collect();
        let mut attributes = Vec::new();
        if self.options.form == Form::Stored {
            attributes.push(self.echo_input());
        }
        attributes.extend(self.attributes.iter().cloned());
        let known: HashSet<String> = attributes
            .iter()
            .filter_map(|a| a["uuid"].as_str().map(str::to_owned))
            .chain([self.input.uuid.clone()])
            .collect();
        let objects: Vec<Value> = complete
            .iter()
            .map(|o| {
                let references: Vec<Value> = o
                    .references
                    .iter()
                    .filter(|r| {
                        let target = r["referenced_uuid"].as_str().unwrap_or_default();
                        kept.contains(target) || known.contains(target)
                    })
                    .cloned()
                    .collect();
                let t = o.template;
                let mut out = Map::new();
                out.insert("name".into(), t.name.clone().into());
                out.insert("meta-category".into(), t.meta_category.clone().into());
                out.insert("description".into(), t.description.clone().into());
                out.insert("template_uuid".into(), t.uuid.clone().into());
                out.insert("template_version".into(), t.version.to_string().into());
                out.insert("uuid".into(), o.uuid.clone().into());
                out.insert("comment".into(), o.comment.clone().into());
                out.insert("Attribute".into(), Value::Array(o.attributes.clone()));
                if !references.is_empty() {
                    out.insert("ObjectReference".into(), Value::Array(references));
                }
                Value::Object(out)
            })
            .collect();
        let mut results = Map::new();
        if !attributes.is_empty() {
            results.insert("Attribute".into(), Value::Array(attributes));
        }
        if !objects.is_empty() {
            results.insert("Object".into(), Value::Array(objects));
        }
        results
    }

    /// The enriched attribute as MISP sent it (its own fields only), with the verdict's tags.
    fn echo_input(&self) -> Value {
        let mut out = Map::new();
        if let Some(attribute) = &self.input.attribute {
            for key in [
                "id",
                "event_id",
                "object_id",
                "object_relation",
                "category",
                "type",
                "value",
                "to_ids",
                "distribution",
                "sharing_group_id",
                "comment",
                "disable_correlation",
            ] {
                if let Some(v) = attribute.get(key).filter(|v| !v.is_null()) {
                    out.insert(key.into(), v.clone());
                }
            }
        }
        out.insert("type".into(), self.input.attribute_type.clone().into());
        out.insert("value".into(), self.input.value.clone().into());
        out.insert("uuid".into(), self.input.uuid.clone().into());
        let category_ok = out
            .get("category")
            .and_then(Value::as_str)
            .is_some_and(|c| CATALOGUE.allows(c, &self.input.attribute_type));
        if !category_ok {
            let category = CATALOGUE
                .default_category(&self.input.attribute_type)
                .unwrap_or("Other");
            out.insert("category".into(), category.into());
        }
        let mut tags: Vec<Value> = Vec::new();
        for tag in &self.input_tags {
            if !tags.iter().any(|t| t["name"] == tag["name"]) {
                tags.push(tag.clone());
            }
        }
        if self.options.note.is_some() {
            tags.push(json!({"name": format!("{TAG_NAMESPACE}:demo=\"true\"")}));
        }
        if !tags.is_empty() {
            out.insert("Tag".into(), Value::Array(tags));
        }
        Value::Object(out)
    }
}

/// Whether an object has its template's required relations (and one of `requiredOneOf`).
fn meets_template(o: &Object) -> bool {
    let relations: HashSet<&str> = o
        .attributes
        .iter()
        .filter_map(|a| a["object_relation"].as_str())
        .collect();
    let required_ok = o
        .template
        .relations
        .iter()
        .filter(|(_, r)| r.required)
        .all(|(name, _)| relations.contains(name.as_str()));
    let one_of = o.template.required_one_of.is_empty()
        || o.template
            .required_one_of
            .iter()
            .any(|n| relations.contains(n.as_str()));
    // An object with only its key (a domain-ip with nothing but the domain of a pivot's
    // domain is still what the pivot found; a whois with only the domain says nothing).
    let says_something = match o.template.name.as_str() {
        "whois" => relations.len() > 1,
        _ => true,
    };
    required_ok && one_of && says_something
}

/// A module error, for the hover popover: MISP shows a `misp_standard` hover's `Object` and
/// `Attribute` only (never its `error`), so the error is also one text attribute there.
pub fn with_hover_error(
    form: Form,
    result: Result<super::Reply, ModuleError>,
) -> Result<super::Reply, ModuleError> {
    match (form, result) {
        (Form::Hover, Err(error)) => {
            let message = error.to_string();
            let mut standard = Map::new();
            standard.insert(
                "Attribute".into(),
                json!([{"type": "text", "category": "Other", "value": format!("Error: {message}"),
                        "to_ids": false, "uuid": name_uuid(&["error", &message]), "comment": ""}]),
            );
            Ok(super::Reply {
                error: Some(message),
                standard: Some(standard),
                ..super::Reply::default()
            })
        }
        (_, result) => result,
    }
}

/// The Iris UI search for `parameter` = `value`.
pub fn pivot_url(parameter: &str, value: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    format!("{IRIS_SEARCH}?q={parameter}:%22{encoded}%22")
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The value as MISP stores it for `misp_type` (its `modifyBeforeValidation`), or `None` when
/// MISP's validation refuses it (AttributeValidationTool, for the types this mapping emits).
pub fn normalize(misp_type: &str, value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() || value.len() > 65_535 {
        return None;
    }
    let single_line = !value.contains('\n');
    match misp_type {
        "domain" | "hostname" => {
            let v = value.trim_end_matches('.').to_lowercase();
            (validate::is_domain(&v)).then_some(v)
        }
        "ip-dst" | "ip-src" => value
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| ip.to_string()),
        "email" | "email-dst" | "email-src" | "whois-registrant-email" => {
            let v = value.to_lowercase();
            validate::is_email(&v).then_some(v)
        }
        "AS" => value
            .trim_start_matches(['A', 'S', 'a', 's'])
            .parse::<u32>()
            .ok()
            .map(|n| n.to_string()),
        "x509-fingerprint-sha1" => {
            let v = value.replace(':', "").to_lowercase();
            (v.len() == 40 && v.bytes().all(|b| b.is_ascii_hexdigit())).then_some(v)
        }
        "datetime" => {
            let ok = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok()
                || chrono::DateTime::parse_from_rfc3339(value).is_ok();
            ok.then(|| value.to_owned())
        }
        "whois-registrant-phone" => {
            let v = value
                .strip_prefix("00")
                .map_or(value.to_owned(), |rest| format!("+{rest}"));
            let v = v.replace("(0)", "");
            let v: String = v
                .chars()
                .filter(|c| *c == '+' || c.is_ascii_digit())
                .collect();
            let numeric = v.strip_prefix('+').unwrap_or(&v);
            (!numeric.is_empty() && numeric.bytes().all(|b| b.is_ascii_digit())).then_some(v)
        }
        "link" => url::Url::parse(value)
            .ok()
            .filter(|u| u.has_host() && single_line)
            .map(|_| value.to_owned()),
        "text" => Some(value.to_owned()),
        _ => single_line.then(|| value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(form: Form) -> Options {
        Options {
            high: 70,
            medium: 50,
            pivot_threshold: 500,
            form,
            note: None,
        }
    }

    fn record() -> Value {
        json!({
            "domain": "example.com",
            "active": true,
            "create_date": {"value": "2001-02-03", "count": 10},
            "first_seen": {"value": "2001-02-01T10:00:00Z", "count": 0},
            "website_title": {"value": "Example", "count": 4},
            "server_type": {"value": "nginx", "count": 9000},
            "redirect_domain": {"value": "example.net", "count": 3},
            "ga4": [{"value": "G-ABC", "count": 2}],
            "gtm_codes": [{"value": "GTM-XYZ", "count": 1}],
            "domain_risk": {"risk_score": 87, "components": [
                {"name": "proximity", "risk_score": 50}, {"name": "threat_profile_phishing", "risk_score": 87}]},
            "tags": [{"label": "watch"}],
            "ip": [{"address": {"value": "192.0.2.1", "count": 7}, "asn": [{"value": 64500, "count": 1}],
                    "isp": {"value": "Example ISP", "count": 3}, "country_code": {"value": "US", "count": 1}}],
            "registrant_contact": {"email": [{"value": "a@example.com", "count": 2}, {"value": "b@example.com", "count": 2}],
                                   "phone": {"value": "(0)1 555", "count": 1}},
            "registrar": {"value": "Registrar Inc.", "count": 1000},
            "ssl_info": [{"hash": {"value": "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD", "count": 2},
                          "subject": {"value": "CN=example.com", "count": 2}, "email": []}],
            "mx": [{"host": {"value": "mx.example.com", "count": 2}, "domain": {"value": "example.com", "count": 2}, "ip": []}],
        })
    }

    fn names(results: &Map<String, Value>) -> Vec<String> {
        results["Object"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_domain_becomes_objects_and_a_tagged_input() {
        let options = options(Form::Stored);
        let mut b = Builder::new(&options, Enriched::new("domain", "example.com", None));
        b.record(&record(), true);
        let results = b.finish();
        assert_eq!(
            names(&results),
            [
                "domain-ip",
                "asn",
                "domain-ip",
                "whois",
                "dns-record",
                "x509"
            ]
        );
        let input = &results["Attribute"][0];
        let tags: Vec<&str> = input["Tag"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            tags,
            [
                "domaintools-iris:risk-score=\"87\"",
                "domaintools-iris:verdict=\"malicious\"",
                "domaintools-iris:risk-proximity=\"50\"",
                "domaintools-iris:risk-threat-profile-phishing=\"87\"",
                "domaintools-iris:tag=\"watch\"",
                "domaintools-iris:active=\"true\"",
            ]
        );
        let x509 = &results["Object"][5]["Attribute"][0];
        assert_eq!(x509["value"], "aabbccddeeff00112233445566778899aabbccdd");
        let dip = &results["Object"][0];
        let text = dip["Attribute"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["object_relation"] == "text")
            .unwrap();
        assert_eq!(
            text["value"],
            "Website title: Example; Server type: nginx; Redirect domain: example.net; Google Analytics 4: G-ABC; Google Tag Manager: GTM-XYZ"
        );
        let links: Vec<&str> = results["Attribute"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["type"] == "link")
            .map(|a| a["value"].as_str().unwrap())
            .collect();
        assert!(links.contains(
            &"https://iris.domaintools.com/investigate/search/?q=google_analytics_4:%22G-ABC%22"
        ));
        assert!(
            !links.iter().any(|l| l.contains("GTM-XYZ")),
            "a count of 1 is the domain itself"
        );
        assert!(
            !links.iter().any(|l| l.contains("nginx")),
            "9000 is over the threshold"
        );
    }

    #[test]
    fn uuids_are_stable_and_nothing_is_repeated() {
        let options = options(Form::Stored);
        let run = || {
            let mut b = Builder::new(&options, Enriched::new("domain", "example.com", None));
            b.record(&record(), true);
            b.record(&record(), true);
            b.finish()
        };
        let (a, b) = (run(), run());
        assert_eq!(a, b);
        let mut uuids = HashSet::new();
        for o in a["Object"].as_array().unwrap() {
            assert!(uuids.insert(o["uuid"].as_str().unwrap().to_owned()));
            for at in o["Attribute"].as_array().unwrap() {
                assert!(uuids.insert(at["uuid"].as_str().unwrap().to_owned()));
            }
        }
        for at in a["Attribute"].as_array().unwrap() {
            assert!(uuids.insert(at["uuid"].as_str().unwrap().to_owned()));
        }
    }

    #[test]
    fn hover_shows_the_verdict_as_text_and_echoes_nothing() {
        let options = options(Form::Hover);
        let mut b = Builder::new(&options, Enriched::new("domain", "example.com", None));
        b.record(&record(), true);
        let results = b.finish();
        let first = &results["Attribute"][0];
        assert_eq!(first["type"], "text");
        assert_eq!(
            first["value"],
            "DomainTools risk score 87 (malicious): proximity 50, threat_profile_phishing 87"
        );
        assert!(results["Attribute"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["type"] != "domain"));
    }

    #[test]
    fn pivot_domains_carry_their_own_verdict_and_reference_the_input() {
        let options = options(Form::Stored);
        let mut b = Builder::new(&options, Enriched::new("ip-dst", "192.0.2.1", None));
        b.record(&record(), false);
        let input_uuid = name_uuid(&["attribute", "ip-dst", "192.0.2.1"]);
        let results = b.finish();
        let dip = &results["Object"][0];
        assert_eq!(
            dip["ObjectReference"][0]["referenced_uuid"],
            input_uuid.as_str()
        );
        assert_eq!(
            dip["ObjectReference"][0]["relationship_type"],
            "resolves-to"
        );
        assert_eq!(
            dip["Attribute"][0]["Tag"][0]["name"],
            "domaintools-iris:risk-score=\"87\""
        );
        let whois = results["Object"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "whois")
            .unwrap();
        let to_dip = whois["ObjectReference"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["referenced_uuid"] == dip["uuid"]);
        assert!(to_dip, "a pivot's domain owns its whois");
    }

    #[test]
    fn values_misp_refuses_are_left_out() {
        assert_eq!(normalize("ip-dst", "not-an-ip"), None);
        assert_eq!(
            normalize("whois-registrant-phone", "0044 (0)20 7946"),
            Some("+44207946".into())
        );
        assert_eq!(normalize("whois-registrant-phone", "redacted"), None);
        assert_eq!(normalize("AS", "AS16509"), Some("16509".into()));
        assert_eq!(normalize("datetime", "yesterday-ish"), None);
        assert_eq!(
            normalize("domain", "Example.COM."),
            Some("example.com".into())
        );
        assert_eq!(normalize("whois-registrant-name", "a\nb"), None);
    }

    #[test]
    fn demo_answers_say_so() {
        let mut options = options(Form::Stored);
        options.note = Some("[DEMO]");
        let mut b = Builder::new(&options, Enriched::new("domain", "example.com", None));
        b.record(&record(), true);
        let results = b.finish();
        let input_tags = results["Attribute"][0]["Tag"].as_array().unwrap();
        assert!(input_tags
            .iter()
            .any(|t| t["name"] == "domaintools-iris:demo=\"true\""));
        for o in results["Object"].as_array().unwrap() {
            assert!(o["comment"].as_str().unwrap().starts_with("[DEMO] "), "{o}");
        }
        for a in results["Attribute"].as_array().unwrap().iter().skip(1) {
            assert!(a["comment"].as_str().unwrap().starts_with("[DEMO] "), "{a}");
        }
    }

    #[test]
    fn thresholds_are_settings() {
        let s = Settings::from_value(Some(
            &json!({"risk_high_threshold": "90", "risk_medium_threshold": "60"}),
        ));
        let o = Options::from_settings(&s, Form::Stored, None).unwrap();
        assert_eq!(
            (o.band(89), o.band(90), o.band(59)),
            ("suspicious", "malicious", "safe")
        );
        let bad = Settings::from_value(Some(
            &json!({"risk_high_threshold": "40", "risk_medium_threshold": "60"}),
        ));
        assert!(Options::from_settings(&bad, Form::Stored, None).is_err());
    }
}
