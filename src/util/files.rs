//! Files the config names: where a path written in it points, and the stamp by
//! which the reload watcher and the GeoIP cache tell that a file changed.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A file's (mtime, size); None when it cannot be read.
pub fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Resolves `p`, as written in the config file at `config_path`: relative paths
/// are relative to that file's folder.
pub fn resolve_against(config_path: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config_path.parent().unwrap_or(Path::new(".")).join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_follow_the_config_file() {
        let c = Path::new("/etc/meridian/meridian.yaml");
        assert_eq!(
            resolve_against(c, "keys.json"),
            PathBuf::from("/etc/meridian/keys.json")
        );
        assert_eq!(
            resolve_against(c, "/var/x.pem"),
            PathBuf::from("/var/x.pem")
        );
        assert_eq!(
            resolve_against(Path::new("m.yaml"), "k"),
            PathBuf::from("k")
        );
    }

    #[test]
    fn a_missing_file_has_no_stamp() {
        assert!(stamp(Path::new("/nonexistent/meridian")).is_none());
    }
}
