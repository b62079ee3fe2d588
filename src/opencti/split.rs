//! pycti's bundle splitter (`OpenCTIStix2Splitter.split_bundle_with_expectations`): one bundle
//! per object, ordered so that what an object refers to is sent before it, each counted as one
//! expectation on the work. The platform's worker imports the push queue's bundles one by one
//! and reports each against the work, so the count must be the number of bundles sent.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

/// Object types pycti's splitter keeps (its `supported_types`): references to other types are
/// dropped from the objects, and objects of other types are left out of the split.
const SUPPORTED_TYPES: &[&str] = &[
    // STIX meta and core objects
    "label",
    "vocabulary",
    "kill-chain-phase",
    "attack-pattern",
    "campaign",
    "case-incident",
    "x-opencti-case-incident",
    "case-rfi",
    "x-opencti-case-rfi",
    "case-rft",
    "x-opencti-case-rft",
    "channel",
    "course-of-action",
    "data-component",
    "x-mitre-data-component",
    "data-source",
    "x-mitre-data-source",
    "event",
    "external-reference",
    "feedback",
    "x-opencti-feedback",
    "grouping",
    "identity",
    "incident",
    "indicator",
    "infrastructure",
    "intrusion-set",
    "language",
    "location",
    "malware",
    "malware-analysis",
    "marking-definition",
    "narrative",
    "note",
    "observed-data",
    "opinion",
    "report",
    "task",
    "x-opencti-task",
    "threat-actor",
    "tool",
    "vulnerability",
    "security-coverage",
    // OpenCTI internal objects
    "user",
    "group",
    "capability",
    "role",
    "settings",
    "notification",
    "work",
    "trash",
    "draftworkspace",
    "playbook",
    "deleteoperation",
    "workspace",
    "publicdashboard",
    // observables
    "autonomous-system",
    "directory",
    "domain-name",
    "email-addr",
    "email-message",
    "email-mime-part-type",
    "artifact",
    "file",
    "x509-certificate",
    "ipv4-addr",
    "ipv6-addr",
    "mac-addr",
    "mutex",
    "network-traffic",
    "process",
    "software",
    "url",
    "user-account",
    "windows-registry-key",
    "windows-registry-value-type",
    "hostname",
    "cryptographic-key",
    "cryptocurrency-wallet",
    "text",
    "user-agent",
    "bank-account",
    "phone-number",
    "credential",
    "tracking-number",
    "payment-card",
    "media-content",
    "simple-observable",
    "persona",
    "ssh-key",
    "ai-prompt",
    "imei",
    "iccid",
    "imsi",
    // relationships
    "relationship",
    "sighting",
    "pir",
];

/// OpenCTI's own extension on SDOs and SROs, whose `id` names an object too.
const OPENCTI_EXTENSION: &str = "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba";

fn is_id_supported(id: &str) -> bool {
    match id.split_once("--") {
        Some((kind, _)) => SUPPORTED_TYPES.contains(&kind),
        None => true,
    }
}

/// The split: the bundles, in sending order (as JSON text), and the expectations they count.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// One bundle per object.
    pub bundles: Vec<String>,
    /// The number of objects sent, for `workEdit { addExpectations }`.
    pub expectations: usize,
}

/// Why a bundle cannot be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// Not a bundle with an `objects` list of objects that have ids.
    #[error("the bundle is not a STIX bundle with objects")]
    NotABundle,
}

struct Splitter<'a> {
    raw: &'a HashMap<String, usize>,
    objects: Vec<Map<String, Value>>,
    /// Dependency counts of the objects enlisted, by index.
    deps: HashMap<usize, usize>,
    /// References already followed from an object (by id), to stop cycles.
    refs: HashMap<String, Vec<String>>,
    /// Enlisted objects, in enlisting order, with their dependency counts.
    elements: Vec<(usize, usize)>,
}

