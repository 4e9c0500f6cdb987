//! Loading the config file: YAML -> [`Config`] with every error located as
//! `FILE:LINE:COL: field.path: message`, then semantic validation.

/// At most this many origins per region (validation refuses more) and addresses
/// per origin (a name's first ones in sorted order are used): a request's tried
/// set is one bit per (origin, address) pair of its region.
pub const MAX_ORIGINS_PER_REGION: usize = 16;
pub const MAX_ENDPOINTS_PER_ORIGIN: usize = 16;
/// At most this many regions (validation refuses more): a set of regions is one
/// bit per region of a `u64`.
pub const MAX_REGIONS: usize = 64;

pub mod locate;
pub mod resolved;
pub mod types;
pub mod units;
pub mod validate;
pub mod yaml;

pub use resolved::Resolved;
pub use types::*;
pub use validate::is_valid_region;

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
    /// Its names, codes and addresses as validation resolved them.
    pub resolved: Resolved,
    /// The file it came from; relative paths inside it resolve against its folder.
    pub path: PathBuf,
    /// sha256 of the file's bytes, hex.
    pub sha256: String,
    /// Problems that do not stop the config (printed by `meridian check`, logged by `run`).
    pub warnings: Vec<ConfigError>,
}

impl Loaded {
    /// Resolves a path written in the config relative to the config file's folder.
    pub fn resolve(&self, p: &str) -> PathBuf {
        crate::util::files::resolve_against(&self.path, p)
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
    let (config, resolved, warnings) = parse(&name, &text)?;
    use sha2::Digest;
    let sha256 = sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Loaded {
        config,
        resolved,
        path: path.to_path_buf(),
        sha256,
        warnings,
    })
}

/// Parses and validates config text; `name` is used in error messages. Returns the
/// config with what validation resolved and its warnings, or every error.
pub fn parse(
    name: &str,
    text: &str,
) -> Result<(Config, Resolved, Vec<ConfigError>), Vec<ConfigError>> {
    let at = |(line, col): locate::Pos, path: &str, message: String| ConfigError {
        file: name.to_string(),
        line,
        col,
        path: path.to_string(),
        message,
    };
    let map = locate::SourceMap::parse(text)
        .map_err(|(pos, msg)| vec![at(pos, "", format!("YAML syntax error: {msg}"))])?;
    // YAML 1.2 allows no key twice in a mapping; keeping one silently would hide a typo.
    if let Some((path, pos)) = &map.duplicate {
        let key = path.rsplit('.').next().unwrap_or(path);
        return Err(vec![at(
            *pos,
            path,
            format!("duplicate entry with key `{key}`"),
        )]);
    }
    let values = yaml::values(text).map_err(|r| {
        let pos = r.at.unwrap_or_else(|| map.key_position(&r.path));
        vec![at(pos, &r.path, r.message)]
    })?;
    let config: Config = serde_path_to_error::deserialize(values).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = e.into_inner().to_string();
        // Unknown fields point at their key; missing ones at their parent's key.
        let pos = if message.starts_with("unknown field") || message.starts_with("missing field") {
            map.key_position(&path)
        } else {
            map.position(&path)
        };
        vec![at(pos, &path, message)]
    })?;
    let (problems, resolved) = validate::validate(&config);
    let (warnings, errors): (Vec<_>, Vec<_>) = problems.into_iter().partition(|p| p.warning);
    let located = |ps: Vec<validate::Problem>| -> Vec<ConfigError> {
        ps.into_iter()
            .map(|p| at(map.position(&p.path), &p.path, p.message))
            .collect()
    };
    let mut errors = located(errors);
    if !errors.is_empty() {
        errors.sort_by_key(|e| (e.line, e.col));
        return Err(errors);
    }
    Ok((config, resolved, located(warnings)))
}

/// A one-screen, human summary of a valid config (what `meridian check` prints).
pub fn summary(loaded: &Loaded) -> String {
    use std::fmt::Write;
    let c = &loaded.config;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: ok (sha256 {})",
        loaded.path.display(),
        &loaded.sha256[..12]
    );
    let listeners: Vec<String> = c
        .listeners
        .iter()
        .map(|l| {
            format!(
                "{}{}",
                l.address,
                if l.tls.is_some() { " (tls)" } else { "" }
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "local region  {}; listeners {}; admin {}",
        c.local_region,
        listeners.join(", "),
        c.admin.address
    );
    let _ = writeln!(
        out,
        "steering      {:?}; write region {}",
        c.routing.steering,
        c.write_region.as_deref().unwrap_or("-")
    );
    let _ = writeln!(out, "regions       {}", c.regions.len());
    for (name, r) in &c.regions {
        let _ = writeln!(
            out,
            "  {name:<16} weight {:>4}  dial {:>3}%  origins {}",
            r.weight,
            r.traffic_dial,
            r.origins.len()
        );
    }
    for g in &c.routing.residency {
        let _ = writeln!(
            out,
            "residency     {}: {} -> {} ({:?} when unavailable)",
            g.name,
            g.continents
                .iter()
                .chain(&g.countries)
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
            g.regions.join(", "),
            g.when_unavailable
        );
    }
    let _ = writeln!(out, "routes        {} (+ default)", c.routes.len());
    for s in &c.shifts {
        let _ = writeln!(
            out,
            "shift         {}: {}% {} -> {}",
            s.name, s.percent, s.from, s.to
        );
    }
    let _ = writeln!(
        out,
        "geoip         {}; sessions {}; dns {}",
        c.geoip.as_ref().map_or("none", |g| g.database.as_str()),
        if c.sessions.is_some() {
            "keys file"
        } else {
            "random per-process key"
        },
        match &c.dns {
            Some(d) if d.enabled => "enabled",
            _ => "disabled",
        }
    );
    out
}
