//! Invariants of `decide` over a real compiled snapshot, with property tests:
//! residency is never violated, unhealthy or drained regions are never chosen
//! while an eligible candidate exists, decisions are deterministic for a seed,
//! and weighted shares, dials and shifts converge to what the config says;
//! spillover (the walk passing over full regions) never leaves the decision.

mod support;

use meridian::core::config;
use meridian::core::health::HealthRegistry;
use meridian::core::health::HealthView;
use meridian::core::routing::{
    decide, match_route, EndpointStatus, OriginView, Reason, RegionHealth, RegionStatus,
    RequestFacts, Walk,
};
use meridian::core::snapshot::{RegionIdx, Snapshot};
use meridian::request::geo::{Continent, Country};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

const CONFIG: &str = r#"
local_region: us-east-1
listeners: [ { address: 127.0.0.1:1 } ]
admin: { address: 127.0.0.1:2 }
write_region: us-east-1
regions:
  us-east-1:
    location: { lat: 38.9, lon: -77.4 }
    weight: 100
    origins: [ { address: 127.0.0.1:10 } ]
  eu-west-1:
    location: { lat: 53.3, lon: -6.3 }
    weight: 50
    origins: [ { address: 127.0.0.1:11 } ]
  eu-central-1:
    location: { lat: 50.1, lon: 8.7 }
    weight: 25
    traffic_dial: 80
    origins: [ { address: 127.0.0.1:12 } ]
  ap-southeast-1:
    location: { lat: 1.35, lon: 103.8 }
    weight: 25
    origins: [ { address: 127.0.0.1:13 } ]
routing:
  steering: geo
  geo:
    countries: { JP: ap-southeast-1, FR: eu-central-1 }
    continents: { EU: eu-west-1, NA: us-east-1, AS: ap-southeast-1 }
    default: us-east-1
  residency:
    - name: eu
      continents: [EU]
      regions: [eu-west-1, eu-central-1]
      write_region: eu-west-1
      when_unavailable: reject
    - name: jp
      countries: [JP]
      regions: [ap-southeast-1, us-east-1]
      when_unavailable: allow_outside
routes:
  - match: { path_prefix: /api }
    writes: write_region
    read_your_writes: { window: 5s }
  - match: { path_prefix: /w }
    steering: weighted
  - match: { path_prefix: /lat }
    steering: latency
  - match: { path_prefix: /near }
    steering: proximity
  - match: { path_prefix: / }
shifts:
  - name: move-use1
    from: us-east-1
    to: eu-west-1
    percent: 30
    start: 2026-11-22T10:00:00Z
    ramp: 10m
"#;

/// 2026-11-22T10:00:00Z in unix ms (the shift's start).
const SHIFT_START_MS: u64 = 1_795_341_600_000;

fn snapshot() -> Snapshot {
    let dir = support::temp_dir("routing-props");
    let path = dir.join("routing.yaml");
    std::fs::write(&path, CONFIG).unwrap();
    let loaded = config::load(&path).unwrap_or_else(|e| panic!("config: {e:?}"));
    Snapshot::build(&loaded, &HealthRegistry::default()).expect("snapshot")
}

const PATHS: [&str; 5] = ["/api/x", "/w", "/lat", "/near", "/other"];
const COUNTRIES: [(&str, Continent); 6] = [
    ("DE", Continent::EU),
    ("FR", Continent::EU),
    ("US", Continent::NA),
    ("JP", Continent::AS),
    ("BR", Continent::SA),
    ("AU", Continent::OC),
];

fn region_status() -> impl Strategy<Value = RegionStatus> {
    (0u8..3, any::<bool>(), 0u32..50_000).prop_map(|(h, drained, latency_us)| RegionStatus {
        health: match h {
            0 => RegionHealth::Healthy,
            1 => RegionHealth::Degraded,
            _ => RegionHealth::Unhealthy,
        },
        // Drains are rarer than failures, as in life; both still get covered.
        drained: drained && latency_us % 3 == 0,
        latency_us,
    })
}

