//! The load the profile-guided build is trained on (scripts/pgo, and so the image):
//! needs nothing but itself and the meridian binary to train, so it runs in the
//! image's build stage, where nginx and wrk are not.
//!
//!   meridian-train MERIDIAN_BIN [SECONDS]        (SECONDS per phase, default 5)
//!
//! It starts two of `meridian demo`'s origins on loopback, makes a certificate, and
//! runs MERIDIAN_BIN (`run`, one worker thread, as loadtest/perf measures it) with the
//! configuration of loadtest/perf.yaml: three regions, a GeoIP lookup per request
//! (the bundled test database, geoip/test-city.mmdb), residency, geo steering with a
//! dial, weighted steering on /static, a read-your-writes route, the access log at full
//! rate, metrics and probing; plus a TLS listener. Then, in phases of SECONDS each:
//! loadtest/mix.lua's request mix on 64 and on 256 keep-alive connections, HTTPS on
//! keep-alive connections, and HTTPS with a handshake per request (loadtest/tls's two
//! measures). It stops the gateway with SIGTERM, as an operator does, so an
//! instrumented build writes its profile, and fails unless every phase was answered
//! (200s, and no transport errors) and the gateway exited cleanly.
//!
//! Built only with the `pgo-train` feature, which changes no code of meridian's; the
//! gateway it trains is built without it (scripts/pgo says why).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// X-Forwarded-For pool: addresses the test database places in the US, Germany and
/// Japan, and two it does not know (the default region).
const CLIENTS: [&str; 5] = [
    "127.0.1.9",
    "127.0.2.9",
    "127.0.3.9",
    "198.51.100.7",
    "2001:db8::7",
];
const TLS_NAME: &str = "train.meridian.test";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let bin = PathBuf::from(
        args.next()
            .context("usage: meridian-train MERIDIAN_BIN [SECONDS]")?,
    );
    let secs: u64 = match args.next() {
        Some(s) => s.parse().context("SECONDS")?,
        None => 5,
    };
    let phase = Duration::from_secs(secs);
    let dir = std::env::temp_dir().join(format!("meridian-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = train(&bin, &dir, phase).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn train(bin: &Path, dir: &Path, phase: Duration) -> anyhow::Result<()> {
    let origins = [origin("eu-west-1").await?, origin("us-east-1").await?];
    let (tls, roots) = certificate(dir)?;
    let (listen, secure, admin) = (free_port()?, free_port()?, free_port()?);
    let geoip = dir.join("geoip.mmdb");
    std::fs::write(&geoip, TEST_GEOIP)?;
    let config = dir.join("meridian.yaml");
    std::fs::write(
        &config,
        gateway_config(listen, secure, admin, origins, &tls, &geoip),
    )?;
    std::fs::write(
        dir.join("session.keys"),
        "k1:bWVyaWRpYW4tdHJhaW5pbmcta2V5LTAxMjM0NTY3ODk=\n",
    )?;
    let log = std::fs::File::create(dir.join("meridian.log"))?;
    let mut gateway = Command::new(bin)
        .args(["run", "-c"])
        .arg(&config)
        .env("MERIDIAN_THREADS", "1")
        .env("RUST_LOG", "warn,meridian::access=info")
        // An instrumented gateway writes its profile where its build said to
        // (scripts/pgo): a LLVM_PROFILE_FILE meant for this process must not move it.
        .env_remove("LLVM_PROFILE_FILE")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let trained = async {
        wait_ready(admin).await?;
        let http = Target::plain(listen);
        let token = write_token(&http).await?;
        run_phase("mix, 64 connections", &http, 64, phase, Some(&token), true).await?;
        run_phase(
            "mix, 256 connections",
            &http,
            256,
            phase,
            Some(&token),
            true,
        )
        .await?;
        let https = Target::tls(secure, roots);
        run_phase("https keep-alive", &https, 64, phase, None, true).await?;
        run_phase("https handshakes", &https, 16, phase, None, false).await
    }
    .await;
    // SIGTERM, as an operator stops it: an instrumented build writes its profile as
    // it exits. SAFETY: kill(2) on the child's PID, which has not been waited for.
    unsafe { libc::kill(gateway.id() as libc::pid_t, libc::SIGTERM) };
    let status = gateway.wait()?;
    if trained.is_err() || !status.success() {
        let log = std::fs::read_to_string(dir.join("meridian.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        eprintln!("meridian's log, last lines:");
        for l in tail.iter().rev() {
            eprintln!("  {l}");
        }
    }
    trained?;
    ensure!(status.success(), "meridian exited with {status}");
    Ok(())
}

/// The bundled test database, built in: the binary trains wherever it runs, and a
/// build context without the file fails to compile rather than to train.
const TEST_GEOIP: &[u8] = include_bytes!("../../geoip/test-city.mmdb");

fn gateway_config(
    listen: u16,
    secure: u16,
    admin: u16,
    origins: [SocketAddr; 2],
    (cert, key): &(PathBuf, PathBuf),
    geoip: &Path,
) -> String {
    let [o1, o2] = origins;
    format!(
        r#"local_region: eu-west-1
listeners:
  - address: "127.0.0.1:{listen}"
  - address: "127.0.0.1:{secure}"
    tls: {{ certificates: [ {{ cert: "{cert}", key: "{key}" }} ] }}
admin: {{ address: "127.0.0.1:{admin}" }}
client_ip: {{ trusted_proxies: [127.0.0.1/32] }}
geoip: {{ database: "{geoip}" }}
write_region: eu-west-1
regions:
  eu-west-1: {{ weight: 100, origins: [ {{ address: "{o1}" }} ] }}
  us-east-1: {{ weight: 100, traffic_dial: 90, origins: [ {{ address: "{o2}" }} ] }}
  ap-southeast-1: {{ weight: 50, origins: [ {{ address: "{o1}" }} ] }}
health: {{ interval: 1s, timeout: 500ms }}
routing:
  steering: geo
  geo:
    continents: {{ EU: eu-west-1, NA: us-east-1, AS: ap-southeast-1 }}
    default: us-east-1
  residency:
    - {{ name: eu, continents: [EU], regions: [eu-west-1], write_region: eu-west-1 }}
routes:
  - match: {{ path_prefix: /api }}
    writes: write_region
    read_your_writes: {{ window: 10m }}
  - match: {{ path_prefix: /static }}
    steering: weighted
sessions: {{ keys_file: session.keys }}
access_log: {{ enabled: true, sample: 1.0 }}
"#,
        cert = cert.display(),
        key = key.display(),
        geoip = geoip.display(),
    )
}

/// One of `meridian demo`'s origins on a free loopback port.
async fn origin(region: &str) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(meridian::cli::demo::serve_origin(listener, region.into()));
    Ok(addr)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A CA and a certificate it signs for TLS_NAME (written as PEM for the gateway),
/// and the client's roots: the CA.
fn certificate(dir: &Path) -> anyhow::Result<((PathBuf, PathBuf), rustls::RootCertStore)> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate()?;
    let ca = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let leaf = CertificateParams::new(vec![TLS_NAME.to_string()])?.signed_by(&key, &ca, &ca_key)?;
    let paths = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&paths.0, leaf.pem())?;
    std::fs::write(&paths.1, key.serialize_pem())?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone())?;
    Ok((paths, roots))
}

