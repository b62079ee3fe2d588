//! The misp-modules wire format of `POST /query`: reading a request (module, input attribute,
//! config, timeout, hover or stored) and writing replies MISP can always display.

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::misp::{self, Form};
use crate::modules::{Input, Reply};
use domaintools::Credentials;

/// The reference's configuration error strings, kept verbatim (MISP admins search for them).
pub(crate) const CONFIG_MISSING: &str = "Configuration is missing from the request.";
/// See [`CONFIG_MISSING`].
pub(crate) const USERNAME_MISSING: &str = "DomainTools API username is not configured.";
/// See [`CONFIG_MISSING`].
pub(crate) const API_KEY_MISSING: &str = "DomainTools API key is not configured.";

/// Which keys of a `/query` body are read: the top-level ones and those of its `config`
/// object. Every other key is skipped while parsing, never built into a value.
pub(crate) trait Wanted {
    /// Whether a top-level key is read.
    fn top(&self, key: &str) -> bool;
    /// Whether a key of `config` is read.
    fn config(&self, key: &str) -> bool;
}

/// Parses a `/query` body into what is read of it: the wanted keys, each with a scalar value
/// (a string, number, boolean or null), except `config`, an object of wanted keys with scalar
/// values. Containers found where a scalar was expected keep their kind but none of their
/// content (`{"domain": [1, 2]}` reads as `{"domain": []}`), so error messages still name
/// what was sent while a large body costs no more memory than the values read. Anything but
/// a JSON object is refused (HTTP 400 at the boundary).
pub(crate) fn parse_body(body: &[u8], wanted: &dyn Wanted) -> Result<Map<String, Value>, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let read = serde::de::DeserializeSeed::deserialize(Body { wanted }, &mut deserializer)
        .and_then(|read| deserializer.end().map(|()| read));
    match read {
        Ok(Read::Object(map)) => Ok(map),
        Ok(Read::Other(kind)) => Err(format!(
            "The request body must be a JSON object, not {kind}."
        )),
        Err(e) => Err(format!("The request body is not valid JSON ({e}).")),
    }
}

enum Read {
    Object(Map<String, Value>),
    Other(&'static str),
}

/// The whole body.
struct Body<'w> {
    wanted: &'w dyn Wanted,
}

