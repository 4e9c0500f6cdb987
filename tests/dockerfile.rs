//! No Docker engine runs here, so the Dockerfile is checked for what can be checked:
//! the build stage's context (its `COPY` lines, less `.dockerignore`) is assembled in
//! a directory of its own and its build (scripts/pgo, the profile-guided build) is
//! checked there offline, against the registry already fetched and without cmake;
//! every path package (the patched hyper) is inside a copied path; the binary it runs
//! is the one scripts/pgo builds, the ports it exposes are the reference config's, and
//! its health check names an endpoint the admin listener serves (proved by asking a
//! running gateway). scripts/test runs the build's training load on its own.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{repo, Gateway};

fn dockerfile() -> String {
    std::fs::read_to_string(repo("Dockerfile")).expect("Dockerfile")
}

fn instructions<'a>(text: &'a str, keyword: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(keyword))
        .filter_map(|rest| rest.strip_prefix(' '))
        .map(str::trim)
        .collect()
}

#[test]
fn copied_paths_exist_in_the_build_context() {
    let text = dockerfile();
    let copies = instructions(&text, "COPY");
    assert!(!copies.is_empty());
    for copy in copies {
        if copy.starts_with("--from=") {
            continue;
        }
        let mut parts: Vec<&str> = copy.split_whitespace().collect();
        parts.pop(); // the destination
        for src in parts {
            assert!(
                repo(src).exists(),
                "Dockerfile copies `{src}`, which is not in the repository"
            );
        }
    }
}

#[test]
fn runs_the_binary_scripts_pgo_builds_with_the_reference_config() {
    let text = dockerfile();
    assert!(instructions(&text, "RUN").contains(&"scripts/pgo"));
    let pgo = build_script();
    assert!(
        pgo.contains("cargo build --release --locked --bin meridian --target-dir target/pgo-use")
    );
    assert!(pgo.contains("cp target/pgo-use/release/meridian target/pgo/meridian"));
    assert!(text.contains("COPY --from=build /src/target/pgo/meridian /usr/local/bin/meridian"));
    assert!(text.contains(r#"ENTRYPOINT ["meridian"]"#));
    assert!(text.contains("COPY config/meridian.yaml /etc/meridian/meridian.yaml"));
    assert!(text.contains("ENV MERIDIAN_CONFIG=/etc/meridian/meridian.yaml"));
    assert!(
        instructions(&text, "USER") == ["meridian"],
        "must not run as root"
    );
    // The image's toolchain must be at least the crate's rust-version.
    let manifest = std::fs::read_to_string(repo("Cargo.toml")).unwrap();
    if let Some(line) = manifest.lines().find(|l| l.starts_with("rust-version")) {
        let want = line.split('"').nth(1).unwrap();
        assert!(
            text.contains(&format!("FROM rust:{}", want.trim_end_matches(".0")))
                || version_at_least(&text, want),
            "the build image must have Rust >= {want}"
        );
    }
}

fn version_at_least(text: &str, want: &str) -> bool {
    let image = text
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .expect("a rust build stage");
    let parse = |v: &str| -> Vec<u32> {
        v.split(['-', ' '])
            .next()
            .unwrap()
            .split('.')
            .map(|p| p.parse().unwrap())
            .collect()
    };
    parse(image) >= parse(want)
}

#[test]
fn exposes_the_reference_configs_ports() {
    let text = dockerfile();
    let exposed: Vec<String> = instructions(&text, "EXPOSE")
        .iter()
        .flat_map(|l| l.split_whitespace().map(String::from))
        .collect();
    let reference = std::fs::read_to_string(repo("config/meridian.yaml")).unwrap();
    let config = meridian::core::config::yaml::values(&reference).unwrap();
    let port = |addr: &serde_json::Value| {
        addr.as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .to_string()
    };
    let admin = port(&config["admin"]["address"]);
    assert!(exposed.contains(&admin), "admin port {admin} not exposed");
    for l in config["listeners"].as_array().unwrap() {
        let p = port(&l["address"]);
        assert!(exposed.contains(&p), "listener port {p} not exposed");
    }
}

#[tokio::test]
async fn health_check_names_a_served_endpoint() {
    let text = dockerfile();
    let check = instructions(&text, "HEALTHCHECK");
    assert_eq!(check.len(), 1);
    let path = check[0]
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://127.0.0.1:9901"))
        .expect("health check against the admin listener");
    let gw = Gateway::start(
        r#"
local_region: us-east-1
listeners: [ { address: "{{LISTEN}}" } ]
admin: { address: "{{ADMIN}}" }
regions:
  us-east-1: { origins: [ { address: "127.0.0.1:9" } ] }
"#,
    )
    .await;
    let status = reqwest::get(gw.admin_url(path)).await.unwrap().status();
    assert_eq!(status, 200, "{path} on the admin listener");
}

// ---------------------------------------------------------------------------
// The build stage, run as docker would run it (but offline and as `cargo check`).

fn build_script() -> String {
    std::fs::read_to_string(repo("scripts/pgo")).expect("scripts/pgo")
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped,
/// split into stages at each `FROM`.
fn stages(text: &str) -> Vec<Vec<String>> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for raw in text.lines() {
        let l = raw.trim();
        if cur.is_empty() && (l.is_empty() || l.starts_with('#')) {
            continue;
        }
        match l.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head.trim_end());
                cur.push(' ');
            }
            None => {
                cur.push_str(l);
                lines.push(std::mem::take(&mut cur));
            }
        }
    }
    let mut stages: Vec<Vec<String>> = Vec::new();
    for l in lines {
        if l.starts_with("FROM ") || stages.is_empty() {
            stages.push(Vec::new());
        }
        stages.last_mut().unwrap().push(l);
    }
    stages
}

