//! Who may post to the callback. OpenCTI 7's worker signs a JWT with the platform's key and
//! the connector checks it against the `jwks` registration returned, as pycti 7 does (issuer
//! `opencti`, subject `connector`, the key named by the token's `kid`, the algorithm of that
//! key, `exp` when the token has one). OpenCTI 6's worker sends the connector user's own
//! token instead, compared in constant time.

use std::str::FromStr as _;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

/// Why the platform's key set cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the key set (jwks) OpenCTI returned at registration cannot be read: {0}")]
pub struct JwksError(String);

/// One verification key of the platform.
struct PlatformKey {
    kid: String,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// What the callback accepts as `Authorization: Bearer …`.
pub struct CallbackAuth {
    token: String,
    keys: Vec<PlatformKey>,
}

impl std::fmt::Debug for CallbackAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackAuth")
            .field(
                "platform_keys",
                &self.keys.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The claims pycti checks; others are ignored.
#[derive(Deserialize)]
struct Claims {}

impl CallbackAuth {
    /// `token`: the connector user's token; `jwks`: the set from registration (OpenCTI 7),
    /// a JSON text or object, none on OpenCTI 6.
    pub fn new(token: &str, jwks: Option<&serde_json::Value>) -> Result<Self, JwksError> {
        let keys = match jwks {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::String(text)) if text.trim().is_empty() => Vec::new(),
            Some(serde_json::Value::String(text)) => {
                read_set(serde_json::from_str(text).map_err(|e| JwksError(e.to_string()))?)?
            }
            Some(value) => read_set(
                serde_json::from_value(value.clone()).map_err(|e| JwksError(e.to_string()))?,
            )?,
        };
        Ok(Self {
            token: token.to_owned(),
            keys,
        })
    }

    /// Whether the platform gave keys (OpenCTI 7).
    pub fn has_platform_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks an `Authorization` header's value.
    pub fn check(&self, authorization: &str) -> bool {
        let mut parts = authorization.split_whitespace();
        let (Some(scheme), Some(given), None) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return false;
        }
        let is_token: bool = given.as_bytes().ct_eq(self.token.as_bytes()).into();
        is_token || self.valid_jwt(given)
    }

    fn valid_jwt(&self, token: &str) -> bool {
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return false;
        };
        let Some(kid) = header.kid else {
            return false;
        };
        let Some(key) = self.keys.iter().find(|key| key.kid == kid) else {
            return false;
        };
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&["opencti"]);
        validation.sub = Some("connector".to_owned());
        // pyjwt checks `exp` only when the token has one, with no leeway.
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        validation.validate_aud = false;
        jsonwebtoken::decode::<Claims>(token, &key.key, &validation).is_ok()
    }
}

fn read_set(set: JwkSet) -> Result<Vec<PlatformKey>, JwksError> {
    set.keys.iter().map(read_key).collect()
}

fn read_key(jwk: &Jwk) -> Result<PlatformKey, JwksError> {
    let kid = jwk
        .common
        .key_id
        .clone()
        .ok_or_else(|| JwksError("a key has no kid".to_owned()))?;
    // The key's own algorithm, else the one its type implies (pyjwt's PyJWK does the same).
    let algorithm = match &jwk.common.key_algorithm {
        Some(named) => Algorithm::from_str(&named.to_string()).map_err(|_| {
            JwksError(format!(
                "key {kid}: algorithm {named} is not for signatures"
            ))
        })?,
        None => match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return Err(JwksError(format!("key {kid}: unsupported curve"))),
            },
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            _ => return Err(JwksError(format!("key {kid}: not a public signature key"))),
        },
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| JwksError(format!("key {kid}: {e}")))?;
    Ok(PlatformKey {
        kid,
        algorithm,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connector_token_is_compared_whole() {
        let auth = CallbackAuth::new("s3cret", None).unwrap();
        assert!(!auth.has_platform_keys());
        for (value, ok) in [
            ("Bearer s3cret", true),
            ("bearer s3cret", true),
            ("Bearer s3cre", false),
            ("Bearer s3cret extra", false),
            ("Basic s3cret", false),
            ("s3cret", false),
            ("Bearer", false),
            ("", false),
        ] {
            assert_eq!(auth.check(value), ok, "{value}");
        }
    }

    #[test]
    fn a_key_set_that_cannot_be_used_is_an_error() {
        for set in [
            serde_json::json!("not json"),
            serde_json::json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}),
            serde_json::json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k"}]}),
        ] {
            assert!(CallbackAuth::new("t", Some(&set)).is_err(), "{set}");
        }
        let empty = CallbackAuth::new("t", Some(&serde_json::json!(""))).unwrap();
        assert!(!empty.has_platform_keys());
    }
}
