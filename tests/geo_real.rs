//! GeoIP over the real databases `geoip/fetch --city` installs: the CC BY 4.0
//! country database (flat `country_code` schema) and GeoLite2 City (MaxMind
//! schema with coordinates), plus the committed test database.

mod support;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

use meridian::geo::{GeoDb, GeoResult};
use support::repo;

fn fetched(file: &str) -> PathBuf {
    let path = repo(&format!("geoip/{file}"));
    if !path.exists() {
        let ok = Command::new(repo("geoip/fetch"))
            .arg("--city")
            .status()
            .unwrap()
            .success();
        assert!(ok, "geoip/fetch --city failed");
    }
    path
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Addresses whose country both real databases agree on.
const KNOWN: [(&str, &str, &str); 10] = [
    ("8.8.8.8", "US", "NA"),
    ("1.1.1.1", "AU", "OC"),
    ("81.2.69.142", "GB", "EU"),
    ("194.25.2.129", "DE", "EU"),
    ("80.10.246.2", "FR", "EU"),
    ("153.156.0.1", "JP", "AS"),
    ("200.160.2.3", "BR", "SA"),
    ("2a00:1450:4001::1", "IE", "EU"),
    ("2003::1", "DE", "EU"),
    ("::ffff:8.8.8.8", "US", "NA"),
];

#[test]
fn country_database_flat_schema() {
    let db = GeoDb::open(&fetched("geo-whois-asn-country.mmdb")).unwrap();
    for (addr, country, continent) in KNOWN {
        let (info, result) = db.lookup_with_result(ip(addr));
        assert_eq!(result, GeoResult::Hit, "{addr}");
        assert_eq!(info.country.unwrap().as_str(), country, "{addr}");
        // The flat schema has no continent: it comes from the built-in table.
        assert_eq!(info.continent.unwrap().as_str(), continent, "{addr}");
    }
    for private in ["10.1.2.3", "127.0.0.1", "fd00::1"] {
        let (info, result) = db.lookup_with_result(ip(private));
        assert_eq!(result, GeoResult::Miss, "{private}");
        assert_eq!(info.country, None);
    }
}

#[test]
fn city_database_maxmind_schema_has_coordinates() {
    let db = GeoDb::open(&fetched("GeoLite2-City.mmdb")).unwrap();
    let info = db.lookup(ip("81.2.69.142"));
    assert_eq!(info.country.unwrap().as_str(), "GB");
    assert_eq!(info.continent.unwrap().as_str(), "EU");
    let (lat, lon) = info.location.expect("coordinates");
    assert!(
        (49.0..60.0).contains(&lat) && (-8.0..2.0).contains(&lon),
        "{lat},{lon}"
    );
    let info = db.lookup(ip("8.8.8.8"));
    assert_eq!(info.country.unwrap().as_str(), "US");
    assert!(info.location.is_some());
}

#[test]
fn committed_test_database() {
    let db = GeoDb::open(&repo("geoip/test-city.mmdb")).unwrap();
    for (addr, country, continent) in [
        ("127.0.1.9", "US", "NA"),
        ("127.0.2.9", "DE", "EU"),
        ("127.0.3.9", "JP", "AS"),
        ("127.0.6.9", "AU", "OC"),
        ("198.51.100.7", "DE", "EU"),
        ("2001:db8:3::5", "JP", "AS"),
    ] {
        let info = db.lookup(ip(addr));
        assert_eq!(info.country.unwrap().as_str(), country, "{addr}");
        assert_eq!(info.continent.unwrap().as_str(), continent, "{addr}");
        assert!(info.location.is_some());
    }
    let (info, result) = db.lookup_with_result(ip("127.0.0.1"));
    assert_eq!((info.country, result), (None, GeoResult::Miss));
    let berlin = db.lookup(ip("127.0.2.1")).location.unwrap();
    assert!((berlin.0 - 52.52).abs() < 0.01 && (berlin.1 - 13.40).abs() < 0.01);
}

#[test]
fn a_file_that_is_no_database_is_a_clear_error() {
    let dir = support::temp_dir("geo-bad");
    let p = dir.join("bad.mmdb");
    std::fs::write(&p, b"not a database").unwrap();
    let e = GeoDb::open(&p).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("cannot open GeoIP database {}: ", p.display())),
        "{e}"
    );
}
