//! The classic (pre-Iris) lookup endpoints the legacy Enterprise modules use, and the checks
//! that keep a looked-up value from changing the request: domains and IPs go into the URL
//! path (`/v1/{domain}/whois/parsed`, `/v1/{ip}/host-domains`), so they are validated before
//! any request and percent-encoded anyway.

use std::net::IpAddr;

use reqwest::Method;
use serde_json::Value;

use super::client::{Caller, Client};
use super::error::{Error, Result};

/// Longest domain name DNS allows (without the trailing dot).
const MAX_DOMAIN_LEN: usize = 253;
/// Longest DNS label.
const MAX_LABEL_LEN: usize = 63;
/// How much of a refused value an error message shows: enough to recognise it, never a wall.
const SHOWN_CHARS: usize = 64;

/// What reverse whois returns: `Quote` gives only counts and prices (the hover use), `Purchase`
/// also the domain list (and is billed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReverseWhoisMode {
    /// Counts only.
    Quote,
    /// Counts and domains.
    Purchase,
}

impl ReverseWhoisMode {
    /// The `mode` parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReverseWhoisMode::Quote => "quote",
            ReverseWhoisMode::Purchase => "purchase",
        }
    }
}

impl Client {
    /// `GET /v1/{domain}/whois/parsed`: the current whois record, parsed.
    pub async fn parsed_whois(&self, caller: Caller<'_>, domain: &str) -> Result<Value> {
        let segment = domain_segment(domain)?;
        self.classic(caller, &format!("/v1/{segment}/whois/parsed"), &[])
            .await
    }

    /// `GET /v1/{domain}`: the domain profile (registrant, server, registration, name servers).
    pub async fn domain_profile(&self, caller: Caller<'_>, domain: &str) -> Result<Value> {
        let segment = domain_segment(domain)?;
        self.classic(caller, &format!("/v1/{segment}"), &[]).await
    }

    /// `GET /v1/risk?domain=`: the domain's risk score and its components.
    pub async fn risk(&self, caller: Caller<'_>, domain: &str) -> Result<Value> {
        // The domain travels in the query here, where reqwest encodes it; it is still checked
        // so every domain lookup refuses the same inputs with the same message.
        let domain = validate_domain(domain)?;
        self.classic(caller, "/v1/risk", &[("domain", domain.as_str())])
            .await
    }

    /// `GET /v1/reverse-whois?terms=&exclude=&scope=current&mode=`: domains whose whois
    /// records contain `terms`, with the parameters DomainTools' own client sends.
    pub async fn reverse_whois(
        &self,
        caller: Caller<'_>,
        terms: &str,
        mode: ReverseWhoisMode,
    ) -> Result<Value> {
        if terms.trim().is_empty() {
            return Err(Error::InvalidInput(
                "Reverse whois needs a search term; the value is empty.".to_owned(),
            ));
        }
        self.classic(
            caller,
            "/v1/reverse-whois",
            &[
                ("terms", terms),
                ("exclude", ""),
                ("scope", "current"),
                ("mode", mode.as_str()),
            ],
        )
        .await
    }

    /// `GET /v1/{ip}/host-domains`: the domains hosted on an IP address; `limit` caps the
    /// domain list (`Some(0)`: the count only).
    pub async fn host_domains(
        &self,
        caller: Caller<'_>,
        ip: &str,
        limit: Option<u32>,
    ) -> Result<Value> {
        let ip = validate_ip(ip)?;
        let segment = encode_segment(&ip.to_string());
        let limit = limit.map(|l| l.to_string());
        let params: Vec<(&str, &str)> = limit.iter().map(|l| ("limit", l.as_str())).collect();
        self.classic(caller, &format!("/v1/{segment}/host-domains"), &params)
            .await
    }

    /// `GET /v1/{domain}/hosting-history`: past IP addresses, name servers and registrars.
    pub async fn hosting_history(&self, caller: Caller<'_>, domain: &str) -> Result<Value> {
        let segment = domain_segment(domain)?;
        self.classic(caller, &format!("/v1/{segment}/hosting-history"), &[])
            .await
    }

    /// `GET /v1/{domain}/whois/history`: past whois records (the API's first page).
    pub async fn whois_history(&self, caller: Caller<'_>, domain: &str) -> Result<Value> {
        let segment = domain_segment(domain)?;
        self.classic(caller, &format!("/v1/{segment}/whois/history"), &[])
            .await
    }

