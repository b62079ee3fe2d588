//! Deterministic STIX 2.1 identifiers: UUIDv5 in the STIX namespace over the RFC 8785 (JCS)
//! canonical JSON of the id-contributing properties, exactly as the OASIS `stix2` library
//! computes SCO ids and as OpenCTI's `pycti` computes identity and relationship ids, so an
//! object sent twice (or first sent by the Python connector) merges instead of duplicating.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::{json, Map, Number, Value};
use sha1::{Digest, Sha1};

/// The namespace of STIX 2.1 deterministic ids (STIX 2.1 §2.9), `00abedb4-aa42-466c-9c01-fed23315a9b7`.
pub(crate) const STIX_NAMESPACE: [u8; 16] = [
    0x00, 0xab, 0xed, 0xb4, 0xaa, 0x42, 0x46, 0x6c, 0x9c, 0x01, 0xfe, 0xd2, 0x33, 0x15, 0xa9, 0xb7,
];

/// A name-based (SHA-1) UUID, RFC 9562 §5.5 (version 5), in its lowercase hyphenated form.
pub(crate) fn uuid5(namespace: &[u8; 16], name: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(namespace);
    hasher.update(name);
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    hyphenated(&bytes)
}

/// A random (version 4) UUID, for objects STIX wants unique rather than deterministic (bundles).
pub(crate) fn uuid4() -> String {
    let mut bytes = [0u8; 16];
    for byte in &mut bytes {
        *byte = fastrand::u8(..);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    hyphenated(&bytes)
}

fn hyphenated(bytes: &[u8; 16]) -> String {
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `<prefix>--<uuid5(STIX namespace, JCS(data))>`: the one rule behind every id below.
pub(crate) fn deterministic_id(prefix: &str, data: &Value) -> String {
    let name = canonical_json(data);
    format!("{prefix}--{}", uuid5(&STIX_NAMESPACE, name.as_bytes()))
}

/// `domain-name--…`: its only id-contributing property is `value`.
pub fn domain_name_id(value: &str) -> String {
    deterministic_id("domain-name", &json!({ "value": value }))
}

/// `ipv4-addr--…` from `value`.
pub fn ipv4_addr_id(value: &str) -> String {
    deterministic_id("ipv4-addr", &json!({ "value": value }))
}

/// `ipv6-addr--…` from `value`.
pub fn ipv6_addr_id(value: &str) -> String {
    deterministic_id("ipv6-addr", &json!({ "value": value }))
}

/// `email-addr--…` from `value`.
pub(crate) fn email_addr_id(value: &str) -> String {
    deterministic_id("email-addr", &json!({ "value": value }))
}

/// `autonomous-system--…` from the integer `number`.
pub(crate) fn autonomous_system_id(number: u32) -> String {
    deterministic_id("autonomous-system", &json!({ "number": number }))
}

/// `identity--…` as pycti's `Identity.generate_id`: the name lowercased and trimmed, the class
/// lowercased (so "DomainTools" and "domaintools " are the same organization).
pub(crate) fn identity_id(name: &str, identity_class: &str) -> String {
    deterministic_id(
        "identity",
        &json!({
            "name": name.trim().to_lowercase(),
            "identity_class": identity_class.to_lowercase(),
        }),
    )
}

/// `relationship--…` as pycti's `StixCoreRelationship.generate_id`: type, source and target,
/// plus `start_time` and `stop_time` when both are known, or `start_time` alone when only it
/// is. A lone `stop_time` does not contribute (pycti's rule). The times are the naive ISO
/// forms pycti gets from `datetime.isoformat()` (`1997-09-15T00:00:00`, no `Z`).
pub(crate) fn relationship_id(
    relationship_type: &str,
    source_ref: &str,
    target_ref: &str,
    start_time: Option<&str>,
    stop_time: Option<&str>,
) -> String {
    let mut data = Map::new();
    data.insert("relationship_type".into(), relationship_type.into());
    data.insert("source_ref".into(), source_ref.into());
    data.insert("target_ref".into(), target_ref.into());
    if let Some(start) = start_time {
        data.insert("start_time".into(), start.into());
        if let Some(stop) = stop_time {
            data.insert("stop_time".into(), stop.into());
        }
    }
    deterministic_id("relationship", &Value::Object(data))
}

/// RFC 8785 JSON Canonicalization Scheme: members sorted by the UTF-16 code units of their
/// names, no white space, strings escaped as ECMAScript's `JSON.stringify` does, numbers in
/// ECMAScript's shortest round-trip form.
pub(crate) fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&canonical_number(n)),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_by(|(a, _), (b, _)| utf16_cmp(a, b));
            out.push('{');
            for (i, (name, member)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(name, out);
                out.push(':');
                write_canonical(member, out);
            }
            out.push('}');
        }
    }
}

/// JCS sorts by UTF-16 code units, which differs from code point order above U+FFFF.
fn utf16_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Integers that a double holds exactly print as integers; everything else goes through the
/// double, as JCS requires (so 123456789012345678 becomes 123456789012345680, like `stix2`).
fn canonical_number(n: &Number) -> String {
    const EXACT: u64 = 1 << 53;
    if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= EXACT {
            return i.to_string();
        }
    } else if let Some(u) = n.as_u64() {
        if u <= EXACT {
            return u.to_string();
        }
    }
    n.as_f64().map(es_number).unwrap_or_else(|| n.to_string())
}