async fn wait_ready(admin: u16) -> anyhow::Result<()> {
    let ready = Target::plain(admin);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(head) = one(&ready, &mut None, get("/readyz")).await {
            if head.status == 200 {
                return Ok(());
            }
        }
        ensure!(Instant::now() < deadline, "meridian not ready within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A real write token, from one POST through the write route.
async fn write_token(http: &Target) -> anyhow::Result<String> {
    let post = Request::post("/api/items")
        .header("host", "train.meridian.test")
        .header("x-forwarded-for", CLIENTS[1])
        .body(Empty::new())?;
    let head = one(http, &mut None, post).await?;
    ensure!(
        head.status == 200,
        "write through meridian: status {}",
        head.status
    );
    let token = head
        .headers
        .get("x-meridian-write-token")
        .context("no write token from meridian")?;
    Ok(token.to_str()?.to_string())
}

fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(path)
        .header("host", TLS_NAME)
        .body(Empty::new())
        .expect("a valid request")
}

/// Request `n` of loadtest/mix.lua's mix: every 4th on /static, the rest /api reads,
/// every 10th with the write-token cookie.
fn mix(n: u64, token: Option<&str>) -> Request<Empty<Bytes>> {
    let path = if n % 4 == 0 {
        "/static/app.js".to_string()
    } else {
        format!("/api/items/{}", n % 1000)
    };
    let mut req = get(&path);
    let h = req.headers_mut();
    h.insert(
        "x-forwarded-for",
        CLIENTS[(n % CLIENTS.len() as u64) as usize]
            .parse()
            .unwrap(),
    );
    if let Some(t) = token.filter(|_| n % 10 == 0) {
        h.insert("cookie", format!("meridian_rw={t}").parse().unwrap());
    }
    req
}

/// Where the load goes: plain TCP or TLS (the CA's roots), on loopback.
#[derive(Clone)]
struct Target {
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

impl Target {
    fn plain(port: u16) -> Target {
        Target { port, tls: None }
    }

    fn tls(port: u16, roots: rustls::RootCertStore) -> Target {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring's default protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Target {
            port,
            tls: Some(tokio_rustls::TlsConnector::from(Arc::new(config))),
        }
    }

    async fn connect(&self) -> anyhow::Result<Sender> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await?;
        tcp.set_nodelay(true)?;
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(TLS_NAME)?;
                Box::new(tls.connect(name, tcp).await?)
            }
        };
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(conn);
        Ok(sender)
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    other: AtomicU64,
    errors: AtomicU64,
}