/// The stage that runs the build (scripts/pgo): its WORKDIR, its COPY lines (sources
/// and destination) and whether it installs cmake.
struct BuildStage {
    workdir: String,
    copies: Vec<(Vec<String>, String)>,
    installs_cmake: bool,
}

fn build_stage() -> BuildStage {
    let text = dockerfile();
    let stage = stages(&text)
        .into_iter()
        .find(|s| s.iter().any(|l| l == "RUN scripts/pgo"))
        .expect("a stage that runs scripts/pgo");
    let mut workdir = "/".to_string();
    let mut copies = Vec::new();
    let mut installs_cmake = false;
    for l in &stage {
        let (keyword, rest) = l.split_once(' ').unwrap_or((l, ""));
        match keyword {
            "WORKDIR" => workdir = rest.trim().to_string(),
            "COPY" | "ADD" => {
                assert_eq!(keyword, "COPY", "ADD is not modelled here: use COPY");
                let mut words: Vec<String> = rest
                    .split_whitespace()
                    .filter(|w| !w.starts_with("--chown=") && !w.starts_with("--chmod="))
                    .map(String::from)
                    .collect();
                assert!(
                    !words.iter().any(|w| w.starts_with("--")),
                    "COPY option not modelled here: {l}"
                );
                let dest = words.pop().expect("a COPY destination");
                assert!(
                    words.iter().all(|w| !w.contains(['*', '?', '['])),
                    "wildcards in COPY are not modelled here: {l}"
                );
                copies.push((words, dest));
            }
            "RUN" => installs_cmake |= rest.contains("cmake"),
            _ => {}
        }
    }
    BuildStage {
        workdir,
        copies,
        installs_cmake,
    }
}

/// `.dockerignore`'s rules in order: (negated, pattern components).
fn dockerignore() -> Vec<(bool, Vec<String>)> {
    let text = std::fs::read_to_string(repo(".dockerignore")).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (neg, pat) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            assert!(
                !pat.contains(['[', '\\']),
                ".dockerignore: only `*`, `?` and `**` are modelled here: {l}"
            );
            let parts = pat
                .trim_start_matches('/')
                .trim_end_matches('/')
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .map(String::from)
                .collect();
            (neg, parts)
        })
        .collect()
}

/// One path component against one pattern component (`*` and `?`).
fn component_matches(pat: &[u8], s: &[u8]) -> bool {
    match (pat.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            component_matches(&pat[1..], s) || (!s.is_empty() && component_matches(pat, &s[1..]))
        }
        (Some(b'?'), Some(_)) => component_matches(&pat[1..], &s[1..]),
        (Some(p), Some(c)) if p == c => component_matches(&pat[1..], &s[1..]),
        _ => false,
    }
}

/// A path (components) against a pattern (components, `**` any number of them).
fn path_matches(pat: &[String], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((p, rest)) if p == "**" => {
            (0..=path.len()).any(|skip| path_matches(rest, &path[skip..]))
        }
        Some((p, rest)) => match path.split_first() {
            Some((c, tail)) => {
                component_matches(p.as_bytes(), c.as_bytes()) && path_matches(rest, tail)
            }
            None => false,
        },
    }
}

/// Whether docker leaves `rel` (a path in the context) out: the last rule that
/// matches it or one of its parent directories decides.
fn ignored(rules: &[(bool, Vec<String>)], rel: &Path) -> bool {
    let parts: Vec<&str> = rel.iter().map(|c| c.to_str().unwrap()).collect();
    let mut out = false;
    for (neg, pat) in rules {
        if (1..=parts.len()).any(|n| path_matches(pat, &parts[..n])) {
            out = !neg;
        }
    }
    out
}

