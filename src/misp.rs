//! The MISP result entries the modules emit, the reference's de-duplication rule, and the two
//! renderings MISP needs: `{label: value}` for hover popovers, `[value]` for stored attributes.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use serde_json::{json, Map, Value};

use crate::pyfmt;

pub mod stored;
pub(crate) mod validate;

/// The category the reference puts on almost every entry.
pub(crate) const EXTERNAL_ANALYSIS: &str = "External analysis";

/// One result entry, before rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// MISP attribute types; the first is the default MISP proposes.
    pub types: Vec<&'static str>,
    /// What the value is ("Registrar", "IP Address"): the hover label.
    pub label: String,
    /// The value, with its JSON type kept (ints stay ints in hover popovers, as the reference).
    pub value: Value,
    /// Per-attribute comment.
    pub comment: String,
    /// Tags, in first-insertion order, without duplicates.
    pub tags: Vec<String>,
    /// MISP categories; `None` leaves the key out, as the reference does for a few entries.
    pub categories: Option<Vec<&'static str>>,
    /// What the stored form stores instead: a guided-pivot note ("ip address (~258 domains
    /// share this value.)") is no IP address, so the stored form keeps the value it describes
    /// with the note in its comment.
    pub stored_as: Option<Box<Entry>>,
}

impl Entry {
    /// An entry in the External analysis category.
    pub fn new(
        types: &[&'static str],
        label: impl Into<String>,
        value: impl Into<Value>,
        comment: impl Into<String>,
        tags: &[&str],
    ) -> Self {
        Self {
            types: types.to_vec(),
            label: label.into(),
            value: value.into(),
            comment: comment.into(),
            tags: dedup_tags(tags.iter().copied()),
            categories: Some(vec![EXTERNAL_ANALYSIS]),
            stored_as: None,
        }
    }

    /// Stores `entry` instead of this one in the stored form (the hover form is unchanged).
    pub fn stored_as(mut self, entry: Entry) -> Self {
        self.stored_as = Some(Box::new(entry));
        self
    }

    /// Replaces the categories (`None` removes the key).
    pub fn categories(mut self, categories: Option<&[&'static str]>) -> Self {
        self.categories = categories.map(<[&str]>::to_vec);
        self
    }
}

/// Tags without duplicates, first occurrence first (the reference's order depends on Python's
/// hash seed; ours is stable: compatibility fix 2).
pub(crate) fn dedup_tags<'a>(tags: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        if !out.iter().any(|t| t == tag) {
            out.push(tag.to_owned());
        }
    }
    out
}

/// The entries of one request, de-duplicated across all of the request's lookups like the
/// reference: the key is the label plus Python's `str()` of the value, the first one wins, and
/// an entry whose value is the empty string is dropped.
#[derive(Debug, Default)]
pub struct Payload {
    entries: Vec<Entry>,
    seen: HashSet<(String, String)>,
}

impl Payload {
    /// An empty payload.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the entry unless it is empty or already present; says whether it was added.
    pub fn push(&mut self, entry: Entry) -> bool {
        if entry.value.as_str() == Some("") {
            return false;
        }
        let key = (entry.label.clone(), pyfmt::py_str(&entry.value));
        if !self.seen.insert(key) {
            return false;
        }
        self.entries.push(entry);
        true
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entries, in insertion order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Consumes the payload.
    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }
}

/// How MISP will use the results, which decides the shape of `values`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A hover popover (no `event_id` in the request): `values` is `{label: value}`, which MISP
    /// renders as "label: value".
    Hover,
    /// Enrichment, bulk enrichment or import (`event_id` present): MISP stores each value as
    /// an attribute, so `values` is `["value"]` and the label moves into the comment
    /// (compatibility fix 3).
    Stored,
}

/// Renders entries as MISP's legacy result list. `note`, when given, is put in front of every
/// comment (the demo mode's warning).
pub fn render(entries: &[Entry], form: Form, note: Option<&str>) -> Vec<Value> {
    entries
        .iter()
        .filter_map(|entry| render_one(entry, form, note))
        .collect()
}

fn render_one(entry: &Entry, form: Form, note: Option<&str>) -> Option<Value> {
    let entry = match (form, &entry.stored_as) {
        (Form::Stored, Some(instead)) => instead.as_ref(),
        _ => entry,
    };
    let (values, comment) = match form {
        Form::Hover => {
            let mut values = Map::new();
            values.insert(entry.label.clone(), entry.value.clone());
            (Value::Object(values), entry.comment.clone())
        }
        Form::Stored => {
            // MISP drops null and empty values anyway; a null cannot become an attribute.
            if entry.value.is_null() {
                return None;
            }
            let value = match &entry.value {
                Value::String(s) => s.clone(),
                other => pyfmt::py_str(other),
            };
            (json!([value]), stored_comment(&entry.label, &entry.comment))
        }
    };
    let types: Vec<&str> = match form {
        Form::Stored => vec![stored_type(entry, values[0].as_str().unwrap_or_default())],
        Form::Hover => entry.types.clone(),
    };
    let comment = match note {
        Some(note) => format!("{note} {comment}"),
        None => comment,
    };
    let mut out = Map::new();
    out.insert("types".into(), json!(types));
    let categories = entry
        .categories
        .as_deref()
        .map(|categories| valid_categories(types.first().copied().unwrap_or("text"), categories));
    out.insert("values".into(), values);
    out.insert("comment".into(), Value::String(comment));
    out.insert("tags".into(), json!(entry.tags));
    if let Some(categories) = categories {
        out.insert("categories".into(), json!(categories));
    }
    Some(Value::Object(out))
}

