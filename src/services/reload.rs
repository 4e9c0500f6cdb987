//! Reload: SIGHUP, a changed file, or `POST /admin/reload` all come here. The
//! new file is parsed, validated and compiled off to the side; only a complete
//! snapshot is swapped in, in one `ArcSwap::store`. A bad file changes nothing
//! but the error report: the old snapshot keeps serving.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::util::lock::lock;
use crate::util::shutdown::ShutdownWatch;

use crate::core::health::HealthRegistry;
use crate::core::snapshot::Snapshot;
use crate::services::shared::{build_snapshot, Bound, LoadFailure, Shared};
use crate::telemetry::events::Kind;
use crate::telemetry::labels::ReloadResult;

/// How often the config file is checked for changes.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new snapshot is serving.
    Swapped { sha256: String },
    /// The old snapshot keeps serving; every problem, one per line.
    Rejected(Vec<String>),
}

/// The reload service: rebuilds the snapshot on SIGHUP, on a changed file or on
/// `POST /admin/reload`, and keeps its own status (the last error, for
/// `/admin/state`; the certificates in service, to journal a replaced one).
pub struct Reloader {
    pub shared: Arc<Shared>,
    /// The last reload's error, cleared by a good reload.
    last_error: Mutex<Option<String>>,
    /// sha256 of each listener certificate file in service, by path.
    certificates: Mutex<BTreeMap<String, String>>,
    /// Held through a whole reload: a SIGHUP during `POST /admin/reload` waits
    /// for it instead of building beside it and swapping in an order nothing chose.
    one_at_a_time: Mutex<()>,
}

impl Reloader {
    pub fn new(shared: Arc<Shared>) -> Reloader {
        let certificates = Mutex::new(certificate_digests(&shared.snapshot.load()));
        Reloader {
            shared,
            last_error: Mutex::new(None),
            certificates,
            one_at_a_time: Mutex::new(()),
        }
    }

    /// Reloads the config file now. The snapshot is rebuilt even when the file is
    /// unchanged, because files it names (session keys, GeoIP database) may have
    /// changed.
    pub fn reload(&self, why: &str) -> Outcome {
        reload_with(self, why, build_snapshot)
    }

    /// Why the last reload was refused; None after a good one.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }
}

/// [`Reloader::reload`] with the step that builds the new snapshot as a parameter:
/// tests pass one that panics.
fn reload_with(reloader: &Reloader, why: &str, build: BuildFn) -> Outcome {
    let _serial = lock(&reloader.one_at_a_time);
    let shared = &*reloader.shared;
    let old = shared.snapshot.load();
    let built = build_caught(&shared.config_path, || {
        build(&shared.config_path, &shared.health)
    });
    let m = &shared.metrics;
    // The journal logs each outcome once (target `meridian::telemetry::events`).
    match built {
        Ok(mut snap) => {
            snap.keep_rate_limits(&old);
            warn_address_changes(shared, &snap, &old);
            let sha256 = snap.sha256.clone();
            m.config_info.reset();
            m.config_info.with_label_values(&[&sha256]).set(1);
            // Regions, origins and shifts the reload added start at 0 too.
            crate::telemetry::metric_labels::zero_known_series(m, &snap);
            let snap = Arc::new(snap);
            shared.snapshot.store(snap.clone());
            // Origins the new config dropped lose their health entries.
            let keys: std::collections::HashSet<&str> = snap
                .regions
                .iter()
                .flat_map(|r| r.origins.iter().map(|o| o.key.as_str()))
                .collect();
            shared.health.retain_origins(&|k| keys.contains(k));
            m.config_reloads
                .with_label_values(&[ReloadResult::Ok.as_str()])
                .inc();
            *lock(&reloader.last_error) = None;
            shared.events.set_capacity(snap.admin.event_journal_size);
            shared.events.record(
                Kind::ConfigApplied,
                shared.config_path.display().to_string(),
                Some(&old.sha256),
                Some(&sha256),
                format!("reload ({why})"),
            );
            journal_certificates(reloader, &snap);
            Outcome::Swapped { sha256 }
        }
        Err(e) => {
            let errors = e.0;
            m.config_reloads
                .with_label_values(&[ReloadResult::Error.as_str()])
                .inc();
            *lock(&reloader.last_error) = Some(errors.join("\n"));
            shared.events.record(
                Kind::ConfigRefused,
                shared.config_path.display().to_string(),
                Some(&old.sha256),
                Some("refused"),
                format!(
                    "reload ({why}) refused, the old config keeps serving: {}",
                    errors.join("; ")
                ),
            );
            Outcome::Rejected(errors)
        }
    }
}

