//! GeoIP: country, continent and coordinates of a client address from a MaxMind-format
//! database. Reads both the MaxMind GeoIP2/GeoLite2 schema (`country.iso_code`,
//! `continent.code`, `location`) and the flat schema of ip-location-db
//! (`country_code`, `latitude`/`longitude`); a missing continent comes from a
//! built-in ISO 3166-1 table.

use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

/// An ISO 3166-1 alpha-2 country code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country(pub [u8; 2]);

impl Country {
    /// Two ASCII letters, any case.
    pub fn parse(s: &str) -> Option<Country> {
        let b = s.as_bytes();
        (b.len() == 2 && b.iter().all(|c| c.is_ascii_alphabetic()))
            .then(|| Country([b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()]))
    }
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
    /// The continent from the built-in table; None for codes it does not know.
    pub fn continent(&self) -> Option<Continent> {
        let code = self.as_str();
        CONTINENTS
            .iter()
            .find(|(_, list)| list.split(' ').any(|c| c == code))
            .map(|(cont, _)| *cont)
    }
}

/// The seven continent codes GeoIP databases use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Continent {
    AF,
    AN,
    AS,
    EU,
    NA,
    OC,
    SA,
}

impl Continent {
    pub fn parse(s: &str) -> Option<Continent> {
        Some(match s {
            "AF" => Self::AF,
            "AN" => Self::AN,
            "AS" => Self::AS,
            "EU" => Self::EU,
            "NA" => Self::NA,
            "OC" => Self::OC,
            "SA" => Self::SA,
            _ => return None,
        })
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::AF => "AF",
            Self::AN => "AN",
            Self::AS => "AS",
            Self::EU => "EU",
            Self::NA => "NA",
            Self::OC => "OC",
            Self::SA => "SA",
        }
    }
}

/// ISO 3166-1 alpha-2 codes by continent, as MaxMind assigns them (Russia and
/// Turkey in Europe, Cyprus in Asia, the Caucasus in Asia). EU/AP are RIR
/// pseudo-codes some databases use.
const CONTINENTS: [(Continent, &str); 7] = [
    (Continent::AF, "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY MA MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA ZM ZW"),
    (Continent::AN, "AQ BV GS HM TF"),
    (Continent::AS, "AE AF AM AP AZ BD BH BN BT CC CN CX CY GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ LA LB LK MM MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TL TM TW UZ VN YE"),
    (Continent::EU, "AD AL AT AX BA BE BG BY CH CZ DE DK EE ES EU FI FO FR GB GG GI GR HR HU IE IM IS IT JE LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM TR UA VA XK"),
    (Continent::NA, "AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS MX NI PA PM PR SV SX TC TT US VC VG VI"),
    (Continent::OC, "AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV UM VU WF WS"),
    (Continent::SA, "AR BO BR CL CO EC FK GF GY PE PY SR UY VE"),
];

/// What the database says about an address.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GeoInfo {
    pub country: Option<Country>,
    pub continent: Option<Continent>,
    /// (latitude, longitude) when the database has coordinates.
    pub location: Option<(f64, f64)>,
}

/// How a lookup went: the label of `meridian_geo_lookups_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeoResult {
    /// A record with a country.
    Hit,
    /// No record (private, unannounced or unknown address) or no country in it.
    Miss,
    /// The database could not be read at that address (corrupt data).
    Error,
}

impl GeoResult {
    pub fn as_str(self) -> &'static str {
        match self {
            GeoResult::Hit => "hit",
            GeoResult::Miss => "miss",
            GeoResult::Error => "error",
        }
    }
}

/// A database that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open GeoIP database {path}: {message}")]
pub struct GeoError {
    pub path: String,
    pub message: String,
}

/// One record in either schema; every field optional so both decode.
#[derive(Deserialize, Default)]
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
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
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
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

/// An open database, read into memory once (a snapshot owns it; reload reopens it).
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
    /// `database_type` from the file's metadata, for logs and state.
    pub kind: String,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb").field("kind", &self.kind).finish()
    }
}

impl GeoDb {
    /// Opens and checks a MaxMind-format file.
    pub fn open(path: &Path) -> Result<GeoDb, GeoError> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|e| GeoError {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let kind = reader.metadata().database_type.clone();
        Ok(GeoDb { reader, kind })
    }

    /// Country, continent and location of `ip`; unknown fields are None.
    pub fn lookup(&self, ip: IpAddr) -> GeoInfo {
        self.lookup_with_result(ip).0
    }

    /// [`GeoDb::lookup`] and how it went.
    pub fn lookup_with_result(&self, ip: IpAddr) -> (GeoInfo, GeoResult) {
        let decoded = self
            .reader
            .lookup(ip.to_canonical())
            .and_then(|r| r.decode::<Record>());
        let rec = match decoded {
            Ok(Some(rec)) => rec,
            Ok(None) => return (GeoInfo::default(), GeoResult::Miss),
            Err(_) => return (GeoInfo::default(), GeoResult::Error),
        };
        let code = rec
            .country
            .as_ref()
            .and_then(|c| c.iso_code)
            .or(rec.country_code)
            .or(rec.registered_country.as_ref().and_then(|c| c.iso_code));
        let country = code.and_then(Country::parse);
        let continent = rec
            .continent
            .and_then(|c| c.code)
            .and_then(Continent::parse)
            .or_else(|| country.and_then(|c| c.continent()));
        let location = match (rec.location, rec.latitude, rec.longitude) {
            (
                Some(Location {
                    latitude: Some(lat),
                    longitude: Some(lon),
                }),
                _,
                _,
            ) => Some((lat, lon)),
            (_, Some(lat), Some(lon)) => Some((lat, lon)),
            _ => None,
        };
        let result = if country.is_some() {
            GeoResult::Hit
        } else {
            GeoResult::Miss
        };
        (
            GeoInfo {
                country,
                continent,
                location,
            },
            result,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continent_table_has_no_duplicates_and_covers_the_usual_suspects() {
        let mut seen = std::collections::HashSet::new();
        for (_, list) in CONTINENTS {
            for code in list.split(' ') {
                assert_eq!(code.len(), 2, "{code}");
                assert!(seen.insert(code), "{code} listed twice");
            }
        }
        assert!(seen.len() >= 245, "{} codes", seen.len());
        for (code, cont) in [
            ("DE", "EU"),
            ("RU", "EU"),
            ("TR", "EU"),
            ("CY", "AS"),
            ("JP", "AS"),
            ("US", "NA"),
            ("MX", "NA"),
            ("BR", "SA"),
            ("AU", "OC"),
            ("ZA", "AF"),
            ("AQ", "AN"),
        ] {
            let c = Country::parse(code).unwrap().continent().unwrap();
            assert_eq!(c.as_str(), cont, "{code}");
        }
        assert_eq!(Country::parse("ZZ").unwrap().continent(), None);
    }

    #[test]
    fn country_codes_parse_strictly() {
        assert_eq!(Country::parse("de").unwrap().as_str(), "DE");
        assert!(Country::parse("DEU").is_none());
        assert!(Country::parse("D1").is_none());
        assert!(Country::parse("").is_none());
        assert!(Continent::parse("eu").is_none());
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let e = GeoDb::open(Path::new("/nonexistent/x.mmdb")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("cannot open GeoIP database /nonexistent/x.mmdb: "));
    }
}
