//! The MaxMind-format database reader: country, continent and coordinates of a
//! client address. Reads both the MaxMind GeoIP2/GeoLite2 schema (`country.iso_code`,
//! `continent.code`, `location`) and the flat schema of ip-location-db
//! (`country_code`, `latitude`/`longitude`); a missing continent comes from a
//! built-in ISO 3166-1 table.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::{Continent, Country};
use crate::util::lock::lock;

/// What the database says about an address.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GeoInfo {
    pub country: Option<Country>,
    pub continent: Option<Continent>,
    /// (latitude, longitude) in degrees when the database has valid coordinates.
    pub location: Option<(f64, f64)>,
}

crate::util::label_set::label_set! {
    /// How a lookup went: the label of `meridian_geo_lookups_total{result}`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum GeoResult {
        /// A record with a country.
        Hit => "hit",
        /// No record (private, unannounced or unknown address), no country in it, or an
        /// IPv6 address asked of an IPv4-only database.
        Miss => "miss",
        /// The record at that address could not be decoded (corrupt or foreign data).
        Error => "error",
    }
}

/// A database that could not be opened: the path and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot open GeoIP database {path}: {message}")]
pub struct GeoError {
    pub path: String,
    pub message: String,
}

/// One record in either schema; every field optional so both decode, and fields
/// neither schema shares (`city` is a map in one and a string in the other) are
/// never looked at.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    country: Option<Named<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<Named<'a>>,
    #[serde(borrow, default)]
    continent: Option<Coded<'a>>,
    #[serde(default)]
    location: Option<Location>,
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(default)]
    latitude: Option<Coord>,
    #[serde(default)]
    longitude: Option<Coord>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Coded<'a> {
    #[serde(borrow, default)]
    code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Location {
    #[serde(default)]
    latitude: Option<Coord>,
    #[serde(default)]
    longitude: Option<Coord>,
}

/// A coordinate stored as double (MaxMind) or float (ip-location-db): the reader
/// refuses a float where an `f64` is asked for, so take whatever number is there.
struct Coord(f64);

impl<'de> Deserialize<'de> for Coord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Number;
        impl Visitor<'_> for Number {
            type Value = Coord;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Coord, E> {
                Ok(Coord(v))
            }
            fn visit_f32<E: de::Error>(self, v: f32) -> Result<Coord, E> {
                Ok(Coord(f64::from(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Coord, E> {
                Ok(Coord(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Coord, E> {
                Ok(Coord(v as f64))
            }
        }
        d.deserialize_any(Number)
    }
}

/// Latitude and longitude when both are there and on the globe.
fn coordinates(lat: Option<Coord>, lon: Option<Coord>) -> Option<(f64, f64)> {
    let (Coord(lat), Coord(lon)) = (lat?, lon?);
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
}

impl Record<'_> {
    fn into_info(self) -> GeoInfo {
        // The country the address is in; the registrant's country only when the
        // database does not know that (anycast and satellite ranges).
        let code = self
            .country
            .and_then(|c| c.iso_code)
            .or(self.country_code)
            .or(self.registered_country.and_then(|c| c.iso_code));
        let country = code.and_then(Country::parse);
        let continent = self
            .continent
            .and_then(|c| c.code)
            .and_then(Continent::parse)
            .or_else(|| country.and_then(|c| c.continent()));
        let location = match self.location {
            Some(Location {
                latitude,
                longitude,
            }) => coordinates(latitude, longitude),
            None => None,
        }
        .or_else(|| coordinates(self.latitude, self.longitude));
        GeoInfo {
            country,
            continent,
            location,
        }
    }
}

/// An open database, read into memory once (a snapshot owns it; reload reopens it).
/// Not memory-mapped: the crate forbids `unsafe`, and a file replaced under a live
/// map would be undefined behaviour.
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
    /// Whether the tree holds IPv6; an IPv4-only one cannot answer for IPv6 clients.
    ipv6: bool,
    /// `database_type` from the file's metadata, for logs and state.
    pub kind: String,
}

impl fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoDb")
            .field("kind", &self.kind)
            .field("ipv6", &self.ipv6)
            .finish()
    }
}

/// A database file as last opened: path, mtime, size, and the database while in use.
type Opened = (PathBuf, SystemTime, u64, Weak<GeoDb>);

