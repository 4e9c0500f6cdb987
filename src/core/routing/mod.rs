//! The routing decision: a pure function over one snapshot, a health view and
//! the request's facts. No I/O, no clock, no locks; randomness comes in as `rng`.
//!
//! Order of steps: residency narrows the candidates; writes go to
//! the write region; a valid write token or affinity cookie pins a read; steering
//! orders the candidates; unhealthy and drained regions drop out (panic mode or a
//! residency reject when none is left); dials, degraded factors and shifts move
//! their share of traffic off the first choice.

mod failover;
mod origin;
mod reason;
pub mod retry;
mod steer;
mod view;

pub use crate::core::health::{HealthView, RegionHealth, RegionStatus};
pub use failover::Destination;
pub use failover::Walk;
pub use origin::{pick_endpoint, Pick, Tried};
pub use reason::{Reason, Reasons};
pub use view::{EndpointStatus, LiveOrigins, OriginView};

use rand::Rng;

use crate::core::snapshot::{RegionIdx, RegionSet, ResidencyGroup, Route, Snapshot};
use crate::request::geo::{Continent, Country};

/// What the gateway knows about one request before routing it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts {
    pub country: Option<Country>,
    pub continent: Option<Continent>,
    /// (latitude, longitude) when the GeoIP database has coordinates.
    pub location: Option<(f64, f64)>,
    /// Index of the route the request matched ([`match_route`]).
    pub route: usize,
    /// POST, PUT, PATCH or DELETE.
    pub is_write: bool,
    /// Region of a verified, unexpired write token.
    pub write_token: Option<RegionIdx>,
    /// Region of a verified affinity cookie.
    pub affinity: Option<RegionIdx>,
    /// Wall-clock time, unix ms (shifts are a function of it).
    pub now_ms: u64,
}

/// What became of a write token the request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    /// No token, or the route does not honour them.
    None,
    Honored,
    /// The token's region is unhealthy or drained: normal routing.
    RegionUnhealthy,
    /// The token's region is outside the client's residency group: ignored.
    OutsideResidency,
}

/// Regions in the order to try them. Inline up to four, which covers most
/// deployments: deciding allocates nothing.
pub type Order = smallvec::SmallVec<[RegionIdx; 4]>;

/// The outcome: regions in the order to try them, with the reasons.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Index of the matched route.
    pub route: usize,
    /// Index of the matched residency group.
    pub residency: Option<usize>,
    /// Regions to try, first choice first; empty when rejected.
    pub order: Order,
    pub reasons: Reasons,
    pub token: TokenUse,
}

impl Decision {
    pub fn rejected(&self) -> bool {
        self.order.is_empty()
    }
}

/// Receives each step of a decision with the candidates left after it
/// (`meridian explain`); the request path uses [`NoTrace`], which compiles away.
pub trait Trace {
    fn step(&mut self, snap: &Snapshot, what: &str, regions: &[RegionIdx]);
}

/// A [`Trace`] that records nothing.
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline(always)]
    fn step(&mut self, _: &Snapshot, _: &str, _: &[RegionIdx]) {}
}

/// Index of the first route matching `host` and `path`; the snapshot always ends
/// with a catch-all route, so there is one.
pub fn match_route(snap: &Snapshot, host: &str, path: &str) -> usize {
    snap.routes
        .iter()
        .position(|r| r.matches(host, path))
        .unwrap_or(snap.routes.len() - 1)
}

/// Decides where a request goes. See the module docs for the order of steps.
pub fn decide<R: Rng + ?Sized>(
    snap: &Snapshot,
    health: &HealthView,
    facts: &RequestFacts,
    rng: &mut R,
) -> Decision {
    decide_traced(snap, health, facts, rng, &mut NoTrace)
}