/// One entry as its hover result, serialized straight from the entry: the same JSON, key for
/// key and byte for byte, as [`render`] gives in hover form, without building it as a tree.
#[derive(Debug)]
pub(crate) struct HoverJson<'a> {
    pub(crate) entry: &'a Entry,
    /// Put in front of the comment (demo mode).
    pub(crate) note: Option<&'a str>,
}

impl serde::Serialize for HoverJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let entry = self.entry;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("types", &entry.types)?;
        map.serialize_entry("values", &OneMember(&entry.label, &entry.value))?;
        match self.note {
            Some(note) => map.serialize_entry("comment", &format!("{note} {}", entry.comment))?,
            None => map.serialize_entry("comment", &entry.comment)?,
        }
        map.serialize_entry("tags", &entry.tags)?;
        if let Some(categories) = &entry.categories {
            let first = entry.types.first().copied().unwrap_or("text");
            map.serialize_entry("categories", &valid_category_names(first, categories))?;
        }
        map.end()
    }
}

/// `{key: value}`.
pub(crate) struct OneMember<'a, V: ?Sized>(pub(crate) &'a str, pub(crate) &'a V);

impl<V: serde::Serialize + ?Sized> serde::Serialize for OneMember<'_, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.0, self.1)?;
        map.end()
    }
}

/// The type to store a value under where the reference's label says more than its type: an
/// SSL certificate hash is `x509-fingerprint-sha1`, an ASN `AS`, a mail server host a
/// `hostname` (the reference types them all `text`). Value-only corrections, and the check that
/// the value fits, are the stored-form step's ([`stored::prepare`]).
fn stored_type(entry: &Entry, value: &str) -> &'static str {
    let declared = entry.types.first().copied().unwrap_or("text");
    if declared != "text" {
        return declared;
    }
    let label = entry.label.to_lowercase();
    let value = value.trim();
    if label.contains("ssl hash")
        && value.len() == 40
        && value.bytes().all(|b| b.is_ascii_hexdigit())
    {
        "x509-fingerprint-sha1"
    } else if label.ends_with("asn")
        && !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
    {
        "AS"
    } else if (label.ends_with("server host") || label.ends_with("mx host"))
        && validate::is_domain(&value.to_lowercase())
    {
        "hostname"
    } else {
        "text"
    }
}

/// The comment of a stored attribute: the reference's comment, with the hover label in front
/// when the comment does not already name it.
fn stored_comment(label: &str, comment: &str) -> String {
    if comment.to_lowercase().contains(&label.to_lowercase()) {
        comment.to_owned()
    } else {
        format!("{label}: {comment}")
    }
}

/// MISP's type catalogue (`describeTypes.json` from PyMISP): which categories each type may
/// be stored under, and each type's default category.
#[derive(Debug)]
pub struct Catalogue {
    categories: HashMap<String, String>,
    categories_of: HashMap<String, HashSet<String>>,
    default_category: HashMap<String, String>,
}

/// The catalogue, loaded on first use from the bundled copy.
pub static CATALOGUE: LazyLock<Catalogue> = LazyLock::new(|| {
    let raw: Value = serde_json::from_str(include_str!("../data/misp/describeTypes.json"))
        .expect("the bundled describeTypes.json is valid JSON");
    let result = &raw["result"];
    let mut categories_of: HashMap<String, HashSet<String>> = HashMap::new();
    let mut categories: HashMap<String, String> = HashMap::new();
    if let Some(mappings) = result["category_type_mappings"].as_object() {
        for (category, types) in mappings {
            categories.insert(category.clone(), category.clone());
            for t in types
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                categories_of
                    .entry(t.to_owned())
                    .or_default()
                    .insert(category.clone());
            }
        }
    }
    let default_category = result["sane_defaults"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(t, d)| Some((t.clone(), d["default_category"].as_str()?.to_owned())))
        .collect();
    Catalogue {
        categories,
        categories_of,
        default_category,
    }
});

impl Catalogue {
    /// Whether MISP knows the attribute type.
    pub fn has_type(&self, attribute_type: &str) -> bool {
        self.default_category.contains_key(attribute_type)
    }