impl Splitter<'_> {
    fn not_dependency(&self, target: &str, item_id: &str) -> bool {
        self.refs
            .get(target)
            .is_none_or(|followed| !followed.iter().any(|id| id == item_id))
    }

    fn enlist(&mut self, item_id: &str, parents: &[String]) -> usize {
        let Some(&index) = self.raw.get(item_id) else {
            return 0;
        };
        if let Some(&deps) = self.deps.get(&index) {
            return deps;
        }
        let mut deps = 1;
        self.refs.entry(item_id.to_owned()).or_default();
        let keys: Vec<String> = self.objects[index].keys().cloned().collect();
        for key in keys {
            if key.ends_with("_refs") {
                let Some(Value::Array(targets)) = self.objects[index].get(&key).cloned() else {
                    continue;
                };
                let mut kept: Vec<Value> = Vec::new();
                for target in targets {
                    let Some(target_id) = target.as_str() else {
                        continue;
                    };
                    if is_id_supported(target_id)
                        && !parents.iter().any(|p| p == target_id)
                        && target_id != item_id
                        && self.not_dependency(target_id, item_id)
                    {
                        self.refs
                            .entry(item_id.to_owned())
                            .or_default()
                            .push(target_id.to_owned());
                        let mut chain = parents.to_vec();
                        chain.push(target_id.to_owned());
                        deps += self.enlist(target_id, &chain);
                        if !kept.contains(&target) {
                            kept.push(target);
                        }
                    }
                }
                self.objects[index].insert(key, Value::Array(kept));
            } else if key.ends_with("_ref") {
                let target = self.objects[index].get(&key).cloned();
                let followed = match target.as_ref().and_then(Value::as_str) {
                    Some(target_id)
                        if !parents.iter().any(|p| p == target_id)
                            && is_id_supported(target_id)
                            && target_id != item_id
                            && self.not_dependency(target_id, item_id) =>
                    {
                        self.refs
                            .entry(item_id.to_owned())
                            .or_default()
                            .push(target_id.to_owned());
                        let mut chain = parents.to_vec();
                        chain.push(target_id.to_owned());
                        deps += self.enlist(target_id, &chain);
                        true
                    }
                    _ => false,
                };
                if !followed {
                    self.objects[index].insert(key, Value::Null);
                }
            }
        }
        self.objects[index].insert("nb_deps".to_owned(), json!(deps));
        self.deps.insert(index, deps);
        let object = &self.objects[index];
        let compatible = match object.get("type").and_then(Value::as_str) {
            Some("relationship") => {
                !object.get("source_ref").is_none_or(Value::is_null)
                    && !object.get("target_ref").is_none_or(Value::is_null)
            }
            Some("sighting") => {
                !object.get("sighting_of_ref").is_none_or(Value::is_null)
                    && object
                        .get("where_sighted_refs")
                        .and_then(Value::as_array)
                        .is_some_and(|refs| !refs.is_empty())
            }
            _ => is_id_supported(item_id),
        };
        if compatible {
            self.elements.push((index, deps));
        }
        deps
    }
}

/// Splits `bundle` as pycti does before publishing to the push queue.
pub fn split_bundle(bundle: &Value) -> Result<Split, SplitError> {
    let objects = bundle
        .get("objects")
        .and_then(Value::as_array)
        .ok_or(SplitError::NotABundle)?;
    let bundle_id = bundle
        .get("id")
        .and_then(Value::as_str)
        .ok_or(SplitError::NotABundle)?
        .to_owned();
    let mut items = Vec::with_capacity(objects.len());
    let mut raw = HashMap::new();
    let mut ids = Vec::with_capacity(objects.len());
    for object in objects {
        let object = object.as_object().ok_or(SplitError::NotABundle)?;
        let id = object
            .get("id")
            .and_then(Value::as_str)
            .ok_or(SplitError::NotABundle)?
            .to_owned();
        // A later object with the same id replaces the earlier one, as in pycti's dict.
        let index = items.len();
        items.push(object.clone());
        for internal in internal_ids(object) {
            raw.insert(internal, index);
        }
        raw.insert(id.clone(), index);
        ids.push(id);
    }
    let mut splitter = Splitter {
        raw: &raw,
        objects: items,
        deps: HashMap::new(),
        refs: HashMap::new(),
        elements: Vec::new(),
    };
    let mut seen = HashSet::new();
    for id in &ids {
        if seen.insert(id.as_str()) {
            splitter.enlist(id, &[]);
        }
    }
    let mut elements = splitter.elements.clone();
    // Stable, like Python's sort: equal counts keep their enlisting order.
    elements.sort_by_key(|&(_, deps)| deps);
    let bundles = elements
        .iter()
        .map(|&(index, deps)| {
            json!({
                "type": "bundle",
                "id": bundle_id,
                "spec_version": "2.1",
                "x_opencti_seq": deps,
                "objects": [splitter.objects[index]],
            })
            .to_string()
        })
        .collect::<Vec<_>>();
    Ok(Split {
        expectations: bundles.len(),
        bundles,
    })
}

