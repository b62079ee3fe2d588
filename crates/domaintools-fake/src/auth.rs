//! Checks a request's credentials the way the DomainTools API does (reference §1.6): HMAC
//! parameters first, then an `api_key` parameter, then the `X-Api-Key` header.

use std::time::Duration;

use axum::http::HeaderMap;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use subtle::{Choice, ConstantTimeEq};

use super::params::Params;
use super::Config;

/// Why a request was refused; only logged, the client always gets the same 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    NoCredentials,
    MissingUsername,
    UnknownUser,
    MissingTimestamp,
    BadTimestamp,
    StaleTimestamp,
    BadSignatureLength,
    WrongSignature,
    WrongKey,
}

/// The account a request authenticates as, or why it does not.
///
/// The first scheme whose parameters are present decides: a request with a wrong signature is
/// refused even if it also carries a valid `X-Api-Key`.
pub(super) fn authenticate(
    config: &Config,
    params: &Params,
    headers: &HeaderMap,
    path: &str,
    now: DateTime<Utc>,
) -> Result<String, Refusal> {
    let username = params.first("api_username");
    if let Some(signature) = params.first("signature") {
        let username = username.ok_or(Refusal::MissingUsername)?;
        let timestamp = params.first("timestamp").ok_or(Refusal::MissingTimestamp)?;
        check_freshness(timestamp, now, config.freshness)?;
        return check_signature(config, username, timestamp, path, signature);
    }
    if let Some(api_key) = params.first("api_key") {
        let username = username.ok_or(Refusal::MissingUsername)?;
        return check_key(config, username, api_key);
    }
    if let Some(header) = headers.get("x-api-key") {
        let api_key = String::from_utf8_lossy(header.as_bytes());
        return match username {
            Some(username) => check_key(config, username, &api_key),
            // Header-only auth names no account: the key identifies it.
            None => config
                .users
                .iter()
                .find(|(_, known)| bool::from(known.as_bytes().ct_eq(api_key.as_bytes())))
                .map(|(user, _)| user.clone())
                .ok_or(Refusal::WrongKey),
        };
    }
    Err(Refusal::NoCredentials)
}

fn check_key(config: &Config, username: &str, api_key: &str) -> Result<String, Refusal> {
    let known = config.users.get(username).ok_or(Refusal::UnknownUser)?;
    if bool::from(known.as_bytes().ct_eq(api_key.as_bytes())) {
        Ok(username.to_owned())
    } else {
        Err(Refusal::WrongKey)
    }
}

fn check_signature(
    config: &Config,
    username: &str,
    timestamp: &str,
    path: &str,
    signature: &str,
) -> Result<String, Refusal> {
    // DomainTools names no hash; the length of the hex tells them apart.
    let hash = match signature.len() {
        40 => Hash::Sha1,
        64 => Hash::Sha256,
        _ => return Err(Refusal::BadSignatureLength),
    };
    let api_key = config.users.get(username).ok_or(Refusal::UnknownUser)?;
    let received = signature.to_ascii_lowercase();
    // The client signs the path it was given; non-ASCII characters reach us percent-encoded,
    // so the decoded path is a second, equally legitimate candidate.
    let decoded = percent_decode(path);
    let mut matches = Choice::from(0);
    for candidate in std::iter::once(path).chain(decoded.as_deref()) {
        let expected = expected_signature(api_key, username, timestamp, candidate, hash);
        matches |= expected.as_bytes().ct_eq(received.as_bytes());
    }
    if bool::from(matches) {
        Ok(username.to_owned())
    } else {
        Err(Refusal::WrongSignature)
    }
}

#[derive(Debug, Clone, Copy)]
enum Hash {
    Sha1,
    Sha256,
}

