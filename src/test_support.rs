//! Fixtures for unit tests: a config file on disk, for the tests that need a
//! `Snapshot` or a `Shared` built the way the gateway builds them.

use std::path::PathBuf;

/// Two regions, r1 and r2, one origin each (127.0.0.1:1 and :2).
pub const TWO_REGIONS: &str = "\
local_region: r1
listeners: [{ address: 127.0.0.1:8080 }]
admin: { address: 127.0.0.1:9901 }
regions:
  r1: { origins: [{ address: 127.0.0.1:1 }] }
  r2: { origins: [{ address: 127.0.0.1:2 }] }
";

/// A config file in a folder of its own, removed when this is dropped.
pub struct ConfigFile(PathBuf);

impl ConfigFile {
    /// [`TWO_REGIONS`], in a folder named after `name`.
    pub fn new(name: &str) -> ConfigFile {
        ConfigFile::with(name, TWO_REGIONS)
    }

    /// `text`, in a folder named after `name` (unique per call).
    pub fn with(name: &str, text: &str) -> ConfigFile {
        use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
        static CALLS: AtomicU32 = AtomicU32::new(0);
        let n = CALLS.fetch_add(1, Relaxed);
        let dir =
            std::env::temp_dir().join(format!("meridian-test-{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("meridian.yaml");
        std::fs::write(&path, text).unwrap();
        ConfigFile(path)
    }

    pub fn path(&self) -> PathBuf {
        self.0.clone()
    }

    /// The file, loaded and compiled with a fresh health registry.
    pub fn snapshot(&self) -> crate::core::snapshot::Snapshot {
        let loaded = crate::core::config::load(&self.0).unwrap_or_else(|e| panic!("{e:?}"));
        crate::core::snapshot::Snapshot::build(
            &loaded,
            &crate::core::health::HealthRegistry::default(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