fn internal_ids(object: &Map<String, Value>) -> Vec<String> {
    let mut ids = Vec::new();
    if let Some(id) = object.get("x_opencti_id").and_then(Value::as_str) {
        ids.push(id.to_owned());
    }
    if let Some(id) = object
        .get("extensions")
        .and_then(|extensions| extensions.get(OPENCTI_EXTENSION))
        .and_then(|extension| extension.get("id"))
        .and_then(Value::as_str)
    {
        ids.push(id.to_owned());
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(split: &Split) -> Vec<Value> {
        split
            .bundles
            .iter()
            .map(|text| {
                let bundle: Value = serde_json::from_str(text).unwrap();
                assert_eq!(bundle["objects"].as_array().unwrap().len(), 1);
                bundle["objects"][0].clone()
            })
            .collect()
    }

    #[test]
    fn what_an_object_refers_to_goes_first() {
        let bundle = json!({"type": "bundle", "id": "bundle--1", "objects": [
            {"type": "relationship", "id": "relationship--r", "source_ref": "domain-name--d",
             "target_ref": "ipv4-addr--i", "created_by_ref": "identity--a"},
            {"type": "domain-name", "id": "domain-name--d",
             "object_marking_refs": ["marking-definition--m"]},
            {"type": "ipv4-addr", "id": "ipv4-addr--i"},
            {"type": "identity", "id": "identity--a"},
        ]});
        let split = split_bundle(&bundle).unwrap();
        assert_eq!(split.expectations, 4);
        let ids: Vec<Value> = objects(&split).iter().map(|o| o["id"].clone()).collect();
        assert_eq!(
            ids,
            [
                "domain-name--d",
                "ipv4-addr--i",
                "identity--a",
                "relationship--r"
            ]
        );
        let relationship = &objects(&split)[3];
        assert_eq!(relationship["nb_deps"], 4);
        // A marking outside the bundle counts nothing but stays referenced.
        assert_eq!(
            objects(&split)[0]["object_marking_refs"],
            json!(["marking-definition--m"])
        );
    }

    #[test]
    fn cycles_and_duplicates_end() {
        let bundle = json!({"type": "bundle", "id": "bundle--1", "objects": [
            {"type": "note", "id": "note--a", "object_refs": ["note--b"]},
            {"type": "note", "id": "note--b", "object_refs": ["note--a", "note--b"]},
            {"type": "note", "id": "note--a", "object_refs": ["note--b"]},
            {"type": "relationship", "id": "relationship--self", "source_ref": "relationship--self",
             "target_ref": "note--a"},
        ]});
        let split = split_bundle(&bundle).unwrap();
        // note--a once; the self-referencing relationship loses its source and is left out.
        assert_eq!(split.expectations, 2);
        // As pycti splits it: the back reference in the cycle is dropped.
        let kept = objects(&split);
        assert_eq!(kept[0]["id"], "note--b");
        assert_eq!(kept[0]["object_refs"], json!([]));
        assert_eq!(kept[1]["id"], "note--a");
        assert_eq!(kept[1]["nb_deps"], 2);
        assert!(split_bundle(&json!({"objects": "no"})).is_err());
        assert!(split_bundle(&json!({"type": "bundle", "objects": []})).is_err());
    }
}
