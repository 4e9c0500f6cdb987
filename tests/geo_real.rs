//! GeoIP over the real databases `geoip/fetch --city` installs: the CC BY 4.0
//! country database (flat `country_code` schema, no continent, no coordinates) and
//! GeoLite2 City 2018 (MaxMind schema with continent and coordinates), plus the
//! committed test database. Tests download nothing: a missing database fails with
//! the command that installs it (`scripts/test` runs it up front).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use meridian::request::geo::{Continent, GeoDb, GeoResult};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A real database `geoip/fetch --city` installs; fails, naming that command, when
/// it is missing.
fn fetched(file: &str) -> PathBuf {
    let path = repo(&format!("geoip/{file}"));
    assert!(
        path.exists(),
        "{} is missing: run `geoip/fetch --city` (scripts/test does; tests download nothing)",
        path.display()
    );
    path
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Addresses whose country both real databases agree on: well-known resolvers and
/// big networks' own ranges (Deutsche Telekom, Orange, NTT, NIC.br).
const KNOWN: [(&str, &str, Continent); 11] = [
    ("8.8.8.8", "US", Continent::NA),
    ("1.1.1.1", "AU", Continent::OC),
    ("81.2.69.142", "GB", Continent::EU),
    ("194.25.2.129", "DE", Continent::EU),
    ("80.10.246.2", "FR", Continent::EU),
    ("153.156.0.1", "JP", Continent::AS),
    ("200.160.2.3", "BR", Continent::SA),
    ("2003::1", "DE", Continent::EU),
    ("2a01:cb00::1", "FR", Continent::EU),
    ("2400:4050::1", "JP", Continent::AS),
    ("::ffff:8.8.8.8", "US", Continent::NA),
];

/// Private, loopback, CGNAT, link-local and documentation space with no country in
/// either database. Not every such range: the whois-based data places 192.168.0.0/16,
/// 198.51.100.0/24 and 203.0.113.0/24 in AU and 2001:db8::/32 in JP (geoip/README.md).
const NOWHERE: [&str; 6] = [
    "10.1.2.3",
    "127.0.0.1",
    "100.64.0.1",
    "192.0.2.1",
    "fd00::1",
    "fe80::1",
];

#[test]
fn country_database_flat_schema() {
    let db = GeoDb::open(&fetched("geo-whois-asn-country.mmdb")).unwrap();
    for (addr, country, continent) in KNOWN {
        let (info, result) = db.lookup_with_result(ip(addr));
        assert_eq!(result, GeoResult::Hit, "{addr}");
        assert_eq!(info.country.unwrap().as_str(), country, "{addr}");
        // The flat schema has no continent: it comes from the built-in table.
        assert_eq!(info.continent, Some(continent), "{addr}");
        assert_eq!(
            info.location, None,
            "{addr}: this database has no coordinates"
        );
    }
    // Whois data names the registrant's country: Google's Frankfurt range is Irish.
    let info = db.lookup(ip("2a00:1450:4001::1"));
    assert_eq!(info.country.unwrap().as_str(), "IE");
    assert_eq!(info.continent, Some(Continent::EU));
    for addr in NOWHERE {
        let (info, result) = db.lookup_with_result(ip(addr));
        assert_eq!(result, GeoResult::Miss, "{addr}");
        assert_eq!(info.country, None, "{addr}");
    }
}

#[test]
fn city_database_maxmind_schema_has_coordinates() {
    let db = GeoDb::open(&fetched("GeoLite2-City.mmdb")).unwrap();
    for (addr, country, continent) in KNOWN {
        let (info, result) = db.lookup_with_result(ip(addr));
        assert_eq!(result, GeoResult::Hit, "{addr}");
        assert_eq!(info.country.unwrap().as_str(), country, "{addr}");
        assert_eq!(info.continent, Some(continent), "{addr}");
    }
    // 81.2.69.142 is MaxMind's own example address, in London.
    let (lat, lon) = db.lookup(ip("81.2.69.142")).location.expect("coordinates");
    assert!(
        (51.0..52.0).contains(&lat) && (-1.0..1.0).contains(&lon),
        "{lat},{lon}"
    );
    // Geolocated data places Google's 2a00:1450:4001::/48 where it is, in Frankfurt.
    let info = db.lookup(ip("2a00:1450:4001::1"));
    assert_eq!(info.country.unwrap().as_str(), "DE");
    let (lat, lon) = info.location.expect("coordinates");
    assert!(
        (lat - 50.11).abs() < 0.1 && (lon - 8.68).abs() < 0.1,
        "{lat},{lon}"
    );
    let (lat, lon) = db.lookup(ip("194.25.2.129")).location.expect("coordinates");
    assert!(
        (47.0..55.5).contains(&lat) && (5.5..15.5).contains(&lon),
        "{lat},{lon} is not in Germany"
    );
    for addr in NOWHERE {
        assert_eq!(db.lookup_with_result(ip(addr)).1, GeoResult::Miss, "{addr}");
    }
}

#[test]
fn committed_test_database() {
    let db = GeoDb::open(&repo("geoip/test-city.mmdb")).unwrap();
    assert_eq!(db.kind, "meridian-Test-City");
    for (addr, country, continent, (lat, lon)) in [
        ("127.0.1.9", "US", Continent::NA, (38.90, -77.04)),
        ("127.0.2.9", "DE", Continent::EU, (52.52, 13.40)),
        ("127.0.3.9", "JP", Continent::AS, (35.68, 139.69)),
        ("127.0.4.9", "FR", Continent::EU, (48.86, 2.35)),
        ("127.0.5.9", "BR", Continent::SA, (-15.79, -47.88)),
        ("127.0.6.9", "AU", Continent::OC, (-35.28, 149.13)),
        ("127.0.7.9", "GB", Continent::EU, (51.51, -0.13)),
        ("127.0.8.9", "SG", Continent::AS, (1.35, 103.82)),
        ("192.0.2.7", "US", Continent::NA, (38.90, -77.04)),
        ("198.51.100.7", "DE", Continent::EU, (52.52, 13.40)),
        ("203.0.113.7", "JP", Continent::AS, (35.68, 139.69)),
        ("2001:db8:1::5", "US", Continent::NA, (38.90, -77.04)),
        ("2001:db8:2:ffff::5", "DE", Continent::EU, (52.52, 13.40)),
        ("2001:db8:3::5", "JP", Continent::AS, (35.68, 139.69)),
        ("::ffff:127.0.2.200", "DE", Continent::EU, (52.52, 13.40)),
    ] {
        let (info, result) = db.lookup_with_result(ip(addr));
        assert_eq!(result, GeoResult::Hit, "{addr}");
        assert_eq!(info.country.unwrap().as_str(), country, "{addr}");
        assert_eq!(info.continent, Some(continent), "{addr}");
        assert_eq!(info.location, Some((lat, lon)), "{addr}");
    }
    for addr in ["127.0.0.1", "127.0.9.1", "10.0.0.1", "2001:db8:4::1", "::1"] {
        let (info, result) = db.lookup_with_result(ip(addr));
        assert_eq!((info.country, result), (None, GeoResult::Miss), "{addr}");
    }
}

#[test]
fn fetch_is_idempotent() {
    let file = fetched("geo-whois-asn-country.mmdb");
    // With the pinned file in place the script has nothing to download; any other
    // file it would replace from npm, which a test must not do.
    let script = std::fs::read_to_string(repo("geoip/fetch")).unwrap();
    let pinned = script
        .lines()
        .find_map(|l| l.strip_prefix("COUNTRY_SHA256=\""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("COUNTRY_SHA256 in geoip/fetch");
    let digest: String = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(std::fs::read(&file).unwrap());
        d.iter().map(|b| format!("{b:02x}")).collect()
    };
    assert_eq!(
        digest,
        pinned,
        "{} is not the pinned file: run `geoip/fetch --city`",
        file.display()
    );
    let before = std::fs::metadata(&file).unwrap().modified().unwrap();
    let out = Command::new(repo("geoip/fetch")).output().unwrap();
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("geo-whois-asn-country.mmdb present"),
        "{said}"
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        before
    );
    let out = Command::new(repo("geoip/fetch"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_file_that_is_no_database_is_a_clear_error() {
    let p = std::env::temp_dir().join(format!("meridian-geo-bad-{}.mmdb", std::process::id()));
    std::fs::write(&p, b"not a database").unwrap();
    let e = GeoDb::open(&p).unwrap_err().to_string();
    std::fs::remove_file(&p).unwrap();
    assert!(
        e.starts_with(&format!("cannot open GeoIP database {}: ", p.display())),
        "{e}"
    );
}
