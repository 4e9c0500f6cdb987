//! The checks behind each fuzz target, one function per target taking the raw
//! fuzzer input. They call the real library functions and panic when an
//! invariant breaks. `tests/fuzz_regressions.rs` includes this file too, so the
//! seed corpus and every crash found are replayed by a plain `cargo test`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use meridian::core::config::units::Cidr;
use meridian::core::config::{self, Loaded};
use meridian::core::health::judge::{judge, FailReason, Verdict};
use meridian::core::health::HealthRegistry;
use meridian::core::routing::match_route;
use meridian::core::snapshot::Snapshot;
use meridian::proxy::listener::{self, Listener};
use meridian::proxy::proxy_protocol::{self, MAX_HEADER_LEN};
use meridian::proxy::Proxy;
use meridian::request::client_ip::{client_ip, parse_entry};
use meridian::request::tokens::{is_valid_region, KeyRing, TokenError};
use meridian::services::shared::Shared;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The raw recording origin and its judge, shared with the end-to-end tests.
#[allow(dead_code)]
#[path = "../../tests/support/raw.rs"]
mod raw;

/// The file name `config_parse` passes to `parse`; every error must start with it.
pub const CONFIG_NAME: &str = "fuzz/in put.yaml";

/// Wraps a validated config as `config::load` would, without a file.
fn loaded(
    config: config::Config,
    resolved: config::Resolved,
    warnings: Vec<config::ConfigError>,
) -> Loaded {
    Loaded {
        config,
        resolved,
        path: PathBuf::from("/nonexistent/fuzz.yaml"),
        sha256: "0".repeat(64),
        warnings,
    }
}

/// Target `config_parse`: arbitrary UTF-8 through `config::parse` (which also
/// validates). Errors all start with the file name; a config that validates
/// compiles into a snapshot (when compiling needs no DNS or files). Invalid UTF-8
/// becomes U+FFFD rather than being skipped: more multi-byte characters to trip on.
pub fn config_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    let prefix = format!("{CONFIG_NAME}:");
    match config::parse(CONFIG_NAME, text) {
        Err(errors) => {
            assert!(!errors.is_empty(), "Err with no errors");
            for e in &errors {
                assert_eq!(e.file, CONFIG_NAME);
                let line = e.to_string();
                assert!(line.starts_with(&prefix), "error line `{line}`");
            }
        }
        Ok((config, resolved, warnings)) => {
            for w in &warnings {
                let line = w.to_string();
                assert!(line.starts_with(&prefix), "warning line `{line}`");
            }
            // Compiling resolves origin names and opens the GeoIP and key files:
            // only done when that touches neither DNS nor the file system.
            let literal = config.regions.values().all(|r| {
                r.origins
                    .iter()
                    .all(|o| o.address.parse::<SocketAddr>().is_ok())
            });
            if !literal || config.geoip.is_some() || config.sessions.is_some() {
                return;
            }
            let regions = config.regions.len();
            let loaded = loaded(config, resolved, warnings);
            let _ = config::summary(&loaded);
            match Snapshot::build(&loaded, &HealthRegistry::default()) {
                Ok(snap) => {
                    assert!(snap.local_region < snap.regions.len());
                    let last = snap.routes.last().expect("a catch-all route");
                    assert!(last.host.is_none() && last.path_prefix == "/");
                    for path in ["/", "/api/x", ""] {
                        assert!(match_route(&snap, "example.com", path) < snap.routes.len());
                    }
                    for s in &snap.shifts {
                        for now in [0, s.start_ms, s.start_ms.saturating_add(s.ramp_ms / 2)] {
                            let f = s.fraction_at(now);
                            assert!((0.0..=1.0).contains(&f), "shift fraction {f}");
                        }
                    }
                }
                // The one limit validation leaves to the compiler.
                Err(errors) => {
                    assert!(
                        regions > meridian::core::snapshot::MAX_REGIONS,
                        "a validated config did not compile: {errors:?}"
                    );
                }
            }
        }
    }
}

