//! Health as plain data: the roll-up of a region's origins into one verdict (a
//! pure function), and [`HealthView`], every region's verdict read once, so a
//! decision made from it sees one consistent state however often it asks.

use smallvec::SmallVec;

/// Health of a region as routing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionHealth {
    Healthy,
    /// Serving, at `degraded_weight_factor` of its share.
    Degraded,
    Unhealthy,
}

impl RegionHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            RegionHealth::Healthy => "healthy",
            RegionHealth::Degraded => "degraded",
            RegionHealth::Unhealthy => "unhealthy",
        }
    }
    /// As kept in an atomic: 1, 2, 3 (0 stands for none).
    pub fn code(self) -> u8 {
        match self {
            RegionHealth::Healthy => 1,
            RegionHealth::Degraded => 2,
            RegionHealth::Unhealthy => 3,
        }
    }
    /// `code`'s inverse; None for 0 (or anything else).
    pub fn from_code(code: u8) -> Option<RegionHealth> {
        match code {
            1 => Some(RegionHealth::Healthy),
            2 => Some(RegionHealth::Degraded),
            3 => Some(RegionHealth::Unhealthy),
            _ => None,
        }
    }
}

/// One region's state in the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionStatus {
    pub health: RegionHealth,
    /// Operator drain: no new requests.
    pub drained: bool,
    /// Mean latency EWMA of its eligible origins in microseconds; 0 = unknown.
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
    /// The part of its configured share the region serves: none when not
    /// eligible, `degraded_factor` when degraded, all of it otherwise.
    pub fn share_factor(&self, degraded_factor: f64) -> f64 {
        match self.health {
            _ if !self.eligible() => 0.0,
            RegionHealth::Degraded => degraded_factor,
            _ => 1.0,
        }
    }
}

/// What the roll-up needs to know of one origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginReading {
    /// Passed its probes and not ejected.
    pub eligible: bool,
    /// Its probes say degraded.
    pub degraded: bool,
    /// Latency EWMA in microseconds; 0 = no sample.
    pub ewma_us: u32,
}

/// Rolls a region's origins up into its status: healthy with at least
/// `min_healthy` fully healthy origins, degraded when degraded ones make up the
/// number, unhealthy otherwise. Its latency is the mean over eligible origins
/// with a sample.
pub fn roll_up(
    origins: impl IntoIterator<Item = OriginReading>,
    min_healthy: u32,
    drained: bool,
) -> RegionStatus {
    let (mut healthy, mut degraded, mut lat_sum, mut lat_n) = (0u32, 0u32, 0u64, 0u64);
    for o in origins.into_iter().filter(|o| o.eligible) {
        if o.degraded {
            degraded += 1;
        } else {
            healthy += 1;
        }
        if o.ewma_us > 0 {
            lat_sum += u64::from(o.ewma_us);
            lat_n += 1;
        }
    }
    let health = if healthy >= min_healthy {
        RegionHealth::Healthy
    } else if healthy + degraded >= min_healthy {
        RegionHealth::Degraded
    } else {
        RegionHealth::Unhealthy
    };
    RegionStatus {
        health,
        drained,
        latency_us: lat_sum.checked_div(lat_n).unwrap_or(0) as u32,
    }
}

/// At most this many regions in one view (the snapshot's limit).
pub const MAX: usize = 64;

/// Regions a view holds without allocating: real deployments run a handful.
const INLINE: usize = 8;

// Every shift's abort flag is a bit of one `u64`.
const _: () = assert!(crate::core::config::validate::MAX_SHIFTS <= 64);

/// Every region's status and every shift's abort flag, read at one moment.
/// Plain data: a request builds it once and decides from it; tests and
/// `meridian explain` build any state they like.
///
/// The statuses sit inline up to [`INLINE`] regions, so a request writes and
/// copies only as many as a deployment has; a fixed array of [`MAX`] would cost
/// every request the largest deployment's size.
#[derive(Debug, Clone)]
pub struct HealthView {
    regions: SmallVec<[RegionStatus; INLINE]>,
    /// Bit i: shift i was aborted at runtime (it then moves nothing).
    aborted_shifts: u64,
}

