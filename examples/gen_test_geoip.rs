//! Writes `geoip/test-city.mmdb`: a tiny GeoIP2-City-schema database over loopback
//! and documentation ranges, so tests and the demo geolocate without a download.
//! Run: `cargo run --example gen_test_geoip` (the output is committed).

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use mmdb_writer::ipnet::IpNet;
use mmdb_writer::Writer;
use serde::Serialize;

#[derive(Serialize)]
struct Code {
    iso_code: &'static str,
}

#[derive(Serialize)]
struct Continent {
    code: &'static str,
}

#[derive(Serialize)]
struct Location {
    latitude: f64,
    longitude: f64,
}

#[derive(Serialize)]
struct City {
    country: Code,
    continent: Continent,
    location: Location,
    city: BTreeMap<&'static str, BTreeMap<&'static str, &'static str>>,
}

/// (network, country, continent, capital, lat, lon)
const NETWORKS: [(&str, &str, &str, &str, f64, f64); 14] = [
    ("127.0.1.0/24", "US", "NA", "Washington", 38.90, -77.04),
    ("127.0.2.0/24", "DE", "EU", "Berlin", 52.52, 13.40),
    ("127.0.3.0/24", "JP", "AS", "Tokyo", 35.68, 139.69),
    ("127.0.4.0/24", "FR", "EU", "Paris", 48.86, 2.35),
    ("127.0.5.0/24", "BR", "SA", "Brasilia", -15.79, -47.88),
    ("127.0.6.0/24", "AU", "OC", "Canberra", -35.28, 149.13),
    ("127.0.7.0/24", "GB", "EU", "London", 51.51, -0.13),
    ("127.0.8.0/24", "SG", "AS", "Singapore", 1.35, 103.82),
    ("192.0.2.0/24", "US", "NA", "Washington", 38.90, -77.04),
    ("198.51.100.0/24", "DE", "EU", "Berlin", 52.52, 13.40),
    ("203.0.113.0/24", "JP", "AS", "Tokyo", 35.68, 139.69),
    ("2001:db8:1::/48", "US", "NA", "Washington", 38.90, -77.04),
    ("2001:db8:2::/48", "DE", "EU", "Berlin", 52.52, 13.40),
    ("2001:db8:3::/48", "JP", "AS", "Tokyo", 35.68, 139.69),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A fixed build time keeps the output byte-for-byte reproducible.
    let mut w = Writer::builder("meridian-Test-City")
        .description(&[(
            "en",
            "meridian test data: loopback and documentation ranges",
        )])
        .build_epoch(UNIX_EPOCH + Duration::from_secs(1_704_067_200))
        .build();
    for (net, country, continent, capital, lat, lon) in NETWORKS {
        let record = City {
            country: Code { iso_code: country },
            continent: Continent { code: continent },
            location: Location {
                latitude: lat,
                longitude: lon,
            },
            city: BTreeMap::from([("names", BTreeMap::from([("en", capital)]))]),
        };
        w.insert(net.parse::<IpNet>()?, &record)?;
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/test-city.mmdb");
    std::fs::write(&out, w.to_bytes()?)?;
    println!("wrote {} ({} networks)", out.display(), NETWORKS.len());
    Ok(())
}