/// [`decide`], reporting each step to `trace`.
pub fn decide_traced<R: Rng + ?Sized, T: Trace>(
    snap: &Snapshot,
    health: &HealthView,
    facts: &RequestFacts,
    rng: &mut R,
    trace: &mut T,
) -> Decision {
    let route = &snap.routes[facts.route];

    // 2. Residency narrows the candidates.
    let residency = snap
        .residency
        .iter()
        .position(|g| g.matches(facts.country, facts.continent));
    let group = residency.map(|g| &snap.residency[g]);
    let candidates = group.map_or(snap.all_regions(), |g| g.regions);
    let mut decision = Decision {
        route: facts.route,
        residency,
        order: Order::new(),
        reasons: Reasons::default(),
        token: TokenUse::None,
    };
    if trace_enabled::<T>() {
        let c: Vec<_> = candidates.iter().collect();
        trace.step(snap, "candidates", &c);
    }

    // 3. Writes go to the write region (the residency group's own, if it has one).
    // A group without one keeps its writes inside the group by normal steering.
    if route.writes_to_write_region && facts.is_write {
        let target = group.map_or(snap.write_region, |g| g.write_region);
        if let Some(w) = target.filter(|w| candidates.contains(*w)) {
            return to_write_region(snap, health, group, w, decision, trace);
        }
    }

    // 4./5. A write token or affinity cookie pins a read to a region.
    let pinned = pinned(route, health, facts, candidates, &mut decision.token);

    // 6. Steering orders every candidate.
    let (mut order, steer_reason) =
        steer::order(snap, health, facts, route.steering, candidates, rng);
    trace.step(snap, steer_reason.as_str(), &order);
    let first_choice = order[0];

    // 8. Health: drop unhealthy and drained regions; panic or reject when too few are left.
    match keep_healthy(snap, health, facts, group, &mut order, rng, trace) {
        Healthy::Kept => {}
        Healthy::Reject => {
            decision.reasons = Reasons::only(Reason::ResidencyReject);
            return decision;
        }
        Healthy::Panic => {
            decision.reasons = Reasons::only(steer_reason);
            decision.reasons.add(Reason::Panic);
            decision.order = order;
            return decision;
        }
    }

    if let Some((r, why)) = pinned {
        move_to_front(&mut order, r);
        decision.reasons.add(why);
        decision.order = order;
        trace.step(snap, why.as_str(), &decision.order);
        return decision;
    }

    decision.reasons.add(steer_reason);
    if order[0] != first_choice {
        decision.reasons.add(Reason::Failover);
    }
    // 7. Dials, degraded factors and shifts.
    decision.order = order;
    spread(snap, health, facts, &mut decision, rng, trace);
    decision
}

/// Step 3 for a write whose write region `w` is a candidate: there, or, when
/// it is unavailable, rejected (a group that rejects) or sent there anyway
/// (nowhere else can take it).
fn to_write_region<T: Trace>(
    snap: &Snapshot,
    health: &HealthView,
    group: Option<&ResidencyGroup>,
    w: RegionIdx,
    mut decision: Decision,
    trace: &mut T,
) -> Decision {
    decision.reasons.add(Reason::Write);
    if !health.region(w).eligible() {
        if group.is_some_and(|g| g.reject) {
            decision.reasons = Reasons::only(Reason::ResidencyReject);
            trace.step(snap, "write region unavailable: reject", &[]);
            return decision;
        }
        // Nowhere else can take the write: fail open to the write region.
        decision.reasons.add(Reason::Panic);
    }
    decision.order.push(w);
    trace.step(snap, "write", &decision.order);
    decision
}

/// Steps 4 and 5: the region a read is pinned to by a valid write token (when
/// the route honours them) or an affinity cookie, if it is a candidate and
/// eligible. What became of the token goes to `token`.
fn pinned(
    route: &Route,
    health: &HealthView,
    facts: &RequestFacts,
    candidates: RegionSet,
    token: &mut TokenUse,
) -> Option<(RegionIdx, Reason)> {
    let mut pinned = None;
    if !facts.is_write && route.read_your_writes.is_some() {
        if let Some(r) = facts.write_token {
            *token = if !candidates.contains(r) {
                TokenUse::OutsideResidency
            } else if health.region(r).eligible() {
                pinned = Some((r, Reason::ReadYourWrites));
                TokenUse::Honored
            } else {
                TokenUse::RegionUnhealthy
            };
        }
    }
    if pinned.is_none() && route.affinity {
        if let Some(r) = facts.affinity {
            if candidates.contains(r) && health.region(r).eligible() {
                pinned = Some((r, Reason::Affinity));
            }
        }
    }
    pinned
}

