//! `meridian run`: binds the proxy and admin listeners, starts the background
//! services (admin, config reload, health probes, DNS reconciler) on one tokio
//! runtime, and serves until SIGTERM or SIGINT, then drains.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::proxy::listener::{self, Listener};
use crate::proxy::Proxy;
use crate::services::shared::Shared;

pub use crate::services::shared::Bound;

/// Called once, when the gateway is first ready (`/readyz` turns 200), with the
/// bound addresses. An error stops the gateway: whoever waits for it would wait
/// forever.
pub type OnReady = Box<dyn FnOnce(&Bound) -> anyhow::Result<()> + Send>;

/// Runs the gateway with the config at `path` until a shutdown signal.
pub fn run(path: PathBuf, on_ready: Option<OnReady>) -> anyhow::Result<()> {
    let shared = Shared::load(path.clone())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot start with {}", path.display()))?;
    run_with(shared, on_ready)
}

/// Runs the gateway around already-loaded shared state (the demo uses this too).
pub fn run_with(shared: Arc<Shared>, on_ready: Option<OnReady>) -> anyhow::Result<()> {
    crate::telemetry::metric_labels::zero_known_series(&shared.metrics, &shared.snapshot.load());
    let threads = match std::env::var("MERIDIAN_THREADS") {
        Ok(t) => t.parse().context("MERIDIAN_THREADS")?,
        Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    // One thread: a current-thread runtime, with no work-stealing machinery to pay for.
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .context("tokio runtime")?;
    runtime.block_on(serve(shared, on_ready))
}

/// The accept queue asked of the kernel for client listeners (it caps it at
/// `net.core.somaxconn`). The 128 that a plain bind asks for overflows when a burst
/// of new clients (a failover, a DNS or load-balancer shift) arrives while the
/// thread is busy serving: the kernel then drops SYNs, and each costs its client a
/// one-second retransmit. nginx asks for 511.
const LISTEN_BACKLOG: u32 = 4096;

/// A client listener on `addr` with [`LISTEN_BACKLOG`] (address reuse as a
/// plain bind has it, so a restart binds again at once).
fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Binds the admin listener and every proxy listener of the config in service.
async fn bind(shared: &Arc<Shared>) -> anyhow::Result<(TcpListener, Vec<Listener>, Bound)> {
    let snap = shared.snapshot.load_full();
    let admin = TcpListener::bind(snap.admin.address)
        .await
        .with_context(|| format!("admin.address {}", snap.admin.address))?;
    let mut bound = Bound {
        listeners: Vec::with_capacity(snap.listeners.len()),
        admin: admin.local_addr().context("admin listener address")?,
    };
    let mut listeners = Vec::with_capacity(snap.listeners.len());
    for (index, l) in snap.listeners.iter().enumerate() {
        let tcp =
            listen(l.address).with_context(|| format!("listeners: cannot bind {}", l.address))?;
        bound
            .listeners
            .push(tcp.local_addr().context("listener address")?);
        let tls = if l.tls() {
            Some(tls_acceptor(shared, index)?)
        } else {
            None
        };
        listeners.push(Listener {
            tcp,
            tls,
            proxy_protocol: l.proxy_protocol,
            slots: l
                .max_connections
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n as usize))),
        });
    }
    Ok((admin, listeners, bound))
}

