//! Loading the config file: YAML -> [`Config`] with every error located as
//! `FILE:LINE:COL: field.path: message`, then semantic validation.

pub mod types;
pub mod units;

pub use types::*;

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem with a config file, printed as `FILE:LINE:COL: field.path: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    /// Dotted field path (`regions.eu-west-1.origins[0].address`); empty for syntax errors.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )
        } else {
            write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, self.line, self.col, self.path, self.message
            )
        }
    }
}

/// A config that parsed and validated, with what it was made from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The file it came from; relative paths inside it resolve against its folder.
    pub path: PathBuf,
    /// sha256 of the file's bytes, hex.
    pub sha256: String,
}

impl Loaded {
    /// Resolves a path written in the config relative to the config file's folder.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }
}

/// Resolves `p` relative to the folder of the config file at `config_path`.
pub fn resolve_against(config_path: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config_path.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// Reads, parses and validates `path`; every error found is returned.
pub fn load(path: &Path) -> Result<Loaded, Vec<ConfigError>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            file: name.clone(),
            line: 0,
            col: 0,
            path: String::new(),
            message: format!("cannot read: {e}"),
        }]
    })?;
    let config = parse(&name, &text)?;
    use sha2::Digest;
    let sha256 = sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Loaded {
        config,
        path: path.to_path_buf(),
        sha256,
    })
}

/// Parses and validates config text; `name` is used in error messages.
pub fn parse(name: &str, text: &str) -> Result<Config, Vec<ConfigError>> {
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, Config>(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let (line, col) = inner
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        vec![ConfigError {
            file: name.to_string(),
            line,
            col,
            path: if path == "." { String::new() } else { path },
            message: inner.to_string(),
        }]
    })
}

/// A one-screen, human summary of a valid config (what `meridian check` prints).
pub fn summary(loaded: &Loaded) -> String {
    let c = &loaded.config;
    format!(
        "{}: ok (sha256 {})\nlocal region {}; {} regions; {} routes; {} shifts\n",
        loaded.path.display(),
        &loaded.sha256[..12],
        c.local_region,
        c.regions.len(),
        c.routes.len(),
        c.shifts.len()
    )
}
