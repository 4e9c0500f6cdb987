//! Small value types of the config file: durations (`250ms`, `5s`, `10m`),
//! sizes (`10MiB`), percentages (`10%`) and CIDR blocks (`10.0.0.0/8`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

/// A non-negative duration written as `<number><unit>`, unit one of `ms s m h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_secs(s: u64) -> Self {
        Duration(std::time::Duration::from_secs(s))
    }
    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }
    pub fn get(self) -> std::time::Duration {
        self.0
    }
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

/// Longer durations are refused: a timer this far out is a typo, and adding much
/// more to an `Instant` overflows (a panic in tokio's timers).
const MAX_DURATION_SECS: u64 = 1_000_000_000;

impl FromStr for Duration {
    type Err = String;
    /// jiff's "friendly" duration format (`250ms`, `1.5s`, `10m`, `1h 30m`; also ISO
    /// 8601 `PT5S`); negative durations are refused.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("a duration like `250ms`, `5s`, `10m` or `1h`, found `{s}`");
        let signed: jiff::SignedDuration = s.trim().parse().map_err(|_| bad())?;
        let d = std::time::Duration::try_from(signed).map_err(|_| bad())?;
        if d.as_secs() > MAX_DURATION_SECS {
            return Err(bad());
        }
        Ok(Duration(d))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = StringOrNumber::deserialize(d)?.0;
        s.parse()
            .map_err(|e| serde::de::Error::custom(format!("expected {e}")))
    }
}

/// A request rate written `N/s`, `N/m` or `N/h` (N a whole number, 1 or more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Requests per `period_secs`.
    pub count: u32,
    /// 1, 60 or 3600.
    pub period_secs: u32,
}

impl Rate {
    /// Requests per second, rounded up (at least 1).
    pub fn per_second_ceil(self) -> u32 {
        self.count.div_ceil(self.period_secs).max(1)
    }
}

/// The largest `N` a rate takes: a billion a second is already more than any
/// one instance serves.
pub const MAX_RATE_COUNT: u32 = 1_000_000_000;

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("a rate like `100/s`, `600/m` or `1000/h`, found `{s}`");
        let (count, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let period_secs = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return Err(bad()),
        };
        if !(1..=MAX_RATE_COUNT).contains(&count) {
            return Err(format!(
                "a rate of 1 to {MAX_RATE_COUNT} requests per unit, found `{s}`"
            ));
        }
        Ok(Rate { count, period_secs })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period_secs {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e| serde::de::Error::custom(format!("expected {e}")))
    }
}

/// A percentage 0..=100, written `10%` or `10`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Percent(pub f64);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = StringOrNumber::deserialize(d)?.0;
        let n: f64 = s.trim().trim_end_matches('%').parse().map_err(|_| {
            serde::de::Error::custom(format!("expected a percentage like `10%`, found `{s}`"))
        })?;
        if !(0.0..=100.0).contains(&n) {
            return Err(serde::de::Error::custom(format!(
                "expected a percentage between 0% and 100%, found `{s}`"
            )));
        }
        Ok(Percent(n))
    }
}

/// An origin's `max_inflight`: a number, or `adaptive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxInflight {
    Fixed(u32),
    Adaptive,
}

impl<'de> Deserialize<'de> for MaxInflight {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = StringOrNumber::deserialize(d)?.0;
        if s.trim() == "adaptive" {
            return Ok(MaxInflight::Adaptive);
        }
        match s.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(MaxInflight::Fixed(n)),
            _ => Err(serde::de::Error::custom(format!(
                "expected a number of requests above 0 or `adaptive`, found `{s}`"
            ))),
        }
    }
}

/// Accepts a YAML string or number as text, so `jitter: 10` and `jitter: 10%` both parse.
struct StringOrNumber(String);

impl<'de> Deserialize<'de> for StringOrNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            U(u64),
            F(f64),
        }
        Ok(StringOrNumber(match Raw::deserialize(d)? {
            Raw::S(s) => s,
            Raw::U(u) => u.to_string(),
            Raw::F(f) => f.to_string(),
        }))
    }
}

/// A size in bytes, written as a number of bytes or `<number><unit>` with unit
/// one of `B`, `KiB`, `MiB`, `GiB` (powers of 1024) or `KB`, `MB`, `GB` (of 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("a size like `512KiB`, `10MiB` or `1GiB`, found `{s}`");
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let n: u64 = number.parse().map_err(|_| bad())?;
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => return Err(bad()),
        };
        n.checked_mul(scale).map(ByteSize).ok_or_else(bad)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = StringOrNumber::deserialize(d)?.0;
        s.parse()
            .map_err(|e| serde::de::Error::custom(format!("expected {e}")))
    }
}

/// An IP network `addr/prefix`; a bare address means a single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(pub IpNet);

