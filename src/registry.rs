//! The one explicit list of modules this server provides, and their descriptors parsed once at
//! start-up into what `GET /modules` serves.

use std::collections::HashSet;

use bytes::Bytes;
use serde_json::Value;

use crate::modules::{
    analyze, historic, iris_detect, iris_enrich, iris_import, iris_investigate, iris_pivot, pivot,
    Module,
};

/// Every module, alphabetically. Adding a module means adding its file under `src/modules/`,
/// its descriptor under `modules/`, and one line here.
pub static MODULES: &[Module] = &[
    analyze::MODULE,
    historic::MODULE,
    iris_detect::MODULE,
    iris_enrich::MODULE,
    iris_import::MODULE,
    iris_investigate::MODULE,
    iris_pivot::MODULE,
    pivot::MODULE,
];

/// A module with what its descriptor says about its inputs.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The module.
    pub module: Module,
    /// The request keys that carry its input, in priority order (the first present wins):
    /// `mispattributes.input`, or `["data"]` for import modules.
    pub inputs: Vec<String>,
}

impl Registered {
    /// Whether MISP calls the module as an import (its results are always stored).
    pub fn is_import(&self) -> bool {
        self.inputs == ["data"]
    }
}

/// The loaded modules and the precomputed `/modules` body.
#[derive(Debug, Clone)]
pub struct Registry {
    modules: Vec<Registered>,
    listing: Bytes,
    /// The request keys any module reads: a body's other keys are skipped unread.
    request_keys: HashSet<String>,
    /// The `config` keys any module reads (descriptor settings, import-form fields, the
    /// credentials).
    config_keys: HashSet<String>,
}

impl Registry {
    /// Loads and checks every descriptor; a malformed one is a start-up error, never a
    /// broken MISP page later.
    pub fn new(modules: &[Module]) -> Result<Self, String> {
        let mut loaded = Vec::with_capacity(modules.len());
        let mut descriptors = Vec::with_capacity(modules.len());
        for module in modules {
            let descriptor: Value = serde_json::from_str(module.descriptor)
                .map_err(|e| format!("descriptor of {}: {e}", module.name))?;
            let inputs = check_descriptor(module.name, &descriptor)?;
            if loaded
                .iter()
                .any(|r: &Registered| r.module.name == module.name)
            {
                return Err(format!("module {} is registered twice", module.name));
            }
            loaded.push(Registered {
                module: *module,
                inputs,
            });
            descriptors.push(descriptor);
        }
        let listing = serde_json::to_vec(&descriptors).map_err(|e| e.to_string())?;
        let mut request_keys: HashSet<String> = ["module", "timeout", "event_id"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        request_keys.extend(loaded.iter().flat_map(|r| r.inputs.iter().cloned()));
        let mut config_keys: HashSet<String> = ["username", "api_key"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        for d in &descriptors {
            let settings = d["meta"]["config"].as_array().into_iter().flatten();
            config_keys.extend(settings.filter_map(Value::as_str).map(str::to_owned));
            if let Some(form) = d["mispattributes"]["userConfig"].as_object() {
                config_keys.extend(form.keys().cloned());
            }
        }
        Ok(Self {
            modules: loaded,
            listing: Bytes::from(listing),
            request_keys,
            config_keys,
        })
    }

    /// The module called `name` (exact, case-sensitive, like misp-modules).
    pub fn find(&self, name: &str) -> Option<&Registered> {
        self.modules.iter().find(|r| r.module.name == name)
    }

    /// The modules, in registry order.
    pub fn modules(&self) -> &[Registered] {
        &self.modules
    }

    /// The `GET /modules` body: a JSON array of the descriptors.
    pub fn listing(&self) -> Bytes {
        self.listing.clone()
    }
}

impl crate::protocol::Wanted for Registry {
    fn top(&self, key: &str) -> bool {
        self.request_keys.contains(key)
    }
    fn config(&self, key: &str) -> bool {
        self.config_keys.contains(key)
    }
}

/// Checks what MISP relies on (see the protocol notes, §10) and returns the input keys.
fn check_descriptor(name: &str, d: &Value) -> Result<Vec<String>, String> {
    let fail = |what: &str| Err(format!("descriptor of {name}: {what}"));
    if d["name"] != name {
        return fail("`name` differs from the module's name");
    }
    let kind = d["type"].as_str().unwrap_or_default();
    if !matches!(kind, "expansion" | "import_mod") {
        return fail("`type` must be expansion or import_mod");
    }
    let Some(module_types) = d["meta"]["module-type"].as_array() else {
        return fail("`meta.module-type` must be an array");
    };
    let config = d["meta"]["config"].as_array();
    if !config.is_some_and(|c| c.iter().all(Value::is_string)) {
        return fail("`meta.config` must be a flat list of strings");
    }
    if !d["mispattributes"].is_object() {
        return fail("`mispattributes` must be an object");
    }
    if module_types.iter().any(|t| t == "import") {
        return Ok(vec!["data".to_owned()]);
    }
    let Some(inputs) = d["mispattributes"]["input"].as_array() else {
        return fail("`mispattributes.input` must be an array");
    };
    inputs
        .iter()
        .map(|t| t.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("descriptor of {name}: inputs must be strings"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_descriptor_has_a_handler_and_every_handler_a_descriptor() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/modules");
        let files: BTreeSet<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let registered: BTreeSet<String> =
            MODULES.iter().map(|m| format!("{}.json", m.name)).collect();
        assert_eq!(files, registered);
        for module in MODULES {
            let on_disk = std::fs::read_to_string(format!("{dir}/{}.json", module.name)).unwrap();
            assert_eq!(
                on_disk, module.descriptor,
                "{} embeds its own file",
                module.name
            );
        }
    }

    #[test]
    fn registry_loads_and_is_alphabetical() {
        let registry = Registry::new(MODULES).unwrap();
        let names: Vec<_> = registry.modules().iter().map(|r| r.module.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        let listing: Value = serde_json::from_slice(&registry.listing()).unwrap();
        assert_eq!(listing.as_array().unwrap().len(), MODULES.len());
    }

    #[test]
    fn malformed_descriptors_are_refused() {
        let bad = Module {
            name: "X",
            descriptor: r#"{"name":"X","type":"expansion","mispattributes":{"input":["domain"]},"meta":{"module-type":"hover","config":[]}}"#,
            run: MODULES[0].run,
            replies_live_as: None,
        };
        assert!(Registry::new(&[bad]).unwrap_err().contains("module-type"));
    }
}