    /// A classic GET, with the problems DomainTools reports inside a 200 answer turned into
    /// errors, as DomainTools' own client does. Every classic answer is an object: anything
    /// else (`{"response": "nope"}`) is refused here, or the generic whois mapping would show
    /// the stray text as if it were a DomainTools value ("risk score: nope").
    async fn classic(
        &self,
        caller: Caller<'_>,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Value> {
        let value: Value = self.call(caller, Method::GET, path, params).await?;
        if !value.is_object() {
            return Err(Error::Decode(format!(
                "{path}: unexpected shape: expected an object"
            )));
        }
        match in_band_error(&value) {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}

/// An error DomainTools put inside a successful answer: `limit_exceeded: true` (which the
/// official client reports as a 503), or an `error` object with a message.
pub fn in_band_error(response: &Value) -> Option<Error> {
    if response.get("limit_exceeded") == Some(&Value::Bool(true)) {
        let message = response
            .get("message")
            .and_then(Value::as_str)
            .filter(|m| !m.trim().is_empty())
            .map(str::to_owned);
        return Some(Error::LimitExceeded { message });
    }
    let error = response.get("error")?;
    let message = error.get("message").and_then(Value::as_str)?;
    let status = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or(500);
    Some(Error::Reported {
        status,
        message: message.to_owned(),
    })
}

/// Checks that `value` is a domain name that can safely become a URL path segment, and
/// returns it in ASCII: labels of 1 to 63 letters, digits or hyphens, at most 253 characters
/// in all; an internationalised name is converted to punycode. Anything that could change the
/// request (`/`, `\`, `?`, `#`, `%`, spaces, control characters, `..`) is refused.
pub fn validate_domain(value: &str) -> Result<String> {
    let invalid = |reason: String| {
        Error::InvalidInput(format!(
            "{} is not a valid domain name: {reason}.",
            shown(value)
        ))
    };
    if value.is_empty() {
        return Err(invalid("it is empty".to_owned()));
    }
    if let Some(reason) = forbidden_character(value, false) {
        return Err(invalid(reason));
    }
    let ascii = if value.is_ascii() {
        value.to_owned()
    } else {
        // UTS 46 with the STD3 rules: refuses characters that only look like separators after
        // mapping (a fullwidth "／" would otherwise become "/").
        idna::domain_to_ascii_strict(value)
            .map_err(|_| invalid("it is not a valid internationalised domain name".to_owned()))?
    };
    if ascii.len() > MAX_DOMAIN_LEN {
        return Err(invalid(format!(
            "it is longer than {MAX_DOMAIN_LEN} characters"
        )));
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err(invalid(
                "it has an empty label (\"..\", or a dot at the start or end)".to_owned(),
            ));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(invalid(format!(
                "the label {} is longer than {MAX_LABEL_LEN} characters",
                shown(label)
            )));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(invalid(format!("it contains {}", describe(c))));
        }
    }
    Ok(ascii)
}

/// Checks the characters of a host-name value (a MISP `domain` or `hostname` attribute) before
/// it is reduced to its registrable domain: the same characters as [`validate_domain`] are
/// refused, except that underscores (seen in real host names such as `_dmarc.example.com`)
/// and a single trailing dot are allowed. Structure (labels, lengths) is checked later, on the
/// registrable domain that actually goes into the path.
pub fn check_host_characters(value: &str) -> Result<()> {
    let reason = if value.trim().is_empty() {
        Some("it is empty".to_owned())
    } else if let Some(reason) = forbidden_character(value, true) {
        Some(reason)
    } else if value.contains("..") {
        Some("it contains \"..\"".to_owned())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidInput(format!(
            "{} is not a valid domain name: {reason}.",
            shown(value)
        ))),
        None => Ok(()),
    }
}

/// The first character that may not appear in a domain name, described for a person.
/// Non-ASCII letters are left to IDNA; ASCII is limited to letters, digits, `-` and `.`
/// (and `_` when `underscore` is allowed).
fn forbidden_character(value: &str, underscore: bool) -> Option<String> {
    value
        .chars()
        .find(|&c| {
            if c.is_ascii() {
                !(c.is_ascii_alphanumeric() || c == '-' || c == '.' || (underscore && c == '_'))
            } else {
                c.is_control() || c.is_whitespace()
            }
        })
        .map(|c| format!("it contains {}", describe(c)))
}

