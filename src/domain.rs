//! Reduction of a MISP value (domain, hostname, URL, free text) to its registrable domain, with
//! the reference's semantics (Python tldextract, ICANN section of the Public Suffix List only).
//!
//! The ICANN section is bundled (`data/public_suffix_list_icann.dat`, from tldextract 5.4.0's
//! snapshot) so results never depend on the network and match the reference offline.

use std::collections::HashMap;
use std::sync::LazyLock;

const ICANN_SECTION: &str = include_str!("../data/public_suffix_list_icann.dat");

/// A node of the suffix trie, keyed by label from the right.
#[derive(Debug, Default)]
struct Node {
    children: HashMap<String, Node>,
    /// A rule ends here.
    end: bool,
}

static SUFFIXES: LazyLock<Node> = LazyLock::new(|| {
    let mut root = Node::default();
    for line in ICANN_SECTION.lines() {
        let rule = line.split_whitespace().next().unwrap_or("");
        if rule.is_empty() || rule.starts_with("//") {
            continue;
        }
        let mut node = &mut root;
        for label in rule.rsplit('.') {
            node = node.children.entry(label.to_lowercase()).or_default();
        }
        node.end = true;
    }
    root
});

/// Builds the suffix table now rather than on the first lookup (it takes a few milliseconds).
pub(crate) fn warm_up() {
    LazyLock::force(&SUFFIXES);
}

/// The registrable domain ("top domain under public suffix") of `input`, with its original
/// case, or `None` when there is none (IP addresses, `localhost`, bare suffixes, IPv6).
///
/// Like tldextract: a scheme, user info, port, path, query and fragment are stripped, a
/// trailing dot is removed, and `\/` (JSON-escaped slashes MISP sometimes sends) counts as `/`.
pub fn registrable_domain(input: &str) -> Option<String> {
    let unescaped = input.replace("\\/", "/");
    let host = netloc(&unescaped);
    if host.starts_with('[') {
        return None;
    }
    let host = host
        .replace(['\u{3002}', '\u{ff0e}', '\u{ff61}'], ".")
        .to_owned();
    let labels: Vec<&str> = host.split('.').collect();
    let index = suffix_index(&labels);
    if index == 0 || index >= labels.len() {
        return None;
    }
    let domain = labels[index - 1];
    if domain.is_empty() {
        return None;
    }
    Some(labels[index - 1..].join("."))
}

/// The host part of a URL-ish string, as tldextract's `lenient_netloc`.
fn netloc(url: &str) -> &str {
    let rest = schemeless(url);
    let rest = rest.split('/').next().unwrap_or("");
    let rest = rest.split('?').next().unwrap_or("");
    let rest = rest.split('#').next().unwrap_or("");
    let after_userinfo = rest.rsplit('@').next().unwrap_or("");
    if let Some(stripped) = after_userinfo.strip_prefix('[') {
        if let Some(end) = stripped.find(']') {
            return &after_userinfo[..end + 2];
        }
    }
    after_userinfo
        .split(':')
        .next()
        .unwrap_or("")
        .trim()
        .trim_end_matches(['.', '\u{3002}', '\u{ff0e}', '\u{ff61}'])
}

/// Strips `scheme://` (or a leading `//`) the way tldextract does.
fn schemeless(url: &str) -> &str {
    let Some(start) = url.find("//") else {
        return url;
    };
    if start == 0 {
        return &url[2..];
    }
    let scheme_ok = start >= 2
        && url.as_bytes()[start - 1] == b':'
        && url[..start - 1]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if scheme_ok {
        &url[start + 2..]
    } else {
        url
    }
}

/// Index of the first label of the public suffix (`labels.len()` when there is none).
fn suffix_index(labels: &[&str]) -> usize {
    let mut node = &*SUFFIXES;
    let mut index = labels.len();
    let mut j = labels.len();
    for label in labels.iter().rev() {
        let decoded = decode_label(label);
        if let Some(child) = node.children.get(&decoded) {
            j -= 1;
            node = child;
            if node.end {
                index = j;
            }
            continue;
        }
        if node.children.contains_key("*") {
            if node.children.contains_key(&format!("!{decoded}")) {
                return j;
            }
            return j - 1;
        }
        break;
    }
    index
}

/// Lower-cases a label and decodes punycode (`xn--p1ai` → `рф`), as the list stores Unicode.
fn decode_label(label: &str) -> String {
    let lower = label.to_lowercase();
    if lower.starts_with("xn--") {
        let (unicode, result) = idna::domain_to_unicode(&lower);
        if result.is_ok() {
            return unicode;
        }
    }
    lower
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduces_like_tldextract() {
        let cases = [
            ("google.com", Some("google.com")),
            ("www.Google.COM", Some("Google.COM")),
            (
                "http://user:pw@sub.example.co.uk:8080/p?q#f",
                Some("example.co.uk"),
            ),
            ("example.com.", Some("example.com")),
            ("foo.blogspot.com", Some("blogspot.com")),
            ("a@b.com", Some("b.com")),
            ("https:\\/\\/www.example.org\\/x", Some("example.org")),
            ("//cdn.example.net/x.js", Some("example.net")),
            ("münchen.de", Some("münchen.de")),
            ("www.example.xn--p1ai", Some("example.xn--p1ai")),
            ("8.8.8.8", None),
            ("localhost", None),
            ("com", None),
            ("co.uk", None),
            ("[::1]", None),
            ("", None),
            ("example.invalidtld", None),
        ];
        for (input, expected) in cases {
            assert_eq!(registrable_domain(input).as_deref(), expected, "{input:?}");
        }
    }

    #[test]
    fn wildcard_and_exception_rules() {
        // *.ck and !www.ck are ICANN rules.
        assert_eq!(registrable_domain("a.b.ck").as_deref(), Some("a.b.ck"));
        assert_eq!(registrable_domain("www.ck").as_deref(), Some("www.ck"));
        assert_eq!(registrable_domain("x.www.ck").as_deref(), Some("www.ck"));
    }
}
