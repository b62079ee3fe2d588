//! MISP's acceptance rules for a stored attribute value, transcribed from MISP 2.5's PHP
//! (`AttributeValidationTool::modifyBeforeValidation` and `::validate`, and the value rules of
//! `MispAttribute::$validate`), for the types the modules emit. Unknown types are refused, as
//! MISP refuses them.

use std::net::IpAddr;

/// Why MISP would refuse a value, in MISP's own words where it has them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `typeDefinitions` has no such type.
    #[error("Invalid type.")]
    UnknownType,
    /// `stringNotEmpty` / `stringNotControlCharacters`.
    #[error("The value is empty.")]
    Empty,
    /// `maxTextLength`.
    #[error("The value is longer than 65535 bytes.")]
    TooLong,
    /// `validateAttributeValue`: the type's own rule.
    #[error("{0}")]
    Format(&'static str),
}

/// The value MISP would store: `trim()`, then `modifyBeforeValidation` for the type.
pub fn normalize(attribute_type: &str, value: &str) -> String {
    let value = replace_4byte_utf8(php_trim(value));
    match attribute_type {
        "ip-src" | "ip-dst" => normalize_ip(&value),
        "hostname"
        | "email"
        | "email-src"
        | "email-dst"
        | "target-email"
        | "whois-registrant-email"
        | "md5"
        | "sha1"
        | "sha256" => value.to_lowercase(),
        "domain" => value.to_lowercase().trim_matches('.').to_owned(),
        "x509-fingerprint-md5" | "x509-fingerprint-sha1" | "x509-fingerprint-sha256" => {
            value.replace(':', "").to_lowercase()
        }
        "whois-registrant-phone" | "phone-number" => {
            let value = match value.strip_prefix("00") {
                Some(rest) => format!("+{rest}"),
                None => value,
            };
            value
                .replace("(0)", "")
                .chars()
                .filter(|c| *c == '+' || c.is_ascii_digit())
                .collect()
        }
        "AS" => {
            let digits = match value.get(..2) {
                Some(prefix) if prefix.eq_ignore_ascii_case("AS") => value[2..].to_owned(),
                _ => value,
            };
            match digits.split_once('.') {
                Some((high, low)) if is_positive_integer(high) && is_positive_integer(low) => {
                    match (high.parse::<u64>(), low.parse::<u64>()) {
                        (Ok(h), Ok(l)) => (h * 65536 + l).to_string(),
                        _ => digits,
                    }
                }
                _ => digits,
            }
        }
        _ => value,
    }
}

/// Whether MISP stores `value` (already [`normalize`]d) as an attribute of `attribute_type`.
pub fn check(attribute_type: &str, value: &str) -> Result<(), Refusal> {
    if value.is_empty() || value.chars().all(|c| c.is_ascii_control()) {
        return Err(Refusal::Empty);
    }
    if value.len() > 65_535 {
        return Err(Refusal::TooLong);
    }
    let ok = match attribute_type {
        "md5" | "x509-fingerprint-md5" => is_hex_of_len(value, 32),
        "sha1" | "x509-fingerprint-sha1" => is_hex_of_len(value, 40),
        "sha256" | "x509-fingerprint-sha256" => is_hex_of_len(value, 64),
        "ip-src" | "ip-dst" => is_ip_or_cidr(value),
        "hostname" | "domain" => is_domain(value),
        "email"
        | "email-src"
        | "email-dst"
        | "target-email"
        | "whois-registrant-email"
        | "dns-soa-email" => is_email(value),
        "AS" => {
            is_positive_integer(value) && value.parse::<u64>().is_ok_and(|n| n <= 4_294_967_295)
        }
        "datetime" => is_datetime(value),
        "link" => is_url_with_scheme(value),
        "whois-registrant-phone" | "phone-number" => is_php_numeric(value),
        "port" => {
            value.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p))
                && is_positive_integer(value)
        }
        "text" | "comment" | "other" => true,
        "url"
        | "uri"
        | "whois-registrant-name"
        | "whois-registrant-org"
        | "whois-registrar"
        | "whois-creation-date"
        | "filename"
        | "user-agent" => !value.contains('\n'),
        _ => return Err(Refusal::UnknownType),
    };
    if ok {
        Ok(())
    } else {
        Err(Refusal::Format(format_message(attribute_type)))
    }
}

