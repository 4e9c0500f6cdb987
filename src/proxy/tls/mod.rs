//! TLS with rustls, both ways.
//!
//! Listeners: each TLS listener's certificates are loaded into a `CertSet` when a
//! snapshot is built, so a reload that brings a bad or mismatched pair fails like
//! any bad config and the old certificates keep serving. The handshake asks
//! `proxy::sni::SniResolver`, which reads the set from the snapshot in service: a swapped
//! certificate is served from the next handshake on, and open connections keep
//! theirs.
//!
//! Origins: `OriginTls` holds the rustls client configs built from the origin's
//! files (one offering ALPN `h2` for HTTP/2 origins), used by the proxy's
//! connections and by probes alike, so probes check exactly what traffic meets.

//!
//! `certs` loads listener certificates, `origin` builds and makes the TLS
//! connections towards origins; both fail with [`TlsError`], worded for an
//! operator (the file, what is wrong with it).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;

mod certs;
mod origin;

pub use certs::CertSet;
pub use origin::{connect_origin, describe, origin_tls, HandshakeError, OriginTls};

/// Why certificates, keys or an origin's TLS settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no certificate in PEM", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no private key in PEM", path.display())]
    NoKey { path: PathBuf },
    #[error("{}: not X.509: {detail}", path.display())]
    NotX509 { path: PathBuf, detail: String },
    #[error("{}: {source}", path.display())]
    BadCa {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("{} and {}: {source} (is the key the certificate's?)", cert.display(), key.display())]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("{} and {}: {source}", cert.display(), key.display())]
    ClientAuth {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("no certificates")]
    NoCertificates,
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

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