/// The signature DomainTools expects (reference §1.1): lowercase hex of
/// HMAC(api key, username + timestamp + path), the path with its leading `/` and without the
/// query. Written here from the documentation, apart from the client's signer, so that a bug
/// in either one makes the end-to-end tests fail.
fn expected_signature(
    api_key: &str,
    username: &str,
    timestamp: &str,
    path: &str,
    hash: Hash,
) -> String {
    let slash = if path.starts_with('/') { "" } else { "/" };
    let message = format!("{username}{timestamp}{slash}{path}");
    fn hmac_hex<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> String {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
            .expect("HMAC accepts keys of any length");
        mac.update(message);
        hex::encode(mac.finalize().into_bytes())
    }
    match hash {
        Hash::Sha1 => hmac_hex::<Hmac<sha1::Sha1>>(api_key.as_bytes(), message.as_bytes()),
        Hash::Sha256 => hmac_hex::<Hmac<sha2::Sha256>>(api_key.as_bytes(), message.as_bytes()),
    }
}

fn check_freshness(timestamp: &str, now: DateTime<Utc>, window: Duration) -> Result<(), Refusal> {
    let sent = parse_timestamp(timestamp).ok_or(Refusal::BadTimestamp)?;
    let window = TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX);
    let skew = (now - sent).abs();
    if skew <= window {
        Ok(())
    } else {
        Err(Refusal::StaleTimestamp)
    }
}

/// The client's `%Y-%m-%dT%H:%M:%SZ`, or ISO 8601 with an offset as the docs allow
/// (`2011-02-01T14:37:59-0800`, `…+12:00`).
pub(super) fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(naive) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%SZ") {
        return Some(naive.and_utc());
    }
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Some(parsed.to_utc());
    }
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .map(|parsed| parsed.to_utc())
}

