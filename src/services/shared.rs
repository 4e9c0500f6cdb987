//! What the running gateway's parts share: the snapshot holder, health state,
//! metrics and the readiness latches. Nothing else is shared.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::core::config::{self, ConfigError};
use crate::core::health::HealthRegistry;
use crate::core::snapshot::Snapshot;
use crate::telemetry::labels::ReloadResult;
use crate::telemetry::metrics::Metrics;
use crate::util::lock::lock;

/// Re-exported for the tests and tools that stamp times the way the gateway does.
pub use crate::util::clock::now_ms;

/// Shared state of one gateway process.
pub struct Shared {
    /// The one swap point for everything the config defines.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub health: HealthRegistry,
    pub metrics: Metrics,
    pub config_path: PathBuf,
    /// Set once every origin was probed once (or probing is not configured).
    probed: AtomicBool,
    /// Wakes `wait_probed` when `probed` is set.
    probed_notify: tokio::sync::Notify,
    /// The addresses `run` bound (a port 0 in the config is the port the kernel
    /// chose); unset before binding and outside `run`.
    pub bound: std::sync::OnceLock<Bound>,
    /// Set on SIGTERM/SIGINT: /readyz answers 503 from then on.
    shutting_down: AtomicBool,
    /// What the Route 53 reconciler published of its last sync (it owns its
    /// status; this is the copy `/admin/state` shows). Empty before the first sync.
    dns_status: Mutex<crate::services::api::DnsDoc>,
    /// Recent state changes (`GET /admin/events`).
    pub events: crate::telemetry::events::Journal,
    /// Where requests wait for a place at a full origin (`overload`).
    pub room: crate::proxy::overload::Room,
}

/// Where the gateway listens, as bound: a port 0 in the config is the port the
/// kernel chose, so this (not the config) is what to report and connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// In the config's order.
    pub listeners: Vec<std::net::SocketAddr>,
    pub admin: std::net::SocketAddr,
}

/// Why a config could not be loaded, every problem as one line.
#[derive(Debug)]
pub struct LoadFailure(pub Vec<String>);

impl std::fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for LoadFailure {}

impl Shared {
    /// Loads the config at `path` and builds the first snapshot.
    pub fn load(path: PathBuf) -> Result<Arc<Shared>, LoadFailure> {
        // Rolling windows count from process start, not from the first request.
        crate::util::clock::monotonic_ms();
        let health = HealthRegistry::default();
        let metrics = Metrics::new();
        let snap = build_snapshot(&path, &health)?;
        metrics
            .config_reloads
            .with_label_values(&[ReloadResult::Ok.as_str()])
            .inc();
        metrics
            .config_info
            .with_label_values(&[&snap.sha256])
            .set(1);
        let events = crate::telemetry::events::Journal::new(
            snap.admin.event_journal_size,
            metrics.events.clone(),
        );
        Ok(Arc::new(Shared {
            events,
            snapshot: Arc::new(ArcSwap::from_pointee(snap)),
            health,
            metrics,
            config_path: path,
            probed: AtomicBool::new(false),
            probed_notify: tokio::sync::Notify::new(),
            bound: std::sync::OnceLock::new(),
            shutting_down: AtomicBool::new(false),
            dns_status: Mutex::default(),
            room: Default::default(),
        }))
    }

    /// Ready: a config is loaded, every origin was probed once, not shutting down.
    pub fn ready(&self) -> bool {
        self.probed.load(Ordering::Acquire) && !self.shutting_down.load(Ordering::Acquire)
    }
    pub fn mark_probed(&self) {
        self.probed.store(true, Ordering::Release);
        self.probed_notify.notify_waiters();
    }
    /// Returns once every origin was probed once: the moment `/readyz` first
    /// answers 200, unless a shutdown came first.
    pub async fn wait_probed(&self) {
        loop {
            // Registered before the flag is read, so a `mark_probed` in between
            // still wakes this waiter.
            let notified = self.probed_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.probed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }
    pub fn publish_dns_status(&self, status: &crate::services::api::DnsDoc) {
        *lock(&self.dns_status) = status.clone();
    }
    pub fn dns_status(&self) -> crate::services::api::DnsDoc {
        lock(&self.dns_status).clone()
    }
    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

/// Reads, validates and compiles the config at `path`.
pub fn build_snapshot(
    path: &std::path::Path,
    health: &HealthRegistry,
) -> Result<Snapshot, LoadFailure> {
    let loaded = config::load(path)
        .map_err(|errs| LoadFailure(errs.iter().map(ConfigError::to_string).collect()))?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    Snapshot::build(&loaded, health).map_err(|errs| {
        LoadFailure(
            errs.iter()
                .map(|e| format!("{}: {e}", path.display()))
                .collect(),
        )
    })
}
