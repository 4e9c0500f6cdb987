//! `meridian run`: assembles the Pingora server (proxy listeners), the admin
//! listener and the signal handling, then serves until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig, DEFAULT_L4_WRITE_BUFFER_SIZE};
use pingora::proxy::HttpProxy;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::downstream::Downstream;
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
    let snap = shared.snapshot.load_full();
    let cfg = &snap.config;
    let admin = std::net::TcpListener::bind(cfg.admin.address)
        .with_context(|| format!("admin.address {}", cfg.admin.address))?;
    // Fail early and clearly when a proxy port is taken, before Pingora starts.
    for l in &cfg.listeners {
        drop(
            std::net::TcpListener::bind(l.address)
                .with_context(|| format!("listeners: cannot bind {}", l.address))?,
        );
    }

    let mut conf = ServerConf {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        grace_period_seconds: Some(cfg.shutdown.grace_period.get().as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: 1024,
        ..ServerConf::default()
    };
    if let Ok(t) = std::env::var("MERIDIAN_THREADS") {
        conf.threads = t.parse().context("MERIDIAN_THREADS")?;
    }

    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut opts = HttpServerOptions::default();
    opts.h2c = true;
    let mut http = HttpProxy::new(
        Proxy {
            shared: shared.clone(),
        },
        server.configuration.clone(),
    );
    http.server_options = Some(opts);
    http.handle_init_modules();
    let app = Downstream::new(http, shared.clone());
    let mut proxy = Service::new("meridian proxy".into(), app);
    // No L4 read buffer: a connection's next request is read by
    // `Deadline::poll_next_request` into a stack buffer and then into Pingora's header
    // buffer, so a buffer per connection (64 KiB by default) would only hold idle
    // clients' memory (see loadtest/RESULTS.md).
    let l4 = L4BufferSettings::new(
        l4_buffer("MERIDIAN_L4_READ_BUFFER", 0),
        l4_buffer("MERIDIAN_L4_WRITE_BUFFER", DEFAULT_L4_WRITE_BUFFER_SIZE),
    );
    for (i, l) in cfg.listeners.iter().enumerate() {
        let addr = l.address.to_string();
        if l.tls.is_none() {
            proxy.add_listener(ListenerConfig::tcp(&addr).l4_buffer(l4));
            continue;
        }
        // Certificates come from the snapshot at each handshake (see src/tls.rs);
        // the paths given here are never read.
        let mut tls = TlsSettings::intermediate("", "").context("TLS settings")?;
        tls.set_cert_resolver(Arc::new(crate::tls::SniResolver {
            shared: shared.clone(),
            index: i,
        }));
        tls.enable_h2();
        proxy.add_listener(ListenerConfig::tcp(&addr).tls(tls).l4_buffer(l4));
    }
    server.add_service(proxy);
    server.add_service(background_service(
        "admin",
        AdminService {
            listener: Mutex::new(Some(admin)),
            shared: shared.clone(),
        },
    ));
    server.add_service(background_service(
        "config reload",
        ReloadService {
            shared: shared.clone(),
        },
    ));
    server.add_service(background_service(
        "health probes",
        ProbeService {
            shared: shared.clone(),
        },
    ));
    server.add_service(background_service(
        "dns reconciler",
        DnsService {
            shared: shared.clone(),
        },
    ));
    tracing::info!(
        sha256 = %snap.sha256,
        listeners = ?cfg.listeners.iter().map(|l| l.address).collect::<Vec<_>>(),
        admin = %cfg.admin.address,
        "meridian serving"
    );
    drop(snap);
    server.run(RunArgs {
        shutdown_signal: Box::new(Signals { shared }),
    });
    Ok(())
}

/// Bytes of an L4 buffer per client connection, from `var` (for measuring) or
/// the default given.
fn l4_buffer(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct AdminService {
    listener: Mutex<Option<std::net::TcpListener>>,
    shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, _shutdown: ShutdownWatch) {
        // Keeps answering through the grace period, so /readyz can say 503 while
        // in-flight requests finish; it ends with the process.
        let listener = self.listener.lock().ok().and_then(|mut l| l.take());
        if let Some(l) = listener {
            crate::admin::serve(l, self.shared.clone()).await;
        }
    }
}

/// SIGHUP and file-change reloads.
struct ReloadService {
    shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for ReloadService {
    async fn start(&self, shutdown: ShutdownWatch) {
        crate::reload::watch(self.shared.clone(), shutdown).await;
    }
}

/// Active health probing; readiness flips once every origin was probed.
struct ProbeService {
    shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for ProbeService {
    async fn start(&self, shutdown: ShutdownWatch) {
        crate::health::probe::supervise(self.shared.clone(), shutdown).await;
    }
}

/// Keeps Route 53 in line with region health (idle while `dns.enabled` is off).
struct DnsService {
    shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for DnsService {
    async fn start(&self, shutdown: ShutdownWatch) {
        crate::dns::run(self.shared.clone(), shutdown).await;
    }
}

/// SIGTERM and SIGINT both shut down gracefully: readiness drops first, then
/// listeners close and in-flight requests get the grace period.
struct Signals {
    shared: Arc<Shared>,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers; shutting down");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = int.recv() => tracing::info!("SIGINT: draining"),
        }
        self.shared.begin_shutdown();
        ShutdownSignal::GracefulTerminate
    }
}
