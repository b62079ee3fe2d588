//! Syntax checks for the values DomainTools returns before they become STIX objects: domain
//! names, IPv4 addresses and e-mail addresses. The rules follow the Python connector's
//! `validators` package (0.35) closely enough to accept and refuse the same real-world values,
//! so a value OpenCTI would refuse never reaches it; anything refused is skipped and counted.

use std::net::Ipv4Addr;
use std::str::FromStr;

/// The longest domain name DNS carries, in presentation form without the trailing dot.
const MAX_DOMAIN_LEN: usize = 253;
/// The longest label.
const MAX_LABEL_LEN: usize = 63;
/// The longest local part of an e-mail address (RFC 5321 §4.5.3.1.1).
const MAX_LOCAL_PART_LEN: usize = 64;

/// Whether `value` is a domain name with at least two labels: letters, digits, `-` and `_`
/// inside labels, no label starting or ending with `-` or `_`, and a top-level label that ends
/// with a letter (so IPv4 addresses and bare numbers are not domains). Internationalized names
/// are checked in their ASCII (punycode) form.
pub(crate) fn is_domain(value: &str) -> bool {
    if value.is_empty() || value.len() > MAX_DOMAIN_LEN * 4 {
        return false;
    }
    let ascii;
    let value = if value.is_ascii() {
        value
    } else {
        match idna::domain_to_ascii(value) {
            Ok(converted) => {
                ascii = converted;
                ascii.as_str()
            }
            Err(_) => return false,
        }
    };
    if value.len() > MAX_DOMAIN_LEN {
        return false;
    }
    let labels: Vec<&str> = value.split('.').collect();
    if labels.len() < 2 || !labels.iter().all(|label| is_label(label)) {
        return false;
    }
    // Same as the `validators` regex: the last label has two characters at least and ends
    // with a letter.
    labels.last().is_some_and(|tld| {
        tld.len() >= 2 && tld.chars().last().is_some_and(|c| c.is_ascii_alphabetic())
    })
}

fn is_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    label.len() <= MAX_LABEL_LEN
        && first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// Whether `value` is an IPv4 address in dotted-quad form (no leading zeros, no prefix length,
/// no white space): what an `ipv4-addr` value holds for one host.
pub(crate) fn is_ipv4(value: &str) -> bool {
    Ipv4Addr::from_str(value).is_ok()
}

/// Whether `value` is an e-mail address: one `@`, a dot-atom local part of at most 64
/// characters (letters, digits and ``!#$%&'*+/=?^_`{|}~-``, dots only between atoms), and a
/// domain part that passes [`is_domain`]. Quoted local parts and address literals are refused:
/// WHOIS redaction texts ("select request email form at https://…") must not pass.
pub(crate) fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.chars().count() > MAX_LOCAL_PART_LEN || local.contains('@') {
        return false;
    }
    let atoms_ok = local.split('.').all(|atom| {
        !atom.is_empty()
            && atom
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c))
    });
    atoms_ok && is_domain(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        for ok in [
            "google.com",
            "ns1.p31.dynect.net",
            "ultradns.co.uk",
            "xn--bcher-kva.example",
            "bücher.example",
            "a_b.example.com",
            "a-b.c0m",
            "d0001.example",
        ] {
            assert!(is_domain(ok), "{ok}");
        }
        for bad in [
            "",
            "com",
            "142.251.33.78",
            "-bad.com",
            "bad-.com",
            "a..com",
            ".com",
            "google.com.",
            "_dmarc.example.com",
            "google.c",
            "google.c0",
            "has space.com",
            "select request email form at https://domains.markmonitor.com/whois/google.com",
            "exa mple.com",
            "a@b.com",
        ] {
            assert!(!is_domain(bad), "{bad}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(!is_domain(&long_label));
        let long_name = format!("{}com", "abcdefghi.".repeat(26));
        assert!(!is_domain(&long_name));
    }

    #[test]
    fn ipv4_addresses() {
        for ok in ["142.251.33.78", "0.0.0.0", "255.255.255.255"] {
            assert!(is_ipv4(ok), "{ok}");
        }
        for bad in [
            "",
            "256.1.1.1",
            "1.2.3",
            "01.2.3.4",
            "1.2.3.4/24",
            " 1.2.3.4",
            "::1",
            "google.com",
        ] {
            assert!(!is_ipv4(bad), "{bad}");
        }
    }

    #[test]
    fn emails() {
        for ok in [
            "dns-admin@google.com",
            "abusecomplaints@markmonitor.com",
            "first.last+tag@sub.example.co.uk",
            "o'brien@example.ie",
        ] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "",
            "select request email form at https://domains.markmonitor.com/whois/google.com",
            "no-at-sign.example.com",
            "@example.com",
            "user@",
            "user@@example.com",
            "a@b@example.com",
            ".user@example.com",
            "user.@example.com",
            "us..er@example.com",
            "user name@example.com",
            "user@localhost",
            "user@1.2.3.4",
            "\"quoted\"@example.com",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(!is_email(&long_local));
    }
}