#[derive(Debug, Clone)]
struct Case {
    health: Vec<RegionStatus>,
    country: Option<usize>,
    path: usize,
    is_write: bool,
    token: Option<RegionIdx>,
    affinity: Option<RegionIdx>,
    now_offset_ms: u64,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(region_status(), 4),
        prop::option::of(0..COUNTRIES.len()),
        0..PATHS.len(),
        any::<bool>(),
        prop::option::of(0usize..4),
        prop::option::of(0usize..4),
        0u64..1_200_000,
        any::<u64>(),
    )
        .prop_map(
            |(health, country, path, is_write, token, affinity, now_offset_ms, seed)| Case {
                health,
                country,
                path,
                is_write,
                token,
                affinity,
                now_offset_ms,
                seed,
            },
        )
}

fn facts(c: &Case) -> RequestFacts {
    let (country, continent) = match c.country {
        Some(i) => (Country::parse(COUNTRIES[i].0), Some(COUNTRIES[i].1)),
        None => (None, None),
    };
    RequestFacts {
        country,
        continent,
        location: None,
        route: match_route(snapshot_once(), "api.example.com", PATHS[c.path]),
        is_write: c.is_write,
        write_token: c.token,
        affinity: c.affinity,
        now_ms: SHIFT_START_MS + c.now_offset_ms,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn residency_is_never_violated(c in case()) {
        let snap = snapshot_once();
        let health = HealthView::new(c.health.iter().copied());
        let d = decide(snap, &health, &facts(&c), &mut StdRng::seed_from_u64(c.seed));
        if let Some(g) = d.residency {
            let group = &snap.residency[g];
            // `allow_outside` groups may leave only when none of their regions can serve.
            let group_down = group.regions.iter().all(|r| !c.health[r].eligible());
            if group.reject || !group_down {
                for r in &d.order {
                    prop_assert!(group.regions.contains(*r),
                        "{} left residency group {}", snap.regions[*r].name, group.name);
                }
            }
            if d.rejected() {
                prop_assert!(group.reject);
                prop_assert!(d.reasons.contains(Reason::ResidencyReject));
            }
        } else {
            prop_assert!(!d.rejected(), "only residency groups reject");
        }
    }

    #[test]
    fn ineligible_regions_come_only_in_panic(c in case()) {
        let snap = snapshot_once();
        let health = HealthView::new(c.health.iter().copied());
        let d = decide(snap, &health, &facts(&c), &mut StdRng::seed_from_u64(c.seed));
        if d.reasons.contains(Reason::Panic) {
            return Ok(());
        }
        for r in &d.order {
            prop_assert!(c.health[*r].health != RegionHealth::Unhealthy,
                "unhealthy {} chosen outside panic: {:?}", snap.regions[*r].name, d);
            prop_assert!(!c.health[*r].drained,
                "drained {} chosen outside panic: {:?}", snap.regions[*r].name, d);
        }
    }

    #[test]
    fn panic_only_when_no_candidate_is_eligible(c in case()) {
        let snap = snapshot_once();
        let health = HealthView::new(c.health.iter().copied());
        let f = facts(&c);
        let d = decide(snap, &health, &f, &mut StdRng::seed_from_u64(c.seed));
        if d.reasons.contains(Reason::Panic) && !d.reasons.contains(Reason::Write) {
            let candidates = d.residency.map_or(snap.all_regions(), |g| snap.residency[g].regions);
            prop_assert!(candidates.iter().all(|r| !c.health[r].eligible()));
        }
    }

    #[test]
    fn spillover_never_leaves_the_decision_and_writes_never_spill(
        c in case(),
        full in prop::collection::vec(any::<bool>(), 4),
    ) {
        let snap = snapshot_once();
        let health = HealthView::new(c.health.iter().copied());
        let f = facts(&c);
        let d = decide(snap, &health, &f, &mut StdRng::seed_from_u64(c.seed));
        let view = FullRegions(full.clone());
        let mut walk = Walk::new(!f.is_write);
        let mut rng = StdRng::seed_from_u64(c.seed);
        let mut first = true;
        while let Some(to) = walk.next(snap, &view, &d.order, 3, &mut rng) {
            prop_assert!(d.order.contains(&to.region), "{to:?} is not in {:?}", d.order);
            prop_assert!(!full[to.region], "a full region was given a try: {to:?}");
            if first {
                // The first try spills past exactly the full regions ahead of it.
                let at = d.order.iter().position(|r| *r == to.region).unwrap();
                prop_assert!(d.order[..at].iter().all(|r| full[*r]));
                prop_assert_eq!(to.spilled_from, (at > 0).then(|| d.order[0]));
                first = false;
            }
            if f.is_write {
                prop_assert!(to.spilled_from.is_none(), "a write spilled: {to:?}");
            }
        }
        if first && !d.order.is_empty() {
            // No try at all: only because regions were full, and the walk says so.
            let stops = if f.is_write { &d.order[..1] } else { &d.order[..] };
            prop_assert!(stops.iter().all(|r| full[*r]));
            prop_assert!(walk.blocked());
        }
    }

    #[test]
    fn same_seed_same_decision(c in case()) {
        let snap = snapshot_once();
        let health = HealthView::new(c.health.iter().copied());
        let f = facts(&c);
        let a = decide(snap, &health, &f, &mut StdRng::seed_from_u64(c.seed));
        let b = decide(snap, &health, &f, &mut StdRng::seed_from_u64(c.seed));
        prop_assert_eq!(a, b);
    }
}

/// Every origin of a region is full or none is, as `full` says; all eligible.
struct FullRegions(Vec<bool>);

impl OriginView for FullRegions {
    fn each_endpoint(
        &self,
        snap: &Snapshot,
        r: RegionIdx,
        f: &mut dyn FnMut(usize, usize, EndpointStatus),
    ) {
        for o in 0..snap.regions[r].origins.len() {
            let status = EndpointStatus {
                eligible: true,
                ewma_us: 0,
                outstanding: 0,
                full: self.0[r],
            };
            f(o, 0, status);
        }
    }
}

fn snapshot_once() -> &'static Snapshot {
    static SNAP: std::sync::OnceLock<Snapshot> = std::sync::OnceLock::new();
    SNAP.get_or_init(snapshot)
}

