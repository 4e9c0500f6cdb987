//! What routing may know about origins. Regions come as plain data
//! ([`HealthView`], read once per request); the choice of an origin inside a
//! region reads load live (as linkerd's power of two choices does), through
//! [`OriginView`], so tests can hand it any state they like.

use std::sync::atomic::Ordering::Relaxed;

use crate::core::health::{HealthView, RegionHealth};
use crate::core::snapshot::{RegionIdx, Snapshot};

/// One origin's state as origin choice sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginStatus {
    pub eligible: bool,
    pub ewma_us: u32,
    pub outstanding: u32,
}

/// Read-only origin state for origin choice.
pub trait OriginView {
    fn origin(&self, r: RegionIdx, o: usize) -> OriginStatus;
}

/// The live origins: reads the atomics the snapshot's entries point to.
pub struct LiveOrigins<'a> {
    pub snap: &'a Snapshot,
    pub now_ms: u64,
}

impl OriginView for LiveOrigins<'_> {
    fn origin(&self, r: RegionIdx, o: usize) -> OriginStatus {
        let h = &self.snap.regions[r].origins[o].health;
        OriginStatus {
            eligible: h.eligible(self.now_ms),
            ewma_us: h.ewma_us.load(Relaxed),
            outstanding: h.outstanding.load(Relaxed),
        }
    }
}

/// For tests and `meridian explain`: every origin of a region is eligible unless
/// the region is unhealthy, none measured, none loaded.
impl OriginView for HealthView {
    fn origin(&self, r: RegionIdx, _o: usize) -> OriginStatus {
        OriginStatus {
            eligible: self.region(r).health != RegionHealth::Unhealthy,
            ewma_us: 0,
            outstanding: 0,
        }
    }
}
