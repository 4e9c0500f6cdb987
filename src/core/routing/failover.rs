//! The failover walk: which (region, origin, endpoint) each try of a request goes to,
//! along the decision's region order. Pure: the origin view and the random
//! source come in, so tests replay any walk exactly.

use rand::Rng;

use super::origin::Tried;
use super::{pick_endpoint, OriginView, Pick};
use crate::core::snapshot::{RegionIdx, Snapshot};

/// Where one try goes: a region, one of its origins, one of that origin's
/// endpoints (an index into its published set, sorted by address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    pub region: RegionIdx,
    pub origin: usize,
    pub endpoint: usize,
    /// The first region this try passed over because it had no room (spillover).
    pub spilled_from: Option<RegionIdx>,
}

/// Where a request's tries stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Walk {
    /// A region at capacity keeps the request (to wait for room, or be shed)
    /// rather than passing it on: writes never spill.
    stay: bool,
    /// The last `next` found no room anywhere it looked (rather than nothing
    /// left to try): the request may wait for room.
    blocked: bool,
    /// Index into the decision's order of the region being tried.
    region_pos: usize,
    /// Endpoints of that region already tried: a retry goes to another address,
    /// of the same origin or another, before the walk leaves the region.
    tried: Tried,
    /// Tries made so far.
    attempts: u32,
}

impl Walk {
    /// A walk for a request that may spill to the next region when one is full
    /// (`spill`), or must stay at capacity (a write).
    pub fn new(spill: bool) -> Walk {
        Walk {
            stay: !spill,
            ..Walk::default()
        }
    }

    /// The last `next` came back empty for want of room, not of endpoints.
    pub fn blocked(&self) -> bool {
        self.blocked
    }

    /// Tries made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The request may wait for a place: the last `next` found no room, and
    /// no try was made yet (a request that had one ends with its failure).
    pub fn may_wait(&self) -> bool {
        self.blocked && self.attempts == 0
    }

    /// The next try's target, taken: None once `order` is used up. The last
    /// allowed try (`max_attempts`) goes to the next region when there is one: a
    /// region that just failed a try may be going down, and only another region
    /// is known to be apart.
    pub fn next<O: OriginView, R: Rng + ?Sized>(
        &mut self,
        snap: &Snapshot,
        origins: &O,
        order: &[RegionIdx],
        max_attempts: u32,
        rng: &mut R,
    ) -> Option<Destination> {
        let last_try = self.attempts + 1 >= max_attempts;
        if self.attempts > 0 && last_try && self.region_pos + 1 < order.len() {
            self.region_pos += 1;
            self.tried = Tried::default();
        }
        let mut passed_full = None;
        self.blocked = false;
        while let Some(&region) = order.get(self.region_pos) {
            match pick_endpoint(snap, origins, region, &self.tried, rng) {
                Pick::Endpoint(origin, endpoint) => {
                    self.tried.insert(origin, endpoint);
                    self.attempts += 1;
                    return Some(Destination {
                        region,
                        origin,
                        endpoint,
                        spilled_from: passed_full,
                    });
                }
                Pick::Full if self.stay => {
                    self.blocked = true;
                    return None;
                }
                Pick::Full => {
                    passed_full.get_or_insert(region);
                }
                Pick::Exhausted => {}
            }
            self.region_pos += 1;
            self.tried = Tried::default();
        }
        self.blocked = passed_full.is_some();
        None
    }

    /// Takes back the try `next` gave: its origin had no room by the time the
    /// request got there. The next pick then sees that origin as full (and
    /// the request spills) or, if a place freed meanwhile, picks it again.
    pub fn untake(&mut self, to: &Destination) {
        self.attempts = self.attempts.saturating_sub(1);
        self.tried.remove(to.origin, to.endpoint);
    }

    /// Where a retry would go, without taking it: None when the tries are used
    /// up or no origin is left.
    pub fn peek_retry<O: OriginView, R: Rng + ?Sized>(
        &self,
        snap: &Snapshot,
        origins: &O,
        order: &[RegionIdx],
        max_attempts: u32,
        rng: &mut R,
    ) -> Option<RegionIdx> {
        if self.attempts >= max_attempts {
            return None;
        }
        let mut ahead = *self;
        ahead
            .next(snap, origins, order, max_attempts, rng)
            .map(|d| d.region)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::core::health::HealthView;
    use crate::test_support::ConfigFile;

    /// Region 0 with two origins, region 1 with one; the default retry
    /// policy (two tries in all; 502, 503, 504 retried).
    pub(in crate::core::routing) fn snapshot() -> Snapshot {
        ConfigFile::with(
            "walk",
            "local_region: a\n\
             listeners: [{address: 127.0.0.1:0}]\n\
             admin: {address: 127.0.0.1:1}\n\
             regions:\n\
             \x20 a: {origins: [{address: 127.0.0.1:1001}, {address: 127.0.0.1:1002}]}\n\
             \x20 b: {origins: [{address: 127.0.0.1:2001}]}\n",
        )
        .snapshot()
    }

    fn walk(max_attempts: u32) -> Vec<(RegionIdx, usize)> {
        let snap = snapshot();
        let health = HealthView::all_healthy(2);
        let mut w = Walk::default();
        let mut rng = rand::thread_rng();
        std::iter::from_fn(|| w.next(&snap, &health, &[0, 1], max_attempts, &mut rng))
            .take(max_attempts as usize)
            .map(|d| (d.region, d.origin))
            .collect()
    }

    #[test]
    fn tries_other_origins_of_the_region_then_the_last_try_goes_to_the_next_region() {
        let tries = walk(3);
        assert_eq!(tries.len(), 3);
        assert_eq!(tries[0].0, 0);
        assert_eq!(tries[1].0, 0);
        assert_ne!(tries[0].1, tries[1].1, "the same origin twice: {tries:?}");
        assert_eq!(tries[2], (1, 0));
    }

    #[test]
    fn with_two_tries_the_second_goes_to_the_next_region() {
        let tries = walk(2);
        assert_eq!(tries[0].0, 0);
        assert_eq!(tries[1], (1, 0));
    }

    #[test]
    fn the_walk_ends_when_every_origin_was_tried() {
        let snap = snapshot();
        let health = HealthView::all_healthy(2);
        let mut w = Walk::default();
        let mut rng = rand::thread_rng();
        let all: Vec<_> =
            std::iter::from_fn(|| w.next(&snap, &health, &[0, 1], 10, &mut rng)).collect();
        assert_eq!(all.len(), 3, "{all:?}");
        assert_eq!(w.attempts(), 3);
    }

    #[test]
    fn peeking_takes_nothing_and_respects_the_budget_of_tries() {
        let snap = snapshot();
        let health = HealthView::all_healthy(2);
        let mut rng = rand::thread_rng();
        let mut w = Walk::default();
        w.next(&snap, &health, &[0, 1], 2, &mut rng).unwrap();
        let before = w;
        assert_eq!(w.peek_retry(&snap, &health, &[0, 1], 2, &mut rng), Some(1));
        assert_eq!(w, before);
        w.next(&snap, &health, &[0, 1], 2, &mut rng).unwrap();
        assert_eq!(w.peek_retry(&snap, &health, &[0, 1], 2, &mut rng), None);
    }
}