/// ECMAScript `Number::toString` (ECMA-262 §6.1.6.1.20) for a finite double.
fn es_number(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        // JSON has no NaN or infinity; -0 prints as 0.
        return "0".to_owned();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    // Rust prints the shortest digits that round-trip, like ECMAScript; only the layout differs.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i64;
    let n = exponent.parse::<i64>().unwrap_or(0) + 1;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let e_sign = if e < 0 { "-" } else { "+" };
        if k == 1 {
            format!("{digits}e{e_sign}{}", e.abs())
        } else {
            format!("{}.{}e{e_sign}{}", &digits[..1], &digits[1..], e.abs())
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected ids were computed with stix2 3.0.2 and pycti's id functions (reference §1.7).
    #[test]
    fn sco_ids_match_stix2() {
        assert_eq!(
            domain_name_id("domaintools.com"),
            "domain-name--83b0b641-c562-55f2-84df-0a31b88677b2"
        );
        assert_eq!(
            domain_name_id("google.com"),
            "domain-name--dd686e37-6889-53bd-8ae1-b1a503452613"
        );
        assert_eq!(
            ipv4_addr_id("199.30.228.112"),
            "ipv4-addr--85ba87a4-e149-5999-bf0b-b47a02ac48d2"
        );
        assert_eq!(
            autonomous_system_id(17318),
            "autonomous-system--00c000a7-c422-593c-a6b1-a031df087309"
        );
        assert_eq!(
            email_addr_id("hostmaster@nsone.net"),
            "email-addr--a6962a54-82a7-53cc-91ae-c0bd08a142aa"
        );
        // Non-ASCII values are hashed as UTF-8, unescaped.
        assert_eq!(
            domain_name_id("bücher.example"),
            "domain-name--dbf3aff2-b3cd-57d2-9616-0ddfde9d01ad"
        );
    }

    #[test]
    fn identity_id_matches_pycti() {
        let expected = "identity--3ccc26b8-e6c7-506c-acf1-0efb399e541d";
        assert_eq!(identity_id("DomainTools", "organization"), expected);
        assert_eq!(identity_id(" domaintools ", "Organization"), expected);
    }

    #[test]
    fn relationship_ids_match_pycti() {
        let d = "domain-name--83b0b641-c562-55f2-84df-0a31b88677b2";
        let i = "ipv4-addr--85ba87a4-e149-5999-bf0b-b47a02ac48d2";
        let both = Some("1998-08-02T00:00:00");
        let stop = Some("2027-08-01T00:00:00");
        assert_eq!(
            relationship_id("resolves-to", d, i, both, stop),
            "relationship--941474df-558e-53fc-a772-83aff54c35fe"
        );
        assert_eq!(
            relationship_id("resolves-to", d, i, None, None),
            "relationship--2f3f01b3-9ee9-5ba6-96f7-204e7f0cb4db"
        );
        assert_eq!(
            relationship_id("resolves-to", d, i, both, None),
            "relationship--22fc8288-4d18-5697-a2b7-694604be5ad5"
        );
        // pycti ignores a stop time without a start time.
        assert_eq!(
            relationship_id("resolves-to", d, i, None, stop),
            relationship_id("resolves-to", d, i, None, None)
        );
        // The Python connector's empty-string dates give yet another id (a quirk not kept).
        let quirk = deterministic_id(
            "relationship",
            &json!({"relationship_type": "resolves-to", "source_ref": d, "target_ref": i,
                    "start_time": "", "stop_time": ""}),
        );
        assert_eq!(quirk, "relationship--ae924517-f3e3-5d04-a66f-8b154e05b8b6");
    }

    #[test]
    fn canonical_json_matches_stix2_canonicalize() {
        // Produced by stix2.canonicalization.Canonicalize.canonicalize(…, utf8=False).
        let value = json!({
            "b": "é\u{1}\"\\\n",
            "a": [1, 2.5, 1e21, 1e-7, 0.000001, -0.0, 123456789012345678u64],
            "\u{20ac}": 1,
            "\u{1F600}": 2,
            "\u{ff61}": 3,
        });
        assert_eq!(
            canonical_json(&value),
            "{\"a\":[1,2.5,1e+21,1e-7,0.000001,0,123456789012345680],\"b\":\"é\\u0001\\\"\\\\\\n\",\
             \"\u{20ac}\":1,\"\u{1F600}\":2,\"\u{ff61}\":3}"
        );
    }

    #[test]
    fn es_numbers() {
        for (x, s) in [
            (1.0, "1"),
            (-1.5, "-1.5"),
            (123.456, "123.456"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-7"),
            (0.1, "0.1"),
            (4.35, "4.35"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ] {
            assert_eq!(es_number(x), s, "{x}");
        }
    }

    #[test]
    fn uuid4_has_version_and_variant() {
        let id = uuid4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(uuid4(), id);
    }
}
