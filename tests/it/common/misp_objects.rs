//! What MISP requires of a `misp_standard` answer, checked independently of the code that builds
//! it: the object templates and relationship types (PyMISP's data, bundled under `data/misp/`),
//! the type/category catalogue (`describeTypes.json`), and MISP's attribute validation
//! (`app/Lib/Tools/AttributeValidationTool.php`: `modifyBeforeValidation` then `validate`),
//! transcribed for the types an answer may carry. An unknown type fails, as it throws in MISP.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use serde_json::Value;

fn data(path: &str) -> Value {
    let full = format!("{}/data/misp/{path}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&full).unwrap()).unwrap()
}

/// The reference data, loaded once per check run.
pub struct Rules {
    templates: HashMap<String, Value>,
    relationships: HashSet<String>,
    categories_of: HashMap<String, HashSet<String>>,
}

impl Rules {
    /// Loads the bundled templates, relationships and catalogue; when the shared copy exists
    /// (`../shared/misp`), the bundled files must be the same bytes.
    pub fn load() -> Self {
        let shared = format!("{}/../shared/misp", env!("CARGO_MANIFEST_DIR"));
        let mut templates = HashMap::new();
        let dir = format!("{}/data/misp/objects", env!("CARGO_MANIFEST_DIR"));
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let template = data(&format!("objects/{name}/definition.json"));
            if let Ok(theirs) = std::fs::read(format!("{shared}/objects/{name}/definition.json")) {
                let ours = std::fs::read(format!(
                    "{}/data/misp/objects/{name}/definition.json",
                    env!("CARGO_MANIFEST_DIR")
                ))
                .unwrap();
                assert_eq!(
                    ours, theirs,
                    "bundled template {name} differs from the shared one"
                );
            }
            templates.insert(name, template);
        }
        let relationships = data("relationships/definition.json")["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_owned())
            .collect();
        let types = data("describeTypes.json");
        let mut categories_of: HashMap<String, HashSet<String>> = HashMap::new();
        for (category, types) in types["result"]["category_type_mappings"]
            .as_object()
            .unwrap()
        {
            for t in types.as_array().unwrap() {
                categories_of
                    .entry(t.as_str().unwrap().to_owned())
                    .or_default()
                    .insert(category.clone());
            }
        }
        Self {
            templates,
            relationships,
            categories_of,
        }
    }

    /// Checks a whole `results` object, with `input_uuid` the enriched attribute's uuid.
    /// Returns how many objects were checked.
    pub fn check(&self, results: &Value, input_uuid: &str) -> usize {
        let results = results
            .as_object()
            .expect("misp_standard results are an object");
        for key in results.keys() {
            assert!(
                key == "Attribute" || key == "Object",
                "unexpected results key {key}"
            );
        }
        let attributes = results
            .get("Attribute")
            .map_or(&[][..], |a| a.as_array().unwrap());
        let objects = results
            .get("Object")
            .map_or(&[][..], |o| o.as_array().unwrap());
        assert!(
            !attributes.is_empty() || !objects.is_empty(),
            "MISP falls back to the simplified format on an empty answer"
        );
        let mut uuids = HashSet::new();
        let mut values = HashSet::new();
        for a in attributes {
            // The enriched attribute is MISP's own, echoed with its tags.
            if a["uuid"] != input_uuid {
                self.check_attribute(a, None);
            }
            assert!(uuids.insert(uuid(a)), "uuid repeated: {a}");
            assert!(
                values.insert((a["type"].clone(), a["value"].clone())),
                "attribute repeated: {a}"
            );
        }
        let mut object_keys = HashSet::new();
        for o in objects {
            assert!(uuids.insert(uuid(o)), "uuid repeated: {o}");
            let name = o["name"].as_str().unwrap();
            let template = self
                .templates
                .get(name)
                .unwrap_or_else(|| panic!("no MISP template {name}"));
            assert_eq!(o["template_uuid"], template["uuid"], "{name}");
            // A string, as misp-modules 3.1.1's own answers send it ("10").
            assert_eq!(
                o["template_version"].as_str().unwrap(),
                template["version"].as_u64().unwrap().to_string(),
                "{name}"
            );
            assert_eq!(o["meta-category"], template["meta-category"], "{name}");
            let mut seen: HashMap<String, usize> = HashMap::new();
            let mut contents = Vec::new();
            for a in o["Attribute"].as_array().unwrap() {
                let relation = a["object_relation"].as_str().unwrap();
                let spec = &template["attributes"][relation];
                assert!(spec.is_object(), "{name} has no relation {relation}");
                assert_eq!(a["type"], spec["misp-attribute"], "{name}.{relation}");
                self.check_attribute(a, Some(spec));
                assert!(uuids.insert(uuid(a)), "uuid repeated: {a}");
                *seen.entry(relation.to_owned()).or_default() += 1;
                contents.push((relation.to_owned(), a["value"].as_str().unwrap().to_owned()));
            }
            for (relation, n) in &seen {
                let multiple = template["attributes"][relation]["multiple"]
                    .as_bool()
                    .unwrap_or(false);
                assert!(*n == 1 || multiple, "{name}.{relation} appears {n} times");
            }
            for required in template["required"].as_array().into_iter().flatten() {
                assert!(
                    seen.contains_key(required.as_str().unwrap()),
                    "{name} lacks required {required}"
                );
            }
            if let Some(one_of) = template["requiredOneOf"].as_array() {
                assert!(
                    one_of
                        .iter()
                        .any(|r| seen.contains_key(r.as_str().unwrap())),
                    "{name} has none of {one_of:?}"
                );
            }
            contents.sort();
            assert!(
                object_keys.insert((name.to_owned(), contents)),
                "object repeated: {o}"
            );
        }
        for o in objects {
            for r in o["ObjectReference"].as_array().into_iter().flatten() {
                assert_eq!(r["object_uuid"], o["uuid"], "{r}");
                let relationship = r["relationship_type"].as_str().unwrap();
                assert!(
                    self.relationships.contains(relationship),
                    "{relationship} is not a MISP relationship"
                );
                let target = r["referenced_uuid"].as_str().unwrap();
                assert!(
                    target == input_uuid || uuids.contains(target),
                    "reference to nothing in the answer: {r}"
                );
                assert_ne!(target, o["uuid"].as_str().unwrap(), "self reference");
            }
        }
        objects.len()
    }

    fn check_attribute(&self, a: &Value, spec: Option<&Value>) {
        let t = a["type"].as_str().unwrap();
        let category = a["category"].as_str().unwrap();
        assert!(
            self.categories_of
                .get(t)
                .is_some_and(|c| c.contains(category)),
            "MISP refuses {t} under {category}: {a}"
        );
        if let Some(categories) = spec.and_then(|s| s["categories"].as_array()) {
            assert!(
                categories.iter().any(|c| c == category),
                "the template wants {categories:?}: {a}"
            );
        }
        let value = a["value"].as_str().expect("values are strings");
        assert!(misp_accepts(t, value), "MISP refuses the {t} {value:?}");
        assert_eq!(
            modify_before_validation(t, value),
            value,
            "MISP would store the {t} differently"
        );
        let uuid = uuid(a);
        assert!(is_uuid(&uuid), "{uuid}");
        for tag in a["Tag"].as_array().into_iter().flatten() {
            let name = tag["name"].as_str().unwrap();
            assert!(!name.trim().is_empty() && !name.contains('\n'), "{tag}");
        }
    }
}

fn uuid(v: &Value) -> String {
    v["uuid"].as_str().unwrap_or_default().to_owned()
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12].iter().zip(&parts).all(|(n, p)| {
            p.len() == *n
                && p.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
}

/// `AttributeValidationTool::modifyBeforeValidation`, for the types answers carry.
pub fn modify_before_validation(t: &str, value: &str) -> String {
    match t {
        "domain" => value.to_lowercase().trim_matches('.').to_owned(),
        "hostname" | "email" | "email-src" | "email-dst" | "whois-registrant-email" => {
            value.to_lowercase()
        }
        "x509-fingerprint-sha1" | "x509-fingerprint-md5" | "x509-fingerprint-sha256" => {
            value.replace(':', "").to_lowercase()
        }
        "ip-src" | "ip-dst" => match value.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => value.to_owned(),
        },
        "whois-registrant-phone" => {
            let v = match value.strip_prefix("00") {
                Some(rest) => format!("+{rest}"),
                None => value.to_owned(),
            };
            v.replace("(0)", "")
                .chars()
                .filter(|c| *c == '+' || c.is_ascii_digit())
                .collect()
        }
        "AS" => {
            let v = value
                .strip_prefix("AS")
                .or_else(|| value.strip_prefix("as"))
                .unwrap_or(value);
            v.to_owned()
        }
        _ => value.to_owned(),
    }
}

/// `AttributeValidationTool::validate`, for the types answers carry.
pub fn misp_accepts(t: &str, value: &str) -> bool {
    if value.trim().is_empty() || value.len() > 65_535 {
        return false;
    }
    match t {
        // isDomainValid: ^[A-Z0-9.\-_]+\.[A-Z0-9\-]{2,}$ (case-insensitive)
        "domain" | "hostname" => match value.rsplit_once('.') {
            Some((head, tld)) => {
                !head.is_empty()
                    && head
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                    && tld.len() >= 2
                    && tld.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }
            None => false,
        },
        "ip-src" | "ip-dst" => value.parse::<IpAddr>().is_ok(),
        // ^.[^\s]*\@.*\..*$
        "email" | "email-src" | "email-dst" | "whois-registrant-email" => {
            let mut chars = value.chars();
            chars.next().is_some() && {
                let rest: String = chars.collect();
                match rest.find('@') {
                    Some(at) => {
                        !rest[..at].chars().any(char::is_whitespace) && rest[at + 1..].contains('.')
                    }
                    None => false,
                }
            }
        }
        "AS" => {
            value.bytes().all(|b| b.is_ascii_digit())
                && value.parse::<u64>().is_ok_and(|n| n <= 4_294_967_295)
        }
        "x509-fingerprint-sha1" => {
            value.len() == 40 && value.bytes().all(|b| b.is_ascii_hexdigit())
        }
        // strtotime: the forms answers use.
        "datetime" => {
            chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok()
                || chrono::DateTime::parse_from_rfc3339(value).is_ok()
        }
        // filter_var(FILTER_VALIDATE_URL): a scheme and a host, and only URL characters.
        "link" => {
            value
                .split_once("://")
                .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty())
                && value.bytes().all(|b| b.is_ascii_graphic())
        }
        // is_numeric after the massage
        "whois-registrant-phone" => {
            let digits = value.strip_prefix('+').unwrap_or(value);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        }
        "text" => true,
        "url" | "whois-registrant-name" | "whois-registrant-org" | "whois-registrar" => {
            !value.contains('\n')
        }
        other => panic!("no MISP rule transcribed for {other}: add it before emitting it"),
    }
}
