//! `meridian check` end to end: the shipped configs pass, and each kind of broken
//! config fails with exit code 1 and the exact `FILE:LINE:COL: path: message`.

mod support;

use std::path::Path;
use std::process::Command;

use support::{repo, temp_dir};

const BASE: &str = "\
local_region: us-east-1
listeners:
  - address: 127.0.0.1:8080
admin:
  address: 127.0.0.1:9901
regions:
  us-east-1:
    origins:
      - address: 127.0.0.1:18081
  eu-west-1:
    origins:
      - address: 127.0.0.1:18082
";

fn check(path: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("check")
        .arg("-c")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `text` as `NAME.yaml`, checks it, and expects exit 1 with exactly `want`
/// (lines without the file name, which is prepended).
fn broken(name: &str, text: &str, want: &[&str]) {
    let dir = temp_dir("check");
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    let (code, _, stderr) = check(&path);
    let want: Vec<String> = want
        .iter()
        .map(|w| format!("{}:{w}", path.display()))
        .collect();
    let got: Vec<&str> = stderr.lines().collect();
    assert_eq!(code, 1, "{name}: exit code; stderr:\n{stderr}");
    assert_eq!(got, want, "{name}");
}

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

#[test]
fn shipped_configs_pass() {
    for f in ["config/meridian.yaml", "config/demo.yaml"] {
        let (code, stdout, stderr) = check(&repo(f));
        assert_eq!(code, 0, "{f}: {stderr}");
        assert!(stdout.contains(": ok (sha256 "), "{stdout}");
        assert!(stdout.contains("regions       3"), "{stdout}");
    }
}

#[test]
fn config_may_come_from_the_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("check")
        .env("MERIDIAN_CONFIG", repo("config/demo.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn unreadable_file() {
    let (code, _, stderr) = check(Path::new("/nonexistent/meridian.yaml"));
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with("/nonexistent/meridian.yaml:0:0: cannot read: "),
        "{stderr}"
    );
}

#[test]
fn syntax_error() {
    broken(
        "syntax",
        "local_region: [us-east-1\nlisteners: []\n",
        &["2:10: YAML syntax error: illegal placement of ':' indicator"],
    );
}

#[test]
fn unknown_field_points_at_its_key() {
    broken(
        "unknown-field",
        &BASE.replace("  us-east-1:\n", "  us-east-1:\n    wieght: 5\n"),
        &["8:5: regions.us-east-1.wieght: unknown field `wieght`, expected one of `location`, `weight`, `traffic_dial`, `origins`"],
    );
    broken(
        "unknown-top",
        &with("debug_header: true\n"),
        &["13:1: debug_header: unknown field `debug_header`, expected one of `local_region`, `listeners`, `admin`, `client_ip`, `geoip`, `write_region`, `regions`, `health`, `outlier_detection`, `routing`, `timeouts`, `limits`, `http2`, `routes`, `shifts`, `sessions`, `dns`, `resolver`, `debug_headers`, `shutdown`, `access_log`, `overload`"],
    );
}

#[test]
fn a_routes_max_body_is_a_size_above_zero() {
    broken(
        "max-body-zero",
        &with("routes:\n  - limits: { max_body: 0 }\n"),
        &["14:25: routes[0].limits.max_body: must be more than 0 (leave it out for no limit)"],
    );
    broken(
        "client-limits",
        &with("limits: { max_headers: 0, max_header_bytes: 4KiB, max_body: 0 }\nhttp2: { max_concurrent_streams: 0 }\n"),
        &[
            "13:24: limits.max_headers: must be between 1 and 10000, found 0",
            "13:45: limits.max_header_bytes: must be between 8KiB and 1MiB",
            "13:61: limits.max_body: must be more than 0 (leave it out for no limit)",
            "14:34: http2.max_concurrent_streams: must be greater than zero",
        ],
    );
    broken(
        "max-body-unit",
        &with("routes:\n  - limits: { max_body: 10XB }\n"),
        &["14:25: routes[0].limits.max_body: expected a size like `512KiB`, `10MiB` or `1GiB`, found `10XB`"],
    );
}

#[test]
fn a_routes_rate_limit_is_checked_field_by_field() {
    let route = |limit: &str| with(&format!("routes:\n  - rate_limit: {{ {limit} }}\n"));
    broken(
        "rate-unit",
        &route("key: client_ip, rate: 100/d"),
        &["14:41: routes[0].rate_limit.rate: expected a rate like `100/s`, `600/m` or `1000/h`, found `100/d`"],
    );
    broken(
        "rate-zero",
        &route("key: client_ip, rate: 0/s"),
        &["14:41: routes[0].rate_limit.rate: expected a rate of 1 to 1000000000 requests per unit, found `0/s`"],
    );
    broken(
        "rate-key",
        &route("key: cookie, rate: 1/s"),
        &["14:24: routes[0].rate_limit.key: expected `client_ip`, `country` or `header:NAME`, found `cookie`"],
    );
    broken(
        "rate-header",
        &route("key: \"header:X Bad\", rate: 1/s"),
        &["14:24: routes[0].rate_limit.key: `X Bad` is not a valid header name"],
    );
    broken(
        "rate-burst",
        &route("key: client_ip, rate: 1/s, burst: 0"),
        &["14:53: routes[0].rate_limit.burst: must be between 1 and 1000000, found 0"],
    );
    broken(
        "rate-missing",
        &route("key: client_ip"),
        &["14:5: routes[0].rate_limit: missing field `rate`"],
    );
}

#[test]
fn capacity_limits_are_checked() {
    let origin = |extra: &str| {
        BASE.replace(
            "      - address: 127.0.0.1:18081\n",
            &format!("      - {{ address: 127.0.0.1:18081, {extra} }}\n"),
        )
    };
    broken(
        "max-inflight-zero",
        &origin("max_inflight: 0"),
        &["9:51: regions.us-east-1.origins[0].max_inflight: expected a number of requests above 0 or `adaptive`, found `0`"],
    );
    broken(
        "max-inflight-word",
        &origin("max_inflight: lots"),
        &["9:51: regions.us-east-1.origins[0].max_inflight: expected a number of requests above 0 or `adaptive`, found `lots`"],
    );
    broken(
        "max-rps-zero",
        &origin("max_rps: 0"),
        &["9:46: regions.us-east-1.origins[0].max_rps: must be at least 1 (to take an origin out of service, drain its region or remove it)"],
    );
    broken(
        "overload",
        &with("overload: { queue_timeout: 30s, max_queued: -1 }\nroutes:\n  - priority: urgent\n"),
        &["13:45: overload.max_queued: invalid value: integer `-1`, expected u32"],
    );
    broken(
        "priority",
        &with("routes:\n  - priority: urgent\n"),
        &["14:15: routes[0].priority: unknown variant `urgent`, expected one of `sheddable`, `normal`, `critical`"],
    );
    broken(
        "queue-timeout",
        &with("overload: { queue_timeout: 30s }\n"),
        &["13:28: overload.queue_timeout: must be at most 10s, found 30s (a request held longer is better shed: its client retries elsewhere)"],
    );
    let dir = temp_dir("check");
    let ok = dir.join("adaptive.yaml");
    std::fs::write(&ok, origin("max_inflight: adaptive, max_rps: 100")).unwrap();
    let (code, _, stderr) = check(&ok);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn wrong_types() {
    broken(
        "bad-socket",
        &BASE.replace("127.0.0.1:8080", "nope"),
        &["3:14: listeners[0].address: invalid socket address syntax"],
    );
    broken(
        "bad-duration",
        &with("health: { interval: soon }\n"),
        &["13:21: health.interval: expected a duration like `250ms`, `5s`, `10m` or `1h`, found `soon`"],
    );
}

#[test]
fn unknown_regions() {
    broken(
        "unknown-region",
        &with("write_region: mars-1\nrouting:\n  geo: { countries: { DE: eu-central-1 } }\n"),
        &[
            "13:15: write_region: unknown region `mars-1` (regions are: eu-west-1, us-east-1)",
            "15:27: routing.geo.countries.DE: unknown region `eu-central-1` (regions are: eu-west-1, us-east-1)",
        ],
    );
}

#[test]
fn regions_and_origins() {
    broken(
        "no-origins",
        &with("  ap-southeast-1:\n    origins: []\n"),
        &["14:5: regions.ap-southeast-1.origins: a region needs at least one origin"],
    );
    broken(
        "bad-origin",
        &BASE.replace("127.0.0.1:18082", "127.0.0.1"),
        &["12:18: regions.eu-west-1.origins[0].address: no port: expected `host:port`, found `127.0.0.1`"],
    );
    broken(
        "weight-dial",
        &with("  ap-southeast-1: { weight: 2000, traffic_dial: 150, origins: [ { address: \"h:1\" } ] }\n"),
        &[
            "13:29: regions.ap-southeast-1.weight: must be between 0 and 1000, found 2000",
            "13:49: regions.ap-southeast-1.traffic_dial: must be a percentage between 0 and 100, found 150",
        ],
    );
    // 65 regions: one more than a region set holds.
    let more: String = (0..63)
        .map(|i| format!("  r{i}: {{ origins: [ {{ address: \"h:1\" }} ] }}\n"))
        .collect();
    broken(
        "too-many-regions",
        &with(&more),
        &["6:1: regions: at most 64 regions are supported, found 65"],
    );
}

#[test]
fn durations_and_thresholds() {
    broken(
        "zero-duration",
        &with("timeouts: { connect: 0s }\nhealth: { unhealthy_threshold: 0, timeout: 5s, interval: 5s }\n"),
        &[
            "13:22: timeouts.connect: must be greater than zero",
            "14:32: health.unhealthy_threshold: must be at least 1",
            "14:44: health.timeout: must be shorter than health.interval (5s)",
        ],
    );
}

#[test]
fn a_key_given_twice_is_named_where_it_is() {
    // YAML 1.2 allows no duplicate key; silently keeping one would hide a typo.
    broken(
        "dup-key",
        &BASE.replace(
            "  eu-west-1:\n",
            "  eu-west-1:\n    weight: 10\n    weight: 20\n",
        ),
        &["12:5: regions.eu-west-1.weight: duplicate entry with key `weight`"],
    );
}

#[test]
fn duplicate_listeners() {
    broken(
        "dup-listener",
        &BASE.replace(
            "  - address: 127.0.0.1:8080\n",
            "  - address: 127.0.0.1:8080\n  - address: 127.0.0.1:8080\n  - address: 127.0.0.1:9901\n",
        ),
        &[
            "4:14: listeners[1].address: address 127.0.0.1:8080 is used twice (listeners and admin must differ)",
            "5:14: listeners[2].address: address 127.0.0.1:9901 is used twice (listeners and admin must differ)",
        ],
    );
}

/// Port 0 is a different free port at each bind: two of them on one address are
/// no clash (`meridian run --ready-file` reports what was bound).
#[test]
fn port_zero_may_repeat() {
    let dir = temp_dir("check");
    let path = dir.join("port-zero.yaml");
    let text = BASE
        .replace(
            "127.0.0.1:8080\n",
            "127.0.0.1:0\n  - address: 127.0.0.1:0\n",
        )
        .replace("127.0.0.1:9901", "127.0.0.1:0");
    std::fs::write(&path, text).unwrap();
    let (code, stdout, stderr) = check(&path);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("listeners 127.0.0.1:0, 127.0.0.1:0; admin 127.0.0.1:0"),
        "{stdout}"
    );
}

#[test]
fn residency_write_region_outside_its_group() {
    broken(
        "residency",
        &with("routing:\n  residency:\n    - { name: eu, continents: [EU], regions: [eu-west-1], write_region: us-east-1 }\n"),
        &["15:73: routing.residency[0].write_region: `us-east-1` is not one of the group's regions: its writes would leave the group"],
    );
    broken(
        "residency-codes",
        &with("routing:\n  residency:\n    - { name: eu, continents: [Europe], countries: [de], regions: [eu-west-1] }\n"),
        &[
            "15:32: routing.residency[0].continents[0]: `Europe` is not a continent code (AF AN AS EU NA OC SA)",
            "15:53: routing.residency[0].countries[0]: `de` is not an upper-case ISO 3166-1 alpha-2 country code",
        ],
    );
}

#[test]
fn overlapping_shifts() {
    broken(
        "shifts",
        &with(
            "shifts:\n  - { name: a, from: us-east-1, to: eu-west-1, percent: 10, start: 2026-11-22T10:00:00Z, ramp: 10m }\n  - { name: b, from: us-east-1, to: eu-west-1, percent: 120, start: 2026-11-22T10:05:00Z }\n",
        ),
        &[
            "15:57: shifts[1].percent: must be between 0 and 100, found 120",
            "15:69: shifts[1].start: overlaps shift `a` (shifts[0]) on the same regions",
        ],
    );
}

#[test]
fn every_error_at_once_in_file_order() {
    let dir = temp_dir("check");
    let path = dir.join("many.yaml");
    std::fs::write(
        &path,
        with("write_region: mars-1\nhealth: { healthy_threshold: 0 }\nrouting: { retries: { attempts: 0 }, panic_threshold: 2 }\n"),
    )
    .unwrap();
    let (code, _, stderr) = check(&path);
    assert_eq!(code, 1);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    let positions: Vec<(usize, usize)> = lines
        .iter()
        .map(|l| {
            let mut parts = l.rsplit_once(".yaml:").unwrap().1.split(':');
            (
                parts.next().unwrap().parse().unwrap(),
                parts.next().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted, "{stderr}");
}

#[test]
fn warnings_do_not_fail_the_check() {
    let dir = temp_dir("check");
    let path = dir.join("warn.yaml");
    std::fs::write(
        &path,
        with("write_region: us-east-1\nroutes:\n  - match: { path_prefix: /api }\n    writes: write_region\n    read_your_writes: { window: 2s }\n"),
    )
    .unwrap();
    let (code, _, stderr) = check(&path);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!("warning: {}:17:5: routes[0].read_your_writes: `sessions` is not configured: tokens are signed with a random per-process key and will not verify on other instances or after a restart", path.display())
    );
}

#[test]
fn proxy_protocol_listeners_are_accepted() {
    let dir = temp_dir("check");
    let path = dir.join("proxy-protocol.yaml");
    std::fs::write(
        &path,
        BASE.replace(
            "  - address: 127.0.0.1:8080\n",
            "  - address: 127.0.0.1:8080\n    proxy_protocol: true\n",
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = check(&path);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(": ok (sha256 "), "{stdout}");
}

#[test]
fn origin_protocol_must_match_its_tls() {
    let origins = |us: &str, eu: &str| {
        BASE.replace(
            "      - address: 127.0.0.1:18081\n",
            &format!("      - address: 127.0.0.1:18081\n{us}"),
        )
        .replace(
            "      - address: 127.0.0.1:18082\n",
            &format!("      - address: 127.0.0.1:18082\n{eu}"),
        )
    };
    broken(
        "protocol-tls",
        &origins(
            "        protocol: h2\n",
            "        protocol: h2c\n        tls: { sni: eu.example.test }\n",
        ),
        &[
            "10:19: regions.us-east-1.origins[0].protocol: `h2` is HTTP/2 over TLS and needs the origin's `tls` (use `h2c` for cleartext HTTP/2)",
            "14:19: regions.eu-west-1.origins[0].protocol: `h2c` is cleartext HTTP/2 and cannot have `tls` (use `h2` for HTTP/2 over TLS)",
        ],
    );
    broken(
        "protocol-name",
        &origins("        protocol: http2\n", ""),
        &["10:19: regions.us-east-1.origins[0].protocol: unknown variant `http2`, expected one of `http1`, `h2`, `h2c`"],
    );
    // Each protocol with the transport it needs passes.
    let dir = temp_dir("check");
    let path = dir.join("protocols.yaml");
    std::fs::write(
        &path,
        origins(
            "        protocol: h2c\n      - address: 127.0.0.1:18083\n        protocol: http1\n",
            "        protocol: h2\n        tls: { sni: eu.example.test }\n",
        ),
    )
    .unwrap();
    let (code, _, stderr) = check(&path);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn an_origins_host_header_must_be_a_host() {
    // It becomes the `Host` (HTTP/2: `:authority`) of every request and probe.
    broken(
        "host-header",
        &BASE.replace(
            "      - address: 127.0.0.1:18081\n",
            "      - address: 127.0.0.1:18081\n        host_header: \"api.example.com\\r\\nx-evil: 1\"\n",
        ),
        &["10:22: regions.us-east-1.origins[0].host_header: expected a host name, optionally with `:port`, found \"api.example.com\\r\\nx-evil: 1\""],
    );
}

/// Every field of the schema is in the annotated reference, so it documents them all.
#[test]
fn reference_config_names_every_field() {
    let types = std::fs::read_to_string(repo("src/core/config/types.rs")).unwrap();
    let reference = std::fs::read_to_string(repo("config/meridian.yaml")).unwrap();
    let mut missing = Vec::new();
    let mut rename = None;
    for line in types.lines().map(str::trim) {
        if let Some(r) = line.strip_prefix("#[serde(default, rename = \"") {
            rename = r.split('"').next().map(String::from);
            continue;
        }
        let Some(field) = line
            .strip_prefix("pub ")
            .and_then(|l| l.split_once(':'))
            .map(|(f, _)| f)
            .filter(|f| f.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        else {
            continue;
        };
        let name = rename.take().unwrap_or_else(|| field.to_string());
        if !reference.contains(&format!("{name}:")) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "config/meridian.yaml lacks {missing:?}");
}

#[test]
fn dns_records_are_checked() {
    broken(
        "dns",
        &with(
            "\
dns:
  enabled: true
  route53:
    hosted_zone_id: Z1
    record_name: api.example.com.
    records:
      us-east-1: { set_identifier: a, weight: 300, values: [203.0.113.300] }
      eu-west-1: { set_identifier: a, weight: 5, values: [203.0.113.2] }
",
        ),
        &[
            "19:36: dns.route53.records.us-east-1.set_identifier: `a` is used by another record",
            "19:47: dns.route53.records.us-east-1.weight: Route 53 weights are 0-255",
            "19:61: dns.route53.records.us-east-1.values[0]: `203.0.113.300` is not a valid A value",
        ],
    );
}