/// `conns` closed-loop clients for `length`, each on a keep-alive connection of its
/// own (or, with `keep_alive` off, a new connection per request, `Connection: close`).
async fn run_phase(
    name: &str,
    target: &Target,
    conns: usize,
    length: Duration,
    token: Option<&str>,
    keep_alive: bool,
) -> anyhow::Result<()> {
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..conns {
        let (target, tally, stop, counter) =
            (target.clone(), tally.clone(), stop.clone(), counter.clone());
        let token = token.map(str::to_string);
        clients.push(tokio::spawn(async move {
            let mut sender: Option<Sender> = None;
            while !stop.load(Relaxed) {
                let mut req = mix(counter.fetch_add(1, Relaxed), token.as_deref());
                if !keep_alive {
                    req.headers_mut()
                        .insert("connection", "close".parse().unwrap());
                }
                match one(&target, &mut sender, req).await {
                    Ok(head) if head.status == 200 => tally.ok.fetch_add(1, Relaxed),
                    Ok(_) => tally.other.fetch_add(1, Relaxed),
                    Err(_) => {
                        sender = None;
                        tally.errors.fetch_add(1, Relaxed)
                    }
                };
                if !keep_alive {
                    sender = None;
                }
            }
        }));
    }
    tokio::time::sleep(length).await;
    stop.store(true, Relaxed);
    for c in clients {
        c.await?;
    }
    let (ok, other, errors) = (
        tally.ok.load(Relaxed),
        tally.other.load(Relaxed),
        tally.errors.load(Relaxed),
    );
    println!("meridian-train: {name}: {ok} answered 200, {other} other, {errors} errors");
    if ok == 0 || other + errors > ok / 100 {
        bail!("{name}: {ok} answered 200, {other} other, {errors} errors");
    }
    Ok(())
}

/// One request on the client's connection, opening one when it has none (or the
/// last one closed; `&mut None` for a connection of its own): the answer's head,
/// its body read to the end.
async fn one(
    target: &Target,
    sender: &mut Option<Sender>,
    req: Request<Empty<Bytes>>,
) -> anyhow::Result<hyper::http::response::Parts> {
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        *sender = Some(target.connect().await?);
    }
    let s = sender.as_mut().expect("connected above");
    s.ready().await?;
    let (head, body) = s.send_request(req).await?.into_parts();
    body.collect().await?;
    Ok(head)
}