fn format_message(attribute_type: &str) -> &'static str {
    match attribute_type {
        "ip-src" | "ip-dst" => "IP address has an invalid format.",
        "hostname" => "Hostname has an invalid format.",
        "domain" => "Domain has an invalid format.",
        "email"
        | "email-src"
        | "email-dst"
        | "target-email"
        | "whois-registrant-email"
        | "dns-soa-email" => "Email address has an invalid format.",
        "AS" => "AS number have to be integer between 1 and 4294967295",
        "datetime" => "Datetime has to be in the ISO 8601 format.",
        "md5"
        | "sha1"
        | "sha256"
        | "x509-fingerprint-md5"
        | "x509-fingerprint-sha1"
        | "x509-fingerprint-sha256" => "Checksum has an invalid length or format.",
        "port" => "Port numbers have to be integers between 1 and 65535.",
        "url"
        | "uri"
        | "whois-registrant-name"
        | "whois-registrant-org"
        | "whois-registrar"
        | "whois-creation-date"
        | "filename"
        | "user-agent" => "Value must not contain new line character.",
        _ => "Value not in the right type/format.",
    }
}

/// PHP's `trim()` default set: space, \t, \n, \r, \0, \x0B.
fn php_trim(value: &str) -> &str {
    value.trim_matches([' ', '\t', '\n', '\r', '\0', '\x0B'])
}

/// `handle4ByteUnicode`: characters outside the BMP become `?` (MISP's utf8 columns).
fn replace_4byte_utf8(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.len_utf8() == 4 { '?' } else { c })
        .collect()
}

/// `normalizeIp`: IPv6 compressed; a /32 (IPv4) or /128 (IPv6) CIDR becomes the bare address.
fn normalize_ip(value: &str) -> String {
    let compress = |ip: &str| match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if ip.contains(':') => v6.to_string(),
        _ => ip.to_owned(),
    };
    match value.split_once('/') {
        Some((ip, range)) if !ip.is_empty() => {
            let ip = compress(ip);
            if (range == "32" && value.contains('.')) || (range == "128" && value.contains(':')) {
                ip
            } else {
                format!("{ip}/{range}")
            }
        }
        _ => compress(value),
    }
}

/// `ctype_digit`: one or more ASCII digits.
fn is_positive_integer(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
}

fn is_hex_of_len(value: &str, len: usize) -> bool {
    value.len() == len && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `filter_var(FILTER_VALIDATE_IP)`, or a CIDR within the family's prefix length.
fn is_ip_or_cidr(value: &str) -> bool {
    match value.split_once('/') {
        Some((ip, bits)) => {
            if !is_positive_integer(bits) {
                return false;
            }
            let Ok(bits) = bits.parse::<u32>() else {
                return false;
            };
            match ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => bits <= 32,
                Ok(IpAddr::V6(_)) => bits <= 128,
                Err(_) => false,
            }
        }
        None => value.parse::<IpAddr>().is_ok(),
    }
}

