//! Shared end-to-end fixtures: the real `meridian` binary on free loopback ports,
//! simulated origins (`sim_origin::SimOrigin`), and polling helpers.
#![allow(dead_code)]

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[allow(unused_imports)] // not every test binary uses it
pub use sim_origin::SimOrigin;

pub mod certs;
pub mod dnsmasq;
pub mod endpoints;
pub mod origin;
pub mod peers;
pub mod raw;
pub mod sim_origin;

/// A fresh temporary directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "meridian-{tag}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Path of a file in the repository.
pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Polls `check` every 20 ms until it gives `Ok`, and returns that value; panics
/// after `within`, naming `what` and the last `Err` it gave (what was observed).
pub async fn eventually<T, Seen, Check, Fut>(within: Duration, what: &str, mut check: Check) -> T
where
    Seen: std::fmt::Debug,
    Check: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Seen>>,
{
    let deadline = Instant::now() + within;
    loop {
        let seen = match check().await {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}; last seen: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `Ok(seen)` when `ok`, else `Err(seen)`: an `eventually` check on a condition
/// that reports what it looked at.
pub fn seen_if<T>(ok: bool, seen: T) -> Result<T, T> {
    if ok {
        Ok(seen)
    } else {
        Err(seen)
    }
}

/// Waits until the `/metrics` sum of `name` with `labels` is `want` (gauges are
/// exported a few times a second, and some counters move after the request that
/// causes them), and fails after `within`.
pub async fn wait_metric(
    gw: &Gateway,
    name: &str,
    labels: &[(&str, &str)],
    want: f64,
    within: Duration,
) {
    let what = format!("{name}{labels:?} = {want}");
    eventually(within, &what, || async {
        let got = metric_sum(&gw.metrics().await, name, labels);
        seen_if((got - want).abs() < 1e-9, got)
    })
    .await;
}

/// A loopback address that refuses connections: a socket bound to a port the
/// kernel chose, never listening. Holding it keeps anyone else off that port.
pub struct RefusingPort {
    _socket: tokio::net::TcpSocket,
    pub addr: SocketAddr,
}

impl RefusingPort {
    pub fn bind() -> RefusingPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind("127.0.0.1:0".parse().unwrap())
            .expect("bind 127.0.0.1:0");
        let addr = socket.local_addr().expect("its address");
        RefusingPort {
            _socket: socket,
            addr,
        }
    }
}

/// The loopback TCP addresses process `pid` listens on (from `/proc`): how a test
/// learns the port a peer started with port 0 chose.
pub fn listening_addrs(pid: u32) -> Vec<SocketAddr> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    // /proc/net/tcp: `sl local_address rem_address st ... inode`, addresses as
    // hex `IP:PORT`, the IPv4 address printed as a native-endian u32 of its
    // network-order bytes.
    std::fs::read_to_string(format!("/proc/{pid}/net/tcp"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let listening = f.get(3) == Some(&"0A");
            if !listening || !inodes.contains(*f.get(9)?) {
                return None;
            }
            let (ip, port) = f[1].split_once(':')?;
            let ip = std::net::Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.to_ne_bytes());
            Some(SocketAddr::from((ip, u16::from_str_radix(port, 16).ok()?)))
        })
        .collect()
}

/// Waits until `child` (started with port 0) listens, and returns its one address;
/// fails if it exits first.
pub async fn wait_listening(child: &mut Child, what: &str) -> SocketAddr {
    let pid = child.id();
    eventually(
        Duration::from_secs(30),
        &format!("{what} listening"),
        || {
            let exited = child.try_wait().unwrap();
            async move {
                if let Some(status) = exited {
                    panic!("{what} exited: {status}");
                }
                match listening_addrs(pid)[..] {
                    [one] => Ok(one),
                    ref other => Err(other.to_vec()),
                }
            }
        },
    )
    .await
}

/// The real gateway binary, run with a config written to a temp dir.
pub struct Gateway {
    child: Option<Child>,
    /// The first proxy listener, as bound.
    pub addr: SocketAddr,
    /// Every proxy listener, as bound, in the config's order.
    pub listeners: Vec<SocketAddr>,
    pub admin: SocketAddr,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    /// Where `meridian run --ready-file` wrote the bound addresses.
    pub ready_file: PathBuf,
    /// Everything the gateway wrote to stderr so far (drained by a thread, so a
    /// chatty gateway never blocks on a full pipe).
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

/// What `meridian run --ready-file` writes.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Ready {
    pub listeners: Vec<SocketAddr>,
    pub admin: SocketAddr,
    pub pid: u32,
}

impl Gateway {
    /// Starts `meridian run` with `yaml`, in which `{{LISTEN}}` and `{{ADMIN}}`
    /// become `127.0.0.1:0` (the kernel picks free ports: no races between tests),
    /// and waits until it is ready; `addr` and `admin` are then what it bound.
    pub async fn start(yaml: &str) -> Gateway {
        Self::start_with_env(yaml, &[]).await
    }