impl<'de> serde::de::DeserializeSeed<'de> for Body<'_> {
    type Value = Read;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Read, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Body<'_> {
    type Value = Read;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Read, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "config" {
                let config = access.next_value_seed(Config {
                    wanted: self.wanted,
                })?;
                map.insert(key.into_owned(), config);
            } else if key == "attribute" {
                // The whole attribute `misp_standard` modules receive: its fields, scalars only.
                let attribute = access.next_value_seed(Config {
                    wanted: &EveryField,
                })?;
                map.insert(key.into_owned(), attribute);
            } else if self.wanted.top(&key) {
                let value = access.next_value_seed(Scalar)?;
                map.insert(key.into_owned(), value);
            } else {
                access.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(Read::Object(map))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut access: A) -> Result<Read, A::Error> {
        while access.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Read::Other("an array"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Read, E> {
        Ok(Read::Other("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Read, E> {
        Ok(Read::Other("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Read, E> {
        Ok(Read::Other("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Read, E> {
        Ok(Read::Other("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Read, E> {
        Ok(Read::Other("a string"))
    }
    fn visit_unit<E>(self) -> Result<Read, E> {
        Ok(Read::Other("null"))
    }
}

/// Reads every field of an object (its scalar values): for the `attribute` object.
struct EveryField;

impl Wanted for EveryField {
    fn top(&self, _key: &str) -> bool {
        true
    }
    fn config(&self, _key: &str) -> bool {
        true
    }
}

/// The `config` object: its wanted keys with scalar values.
struct Config<'w> {
    wanted: &'w dyn Wanted,
}

impl<'de> serde::de::DeserializeSeed<'de> for Config<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Config<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the config object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<std::borrow::Cow<'de, str>>()? {
            if self.wanted.config(&key) {
                let value = access.next_value_seed(Scalar)?;
                map.insert(key.into_owned(), value);
            } else {
                access.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(Value::Object(map))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, access: A) -> Result<Value, A::Error> {
        ScalarVisitor.visit_seq(access)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// A scalar value, or an empty container of the kind sent.
struct Scalar;

impl<'de> serde::de::DeserializeSeed<'de> for Scalar {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> serde::de::Visitor<'de> for ScalarVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        while access
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Value::Object(Map::new()))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        while access.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Value::Array(Vec::new()))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// The `module` field.
pub(crate) fn module_name(request: &Map<String, Value>) -> Result<&str, String> {
    match request.get("module") {
        Some(Value::String(name)) if !name.is_empty() => Ok(name),
        None | Some(Value::Null) => Err("The request has no \"module\" field.".to_owned()),
        Some(_) => Err("The \"module\" field must be a module name (a string).".to_owned()),
    }
}

/// The `timeout` field (seconds), read as leniently as misp-modules' `int()`: `5`, `"5"`,
/// `1.9` (→ 1). `None` when absent or null: the server then uses MISP's own budgets.
pub(crate) fn timeout(request: &Map<String, Value>) -> Result<Option<Duration>, String> {
    let seconds = match request.get("timeout") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match seconds {
        Some(s) if s.is_finite() && s >= 0.0 => {
            Ok(Some(Duration::from_secs(s.trunc().min(86_400.0) as u64)))
        }
        _ => Err("The \"timeout\" field must be a number of seconds.".to_owned()),
    }
}

/// Hover requests carry no `event_id`; enrichment, bulk enrichment and imports do.
pub(crate) fn form(request: &Map<String, Value>) -> Form {
    match request.get("event_id") {
        None | Some(Value::Null) => Form::Hover,
        Some(_) => Form::Stored,
    }
}

/// The attribute to look up: the first of the module's input keys present in the request.
pub(crate) fn input(
    module: &str,
    inputs: &[String],
    request: &Map<String, Value>,
) -> Result<Input, String> {
    for key in inputs {
        let Some(value) = request.get(key) else {
            continue;
        };
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Null if key == "data" => String::new(),
            // An import's `data` is read by the module that needs it (Iris-Import decodes it;
            // Iris-Detect ignores it, and DomainTools' own test sends `{"dummy": "data"}`).
            other if key == "data" => other.to_string(),
            _ => return Err(format!("The \"{key}\" value must be a string.")),
        };
        return Ok(Input {
            attribute_type: key.clone(),
            value,
            attribute: None,
        });
    }
    Err(format!(
        "{module} does not handle this attribute: it takes {}.",
        inputs.join(", ")
    ))
}

/// The attribute of a `misp_standard` request: MISP sends the whole attribute as
/// `{"attribute": {"type", "value", "uuid", …}}`; a request naming the value by type
/// (`{"domain": "example.com"}`, handy with curl) is read like any other module's.
pub(crate) fn standard_input(
    module: &str,
    inputs: &[String],
    request: &Map<String, Value>,
) -> Result<Input, String> {
    let attribute = match request.get("attribute") {
        None | Some(Value::Null) => return input(module, inputs, request),
        Some(Value::Object(attribute)) => attribute,
        Some(_) => {
            return Err(
                "The \"attribute\" field must be a MISP attribute (an object with type, value and uuid)."
                    .to_owned(),
            )
        }
    };
    let Some(attribute_type) = attribute.get("type").and_then(Value::as_str) else {
        return Err("The attribute has no type.".to_owned());
    };
    if !inputs.iter().any(|t| t == attribute_type) {
        return Err(format!(
            "{module} does not handle {} attributes: it takes {}.",
            domaintools::classic::shown(attribute_type),
            inputs.join(", ")
        ));
    }
    let value = match attribute.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("The attribute's value must be a string.".to_owned()),
    };
    match attribute.get("uuid") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => return Err("The attribute's uuid must be a string.".to_owned()),
    }
    Ok(Input {
        attribute_type: attribute_type.to_owned(),
        value,
        attribute: Some(attribute.clone()),
    })
}

/// Server-side default credentials (from the environment), each optional.
#[derive(Clone, Debug, Default)]
pub struct DefaultCredentials {
    /// Used when the request's `config.username` is null, blank or absent.
    pub username: Option<String>,
    /// Used when the request's `config.api_key` is null, blank or absent.
    pub api_key: Option<domaintools::SecretString>,
}

/// The credentials of a request: the request's `config` wins; null, blank or absent values are
/// filled from the server's defaults; what is still missing gives the reference's messages.
pub(crate) fn credentials(
    request: &Map<String, Value>,
    defaults: &DefaultCredentials,
) -> Result<Credentials, &'static str> {
    let config = request.get("config").and_then(Value::as_object);
    let has_defaults = defaults.username.is_some() || defaults.api_key.is_some();
    if config.is_none() && !has_defaults {
        return Err(CONFIG_MISSING);
    }
    let from_request = |key: &str| {
        config
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    };
    let username = from_request("username")
        .or_else(|| defaults.username.clone())
        .ok_or(USERNAME_MISSING)?;
    let api_key = from_request("api_key")
        .or_else(|| {
            defaults
                .api_key
                .as_ref()
                .map(|key| domaintools::ExposeSecret::expose_secret(key).to_owned())
        })
        .ok_or(API_KEY_MISSING)?;
    Ok(Credentials::new(username.trim(), api_key.trim()))
}

/// A module's reply as JSON: `results` is the entry list, or the `misp_standard` object of
/// the modules that answer in that format; `error` and `comment` when set.
pub(crate) fn reply_json(reply: Reply) -> Value {
    let mut out = Map::new();
    let results = match (reply.standard, reply.hover) {
        (Some(standard), _) => Value::Object(standard),
        (None, Some(hover)) => {
            let mut results = hover.render();
            results.extend(reply.results);
            Value::Array(results)
        }
        (None, None) => Value::Array(reply.results),
    };
    out.insert("results".into(), results);
    if let Some(error) = reply.error {
        out.insert("error".into(), Value::String(error));
    }
    if let Some(comment) = reply.comment {
        out.insert("comment".into(), Value::String(comment));
    }
    Value::Object(out)
}

/// How MISP uses a reply, which decides its last step ([`finish`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// A hover popover: MISP shows `results` only, never `error`.
    Hover,
    /// Stored attributes (enrichment with `event_id`, imports): MISP validates each row and
    /// puts the top-level `comment` on every row that has none.
    Stored,
}

/// The last step of every reply. Stored replies: every row made one MISP keeps
/// ([`misp::stored::prepare`]), and the top-level summary `comment` becomes one `comment`
/// attribute of its own, so that MISP does not stamp it on every attribute. Hover replies: an
/// `error` is also shown as an "Error" entry, because MISP's popover shows only `results`
/// ("Empty results" otherwise). `demo_note` is the note demo-mode comments start with.
pub(crate) fn finish(reply: Value, usage: Use, demo_note: Option<&str>) -> Value {
    let Value::Object(mut reply) = reply else {
        return reply;
    };
    // A `misp_standard` answer (`{"Attribute", "Object"}`) is built for MISP's rules by its
    // module already.
    if reply.get("results").is_some_and(Value::is_object) {
        return Value::Object(reply);
    }
    let results = match reply.remove("results") {
        Some(Value::Array(results)) => results,
        _ => Vec::new(),
    };
    let results = match usage {
        Use::Stored => {
            let mut results = misp::stored::prepare(results, demo_note);
            if let Some(Value::String(summary)) = reply.remove("comment") {
                results.push(json!({
                    "types": ["comment"],
                    "values": [summary],
                    "comment": "Summary of this DomainTools answer",
                    "tags": ["DomainTools"],
                    "categories": ["Other"],
                }));
            }
            results
        }
        Use::Hover => {
            let mut results = results;
            if let Some(Value::String(error)) = reply.get("error") {
                results.push(json!({"types": ["text"], "values": {"Error": error}}));
            }
            results
        }
    };
    let mut out = Map::new();
    out.insert("results".into(), Value::Array(results));
    out.extend(reply);
    Value::Object(out)
}

/// The bytes of a hover reply written straight from its entries: exactly
/// `finish(reply_json(reply), Use::Hover, note)` serialized, without the JSON tree between.
/// `None` for a reply that is not only hover entries (it takes the general path).
pub(crate) fn hover_reply_bytes(reply: &Reply) -> Option<Vec<u8>> {
    use serde::ser::{SerializeMap, SerializeSeq};

    struct Results<'a>(&'a crate::modules::Hover, Option<&'a str>);
    impl serde::Serialize for Results<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut seq = serializer.serialize_seq(None)?;
            for entry in &self.0.entries {
                seq.serialize_element(&misp::HoverJson {
                    entry,
                    note: self.0.note,
                })?;
            }
            // As `finish` does for a hover: the error is also an entry, the one MISP shows.
            if let Some(error) = self.1 {
                seq.serialize_element(&ErrorEntry(error))?;
            }
            seq.end()
        }
    }
    struct ErrorEntry<'a>(&'a str);
    impl serde::Serialize for ErrorEntry<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(2))?;
            map.serialize_entry("types", &["text"])?;
            map.serialize_entry("values", &misp::OneMember("Error", self.0))?;
            map.end()
        }
    }
    struct Whole<'a>(&'a Reply, &'a crate::modules::Hover);
    impl serde::Serialize for Whole<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let reply = self.0;
            let mut map = serializer.serialize_map(None)?;
            map.serialize_entry("results", &Results(self.1, reply.error.as_deref()))?;
            if let Some(error) = &reply.error {
                map.serialize_entry("error", error)?;
            }
            if let Some(comment) = &reply.comment {
                map.serialize_entry("comment", comment)?;
            }
            map.end()
        }
    }

    let hover = reply.hover.as_ref()?;
    if reply.standard.is_some() || !reply.results.is_empty() {
        return None;
    }
    serde_json::to_vec(&Whole(reply, hover)).ok()
}

