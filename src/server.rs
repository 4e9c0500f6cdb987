//! `meridian run`: binds the proxy and admin listeners, starts the background
//! services (admin, config reload, health probes, DNS reconciler) on one tokio
//! runtime, and serves until SIGTERM or SIGINT, then drains.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::proxy::listener::{self, Listener};
use crate::proxy::Proxy;
use crate::state::Shared;

/// Runs the gateway with the config at `path` until a shutdown signal.
pub fn run(path: PathBuf) -> anyhow::Result<()> {
    let shared = Shared::load(path.clone())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot start with {}", path.display()))?;
    run_with(shared)
}

/// Runs the gateway around already-loaded shared state (the demo uses this too).
pub fn run_with(shared: Arc<Shared>) -> anyhow::Result<()> {
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
    runtime.block_on(serve(shared))
}

async fn serve(shared: Arc<Shared>) -> anyhow::Result<()> {
    let snap = shared.snapshot.load_full();
    let admin = TcpListener::bind(snap.admin.address)
        .await
        .with_context(|| format!("admin.address {}", snap.admin.address))?;
    let mut listeners = Vec::with_capacity(snap.listeners.len());
    for (index, l) in snap.listeners.iter().enumerate() {
        let tcp = TcpListener::bind(l.address)
            .await
            .with_context(|| format!("listeners: cannot bind {}", l.address))?;
        let tls = if l.tls() {
            Some(tls_acceptor(&shared, index)?)
        } else {
            None
        };
        listeners.push(Listener {
            tcp,
            tls,
            proxy_protocol: l.proxy_protocol,
        });
    }
    let grace = snap.shutdown_grace;
    tracing::info!(
        sha256 = %snap.sha256,
        listeners = ?snap.listeners.iter().map(|l| l.address).collect::<Vec<_>>(),
        admin = %snap.admin.address,
        "meridian serving"
    );
    drop(snap);

    let (stop, shutdown) = tokio::sync::watch::channel(false);
    // Keeps answering through the drain, so /readyz says 503 while in-flight
    // requests finish; it ends with the process.
    tokio::spawn(crate::admin::serve(admin, shared.clone()));
    tokio::spawn(crate::reload::watch(shared.clone(), shutdown.clone()));
    tokio::spawn(crate::probes::supervise(shared.clone(), shutdown.clone()));
    tokio::spawn(crate::dns::run(shared.clone(), shutdown.clone()));

    let proxy = Arc::new(Proxy {
        shared: shared.clone(),
        passthrough: std::env::var_os("MERIDIAN_PASSTHROUGH").is_some_and(|v| v == "1"),
    });
    let live = Arc::new(());
    for l in listeners {
        tokio::spawn(listener::serve(
            l,
            proxy.clone(),
            shutdown.clone(),
            live.clone(),
        ));
    }

    let signal = stop_signal().await;
    tracing::info!("{signal}: draining");
    shared.begin_shutdown();
    let _ = stop.send(true);
    // Listeners stop accepting and idle connections close at once; requests in
    // flight get the grace period.
    let deadline = Instant::now() + grace;
    while Arc::strong_count(&live) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = Arc::strong_count(&live) - 1;
    if left > 0 {
        tracing::warn!(
            connections = left,
            "grace period over: closing what is left"
        );
    }
    Ok(())
}

/// rustls for one TLS listener: certificates from the snapshot by SNI at each
/// handshake (so a reload swaps them), ALPN offering HTTP/2 then HTTP/1.1.
fn tls_acceptor(shared: &Arc<Shared>, index: usize) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let resolver = Arc::new(crate::proxy::sni::SniResolver {
        snapshot: shared.snapshot.clone(),
        index,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
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
