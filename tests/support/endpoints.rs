//! What one DNS name with several A records points at: simulated origins on
//! 127.0.0.11, .12, .13, ... (all of 127/8 is loopback on Linux), all on the same
//! port, each counting what it served and each able to die alone.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::sim_origin::{Control, SimOrigin};

/// One address of the set.
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The origin's counters and switches; kept after `stop`.
    pub control: Arc<Control>,
    origin: Option<SimOrigin>,
}

impl Endpoint {
    /// The address without the port, e.g. `127.0.0.11`.
    pub fn ip(&self) -> String {
        self.addr.ip().to_string()
    }

    /// Requests it answered (health probes excluded).
    pub fn served(&self) -> u64 {
        self.control.requests.load(Relaxed)
    }

    /// Health probes it answered.
    pub fn probes(&self) -> u64 {
        self.control.probes.load(Relaxed)
    }

    /// Dies: open connections are closed at their next request without an answer,
    /// and the listener closes, so new connections are refused.
    pub fn stop(&mut self) {
        self.control.drop_connections.store(true, Relaxed);
        self.origin = None;
    }
}

/// `n` simulated origins for `region` on 127.0.0.11, 127.0.0.12, ... sharing one
/// port: the first binds port 0, the others the port it got; if one of those is
/// taken, all start again on a new port.
pub async fn same_port_origins(region: &str, n: usize) -> Vec<Endpoint> {
    assert!((1..=200).contains(&n), "127.0.0.11 to 127.0.0.210");
    let ip = |i: usize| Ipv4Addr::new(127, 0, 0, 11 + i as u8);
    'again: for _ in 0..20 {
        let first = SimOrigin::start(region, SocketAddr::from((ip(0), 0)))
            .await
            .unwrap_or_else(|e| panic!("bind {}:0: {e}", ip(0)));
        let port = first.addr.port();
        let mut all = vec![first];
        for i in 1..n {
            match SimOrigin::start(region, SocketAddr::from((ip(i), port))).await {
                Ok(o) => all.push(o),
                Err(_) => continue 'again,
            }
        }
        return all
            .into_iter()
            .map(|o| Endpoint {
                addr: o.addr,
                control: o.control.clone(),
                origin: Some(o),
            })
            .collect();
    }
    panic!(
        "no port free on all of 127.0.0.11..{} in 20 tries",
        ip(n - 1)
    );
}
