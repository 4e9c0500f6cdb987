//! The access log: one line per request, formatted by hand into one buffer and
//! handed to the log writer thread (`logging`), so a line costs a few hundred
//! nanoseconds on the proxy thread. The general `tracing` formatter costs several
//! times that per line (field visitors, dynamic dispatch, its own timestamp
//! formatting), which at full rate was a third of the proxy's throughput. Numbers,
//! addresses and the timestamp skip `core::fmt` too (its padding and dynamic
//! dispatch were half of what remained; `loadtest/callgrind --access-log`).
//!
//! It still obeys `RUST_LOG` (target `meridian::access`, level info) and
//! `--log-format`; lines look like `tracing`'s own (text or JSON).

use std::io::Write as _;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::routing::Reasons;

/// One request, as logged.
pub struct Entry<'a> {
    pub request_id: &'a str,
    pub client: IpAddr,
    /// This and `decision`, `region` and `origin` are written without escaping
    /// (`Fields::plain`): they come from meridian's own tables and its config.
    pub country: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// Index of the route that matched; -1 when none did (gateway-made answers).
    pub route: i64,
    pub decision: &'a str,
    /// None for gateway-made answers (no decision was taken).
    pub reasons: Option<Reasons>,
    pub region: &'a str,
    pub origin: &'a str,
    pub status: u16,
    pub bytes: usize,
    pub duration: std::time::Duration,
    pub tries: u32,
    /// A gateway-made answer's `error` (`upstream_unreachable`, `bad_request`,
    /// `client_gone`, ...); "" for the origin's answers, and then not written.
    pub error: &'a str,
}

thread_local! {
    /// Each proxy thread formats into its own reused buffer: no allocation per line.
    static LINE: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(512));
    /// The timestamp up to the seconds (`2026-11-23T16:30:07.`) for the second it
    /// was made in: recomputed once a second, not per line.
    static SECOND: std::cell::RefCell<(u64, Vec<u8>)> = const { std::cell::RefCell::new((u64::MAX, Vec::new())) };
}

/// Formats `e` (JSON when `json`) and queues it for the writer thread.
pub fn log(e: &Entry<'_>, json: bool) {
    LINE.with(|line| {
        let mut s = line.borrow_mut();
        s.clear();
        format(&mut s, e, json);
        crate::telemetry::logging::send(&s);
    });
}

/// A field name as both formats write it, made at compile time by `key!`.
struct Key {
    text: &'static str,
    json: &'static str,
}

macro_rules! key {
    ($name:literal) => {
        Key {
            text: concat!(" ", $name, "="),
            json: concat!(",\"", $name, "\":"),
        }
    };
}

fn format(s: &mut Vec<u8>, e: &Entry<'_>, json: bool) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    if json {
        s.extend_from_slice(b"{\"timestamp\":\"");
        timestamp(s, now);
        s.extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{\"message\":\"access\"");
    } else {
        timestamp(s, now);
        s.extend_from_slice(b"  INFO meridian::access: access");
    }
    let mut f = Fields { s, json };
    f.text(key!("request_id"), e.request_id);
    f.key(key!("client"));
    f.quote_if_json(|s| ip(s, e.client));
    f.plain(key!("country"), e.country);
    f.bare(key!("method"), e.method);
    f.bare(key!("path"), e.path);
    f.key(key!("route"));
    if e.route < 0 {
        f.s.push(b'-');
    }
    f.number(e.route.unsigned_abs());
    f.plain(key!("decision"), e.decision);
    f.key(key!("reasons"));
    f.quote_if_json(|s| {
        for (i, r) in e.reasons.into_iter().flat_map(Reasons::iter).enumerate() {
            if i > 0 {
                s.push(b',');
            }
            s.extend_from_slice(r.as_str().as_bytes());
        }
    });
    f.plain(key!("region"), e.region);
    f.plain(key!("origin"), e.origin);
    f.key(key!("status"));
    f.number(u64::from(e.status));
    f.key(key!("bytes"));
    f.number(e.bytes as u64);
    // Milliseconds with three decimals, from integer microseconds.
    let us = e.duration.as_micros() as u64;
    f.key(key!("duration_ms"));
    f.number(us / 1000);
    f.s.push(b'.');
    padded(f.s, us % 1000, 3);
    f.key(key!("tries"));
    f.number(u64::from(e.tries));
    if !e.error.is_empty() {
        f.plain(key!("error"), e.error);
    }
    if json {
        s.extend_from_slice(b"},\"target\":\"meridian::access\"}");
    }
    s.push(b'\n');
}