    pub async fn start_with_env(yaml: &str, env: &[(&str, &str)]) -> Gateway {
        let dir = temp_dir("gw");
        let yaml = yaml
            .replace("{{LISTEN}}", "127.0.0.1:0")
            .replace("{{ADMIN}}", "127.0.0.1:0")
            .replace("{{REPO}}", env!("CARGO_MANIFEST_DIR"));
        let config_path = dir.join("meridian.yaml");
        std::fs::write(&config_path, yaml).unwrap();
        let ready_file = dir.join("ready.json");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_meridian"));
        cmd.arg("run")
            .arg("-c")
            .arg(&config_path)
            .arg("--ready-file")
            .arg(&ready_file)
            .env("RUST_LOG", "warn")
            .env("MERIDIAN_THREADS", "2")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn meridian");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let unbound: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let mut gw = Gateway {
            child: Some(child),
            addr: unbound,
            listeners: Vec::new(),
            admin: unbound,
            dir,
            config_path,
            ready_file,
            stderr,
            stderr_reader: Some(stderr_reader),
        };
        let ready = gw.wait_ready_file().await;
        assert_eq!(ready.pid, gw.pid(), "the ready file is this gateway's");
        gw.addr = ready.listeners[0];
        gw.listeners = ready.listeners;
        gw.admin = ready.admin;
        gw
    }

    /// Waits for the ready file (written once `/readyz` would answer 200), failing
    /// at once with the gateway's stderr if it exits first.
    async fn wait_ready_file(&mut self) -> Ready {
        let path = self.ready_file.clone();
        let child = self.child.as_mut().unwrap();
        let exited = eventually(Duration::from_secs(20), "the ready file", || {
            let exited = child.try_wait().unwrap();
            let text = std::fs::read_to_string(&path);
            async move {
                match (exited, text) {
                    (Some(status), _) => Ok(Err(status)),
                    (None, Ok(text)) => Ok(Ok(text)),
                    (None, Err(e)) => Err(e.kind()),
                }
            }
        })
        .await;
        match exited {
            Ok(text) => serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("ready file {}: {e}: {text}", path.display())),
            Err(status) => {
                if let Some(r) = self.stderr_reader.take() {
                    let _ = r.join();
                }
                panic!("meridian exited early ({status}): {}", self.stderr());
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends a signal (`TERM`, `INT`, `HUP`) to the gateway.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit (after a signal) and returns its status and stderr.
    pub fn wait(&mut self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                if let Some(r) = self.stderr_reader.take() {
                    let _ = r.join();
                }
                return (status, self.stderr());
            }
            assert!(Instant::now() < deadline, "gateway did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the gateway logged to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Body of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.admin_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sum of the samples of `name` in a Prometheus text exposition whose labels
/// contain every `k="v"` in `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The values `label` takes among the series of `name`.
pub fn label_values(text: &str, name: &str, label: &str) -> std::collections::BTreeSet<String> {
    let key = format!("{label}=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|l| {
            let value = l.split_once(&key)?.1;
            Some(value.split_once('"')?.0.to_string())
        })
        .collect()
}

/// Fails unless the series of counter `name` carry exactly the `label` values in
/// `known` (`meridian::telemetry::metric_labels`, the ones created at 0 at start): after a
/// test that made the code count, a value missing from that list shows here.
pub fn assert_only_known_labels(text: &str, name: &str, label: &str, known: &[&str]) {
    let known: std::collections::BTreeSet<String> = known.iter().map(|k| k.to_string()).collect();
    assert_eq!(
        label_values(text, name, label),
        known,
        "{name}{{{label}}}: counted values that are not created at 0 at start, or the reverse"
    );
}

impl Gateway {
    /// `GET /admin/state` as JSON.
    pub async fn state(&self) -> serde_json::Value {
        reqwest::get(self.admin_url("/admin/state"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// A simulated origin for `region` on an ephemeral loopback port.
pub async fn origin(region: &str) -> SimOrigin {
    SimOrigin::start(region, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// Waits until every connection to `origin` has ended (fails after `within`,
/// with the count still open).
pub async fn all_connections_closed(origin: &SimOrigin, within: Duration) {
    eventually(within, "every connection to the origin closed", || async {
        match origin.control.open_connections() {
            0 => Ok(()),
            n => Err(n),
        }
    })
    .await;
}

/// A gateway in front of one simulated origin, in us-east-1; `rest` is added to the
/// config (health, timeouts, shutdown, ...).
pub async fn one_origin_gateway(rest: &str) -> (Gateway, SimOrigin) {
    let o = origin("us-east-1").await;
    (gateway_in_front_of(o.addr, rest).await, o)
}

/// A gateway with one region, us-east-1, whose one origin is `origin`; `rest` is
/// added to the config.
pub async fn gateway_in_front_of(origin: SocketAddr, rest: &str) -> Gateway {
    Gateway::start(&one_region_config(origin, rest)).await
}

/// The config `gateway_in_front_of` starts with (for a test that rewrites it).
pub fn one_region_config(origin: SocketAddr, rest: &str) -> String {
    one_origin_config(&format!(r#"{{ address: "{origin}" }}"#), rest)
}

/// One region in us-east-1 with one origin, `entry` its YAML (address,
/// protocol, TLS, ...); `rest` is added to the config.
pub fn one_origin_config(entry: &str, rest: &str) -> String {
    format!(
        r#"
local_region: us-east-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}" }}
regions:
  us-east-1: {{ origins: [ {entry} ] }}
{rest}
"#
    )
}

/// A gateway with one TLS listener serving `leaf`, and one region, us-east-1,
/// whose one origin is `origin` (its YAML entry, `{ address: ..., ... }`); `rest`
/// is added to the config.
pub async fn tls_gateway(leaf: &certs::Leaf, origin: &str, rest: &str) -> Gateway {
    let yaml = format!(
        r#"
local_region: us-east-1
listeners:
  - address: "{{{{LISTEN}}}}"
    tls: {{ certificates: [ {{ cert: "{}", key: "{}" }} ] }}
admin: {{ address: "{{{{ADMIN}}}}" }}
regions:
  us-east-1: {{ origins: [ {origin} ] }}
{rest}
"#,
        leaf.cert.display(),
        leaf.key.display(),
    );
    Gateway::start(&yaml).await
}

/// Background load: `clients` keep-alive clients sending GETs to `url` until stopped.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(u64, u64)>>,
}

impl Load {
    pub fn start(url: String, clients: usize) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|_| {
                let (url, stop) = (url.clone(), stop.clone());
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    let (mut ok, mut failed) = (0, 0);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        match client.get(&url).send().await {
                            Ok(r) if r.status() == 200 => ok += 1,
                            _ => failed += 1,
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        Load { stop, tasks }
    }

    /// Stops the clients; (answered 200, failed).
    pub async fn finish(self) -> (u64, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (mut ok, mut failed) = (0, 0);
        for t in self.tasks {
            let (o, f) = t.await.unwrap();
            ok += o;
            failed += f;
        }
        (ok, failed)
    }
}

/// One whole response with a `Content-Length` from a keep-alive connection.
pub async fn read_response(s: &mut tokio::net::TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .expect("a content-length");
            if body.len() >= length {
                return text;
            }
        }
        let n = tokio::time::timeout(
            Duration::from_secs(3),
            tokio::io::AsyncReadExt::read(s, &mut buf),
        )
        .await
        .expect("a response in time")
        .unwrap();
        assert!(n > 0, "closed mid-response: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// A request body of `n` chunks of 64 KiB, made as it is polled (no length, so
/// it is sent chunked, and never held whole by the test).
pub struct Chunks(pub usize);

impl futures_core::Stream for Chunks {
    type Item = Result<bytes::Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if self.0 == 0 {
            return std::task::Poll::Ready(None);
        }
        self.0 -= 1;
        std::task::Poll::Ready(Some(Ok(bytes::Bytes::from(vec![b'u'; 64 << 10]))))
    }
}

/// Resident memory of process `pid` in MiB (`VmRSS`), 0 when it is gone.
pub fn rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// The highest `rss_mib(pid)` seen, sampled every 20 ms until dropped.
pub struct PeakRss {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    pub fn watch(pid: u32) -> PeakRss {
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss_mib(pid)));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                p.fetch_max(rss_mib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        PeakRss { peak, task }
    }

    pub fn peak(&self) -> u64 {
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Through a gateway in front of a `SimOrigin`: `mib` MiB up (`POST /upload`,
/// chunked, counted by the origin) and `mib` MiB down (`GET /bytes/N`, read as it
/// comes), checking both arrived whole. Returns the gateway's RSS before and its
/// peak during, in MiB.
pub async fn stream_both_ways(gw: &Gateway, mib: usize) -> (u64, u64) {
    const MIB: usize = 1 << 20;
    let before = rss_mib(gw.pid());
    let watch = PeakRss::watch(gw.pid());
    let r = reqwest::Client::new()
        .post(gw.url("/upload"))
        .body(reqwest::Body::wrap_stream(Chunks(mib * MIB / (64 << 10))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answer["received_bytes"], mib * MIB, "upload");
    let mut r = reqwest::get(gw.url(&format!("/bytes/{}", mib * MIB)))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut got = 0usize;
    while let Some(chunk) = r.chunk().await.unwrap() {
        got += chunk.len();
    }
    assert_eq!(got, mib * MIB, "download");
    (before, watch.peak())
}