fn idx(snap: &Snapshot, name: &str) -> RegionIdx {
    snap.region_idx(name).unwrap()
}

/// Share of first choices per region over `n` decisions.
fn first_choice_shares(snap: &Snapshot, f: &RequestFacts, n: usize) -> Vec<f64> {
    let health = HealthView::all_healthy(snap.regions.len());
    let mut rng = StdRng::seed_from_u64(7);
    let mut counts = vec![0usize; snap.regions.len()];
    for _ in 0..n {
        counts[decide(snap, &health, f, &mut rng).order[0]] += 1;
    }
    counts.iter().map(|c| *c as f64 / n as f64).collect()
}

#[test]
fn weighted_shares_match_weights_within_one_and_a_half_points() {
    let snap = snapshot_once();
    let f = RequestFacts {
        route: match_route(snapshot_once(), "", "/w"),
        // Before the shift starts, so only weights (and the dial) act.
        now_ms: SHIFT_START_MS - 1,
        ..Default::default()
    };
    let shares = first_choice_shares(snap, &f, 20_000);
    // Weights 100/50/25/25 of 200; eu-central-1's 80% dial spills 20% of its share
    // to whichever region comes second in that request's order.
    let total = 200.0;
    let euc = 25.0 / total * 0.8;
    let spill = 25.0 / total * 0.2;
    // The second choice after eu-central-1 is drawn by weight among the other three (100/50/25).
    let expect = [
        ("us-east-1", 100.0 / total + spill * 100.0 / 175.0),
        ("eu-west-1", 50.0 / total + spill * 50.0 / 175.0),
        ("eu-central-1", euc),
        ("ap-southeast-1", 25.0 / total + spill * 25.0 / 175.0),
    ];
    for (name, want) in expect {
        let got = shares[idx(snap, name)];
        assert!(
            (got - want).abs() < 0.015,
            "{name}: got {got:.4}, want {want:.4} (shares {shares:?})"
        );
    }
}

