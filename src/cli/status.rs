//! `meridian status`: the live view an operator reads at 3 a.m., as a compact table
//! from a running gateway's admin API (`/admin/state` and `/admin/events`).
//!
//! [`render`] and [`check`] are pure (a state document in, text or a verdict out)
//! and unit-tested; [`run`] only fetches and prints.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::services::api::{OriginDoc, RegionDoc, State};

/// Events shown under the table.
const LAST_EVENTS: usize = 10;

/// What `meridian status` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// `http://HOST:PORT` of the admin listener.
    pub admin: String,
    pub watch: bool,
    pub json: bool,
    pub check: bool,
    /// Colours (only when stdout is a terminal).
    pub color: bool,
}

/// Exit status of `--check` when the gateway cannot be asked at all (1 means
/// asked, and not ready or a region unhealthy).
pub const UNREACHABLE: u8 = 2;

/// The admin URL: `--admin` as given (`http://` added when missing), else the
/// admin address of the config file (a wildcard address is asked on loopback),
/// else `http://127.0.0.1:9901`.
pub fn admin_url(admin: Option<&str>, config: Option<&Path>) -> Result<String, String> {
    if let Some(a) = admin {
        let a = a.trim_end_matches('/');
        return Ok(if a.contains("://") {
            a.to_string()
        } else {
            format!("http://{a}")
        });
    }
    let Some(path) = config else {
        return Ok("http://127.0.0.1:9901".into());
    };
    let loaded = crate::core::config::load(path).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let mut addr = loaded.config.admin.address;
    if addr.port() == 0 {
        // The kernel chose the port at start: only the gateway knows it.
        return Err(format!(
            "{}: admin.address {addr} has port 0, chosen at start: pass --admin \
             with the address the gateway bound (`admin` in its --ready-file)",
            path.display()
        ));
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Ok(format!("http://{addr}"))
}

/// `Ok` when the gateway is ready and no region is unhealthy, else why not.
pub fn check(state: &State) -> Result<(), String> {
    let mut problems = Vec::new();
    if !state.ready {
        problems.push("not ready".to_string());
    }
    for (name, r) in &state.regions {
        if r.health == "unhealthy" {
            problems.push(format!("region {name} unhealthy"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(", "))
    }
}

/// ANSI colour for a state word, when colours are on.
struct Paint(bool);

impl Paint {
    fn word(&self, w: &str, width: usize) -> String {
        let padded = format!("{w:<width$}");
        if !self.0 {
            return padded;
        }
        let code = match w {
            "healthy" | "pass" | "up" | "in" | "no" | "ready" => "32",
            "degraded" | "holding" | "hold" | "starting" | "unknown" => "33",
            "unhealthy" | "fail" | "down" | "ejected" | "yes" | "aborted" | "NOT READY" => "31",
            _ => return padded,
        };
        format!("\x1b[{code}m{padded}\x1b[0m")
    }
    fn bold(&self, s: &str) -> String {
        if self.0 {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// `HH:MM:SS` (UTC) of a unix time in ms.
fn clock(ms: u64) -> String {
    let s = ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn ms(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x >= 1000.0 => format!("{:.1}s", x / 1000.0),
        Some(x) if x >= 10.0 => format!("{x:.0}ms"),
        Some(x) => format!("{x:.1}ms"),
    }
}

fn ratio(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn rps(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// The table for `state` (an `/admin/state` document) and `events` (newest first),
/// as of `now` (unix ms).
pub fn render(state: &State, events: &[Value], color: bool, now: u64) -> String {
    let p = Paint(color);
    let mut out = String::new();
    let cfg = &state.config;
    let sha = &cfg.sha256;
    let ready = if state.ready { "ready" } else { "NOT READY" };
    let _ = writeln!(
        out,
        "{} {}  local {}  config {} (loaded {})",
        p.bold("meridian"),
        p.word(ready, 0),
        state.local_region,
        &sha[..sha.len().min(12)],
        clock(cfg.loaded_at_unix_ms),
    );
    match &cfg.last_reload_error {
        Some(e) => {
            let _ = writeln!(
                out,
                "last reload error: {}",
                p.word(&e.replace('\n', "; "), 0)
            );
        }
        None => out.push_str("last reload error: none\n"),
    }

    out.push('\n');
    let _ = writeln!(
        out,
        "{}",
        p.bold(&format!(
            "{:<18} {:<9} {:>6} {:>9} {:>5} {:<7} {:>8} {:>8} {:>8} {:>7} {:>8} {:>8}",
            "REGION",
            "HEALTH",
            "WEIGHT",
            "EFFECTIVE",
            "DIAL",
            "DRAINED",
            "LATENCY",
            "LAG",
            "REQ/S",
            "ERRORS",
            "P50",
            "P99"
        ))
    );
    let _ = writeln!(
        out,
        "{}",
        p.bold(&format!(
            "  {:<24} {:<9} {:<7} {:>8} {:>7} {:>8} {:>8}  {}",
            "ORIGIN", "PROBE", "EJECTED", "REQ/S", "ERRORS", "P50", "P99", "LAST PROBE ERROR"
        ))
    );
    for (name, r) in &state.regions {
        let lm = &r.last_minute;
        let local = if state.local_region == *name {
            " *"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{:<18} {} {:>6} {:>9.1} {:>4}% {} {:>8} {:>8} {:>8} {:>7} {:>8} {:>8}",
            format!("{name}{local}"),
            p.word(&r.health, 9),
            r.weight,
            r.effective_weight,
            r.traffic_dial,
            p.word(if r.drained { "yes" } else { "no" }, 7),
            // 0 = no latency measured yet.
            ms(Some(r.latency_ms).filter(|l| *l > 0.0)),
            ms(r.replication_lag_ms.map(f64::from)),
            rps(lm.rps),
            ratio(lm.error_ratio),
            ms(lm.p50_ms),
            ms(lm.p99_ms),
        );
        region_capacity(&mut out, r);
        for o in &r.origins {
            let why =
                o.last_probe
                    .as_ref()
                    .map_or(String::new(), |l| match (&l.error, &l.detail) {
                        (Some(e), Some(d)) => format!("{e}: {d}"),
                        (Some(e), None) => e.clone(),
                        _ => String::new(),
                    });
            let ejected = if o.ejected {
                let left = format!("{}s", o.ejected_for_ms / 1000);
                format!("{} {left:<4}", p.word("yes", 0))
            } else {
                p.word("no", 7)
            };
            let olm = &o.last_minute;
            let row = format!(
                "  {:<24} {} {} {:>8} {:>7} {:>8} {:>8}  {}",
                o.address,
                p.word(&o.probe_state, 9),
                ejected,
                rps(olm.rps),
                ratio(olm.error_ratio),
                ms(olm.p50_ms),
                ms(olm.p99_ms),
                why
            );
            let _ = writeln!(out, "{}", row.trim_end());
            addresses(&mut out, &p, o);
            capacity(&mut out, o);
        }
    }

    if !state.shifts.is_empty() {
        out.push('\n');
        let _ = writeln!(out, "{}", p.bold("SHIFTS"));
        for s in &state.shifts {
            let done = if s.final_percent > 0.0 {
                (s.progress * 100.0 / s.final_percent).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let filled = (done * 20.0).round() as usize;
            let status = if s.aborted {
                p.word("aborted", 0)
            } else if s.active {
                "active".into()
            } else {
                "pending".into()
            };
            let _ = writeln!(
                out,
                "  {:<24} {} -> {}  [{}{}] {:.0}% of {:.0}%  {}",
                s.name,
                s.from,
                s.to,
                "#".repeat(filled),
                ".".repeat(20 - filled),
                s.progress * 100.0,
                s.final_percent,
                status
            );
        }
    }

    let dns = &state.dns;
    if dns.configured {
        out.push('\n');
        let synced = dns.last_sync_unix_ms.map_or("never".into(), |t| {
            format!("{}s ago", now.saturating_sub(t) / 1000)
        });
        let _ = writeln!(
            out,
            "{}  {}{}, last sync {synced}: {}{}",
            p.bold("DNS"),
            if dns.enabled { "enabled" } else { "disabled" },
            if dns.dry_run { " (dry run)" } else { "" },
            dns.last_result.as_deref().unwrap_or("-"),
            dns.last_error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
        for rec in &dns.records {
            let vote = dns.votes.get(&rec.region);
            let current = rec.current_weight.map_or("-".into(), |w| w.to_string());
            let _ = writeln!(
                out,
                "  {:<18} configured {:>3}  current {:>3}  desired {:>3}  {}  vote {} (down {}, up {}, fresh {}, quorum {})",
                rec.region,
                rec.configured_weight,
                current,
                rec.desired_weight,
                p.word(&rec.why, 9),
                p.word(vote.map_or("-", |v| v.verdict.as_str()), 4),
                vote.map_or(0, |v| v.down_held),
                vote.map_or(0, |v| v.up_held),
                vote.map_or(0, |v| v.fresh_views),
                vote.map_or(0, |v| v.quorum),
            );
        }
    }

    out.push('\n');
    let _ = writeln!(out, "{}", p.bold("EVENTS (newest first)"));
    if events.is_empty() {
        out.push_str("  none\n");
    }
    for e in events.iter().take(LAST_EVENTS) {
        let change = match (e["from"].as_str(), e["to"].as_str()) {
            (Some(f), Some(t)) => format!("{f} -> {t}"),
            (None, Some(t)) => t.to_string(),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {}  {:<18} {:<28} {}  {}",
            e["at_unix_ms"].as_u64().map_or("-".into(), clock),
            e["kind"].as_str().unwrap_or("?"),
            e["subject"].as_str().unwrap_or("?"),
            change,
            e["cause"].as_str().unwrap_or("")
        );
    }
    out
}

/// One `GET` of `path` from the admin listener at `admin`, as JSON.
pub async fn fetch(admin: &str, path: &str) -> Result<Value, String> {
    use http_body_util::{BodyExt, Empty};
    let uri: http::Uri = format!("{admin}{path}")
        .parse()
        .map_err(|e| format!("{admin}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{admin}: only http:// admin URLs are supported"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{admin}: no host"))?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    let work = async {
        let stream = tokio::net::TcpStream::connect((authority.host(), port))
            .await
            .map_err(|e| format!("cannot reach {admin}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<bytes::Bytes>>(
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .map_err(|e| format!("{admin}: {e}"))?;
        tokio::spawn(conn);
        let req = http::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(http::header::HOST, authority.as_str())
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{admin}{path}: {e}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{admin}{path}: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "{admin}{path}: {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{admin}{path}: {e}"))
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .map_err(|_| format!("{admin}: no answer within 5 s"))?
}

/// Fetches, prints and (with `--check`) judges; the process exit status.
pub async fn run(o: &Options) -> u8 {
    loop {
        let state = match fetch(&o.admin, "/admin/state").await.and_then(|v| {
            serde_json::from_value::<State>(v).map_err(|e| {
                format!(
                    "{}/admin/state is not the schema this meridian reads (another version?): {e}",
                    o.admin
                )
            })
        }) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("meridian status: {e}");
                if !o.watch {
                    return UNREACHABLE;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if o.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&state).unwrap_or_default()
            );
        } else {
            let events = fetch(&o.admin, &format!("/admin/events?limit={LAST_EVENTS}"))
                .await
                .ok()
                .and_then(|v| v["events"].as_array().cloned())
                .unwrap_or_default();
            let table = render(&state, &events, o.color, crate::util::clock::now_ms());
            if o.watch && o.color {
                // Home and clear: the table redraws in place.
                print!("\x1b[H\x1b[2J{table}");
            } else {
                print!("{table}");
            }
        }
        if !o.watch {
            return match (o.check, check(&state)) {
                (true, Err(why)) => {
                    eprintln!("meridian status: {why}");
                    1
                }
                _ => 0,
            };
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A region's requests in flight against its capacity, and what spilled out of
/// it, into it or was shed over the last minute: when it has a limit or
/// something overflowed.
fn region_capacity(out: &mut String, r: &RegionDoc) {
    let c = &r.capacity;
    let m = &c.last_minute;
    let overflowed = m.spilled_out + m.spilled_in + m.shed > 0;
    if c.max_inflight.is_none() && !overflowed {
        return;
    }
    let load = match c.max_inflight {
        Some(max) => format!("{}/{max}", c.in_flight),
        None => format!("{} (no limit)", c.in_flight),
    };
    let _ = writeln!(
        out,
        "  in flight {load}, last minute: spilled out {}/s, in {}/s, shed {}/s",
        rps(m.spilled_out_rps),
        rps(m.spilled_in_rps),
        rps(m.shed_rps),
    );
}

/// An origin's limits against what it has in flight, when it has any.
fn capacity(out: &mut String, o: &OriginDoc) {
    let c = &o.capacity;
    let mut parts = Vec::new();
    if let Some(max) = c.max_inflight {
        let how = match c.unloaded_latency_ms {
            Some(ms) if c.adaptive => format!(" (adaptive, unloaded {})", self::ms(Some(ms))),
            _ if c.adaptive => " (adaptive)".to_string(),
            _ => String::new(),
        };
        parts.push(format!("{}/{max} in flight{how}", o.outstanding));
    }
    if let Some(rps) = c.max_rps {
        parts.push(format!("at most {rps} rps"));
    }
    if !parts.is_empty() {
        let _ = writeln!(out, "    capacity {}", parts.join(", "));
    }
}

/// An origin's addresses, one row each, when it has a name or more than one
/// (an IP origin's one address is its own row), and what its name's last
/// lookup found when that failed.
fn addresses(out: &mut String, p: &Paint, o: &OriginDoc) {
    if o.dns.name.is_none() && o.addresses.len() <= 1 {
        return;
    }
    for a in &o.addresses {
        let ejected = if a.ejected {
            format!("ejected {}s", a.ejected_for_ms / 1000)
        } else {
            String::new()
        };
        let row = format!(
            "    {:<22} {} {:>4} in flight  {}",
            a.address,
            p.word(&a.probe_state, 9),
            a.outstanding,
            ejected
        );
        let _ = writeln!(out, "{}", row.trim_end());
    }
    let Some(name) = &o.dns.name else {
        return;
    };
    if o.addresses.is_empty() {
        let _ = writeln!(out, "    no address: {name} has not resolved");
    }
    if let Some(result @ ("empty" | "error")) = o.dns.last_result.as_deref() {
        let why = o.dns.last_error.as_deref().unwrap_or("");
        let _ = writeln!(out, "    dns {result}: {why} (keeping the last addresses)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minute(rps: f64, error_ratio: f64, p50: Value, p99: Value) -> Value {
        json!({"window_s": 60.0, "requests": 0, "errors": 0, "rps": rps, "error_ratio": error_ratio,
            "p50_ms": p50, "p99_ms": p99})
    }

    fn region_capacity(in_flight: u64, max: Option<u64>, out_rps: f64, shed_rps: f64) -> Value {
        json!({"in_flight": in_flight, "max_inflight": max, "last_minute": {"window_s": 60.0,
            "spilled_out": (out_rps * 60.0) as u64, "spilled_in": 0, "shed": (shed_rps * 60.0) as u64,
            "spilled_out_rps": out_rps, "spilled_in_rps": 0.0, "shed_rps": shed_rps}})
    }

    fn address(address: &str, state: &str, outstanding: u64, ejected_for_ms: u64) -> Value {
        json!({"address": address, "probe_state": state, "eligible": ejected_for_ms == 0 && state == "healthy",
            "latency_ms": 1.0, "outstanding": outstanding, "ejected": ejected_for_ms > 0,
            "ejected_for_ms": ejected_for_ms, "times_ejected": 0, "consecutive_probe_passes": 0,
            "consecutive_probe_failures": 0, "consecutive_live_failures": 0, "last_probe": null,
            "replication_lag_ms": null})
    }

    fn state() -> State {
        let mut eu = address("10.0.0.9:443", "unhealthy", 0, 29_000);
        eu["last_probe"] = json!({"result": "fail", "error": "refused", "detail": "Connection refused (os error 111)",
            "at_unix_ms": 3_725_000u64, "duration_ms": 1});
        let mut eu_origin = eu.clone();
        eu_origin["last_minute"] = minute(2.5, 0.25, json!(3.2), json!(1500.0));
        eu_origin["addresses"] = json!([eu]);
        eu_origin["dns"] = json!({"name": null, "resolved": true, "last_result": null, "last_error": null,
            "last_lookup_unix_ms": 0, "lookups": 0});
        let mut us_origin = address("alb.us.test:443", "healthy", 3, 0);
        us_origin["last_minute"] = minute(120.0, 0.0, json!(null), json!(null));
        us_origin["addresses"] = json!([
            address("10.1.0.1:443", "healthy", 3, 0),
            address("10.1.0.2:443", "unhealthy", 0, 9_000)
        ]);
        eu_origin["capacity"] = json!({"max_inflight": null, "adaptive": false, "unloaded_latency_ms": null, "max_rps": null});
        us_origin["capacity"] = json!({"max_inflight": 40, "adaptive": true, "unloaded_latency_ms": 12.5, "max_rps": 500});
        us_origin["dns"] = json!({"name": "alb.us.test", "resolved": true, "last_result": "error",
            "last_error": "no answer in time", "last_lookup_unix_ms": 3_729_000u64, "lookups": 7});
        serde_json::from_value(json!({
            "config": {"path": "/etc/m.yaml", "sha256": "0123456789abcdef0123", "loaded_at_unix_ms": 3_723_000u64, "last_reload_error": "m.yaml:3:1: regions: bad\nsecond"},
            "local_region": "us-east-1",
            "ready": true,
            "log_lines_dropped": 0,
            "regions": {
                "eu-west-1": {"weight": 50, "effective_weight": 0.0, "traffic_dial": 100, "drained": false, "health": "unhealthy",
                    "latency_ms": 12.5, "replication_lag_ms": 300,
                    "last_minute": minute(2.5, 0.25, json!(3.2), json!(1500.0)),
                    "capacity": region_capacity(0, None, 0.0, 0.0),
                    "origins": [eu_origin]},
                "us-east-1": {"weight": 100, "effective_weight": 100.0, "traffic_dial": 100, "drained": false, "health": "healthy",
                    "latency_ms": 1.0, "replication_lag_ms": null,
                    "last_minute": minute(120.0, 0.0, json!(null), json!(null)),
                    "capacity": region_capacity(3, Some(40), 2.5, 0.1),
                    "origins": [us_origin]}
            },
            "shifts": [{"name": "move", "from": "us-east-1", "to": "eu-west-1", "progress": 0.15, "final_percent": 30.0, "active": true, "aborted": false}],
            "dns": {"configured": true, "enabled": true, "dry_run": false, "last_sync_unix_ms": 3_700_000u64, "last_result": "changed",
                "last_error": null, "consecutive_errors": 0, "last_change_id": null, "last_comment": null,
                "records": [{"region": "eu-west-1", "set_identifier": "eu-west-1", "configured_weight": 50, "current_weight": 0, "desired_weight": 0, "why": "down"}],
                "votes": {"eu-west-1": {"verdict": "down", "down_held": 2, "up_held": 0, "fresh_views": 3, "quorum": 2}},
                "views": []}
        }))
        .unwrap()
    }

    #[test]
    fn renders_what_an_operator_reads() {
        let events = [
            json!({"at_unix_ms": 3_725_000u64, "kind": "origin_health", "subject": "eu-west-1/10.0.0.9:443",
            "from": "healthy", "to": "unhealthy", "cause": "probe failed: refused"}),
        ];
        let t = render(&state(), &events, false, 3_730_000);
        assert!(!t.contains('\x1b'), "no colours when asked for none");
        // Lines compared with their runs of spaces squeezed to one.
        let line = |start: &str| {
            t.lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no line {start}:\n{t}"))
        };
        assert_eq!(
            line("meridian"),
            "meridian ready local us-east-1 config 0123456789ab (loaded 01:02:03)"
        );
        assert_eq!(
            line("last reload"),
            "last reload error: m.yaml:3:1: regions: bad; second"
        );
        assert_eq!(
            line("eu-west-1 "),
            "eu-west-1 unhealthy 50 0.0 100% no 12ms 300ms 2.5 25.0% 3.2ms 1.5s"
        );
        assert_eq!(
            line("us-east-1 *"),
            "us-east-1 * healthy 100 100.0 100% no 1.0ms - 120 0.0% - -"
        );
        assert_eq!(
            line("10.0.0.9:443"),
            "10.0.0.9:443 unhealthy yes 29s 2.5 25.0% 3.2ms 1.5s refused: Connection refused (os error 111)"
        );
        assert_eq!(
            line("move"),
            "move us-east-1 -> eu-west-1 [##########..........] 15% of 30% active"
        );
        assert_eq!(line("DNS"), "DNS enabled, last sync 30s ago: changed");
        assert_eq!(
            line("eu-west-1 configured"),
            "eu-west-1 configured 50 current 0 desired 0 down vote down (down 2, up 0, fresh 3, quorum 2)"
        );
        assert_eq!(
            line("01:02:05"),
            "01:02:05 origin_health eu-west-1/10.0.0.9:443 healthy -> unhealthy probe failed: refused"
        );
        assert_eq!(line("10.1.0.1:443"), "10.1.0.1:443 healthy 3 in flight");
        assert_eq!(
            line("10.1.0.2:443"),
            "10.1.0.2:443 unhealthy 0 in flight ejected 9s"
        );
        assert_eq!(
            line("capacity"),
            "capacity 3/40 in flight (adaptive, unloaded 12ms), at most 500 rps"
        );
        assert_eq!(
            line("in flight"),
            "in flight 3/40, last minute: spilled out 2.5/s, in 0.0/s, shed 0.1/s"
        );
        assert_eq!(
            t.matches("in flight").count(),
            4,
            "the unlimited region that overflowed nothing has no line: {t}"
        );
        assert_eq!(
            line("dns error"),
            "dns error: no answer in time (keeping the last addresses)"
        );
        // Regions in name order, origins under theirs.
        assert!(t.find("eu-west-1 ").unwrap() < t.find("10.0.0.9").unwrap());
        assert!(t.find("10.0.0.9").unwrap() < t.find("us-east-1 *").unwrap());
    }

    #[test]
    fn colours_only_when_asked() {
        let t = render(&state(), &[], true, 0);
        assert!(t.contains("\x1b[31munhealthy"));
        assert!(t.contains("\x1b[32mhealthy"));
        assert!(render(&state(), &[], false, 0).contains("  none"));
    }

    #[test]
    fn check_fails_on_unready_or_unhealthy() {
        let mut s = state();
        assert_eq!(check(&s), Err("region eu-west-1 unhealthy".into()));
        s.regions.get_mut("eu-west-1").unwrap().health = "degraded".into();
        assert_eq!(check(&s), Ok(()));
        s.ready = false;
        assert_eq!(check(&s), Err("not ready".into()));
    }

    #[test]
    fn admin_url_from_flag_or_default() {
        assert_eq!(
            admin_url(Some("127.0.0.1:9901/"), None).unwrap(),
            "http://127.0.0.1:9901"
        );
        assert_eq!(admin_url(Some("http://h:1"), None).unwrap(), "http://h:1");
        assert_eq!(admin_url(None, None).unwrap(), "http://127.0.0.1:9901");
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.yaml");
        assert!(admin_url(None, Some(&demo))
            .unwrap()
            .starts_with("http://127.0.0.1:"));
    }
}
