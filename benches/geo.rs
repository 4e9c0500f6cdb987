//! GeoIP lookups on the real country database (`geoip/fetch`) and the committed
//! test database, and the client-address walk over a three-entry X-Forwarded-For.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use meridian::client::client_ip;
use meridian::config::units::Cidr;
use meridian::geo::GeoDb;

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ips: Vec<IpAddr> = ["8.8.8.8", "194.25.2.129", "153.156.0.1", "2a00:1450:4001::1"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let country = root.join("geoip/geo-whois-asn-country.mmdb");
    if country.exists() {
        let db = GeoDb::open(&country).unwrap();
        let mut i = 0;
        c.bench_function("geo/lookup_country_db", |b| {
            b.iter(|| {
                i = (i + 1) % ips.len();
                db.lookup(black_box(ips[i]))
            })
        });
    } else {
        eprintln!("skipping the country database bench: run geoip/fetch first");
    }
    let test_db = GeoDb::open(&root.join("geoip/test-city.mmdb")).unwrap();
    let local: IpAddr = "127.0.2.7".parse().unwrap();
    c.bench_function("geo/lookup_test_city_db", |b| {
        b.iter(|| test_db.lookup(black_box(local)))
    });
    let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()];
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    c.bench_function("client_ip/xff_3_entries", |b| {
        b.iter(|| {
            client_ip(
                peer,
                [black_box("203.0.113.9, 198.51.100.2, 10.1.2.3")].into_iter(),
                &trusted,
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
