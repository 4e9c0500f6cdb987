//! TLS end to end, with certificates made at test time (rcgen): termination with
//! SNI and HTTP/2, certificates swapped on disk, and HTTPS to origins with a
//! private CA, host-name checks, validity dates and mTLS, for traffic and probes.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::*;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// A private CA that issues certificates into a directory.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    dir: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        Ca {
            cert,
            key,
            dir: dir.to_path_buf(),
        }
    }

    fn pem_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }

    /// Issues a certificate for `hosts` valid from `from` to `to` (years), writing
    /// `<file>.crt` and `<file>.key`; returns the certificate's DER.
    fn issue(&self, file: &str, hosts: &[&str], from: i32, to: i32) -> Vec<u8> {
        self.issue_in(&self.dir, file, hosts, from, to)
    }

    fn issue_in(&self, dir: &Path, file: &str, hosts: &[&str], from: i32, to: i32) -> Vec<u8> {
        let mut p = CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name.push(DnType::CommonName, hosts[0]);
        p.not_before = rcgen::date_time_ymd(from, 1, 1);
        p.not_after = rcgen::date_time_ymd(to, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        std::fs::write(dir.join(format!("{file}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
        cert.der().to_vec()
    }
}

fn san_names(der: &[u8]) -> Vec<String> {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect()
}

/// An HTTPS client trusting `ca`, sending `host` to the gateway at `addr`.
fn client(ca: &Path, host: &str, addr: SocketAddr) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .resolve(host, addr)
        .tls_info(true)
        .build()
        .unwrap()
}

/// The leaf certificate the gateway presented on this response's connection.
fn peer_cert(r: &reqwest::Response) -> Vec<u8> {
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .expect("a TLS response carries the peer certificate")
        .to_vec()
}

/// A fresh TLS handshake with SNI `sni` (no verification): the certificate served.
async fn served_cert(addr: SocketAddr, sni: &str) -> Vec<u8> {
    let c = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve(sni, addr)
        .tls_info(true)
        .build()
        .unwrap();
    let r = c
        .get(format!("https://{sni}:{}/probe-cert", addr.port()))
        .send()
        .await
        .unwrap();
    peer_cert(&r)
}

fn tls_gateway_config(origin: &SimOrigin, dir: &Path, extra: &str) -> String {
    let d = dir.display();
    format!(
        r#"
local_region: us-east-1
listeners:
  - address: "{{{{LISTEN}}}}"
    tls:
      certificates:
        - {{ cert: "{d}/default.crt", key: "{d}/default.key" }}
        - {{ cert: "{d}/a.crt", key: "{d}/a.key" }}
        - {{ cert: "{d}/b.crt", key: "{d}/b.key" }}
admin: {{ address: "{{{{ADMIN}}}}" }}
regions:
  us-east-1: {{ origins: [ {{ address: "{}" }} ] }}
health: {{ interval: 100ms, timeout: 80ms, healthy_threshold: 1, unhealthy_threshold: 1 }}
routes:
  - match: {{ path_prefix: /api }}
    writes: write_region
    read_your_writes: {{ window: 5s }}
write_region: us-east-1
{extra}
"#,
        origin.addr
    )
}

#[tokio::test]
async fn https_and_http2_with_certificates_chosen_by_sni() {
    let dir = temp_dir("tls");
    let ca = Ca::new(&dir, "ca");
    let default = ca.issue("default", &["default.example.test"], 2020, 2040);
    let a = ca.issue("a", &["a.example.test"], 2020, 2040);
    let b = ca.issue("b", &["b.example.test", "*.b.example.test"], 2020, 2040);
    let origin = origin("us-east-1").await;
    let gw = Gateway::start(&tls_gateway_config(&origin, &dir, "")).await;

    // Each name gets its certificate, verified against the private CA.
    for (host, want) in [
        ("a.example.test", &a),
        ("b.example.test", &b),
        ("x.b.example.test", &b),
    ] {
        let c = client(&ca.pem_path("ca"), host, gw.addr);
        let r = c
            .get(format!("https://{host}:{}/hello", gw.addr.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
        assert_eq!(
            &peer_cert(&r),
            want,
            "{host}: {:?}",
            san_names(&peer_cert(&r))
        );
        // ALPN offered h2 and reqwest took it.
        assert_eq!(r.version(), reqwest::Version::HTTP_2, "{host}");
    }
    // Unknown names and no SNI at all get the default (first) certificate.
    assert_eq!(served_cert(gw.addr, "unknown.example.test").await, default);
    let ip_only = format!("https://127.0.0.1:{}/x", gw.addr.port());
    let r = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .build()
        .unwrap()
        .get(ip_only)
        .send()
        .await
        .unwrap();
    assert_eq!(peer_cert(&r), default);

    // The origin learns the client spoke HTTPS; a write token cookie is Secure.
    let c = client(&ca.pem_path("ca"), "a.example.test", gw.addr);
    let r = c
        .post(format!(
            "https://a.example.test:{}/api/orders",
            gw.addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let set_cookie = r
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    let seen = origin.control.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.header("x-forwarded-proto"), Some("https"));

    // A real HTTP/2 client from outside Rust, where curl is installed (async: the
    // origin runs on this test's runtime).
    if let Ok(out) = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "--cacert",
            ca.pem_path("ca").to_str().unwrap(),
            "--resolve",
            &format!("a.example.test:{}:127.0.0.1", gw.addr.port()),
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            &format!("https://a.example.test:{}/curl", gw.addr.port()),
        ])
        .output()
        .await
    {
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "2 200",
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            gw.stderr()
        );
    }
}

#[tokio::test]
async fn a_certificate_swapped_on_disk_is_served_and_a_broken_pair_is_refused() {
    let dir = temp_dir("tls-swap");
    let ca = Ca::new(&dir, "ca");
    ca.issue("default", &["default.example.test"], 2020, 2040);
    let a1 = ca.issue("a", &["a.example.test"], 2020, 2040);
    ca.issue("b", &["b.example.test"], 2020, 2040);
    let origin = origin("us-east-1").await;
    let gw = Gateway::start(&tls_gateway_config(&origin, &dir, "")).await;
    assert_eq!(served_cert(gw.addr, "a.example.test").await, a1);

    // A slow request in flight on the old certificate's connection.
    origin
        .control
        .delay_ms
        .store(1500, std::sync::atomic::Ordering::Relaxed);
    let c = client(&ca.pem_path("ca"), "a.example.test", gw.addr);
    let url = format!("https://a.example.test:{}/slow", gw.addr.port());
    let arrived = || {
        origin
            .control
            .arrived
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = arrived();
    let in_flight = tokio::spawn(async move {
        let r = c.get(url).send().await.unwrap();
        (r.status(), peer_cert(&r))
    });
    eventually(
        Duration::from_secs(5),
        "the slow request held at the origin",
        || async { seen_if(arrived() > before, arrived()) },
    )
    .await;

    // Replace the pair on disk (key first, then certificate, as a renewal would):
    // the file watcher reloads, the pair in between may be refused, the end state serves.
    let staged = temp_dir("tls-staged");
    let a2 = ca.issue_in(&staged, "a", &["a.example.test"], 2021, 2041);
    std::fs::copy(staged.join("a.key"), dir.join("a.key")).unwrap();
    std::fs::copy(staged.join("a.crt"), dir.join("a.crt")).unwrap();
    eventually(
        Duration::from_secs(5),
        "the new certificate served",
        || async {
            let served = served_cert(gw.addr, "a.example.test").await;
            seen_if(
                served == a2,
                if served == a1 {
                    "the old one"
                } else {
                    "another"
                },
            )
        },
    )
    .await;
    origin
        .control
        .delay_ms
        .store(0, std::sync::atomic::Ordering::Relaxed);
    // The journal names the replaced certificate file with its new digest.
    let a_crt = dir.join("a.crt").display().to_string();
    let doc: serde_json::Value =
        reqwest::get(gw.admin_url("/admin/events?kind=certificate_reload"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let digest: String = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(std::fs::read(&a_crt).unwrap());
        d.iter().take(8).map(|b| format!("{b:02x}")).collect()
    };
    assert!(
        doc["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["subject"] == a_crt.as_str()
                && e["to"] == format!("sha256:{digest}").as_str()),
        "{doc}"
    );
    assert!(
        metric_sum(
            &gw.metrics().await,
            "meridian_events_total",
            &[("kind", "certificate_reload")]
        ) >= 1.0
    );
    let (status, cert) = in_flight.await.unwrap();
    assert_eq!(status, 200, "the in-flight request survived the swap");
    assert_eq!(cert, a1, "it finished on the connection it started on");

    // A mismatched pair (another certificate's key): refused, the old one stays.
    let reloads_before = metric_sum(
        &gw.metrics().await,
        "meridian_config_reloads_total",
        &[("result", "error")],
    );
    std::fs::copy(dir.join("b.key"), dir.join("a.key")).unwrap();
    eventually(
        Duration::from_secs(5),
        "the broken pair refused",
        || async {
            let errors = metric_sum(
                &gw.metrics().await,
                "meridian_config_reloads_total",
                &[("result", "error")],
            );
            seen_if(errors > reloads_before, errors)
        },
    )
    .await;
    let st = gw.state().await;
    let err = st["config"]["last_reload_error"].as_str().unwrap_or("");
    assert!(err.contains("listeners[0].tls.certificates"), "{err}");
    assert!(err.contains("a.crt"), "{err}");
    assert_eq!(served_cert(gw.addr, "a.example.test").await, a2);
}

/// A TLS front for a plain origin: terminates with `cert`/`key` (and checks client
/// certificates against `client_ca` when given), then relays bytes to `to`.
async fn tls_front(dir: &Path, file: &str, client_ca: Option<&Path>, to: SocketAddr) -> SocketAddr {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(
        &mut std::fs::read(dir.join(format!("{file}.crt")))
            .unwrap()
            .as_slice(),
    )
    .collect::<Result<_, _>>()
    .unwrap();
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(
        &mut std::fs::read(dir.join(format!("{file}.key")))
            .unwrap()
            .as_slice(),
    )
    .unwrap()
    .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut std::fs::read(ca).unwrap().as_slice()) {
                roots.add(c.unwrap()).unwrap();
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(v)
        }
        None => builder.with_no_client_auth(),
    };
    let config = Arc::new(builder.with_single_cert(certs, key).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = pingora::tls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(to).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_origins_are_verified_and_each_tls_failure_is_named() {
    let dir = temp_dir("tls-origins");
    let ca = Ca::new(&dir, "ca");
    let client_ca = Ca::new(&dir, "client-ca");
    client_ca.issue("client", &["meridian.example.test"], 2020, 2040);
    ca.issue("good", &["origin.example.test"], 2020, 2040);
    ca.issue("expired", &["origin.example.test"], 2001, 2002);
    ca.issue("notyet", &["origin.example.test"], 2090, 2091);
    let plain = origin("us-east-1").await;
    let good = tls_front(&dir, "good", None, plain.addr).await;
    let expired = tls_front(&dir, "expired", None, plain.addr).await;
    let notyet = tls_front(&dir, "notyet", None, plain.addr).await;
    let mtls = tls_front(
        &dir,
        "good",
        Some(&client_ca.pem_path("client-ca")),
        plain.addr,
    )
    .await;

    let d = dir.display();
    let ca_file = format!("ca_file: \"{d}/ca.pem\"");
    let client = format!("client_cert: \"{d}/client.crt\", client_key: \"{d}/client.key\"");
    // One region per case; `us-east-1` is the good one and takes the traffic.
    let cases = [
        (
            "us-east-1",
            good,
            format!("sni: origin.example.test, {ca_file}"),
            None,
        ),
        (
            "us-east-2",
            good,
            "sni: origin.example.test".to_string(),
            Some("certificate signed by an unknown CA"),
        ),
        (
            "us-west-1",
            good,
            format!("sni: wrong.example.test, {ca_file}"),
            Some("certificate not valid for the host name"),
        ),
        (
            "us-west-2",
            expired,
            format!("sni: origin.example.test, {ca_file}"),
            Some("certificate expired"),
        ),
        (
            "eu-west-1",
            notyet,
            format!("sni: origin.example.test, {ca_file}"),
            Some("certificate not yet valid"),
        ),
        (
            "eu-west-2",
            mtls,
            format!("sni: origin.example.test, {ca_file}, {client}"),
            None,
        ),
        (
            "eu-west-3",
            mtls,
            format!("sni: origin.example.test, {ca_file}"),
            Some(""),
        ),
    ];
    let regions: String = cases
        .iter()
        .map(|(r, addr, tls, _)| {
            format!("  {r}: {{ origins: [ {{ address: \"{addr}\", host_header: origin.example.test, tls: {{ {tls} }} }} ] }}\n")
        })
        .collect();
    let yaml = format!(
        r#"
local_region: us-east-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}" }}
regions:
{regions}
health: {{ interval: 300ms, timeout: 250ms, healthy_threshold: 1, unhealthy_threshold: 1 }}
routing: {{ steering: geo, geo: {{ default: us-east-1 }} }}
"#
    );
    let gw = Gateway::start(&yaml).await;
    // Until every origin's last probe came out as expected (a TLS handshake in a
    // debug build on a busy machine can miss one probe's deadline).
    let st = eventually(
        Duration::from_secs(15),
        "every probe as expected",
        || async {
            let st = gw.state().await;
            let settled = cases.iter().all(|(region, _, _, fails)| {
                let last = &st["regions"][region]["origins"][0]["last_probe"];
                let want = if fails.is_some() { "fail" } else { "pass" };
                last["result"] == want && (fails.is_none() || !last["detail"].is_null())
            });
            seen_if(settled, st)
        },
    )
    .await;
    for (region, _, _, fails) in &cases {
        let o = &st["regions"][region]["origins"][0];
        let last = &o["last_probe"];
        match fails {
            None => assert_eq!(last["result"], "pass", "{region}: {o}"),
            Some(detail) => {
                assert_eq!(last["result"], "fail", "{region}: {o}");
                if detail.is_empty() {
                    // mTLS refused: TLS 1.3 reports it after the handshake, as an alert.
                    let d = last["detail"].as_str().unwrap_or("");
                    assert!(d.to_lowercase().contains("certificate"), "{region}: {o}");
                } else {
                    assert_eq!(last["error"], "tls", "{region}: {o}");
                    assert_eq!(last["detail"], *detail, "{region}: {o}");
                }
            }
        }
    }
    let m = gw.metrics().await;
    assert!(
        metric_sum(
            &m,
            "meridian_probe_failures_total",
            &[("region", "us-east-2"), ("reason", "tls")]
        ) >= 1.0,
        "{m}"
    );

    // Traffic goes over the verified TLS connection, to the origin behind it.
    let r = reqwest::get(gw.url("/through-tls")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-meridian-region"].to_str().unwrap(),
        "us-east-1"
    );
    assert!(plain
        .control
        .seen()
        .iter()
        .any(|s| s.path == "/through-tls"));
}

fn check(yaml: &str) -> (Option<i32>, String) {
    let path = temp_dir("tls-check").join("m.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn verify_false_is_a_loud_warning_and_half_a_client_pair_an_error() {
    let base = "\
local_region: us-east-1
listeners: [ { address: 127.0.0.1:8080 } ]
admin: { address: 127.0.0.1:9901 }
regions:
";
    let (code, stderr) = check(&format!(
        "{base}  us-east-1: {{ origins: [ {{ address: 127.0.0.1:443, tls: {{ verify: false }} }} ] }}\n"
    ));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("regions.us-east-1.origins[0].tls.verify: false: the origin's certificate is NOT checked"),
        "{stderr}"
    );
    let (code, stderr) = check(&format!(
        "{base}  us-east-1: {{ origins: [ {{ address: 127.0.0.1:444, tls: {{ client_cert: c.pem }} }} ] }}\n"
    ));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "regions.us-east-1.origins[0].tls: `client_cert` and `client_key` go together"
        ),
        "{stderr}"
    );
}
