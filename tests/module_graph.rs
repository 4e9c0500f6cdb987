//! The shape of `src/`: the folders are the layers (docs/ARCHITECTURE.md), and each
//! module of a layer (`core::routing`, `proxy::pool`, ...) is a unit. Every
//! `crate::layer::module` path outside comments and unit tests is an edge; the
//! checks are that units form no import cycle, that a layer uses only the layers
//! below it (with the exceptions listed and explained in `ALLOWED_UPWARD`), and that
//! health, DNS, probes and the admin code know nothing of routing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first: a layer may use itself and the ones before it.
const LAYERS: [&str; 7] = [
    "util",
    "core",
    "request",
    "telemetry",
    "proxy",
    "services",
    "cli",
];

/// Edges that go up the layers today, each with its reason. A new upward edge fails
/// the test; one that disappears fails it too, so this list stays true.
const ALLOWED_UPWARD: &[(&str, &str, &str)] = &[
    (
        "core::snapshot",
        "request::geo",
        "the snapshot compiles each route's geo map of country codes",
    ),
    (
        "core::snapshot",
        "request::tokens",
        "the snapshot holds the write-token keys the request layer verifies with",
    ),
    (
        "core::snapshot",
        "request::rate_limit",
        "each route holds its rate limit's buckets, kept across reloads like the token keys",
    ),
    (
        "core::snapshot",
        "proxy::tls",
        "the snapshot holds each origin's compiled TLS client config",
    ),
    (
        "core::health",
        "proxy::pool",
        "each endpoint (an origin's address) owns its connection pool",
    ),
    (
        "core::config",
        "request::geo",
        "Country and Continent (geo's codes) are the config's vocabulary",
    ),
    (
        "core::routing",
        "request::geo",
        "Country and Continent (geo's codes) are the routing rules' vocabulary",
    ),
    (
        "core::health",
        "telemetry::metrics",
        "the health registry keeps each region's metric series handles",
    ),
    (
        "core::health",
        "telemetry::rates",
        "regions and origins count requests and errors in rolling windows",
    ),
    (
        "proxy",
        "services::shared",
        "the data path reads the snapshot, health and metrics through Shared",
    ),
    (
        "telemetry::metric_labels",
        "services::dns",
        "the Route 53 reconciler's outcomes are a label set",
    ),
];

/// A unit's name: `layer::module` for a file or folder inside a layer's folder,
/// `layer` for the layer's own `mod.rs`.
fn unit_of(layer: &str, second: Option<&str>, src: &Path) -> String {
    match second {
        Some(m)
            if src.join(layer).join(m).is_dir()
                || src.join(layer).join(format!("{m}.rs")).is_file() =>
        {
            format!("{layer}::{m}")
        }
        _ => layer.to_string(),
    }
}

/// Unit -> the units it names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if p.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = p.strip_prefix(&src).unwrap();
        let parts: Vec<String> = rel
            .components()
            .map(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_string()
            })
            .collect();
        if parts.len() < 2 {
            continue; // lib.rs, main.rs, test_support.rs
        }
        let second = (parts.len() > 2 || parts[1] != "mod").then(|| parts[1].as_str());
        let me = unit_of(&parts[0], second, &src);
        let text = std::fs::read_to_string(&p).unwrap();
        let deps = g.entry(me.clone()).or_default();
        for (layer, module) in crate_paths(&code_only(&text)) {
            let used = unit_of(&layer, module.as_deref(), &src);
            if used != me {
                deps.insert(used);
            }
        }
    }
    g
}

/// The text without line comments and without the `#[cfg(test)]` module that
/// ends a file (unit tests may use anything).
fn code_only(text: &str) -> String {
    let body = text.split("\n#[cfg(test)]").next().unwrap();
    body.lines()
        .map(|l| l.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `(layer, module)` in `crate::layer::module` (module absent for
/// `crate::layer::Item` or `crate::layer;`).
fn crate_paths(code: &str) -> Vec<(String, Option<String>)> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let before = code[..i].chars().last();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        assert!(
            !rest.starts_with('{'),
            "grouped `crate::{{..}}` imports are not read by this checker: write one path per use"
        );
        let layer = ident(rest);
        let after = &rest[layer.len()..];
        let module = after
            .strip_prefix("::")
            .map(ident)
            .filter(|m| !m.is_empty());
        if !layer.is_empty() && layer != "self" {
            out.push((layer, module));
        }
    }
    out
}

/// A cycle through the graph, if there is one (depth-first search).
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = path.iter().position(|p| p == n) {
            let mut cycle = path[pos..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut Vec::new(), &mut done))
}

fn rank(unit: &str) -> usize {
    let layer = unit.split("::").next().unwrap();
    LAYERS
        .iter()
        .position(|l| *l == layer)
        .unwrap_or_else(|| panic!("`{unit}` is in no known layer: add its folder to LAYERS"))
}

#[test]
fn no_import_cycle_among_the_units() {
    let g = graph();
    assert!(g.len() > 30, "read too few units: {g:?}");
    if let Some(cycle) = find_cycle(&g) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn a_layer_uses_only_the_layers_below_it() {
    let g = graph();
    let mut upward = BTreeSet::new();
    for (from, deps) in &g {
        for to in deps {
            if rank(to) > rank(from) {
                upward.insert((from.as_str(), to.as_str()));
            }
        }
    }
    let allowed: BTreeSet<_> = ALLOWED_UPWARD.iter().map(|(f, t, _)| (*f, *t)).collect();
    let new: Vec<_> = upward.difference(&allowed).collect();
    assert!(new.is_empty(), "uses that go up the layers: {new:?}");
    let gone: Vec<_> = allowed.difference(&upward).collect();
    assert!(
        gone.is_empty(),
        "ALLOWED_UPWARD lists edges that no longer exist: {gone:?}"
    );
}

#[test]
fn health_dns_probes_and_admin_know_nothing_of_routing() {
    let g = graph();
    for m in [
        "core::health",
        "services::dns",
        "services::probes",
        "services::admin",
        "services::shared",
    ] {
        let deps = g.get(m).unwrap_or_else(|| panic!("no unit `{m}`"));
        assert!(
            !deps.contains("core::routing"),
            "`{m}` uses routing: {deps:?}"
        );
    }
}

#[test]
fn the_checker_sees_uses_and_cycles() {
    let code = code_only(
        "use crate::core::health::{HealthView, RegionStatus};\n\
         use crate::util;\n\
         // crate::core::routing in a comment\n\
         fn f() { crate::core::snapshot::x(); my_crate::nope(); }\n\
         #[cfg(test)]\nmod tests { use crate::core::routing; }\n",
    );
    let some = |l: &str, m: Option<&str>| (l.to_string(), m.map(String::from));
    assert_eq!(
        crate_paths(&code),
        [
            some("core", Some("health")),
            some("util", None),
            some("core", Some("snapshot"))
        ]
    );
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    assert_eq!(find_cycle(&g), None);
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(find_cycle(&g).map(|c| c.len()), Some(4));
}