impl HealthView {
    /// A view of `statuses` (at most [`MAX`]; more are ignored) with no shift aborted.
    pub fn new(statuses: impl IntoIterator<Item = RegionStatus>) -> HealthView {
        HealthView {
            regions: statuses.into_iter().take(MAX).collect(),
            aborted_shifts: 0,
        }
    }

    /// `n` healthy regions.
    pub fn all_healthy(n: usize) -> HealthView {
        HealthView::new(std::iter::repeat_n(RegionStatus::HEALTHY, n))
    }

    /// Region `r`'s status; one the view was not given reads as healthy.
    pub fn region(&self, r: usize) -> RegionStatus {
        self.regions
            .get(r)
            .copied()
            .unwrap_or(RegionStatus::HEALTHY)
    }

    pub fn region_mut(&mut self, r: usize) -> &mut RegionStatus {
        &mut self.regions[r]
    }

    pub fn regions(&self) -> &[RegionStatus] {
        &self.regions
    }

    /// Marks shift `i` aborted (validation keeps shifts under 64).
    pub fn abort_shift(&mut self, i: usize) {
        if i < 64 {
            self.aborted_shifts |= 1 << i;
        }
    }

    /// False once a shift was aborted at runtime.
    pub fn shift_active(&self, i: usize) -> bool {
        i >= 64 || self.aborted_shifts & (1 << i) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(eligible: bool, degraded: bool, ewma_us: u32) -> OriginReading {
        OriginReading {
            eligible,
            degraded,
            ewma_us,
        }
    }

    #[test]
    fn enough_healthy_origins_make_a_healthy_region() {
        let s = roll_up([o(true, false, 100), o(true, false, 300)], 2, false);
        assert_eq!(s.health, RegionHealth::Healthy);
        assert_eq!(s.latency_us, 200);
        assert!(s.eligible());
    }

    #[test]
    fn degraded_origins_make_up_the_number_as_degraded() {
        let s = roll_up([o(true, false, 0), o(true, true, 0)], 2, false);
        assert_eq!(s.health, RegionHealth::Degraded);
        assert!(s.eligible());
    }

    #[test]
    fn too_few_eligible_origins_make_it_unhealthy() {
        let s = roll_up([o(true, false, 50), o(false, false, 900)], 2, false);
        assert_eq!(s.health, RegionHealth::Unhealthy);
        // An ineligible origin's latency says nothing about where traffic goes.
        assert_eq!(s.latency_us, 50);
        assert!(!s.eligible());
        assert_eq!(roll_up([], 1, false).health, RegionHealth::Unhealthy);
    }

    #[test]
    fn a_drained_region_is_not_eligible_however_healthy() {
        let s = roll_up([o(true, false, 10)], 1, true);
        assert_eq!(s.health, RegionHealth::Healthy);
        assert!(!s.eligible());
    }

    #[test]
    fn unmeasured_origins_leave_latency_unknown() {
        assert_eq!(roll_up([o(true, false, 0)], 1, false).latency_us, 0);
    }

    #[test]
    fn a_view_holds_its_regions_and_shift_aborts() {
        let mut v = HealthView::all_healthy(3);
        assert_eq!(v.regions().len(), 3);
        v.region_mut(1).health = RegionHealth::Unhealthy;
        assert!(!v.region(1).eligible());
        assert!(v.shift_active(5));
        v.abort_shift(5);
        assert_eq!(v.region(0).share_factor(0.5), 1.0);
        v.region_mut(0).health = RegionHealth::Degraded;
        assert_eq!(v.region(0).share_factor(0.5), 0.5);
        assert_eq!(v.region(1).share_factor(0.5), 0.0);
        assert!(!v.shift_active(5));
        assert!(v.shift_active(4));
    }
}