async fn serve(shared: Arc<Shared>, on_ready: Option<OnReady>) -> anyhow::Result<()> {
    let (admin, listeners, bound) = bind(&shared).await?;
    let _ = shared.bound.set(bound.clone());
    let grace = shared.snapshot.load().shutdown_grace;
    tracing::info!(
        sha256 = %shared.snapshot.load().sha256,
        listeners = ?bound.listeners,
        admin = %bound.admin,
        "meridian serving"
    );

    let (stop, shutdown) = tokio::sync::watch::channel(false);
    // Keeps answering through the drain, so /readyz says 503 while in-flight
    // requests finish; it ends with the process.
    let reloader = Arc::new(crate::services::reload::Reloader::new(shared.clone()));
    tokio::spawn(crate::services::admin::serve(
        admin,
        shared.clone(),
        reloader.clone(),
    ));
    tokio::spawn(crate::services::reload::watch(reloader, shutdown.clone()));
    tokio::spawn(crate::services::probes::supervise(
        shared.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(crate::services::dns::run(shared.clone(), shutdown.clone()));
    tokio::spawn(crate::services::resolver::run(
        shared.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(expire_idle(shared.clone(), shutdown.clone()));
    tokio::spawn(watch_shedding(shared.clone(), shutdown.clone()));

    let proxy = Arc::new(proxy(shared.clone()));
    let live = crate::util::shutdown::Connections::default();
    for l in listeners {
        tokio::spawn(listener::serve(
            l,
            proxy.clone(),
            shutdown.clone(),
            live.clone(),
        ));
    }

    // A signal before the gateway is ready skips the announcement.
    let signal = stop_signal();
    tokio::pin!(signal);
    let signal = tokio::select! {
        s = &mut signal => s,
        announced = announce_ready(&shared, &bound, on_ready) => {
            announced?;
            signal.await
        }
    };
    tracing::info!("{signal}: draining");
    shared.begin_shutdown();
    let _ = stop.send(true);
    // Listeners stop accepting and idle connections close at once; requests in
    // flight get the grace period.
    let _ = tokio::time::timeout(grace, live.all_closed()).await;
    let left = live.count();
    if left > 0 {
        tracing::warn!(
            connections = left,
            "grace period over: closing what is left"
        );
    }
    Ok(())
}

/// The data path. In a `bench-engine` build (loadtest/perf's `engine` row, never the
/// product), `MERIDIAN_PASSTHROUGH=1` makes it the engine with no policy; elsewhere
/// that variable is ignored, and said to be.
fn proxy(shared: Arc<Shared>) -> Proxy {
    let asked = std::env::var_os("MERIDIAN_PASSTHROUGH").is_some_and(|v| v == "1");
    #[cfg(feature = "bench-engine")]
    {
        if asked {
            tracing::warn!("bench-engine build: MERIDIAN_PASSTHROUGH=1, no policy at all");
        }
        Proxy::new(shared).passthrough(asked)
    }
    #[cfg(not(feature = "bench-engine"))]
    {
        if asked {
            tracing::warn!(
                "MERIDIAN_PASSTHROUGH ignored: only a build with the bench-engine feature has it"
            );
        }
        Proxy::new(shared)
    }
}

/// Waits until the gateway is ready, then logs it and calls `on_ready`.
async fn announce_ready(
    shared: &Shared,
    bound: &Bound,
    on_ready: Option<OnReady>,
) -> anyhow::Result<()> {
    shared.wait_probed().await;
    tracing::info!(listeners = ?bound.listeners, admin = %bound.admin, "meridian ready");
    match on_ready {
        Some(f) => f(bound),
        None => Ok(()),
    }
}

/// `run --ready-file PATH`: an `OnReady` that writes the ready file. A file left
/// by an earlier run is removed now, so the file's appearance always means this
/// run is ready.
pub fn ready_file(path: PathBuf) -> anyhow::Result<OnReady> {
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("ready file {}", path.display()));
        }
        _ => {}
    }
    Ok(Box::new(move |bound: &Bound| {
        write_ready_file(&path, bound)
    }))
}

/// The ready file's document: the bound addresses and this process's id.
pub fn ready_document(bound: &Bound, pid: u32) -> serde_json::Value {
    serde_json::json!({
        "listeners": bound.listeners.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "admin": bound.admin.to_string(),
        "pid": pid,
    })
}

/// Writes the ready file atomically: to a temporary file in the same folder, then
/// renamed over `path`, so a reader never sees half a document.
fn write_ready_file(path: &Path, bound: &Bound) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("ready file {} names no file", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let doc = ready_document(bound, std::process::id());
    std::fs::write(&tmp, format!("{doc}\n"))
        .with_context(|| format!("ready file: cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        format!(
            "ready file: cannot rename {} to {}",
            tmp.display(),
            path.display()
        )
    })
}

/// rustls for one TLS listener: certificates from the snapshot by SNI at each
/// handshake (so a reload swaps them), ALPN offering HTTP/2 then HTTP/1.1.
fn tls_acceptor(shared: &Arc<Shared>, index: usize) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let resolver = Arc::new(crate::proxy::sni::SniResolver {
        snapshot: shared.snapshot.clone(),
        index,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(crate::proxy::tls::provider())
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Waits for SIGTERM or SIGINT; names the one that came.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; shutting down");
        return "no signal handlers";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Journals when shedding stops: a second with no request shed ends a spell
/// (its start is journaled by the request that began it).
async fn watch_shedding(shared: Arc<Shared>, mut shutdown: crate::util::shutdown::ShutdownWatch) {
    let (mut seen, mut spell_start) = (0, 0);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
        if let Some(shed) = shared.room.settle(&mut seen, &mut spell_start) {
            shared.events.record(
                crate::telemetry::events::Kind::Overload,
                "requests",
                Some("shedding"),
                Some("admitting"),
                format!("no request shed for a second; {shed} shed in the spell"),
            );
        }
    }
}

/// How often `expire_idle` looks: a kept connection lives at most
/// `timeouts.idle` plus this.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);

/// Closes pooled connections once unused for `timeouts.idle`, in the pool of
/// every endpoint in service, until shutdown. `take` passes over stale ones too,
/// but without traffic to an origin nothing would take them: its idle connections
/// (and their descriptors at both ends) would stay open until the origin closed
/// them. An endpoint no longer in service closes its pool when it is dropped.
async fn expire_idle(shared: Arc<Shared>, mut shutdown: crate::util::shutdown::ShutdownWatch) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EXPIRE_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        let snap = shared.snapshot.load_full();
        let max_idle = snap.data_path.pool_idle;
        for o in snap.regions.iter().flat_map(|r| &r.origins) {
            for e in o.endpoints.load().iter() {
                e.pool.expire(max_idle);
            }
        }
    }
}
