//! Property tests: the URL-path safety of classic lookups (`domaintools::classic`), on inputs
//! proptest makes up, and end to end: whatever value a MISP attribute holds, the fake
//! DomainTools API only ever sees paths of the expected shape. (Request parsing and
//! registrable-domain reduction have theirs next to the code: `src/protocol/properties.rs`,
//! `src/domain/properties.rs`.)

use domaintools::classic::{check_host_characters, encode_segment, validate_domain, validate_ip};
use proptest::prelude::*;
use serde_json::json;

use crate::common::server::{config, TestServer};
use crate::common::strategies::hostname;

const FORBIDDEN_IN_PATHS: &[char] = &['/', '?', '#', '%', '\\'];

fn path_safe(s: &str) -> bool {
    !s.chars()
        .any(|c| FORBIDDEN_IN_PATHS.contains(&c) || c.is_whitespace() || c.is_control())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]
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
