//! DomainTools HMAC request signing and credentials: pure functions, so the signature of a
//! request can be checked against the vectors computed with DomainTools' own Python client.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The hash the HMAC is computed with. DomainTools tells them apart by the signature's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignHash {
    /// SHA-256 (64 hex characters), what the official clients send.
    Sha256,
    /// SHA-1 (40 hex characters), still accepted by the API.
    Sha1,
}

/// An API username and key. The key never leaves this type in clear except to compute a
/// signature, and `Debug` prints it redacted.
#[derive(Clone, Debug)]
pub struct Credentials {
    username: String,
    api_key: SecretString,
    /// Computed once: every cache key and rate-limit account of a request needs it.
    fingerprint: String,
}

impl Credentials {
    /// Credentials from a username and an API key.
    pub fn new(username: impl Into<String>, api_key: impl Into<String>) -> Self {
        let api_key: String = api_key.into();
        let digest = Sha256::digest(format!("misp-domaintools:{api_key}").as_bytes());
        Self {
            username: username.into(),
            api_key: SecretString::from(api_key),
            fingerprint: hex::encode(&digest[..8]),
        }
    }

    /// The API username (not a secret: it travels in every request).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The API key, for signing only.
    pub fn api_key(&self) -> &str {
        self.api_key.expose_secret()
    }

    /// A short, one-way fingerprint of the key: lets caches and logs tell two keys of the same
    /// username apart without holding or revealing either key.
    pub fn key_fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// The `timestamp` parameter as DomainTools expects it: UTC, second precision.
pub fn timestamp(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The request signature: lowercase hex of HMAC(key, username + timestamp + path).
///
/// `path` is only the URL path (`/v1/iris-investigate/`, trailing slash as sent), never the
/// host or the query string; a path given without its leading `/` is signed with one, as the
/// current Python client does.
pub fn sign(credentials: &Credentials, timestamp: &str, path: &str, hash: SignHash) -> String {
    let slash = if path.starts_with('/') { "" } else { "/" };
    let message = format!("{}{timestamp}{slash}{path}", credentials.username);
    let key = credentials.api_key().as_bytes();
    match hash {
        SignHash::Sha256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
            mac.update(message.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        SignHash::Sha1 => {
            let mut mac =
                Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC accepts any key length");
            mac.update(message.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const TS: &str = "2024-01-02T03:04:05Z";

    fn creds() -> Credentials {
        Credentials::new("test_user", "test_key_0123456789")
    }

    /// Vectors computed with DomainTools' Python client 2.10.0 (reference doc §1.5).
    #[test]
    fn signatures_match_the_python_client() {
        let cases = [
            (
                "/v1/iris-investigate/",
                SignHash::Sha256,
                "4bee72f08226c745a33cf7c5975bf81aa37c264802ae196f8ae04cb792095ad2",
            ),
            (
                "/v1/iris-investigate/",
                SignHash::Sha1,
                "b7ab4b9887896ce34d5a0be8c82e61156fb5f890",
            ),
            (
                "/v1/iris-enrich/",
                SignHash::Sha256,
                "f775e145eb6087665a52f1537e5f57d1a8398220380e1a71c5e6d07f2b37d0aa",
            ),
            (
                "/v1/account",
                SignHash::Sha256,
                "3a3d591902017ed27576fc7a10ebb8ca1591d084984c85f4a7f04671cb8f53ef",
            ),
            (
                "/v1/example.com/whois/parsed",
                SignHash::Sha256,
                "253d29f886777acc47dfe7cddb38a52014a8b6b557def5e2e955cf00945ec0bd",
            ),
            (
                "/v1/risk",
                SignHash::Sha256,
                "71181c27fe143e11d92793433c0aadebf77d0acfdb9660f3d87bab6c9c03f075",
            ),
            (
                "/v1/iris-detect/domains/new/",
                SignHash::Sha256,
                "12ca4490cd4add3e5d1a728f1ff0b19842dafaf494207e323f2c359847399a95",
            ),
            (
                "v1/feed/nod/",
                SignHash::Sha256,
                "3bd942cf75811c3a0d2cad082bc9441425234c207f29c57cdc2bcb984479a825",
            ),
        ];
        for (path, hash, expected) in cases {
            assert_eq!(sign(&creds(), TS, path, hash), expected, "{path} {hash:?}");
        }
    }

    #[test]
    fn timestamp_is_utc_seconds() {
        let now = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(timestamp(now), TS);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let shown = format!("{:?}", creds());
        assert!(shown.contains("test_user"));
        assert!(!shown.contains("test_key_0123456789"), "{shown}");
    }

    #[test]
    fn fingerprint_tells_keys_apart_without_revealing_them() {
        let a = creds().key_fingerprint().to_owned();
        let b = Credentials::new("test_user", "another")
            .key_fingerprint()
            .to_owned();
        assert_ne!(a, b);
        assert!(!a.contains("test_key"));
        assert_eq!(a.len(), 16);
    }
}
