//! `Snapshot::build` for a large config: 50 regions × 16 origins (the most a region may have), 1,000 routes,
//! 250 country mappings. Reload pays this once per file change.

use std::fmt::Write;

use criterion::{criterion_group, criterion_main, Criterion};
use meridian::core::config;
use meridian::core::health::HealthRegistry;
use meridian::core::snapshot::Snapshot;

fn large_config() -> String {
    let mut y = String::from(
        "local_region: r00\nlisteners: [ { address: 127.0.0.1:1 } ]\nadmin: { address: 127.0.0.1:2 }\nregions:\n",
    );
    for r in 0..50 {
        writeln!(y, "  r{r:02}:\n    origins:").unwrap();
        for o in 0..16 {
            writeln!(y, "      - {{ address: \"127.0.{r}.{o}:8080\" }}").unwrap();
        }
    }
    y.push_str("routing:\n  geo:\n    countries:\n");
    for n in 0..250 {
        let code = format!(
            "{}{}",
            (b'A' + (n / 26) as u8) as char,
            (b'A' + (n % 26) as u8) as char
        );
        writeln!(y, "      {code}: r{:02}", n % 50).unwrap();
    }
    y.push_str("routes:\n");
    for n in 0..1000 {
        writeln!(
            y,
            "  - match: {{ host: h{n}.example.com, path_prefix: /p{n} }}"
        )
        .unwrap();
    }
    y
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("meridian-snap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("large.yaml");
    std::fs::write(&path, large_config()).unwrap();
    let registry = HealthRegistry::default();
    c.bench_function("config/load_large", |b| {
        b.iter(|| config::load(&path).unwrap())
    });
    let loaded = config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    c.bench_function("snapshot/build_large", |b| {
        b.iter(|| Snapshot::build(&loaded, &registry).unwrap())
    });
    std::fs::remove_dir_all(&dir).ok();
}

criterion_group!(benches, bench);
criterion_main!(benches);
