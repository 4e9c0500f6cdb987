//! What `decide` may know about health: a read-only view, so the decision stays
//! a pure function and tests can hand it any state they like.

use crate::health::ProbeState;
use crate::snapshot::{RegionIdx, Snapshot};

/// Health of a region as routing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionHealth {
    Healthy,
    /// Serving, at `degraded_weight_factor` of its share.
    Degraded,
    Unhealthy,
}

/// One region's state in the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionStatus {
    pub health: RegionHealth,
    /// Operator drain: no new requests.
    pub drained: bool,
    /// Measured latency EWMA in microseconds; 0 = unknown (sorts last).
    pub latency_us: u32,
}

impl RegionStatus {
    pub const HEALTHY: RegionStatus = RegionStatus {
        health: RegionHealth::Healthy,
        drained: false,
        latency_us: 0,
    };
    /// May take new requests outside panic mode.
    pub fn eligible(&self) -> bool {
        !self.drained && self.health != RegionHealth::Unhealthy
    }
}

/// One origin's state in the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginStatus {
    pub eligible: bool,
    pub ewma_us: u32,
    pub outstanding: u32,
}

/// Read-only health as `decide` sees it.
pub trait HealthView {
    fn region(&self, r: RegionIdx) -> RegionStatus;
    fn origin(&self, r: RegionIdx, o: usize) -> OriginStatus;
    /// False once a shift was aborted at runtime (it then moves nothing).
    fn shift_active(&self, _shift: usize) -> bool {
        true
    }
}

/// The live view: reads the atomics the snapshot's health entries point to.
pub struct LiveHealth<'a> {
    pub snap: &'a Snapshot,
    pub now_ms: u64,
}

impl HealthView for LiveHealth<'_> {
    fn region(&self, r: RegionIdx) -> RegionStatus {
        let region = &self.snap.regions[r];
        let (mut healthy, mut degraded, mut lat_sum, mut lat_n) = (0u32, 0u32, 0u64, 0u64);
        for o in &region.origins {
            if !o.health.eligible(self.now_ms) {
                continue;
            }
            match o.health.state() {
                ProbeState::Degraded => degraded += 1,
                _ => healthy += 1,
            }
            let l = o.health.ewma_us.load(std::sync::atomic::Ordering::Relaxed);
            if l > 0 {
                lat_sum += u64::from(l);
                lat_n += 1;
            }
        }
        let min = self.snap.min_healthy_origins;
        let health = if healthy >= min {
            RegionHealth::Healthy
        } else if healthy + degraded >= min {
            RegionHealth::Degraded
        } else {
            RegionHealth::Unhealthy
        };
        RegionStatus {
            health,
            drained: region
                .state
                .drained
                .load(std::sync::atomic::Ordering::Relaxed),
            latency_us: lat_sum.checked_div(lat_n).unwrap_or(0) as u32,
        }
    }

    fn shift_active(&self, shift: usize) -> bool {
        !self.snap.shifts[shift]
            .state
            .aborted
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn origin(&self, r: RegionIdx, o: usize) -> OriginStatus {
        let h = &self.snap.regions[r].origins[o].health;
        OriginStatus {
            eligible: h.eligible(self.now_ms),
            ewma_us: h.ewma_us.load(std::sync::atomic::Ordering::Relaxed),
            outstanding: h.outstanding.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// A fixed view for tests and `meridian explain`: per-region status, every origin eligible
/// unless its region is unhealthy.
#[derive(Debug, Clone)]
pub struct StaticHealth {
    pub regions: Vec<RegionStatus>,
}

impl StaticHealth {
    pub fn all_healthy(n: usize) -> StaticHealth {
        StaticHealth {
            regions: vec![RegionStatus::HEALTHY; n],
        }
    }
}

impl HealthView for StaticHealth {
    fn region(&self, r: RegionIdx) -> RegionStatus {
        self.regions[r]
    }
    fn origin(&self, r: RegionIdx, _o: usize) -> OriginStatus {
        OriginStatus {
            eligible: self.regions[r].health != RegionHealth::Unhealthy,
            ewma_us: 0,
            outstanding: 0,
        }
    }
}
