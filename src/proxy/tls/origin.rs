//! TLS towards origins: the client settings built from an origin's files, the
//! handshake traffic and probes both make, and a failed handshake in words.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error as RusTlsError, RootCertStore,
    SignatureScheme,
};

use super::certs::{read_certs, read_pair};
use super::{provider, TlsError};

/// The system's trust anchors, read once (every origin without `ca_file` uses them).
fn system_roots() -> &'static [rustls::pki_types::TrustAnchor<'static>] {
    static ROOTS: std::sync::OnceLock<Vec<rustls::pki_types::TrustAnchor<'static>>> =
        std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut store = RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = store.add(c);
        }
        store.roots
    })
}

/// TLS towards one origin.
#[derive(Debug)]
pub struct OriginTls {
    /// For HTTP/1 origins and probes.
    pub client: Arc<ClientConfig>,
    /// The same, offering ALPN `h2` (HTTP/2 origins).
    pub h2: Arc<ClientConfig>,
    /// False: the origin's certificate is not checked (`verify: false`).
    pub verify: bool,
}

/// Builds an origin's TLS settings from its config (paths already resolved).
pub fn origin_tls(
    ca_file: Option<&Path>,
    client: Option<(&Path, &Path)>,
    verify: bool,
) -> Result<OriginTls, TlsError> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for c in read_certs(path)? {
                roots.add(c).map_err(|source| TlsError::BadCa {
                    path: path.to_path_buf(),
                    source,
                })?;
            }
        }
        None => roots.extend(system_roots().iter().cloned()),
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if verify {
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider.clone())))
    };
    let config = match client {
        Some((cert, key)) => {
            let (chain, key_der) = read_pair(cert, key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|source| TlsError::ClientAuth {
                    cert: cert.to_path_buf(),
                    key: key.to_path_buf(),
                    source,
                })?
        }
        None => builder.with_no_client_auth(),
    };
    let mut h2 = config.clone();
    h2.alpn_protocols = vec![b"h2".to_vec()];
    Ok(OriginTls {
        client: Arc::new(config),
        h2: Arc::new(h2),
        verify,
    })
}

/// Why a TLS handshake with an origin failed, worded for an operator.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("sni `{sni}`: {detail}")]
    BadSni { sni: String, detail: String },
    /// What [`describe`] makes of the failure.
    #[error("{0}")]
    Failed(String),
    #[error("the origin did not select ALPN `h2` (protocol: h2)")]
    NoH2,
}

/// The TLS handshake with an origin, as traffic and probes both make it: SNI
/// `sni`, the origin's own trust settings, and for an HTTP/2 origin (`h2`) ALPN
/// `h2`, which the origin must select.
pub async fn connect_origin(
    tls: &OriginTls,
    sni: &str,
    h2: bool,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, HandshakeError> {
    let name = ServerName::try_from(sni.to_string()).map_err(|e| HandshakeError::BadSni {
        sni: sni.to_string(),
        detail: e.to_string(),
    })?;
    let config = if h2 {
        tls.h2.clone()
    } else {
        tls.client.clone()
    };
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| HandshakeError::Failed(describe(&e)))?;
    if h2 && stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err(HandshakeError::NoH2);
    }
    Ok(stream)
}

/// `verify: false`: accepts any certificate (the config check warns loudly).
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, RusTlsError> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, RusTlsError> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, RusTlsError> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A probe's TLS failure in words: expired, not yet valid, wrong host and unknown
/// CA are told apart, because each has a different fix.
pub fn describe(err: &std::io::Error) -> String {
    let tls = err.get_ref().and_then(|e| e.downcast_ref::<RusTlsError>());
    match tls {
        Some(RusTlsError::InvalidCertificate(c)) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not yet valid".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "certificate not valid for the host name".into()
            }
            CertificateError::UnknownIssuer => "certificate signed by an unknown CA".into(),
            other => format!("invalid certificate: {other:?}"),
        },
        Some(other) => other.to_string(),
        None => err.to_string(),
    }
}
