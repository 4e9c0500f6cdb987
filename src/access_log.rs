//! The access log: one line per request, formatted by hand into one buffer and
//! handed to the log writer thread (`logging`), so a line costs a few hundred
//! nanoseconds on the proxy thread. The general `tracing` formatter costs several
//! times that per line (field visitors, dynamic dispatch, its own timestamp
//! formatting), which at full rate was a third of the proxy's throughput.
//!
//! It still obeys `RUST_LOG` (target `meridian::access`, level info) and
//! `--log-format`; lines look like `tracing`'s own (text or JSON).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// One request, as logged.
pub struct Entry<'a> {
    pub request_id: &'a str,
    pub client: IpAddr,
    pub country: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// Index of the route that matched; -1 when none did (gateway-made answers).
    pub route: i64,
    pub decision: &'a str,
    pub reasons: &'a dyn std::fmt::Display,
    pub region: &'a str,
    pub origin: &'a str,
    pub status: u16,
    pub bytes: usize,
    pub duration: std::time::Duration,
    pub tries: u32,
}

thread_local! {
    /// Each proxy thread formats into its own reused buffer: no allocation per line.
    static LINE: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(512));
}

/// Formats `e` (JSON when `json`) and queues it for the writer thread.
pub fn log(e: &Entry<'_>, json: bool) {
    LINE.with(|line| {
        let mut s = line.borrow_mut();
        s.clear();
        format(&mut s, e, json);
        crate::logging::send(s.as_bytes());
    });
}

fn format(s: &mut String, e: &Entry<'_>, json: bool) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    if json {
        s.push_str("{\"timestamp\":\"");
        timestamp(s, now);
        s.push_str("\",\"level\":\"INFO\",\"fields\":{\"message\":\"access\"");
    } else {
        timestamp(s, now);
        s.push_str("  INFO meridian::access: access");
    }
    let mut f = Fields { s, json };
    f.text("request_id", e.request_id);
    f.shown("client", &e.client);
    f.text("country", e.country);
    f.bare("method", e.method);
    f.bare("path", e.path);
    f.number("route", &e.route);
    f.text("decision", e.decision);
    f.shown("reasons", e.reasons);
    f.text("region", e.region);
    f.text("origin", e.origin);
    f.number("status", &e.status);
    f.number("bytes", &e.bytes);
    f.number("duration_ms", &Millis(e.duration));
    f.number("tries", &e.tries);
    if json {
        s.push_str("},\"target\":\"meridian::access\"}");
    }
    s.push('\n');
}

/// Appends fields as ` key=value` (text, like `tracing`'s) or `,"key":value` (JSON).
struct Fields<'s> {
    s: &'s mut String,
    json: bool,
}

impl Fields<'_> {
    fn key(&mut self, key: &str) {
        if self.json {
            self.s.push_str(",\"");
            self.s.push_str(key);
            self.s.push_str("\":");
        } else {
            self.s.push(' ');
            self.s.push_str(key);
            self.s.push('=');
        }
    }
    /// A string, quoted and escaped in both formats.
    fn text(&mut self, key: &str, v: &str) {
        self.key(key);
        if self.json {
            json_str(self.s, v);
        } else {
            quoted(self.s, v);
        }
    }
    /// A token (method, path): bare in text, a JSON string.
    fn bare(&mut self, key: &str, v: &str) {
        self.key(key);
        if self.json {
            json_str(self.s, v);
        } else {
            self.s.push_str(v);
        }
    }
    /// A value with nothing to escape (an address, reason labels): bare in text,
    /// a JSON string.
    fn shown(&mut self, key: &str, v: &dyn std::fmt::Display) {
        self.key(key);
        if self.json {
            let _ = write!(self.s, "\"{v}\"");
        } else {
            let _ = write!(self.s, "{v}");
        }
    }
    /// A number, bare in both.
    fn number(&mut self, key: &str, v: &dyn std::fmt::Display) {
        self.key(key);
        let _ = write!(self.s, "{v}");
    }
}

/// Milliseconds with three decimals, from integer microseconds (float formatting
/// with a precision takes a slow path).
struct Millis(std::time::Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let us = self.0.as_micros();
        write!(f, "{}.{:03}", us / 1000, us % 1000)
    }
}

/// `"value"` with `"` and `\` escaped and control characters as `\u{..}`.
fn quoted(s: &mut String, v: &str) {
    s.push('"');
    if !v
        .bytes()
        .any(|b| b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b))
    {
        // The usual case: nothing to escape, one copy.
        s.push_str(v);
        s.push('"');
        return;
    }
    for c in v.chars() {
        match c {
            '"' | '\\' => {
                s.push('\\');
                s.push(c);
            }
            c if c.is_control() => {
                let _ = write!(s, "\\u{{{:x}}}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

/// A JSON string literal.
fn json_str(s: &mut String, v: &str) {
    s.push('"');
    if !v.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        s.push_str(v);
        s.push('"');
        return;
    }
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

/// `2026-11-23T16:30:07.209039Z` for a time since the Unix epoch.
fn timestamp(s: &mut String, since_epoch: std::time::Duration) {
    let secs = since_epoch.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let _ = write!(
        s,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since_epoch.subsec_micros()
    );
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
    fn timestamps_match_the_calendar() {
        let mut s = String::new();
        // 2026-11-23T16:30:07.209039Z
        timestamp(&mut s, Duration::from_micros(1_795_451_407_209_039));
        assert_eq!(s, "2026-11-23T16:30:07.209039Z");
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
        let mut s = String::new();
        quoted(&mut s, "a\"b\\c\n");
        assert_eq!(s, r#""a\"b\\c\u{a}""#);
        let mut j = String::new();
        json_str(&mut j, "a\"b\\c\n");
        assert_eq!(j, r#""a\"b\\c\u000a""#);
    }
}
