//! The fuzz targets' checks (`fuzz/src/lib.rs`) run in normal CI: every committed
//! seed under `fuzz/corpus/<target>/` is replayed, and every input the fuzzer
//! found a crash with is kept here as a test of its own.

#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::path::Path;

/// Runs `check` over every file of `fuzz/corpus/<target>/`.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        eprintln!("{target}: {}", path.display());
        check(&data);
        n += 1;
    }
    assert!(n > 0, "no seeds in {}", dir.display());
}

#[test]
fn config_parse_seeds() {
    replay("config_parse", checks::config_parse);
}

#[test]
fn xff_seeds() {
    replay("xff", checks::xff);
}

#[test]
fn token_verify_seeds() {
    replay("token_verify", checks::token_verify);
}

#[test]
fn health_body_seeds() {
    replay("health_body", checks::health_body);
}

#[test]
fn route_match_seeds() {
    replay("route_match", checks::route_match);
}

#[test]
fn empty_inputs() {
    for check in [
        checks::config_parse,
        checks::xff,
        checks::token_verify,
        checks::health_body,
        checks::route_match,
    ] {
        check(b"");
    }
}
