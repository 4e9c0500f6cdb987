//! Certificate choice at each TLS handshake of a listener: by SNI, from the
//! certificates of the snapshot in service, so a reload that replaces them
//! applies to the next handshake.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::core::snapshot::Snapshot;

/// rustls asks this for a certificate at every handshake of listener `index`.
pub struct SniResolver {
    /// The one swap point, and nothing else of the gateway's state.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub index: usize,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SniResolver(listener {})", self.index)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let snap = self.snapshot.load();
        let set = snap.listener_certs.get(self.index)?.as_ref()?;
        Some(set.pick(hello.server_name()))
    }
}
