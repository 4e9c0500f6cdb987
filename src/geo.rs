//! Temporary shim until the geo branch lands (Country, Continent, GeoInfo).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country(pub [u8; 2]);
impl Country {
    pub fn parse(s: &str) -> Option<Country> {
        let b = s.as_bytes();
        (b.len() == 2 && b.iter().all(|c| c.is_ascii_alphabetic()))
            .then(|| Country([b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()]))
    }
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
    pub fn continent(&self) -> Option<Continent> {
        None
    }
}
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
#[derive(Debug, Clone, Copy, Default)]
pub struct GeoInfo {
    pub country: Option<Country>,
    pub continent: Option<Continent>,
    pub location: Option<(f64, f64)>,
}