/// `%XX` escapes decoded, or `None` when there are none (or they decode to invalid UTF-8).
pub(super) fn percent_decode(path: &str) -> Option<String> {
    if !path.contains('%') {
        return None;
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::collections::BTreeMap;

    fn config() -> Config {
        let mut users = BTreeMap::new();
        users.insert("test_user".to_owned(), "test_key_0123456789".to_owned());
        Config {
            users,
            freshness: Duration::from_secs(300),
            fixed_now: None,
            per_minute_limits: BTreeMap::new(),
        }
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap()
    }

    fn query(text: &str) -> Params {
        super::super::params::parse(Some(text), None, Some(b"")).0
    }

    #[test]
    fn accepts_the_python_clients_request() {
        // Reference §1.5, as client 2.10.0 sent it.
        let params = query("app_name=python_wrapper&app_version=2.10.0&api_username=test_user&timestamp=2024-01-02T03%3A04%3A05Z&signature=253d29f886777acc47dfe7cddb38a52014a8b6b557def5e2e955cf00945ec0bd");
        let result = authenticate(
            &config(),
            &params,
            &HeaderMap::new(),
            "/v1/example.com/whois/parsed",
            at(),
        );
        assert_eq!(result, Ok("test_user".to_owned()));
        let sha1 = query("api_username=test_user&timestamp=2024-01-02T03:04:05Z&signature=B7AB4B9887896CE34D5A0BE8C82E61156FB5F890");
        let result = authenticate(
            &config(),
            &sha1,
            &HeaderMap::new(),
            "/v1/iris-investigate/",
            at(),
        );
        assert_eq!(result, Ok("test_user".to_owned()));
    }

    #[test]
    fn refusals() {
        let signed = "api_username=test_user&timestamp=2024-01-02T03:04:05Z&signature=4bee72f08226c745a33cf7c5975bf81aa37c264802ae196f8ae04cb792095ad2";
        let check = |text: &str, path: &str, now: DateTime<Utc>| {
            authenticate(&config(), &query(text), &HeaderMap::new(), path, now)
        };
        assert_eq!(
            check(signed, "/v1/iris-investigate/", at()),
            Ok("test_user".into())
        );
        assert_eq!(
            check(signed, "/v1/iris-investigate", at()),
            Err(Refusal::WrongSignature)
        );
        let late = at() + TimeDelta::seconds(301);
        assert_eq!(
            check(signed, "/v1/iris-investigate/", late),
            Err(Refusal::StaleTimestamp)
        );
        let early = at() - TimeDelta::seconds(300);
        assert!(check(signed, "/v1/iris-investigate/", early).is_ok());
        assert_eq!(check("", "/v1/account", at()), Err(Refusal::NoCredentials));
        assert_eq!(
            check("api_username=x&api_key=y", "/v1/account", at()),
            Err(Refusal::UnknownUser)
        );
        assert_eq!(
            check(
                "api_username=test_user&timestamp=nope&signature=00",
                "/",
                at()
            ),
            Err(Refusal::BadTimestamp)
        );
        assert_eq!(
            check(
                "api_username=test_user&timestamp=2024-01-02T03:04:05Z&signature=00",
                "/",
                at()
            ),
            Err(Refusal::BadSignatureLength)
        );
        assert_eq!(
            check("signature=00", "/", at()),
            Err(Refusal::MissingUsername)
        );
    }

    #[test]
    fn expected_signatures_are_the_documented_vectors() {
        // Reference §1.5: computed with DomainTools' own Python client, independently of ours.
        let vectors = [
            (
                "/v1/iris-investigate/",
                Hash::Sha256,
                "4bee72f08226c745a33cf7c5975bf81aa37c264802ae196f8ae04cb792095ad2",
            ),
            (
                "/v1/iris-investigate/",
                Hash::Sha1,
                "b7ab4b9887896ce34d5a0be8c82e61156fb5f890",
            ),
            (
                "/v1/iris-enrich/",
                Hash::Sha256,
                "f775e145eb6087665a52f1537e5f57d1a8398220380e1a71c5e6d07f2b37d0aa",
            ),
            (
                "/v1/account",
                Hash::Sha256,
                "3a3d591902017ed27576fc7a10ebb8ca1591d084984c85f4a7f04671cb8f53ef",
            ),
            (
                "/v1/example.com/whois/parsed",
                Hash::Sha256,
                "253d29f886777acc47dfe7cddb38a52014a8b6b557def5e2e955cf00945ec0bd",
            ),
            (
                "/v1/risk",
                Hash::Sha256,
                "71181c27fe143e11d92793433c0aadebf77d0acfdb9660f3d87bab6c9c03f075",
            ),
            (
                "/v1/iris-detect/domains/new/",
                Hash::Sha256,
                "12ca4490cd4add3e5d1a728f1ff0b19842dafaf494207e323f2c359847399a95",
            ),
            (
                "v1/feed/nod/",
                Hash::Sha256,
                "3bd942cf75811c3a0d2cad082bc9441425234c207f29c57cdc2bcb984479a825",
            ),
        ];
        for (path, hash, expected) in vectors {
            let signature = expected_signature(
                "test_key_0123456789",
                "test_user",
                "2024-01-02T03:04:05Z",
                path,
                hash,
            );
            assert_eq!(signature, expected, "{path} {hash:?}");
        }
    }

    #[test]
    fn timestamps_in_every_documented_form() {
        let expected = Utc.with_ymd_and_hms(2011, 2, 1, 22, 37, 59).unwrap();
        for text in [
            "2011-02-01T22:37:59Z",
            "2011-02-01T14:37:59-0800",
            "2011-02-02T10:37:59+1200",
            "2011-02-02T10:37:59+12:00",
            "2011-02-01T22:37:59.000+00:00",
        ] {
            assert_eq!(parse_timestamp(text), Some(expected), "{text}");
        }
        assert_eq!(parse_timestamp("2011-02-01"), None);
        assert_eq!(parse_timestamp("\u{fffd}"), None);
    }

    #[test]
    fn percent_decoding_never_panics() {
        assert_eq!(percent_decode("/v1/plain"), None);
        assert_eq!(
            percent_decode("/v1/b%C3%BCcher.de/whois").as_deref(),
            Some("/v1/bücher.de/whois")
        );
        assert_eq!(percent_decode("/%").as_deref(), Some("/%"));
        assert_eq!(percent_decode("/%zz%4").as_deref(), Some("/%zz%4"));
        assert_eq!(percent_decode("/%FF"), None);
    }
}