/// `isDomainValid`: `^[A-Z0-9.\-_]+\.[A-Z0-9\-]{2,}$` (case-insensitive).
pub fn is_domain(value: &str) -> bool {
    let Some((head, last)) = value.rsplit_once('.') else {
        return false;
    };
    !head.is_empty()
        && head
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && last.len() >= 2
        && last.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The e-mail rule `^.[^\s]*\@.*\..*$`: one character, then no whitespace up to an `@`, then a
/// dot somewhere after it, all on one line.
pub fn is_email(value: &str) -> bool {
    if value.contains('\n') {
        return false;
    }
    // `.`: the first character, whatever it is.
    let Some(first) = value.chars().next() else {
        return false;
    };
    let rest = &value[first.len_utf8()..];
    // PCRE's \s: space, \t, \n, \x0B, \f, \r (no Unicode spaces without /u).
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r');
    for (i, c) in rest.char_indices() {
        if c == '@' && rest[i + 1..].contains('.') {
            return true;
        }
        if is_space(c) {
            return false;
        }
    }
    false
}

/// `is_numeric` on a value the phone massage left with only `+` and digits.
fn is_php_numeric(value: &str) -> bool {
    let digits = value.strip_prefix('+').unwrap_or(value);
    is_positive_integer(digits)
}

/// `strtotime() !== false`, for the forms the modules send (and a few more): dates, date and
/// time with a space or `T`, optional fractions and zone. Stricter than PHP, never looser.
fn is_datetime(value: &str) -> bool {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    DateTime::parse_from_rfc3339(value).is_ok()
        || NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok()
        || [
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S%.f",
        ]
        .iter()
        .any(|f| NaiveDateTime::parse_from_str(value, f).is_ok())
        || [
            "%Y-%m-%d %H:%M:%S%z",
            "%Y-%m-%dT%H:%M:%S%z",
            "%Y-%m-%d %H:%M:%S %z",
        ]
        .iter()
        .any(|f| DateTime::parse_from_str(value, f).is_ok())
}

/// `filter_var(FILTER_VALIDATE_URL)`: a scheme and, for the usual schemes, a host.
fn is_url_with_scheme(value: &str) -> bool {
    match url::Url::parse(value) {
        Ok(url) => {
            !value.chars().any(char::is_whitespace) && (url.has_host() || url.scheme() == "mailto")
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(t: &str, v: &str) -> bool {
        check(t, &normalize(t, v)).is_ok()
    }

    #[test]
    fn emails_follow_misps_loose_pattern() {
        // `^.[^\s]*\@.*\..*$`: partial addresses pass, text with spaces before the @ does not.
        assert!(ok("whois-registrant-email", "hostmaster@amazon.com"));
        assert!(ok("email", "a@b.c"));
        assert!(ok("email-dst", "x@y@z.example"));
        assert!(ok("email", "a@b c.d"), "spaces after the @ are allowed");
        assert!(!ok(
            "whois-registrant-email",
            "select request email form at https://domains.markmonitor.com/whois/google.com"
        ));
        assert!(!ok("email", "@b.c"), "one character before the @ at least");
        assert!(!ok("email", "a@bc"), "a dot after the @");
        assert!(!ok("email", ""));
    }

    #[test]
    fn ips_are_php_filter_validate_ip_or_cidr() {
        assert!(ok("ip-dst", "142.251.33.78"));
        assert!(ok("ip-src", "2001:DB8:0:0::1"));
        assert_eq!(normalize("ip-src", "2001:DB8:0:0::1"), "2001:db8::1");
        assert_eq!(normalize("ip-dst", "10.0.0.1/32"), "10.0.0.1");
        assert!(ok("ip-dst", "10.0.0.0/8"));
        assert!(!ok("ip-dst", "10.0.0.0/33"));
        assert!(!ok("ip-dst", "ip address (~258 domains share this value.)"));
        assert!(!ok("ip-dst", "01.2.3.4"), "no leading zeros");
        assert!(!ok("ip-dst", "1.2.3"));
    }

    #[test]
    fn domains_and_hostnames_need_a_dot_and_a_two_character_end() {
        assert!(ok("domain", "google.com"));
        assert!(
            ok("domain", "Google.COM."),
            "lowercased and trimmed of dots"
        );
        assert_eq!(normalize("domain", ".Google.COM."), "google.com");
        assert!(ok("hostname", "ns1.dns-33.example"));
        assert!(ok("hostname", "_dmarc.example.com"));
        assert!(!ok("hostname", "localhost"));
        assert!(
            !ok("domain", "a.b"),
            "the last label has two characters at least"
        );
        assert!(!ok("domain", "a.b_c"), "no underscore in the last label");
        assert!(!ok("hostname", "exa mple.com"));
        assert!(!ok("domain", ".com"));
    }

    #[test]
    fn hashes_are_exact_length_hex_after_removing_colons() {
        let sha1 = "fcebe5bb73f9541e544eb1a784ada0b35060412b";
        assert!(ok("x509-fingerprint-sha1", sha1));
        assert!(ok("x509-fingerprint-sha1", &sha1.to_uppercase()));
        assert!(ok(
            "x509-fingerprint-sha1",
            "FC:EB:E5:BB:73:F9:54:1E:54:4E:B1:A7:84:AD:A0:B3:50:60:41:2B"
        ));
        assert!(!ok("x509-fingerprint-sha1", &sha1[1..]));
        assert!(!ok("sha256", sha1));
        assert!(!ok("md5", "zz"));
    }

    #[test]
    fn as_numbers_phones_and_dates() {
        assert!(ok("AS", "AS15169"));
        assert!(ok("AS", "15169"));
        assert_eq!(normalize("AS", "1.10"), "65546", "asdot notation");
        assert!(!ok("AS", "4294967296"));
        assert!(!ok("AS", "Google"));
        assert!(ok("whois-registrant-phone", "+1.2086851750"));
        assert_eq!(normalize("phone-number", "0044 (0)20 7946"), "+44207946");
        assert!(!ok("phone-number", "call us"), "nothing numeric is left");
        assert!(ok("datetime", "1997-09-15 00:00:00"));
        assert!(ok("datetime", "2025-04-05T11:07:35.212000Z"));
        assert!(ok("datetime", "1997-09-15"));
        assert!(!ok("datetime", "google.com created 29.2 years ago"));
    }

    #[test]
    fn free_text_types_refuse_only_new_lines_and_unknown_types_are_refused() {
        assert!(ok("text", "anything\nat all"));
        assert!(ok("whois-registrar", "MarkMonitor, Inc."));
        assert!(!ok("whois-registrar", "two\nlines"));
        assert!(ok("url", "http://www.markmonitor.com"));
        assert_eq!(check("text", ""), Err(Refusal::Empty));
        assert_eq!(check("text", "\u{1}"), Err(Refusal::Empty));
        assert_eq!(
            check("whois-registrant-country", "US"),
            Err(Refusal::UnknownType)
        );
        assert_eq!(
            normalize("text", "a\u{1F600}b"),
            "a?b",
            "4-byte UTF-8 becomes ?"
        );
        assert_eq!(check("text", &"x".repeat(65_536)), Err(Refusal::TooLong));
    }
}
