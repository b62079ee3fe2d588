//! Property tests: request parsing (`protocol`), registrable-domain reduction
//! (`domain::registrable_domain`) and the URL-path safety of classic lookups
//! (`domaintools::classic`), on inputs proptest makes up, and end to end: whatever value a
//! MISP attribute holds, the fake DomainTools API only ever sees paths of the expected shape.

use std::time::Duration;

use domaintools::classic::{check_host_characters, encode_segment, validate_domain, validate_ip};
use misp_domaintools::domain::registrable_domain;
use misp_domaintools::protocol::{self, DefaultCredentials};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::common::server::{config, TestServer};

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        // Quarters are exact in binary: serde_json (without float_roundtrip) may read other
        // long decimals back one ulp off, which is its business, not the protocol's.
        any::<i32>().prop_map(|n| json!(f64::from(n) / 4.0)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON objects shaped like MISP requests: known keys with values of any type.
fn request_like() -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![
        Just("module".to_owned()),
        Just("config".to_owned()),
        Just("timeout".to_owned()),
        Just("event_id".to_owned()),
        Just("domain".to_owned()),
        Just("hostname".to_owned()),
        Just("ip-src".to_owned()),
        Just("data".to_owned()),
        ".{0,10}",
    ];
    prop::collection::btree_map(key, json_value(), 0..8).prop_map(|m| m.into_iter().collect())
}

/// Host-like strings: labels of letters, digits and hyphens, in either case.
fn hostname() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-zA-Z0-9][a-zA-Z0-9-]{0,10}", 1..5).prop_flat_map(|labels| {
        prop_oneof![
            Just("com"),
            Just("co.uk"),
            Just("COM"),
            Just("org"),
            Just("github.io"),
            Just("example"),
            Just("xn--p1ai"),
            Just("museum"),
        ]
        .prop_map(move |suffix| format!("{}.{suffix}", labels.join(".")))
    })
}

const FORBIDDEN_IN_PATHS: &[char] = &['/', '?', '#', '%', '\\'];

fn path_safe(s: &str) -> bool {
    !s.chars()
        .any(|c| FORBIDDEN_IN_PATHS.contains(&c) || c.is_whitespace() || c.is_control())
}

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

    #[test]
    fn registrable_domain_never_panics(input in ".{0,200}") {
        let _ = registrable_domain(&input);
    }

    #[test]
    fn registrable_domain_is_a_case_preserving_suffix_of_the_host(
        host in hostname(),
        scheme in prop_oneof![Just(""), Just("http://"), Just("https://user:pw@"), Just("//")],
        tail in prop_oneof![Just(""), Just(":8080"), Just("/a/b?c=d#e"), Just(".")],
    ) {
        let input = format!("{scheme}{host}{tail}");
        if let Some(domain) = registrable_domain(&input) {
            prop_assert!(host.ends_with(&domain), "{} is not a suffix of {}", domain, host);
            prop_assert!(
                domain.len() == host.len() || host[..host.len() - domain.len()].ends_with('.'),
                "{} does not start at a label of {}", domain, host
            );
            // At least two labels: a name under a public suffix, never the suffix alone.
            prop_assert!(domain.contains('.'));
            // The same name whatever the case: the reduction depends on labels, not case.
            let lower = registrable_domain(&input.to_lowercase());
            prop_assert_eq!(lower, Some(domain.to_lowercase()));
        }
    }

    #[test]
    fn accepted_domains_are_path_safe_once_encoded(input in ".{0,80}") {
        if let Ok(ascii) = validate_domain(&input) {
            prop_assert!(path_safe(&ascii), "{:?} accepted as {:?}", input, ascii);
            prop_assert!(ascii.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
            prop_assert!(!ascii.contains(".."));
            // Nothing left to encode: the path segment is the value itself.
            prop_assert_eq!(encode_segment(&ascii), ascii);
        }
        if check_host_characters(&input).is_ok() {
            prop_assert!(path_safe(&input), "{:?} passed the host check", input);
        }
    }

    #[test]
    fn accepted_ips_are_path_safe_once_encoded(input in ".{0,60}") {
        if let Ok(ip) = validate_ip(&input) {
            let segment = encode_segment(&ip.to_string());
            prop_assert!(path_safe(&segment), "{:?} → {:?}", input, segment);
            prop_assert!(segment.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':'));
        }
    }

    #[test]
    fn encoding_leaves_only_unreserved_characters_or_escapes(input in ".{0,80}") {
        let encoded = encode_segment(&input);
        prop_assert!(encoded.is_ascii());
        prop_assert!(!encoded.chars().any(|c| matches!(c, '/' | '?' | '#' | '\\') || c.is_whitespace() || c.is_control()));
        // Every % starts an escape of two hex digits.
        let bytes = encoded.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'%' {
                prop_assert!(i + 2 < bytes.len() + 1 && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit));
            }
        }
    }
}

/// Values an attacker or a sloppy feed could put in a MISP attribute.
fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,60}",
        "[a-z./%?#\\\\ :@-]{1,40}",
        hostname().prop_map(|h| format!("{h}/../../v1/account")),
        hostname().prop_map(|h| format!("{h}%2f..%2faccount")),
        hostname().prop_map(|h| format!("{h}?api_key=x#frag")),
        hostname().prop_map(|h| format!("{h}\r\nX-Injected: 1")),
        hostname(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_fake_api_only_sees_well_formed_lookup_paths(values in prop::collection::vec(hostile_value(), 1..6)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            // Rate limits not learned: reverse whois allows 10 calls a minute on the
            // recorded account, and this test is about paths, not pacing.
            let server = TestServer::builder()
                .client(|client| client.learn_rate_limits = false)
                .start()
                .await;
            for value in &values {
                for (module, key) in [
                    ("DomainTools-Analyze", "domain"),
                    ("DomainTools-Analyze", "url"),
                    ("DomainTools-Historic", "hostname"),
                    ("DomainTools-Pivot", "ip-src"),
                    ("DomainTools-Pivot", "domain"),
                ] {
                    let (status, reply) = server
                        .post(&json!({"module": module, key: value, "event_id": "1", "config": config()}))
                        .await;
                    assert_eq!(status, 200, "{module} {key}={value:?}: {reply}");
                    assert!(reply["results"].is_array());
                }
            }
            for request in server.fake.requests() {
                let segments: Vec<&str> = request.path.split('/').collect();
                let shaped = match segments.as_slice() {
                    ["", "v1", "account"] | ["", "v1", "risk"] | ["", "v1", "reverse-whois"] => true,
                    ["", "v1", value, rest @ ..] => {
                        !value.is_empty()
                            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':')
                            && !value.contains("..")
                            && matches!(
                                rest,
                                [] | ["whois", "parsed"] | ["whois", "history"] | ["hosting-history"] | ["host-domains"]
                            )
                    }
                    _ => false,
                };
                assert!(shaped, "unexpected path {:?} from values {:?}", request.path, values);
            }
        });
    }
}
