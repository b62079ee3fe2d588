//! A throwaway certificate authority (a TLS-inspecting proxy's or a corporate one, as far as
//! the server can tell) and loopback HTTPS in front of an axum router, for the `--ca-file`
//! tests: a peer whose certificate chains to this CA is refused unless the CA is given.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio_rustls::rustls::pki_types::PrivateKeyDer;

/// A CA made for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate for 127.0.0.1 signed by a [`TestCa`], with its key.
pub struct ServerCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl TestCa {
    /// A new CA with its own key.
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "TLS-inspecting proxy CA (test)");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    /// The CA's certificate, PEM: what `--ca-file` names.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA's certificate written to `dir`; returns its path.
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("test-ca.pem");
        std::fs::write(&path, self.pem()).unwrap();
        path
    }

    /// A server certificate for 127.0.0.1 signed by this CA.
    pub fn server_cert(&self) -> ServerCert {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }
}

impl ServerCert {
    /// The rustls server side of this certificate.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = tokio_rustls::rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert_der.clone().into()],
                PrivateKeyDer::Pkcs8(self.key_der.clone().into()),
            )
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

/// Serves `app` over HTTPS on 127.0.0.1 with a certificate of `ca`; returns
/// `https://127.0.0.1:PORT` and the accept loop (abort it to stop).
pub async fn serve_https(app: axum::Router, ca: &TestCa) -> (String, tokio::task::JoinHandle<()>) {
    use tower::ServiceExt as _;
    let acceptor = ca.server_cert().acceptor();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to serve.
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app.map_request(
                    |r: axum::http::Request<hyper::body::Incoming>| r.map(axum::body::Body::new),
                ));
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    (url, task)
}