/// Target `xff`. Input lines: the TCP peer, the trusted proxies (comma-separated
/// CIDRs; a default list when none parse), then one X-Forwarded-For value per line.
pub fn xff(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let peer_line = lines.next().unwrap_or("");
    let peer = parse_entry(peer_line).unwrap_or_else(|| {
        // Not an address: pick one from the bytes, inside or outside the proxies.
        let b = data.first().copied().unwrap_or(0);
        IpAddr::V4(Ipv4Addr::new(if b & 1 == 0 { 10 } else { 192 }, 0, 2, b))
    });
    let mut trusted: Vec<Cidr> = lines
        .next()
        .unwrap_or("")
        .split(',')
        .filter_map(|c| c.parse().ok())
        .collect();
    if trusted.is_empty() {
        trusted = ["10.0.0.0/8", "127.0.0.1/32", "fd00::/8"]
            .iter()
            .map(|c| c.parse().expect("valid cidr"))
            .collect();
    }
    let headers: Vec<&str> = lines.collect();

    // Every entry on its own: canonical, and printing it parses back to it.
    let mut seen = Vec::new();
    for h in &headers {
        for entry in h.split(',') {
            if let Some(ip) = parse_entry(entry) {
                assert_eq!(ip, ip.to_canonical(), "`{entry}` not canonical");
                assert_eq!(parse_entry(&ip.to_string()), Some(ip), "`{entry}`");
                seen.push(ip);
            }
        }
    }
    let c = client_ip(peer, headers.iter().copied(), &trusted);
    let peer_trusted = trusted.iter().any(|t| t.contains(peer));
    if c.from_xff {
        assert!(peer_trusted, "believed an untrusted peer's header");
        assert!(seen.contains(&c.ip), "{} is not in the header", c.ip);
    } else {
        assert_eq!(c.ip, peer.to_canonical(), "neither the peer nor the header");
    }
    if !peer_trusted {
        assert_eq!(c.malformed, 0);
    }
    // Several headers read as one list.
    let joined = headers.join(",");
    let one = client_ip(peer, std::iter::once(joined.as_str()), &trusted);
    assert_eq!(one.ip, c.ip, "joining the headers changed the client");
}

const SECRET_1: [u8; 32] = [0x11; 32];
const SECRET_2: [u8; 32] = [0x22; 32];

/// The ring under test: `k1` signs, `k2` (an older key) only verifies.
fn ring() -> &'static KeyRing {
    static R: OnceLock<KeyRing> = OnceLock::new();
    R.get_or_init(|| {
        KeyRing::from_keys(vec![
            ("k1".into(), SECRET_1.to_vec()),
            ("k2".into(), SECRET_2.to_vec()),
        ])
        .expect("valid keys")
    })
}

/// `k2` as a signing ring: the only way a token naming `k2` can be produced.
fn ring_k2() -> &'static KeyRing {
    static R: OnceLock<KeyRing> = OnceLock::new();
    R.get_or_init(|| KeyRing::from_keys(vec![("k2".into(), SECRET_2.to_vec())]).expect("valid"))
}

/// The signer of `key_id`, if the ring holds it.
fn signer(key_id: &str) -> &'static KeyRing {
    match key_id {
        "k1" => ring(),
        "k2" => ring_k2(),
        other => panic!("accepted a token naming unknown key `{other}`"),
    }
}

