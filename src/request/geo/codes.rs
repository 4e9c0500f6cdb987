//! Country (ISO 3166-1 alpha-2) and continent codes, and a built-in table from
//! one to the other for databases whose records carry no continent.

/// An ISO 3166-1 alpha-2 country code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country(pub [u8; 2]);

impl Country {
    /// Two ASCII letters, any case; anything else is None.
    pub fn parse(s: &str) -> Option<Country> {
        let b = s.as_bytes();
        (b.len() == 2 && b.iter().all(|c| c.is_ascii_alphabetic()))
            .then(|| Country([b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()]))
    }

    /// The code as text (`"??"` for a hand-built value that is not ASCII).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// The continent from the built-in table; None for codes it does not know.
    pub fn continent(&self) -> Option<Continent> {
        let [a, b] = self.0;
        if a.is_ascii_uppercase() && b.is_ascii_uppercase() {
            CONTINENT_BY_CODE[code_index(a, b)]
        } else {
            None
        }
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
    /// One of `AF AN AS EU NA OC SA`, upper case as databases write them.
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

/// ISO 3166-1 alpha-2 codes (plus XK, Kosovo) by continent, exactly as MaxMind assigns
/// them: checked against every country in GeoLite2-City, all 250 agree. So a config
/// that says `EU` means the same with a flat-schema database as with a MaxMind one
/// (Russia and Cyprus in Europe, Turkey and the Caucasus in Asia, Timor-Leste in
/// Oceania). EU and AP are RIR pseudo-codes some whois-based databases use.
const CONTINENTS: [(Continent, &str); 7] = [
    (Continent::AF, "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY MA MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA ZM ZW"),
    (Continent::AN, "AQ BV GS HM TF"),
    (Continent::AS, "AE AF AM AP AZ BD BH BN BT CC CN CX GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ LA LB LK MM MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TM TR TW UZ VN YE"),
    (Continent::EU, "AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES EU FI FO FR GB GG GI GR HR HU IE IM IS IT JE LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK"),
    (Continent::NA, "AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS MX NI PA PM PR SV SX TC TT US VC VG VI"),
    (Continent::OC, "AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TL TO TV UM VU WF WS"),
    (Continent::SA, "AR BO BR CL CO EC FK GF GY PE PY SR UY VE"),
];

const fn code_index(a: u8, b: u8) -> usize {
    (a - b'A') as usize * 26 + (b - b'A') as usize
}

/// [`CONTINENTS`] as a direct index by code, built at compile time: a lookup on the
/// request path is one array read. A malformed or repeated code fails the build.
static CONTINENT_BY_CODE: [Option<Continent>; 26 * 26] = continent_index();

const fn continent_index() -> [Option<Continent>; 26 * 26] {
    let mut table = [None; 26 * 26];
    let mut i = 0;
    while i < CONTINENTS.len() {
        let (continent, list) = CONTINENTS[i];
        let b = list.as_bytes();
        let mut j = 0;
        while j < b.len() {
            assert!(j + 1 < b.len(), "continent table: truncated code");
            assert!(
                b[j].is_ascii_uppercase() && b[j + 1].is_ascii_uppercase(),
                "continent table: codes are two upper-case letters"
            );
            assert!(
                j + 2 == b.len() || b[j + 2] == b' ',
                "continent table: codes are separated by one space"
            );
            let k = code_index(b[j], b[j + 1]);
            assert!(
                table[k].is_none(),
                "continent table: a code is listed twice"
            );
            table[k] = Some(continent);
            j += 3;
        }
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continent_table_is_complete_and_follows_maxmind() {
        let listed: Vec<&str> = CONTINENTS
            .iter()
            .flat_map(|(_, list)| list.split(' '))
            .collect();
        // 249 ISO 3166-1 codes, XK, and the RIR pseudo-codes EU and AP.
        assert_eq!(listed.len(), 252);
        assert_eq!(CONTINENT_BY_CODE.iter().flatten().count(), 252);
        for (code, cont) in [
            ("DE", "EU"),
            ("RU", "EU"),
            ("CY", "EU"),
            ("TR", "AS"),
            ("GE", "AS"),
            ("TL", "OC"),
            ("JP", "AS"),
            ("US", "NA"),
            ("MX", "NA"),
            ("PA", "NA"),
            ("BR", "SA"),
            ("AU", "OC"),
            ("ZA", "AF"),
            ("EG", "AF"),
            ("AQ", "AN"),
            ("XK", "EU"),
            ("AP", "AS"),
        ] {
            let c = Country::parse(code).unwrap().continent().unwrap();
            assert_eq!(c.as_str(), cont, "{code}");
        }
        assert_eq!(Country::parse("ZZ").unwrap().continent(), None);
        // Hand-built values outside A-Z are answered, not indexed out of bounds.
        assert_eq!(Country(*b"de").continent(), None);
        assert_eq!(Country([0xff, 0]).continent(), None);
        assert_eq!(Country([0xff, 0]).as_str(), "??");
    }

    #[test]
    fn codes_parse_strictly() {
        assert_eq!(Country::parse("de").unwrap().as_str(), "DE");
        for bad in ["DEU", "D1", "", "D", "ÄÖ", "d "] {
            assert!(Country::parse(bad).is_none(), "{bad:?}");
        }
        for c in ["AF", "AN", "AS", "EU", "NA", "OC", "SA"] {
            assert_eq!(Continent::parse(c).unwrap().as_str(), c);
        }
        assert!(Continent::parse("eu").is_none());
        assert!(Continent::parse("XX").is_none());
    }
}
