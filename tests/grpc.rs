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

async fn setup(upstream: Upstream) -> Setup {
    let dir = temp_dir("grpc");
    let pki = Pki::new(&dir);
    let listener = pki.issue("gateway", &["localhost", "127.0.0.1"]);
    let origin_leaf = pki.issue("origin", &["grpc-origin.test"]);
    let (origin, origin_yaml) = match upstream {
        Upstream::H2c => {
            let o = PeerServer::start("grpc_origin.py", &[]);
            let yaml = format!(r#"{{ address: "{}", protocol: h2c }}"#, o.addr());
            (o, yaml)
        }
        Upstream::H2Tls => {
            let o = PeerServer::start(
                "grpc_origin.py",
                &[
                    "--cert",
                    origin_leaf.cert.to_str().unwrap(),
                    "--key",
                    origin_leaf.key.to_str().unwrap(),
                ],
            );
            let yaml = format!(
                r#"{{ address: "{}", protocol: h2, tls: {{ sni: grpc-origin.test, ca_file: "{}" }} }}"#,
                o.addr(),
                pki.ca().display()
            );
            (o, yaml)
        }
    };
    let yaml = format!(
        r#"
local_region: us-east-1
listeners:
  - address: "{{{{LISTEN}}}}"
    tls: {{ certificates: [ {{ cert: "{}", key: "{}" }} ] }}
admin: {{ address: "{{{{ADMIN}}}}" }}
regions:
  us-east-1: {{ origins: [ {origin_yaml} ] }}
health: {{ interval: 500ms, timeout: 400ms }}
timeouts: {{ connect: 1s }}
"#,
        listener.cert.display(),
        listener.key.display(),
    );
    let gw = Gateway::start(&yaml).await;
    Setup { gw, origin, pki }
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
    let out = calls(
        &s,
        json!([
            { "method": "Echo", "request": "hello over grpc" },
            { "method": "Count", "request": "200" },
            { "method": "Fail" },
            { "method": "Echo", "request": "again, same channel" },
        ]),
    )
    .await;
    let ctx = |i: usize| format!("{upstream:?}: {:#}\n{}", out[i], s.gw.stderr());

    assert_eq!(out[0]["code"], "OK", "{}", ctx(0));
    assert_eq!(
        out[0]["messages"],
        json!(["echo:hello over grpc"]),
        "{}",
        ctx(0)
    );
    assert_eq!(out[0]["trailers"]["x-echo-trailer"], "done", "{}", ctx(0));
    // The origin saw the gateway's X-Forwarded-For naming the client.
    let xff = out[0]["initial"]["x-seen-forwarded-for"]
        .as_str()
        .unwrap_or_default();
    assert!(
        xff.ends_with("127.0.0.1"),
        "x-forwarded-for `{xff}`: {}",
        ctx(0)
    );

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
