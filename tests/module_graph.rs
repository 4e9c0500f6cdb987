//! The shape of `src/`: which top-level modules use which (every `crate::name`
//! path outside comments and unit tests), checked for import cycles and for the
//! layering the architecture promises (docs/ARCHITECTURE.md): health, DNS, probes
//! and the admin code know nothing of routing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module -> the top-level modules it names.
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
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let deps = g.entry(top.clone()).or_default();
        for used in crate_paths(&code_only(&text)) {
            if used != top {
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

/// Every `name` in `crate::name` (and `crate::{name, ..}` groups).
fn crate_paths(code: &str) -> Vec<String> {
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
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|p| ident(p.trim())));
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|n| !n.is_empty() && n != "self");
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

#[test]
fn no_import_cycle_among_the_top_level_modules() {
    let g = graph();
    assert!(g.len() > 20, "read too few modules: {g:?}");
    if let Some(cycle) = find_cycle(&g) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn health_dns_probes_and_admin_know_nothing_of_routing() {
    let g = graph();
    for m in ["health", "dns", "probes", "admin", "shared"] {
        let deps = g.get(m).unwrap_or_else(|| panic!("no module `{m}`"));
        assert!(!deps.contains("routing"), "`{m}` uses routing: {deps:?}");
    }
}

#[test]
fn the_checker_sees_uses_and_cycles() {
    let code = code_only(
        "use crate::health::{HealthView, RegionStatus};\n\
         use crate::{clock, files::stamp};\n\
         // crate::routing in a comment\n\
         fn f() { crate::snapshot::x(); my_crate::nope(); }\n\
         #[cfg(test)]\nmod tests { use crate::routing; }\n",
    );
    assert_eq!(
        crate_paths(&code),
        ["health", "clock", "files", "snapshot"].map(String::from)
    );
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    assert_eq!(find_cycle(&g), None);
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(find_cycle(&g).map(|c| c.len()), Some(4));
}