/// Reads, validates and compiles a config file into a snapshot.
type BuildFn = fn(&Path, &HealthRegistry) -> Result<Snapshot, LoadFailure>;

/// Runs a snapshot build, turning a panic inside it into a failed build: a bug in
/// validating or compiling one file must cost that reload only, not the snapshot in
/// service, nor the watcher task or admin request that asked for it.
fn build_caught(
    path: &Path,
    build: impl FnOnce() -> Result<Snapshot, LoadFailure>,
) -> Result<Snapshot, LoadFailure> {
    // AssertUnwindSafe: a build reads the file and only adds entries to the health
    // registry's maps (each one insert under a lock, see `crate::util::lock`); nothing it
    // leaves behind is half-made, and a later good reload drops unused entries.
    std::panic::catch_unwind(AssertUnwindSafe(build)).unwrap_or_else(|payload| {
        let what = panic_message(payload.as_ref());
        tracing::error!(config = %path.display(), panic = what, "building the new config panicked; the old config keeps serving");
        Err(LoadFailure(vec![format!(
            "{}: the reload panicked (a bug in meridian): {what}",
            path.display()
        )]))
    })
}

use crate::util::panic_message;

/// sha256 of each listener certificate file `snap` names, by path, as the files
/// are now (read here, by the reload service, not by the compiled table).
fn certificate_digests(snap: &Snapshot) -> BTreeMap<String, String> {
    use sha2::Digest;
    snap.listeners
        .iter()
        .flat_map(|l| &l.certificates)
        .map(|(cert, _key)| {
            let digest = std::fs::read(cert)
                .map(|b| {
                    sha2::Sha256::digest(b)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect()
                })
                .unwrap_or_default();
            (cert.display().to_string(), digest)
        })
        .collect()
}

/// Journals each listener certificate a reload replaced (or added). The snapshot
/// just built read these files; reading them again may see a newer write, which the
/// next reload (the file's change triggers one) then reports as well.
fn journal_certificates(reloader: &Reloader, snap: &Snapshot) {
    let now = certificate_digests(snap);
    let mut seen = lock(&reloader.certificates);
    let shared = &reloader.shared;
    for (path, digest) in &now {
        let before = seen.get(path);
        if before != Some(digest) {
            let short = |d: &str| format!("sha256:{}", &d[..d.len().min(16)]);
            shared.events.record(
                Kind::CertificateReload,
                path.as_str(),
                before.map(|d| short(d)).as_deref(),
                Some(&short(digest)),
                "certificate file changed; new handshakes get the new certificate",
            );
        }
    }
    *seen = now;
}

/// Logs, one line each, the listener and admin addresses of a reloaded config that
/// differ from those in service: sockets are bound once, so these need a restart.
fn warn_address_changes(shared: &Shared, new: &Snapshot, old: &Snapshot) {
    // Outside `run` nothing is bound: the old config's addresses stand in.
    let in_service = shared.bound.get().cloned().unwrap_or_else(|| Bound {
        listeners: old.listeners.iter().map(|l| l.address).collect(),
        admin: old.admin.address,
    });
    let listeners: Vec<SocketAddr> = new.listeners.iter().map(|l| l.address).collect();
    for change in address_changes(&listeners, new.admin.address, &in_service) {
        tracing::warn!("{change}: listener and admin addresses take effect on restart only");
    }
}

