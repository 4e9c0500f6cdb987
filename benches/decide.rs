//! The routing decision on a realistic snapshot: 3 regions, 50 routes (the
//! matching one last), 200 mapped countries, a residency group and a shift.
//! `decide` should stay well under a microsecond, the health view included: the
//! `live_view` cases build it from the origins' atomics per call, as the proxy does.

use std::fmt::Write;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use meridian::core::config;
use meridian::core::health::{HealthRegistry, HealthView, ProbeState};
use meridian::core::routing::{decide, match_route, RequestFacts};
use meridian::core::snapshot::Snapshot;
use meridian::request::geo::{Continent, Country};
use rand::rngs::StdRng;
use rand::SeedableRng;

const REGIONS: [&str; 3] = ["ap-southeast-1", "eu-west-1", "us-east-1"];

fn config_text() -> String {
    let mut y = String::from(
        "local_region: us-east-1\nlisteners: [ { address: 127.0.0.1:1 } ]\n\
         admin: { address: 127.0.0.1:2 }\nwrite_region: us-east-1\nregions:\n",
    );
    for (i, r) in REGIONS.iter().enumerate() {
        writeln!(
            y,
            "  {r}:\n    weight: {}\n    origins: [ {{ address: 127.0.0.1:{} }}, {{ address: 127.0.0.1:{} }} ]",
            100 - i * 25,
            10 + 2 * i,
            11 + 2 * i
        )
        .unwrap();
    }
    y.push_str("routing:\n  steering: geo\n  geo:\n    countries:\n");
    for n in 0..200 {
        let code = format!(
            "{}{}",
            (b'A' + (n / 26) as u8) as char,
            (b'A' + (n % 26) as u8) as char
        );
        writeln!(y, "      {code}: {}", REGIONS[n % 3]).unwrap();
    }
    y.push_str(
        "    continents: { EU: eu-west-1, NA: us-east-1, AS: ap-southeast-1 }\n    default: us-east-1\n\
         \x20 residency:\n    - { name: eu, continents: [EU], regions: [eu-west-1], when_unavailable: reject }\nroutes:\n",
    );
    for n in 0..49 {
        writeln!(
            y,
            "  - match: {{ host: h{n}.example.com, path_prefix: /p{n} }}"
        )
        .unwrap();
    }
    y.push_str("  - match: { path_prefix: / }\n    writes: write_region\n    read_your_writes: { window: auto }\n");
    y.push_str(
        "shifts:\n  - { name: s, from: us-east-1, to: eu-west-1, percent: 10, start: 2026-01-01T00:00:00Z }\n",
    );
    y
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("meridian-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench.yaml");
    std::fs::write(&path, config_text()).unwrap();
    let loaded = config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    let snap = Snapshot::build(&loaded, &HealthRegistry::default()).unwrap();
    for o in snap.regions.iter().flat_map(|r| &r.origins) {
        for e in o.endpoints.load().iter() {
            e.health.set_state(ProbeState::Healthy);
            e.health.observe_latency_us(900);
        }
    }
    let health = HealthView::all_healthy(snap.regions.len());
    let mut rng = StdRng::seed_from_u64(1);
    let now_ms = 1_800_000_000_000;

    let us = RequestFacts {
        country: Country::parse("US"),
        continent: Some(Continent::NA),
        route: match_route(&snap, "api.example.com", "/orders/17"),
        now_ms,
        ..Default::default()
    };
    c.bench_function("decide/geo_read_last_route", |b| {
        b.iter(|| decide(&snap, &health, black_box(&us), &mut rng))
    });
    let de_write = RequestFacts {
        country: Country::parse("DE"),
        continent: Some(Continent::EU),
        is_write: true,
        ..us
    };
    c.bench_function("decide/residency_write", |b| {
        b.iter(|| decide(&snap, &health, black_box(&de_write), &mut rng))
    });
    // As the proxy does it: match the route (in `facts::gather`), read the health
    // view, decide. Comparable with the figure from before the view existed, when
    // `decide` matched the route itself.
    let as_the_proxy_does = |facts: &RequestFacts, rng: &mut StdRng| {
        let route = match_route(&snap, black_box("api.example.com"), black_box("/orders/17"));
        let facts = RequestFacts { route, ..*facts };
        let view = snap.health_view(black_box(now_ms));
        decide(&snap, &view, &facts, rng)
    };
    c.bench_function("decide/live_view/geo_read", |b| {
        b.iter(|| as_the_proxy_does(black_box(&us), &mut rng))
    });
    c.bench_function("decide/live_view/residency_write", |b| {
        b.iter(|| as_the_proxy_does(black_box(&de_write), &mut rng))
    });
    std::fs::remove_dir_all(&dir).ok();
}

criterion_group!(benches, bench);
criterion_main!(benches);
