//! Property tests of request parsing, on inputs proptest makes up: no body or field of any
//! shape makes the parser panic, and what it reads is exactly what the body holds.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::protocol::{self, DefaultCredentials};
use crate::strategies::{json_value, request_like};

/// Wants every key, so what `parse_body` reads is [`read_of`] the whole body.
struct EveryKey;

impl protocol::Wanted for EveryKey {
    fn top(&self, _: &str) -> bool {
        true
    }
    fn config(&self, _: &str) -> bool {
        true
    }
}

/// What `parse_body` is to read of an object: its scalars, containers emptied (`config`'s own
/// scalars kept), one level down.
fn read_of(value: &Value) -> Value {
    fn scalar(value: &Value) -> Value {
        match value {
            Value::Array(_) => Value::Array(Vec::new()),
            Value::Object(_) => Value::Object(serde_json::Map::new()),
            other => other.clone(),
        }
    }
    let Value::Object(map) = value else {
        return scalar(value);
    };
    let read = map
        .iter()
        .map(|(key, value)| match (key.as_str(), value) {
            ("config", Value::Object(config)) => (
                key.clone(),
                Value::Object(config.iter().map(|(k, v)| (k.clone(), scalar(v))).collect()),
            ),
            _ => (key.clone(), scalar(value)),
        })
        .collect();
    Value::Object(read)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parse_body_never_panics_and_accepts_exactly_objects(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        match protocol::parse_body(&bytes, &EveryKey) {
            Ok(map) => {
                let reparsed: Value = serde_json::from_slice(&bytes).unwrap();
                prop_assert_eq!(read_of(&reparsed), Value::Object(map));
            }
            Err(message) => prop_assert!(!message.is_empty()),
        }
    }

    #[test]
    fn parse_body_reads_exactly_the_scalars_of_every_object(value in json_value()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        match (&value, protocol::parse_body(&bytes, &EveryKey)) {
            (Value::Object(_), Ok(parsed)) => prop_assert_eq!(read_of(&value), Value::Object(parsed)),
            (Value::Object(_), Err(e)) => prop_assert!(false, "object refused: {}", e),
            (_, Ok(_)) => prop_assert!(false, "non-object accepted: {}", value),
            (_, Err(e)) => prop_assert!(e.contains("must be a JSON object"), "{}", e),
        }
    }

    #[test]
    fn request_fields_are_read_without_panicking(request in request_like()) {
        // Every accessor the server calls on a parsed body, on bodies of any shape.
        let _ = protocol::module_name(&request);
        let _ = protocol::form(&request);
        if let Ok(Some(timeout)) = protocol::timeout(&request) {
            prop_assert!(timeout <= Duration::from_secs(86_400));
        }
        let inputs = vec!["domain".to_owned(), "hostname".to_owned(), "ip-src".to_owned()];
        match protocol::input("M", &inputs, &request) {
            Ok(input) => {
                prop_assert!(inputs.contains(&input.attribute_type));
                // The first input key present in module order is the one read.
                let first = inputs.iter().find(|k| request.contains_key(*k)).unwrap();
                prop_assert_eq!(&input.attribute_type, first);
            }
            Err(message) => prop_assert!(!message.is_empty()),
        }
        let defaults = DefaultCredentials::default();
        if let Ok(credentials) = protocol::credentials(&request, &defaults) {
            prop_assert!(!credentials.username().is_empty());
            prop_assert!(!credentials.api_key().is_empty());
        }
    }

    #[test]
    fn timeouts_read_like_python_int(seconds in 0u32..200_000, frac in 0.0f64..1.0) {
        let value = f64::from(seconds) + frac;
        let request: Map<String, Value> = [("timeout".to_owned(), json!(value))].into_iter().collect();
        let expected = Duration::from_secs(u64::from(seconds).min(86_400));
        prop_assert_eq!(protocol::timeout(&request).unwrap(), Some(expected));
        let as_text: Map<String, Value> = [("timeout".to_owned(), json!(seconds.to_string()))].into_iter().collect();
        prop_assert_eq!(protocol::timeout(&as_text).unwrap(), Some(expected));
    }
}
