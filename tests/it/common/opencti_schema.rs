//! The OpenCTI platform's GraphQL schema of each release the connector supports, merged as the
//! platform merges its files (`@graphql-tools` `mergeTypeDefs`: same-named types merged field
//! by field, enum values likewise, plus the `@rateLimit` directive added at run time), and a
//! validator of a document with its variables against it, as the platform's GraphQL server
//! checks a request before running it. The merged schemas are kept in
//! `tests/data/opencti-schema/` (descriptions left out); `copies_match_the_platform_files`
//! rebuilds them from `../shared/opencti/schema/` where that exists.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use apollo_compiler::ast::{self, Definition};
use apollo_compiler::response::{serde_json_bytes, JsonMap};
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use serde_json::Value;

/// The releases whose schemas were read (6.0.0 … 6.9.17); "7" stands for 7.x, see [`schema`].
pub const RELEASES: [&str; 6] = ["6.0.0", "6.5.6", "6.5.7", "6.8.8", "6.8.9", "6.9.17"];

/// No 7.x schema file was available: pycti 7 reads `jwks` from registration, so 7.x is
/// checked against 6.9.17 with that field, the one difference the connector relies on.
const SEVEN_EXTENSION: &str = "extend type Connector { jwks: String }";

const RATE_LIMIT: &str =
    "directive @rateLimit(limit: Int, duration: Int, arrayLengthField: String) on OBJECT | FIELD_DEFINITION";

fn data_dir() -> PathBuf {
    [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "data",
        "opencti-schema",
    ]
    .iter()
    .collect()
}

/// `../shared/opencti/schema/` from the project's root, when present.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/opencti/schema");
    dir.is_dir().then_some(dir)
}

/// Merges a release's files (in name order), as the platform does; descriptions are dropped.
pub fn merge(files: &[(String, String)]) -> String {
    let mut merged = ast::Document::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (path, text) in files {
        let document = ast::Document::parse(text.as_str(), path)
            .unwrap_or_else(|errors| panic!("{path} does not parse: {errors}"));
        for mut definition in document.definitions {
            strip_descriptions(&mut definition);
            let Some(name) = definition.name().map(ToString::to_string) else {
                merged.definitions.push(definition);
                continue;
            };
            match index.get(&name) {
                Some(&at) => merge_into(&mut merged.definitions[at], definition, &name),
                None => {
                    index.insert(name, merged.definitions.len());
                    merged.definitions.push(definition);
                }
            }
        }
    }
    let extra = ast::Document::parse(RATE_LIMIT, "rateLimit").expect("the directive parses");
    merged.definitions.extend(extra.definitions);
    merged.to_string()
}

fn merge_into(into: &mut Definition, from: Definition, name: &str) {
    match (into, from) {
        (Definition::ObjectTypeDefinition(a), Definition::ObjectTypeDefinition(b)) => {
            let a = a.make_mut();
            for field in &b.fields {
                if !a.fields.iter().any(|known| known.name == field.name) {
                    a.fields.push(field.clone());
                }
            }
            for interface in &b.implements_interfaces {
                if !a.implements_interfaces.contains(interface) {
                    a.implements_interfaces.push(interface.clone());
                }
            }
        }
        (Definition::InterfaceTypeDefinition(a), Definition::InterfaceTypeDefinition(b)) => {
            let a = a.make_mut();
            for field in &b.fields {
                if !a.fields.iter().any(|known| known.name == field.name) {
                    a.fields.push(field.clone());
                }
            }
        }
        (Definition::InputObjectTypeDefinition(a), Definition::InputObjectTypeDefinition(b)) => {
            let a = a.make_mut();
            for field in &b.fields {
                if !a.fields.iter().any(|known| known.name == field.name) {
                    a.fields.push(field.clone());
                }
            }
        }
        (Definition::EnumTypeDefinition(a), Definition::EnumTypeDefinition(b)) => {
            let a = a.make_mut();
            for value in &b.values {
                if !a.values.iter().any(|known| known.value == value.value) {
                    a.values.push(value.clone());
                }
            }
        }
        (Definition::UnionTypeDefinition(a), Definition::UnionTypeDefinition(b)) => {
            let a = a.make_mut();
            for member in &b.members {
                if !a.members.contains(member) {
                    a.members.push(member.clone());
                }
            }
        }
        _ => panic!("{name} is defined twice with different kinds"),
    }
}