/// What step 8 left of the steered order.
enum Healthy {
    /// `order` holds the eligible regions, in order.
    Kept,
    /// No eligible region in a group that rejects then.
    Reject,
    /// Too few eligible regions: `order` is the whole steered order, untouched.
    Panic,
}

/// Step 8: drops unhealthy and drained regions from `order`. A group whose
/// regions are all down and that allows it (`allow_outside`) takes any healthy
/// region; below the panic threshold the whole order stays (fail open).
fn keep_healthy<R: Rng + ?Sized, T: Trace>(
    snap: &Snapshot,
    health: &HealthView,
    facts: &RequestFacts,
    group: Option<&ResidencyGroup>,
    order: &mut Order,
    rng: &mut R,
    trace: &mut T,
) -> Healthy {
    // Counted first and filtered in place last: panic mode keeps the whole steered order.
    let total = order.len();
    let eligible = |r: &RegionIdx| health.region(*r).eligible();
    let mut healthy = order.iter().filter(|r| eligible(r)).count();
    if trace_enabled::<T>() {
        let kept: Vec<_> = order.iter().copied().filter(eligible).collect();
        trace.step(snap, "healthy", &kept);
    }
    let mut outside = None;
    if healthy == 0 && group.is_some_and(|g| !g.reject) {
        // `allow_outside`: the group's regions are all down, so any healthy region may serve.
        let steering = snap.routes[facts.route].steering;
        let (mut all, _) = steer::order(snap, health, facts, steering, snap.all_regions(), rng);
        all.retain(|r| eligible(r));
        trace.step(snap, "residency group down: allowed outside", &all);
        healthy = all.len();
        outside = Some(all);
    }
    let too_few = (healthy as f64) < snap.panic_threshold * total as f64;
    if healthy == 0 || too_few {
        if healthy == 0 && group.is_some_and(|g| g.reject) {
            let why = "no healthy region in the residency group: reject";
            trace.step(snap, why, &[]);
            return Healthy::Reject;
        }
        trace.step(snap, "panic: all candidates", order);
        return Healthy::Panic;
    }
    match outside {
        Some(all) => *order = all,
        None => order.retain(|r| eligible(r)),
    }
    Healthy::Kept
}

/// Step 7: dials and degraded factors spill part of the first choice's share
/// to the next; shifts move their current fraction of `from`'s traffic to `to`.
fn spread<R: Rng + ?Sized, T: Trace>(
    snap: &Snapshot,
    health: &HealthView,
    facts: &RequestFacts,
    decision: &mut Decision,
    rng: &mut R,
    trace: &mut T,
) {
    let order = &mut decision.order;
    if order.len() > 1 {
        let first = health.region(order[0]);
        let mut keep = f64::from(snap.regions[order[0]].dial) / 100.0;
        if first.health == RegionHealth::Degraded {
            keep *= snap.degraded_factor;
        }
        if keep < 1.0 && rng.gen::<f64>() >= keep {
            order.swap(0, 1);
            trace.step(snap, "dial", order);
        }
    }
    for (i, s) in snap.shifts.iter().enumerate() {
        if s.from != order[0] || !order.contains(&s.to) || !health.shift_active(i) {
            continue;
        }
        let f = s.fraction_at(facts.now_ms);
        if f > 0.0 && rng.gen::<f64>() < f {
            move_to_front(order, s.to);
            decision.reasons.add(Reason::Shift);
            trace.step(snap, "shift", order);
        }
        break;
    }
}

fn move_to_front(order: &mut [RegionIdx], r: RegionIdx) {
    if let Some(pos) = order.iter().position(|x| *x == r) {
        order[..=pos].rotate_right(1);
    }
}

/// True unless `T` is [`NoTrace`]; avoids building trace-only values on the request path.
fn trace_enabled<T: Trace>() -> bool {
    std::any::type_name::<T>() != std::any::type_name::<NoTrace>()
}

/// Regions of `set` as a list, for explain output.
pub fn region_names(snap: &Snapshot, regions: &[RegionIdx]) -> String {
    regions
        .iter()
        .map(|r| snap.regions[*r].name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