/// Copies `rel` (a file or directory of the repository) to `to`, leaving out
/// what `.dockerignore` excludes; keeps modification times, so a second run's
/// `cargo check` finds the copy fresh.
fn copy_in(rules: &[(bool, Vec<String>)], rel: &Path, to: &Path) {
    if ignored(rules, rel) {
        return;
    }
    let from = repo(rel.to_str().unwrap());
    let meta = std::fs::metadata(&from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    if meta.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        let mut entries: Vec<_> = std::fs::read_dir(&from)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        entries.sort();
        for name in entries {
            copy_in(rules, &rel.join(&name), &to.join(&name));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, to).unwrap();
        let f = std::fs::File::options().write(true).open(to).unwrap();
        f.set_modified(meta.modified().unwrap()).unwrap();
    }
}

/// The build stage's context, assembled under `dir` as its COPY lines describe it;
/// gives the directory the build command runs in (the stage's WORKDIR) and the
/// repository paths that were copied.
fn assemble_context(stage: &BuildStage, dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let rules = dockerignore();
    let root = dir.join("root");
    if root.exists() {
        std::fs::remove_dir_all(&root).unwrap();
    }
    let workdir = root.join(stage.workdir.trim_start_matches('/'));
    std::fs::create_dir_all(&workdir).unwrap();
    let mut copied = Vec::new();
    for (srcs, dest) in &stage.copies {
        let dest_dir = match dest.strip_prefix('/') {
            Some(abs) => root.join(abs),
            None => workdir.join(dest),
        };
        for src in srcs {
            let rel = Path::new(src.trim_start_matches("./")).to_path_buf();
            assert!(
                repo(src).exists(),
                "Dockerfile copies `{src}`, which is not in the repository"
            );
            let is_dir = repo(src).is_dir();
            // docker: a directory's contents go into the destination; a file goes
            // into a destination ending in `/` (or given several sources), else to it.
            let to = if is_dir || !(dest.ends_with('/') || srcs.len() > 1) {
                dest_dir.clone()
            } else {
                dest_dir.join(rel.file_name().unwrap())
            };
            copy_in(&rules, &rel, &to);
            copied.push(rel);
        }
    }
    (workdir, copied)
}

fn cargo() -> Command {
    let mut c = Command::new(env!("CARGO"));
    for v in ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"] {
        c.env_remove(v);
    }
    c
}

/// `cargo metadata --locked --offline` in `dir`: the packages with no registry
/// source (path dependencies and patches), as manifest directories.
fn path_packages(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let out = cargo()
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .current_dir(dir)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Ok(meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["source"].is_null())
        .map(|p| {
            Path::new(p["manifest_path"].as_str().unwrap())
                .parent()
                .unwrap()
                .to_path_buf()
        })
        .collect())
}

#[test]
fn every_path_package_is_inside_a_copied_path() {
    let stage = build_stage();
    let rules = dockerignore();
    let root = repo("");
    let copied: Vec<PathBuf> = stage
        .copies
        .iter()
        .flat_map(|(srcs, _)| srcs.iter().map(|s| repo(s.trim_start_matches("./"))))
        .collect();
    let packages = path_packages(&root).expect("cargo metadata in the repository");
    assert!(
        packages.len() >= 2,
        "meridian and the patched hyper: {packages:?}"
    );
    for dir in packages {
        let manifest = dir.join("Cargo.toml");
        let rel = manifest
            .strip_prefix(&root)
            .unwrap_or_else(|_| panic!("{} is outside the repository", manifest.display()));
        let inside = copied
            .iter()
            .any(|c| manifest == *c || (c.is_dir() && manifest.starts_with(c)));
        assert!(
            inside,
            "{} (a path package) is in no path the Dockerfile copies",
            rel.display()
        );
        assert!(
            !ignored(&rules, rel),
            "{} (a path package) is left out by .dockerignore",
            rel.display()
        );
    }
}

#[test]
fn dockerignore_rules_match_as_docker_does() {
    let rules = |text: &[&str]| -> Vec<(bool, Vec<String>)> {
        text.iter()
            .map(|l| match l.strip_prefix('!') {
                Some(p) => (true, p.split('/').map(String::from).collect()),
                None => (false, l.split('/').map(String::from).collect()),
            })
            .collect()
    };
    let r = rules(&["**/target", "geoip/*.mmdb", "!geoip/test-*.mmdb", ".git"]);
    assert!(ignored(&r, Path::new("target/release/meridian")));
    assert!(ignored(&r, Path::new("vendor/hyper/target/x")));
    assert!(ignored(&r, Path::new("geoip/GeoLite2-City.mmdb")));
    assert!(!ignored(&r, Path::new("geoip/test-city.mmdb")));
    assert!(ignored(&r, Path::new(".git/HEAD")));
    assert!(!ignored(&r, Path::new("src/targets.rs")));
    assert!(!ignored(&r, Path::new("src/.gitkeep")));
}