impl Cidr {
    /// True when `ip` lies inside this network. IPv4-mapped IPv6 addresses match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        s.parse::<IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
            .map(Cidr)
            .map_err(|_| format!("expected a network like `10.0.0.0/8` or an address, found `{s}`"))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        let b = |s: &str| s.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(b("10MiB"), Ok(10 << 20));
        assert_eq!(b("512 KiB"), Ok(512 << 10));
        assert_eq!(b("1GB"), Ok(1_000_000_000));
        assert_eq!(b("1234"), Ok(1234));
        assert_eq!(b("7B"), Ok(7));
        assert!(b("10XB").is_err() && b("-1MiB").is_err() && b("MiB").is_err());
        assert!(b("99999999999999GiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(
            "250ms".parse::<Duration>().unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!("5s".parse::<Duration>().unwrap(), Duration::from_secs(5));
        assert_eq!("10m".parse::<Duration>().unwrap(), Duration::from_secs(600));
        assert_eq!(
            "1.5s".parse::<Duration>().unwrap(),
            Duration::from_millis(1500)
        );
        // Spellings jiff's friendly format adds; harmless, and what people type.
        assert_eq!(
            "1h 30m".parse::<Duration>().unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            " 250 ms".parse::<Duration>().unwrap(),
            Duration::from_millis(250)
        );
        let too_long = format!("{}s", MAX_DURATION_SECS + 1);
        for bad in [
            "",
            "5",
            "-5s",
            "5 parsecs",
            "s",
            "1e400s",
            "soon",
            &too_long,
        ] {
            assert!(bad.parse::<Duration>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rates() {
        let r = |s: &str| s.parse::<Rate>().map(|r| (r.count, r.period_secs));
        assert_eq!(r("100/s"), Ok((100, 1)));
        assert_eq!(r(" 600 / m "), Ok((600, 60)));
        assert_eq!(r("1/h"), Ok((1, 3600)));
        for bad in [
            "",
            "100",
            "0/s",
            "-1/s",
            "1.5/s",
            "100/d",
            "100/sec",
            "/s",
            "5000000000/s",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
        assert_eq!("100/s".parse::<Rate>().unwrap().per_second_ceil(), 100);
        assert_eq!("30/m".parse::<Rate>().unwrap().per_second_ceil(), 1);
        assert_eq!("90/m".parse::<Rate>().unwrap().per_second_ceil(), 2);
        assert_eq!("600/m".parse::<Rate>().unwrap().to_string(), "600/m");
    }

    #[test]
    fn cidrs() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        let host: Cidr = "127.0.0.1".parse().unwrap();
        assert!(host.contains("127.0.0.1".parse().unwrap()));
        assert!(!host.contains("127.0.0.2".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!(!v6.contains("10.1.2.3".parse().unwrap()));
        assert_eq!(host.to_string(), "127.0.0.1/32");
        assert_eq!(
            " 10.0.0.0/8 ".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        for bad in ["10.0.0.0/33", "nope/8", "10.0.0.0/", "2001:db8::/129", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}

/// An RFC 3339 instant (`2026-11-22T10:00:00Z`, `...T11:00:00.5+01:00`), as unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn unix_millis(self) -> i64 {
        self.0
    }
}

impl FromStr for Timestamp {
    type Err = String;
    /// `time`'s RFC 3339 parser, with the date and time separated by `T`, `t` or a
    /// space (RFC 3339 §5.6; `time` would take any character there). A leap second
    /// (`23:59:60`, only where one can be) counts as the last instant of `:59`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected an RFC 3339 time like `2026-11-22T10:00:00Z`, found `{s}`");
        if !matches!(s.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
            return Err(bad());
        }
        let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map_err(|_| bad())?;
        let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
        Ok(Timestamp(i64::try_from(ms).map_err(|_| bad())?))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod timestamp_tests {
    use super::Timestamp;

    #[test]
    fn parses_rfc3339() {
        let t = |s: &str| s.parse::<Timestamp>().map(|t| t.0);
        assert_eq!(t("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(t("2026-11-22T10:00:00Z"), Ok(1_795_341_600_000));
        assert_eq!(t("2026-11-22T11:00:00.25+01:00"), Ok(1_795_341_600_250));
        assert_eq!(t("2024-02-29T00:00:00-00:30"), Ok(1_709_166_600_000));
        assert_eq!(t("2026-11-22t10:00:00z"), Ok(1_795_341_600_000));
        assert_eq!(t("2026-11-22 10:00:00Z"), Ok(1_795_341_600_000));
        assert_eq!(t("1969-12-31T23:59:59.9995Z"), Ok(-1));
        assert_eq!(t("2016-12-31T23:59:60Z"), Ok(1_483_228_799_999));
        for bad in [
            "2026-11-22X10:00:00Z",
            "2026-11-22T10:00:60Z",
            "2026-11-22T10:00:0é+01:00",
            "2026-11-22T10:00:00+24:00",
            "2026-11-22",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-22T10:00:00",
            "2026-11-22T10:00:00+1:00",
            "x026-11-22T10:00:00Z",
            "2026-11-22T10:00:00.Z",
        ] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }
}