/// Appends fields as ` key=value` (text, like `tracing`'s) or `,"key":value` (JSON).
struct Fields<'s> {
    s: &'s mut Vec<u8>,
    json: bool,
}

impl Fields<'_> {
    fn key(&mut self, key: Key) {
        let k = if self.json { key.json } else { key.text };
        self.s.extend_from_slice(k.as_bytes());
    }
    /// A string, quoted and escaped in both formats.
    fn text(&mut self, key: Key, v: &str) {
        self.key(key);
        if self.json {
            json_str(self.s, v);
        } else {
            quoted(self.s, v);
        }
    }
    /// A string with nothing to escape, quoted in both formats without looking
    /// at its bytes: the country code, the decision's label, and the region
    /// name and origin address, which config validation holds to letters,
    /// digits and `-._:[]`.
    fn plain(&mut self, key: Key, v: &str) {
        debug_assert!(!v.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20));
        self.key(key);
        self.s.push(b'"');
        self.s.extend_from_slice(v.as_bytes());
        self.s.push(b'"');
    }
    /// A token (method, path): bare in text, a JSON string.
    fn bare(&mut self, key: Key, v: &str) {
        self.key(key);
        if self.json {
            json_str(self.s, v);
        } else {
            self.s.extend_from_slice(v.as_bytes());
        }
    }
    /// A value with nothing to escape (an address, reason labels), written by
    /// `write`: bare in text, a JSON string.
    fn quote_if_json(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        if self.json {
            self.s.push(b'"');
        }
        write(self.s);
        if self.json {
            self.s.push(b'"');
        }
    }
    fn number(&mut self, v: u64) {
        number(self.s, v);
    }
}

/// "00" to "99", for `number` to write two digits per division.
const PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// `v` in decimal, two digits per step.
fn number(s: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        digits[i] = b'0' + v as u8;
    }
    s.extend_from_slice(&digits[i..]);
}

/// `v` in decimal, zero-padded to `width` digits (`v` < 10^width).
fn padded(s: &mut Vec<u8>, v: u64, width: u32) {
    let mut p = 10u64.pow(width.saturating_sub(1));
    while p > 1 && v < p {
        s.push(b'0');
        p /= 10;
    }
    number(s, v);
}

/// An address as `Display` writes it; IPv4, the common case, without `core::fmt`.
pub(crate) fn ip(s: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            // Into a stack buffer, then one copy: four `number` calls and three
            // pushes each checked the Vec's capacity (twice per request: the
            // X-Forwarded-For value and the log line).
            let mut buf = [0u8; 15];
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
            s.extend_from_slice(&buf[..n]);
        }
        IpAddr::V6(v6) => {
            let _ = write!(s, "{v6}");
        }
    }
}