fn strip_descriptions(definition: &mut Definition) {
    match definition {
        Definition::ObjectTypeDefinition(d) => {
            let d = d.make_mut();
            d.description = None;
            for field in &mut d.fields {
                let field = field.make_mut();
                field.description = None;
                for argument in &mut field.arguments {
                    argument.make_mut().description = None;
                }
            }
        }
        Definition::InterfaceTypeDefinition(d) => {
            let d = d.make_mut();
            d.description = None;
            for field in &mut d.fields {
                let field = field.make_mut();
                field.description = None;
                for argument in &mut field.arguments {
                    argument.make_mut().description = None;
                }
            }
        }
        Definition::InputObjectTypeDefinition(d) => {
            let d = d.make_mut();
            d.description = None;
            for field in &mut d.fields {
                field.make_mut().description = None;
            }
        }
        Definition::EnumTypeDefinition(d) => {
            let d = d.make_mut();
            d.description = None;
            for value in &mut d.values {
                value.make_mut().description = None;
            }
        }
        Definition::UnionTypeDefinition(d) => d.make_mut().description = None,
        Definition::ScalarTypeDefinition(d) => d.make_mut().description = None,
        Definition::DirectiveDefinition(d) => {
            let d = d.make_mut();
            d.description = None;
            for argument in &mut d.arguments {
                argument.make_mut().description = None;
            }
        }
        _ => {}
    }
}

/// The files of `release` in `dir` (`<dir>/<release>/*.graphql`), in name order.
pub fn release_files(dir: &Path, release: &str) -> Vec<(String, String)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir.join(release))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(release).display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "graphql"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("a schema file");
            (path.display().to_string(), text)
        })
        .collect()
}

/// The stored merged schema of `release`.
pub fn stored(release: &str) -> String {
    let path = data_dir().join(format!("opencti-{release}.graphql"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Where the stored copy of `release` is.
pub fn stored_path(release: &str) -> PathBuf {
    data_dir().join(format!("opencti-{release}.graphql"))
}

/// The validated schema of `release` ("6.0.0" … "6.9.17", or a 7.x version).
pub fn schema(release: &str) -> &'static Valid<Schema> {
    static SCHEMAS: OnceLock<std::sync::Mutex<HashMap<String, &'static Valid<Schema>>>> =
        OnceLock::new();
    let key = if release.starts_with("7.") || release == "7" {
        "7".to_owned()
    } else {
        release.to_owned()
    };
    let mut schemas = SCHEMAS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(schema) = schemas.get(&key) {
        return schema;
    }
    let text = if key == "7" {
        format!("{}\n{SEVEN_EXTENSION}\n", stored("6.9.17"))
    } else {
        stored(&key)
    };
    let schema = Schema::parse_and_validate(text, format!("opencti-{key}.graphql"))
        .unwrap_or_else(|errors| panic!("the {key} schema is not valid: {}", errors.errors));
    let schema: &'static Valid<Schema> = Box::leak(Box::new(schema));
    schemas.insert(key, schema);
    schema
}

/// Checks a request as the platform would: the document against the schema, and the
/// variables against the operation (types, required values, no unknown input fields).
pub fn validate(release: &str, query: &str, variables: &Value) -> Result<(), String> {
    let schema = schema(release);
    let document = ExecutableDocument::parse_and_validate(schema, query, "request.graphql")
        .map_err(|errors| errors.errors.to_string())?;
    let operation = document
        .operations
        .get(None)
        .map_err(|_| "the document has not exactly one operation".to_owned())?;
    let values: JsonMap = match serde_json_bytes::serde_json::from_str::<serde_json_bytes::Value>(
        &variables.to_string(),
    ) {
        Ok(serde_json_bytes::Value::Object(map)) => map,
        Ok(serde_json_bytes::Value::Null) => JsonMap::new(),
        _ => return Err("the variables are not an object".to_owned()),
    };
    apollo_compiler::request::coerce_variable_values(schema, operation, &values)
        .map(drop)
        .map_err(|error| error.message().to_string())
}
