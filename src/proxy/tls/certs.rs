//! Listener certificates: PEM pairs loaded into a [`CertSet`] when a snapshot is
//! built, chosen by SNI at each handshake.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::{provider, TlsError};

/// PEM certificates (leaf first) and the private key, read from files.
pub(super) fn read_pair(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs = read_certs(cert)?;
    let read = |source| TlsError::Read {
        path: key.to_path_buf(),
        source,
    };
    let key_pem = std::fs::read(key).map_err(read)?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(read)?
        .ok_or_else(|| TlsError::NoKey {
            path: key.to_path_buf(),
        })?;
    Ok((certs, key))
}

pub(super) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let pem = std::fs::read(path).map_err(read)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// DNS names of a certificate (subject alternative names, lower case).
fn dns_names(path: &Path, der: &[u8]) -> Result<Vec<String>, TlsError> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| TlsError::NotX509 {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
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
    pub fn load(pairs: &[(&Path, &Path)]) -> Result<CertSet, TlsError> {
        let provider = provider();
        let mut set = CertSet {
            keys: Vec::new(),
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            names: Vec::new(),
        };
        for (i, (cert, key)) in pairs.iter().enumerate() {
            let (chain, key_der) = read_pair(cert, key)?;
            let names = dns_names(cert, &chain[0])?;
            let ck = CertifiedKey::from_der(chain, key_der, &provider).map_err(|source| {
                TlsError::KeyMismatch {
                    cert: cert.to_path_buf(),
                    key: key.to_path_buf(),
                    source,
                }
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
            return Err(TlsError::NoCertificates);
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
