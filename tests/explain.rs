//! `meridian explain` over the demo config and the committed test database:
//! the same facts and decision the proxy would make, printed step by step.

mod support;

use std::process::Command;

use support::repo;

fn explain(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("explain")
        .arg("-c")
        .arg(repo("config/demo.yaml"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{out}"))
}

#[test]
fn a_german_read_stays_in_its_residency_group() {
    let (ok, out, err) = explain(&["--client-ip", "127.0.2.7", "--path", "/api/items"]);
    assert!(ok, "{err}");
    assert!(
        line(&out, "geo").contains("country DE, continent EU"),
        "{out}"
    );
    assert!(
        line(&out, "residency").contains("group `eu`: only eu-west-1"),
        "{out}"
    );
    assert!(
        line(&out, "decision").starts_with("decision    eu-west-1 [geo]"),
        "{out}"
    );
}

#[test]
fn residency_rejects_when_the_group_is_down() {
    let (ok, out, err) = explain(&[
        "--client-ip",
        "127.0.2.7",
        "--path",
        "/api/items",
        "--unhealthy",
        "eu-west-1",
    ]);
    assert!(ok, "{err}");
    assert!(line(&out, "health").contains("except eu-west-1"), "{out}");
    assert_eq!(
        line(&out, "decision"),
        "decision    503 no_healthy_region [residency_reject]"
    );
}

#[test]
fn forwarded_for_from_a_trusted_peer_names_the_client() {
    let (ok, out, err) = explain(&[
        "--client-ip",
        "127.0.0.1",
        "--header",
        "X-Forwarded-For: 127.0.3.5",
        "--path",
        "/",
    ]);
    assert!(ok, "{err}");
    assert!(line(&out, "client").starts_with("client      127.0.3.5 (from X-Forwarded-For"));
    assert!(
        line(&out, "decision").starts_with("decision    ap-southeast-1 [geo]"),
        "{out}"
    );
}

#[test]
fn writes_go_to_the_write_region_and_failover_is_explained() {
    let (ok, out, err) = explain(&[
        "--client-ip",
        "127.0.3.5",
        "--method",
        "post",
        "--path",
        "/api/x",
    ]);
    assert!(ok, "{err}");
    assert!(line(&out, "method").contains("a write"));
    assert!(
        line(&out, "decision").starts_with("decision    us-east-1 [write]"),
        "{out}"
    );

    let (ok, out, _) = explain(&["--client-ip", "127.0.3.5", "--unhealthy", "ap-southeast-1"]);
    assert!(ok);
    assert!(line(&out, "decision").contains("[failover]"), "{out}");
    assert!(
        !line(&out, "decision").starts_with("decision    ap-southeast-1"),
        "{out}"
    );
}

#[test]
fn a_full_region_is_explained_as_spillover_or_shedding() {
    // A Japanese read: ap-southeast-1 full, so the first try spills to the next region.
    let (ok, out, err) = explain(&["--client-ip", "127.0.3.5", "--full", "ap-southeast-1"]);
    assert!(ok, "{err}");
    let cap = line(&out, "capacity");
    assert!(
        cap.starts_with("capacity    ap-southeast-1 full: the first try goes to "),
        "{out}"
    );
    assert!(
        cap.ends_with("[spillover]") && !cap.contains("goes to ap-southeast-1"),
        "{out}"
    );
    // A German read may use only eu-west-1: no other region, so it waits, then is shed.
    let (ok, out, _) = explain(&[
        "--client-ip",
        "127.0.2.7",
        "--path",
        "/api/items",
        "--full",
        "eu-west-1",
    ]);
    assert!(ok);
    assert_eq!(
        line(&out, "capacity"),
        "capacity    eu-west-1 full and no other region allowed: waits up to 50ms for a place (normal route), then 503 overloaded"
    );
    // A write never spills.
    let (ok, out, _) = explain(&[
        "--client-ip",
        "127.0.3.5",
        "--method",
        "post",
        "--path",
        "/api/x",
        "--full",
        "us-east-1",
    ]);
    assert!(ok);
    assert!(
        line(&out, "capacity").contains("no other region for a write"),
        "{out}"
    );
    let (ok, _, err) = explain(&["--client-ip", "127.0.2.7", "--full", "mars-1"]);
    assert!(!ok && err.contains("unknown region `mars-1`"), "{err}");
}

#[test]
fn unknown_regions_and_bad_headers_are_clear_errors() {
    let (ok, _, err) = explain(&["--client-ip", "127.0.2.7", "--unhealthy", "mars-1"]);
    assert!(!ok);
    assert!(err.contains("unknown region `mars-1`"), "{err}");
    let (ok, _, err) = explain(&["--client-ip", "127.0.2.7", "--header", "no colon"]);
    assert!(!ok);
    assert!(err.contains("expected `Name: value`"), "{err}");
}

#[test]
fn weighted_steering_is_explained() {
    let dir = support::temp_dir("explain-weighted");
    let cfg = dir.join("weighted.yaml");
    std::fs::write(
        &cfg,
        r#"
local_region: us-east-1
listeners: [ { address: 127.0.0.1:1 } ]
admin: { address: 127.0.0.1:2 }
regions:
  us-east-1: { weight: 100, origins: [ { address: 127.0.0.1:10 } ] }
  eu-west-1: { weight: 0, origins: [ { address: 127.0.0.1:11 } ] }
routing: { steering: weighted }
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["explain", "--client-ip", "192.0.2.1", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = String::from_utf8(out.stdout).unwrap();
    assert!(line(&out, "route").contains("steering Weighted"), "{out}");
    assert!(
        line(&out, "geo").contains("no geoip database configured"),
        "{out}"
    );
    assert!(out.contains("  weighted "), "{out}");
    // Weight 0 keeps eu-west-1 last: it only serves when us-east-1 cannot.
    assert_eq!(
        line(&out, "decision"),
        "decision    us-east-1 [weighted] (reasons weighted; try order us-east-1, eu-west-1)"
    );
}