    /// Whether MISP accepts `attribute_type` under `category`.
    pub fn allows(&self, category: &str, attribute_type: &str) -> bool {
        self.categories_of
            .get(attribute_type)
            .is_some_and(|c| c.contains(category))
    }

    /// The catalogue's own spelling of a type, when MISP knows it.
    pub fn type_name(&'static self, attribute_type: &str) -> Option<&'static str> {
        self.default_category
            .get_key_value(attribute_type)
            .map(|(t, _)| t.as_str())
    }

    /// The catalogue's own spelling of a category, when MISP knows it.
    pub fn category_name(&'static self, category: &str) -> Option<&'static str> {
        self.categories.get(category).map(String::as_str)
    }

    /// The category MISP proposes for the type.
    pub fn default_category(&self, attribute_type: &str) -> Option<&str> {
        self.default_category
            .get(attribute_type)
            .map(String::as_str)
    }
}

/// The categories MISP will accept for an attribute of `attribute_type`: the given ones that
/// are valid, or else the type's default. The reference sends a few pairs MISP refuses to
/// store (`datetime` or `whois-registrant-email` under "External analysis"); we send the
/// type's default category instead (see docs/compatibility.md).
pub(crate) fn valid_categories(attribute_type: &str, categories: &[&'static str]) -> Vec<String> {
    valid_category_names(attribute_type, categories)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// [`valid_categories`], borrowed from the catalogue and the given names.
fn valid_category_names(attribute_type: &str, categories: &[&'static str]) -> Vec<&'static str> {
    let valid: Vec<&'static str> = categories
        .iter()
        .copied()
        .filter(|c| CATALOGUE.allows(c, attribute_type))
        .collect();
    if !valid.is_empty() {
        return valid;
    }
    let catalogue: &'static Catalogue = &CATALOGUE;
    match catalogue.default_category(attribute_type) {
        Some(default) => vec![default],
        None => categories.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(label: &str, value: Value) -> Entry {
        Entry::new(
            &["text"],
            label,
            value,
            format!("{label} from DomainTools"),
            &["DomainTools"],
        )
    }

    #[test]
    fn dedup_is_on_label_and_python_str_first_wins() {
        let mut p = Payload::new();
        assert!(p.push(entry("Rank", json!(1))));
        assert!(!p.push(entry("Rank", json!("1"))), "str(1) == '1'");
        assert!(p.push(entry("Other", json!(1))));
        assert!(!p.push(entry("Empty", json!(""))));
        assert!(p.push(entry("Null", Value::Null)));
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn hover_form_keeps_label_and_json_type() {
        let out = render(&[entry("Rank", json!(1))], Form::Hover, None);
        assert_eq!(
            out[0],
            json!({"types": ["text"], "values": {"Rank": 1}, "comment": "Rank from DomainTools",
                   "tags": ["DomainTools"], "categories": ["External analysis"]})
        );
    }

    #[test]
    fn stored_form_has_string_values_and_label_in_comment() {
        let mut e = entry("IP Address", json!("1.2.3.4"));
        e.comment = "address from DomainTools".into();
        let out = render(
            &[e, entry("Rank", json!(1)), entry("Gone", Value::Null)],
            Form::Stored,
            None,
        );
        assert_eq!(out.len(), 2, "a null value cannot be stored");
        assert_eq!(out[0]["values"], json!(["1.2.3.4"]));
        assert_eq!(out[0]["comment"], "IP Address: address from DomainTools");
        assert_eq!(out[1]["values"], json!(["1"]));
        assert_eq!(out[1]["comment"], "Rank from DomainTools");
    }

    #[test]
    fn note_prefixes_every_comment() {
        let out = render(&[entry("Rank", json!(1))], Form::Hover, Some("[DEMO]"));
        assert_eq!(out[0]["comment"], "[DEMO] Rank from DomainTools");
    }

    #[test]
    fn invalid_categories_become_the_types_default() {
        assert_eq!(
            valid_categories("datetime", &[EXTERNAL_ANALYSIS]),
            ["Other"]
        );
        assert_eq!(
            valid_categories("whois-registrant-email", &[EXTERNAL_ANALYSIS]),
            ["Attribution"]
        );
        assert_eq!(
            valid_categories("text", &[EXTERNAL_ANALYSIS]),
            [EXTERNAL_ANALYSIS]
        );
        assert_eq!(
            valid_categories("ip-dst", &["Attribution", "Network activity"]),
            ["Network activity"]
        );
        assert!(CATALOGUE.has_type("x509-fingerprint-sha1"));
        assert!(!CATALOGUE.has_type("whois-registrant-country"));
    }

    #[test]
    fn tags_are_stable_and_unique() {
        assert_eq!(
            dedup_tags(["DomainTools", "Iris", "DomainTools", "x"]),
            ["DomainTools", "Iris", "x"]
        );
    }
}