impl GeoDb {
    /// Reads and checks a MaxMind-format file.
    pub fn open(path: &Path) -> Result<GeoDb, GeoError> {
        let bytes = std::fs::read(path).map_err(|e| GeoError {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_bytes(bytes).map_err(|mut e| {
            e.path = path.display().to_string();
            e
        })
    }

    /// [`GeoDb::open`], but a file unchanged since the last call (same path, mtime
    /// and size) gives the database already in memory. A reload then neither reads
    /// the file again nor holds two copies for a moment: with a City database that
    /// is 60 MB a reload, and the allocator does not always give it back (the soak
    /// saw RSS step up by 10 MB after a reload that re-read a 7.8 MB file).
    pub fn open_shared(path: &Path) -> Result<Arc<GeoDb>, GeoError> {
        // Weak: a database no snapshot uses any more is not kept alive by this.
        static LAST: Mutex<Vec<Opened>> = Mutex::new(Vec::new());
        let stamp = crate::util::files::stamp(path);
        let mut last = lock(&LAST);
        if let Some((t, len)) = stamp {
            let same = last
                .iter()
                .find(|(p, pt, plen, _)| p == path && *pt == t && *plen == len);
            if let Some(db) = same.and_then(|(.., db)| db.upgrade()) {
                return Ok(db);
            }
        }
        let db = Arc::new(GeoDb::open(path)?);
        last.retain(|(p, ..)| p != path);
        if let Some((t, len)) = stamp {
            last.push((path.to_path_buf(), t, len, Arc::downgrade(&db)));
        }
        Ok(db)
    }

    /// A database already in memory (`path` in errors reads `<memory>`).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GeoDb, GeoError> {
        let reader = maxminddb::Reader::from_source(bytes).map_err(|e| GeoError {
            path: "<memory>".into(),
            message: e.to_string(),
        })?;
        let meta = reader.metadata();
        let (kind, ipv6) = (meta.database_type.clone(), meta.ip_version == 6);
        Ok(GeoDb { reader, ipv6, kind })
    }

    /// Country, continent and location of `ip`; unknown fields are None.
    pub fn lookup(&self, ip: IpAddr) -> GeoInfo {
        self.lookup_with_result(ip).0
    }

    /// [`GeoDb::lookup`] and how it went. IPv4-mapped IPv6 addresses are looked up
    /// as the IPv4 address they carry.
    pub fn lookup_with_result(&self, ip: IpAddr) -> (GeoInfo, GeoResult) {
        let ip = ip.to_canonical();
        if ip.is_ipv6() && !self.ipv6 {
            return (GeoInfo::default(), GeoResult::Miss);
        }
        let decoded = self.reader.lookup(ip).and_then(|r| r.decode::<Record>());
        match decoded {
            Ok(Some(rec)) => {
                let info = rec.into_info();
                let result = if info.country.is_some() {
                    GeoResult::Hit
                } else {
                    GeoResult::Miss
                };
                (info, result)
            }
            Ok(None) => (GeoInfo::default(), GeoResult::Miss),
            Err(_) => (GeoInfo::default(), GeoResult::Error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmdb_writer::ipnet::IpNet;
    use mmdb_writer::{IpVersion, Value, Writer};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn code(c: &str) -> Value {
        Value::map([("iso_code", c)])
    }

    /// An in-memory database holding `records`.
    fn db(version: IpVersion, records: Vec<(&str, Value)>) -> GeoDb {
        let mut w = Writer::builder("Test").ip_version(version).build();
        for (net, value) in records {
            w.insert_value(net.parse::<IpNet>().unwrap(), value)
                .unwrap();
        }
        GeoDb::from_bytes(w.to_bytes().unwrap()).unwrap()
    }

    #[test]
    fn result_labels() {
        assert_eq!(GeoResult::Error.as_str(), "error");
    }

    #[test]
    fn maxmind_schema() {
        let db = db(
            IpVersion::V6,
            vec![
                (
                    "81.2.69.0/24",
                    Value::map([
                        ("country", code("GB")),
                        ("continent", Value::map([("code", "EU")])),
                        (
                            "location",
                            Value::map([("latitude", 51.5f64), ("longitude", -0.13f64)]),
                        ),
                        (
                            "city",
                            Value::map([("names", Value::map([("en", "London")]))]),
                        ),
                    ]),
                ),
                // Anycast: no country, only the registrant's; no continent.
                (
                    "1.1.1.0/24",
                    Value::map([("registered_country", code("AU"))]),
                ),
                // Continent but no country: some satellite and RIR ranges.
                (
                    "2.2.2.0/24",
                    Value::map([("continent", Value::map([("code", "EU")]))]),
                ),
                // Coordinates off the globe are dropped, the country kept.
                (
                    "3.3.3.0/24",
                    Value::map([
                        ("country", code("us")),
                        (
                            "location",
                            Value::map([("latitude", 95.0f64), ("longitude", 10.0f64)]),
                        ),
                    ]),
                ),
                // A field of the wrong type is a decoding error, not a wrong answer.
                ("4.4.4.0/24", Value::map([("country", Value::from(7u32))])),
            ],
        );
        let (info, result) = db.lookup_with_result(ip("81.2.69.142"));
        assert_eq!(result, GeoResult::Hit);
        assert_eq!(info.country.unwrap().as_str(), "GB");
        assert_eq!(info.continent, Some(Continent::EU));
        assert_eq!(info.location, Some((51.5, -0.13)));
        // IPv4-mapped IPv6 finds the IPv4 record.
        assert_eq!(db.lookup(ip("::ffff:81.2.69.1")), info);

        let info = db.lookup(ip("1.1.1.1"));
        assert_eq!(info.country.unwrap().as_str(), "AU");
        assert_eq!(info.continent, Some(Continent::OC));
        assert_eq!(info.location, None);

        let (info, result) = db.lookup_with_result(ip("2.2.2.2"));
        assert_eq!((info.country, info.continent), (None, Some(Continent::EU)));
        assert_eq!(result, GeoResult::Miss);

        let info = db.lookup(ip("3.3.3.3"));
        assert_eq!(info.country.unwrap().as_str(), "US");
        assert_eq!(info.location, None);

        assert_eq!(
            db.lookup_with_result(ip("4.4.4.4")),
            (GeoInfo::default(), GeoResult::Error)
        );
        assert_eq!(
            db.lookup_with_result(ip("10.0.0.1")),
            (GeoInfo::default(), GeoResult::Miss)
        );
    }

    #[test]
    fn flat_schema_with_float_coordinates_in_an_ipv4_only_database() {
        let db = db(
            IpVersion::V4,
            vec![(
                "194.25.2.0/24",
                Value::map([
                    ("country_code", Value::from("DE")),
                    ("city", Value::from("Darmstadt")),
                    ("latitude", Value::from(49.87f32)),
                    ("longitude", Value::from(8.65f32)),
                ]),
            )],
        );
        let (info, result) = db.lookup_with_result(ip("194.25.2.129"));
        assert_eq!(result, GeoResult::Hit);
        assert_eq!(info.country.unwrap().as_str(), "DE");
        assert_eq!(info.continent, Some(Continent::EU));
        let (lat, lon) = info.location.unwrap();
        assert!((lat - 49.87).abs() < 1e-4 && (lon - 8.65).abs() < 1e-4);
        assert_eq!(db.lookup(ip("::ffff:194.25.2.1")).country, info.country);
        // An IPv4 tree has no answer for IPv6: a miss, not an error.
        assert_eq!(
            db.lookup_with_result(ip("2003::1")),
            (GeoInfo::default(), GeoResult::Miss)
        );
    }

    #[test]
    fn an_unchanged_file_is_shared_not_read_again() {
        let dir = std::env::temp_dir().join(format!("meridian-geo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("country.mmdb");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/test-city.mmdb");
        std::fs::copy(&src, &path).unwrap();
        let a = GeoDb::open_shared(&path).unwrap();
        let b = GeoDb::open_shared(&path).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "same file, read twice");
        // A changed file (here: a new mtime) is read again.
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() + std::time::Duration::from_secs(5))
            .unwrap();
        let c = GeoDb::open_shared(&path).unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "changed file not read again");
        // Nothing keeps an unused database alive.
        let weak = Arc::downgrade(&c);
        drop((a, b, c));
        assert!(weak.upgrade().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let e = GeoDb::open(Path::new("/nonexistent/x.mmdb")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot open GeoIP database /nonexistent/x.mmdb: "),
            "{e}"
        );
        let e = GeoDb::from_bytes(b"not a database".to_vec()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot open GeoIP database <memory>: "),
            "{e}"
        );
    }
}