/// Checks that `value` is an IPv4 or IPv6 address (nothing else: no port, zone, path or
/// spaces) and returns it parsed.
pub fn validate_ip(value: &str) -> Result<IpAddr> {
    value.parse::<IpAddr>().map_err(|_| {
        Error::InvalidInput(format!(
            "{} is not a valid IP address (IPv4 or IPv6).",
            shown(value)
        ))
    })
}

/// A validated domain, percent-encoded as a path segment.
fn domain_segment(domain: &str) -> Result<String> {
    Ok(encode_segment(&validate_domain(domain)?))
}

/// Percent-encodes everything but RFC 3986 unreserved characters and `:` (IPv6). Validated
/// values never need it; it is the second line of defence should a check ever be loosened.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A refused value as an error message shows it: quoted, control characters escaped, cut
/// after [`SHOWN_CHARS`] characters. Every error that quotes a request's value goes through
/// this: a 10 MB value must not come back as a 10 MB error (and log line).
pub fn shown(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(SHOWN_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// A character as a person would name it in an error message.
fn describe(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        c if c.is_control() => format!("a control character ({})", c.escape_unicode()),
        c if c.is_whitespace() => format!("white space ({})", c.escape_unicode()),
        c => format!("{c:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values that must never reach a URL path, each with a word its error must mention.
    const ATTACKS: &[(&str, &str)] = &[
        ("../account", "'/'"),
        ("..", "empty label"),
        ("a..b.com", "empty label"),
        (".example.com", "empty label"),
        ("example.com.", "empty label"),
        ("example.com/../../v1/account", "'/'"),
        ("example.com\\..\\account", "'\\\\'"),
        ("example.com?x=1", "'?'"),
        ("example.com#frag", "'#'"),
        ("example%2fcom", "'%'"),
        ("example.com%2f..%2faccount", "'%'"),
        ("exa mple.com", "a space"),
        (" example.com", "a space"),
        ("example.com\t", "control character"),
        ("example.com\n/v1/account", "control character"),
        ("example.com\r\nX-Injected: 1", "control character"),
        ("exa\u{0}mple.com", "control character"),
        ("exa\u{7f}mple.com", "control character"),
        ("exa\u{85}mple.com", "control character"),
        ("exa\u{a0}mple.com", "white space"),
        ("example\u{ff0f}com", "internationalised"),
        ("example.com:443", "':'"),
        ("user@example.com", "'@'"),
        ("", "empty"),
        ("a_b.com", "'_'"),
    ];

    #[test]
    fn attacks_are_refused_with_a_clear_message() {
        for (attack, word) in ATTACKS {
            let error = validate_domain(attack).unwrap_err();
            let Error::InvalidInput(message) = &error else {
                panic!("{attack:?}: {error:?}");
            };
            assert!(message.contains("is not a valid domain name"), "{message}");
            assert!(message.contains(word), "{attack:?}: {message}");
            for c in message.chars() {
                assert!(
                    !c.is_control(),
                    "{attack:?}: raw control character in {message:?}"
                );
            }
        }
    }

    #[test]
    fn over_long_names_are_refused() {
        let label = "a".repeat(64);
        let message = validate_domain(&format!("{label}.com"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("longer than 63"), "{message}");
        assert!(validate_domain(&format!("{}.com", "a".repeat(63))).is_ok());
        let long = ["abcdefghij"; 25].join(".") + ".com";
        assert!(long.len() > 253);
        assert!(validate_domain(&long)
            .unwrap_err()
            .to_string()
            .contains("longer than 253"));
        let huge = "a".repeat(100_000);
        let message = validate_domain(&huge).unwrap_err().to_string();
        assert!(message.len() < 300, "the message shows a bounded excerpt");
    }

    #[test]
    fn good_names_pass_and_idns_become_punycode() {
        assert_eq!(validate_domain("google.com").unwrap(), "google.com");
        assert_eq!(
            validate_domain("Google.COM").unwrap(),
            "Google.COM",
            "ASCII case is kept, like the reference's request"
        );
        assert_eq!(validate_domain("münchen.de").unwrap(), "xn--mnchen-3ya.de");
        assert_eq!(
            validate_domain("example.xn--p1ai").unwrap(),
            "example.xn--p1ai"
        );
        assert_eq!(validate_domain("a-b.co.uk").unwrap(), "a-b.co.uk");
    }

    /// A property-style sweep: every printable or control ASCII character outside the allowed
    /// set, at the start, middle and end of an otherwise good name, is refused; and whatever
    /// passes contains only characters that cannot change a URL.
    #[test]
    fn every_forbidden_ascii_character_anywhere_is_refused() {
        for byte in 0u8..=127 {
            let c = char::from(byte);
            let allowed = c.is_ascii_alphanumeric() || c == '-' || c == '.';
            for candidate in [
                format!("{c}example.com"),
                format!("exa{c}mple.com"),
                format!("example.com{c}"),
            ] {
                match validate_domain(&candidate) {
                    Ok(ascii) => {
                        assert!(allowed, "{candidate:?} passed");
                        assert!(ascii
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
                    }
                    Err(Error::InvalidInput(_)) => {
                        // Allowed characters fail only by making an empty label.
                        assert!(!allowed || c == '.', "{candidate:?}");
                    }
                    Err(other) => panic!("{candidate:?}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn non_ascii_lookalikes_of_separators_are_refused() {
        // Fullwidth solidus, question mark, number sign, percent; division slash; ideographic
        // space; zero-width space; right-to-left override.
        for c in [
            '\u{ff0f}', '\u{ff1f}', '\u{ff03}', '\u{ff05}', '\u{2215}', '\u{3000}', '\u{200b}',
            '\u{202e}',
        ] {
            let candidate = format!("exa{c}mple.com");
            if let Ok(ascii) = validate_domain(&candidate) {
                assert!(
                    ascii
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'),
                    "{candidate:?} became {ascii:?}"
                );
            }
        }
    }

    #[test]
    fn host_characters_allow_underscores_and_a_trailing_dot() {
        assert!(check_host_characters("_dmarc.example.com").is_ok());
        assert!(check_host_characters("www.example.com.").is_ok());
        for (attack, _) in ATTACKS {
            if matches!(
                *attack,
                "a_b.com" | "example.com." | ".example.com" | "example\u{ff0f}com"
            ) {
                continue;
            }
            assert!(check_host_characters(attack).is_err(), "{attack:?}");
        }
    }

    #[test]
    fn ips_must_be_bare_addresses() {
        assert_eq!(
            validate_ip("199.30.228.112").unwrap().to_string(),
            "199.30.228.112"
        );
        assert_eq!(
            validate_ip("2001:DB8::1").unwrap().to_string(),
            "2001:db8::1"
        );
        for attack in [
            "1.2.3.4/../account",
            "1.2.3.4?limit=1",
            "1.2.3.4#x",
            "1.2.3.4%2f",
            "1.2.3.4 ",
            " 1.2.3.4",
            "1.2.3.4\n",
            "1.2.3.4:80",
            "fe80::1%eth0",
            "[::1]",
            "1.2.3",
            "256.1.1.1",
            "example.com",
            "",
        ] {
            let message = validate_ip(attack).unwrap_err().to_string();
            assert!(message.contains("is not a valid IP address"), "{message}");
            assert!(!message.contains('\n'), "{message:?}");
        }
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("google.com"), "google.com");
        assert_eq!(encode_segment("2001:db8::1"), "2001:db8::1");
        assert_eq!(encode_segment("a/b?c#d%e f"), "a%2Fb%3Fc%23d%25e%20f");
        assert_eq!(encode_segment("ü"), "%C3%BC");
    }

    #[test]
    fn in_band_errors_become_errors() {
        let limit = serde_json::json!({"limit_exceeded": true, "message": "Maximum 5000 returned"});
        assert_eq!(
            in_band_error(&limit).unwrap().to_string(),
            "DomainTools API error 503: Limit exceeded: Maximum 5000 returned"
        );
        let inline = serde_json::json!({"error": {"code": 404, "message": "No data."}});
        assert_eq!(
            in_band_error(&inline).unwrap().to_string(),
            "DomainTools API error 404: No data."
        );
        assert!(in_band_error(&serde_json::json!({"risk_score": 0})).is_none());
        assert!(in_band_error(&serde_json::json!({"error": "text only"})).is_none());
    }
}