/// `"value"` with `"` and `\` escaped and control characters as `\u{..}`. The
/// checks below look at every byte without stopping early, which the compiler
/// turns into a vector loop: values almost never need escaping.
fn quoted(s: &mut Vec<u8>, v: &str) {
    s.push(b'"');
    if v.bytes().fold(true, |plain, b| {
        plain & (b != b'"') & (b != b'\\') & (0x20..0x7f).contains(&b)
    }) {
        // The usual case: nothing to escape, one copy.
        s.extend_from_slice(v.as_bytes());
        s.push(b'"');
        return;
    }
    for c in v.chars() {
        match c {
            '"' | '\\' => {
                s.push(b'\\');
                s.push(c as u8);
            }
            c if c.is_control() => {
                let _ = write!(s, "\\u{{{:x}}}", c as u32);
            }
            c => s.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    s.push(b'"');
}

/// A JSON string literal.
fn json_str(s: &mut Vec<u8>, v: &str) {
    s.push(b'"');
    if v.bytes().fold(true, |plain, b| {
        plain & (b != b'"') & (b != b'\\') & (b >= 0x20)
    }) {
        s.extend_from_slice(v.as_bytes());
        s.push(b'"');
        return;
    }
    for c in v.chars() {
        match c {
            '"' => s.extend_from_slice(b"\\\""),
            '\\' => s.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    s.push(b'"');
}

/// `2026-11-23T16:30:07.209039Z` for a time since the Unix epoch.
fn timestamp(s: &mut Vec<u8>, since_epoch: std::time::Duration) {
    let secs = since_epoch.as_secs();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != secs {
            let (y, m, d) = civil_from_days((secs / 86_400) as i64);
            let rem = secs % 86_400;
            cached.1.clear();
            let _ = write!(
                cached.1,
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.",
                rem / 3600,
                rem / 60 % 60,
                rem % 60
            );
            cached.0 = secs;
        }
        s.extend_from_slice(&cached.1);
    });
    padded(s, u64::from(since_epoch.subsec_micros()), 6);
    s.push(b'Z');
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn numbers_are_written_as_display_writes_them() {
        for v in [
            0,
            7,
            10,
            99,
            100,
            101,
            999,
            1000,
            12_345,
            1_000_000,
            u64::MAX,
        ] {
            let mut s = Vec::new();
            number(&mut s, v);
            assert_eq!(String::from_utf8(s).unwrap(), v.to_string());
        }
        let mut s = Vec::new();
        padded(&mut s, 42, 6);
        assert_eq!(s, b"000042");
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for a in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "127.0.0.1",
            "2a00:1450:4001::1",
            "::1",
        ] {
            let addr: IpAddr = a.parse().unwrap();
            let mut s = Vec::new();
            ip(&mut s, addr);
            assert_eq!(String::from_utf8(s).unwrap(), addr.to_string());
        }
    }

    #[test]
    fn timestamps_match_the_calendar() {
        let mut s = Vec::new();
        // 2026-11-23T16:30:07.209039Z
        timestamp(&mut s, Duration::from_micros(1_795_451_407_209_039));
        assert_eq!(String::from_utf8(s).unwrap(), "2026-11-23T16:30:07.209039Z");
        for (days, want) in [
            (0, (1970, 1, 1)),
            (11_016, (2000, 2, 29)),
            (-1, (1969, 12, 31)),
            (20_415, (2025, 11, 23)),
        ] {
            assert_eq!(civil_from_days(days), want, "{days}");
        }
    }

    #[test]
    fn values_are_escaped() {
        let mut s = Vec::new();
        quoted(&mut s, "a\"b\\c\n");
        assert_eq!(String::from_utf8(s).unwrap(), r#""a\"b\\c\u{a}""#);
        let mut j = Vec::new();
        json_str(&mut j, "a\"b\\c\n");
        assert_eq!(String::from_utf8(j).unwrap(), r#""a\"b\\c\u000a""#);
    }

    fn entry(client: IpAddr, route: i64, reasons: Option<Reasons>) -> Entry<'static> {
        Entry {
            request_id: "r-1",
            client,
            country: "DE",
            method: "GET",
            path: "/a",
            route,
            decision: "geo",
            reasons,
            region: "eu-west-1",
            origin: "10.0.0.1:80",
            status: 200,
            bytes: 1_234_567,
            duration: Duration::from_micros(12_034),
            tries: 1,
            error: "",
        }
    }

    #[test]
    fn lines_carry_every_field_in_both_formats() {
        use crate::core::routing::Reason;
        let mut reasons = Reasons::only(Reason::Geo);
        reasons.add(Reason::Failover);
        let e = entry(IpAddr::from([192, 0, 2, 10]), 0, Some(reasons));
        let mut s = Vec::new();
        format(&mut s, &e, false);
        let line = String::from_utf8(s).unwrap();
        let fields = line.split_once(" access ").unwrap().1;
        assert_eq!(
            fields,
            "request_id=\"r-1\" client=192.0.2.10 country=\"DE\" method=GET path=/a route=0 \
             decision=\"geo\" reasons=geo,failover region=\"eu-west-1\" origin=\"10.0.0.1:80\" \
             status=200 bytes=1234567 duration_ms=12.034 tries=1\n"
        );

        let e = entry("2001:db8::1".parse().unwrap(), -1, None);
        let mut j = Vec::new();
        format(&mut j, &e, true);
        let v: serde_json::Value = serde_json::from_slice(&j).unwrap();
        let f = &v["fields"];
        assert_eq!(f["client"], "2001:db8::1");
        assert_eq!(f["route"], -1);
        assert_eq!(f["reasons"], "");
        assert_eq!(f["bytes"], 1_234_567);
        assert_eq!(f["duration_ms"], 12.034);
        assert_eq!(v["target"], "meridian::access");
        let mut failed = entry(IpAddr::from([192, 0, 2, 10]), -1, None);
        failed.error = "client_gone";
        let mut s = Vec::new();
        format(&mut s, &failed, false);
        let line = String::from_utf8(s).unwrap();
        assert!(line.ends_with(" tries=1 error=\"client_gone\"\n"), "{line}");
    }
}
