//! The certificate authorities outbound TLS trusts, the same for every peer (DomainTools, Redis,
//! the OpenCTI platform, RabbitMQ): the bundled Mozilla roots, the system's, and the PEM file an
//! operator adds with `--ca-file` (a TLS-inspecting proxy's CA, a corporate CA). Clients that
//! take roots only as one PEM text, and replace their defaults with it (the redis crate, lapin's
//! extra chain), get all three as [`ExtraRoots::bundle_pem`].

use base64::Engine as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

use crate::error::Error;

/// The authorities trusted besides the built-in roots, parsed and checked once at start-up.
#[derive(Clone, Default)]
pub struct ExtraRoots {
    certs: Vec<CertificateDer<'static>>,
}

// Certificates are public, but thousands of bytes each: only their count is worth showing.
impl std::fmt::Debug for ExtraRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtraRoots")
            .field("certificates", &self.certs.len())
            .finish()
    }
}

impl ExtraRoots {
    /// None: the built-in roots only.
    pub fn none() -> Self {
        Self::default()
    }

    /// The certificates of a PEM file. A file that holds none, or a certificate that cannot
    /// be a trust anchor, is refused here rather than at the first connection.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Config(format!("the CA file cannot be read as PEM: {e}")))?;
        if certs.is_empty() {
            return Err(Error::Config(
                "the CA file holds no PEM certificate".to_owned(),
            ));
        }
        let mut store = rustls::RootCertStore::empty();
        for (n, cert) in certs.iter().enumerate() {
            store.add(cert.clone()).map_err(|e| {
                Error::Config(format!(
                    "certificate {} of the CA file is not a usable authority: {e}",
                    n + 1
                ))
            })?;
        }
        Ok(Self { certs })
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// The extra authorities for a reqwest client (which has the built-in roots already).
    pub fn reqwest_certificates(&self) -> Vec<reqwest::Certificate> {
        self.certs
            .iter()
            // With the rustls backend this only keeps the bytes: it cannot fail.
            .filter_map(|cert| reqwest::Certificate::from_der(cert).ok())
            .collect()
    }

    /// Every trusted root as one PEM text: the bundled Mozilla set, the system's (those
    /// rustls can use; a broken one is skipped as reqwest skips it), then the extra ones.
    pub fn bundle_pem(&self) -> String {
        let system = rustls_native_certs::load_native_certs().certs;
        let mut usable = rustls::RootCertStore::empty();
        let mut pem = String::new();
        let all = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .chain(system.iter())
            .chain(self.certs.iter());
        for cert in all {
            if usable.add(cert.clone()).is_ok() {
                push_pem(&mut pem, cert);
            }
        }
        pem
    }

    /// A Redis client for `url`: for `rediss://`, one that trusts [`Self::bundle_pem`] (the
    /// redis crate's own choice would be the system roots only).
    pub fn redis_client(&self, url: &str) -> redis::RedisResult<redis::Client> {
        if !url.starts_with("rediss://") {
            return redis::Client::open(url);
        }
        redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(self.bundle_pem().into_bytes()),
            },
        )
    }
}

fn push_pem(out: &mut String, cert: &CertificateDer<'_>) {
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    let text = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
    for (n, c) in text.chars().enumerate() {
        if n > 0 && n % 64 == 0 {
            out.push('\n');
        }
        out.push(c);
    }
    out.push_str("\n-----END CERTIFICATE-----\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_holds_the_builtin_roots_and_the_extra_ones_in_order() {
        let none = ExtraRoots::none().bundle_pem();
        let builtin: Vec<_> = CertificateDer::pem_slice_iter(none.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            builtin.len() >= webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() / 2,
            "{} roots",
            builtin.len()
        );
        // One of the bundled roots stands in for a corporate CA: it comes back last, byte
        // for byte, through the PEM text.
        let extra = webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].clone();
        let mut file = String::new();
        push_pem(&mut file, &extra);
        let roots = ExtraRoots::from_pem(file.as_bytes()).unwrap();
        assert_eq!(roots.reqwest_certificates().len(), 1);
        let with = roots.bundle_pem();
        let parsed: Vec<_> = CertificateDer::pem_slice_iter(with.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(parsed.len(), builtin.len() + 1);
        assert_eq!(parsed.last(), Some(&extra));
    }

    #[test]
    fn a_file_without_a_usable_certificate_is_refused() {
        for text in [
            &b"not a certificate"[..],
            b"",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            let error = ExtraRoots::from_pem(text).unwrap_err().to_string();
            assert!(error.contains("CA file"), "{error}");
        }
    }

    #[test]
    fn only_rediss_urls_get_the_roots() {
        let roots = ExtraRoots::none();
        assert!(roots.redis_client("redis://127.0.0.1:1/0").is_ok());
        assert!(roots.redis_client("rediss://u:p@127.0.0.1:1/0").is_ok());
    }
}