/// An error reply: `{"results": [], "error": "…"}` (MISP's bulk enrichment needs `results`).
pub(crate) fn error_json(message: impl Into<String>) -> Value {
    json!({"results": [], "error": message.into()})
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// Wants every key.
    struct All;
    impl Wanted for All {
        fn top(&self, _: &str) -> bool {
            true
        }
        fn config(&self, _: &str) -> bool {
            true
        }
    }

    /// Wants the keys of an Iris-Enrich request.
    struct EnrichKeys;
    impl Wanted for EnrichKeys {
        fn top(&self, key: &str) -> bool {
            matches!(key, "module" | "domain" | "timeout")
        }
        fn config(&self, key: &str) -> bool {
            matches!(key, "username" | "api_key")
        }
    }

    #[test]
    fn only_wanted_keys_and_scalars_are_read() {
        let body = json!({
            "module": "M", "domain": ["a", {"b": 1}], "junk": [{}, {}, {}], "timeout": 5,
            "config": {"username": "u", "api_key": {"deep": [1, 2]}, "other": "x"},
        });
        let read = parse_body(body.to_string().as_bytes(), &EnrichKeys).unwrap();
        assert_eq!(
            Value::Object(read),
            json!({"module": "M", "domain": [], "timeout": 5,
                   "config": {"username": "u", "api_key": {}}})
        );
        let read = parse_body(br#"{"config": [1, 2], "module": null}"#, &EnrichKeys).unwrap();
        assert_eq!(Value::Object(read), json!({"config": [], "module": null}));
        assert!(
            parse_body(br#"{"junk": [1, }"#, &EnrichKeys)
                .unwrap_err()
                .contains("not valid JSON"),
            "skipped parts are still checked"
        );
    }

    #[test]
    fn body_must_be_an_object() {
        let parse_body = |body: &[u8]| parse_body(body, &All);
        assert!(parse_body(b"{}").is_ok());
        assert!(parse_body(b"[1]").unwrap_err().contains("an array"));
        assert!(parse_body(b"{").unwrap_err().contains("not valid JSON"));
        assert!(parse_body(b"{} x").unwrap_err().contains("not valid JSON"));
        assert!(parse_body(b"\xff\xfe").is_err());
        let deep = "[".repeat(100_000);
        assert!(
            parse_body(deep.as_bytes()).is_err(),
            "deep nesting is refused, not a stack overflow"
        );
    }

    #[test]
    fn timeout_is_lenient_like_python_int() {
        assert_eq!(timeout(&req(json!({}))).unwrap(), None);
        assert_eq!(
            timeout(&req(json!({"timeout": "5"}))).unwrap(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            timeout(&req(json!({"timeout": 1.9}))).unwrap(),
            Some(Duration::from_secs(1))
        );
        assert!(timeout(&req(json!({"timeout": "abc"}))).is_err());
        assert!(timeout(&req(json!({"timeout": -1}))).is_err());
    }

    #[test]
    fn first_input_in_module_order_wins() {
        let inputs = vec!["domain".to_owned(), "hostname".to_owned()];
        let got = input(
            "M",
            &inputs,
            &req(json!({"hostname": "h.example.com", "domain": "example.com"})),
        )
        .unwrap();
        assert_eq!(
            (got.attribute_type.as_str(), got.value.as_str()),
            ("domain", "example.com")
        );
        assert_eq!(
            input("M", &inputs, &req(json!({"ip-src": "1.2.3.4"}))).unwrap_err(),
            "M does not handle this attribute: it takes domain, hostname."
        );
        assert!(input("M", &inputs, &req(json!({"domain": {"x": 1}}))).is_err());
        let data = vec!["data".to_owned()];
        assert_eq!(
            input("M", &data, &req(json!({"data": {"dummy": "data"}})))
                .unwrap()
                .value,
            r#"{"dummy":"data"}"#,
            "any import data is accepted; the module decides"
        );
    }

    #[test]
    fn standard_requests_carry_the_whole_attribute() {
        let inputs = vec!["domain".to_owned(), "ip-src".to_owned()];
        let got = standard_input(
            "M",
            &inputs,
            &req(json!({"attribute": {"type": "ip-src", "value": "192.0.2.1", "uuid": "u"}})),
        )
        .unwrap();
        assert_eq!(got.attribute_type, "ip-src");
        assert_eq!(got.attribute.unwrap()["uuid"], "u");
        let flat = standard_input("M", &inputs, &req(json!({"domain": "example.com"}))).unwrap();
        assert_eq!((flat.value.as_str(), flat.attribute), ("example.com", None));
        assert_eq!(
            standard_input(
                "M",
                &inputs,
                &req(json!({"attribute": {"type": "md5", "value": "x"}}))
            )
            .unwrap_err(),
            "M does not handle \"md5\" attributes: it takes domain, ip-src."
        );
        assert!(standard_input("M", &inputs, &req(json!({"attribute": "x"}))).is_err());
        assert!(standard_input(
            "M",
            &inputs,
            &req(json!({"attribute": {"type": "domain", "value": ["x"]}}))
        )
        .is_err());
    }

    #[test]
    fn credentials_follow_the_reference_then_fill_from_defaults() {
        let none = DefaultCredentials::default();
        assert_eq!(
            credentials(&req(json!({})), &none).unwrap_err(),
            CONFIG_MISSING
        );
        assert_eq!(
            credentials(&req(json!({"config": null})), &none).unwrap_err(),
            CONFIG_MISSING
        );
        assert_eq!(
            credentials(
                &req(json!({"config": {"username": null, "api_key": "k"}})),
                &none
            )
            .unwrap_err(),
            USERNAME_MISSING
        );
        assert_eq!(
            credentials(
                &req(json!({"config": {"username": "u", "api_key": null}})),
                &none
            )
            .unwrap_err(),
            API_KEY_MISSING
        );
        let defaults = DefaultCredentials {
            username: Some("server".into()),
            api_key: Some("server-key".into()),
        };
        let c = credentials(&req(json!({})), &defaults).unwrap();
        assert_eq!((c.username(), c.api_key()), ("server", "server-key"));
        let c = credentials(
            &req(json!({"config": {"username": "mine", "api_key": ""}})),
            &defaults,
        )
        .unwrap();
        assert_eq!(
            (c.username(), c.api_key()),
            ("mine", "server-key"),
            "request wins; blank is unset"
        );
    }

    #[test]
    fn hover_is_the_absence_of_event_id() {
        assert_eq!(form(&req(json!({"domain": "x"}))), Form::Hover);
        assert_eq!(form(&req(json!({"event_id": "56"}))), Form::Stored);
        assert_eq!(form(&req(json!({"event_id": null}))), Form::Hover);
    }
}