/// What differs between the addresses a config names (`listeners`, `admin`) and
/// those bound, one line each.
/// A configured port 0 matches whatever port was bound on that address, so a file
/// that still says 0, or now names the port chosen, is no change.
pub fn address_changes(listeners: &[SocketAddr], admin: SocketAddr, bound: &Bound) -> Vec<String> {
    let same = |configured: SocketAddr, bound: SocketAddr| {
        configured == bound || (configured.port() == 0 && configured.ip() == bound.ip())
    };
    let mut changes = Vec::new();
    if !same(admin, bound.admin) {
        changes.push(format!(
            "admin.address is now {}, still listening on {}",
            admin, bound.admin
        ));
    }
    let n = listeners.len().max(bound.listeners.len());
    for i in 0..n {
        match (listeners.get(i).copied(), bound.listeners.get(i)) {
            (Some(configured), Some(&b)) if !same(configured, b) => changes.push(format!(
                "listeners[{i}].address is now {configured}, still listening on {b}"
            )),
            (Some(configured), None) => changes.push(format!(
                "listeners[{i}] ({configured}) is new, not listening until restart"
            )),
            (None, Some(b)) => changes.push(format!(
                "listeners[{i}] is gone from the file, still listening on {b}"
            )),
            _ => {}
        }
    }
    changes
}

/// The config file and the TLS files it names: a change to any of them reloads.
fn watched(shared: &Shared) -> Vec<PathBuf> {
    let snap = shared.snapshot.load();
    let mut files = vec![shared.config_path.clone()];
    files.extend(snap.tls_files.iter().cloned());
    files
}

/// (mtime, size) of each watched file; the config file's first.
fn stamps(shared: &Shared) -> Vec<Option<(SystemTime, u64)>> {
    watched(shared)
        .iter()
        .map(|f| crate::util::files::stamp(f))
        .collect()
}