#[test]
fn shift_moves_its_ramped_fraction() {
    let snap = snapshot_once();
    let use1 = idx(snap, "us-east-1");
    let euw1 = idx(snap, "eu-west-1");
    let us = |now_ms| RequestFacts {
        country: Country::parse("US"),
        continent: Some(Continent::NA),
        route: match_route(snapshot_once(), "", "/other"),
        now_ms,
        ..Default::default()
    };
    // Halfway through a 10-minute ramp to 30%: 15% of us-east-1's traffic moves.
    let shares = first_choice_shares(snap, &us(SHIFT_START_MS + 300_000), 20_000);
    assert!((shares[euw1] - 0.15).abs() < 0.015, "{shares:?}");
    assert!((shares[use1] - 0.85).abs() < 0.015, "{shares:?}");
    // Before the start nothing moves; after the ramp the full 30% does.
    let before = first_choice_shares(snap, &us(SHIFT_START_MS - 1), 2_000);
    assert_eq!(before[use1], 1.0);
    let after = first_choice_shares(snap, &us(SHIFT_START_MS + 3_600_000), 20_000);
    assert!((after[euw1] - 0.30).abs() < 0.015, "{after:?}");
}

#[test]
fn eu_writes_go_to_the_groups_write_region_and_reject_when_it_is_down() {
    let snap = snapshot_once();
    let euw1 = idx(snap, "eu-west-1");
    let f = RequestFacts {
        country: Country::parse("DE"),
        continent: Some(Continent::EU),
        route: match_route(snapshot_once(), "", "/api/orders"),
        is_write: true,
        ..Default::default()
    };
    let mut health = HealthView::all_healthy(snap.regions.len());
    let d = decide(snap, &health, &f, &mut StdRng::seed_from_u64(1));
    assert_eq!(d.order.as_slice(), [euw1]);
    assert_eq!(d.reasons.label(), "write");
    health.region_mut(euw1).health = RegionHealth::Unhealthy;
    let d = decide(snap, &health, &f, &mut StdRng::seed_from_u64(1));
    assert!(d.rejected());
    assert_eq!(d.reasons.label(), "residency_reject");
}

#[test]
fn read_your_writes_pins_while_the_region_is_healthy() {
    let snap = snapshot_once();
    let use1 = idx(snap, "us-east-1");
    let apse1 = idx(snap, "ap-southeast-1");
    let mut f = RequestFacts {
        country: Country::parse("JP"),
        continent: Some(Continent::AS),
        route: match_route(snapshot_once(), "", "/api/orders"),
        write_token: Some(use1),
        ..Default::default()
    };
    let mut health = HealthView::all_healthy(snap.regions.len());
    let d = decide(snap, &health, &f, &mut StdRng::seed_from_u64(1));
    assert_eq!(d.order[0], use1);
    assert_eq!(d.reasons.label(), "read_your_writes");
    health.region_mut(use1).health = RegionHealth::Unhealthy;
    let d = decide(snap, &health, &f, &mut StdRng::seed_from_u64(1));
    assert_eq!(d.order[0], apse1);
    // A token for a region outside the client's residency group is never honoured.
    f.country = Country::parse("DE");
    f.continent = Some(Continent::EU);
    let health = HealthView::all_healthy(snap.regions.len());
    let d = decide(snap, &health, &f, &mut StdRng::seed_from_u64(1));
    assert_ne!(d.order[0], use1);
}
