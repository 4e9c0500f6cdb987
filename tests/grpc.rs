//! gRPC through the gateway with real peers on both sides: grpcio's client over
//! TLS (HTTP/2, ALPN h2) to a TLS listener, and grpcio's server as the origin,
//! over cleartext HTTP/2 (`protocol: h2c`) and over TLS (`protocol: h2`).
//! Messages, `grpc-status` and trailing metadata must come through intact, an
//! origin's error status must reach the client as that status, and a dead origin
//! must be a quick gRPC error, not a hang until the deadline.
//!
//! grpcio's server resets any request that is not a gRPC POST, health probes'
//! `GET /health` included, so these origins never pass a probe: requests reach
//! them through panic routing (no healthy candidate: route as if all were), the
//! default `panic_threshold: 0`. That is what an operator would see too.
//!
//! Needs `.venv-peers` (`scripts/peers`).

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::certs::Pki;
use support::peers::{run_client, PeerServer};
use support::*;

/// How the gateway reaches the gRPC origin.
#[derive(Clone, Copy, Debug)]
enum Upstream {
    H2c,
    H2Tls,
}

struct Setup {
    gw: Gateway,
    origin: PeerServer,
    pki: Pki,
}

/// A gRPC origin of the given kind: the process, its entry in `origins`, and the
/// client arguments that reach it directly.
fn grpc_origin(pki: &Pki, upstream: Upstream) -> (PeerServer, String, Vec<String>) {
    match upstream {
        Upstream::H2c => {
            let o = PeerServer::start("grpc_origin.py", &[]);
            let yaml = format!(r#"{{ address: "{}", protocol: h2c }}"#, o.addr());
            let direct = vec!["--target".into(), o.addr().to_string()];
            (o, yaml, direct)
        }
        Upstream::H2Tls => {
            let leaf = pki.issue("origin", &["grpc-origin.test"]);
            let o = PeerServer::start(
                "grpc_origin.py",
                &[
                    "--cert",
                    leaf.cert.to_str().unwrap(),
                    "--key",
                    leaf.key.to_str().unwrap(),
                ],
            );
            let yaml = format!(
                r#"{{ address: "{}", protocol: h2, tls: {{ sni: grpc-origin.test, ca_file: "{}" }} }}"#,
                o.addr(),
                pki.ca().display()
            );
            let direct = vec![
                "--target".into(),
                o.addr().to_string(),
                "--ca".into(),
                pki.ca().display().to_string(),
                "--name".into(),
                "grpc-origin.test".into(),
            ];
            (o, yaml, direct)
        }
    }
}

async fn setup(upstream: Upstream) -> Setup {
    let pki = Pki::new(&temp_dir("grpc"));
    let listener = pki.issue("gateway", &["localhost", "127.0.0.1"]);
    let (origin, origin_yaml, _) = grpc_origin(&pki, upstream);
    let rest = "health: { interval: 500ms, timeout: 400ms }\ntimeouts: { connect: 1s }";
    let gw = tls_gateway(&listener, &origin_yaml, rest).await;
    Setup { gw, origin, pki }
}

/// The calls every path is checked with, and what each must return.
fn script() -> Value {
    json!([
        { "method": "Echo", "request": "hello over grpc" },
        { "method": "Count", "request": "200" },
        { "method": "Fail" },
        { "method": "Echo", "request": "again, same channel" },
    ])
}

/// Checks the results of `script()`; `xff` is the X-Forwarded-For the origin
/// must have seen (None: no gateway in between, so none at all).
fn check(out: &[Value], xff: Option<&str>, ctx: &dyn Fn(usize) -> String) {
    assert_eq!(out.len(), 4, "{}", ctx(0));
    assert_eq!(out[0]["code"], "OK", "{}", ctx(0));
    assert_eq!(
        out[0]["messages"],
        json!(["echo:hello over grpc"]),
        "{}",
        ctx(0)
    );
    assert_eq!(out[0]["trailers"]["x-echo-trailer"], "done", "{}", ctx(0));
    let seen = out[0]["initial"]["x-seen-forwarded-for"]
        .as_str()
        .unwrap_or_default();
    match xff {
        Some(client) => assert!(
            seen.ends_with(client),
            "x-forwarded-for `{seen}`: {}",
            ctx(0)
        ),
        None => assert_eq!(seen, "", "{}", ctx(0)),
    }

    let want: Vec<String> = (0..200).map(|i| format!("item-{i}")).collect();
    assert_eq!(out[1]["code"], "OK", "{}", ctx(1));
    assert_eq!(out[1]["messages"], json!(want), "{}", ctx(1));
    assert_eq!(out[1]["trailers"]["x-count"], "200", "{}", ctx(1));

    assert_eq!(out[2]["code"], "PERMISSION_DENIED", "{}", ctx(2));
    assert_eq!(out[2]["details"], "denied by origin", "{}", ctx(2));

    assert_eq!(out[3]["code"], "OK", "{}", ctx(3));
    assert_eq!(
        out[3]["messages"],
        json!(["echo:again, same channel"]),
        "{}",
        ctx(3)
    );
}

#[tokio::test]
async fn the_peers_agree_without_the_gateway() {
    // What the tests below expect, checked with client and origin face to face:
    // a failure through the gateway is the gateway's.
    let pki = Pki::new(&temp_dir("grpc-direct"));
    for upstream in [Upstream::H2c, Upstream::H2Tls] {
        let (_origin, _, mut args) = grpc_origin(&pki, upstream);
        args.push(script().to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_client("grpc_client.py", &args, Duration::from_secs(60)).await;
        check(&out, None, &|i| {
            format!("{upstream:?} direct: {:#}", out[i])
        });
    }
}

/// Runs `calls` with grpcio over TLS against the gateway; one result per call.
async fn calls(s: &Setup, calls: Value) -> Vec<Value> {
    let out = run_client(
        "grpc_client.py",
        &[
            "--target",
            &s.gw.addr.to_string(),
            "--ca",
            s.pki.ca().to_str().unwrap(),
            "--name",
            "localhost",
            &calls.to_string(),
        ],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        out.len(),
        calls.as_array().unwrap().len(),
        "one result per call: {out:?}\n{}",
        s.gw.stderr()
    );
    out
}

async fn unary_streaming_and_errors(upstream: Upstream) {
    let s = setup(upstream).await;
    let out = calls(&s, script()).await;
    check(&out, Some("127.0.0.1"), &|i| {
        format!("{upstream:?}: {:#}\n{}", out[i], s.gw.stderr())
    });
}

#[tokio::test]
async fn unary_streaming_and_error_status_through_an_h2c_origin() {
    unary_streaming_and_errors(Upstream::H2c).await;
}

#[tokio::test]
async fn unary_streaming_and_error_status_through_an_h2_tls_origin() {
    unary_streaming_and_errors(Upstream::H2Tls).await;
}

#[tokio::test]
async fn a_dead_origin_is_a_quick_unavailable_not_a_hang() {
    let mut s = setup(Upstream::H2c).await;
    let ok = calls(&s, json!([{ "method": "Echo", "request": "alive" }])).await;
    assert_eq!(ok[0]["code"], "OK", "{:#}\n{}", ok[0], s.gw.stderr());
    s.origin.kill();
    // A 10 s deadline: an answer near it would be the gateway hanging, not failing.
    let out = calls(
        &s,
        json!([{ "method": "Echo", "request": "anyone?", "deadline": 10 }]),
    )
    .await;
    let r = &out[0];
    assert_eq!(
        r["code"], "UNAVAILABLE",
        "a dead origin maps to UNAVAILABLE (HTTP 502/503 or grpc-status 14): {r:#}"
    );
    let elapsed = r["elapsed"].as_f64().unwrap();
    assert!(
        elapsed < 5.0,
        "the error took {elapsed:.1} s of a 10 s deadline: {r:#}"
    );
}