/// Target `token_verify`. Input: 8 bytes of `now` (little-endian), then the token.
/// An accepted token must be byte for byte what `sign_*` produces for its fields
/// (so nothing the ring did not sign is accepted); a region made from the input
/// round-trips through sign and verify, and any one-byte change is rejected.
pub fn token_verify(data: &[u8]) {
    let (now, rest) = match data.split_first_chunk::<8>() {
        Some((n, rest)) => (u64::from_le_bytes(*n), rest),
        None => (0, data),
    };
    let token = String::from_utf8_lossy(rest);
    let r = ring();

    if let Ok(w) = r.verify_write(&token, now) {
        assert!(now <= w.not_after_ms);
        let again = signer(w.key_id).sign_write(w.region, w.not_after_ms);
        assert_eq!(again, token, "accepted a write token the ring did not sign");
    }
    if let Ok(region) = r.verify_affinity(&token) {
        let key_id = token.split('.').nth(2).unwrap_or("");
        let again = signer(key_id).sign_affinity(region);
        assert_eq!(again, token, "accepted a cookie the ring did not sign");
    }

    // Round trip: the input as a region name, or mapped onto `[a-z0-9-]`.
    let region = if is_valid_region(&token) {
        token.to_string()
    } else {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-";
        let s: String = rest
            .iter()
            .take(64)
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect();
        if s.is_empty() {
            "r".into()
        } else {
            s
        }
    };
    assert!(is_valid_region(&region), "`{region}`");
    let t = r.sign_write(&region, now);
    let w = r
        .verify_write(&t, now)
        .expect("a fresh write token verifies");
    assert_eq!((w.region, w.not_after_ms, w.key_id), (&*region, now, "k1"));
    if let Some(later) = now.checked_add(1) {
        assert_eq!(r.verify_write(&t, later), Err(TokenError::Expired));
    }
    assert_eq!(r.verify_affinity(&t), Err(TokenError::Malformed));
    let a = r.sign_affinity(&region);
    assert_eq!(r.verify_affinity(&a), Ok(region.as_str()));
    assert_eq!(r.verify_write(&a, 0), Err(TokenError::Malformed));

    // One byte changed, where and to what the input says: rejected.
    const SUBST: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.";
    let pick = now as usize;
    for tok in [&t, &a] {
        let mut b = tok.clone().into_bytes();
        let i = pick % b.len();
        let c = SUBST[(pick / b.len().max(1)) % SUBST.len()];
        if b[i] == c {
            continue;
        }
        b[i] = c;
        let bad = String::from_utf8(b).expect("ascii");
        assert!(r.verify_write(&bad, 0).is_err(), "accepted tampered {bad}");
        assert!(r.verify_affinity(&bad).is_err(), "accepted tampered {bad}");
    }
}

/// Target `health_body`. Input: status (2 bytes LE), a flags byte (bit 0: deep;
/// bits 1-2: which expected statuses), then the body.
pub fn health_body(data: &[u8]) {
    let status = u16::from_le_bytes([
        data.first().copied().unwrap_or(200),
        data.get(1).copied().unwrap_or(0),
    ]);
    let flags = data.get(2).copied().unwrap_or(1);
    let body = data.get(3..).unwrap_or(&[]);
    let deep = flags & 1 == 1;
    let expect: &[u16] = match (flags >> 1) & 3 {
        0 => &[200],
        1 => &[200, 204, 301],
        2 => &[],
        _ => std::slice::from_ref(&status),
    };
    let j = judge(status, body, expect, deep);
    if !expect.contains(&status) {
        assert_eq!(j.verdict, Verdict::Fail(FailReason::Status));
        assert!(j.replication_lag_ms.is_none() && !j.body_unparsed);
        return;
    }
    if !deep {
        assert_eq!(j.verdict, Verdict::Pass);
        assert!(j.replication_lag_ms.is_none() && !j.body_unparsed);
        return;
    }
    assert!(!matches!(j.verdict, Verdict::Fail(FailReason::Status)));
    if let Verdict::Fail(reason) = j.verdict {
        assert_eq!(reason, FailReason::Unhealthy);
    }
    if j.body_unparsed {
        assert_eq!(j.verdict, Verdict::Pass, "an unreadable body decided");
    }
    if let Some(lag) = j.replication_lag_ms {
        assert!(lag < u32::MAX);
    }
    // Pure: the same answer twice.
    assert_eq!(judge(status, body, expect, deep), j);
}

const ROUTES_CONFIG: &str = "\
local_region: us-east-1
listeners: [{ address: 127.0.0.1:8080 }]
admin: { address: 127.0.0.1:9901 }
write_region: us-east-1
regions:
  us-east-1: { origins: [{ address: 127.0.0.1:18081 }] }
  eu-west-1: { origins: [{ address: 127.0.0.1:18082 }] }
routes:
  - match: { host: API.Example.com, path_prefix: /v1/ }
    writes: write_region
  - match: { host: api.example.com }
    steering: latency
  - match: { path_prefix: /static }
    steering: weighted
  - match: { path_prefix: /é/ }
  - match: { path_prefix: / }