/// Watches for SIGHUP and for changes of the watched files (mtime or size) until shutdown.
pub async fn watch(reloader: Arc<Reloader>, mut shutdown: ShutdownWatch) {
    let shared = reloader.shared.clone();
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!("cannot watch SIGHUP: {e}");
            None
        }
    };
    let mut seen = stamps(&shared);
    // A change is applied once two looks in a row agree on it: an editor writing
    // the file in place (truncate, then write) is not caught half-way.
    let mut settling: Option<Vec<Option<(SystemTime, u64)>>> = None;
    loop {
        let hup_recv = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = hup_recv => {
                let r = reloader.clone();
                let _ = tokio::task::spawn_blocking(move || r.reload("sighup")).await;
            }
            _ = tokio::time::sleep(WATCH_EVERY) => {
                let now = stamps(&shared);
                // A missing or empty config file (mid-rename, just truncated) is not
                // a change worth a failed reload.
                let readable = now.first().is_some_and(|s| s.is_some_and(|(_, len)| len > 0));
                if !readable || now == seen {
                    settling = None;
                } else if settling.as_ref() != Some(&now) {
                    settling = Some(now);
                } else {
                    // If the new config names other files, the next look differs
                    // and reloads once more: harmless, and nothing is missed.
                    seen = now;
                    settling = None;
                    let r = reloader.clone();
                    let _ = tokio::task::spawn_blocking(move || r.reload("file changed")).await;
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::ConfigFile;

    /// The listener and admin addresses of a config naming these.
    fn config(listeners: &[&str], admin: &str) -> (Vec<SocketAddr>, SocketAddr) {
        let list: Vec<String> = listeners
            .iter()
            .map(|a| format!("{{address: \"{a}\"}}"))
            .collect();
        let yaml = format!(
            "local_region: a\nlisteners: [{}]\nadmin: {{address: \"{admin}\"}}\n\
             regions: {{a: {{origins: [{{address: 127.0.0.1:1001}}]}}}}\n",
            list.join(", ")
        );
        let c = crate::core::config::parse("test.yaml", &yaml)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .0;
        (
            c.listeners.iter().map(|l| l.address).collect(),
            c.admin.address,
        )
    }

    fn changes(c: &(Vec<SocketAddr>, SocketAddr), b: &Bound) -> Vec<String> {
        address_changes(&c.0, c.1, b)
    }

    fn bound(listeners: &[&str], admin: &str) -> Bound {
        Bound {
            listeners: listeners.iter().map(|a| a.parse().unwrap()).collect(),
            admin: admin.parse().unwrap(),
        }
    }

    #[test]
    fn port_zero_or_the_port_it_bound_is_no_change() {
        let b = bound(&["127.0.0.1:41234", "127.0.0.1:41236"], "127.0.0.1:41235");
        let still_zero = config(&["127.0.0.1:0", "127.0.0.1:0"], "127.0.0.1:0");
        assert_eq!(changes(&still_zero, &b), Vec::<String>::new());
        let now_named = config(&["127.0.0.1:41234", "127.0.0.1:0"], "127.0.0.1:41235");
        assert_eq!(changes(&now_named, &b), Vec::<String>::new());
    }

    #[test]
    fn a_moved_added_or_removed_address_is_named() {
        let b = bound(&["127.0.0.1:8080"], "127.0.0.1:9901");
        let moved = config(&["127.0.0.1:8081", "127.0.0.1:8082"], "0.0.0.0:0");
        assert_eq!(
            changes(&moved, &b),
            [
                "admin.address is now 0.0.0.0:0, still listening on 127.0.0.1:9901",
                "listeners[0].address is now 127.0.0.1:8081, still listening on 127.0.0.1:8080",
                "listeners[1] (127.0.0.1:8082) is new, not listening until restart",
            ]
        );
        let b = bound(&["127.0.0.1:8080", "127.0.0.1:8081"], "127.0.0.1:9901");
        let fewer = config(&["127.0.0.1:8080"], "127.0.0.1:9901");
        assert_eq!(
            changes(&fewer, &b),
            ["listeners[1] is gone from the file, still listening on 127.0.0.1:8081"]
        );
    }

    fn reloads(shared: &Shared, result: &str) -> u64 {
        shared
            .metrics
            .config_reloads
            .with_label_values(&[result])
            .get()
    }

    #[test]
    fn a_panicking_build_is_a_counted_refusal_and_the_old_config_keeps_serving() {
        let file = ConfigFile::new("reload-panic");
        let reloader = Reloader::new(Shared::load(file.path()).unwrap());
        let shared = &reloader.shared;
        let before = shared.snapshot.load_full();
        let errors_before = reloads(shared, "error");

        let outcome = reload_with(&reloader, "test", |_, _| panic!("index out of bounds"));

        let Outcome::Rejected(errors) = outcome else {
            panic!("{outcome:?}");
        };
        assert!(errors[0].contains("panicked"), "{errors:?}");
        assert!(errors[0].contains("index out of bounds"), "{errors:?}");
        assert!(Arc::ptr_eq(&before, &shared.snapshot.load_full()));
        assert_eq!(reloads(shared, "error"), errors_before + 1);
        assert_eq!(reloader.last_error().as_deref(), Some(errors[0].as_str()));
        // Reloading still works afterwards.
        let ok_before = reloads(shared, "ok");
        assert!(matches!(reloader.reload("test"), Outcome::Swapped { .. }));
        assert_eq!(reloads(shared, "ok"), ok_before + 1);
        assert!(reloader.last_error().is_none());
    }

    #[test]
    fn reloads_run_one_at_a_time() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        static NOW: AtomicUsize = AtomicUsize::new(0);
        static MOST: AtomicUsize = AtomicUsize::new(0);
        fn slow_build(path: &Path, reg: &HealthRegistry) -> Result<Snapshot, LoadFailure> {
            let running = NOW.fetch_add(1, SeqCst) + 1;
            MOST.fetch_max(running, SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(50));
            NOW.fetch_sub(1, SeqCst);
            build_snapshot(path, reg)
        }
        let file = ConfigFile::new("reload-serial");
        let reloader = Reloader::new(Shared::load(file.path()).unwrap());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    assert!(matches!(
                        reload_with(&reloader, "test", slow_build),
                        Outcome::Swapped { .. }
                    ))
                });
            }
        });
        assert_eq!(MOST.load(SeqCst), 1, "two reloads built at once");
    }

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        let caught = |f: fn()| std::panic::catch_unwind(f).unwrap_err();
        assert_eq!(panic_message(caught(|| panic!("plain")).as_ref()), "plain");
        let n = 3;
        let formatted = std::panic::catch_unwind(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(panic_message(formatted.as_ref()), "formatted 3");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(panic_message(other.as_ref()), "a panic without a message");
    }
}
