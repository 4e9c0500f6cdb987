//! GeoIP lookups on the real country database (flat schema, continent from the
//! built-in table), GeoLite2 City (MaxMind schema with coordinates) and the committed
//! test database, and the X-Forwarded-For walk. Both run once per request.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion};
use meridian::core::config::units::Cidr;
use meridian::request::client_ip::client_ip;
use meridian::request::geo::GeoDb;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Opens a database `geoip/fetch --city` installs, fetching it first if missing.
fn fetched(file: &str) -> GeoDb {
    let path = repo(&format!("geoip/{file}"));
    if !path.exists() {
        let ok = Command::new(repo("geoip/fetch"))
            .arg("--city")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "geoip/fetch --city failed");
    }
    GeoDb::open(&path).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn lookups(c: &mut Criterion) {
    let dbs = [
        ("country-db", fetched("geo-whois-asn-country.mmdb")),
        ("geolite2-city", fetched("GeoLite2-City.mmdb")),
        (
            "test-city",
            GeoDb::open(&repo("geoip/test-city.mmdb")).unwrap(),
        ),
    ];
    for (name, db) in &dbs {
        let mut g = c.benchmark_group(format!("geo/{name}"));
        for (case, addr) in [
            (
                "hit-v4",
                if *name == "test-city" {
                    "127.0.2.7"
                } else {
                    "81.2.69.142"
                },
            ),
            (
                "hit-v6",
                if *name == "test-city" {
                    "2001:db8:2::7"
                } else {
                    "2003::1"
                },
            ),
            ("miss", "10.1.2.3"),
        ] {
            let addr = ip(addr);
            assert!(
                (db.lookup(addr).country.is_some()) == case.starts_with("hit"),
                "{name} {addr}"
            );
            g.bench_function(case, |b| b.iter(|| db.lookup_with_result(black_box(addr))));
        }
        g.finish();
    }
}

fn forwarded_for(c: &mut Criterion) {
    let trusted: Vec<Cidr> = ["10.0.0.0/8", "127.0.0.1/32"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let peer = ip("10.0.0.1");
    let xff = "203.0.113.9, 198.51.100.4, 10.1.2.3";
    assert_eq!(
        client_ip(peer, [xff].into_iter(), &trusted).ip,
        ip("198.51.100.4")
    );
    c.bench_function("client_ip/xff-3-entries", |b| {
        b.iter(|| client_ip(black_box(peer), [black_box(xff)].into_iter(), &trusted))
    });
    let untrusted = ip("192.0.2.1");
    c.bench_function("client_ip/untrusted-peer", |b| {
        b.iter(|| client_ip(black_box(untrusted), [black_box(xff)].into_iter(), &trusted))
    });
}

criterion_group!(benches, lookups, forwarded_for);
criterion_main!(benches);