";

fn compile(text: &str) -> Option<Snapshot> {
    let (config, resolved, warnings) = config::parse("routes.yaml", text).ok()?;
    Snapshot::build(
        &loaded(config, resolved, warnings),
        &HealthRegistry::default(),
    )
    .ok()
}

/// A YAML double-quoted scalar holding exactly `s`.
fn yaml_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(ch),
            c if u32::from(c) <= 0xffff => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08X}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// Every route of `snap` against `host` and `path`.
fn check_routes(snap: &Snapshot, host: &str, path: &str) {
    let hits: Vec<bool> = snap.routes.iter().map(|r| r.matches(host, path)).collect();
    for (r, hit) in snap.routes.iter().zip(&hits) {
        if *hit {
            assert!(
                path.starts_with(&r.path_prefix),
                "`{path}` matched `{}`",
                r.path_prefix
            );
            if let Some(h) = &r.host {
                assert!(host.eq_ignore_ascii_case(h), "`{host}` matched host `{h}`");
            }
        } else if r
            .host
            .as_deref()
            .is_none_or(|h| host.eq_ignore_ascii_case(h))
        {
            assert!(
                !path.starts_with(&r.path_prefix),
                "`{path}` missed `{}`",
                r.path_prefix
            );
        }
    }
    let i = match_route(snap, host, path);
    let want = hits
        .iter()
        .position(|h| *h)
        .unwrap_or(snap.routes.len() - 1);
    assert_eq!(i, want, "host `{host}` path `{path}`");
}

/// Target `route_match`. Input lines: host, path, then optional route lines
/// `host|path_prefix` (empty host = any) compiled from a config of their own.
pub fn route_match(data: &[u8]) {
    static FIXED: OnceLock<Snapshot> = OnceLock::new();
    let fixed = FIXED.get_or_init(|| compile(ROUTES_CONFIG).expect("the fixed routes compile"));
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let host = lines.next().unwrap_or("");
    let path = lines.next().unwrap_or("");
    check_routes(fixed, host, path);

    let specs: Vec<&str> = lines.take(8).collect();
    if specs.is_empty() {
        return;
    }
    let mut yaml = String::from(
        "local_region: r1\nlisteners: [{ address: 127.0.0.1:8080 }]\n\
         admin: { address: 127.0.0.1:9901 }\n\
         regions: { r1: { origins: [{ address: 127.0.0.1:1 }] } }\nroutes:\n",
    );
    for spec in &specs {
        let (h, p) = spec.split_once('|').unwrap_or(("", spec));
        yaml.push_str("  - match: {");
        if !h.is_empty() {
            yaml.push_str(&format!(" host: {},", yaml_quote(h)));
        }
        yaml.push_str(&format!(" path_prefix: {} }}\n", yaml_quote(p)));
    }
    if let Some(snap) = compile(&yaml) {
        // The prefixes survive YAML as written.
        for (spec, r) in specs.iter().zip(&snap.routes) {
            let p = spec.split_once('|').map_or(*spec, |(_, p)| p);
            assert_eq!(r.path_prefix, p);
        }
        check_routes(&snap, host, path);
    }
}

