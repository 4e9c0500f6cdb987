//! TLS with rustls, both ways.
//!
//! Listeners: each TLS listener's certificates are loaded into a `CertSet` when a
//! snapshot is built, so a reload that brings a bad or mismatched pair fails like
//! any bad config and the old certificates keep serving. The handshake asks
//! `SniResolver`, which reads the set from the snapshot in service: a swapped
//! certificate is served from the next handshake on, and open connections keep
//! theirs.
//!
//! Origins: `OriginTls` holds the rustls client configs built from the origin's
//! files (one offering ALPN `h2` for HTTP/2 origins), used by the proxy's
//! connections and by probes alike, so probes check exactly what traffic meets.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error as RusTlsError, RootCertStore,
    SignatureScheme,
};

/// The process's rustls provider: ring, installed once as the default.
pub fn provider() -> Arc<CryptoProvider> {
    if let Some(p) = CryptoProvider::get_default() {
        return p.clone();
    }
    // A lost race leaves the other thread's (equal) provider installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// PEM certificates (leaf first) and the private key, read from files.
fn read_pair(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let certs = read_certs(cert)?;
    let key_pem = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| format!("{}: {e}", key.display()))?
        .ok_or_else(|| format!("{}: no private key in PEM", key.display()))?;
    Ok((certs, key))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in PEM", path.display()));
    }
    Ok(certs)
}

/// DNS names of a certificate (subject alternative names, lower case).
fn dns_names(der: &[u8]) -> Result<Vec<String>, String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("not X.509: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    Ok(names)
}

/// One listener's certificates: chosen by SNI, the first one for unknown names.
#[derive(Debug)]
pub struct CertSet {
    keys: Vec<Arc<CertifiedKey>>,
    exact: HashMap<String, usize>,
    /// `example.com` for a `*.example.com` certificate.
    wildcard: HashMap<String, usize>,
    /// The names each certificate answers for, in config order (for the state page).
    pub names: Vec<Vec<String>>,
}

impl CertSet {
    /// Loads `(cert, key)` file pairs; a pair that does not load or whose key does not
    /// match its certificate is an error naming the files.
    pub fn load(pairs: &[(&Path, &Path)]) -> Result<CertSet, String> {
        let provider = provider();
        let mut set = CertSet {
            keys: Vec::new(),
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            names: Vec::new(),
        };
        for (i, (cert, key)) in pairs.iter().enumerate() {
            let (chain, key_der) = read_pair(cert, key)?;
            let names = dns_names(&chain[0]).map_err(|e| format!("{}: {e}", cert.display()))?;
            let ck = CertifiedKey::from_der(chain, key_der, &provider).map_err(|e| {
                format!(
                    "{} and {}: {e} (is the key the certificate's?)",
                    cert.display(),
                    key.display()
                )
            })?;
            for n in &names {
                // The first certificate naming a host wins, as the config lists them.
                match n.strip_prefix("*.") {
                    Some(parent) => set.wildcard.entry(parent.to_string()).or_insert(i),
                    None => set.exact.entry(n.clone()).or_insert(i),
                };
            }
            set.keys.push(Arc::new(ck));
            set.names.push(names);
        }
        if set.keys.is_empty() {
            return Err("no certificates".into());
        }
        Ok(set)
    }

    /// The certificate for `sni`: exact name, then wildcard, then the first one.
    pub fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let i = sni
            .map(|s| s.trim_end_matches('.').to_ascii_lowercase())
            .and_then(|s| {
                self.exact.get(&s).copied().or_else(|| {
                    s.split_once('.')
                        .and_then(|(_, parent)| self.wildcard.get(parent).copied())
                })
            })
            .unwrap_or(0);
        self.keys[i].clone()
    }
}

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
) -> Result<OriginTls, String> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for c in read_certs(path)? {
                roots
                    .add(c)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        None => roots.extend(system_roots().iter().cloned()),
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
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
                .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?
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

/// The TLS handshake with an origin, as traffic and probes both make it: SNI
/// `sni`, the origin's own trust settings, and for an HTTP/2 origin (`h2`) ALPN
/// `h2`, which the origin must select. The error is worded for an operator.
pub async fn connect_origin(
    tls: &OriginTls,
    sni: &str,
    h2: bool,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let name = ServerName::try_from(sni.to_string()).map_err(|e| format!("sni `{sni}`: {e}"))?;
    let config = if h2 {
        tls.h2.clone()
    } else {
        tls.client.clone()
    };
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| describe(&e))?;
    if h2 && stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("the origin did not select ALPN `h2` (protocol: h2)".into());
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