/// The build stage's build in its assembled context: `cargo metadata` (every path
/// the manifest and the lock file name is there) and `scripts/pgo --check`, both of
/// its builds' `cargo check` (every source file, `include_str!` and build script is
/// there), offline and, unless the stage installs it, without cmake. Its own target
/// directory stays between runs (`target/tmp/`).
#[test]
fn the_build_stage_builds_in_its_context() {
    let stage = build_stage();
    let pgo = build_script();
    let builds: Vec<&str> = pgo
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cargo build") || l.starts_with("cargo check"))
        .collect();
    assert_eq!(
        builds.len(),
        5,
        "scripts/pgo's builds and checks: {builds:?}"
    );
    for b in &builds {
        assert!(
            b.contains("--locked"),
            "the image's build must use Cargo.lock: {b}"
        );
        // meridian itself is built with its default features, instrumented or not:
        // a feature changes the crate's symbol names, and the profile would match
        // none of the shipped build's functions.
        let words: Vec<&str> = b.split_whitespace().collect();
        if words.windows(2).any(|w| w == ["--bin", "meridian"]) {
            assert!(
                !b.contains("--features") && !b.contains("-F "),
                "meridian built with other features than the shipped build's: {b}"
            );
        }
    }
    // What ships: the last build, with meridian's default features only (the
    // instrumented build adds pgo-train, which only builds the training load).
    let shipped = builds.last().unwrap();
    assert!(
        !shipped.contains("--features")
            && !shipped.contains("-F ")
            && !shipped.contains("--all-features"),
        "the image builds meridian's default features only: {shipped}"
    );
    // Nor does `cargo build` turn the benchmark switch on by itself.
    let manifest = std::fs::read_to_string(repo("Cargo.toml")).unwrap();
    let default = manifest
        .lines()
        .skip_while(|l| l.trim() != "[features]")
        .take_while(|l| l.trim() == "[features]" || !l.starts_with('['))
        .find(|l| l.trim_start().starts_with("default"));
    assert!(
        default.is_none_or(|l| !l.contains("bench-engine")),
        "bench-engine must not be a default feature: {default:?}"
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("docker-context");
    let (workdir, _) = assemble_context(&stage, &dir);
    let packages = path_packages(&workdir)
        .unwrap_or_else(|e| panic!("cargo metadata in the build context failed:\n{e}"));
    for p in &packages {
        assert!(
            p.starts_with(&workdir),
            "{} outside the context",
            p.display()
        );
    }
    let started = std::time::Instant::now();
    let mut check = Command::new(workdir.join("scripts/pgo"));
    check
        .arg("--check")
        .env("CARGO_NET_OFFLINE", "true")
        .env("CARGO_TERM_QUIET", "true")
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .current_dir(&workdir);
    if !stage.installs_cmake {
        // Any crate that wants cmake (aws-lc-sys's cmake builder, say) fails here
        // as it would in the build image.
        check.env("CMAKE", "/nonexistent/cmake");
    }
    let out = check.output().unwrap();
    assert!(
        out.status.success(),
        "the Dockerfile's build fails in its own context (`scripts/pgo --check`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("build context checked in {:.0?}", started.elapsed());
}

/// The binary the image ships has no switch that turns policy off: with
/// `MERIDIAN_PASSTHROUGH=1` (loadtest/perf's engine row, a `bench-engine` build
/// only) a request without `Host` is still refused by meridian's Host check (the
/// engine would have forwarded it, and answered 502 from the dead origin).
#[cfg(not(feature = "bench-engine"))]
#[tokio::test]
async fn the_product_binary_ignores_the_benchmark_switch() {
    use std::io::{Read, Write};
    let gw = Gateway::start_with_env(
        r#"
local_region: us-east-1
listeners: [ { address: "{{LISTEN}}" } ]
admin: { address: "{{ADMIN}}" }
regions:
  us-east-1: { origins: [ { address: "127.0.0.1:9" } ] }
"#,
        &[("MERIDIAN_PASSTHROUGH", "1"), ("RUST_LOG", "warn")],
    )
    .await;
    let addr = gw.addr;
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "a request without Host under MERIDIAN_PASSTHROUGH=1: {answer}"
    );
    assert!(
        gw.stderr().contains("MERIDIAN_PASSTHROUGH ignored"),
        "the gateway says it ignores the variable: {}",
        gw.stderr()
    );
}