/// Target `proxy_header`: the raw bytes a client sends first, through
/// `proxy_protocol::parse`. A header found is at most `MAX_HEADER_LEN` bytes, parses
/// the same on its own, and every strict prefix of it is incomplete (never an
/// error); an incomplete input is shorter than the cap and so are its prefixes.
pub fn proxy_header(data: &[u8]) {
    let parsed = proxy_protocol::parse(data);
    let prefixes_upto = match parsed {
        Ok(Some((header, consumed))) => {
            assert!(
                consumed > 0 && consumed <= data.len(),
                "consumed {consumed}"
            );
            assert!(consumed <= MAX_HEADER_LEN, "consumed {consumed}");
            assert_eq!(
                proxy_protocol::parse(&data[..consumed]),
                Ok(Some((header, consumed))),
                "the header alone parses differently"
            );
            consumed
        }
        Ok(None) => {
            assert!(
                data.len() < MAX_HEADER_LEN,
                "incomplete at {} bytes",
                data.len()
            );
            data.len()
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    // An error would have to stay an error: no prefix of something valid is one.
    for n in 0..prefixes_upto {
        assert_eq!(proxy_protocol::parse(&data[..n]), Ok(None), "prefix {n}");
    }
}

/// The real listener (meridian's proxy, its probes) in front of a raw
/// recording origin, on a runtime of its own: started once per process.
struct Rig {
    rt: tokio::runtime::Runtime,
    gateway: SocketAddr,
    origin: raw::RawOrigin,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let (gateway, origin) = rt.block_on(async {
            let origin = raw::RawOrigin::start().await;
            let path = std::env::temp_dir().join(format!(
                "meridian-fuzz-listener-{}.yaml",
                std::process::id()
            ));
            let yaml = format!(
                "local_region: us-east-1\n\
                 listeners: [ {{ address: \"127.0.0.1:0\" }} ]\n\
                 admin: {{ address: \"127.0.0.1:0\" }}\n\
                 regions:\n  us-east-1: {{ origins: [ {{ address: \"{}\" }} ] }}\n\
                 health: {{ interval: 60s, timeout: 1s }}\n\
                 timeouts: {{ request_header: 500ms, client_body: 500ms, client_idle: 200ms }}\n",
                origin.addr
            );
            std::fs::write(&path, yaml).expect("the config");
            let shared = Shared::load(path).unwrap_or_else(|e| panic!("{e}"));
            let (stop, shutdown) = tokio::sync::watch::channel(false);
            // Runs for the life of the process.
            std::mem::forget(stop);
            tokio::spawn(meridian::services::probes::supervise(
                shared.clone(),
                shutdown.clone(),
            ));
            let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a port");
            let gateway = tcp.local_addr().expect("its address");
            let listener = Listener {
                tcp,
                tls: None,
                proxy_protocol: false,
                slots: None,
            };
            let proxy = Arc::new(Proxy::new(shared));
            tokio::spawn(listener::serve(
                listener,
                proxy,
                shutdown,
                Default::default(),
            ));
            // Ready once a plain request goes through (the first probe passed).
            let ping = b"GET /ready HTTP/1.1\r\nHost: h.example\r\n\r\n";
            for _ in 0..100 {
                if send(gateway, ping).await.starts_with(b"HTTP/1.1 200") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (gateway, origin)
        });
        Rig {
            rt,
            gateway,
            origin,
        }
    })
}

/// Writes `data` on a new connection and reads what comes back until the
/// gateway closes it (an idle client after `timeouts.client_idle`, a partial
/// head after `request_header`), or 2 s pass. The sending side stays open: a
/// half-closed connection is one hyper ends at once, requests and all.
async fn send(gateway: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let Ok(mut s) = tokio::net::TcpStream::connect(gateway).await else {
        return out;
    };
    let _ = s.write_all(data).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
    out
}

/// Target `listener_requests`: arbitrary bytes as one client connection
/// through the real listener to a raw origin that records what it receives.
/// Whatever the client sent, each origin connection reads at most one
/// request, and that one unambiguously (`raw::judge`): one head, one Host, at
/// most one framing header, a body that ends exactly where its framing says
/// and nothing after it. The origin never reads two requests where the client
/// sent one.
pub fn listener_requests(data: &[u8]) {
    let rig = rig();
    rig.rt.block_on(async {
        rig.origin.settle(Duration::from_secs(2)).await;
        let before = rig.origin.connections().len();
        send(rig.gateway, data).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        rig.origin.settle(Duration::from_secs(2)).await;
        for c in &rig.origin.connections()[before..] {
            if c.is_empty() || c.starts_with(b"GET /health ") {
                continue;
            }
            if let Err(e) = raw::judge(c) {
                panic!(
                    "the origin read something ambiguous: {e}\nclient sent: {:?}\norigin got: {:?}",
                    String::from_utf8_lossy(data),
                    String::from_utf8_lossy(c)
                );
            }
        }
    });
}
