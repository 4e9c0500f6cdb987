//! What routing may know about origins. Regions come as plain data
//! ([`HealthView`], read once per request); the choice of an endpoint inside a
//! region reads load live (as linkerd's power of two choices does), through
//! [`OriginView`], so tests can hand it any state they like.

use std::sync::atomic::Ordering::Relaxed;

use crate::core::config::Priority;
use crate::core::health::endpoints::{MAX_ENDPOINTS_PER_ORIGIN, MAX_ORIGINS_PER_REGION};
use crate::core::health::{HealthView, RegionHealth};
use crate::core::snapshot::{Asking, RegionIdx, Snapshot};

/// One endpoint's state as endpoint choice sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointStatus {
    pub eligible: bool,
    pub ewma_us: u32,
    pub outstanding: u32,
    /// Its origin has no room for the request (`max_inflight`, `max_rps`).
    pub full: bool,
}

/// Read-only endpoint state for endpoint choice.
pub trait OriginView {
    /// Calls `f(origin, endpoint, status)` for every endpoint of region `r`:
    /// origins in config order, each one's addresses in sorted order, at most
    /// [`MAX_ORIGINS_PER_REGION`] x [`MAX_ENDPOINTS_PER_ORIGIN`].
    fn each_endpoint(
        &self,
        snap: &Snapshot,
        r: RegionIdx,
        f: &mut dyn FnMut(usize, usize, EndpointStatus),
    );
}

/// The live endpoints: reads each origin's published set and its atomics.
pub struct LiveOrigins {
    pub now_ms: u64,
    /// The request's route's priority (how much of an origin's capacity it may use).
    pub priority: Priority,
}

impl LiveOrigins {
    /// The live endpoints as of `now_ms`, for a request of `priority`.
    pub fn at(now_ms: u64, priority: Priority) -> LiveOrigins {
        LiveOrigins { now_ms, priority }
    }
}

impl OriginView for LiveOrigins {
    fn each_endpoint(
        &self,
        snap: &Snapshot,
        r: RegionIdx,
        f: &mut dyn FnMut(usize, usize, EndpointStatus),
    ) {
        // Slices, not `take` adaptors: this runs for every try of every request.
        let region = &snap.regions[r];
        let origins = &region.origins[..region.origins.len().min(MAX_ORIGINS_PER_REGION)];
        for (o, origin) in origins.iter().enumerate() {
            origin.with_endpoints(|set| {
                let set = &set[..set.len().min(MAX_ENDPOINTS_PER_ORIGIN)];
                let full = origin.capacity.limited() && {
                    let ask = Asking {
                        dial: region.dial,
                        degraded_factor: snap.degraded_factor,
                        priority: self.priority,
                        now_ms: self.now_ms,
                    };
                    !origin.has_room(set, &ask)
                };
                for (e, ep) in set.iter().enumerate() {
                    let h = &ep.health;
                    let status = EndpointStatus {
                        eligible: h.eligible(self.now_ms),
                        ewma_us: h.ewma_us.load(Relaxed),
                        outstanding: h.outstanding.load(Relaxed),
                        full,
                    };
                    f(o, e, status);
                }
            });
        }
    }
}

/// For tests and `meridian explain`: each origin has one endpoint, eligible
/// unless the region is unhealthy, none measured, none loaded.
impl OriginView for HealthView {
    fn each_endpoint(
        &self,
        snap: &Snapshot,
        r: RegionIdx,
        f: &mut dyn FnMut(usize, usize, EndpointStatus),
    ) {
        let status = EndpointStatus {
            eligible: self.region(r).health != RegionHealth::Unhealthy,
            ewma_us: 0,
            outstanding: 0,
            full: false,
        };
        for o in 0..snap.regions[r].origins.len().min(MAX_ORIGINS_PER_REGION) {
            f(o, 0, status);
        }
    }
}
