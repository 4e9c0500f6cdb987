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

/// The seeds meant to be valid are: a seed that fails early only fuzzes the
/// first error's path.
#[test]
fn valid_config_seeds_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/config_parse");
    for seed in [
        "demo.yaml",
        "meridian.yaml",
        "minimal.yaml",
        "shifts_routes.yaml",
    ] {
        let text = std::fs::read_to_string(dir.join(seed)).expect("seed");
        if let Err(e) = meridian::core::config::parse(seed, &text) {
            panic!("{seed}: {e:?}");
        }
    }
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
fn proxy_header_seeds() {
    replay("proxy_header", checks::proxy_header);
}

#[test]
fn empty_inputs() {
    for check in [
        checks::config_parse,
        checks::xff,
        checks::token_verify,
        checks::health_body,
        checks::route_match,
        checks::proxy_header,
    ] {
        check(b"");
    }
}

/// Found by `config_parse` (minimized): a shift `start` with a multi-byte
/// character where the seconds are panicked slicing bytes 17..19 mid-character
/// (src/config/units.rs, `Timestamp::from_str`).
#[test]
fn config_parse_timestamp_multibyte_seconds() {
    checks::config_parse(b"shifts:\n - start: 2026-11-22T10:00:\xd0");
}

/// The same bug through `config::parse`, at each place the parser slices: the
/// seconds, the fraction and the offset. Each is an error, never a panic.
#[test]
fn timestamp_with_multibyte_characters_is_an_error() {
    let base = "local_region: r1\nlisteners: [{ address: 127.0.0.1:8080 }]\n\
                admin: { address: 127.0.0.1:9901 }\n\
                regions: { r1: { origins: [{ address: 127.0.0.1:1 }] }, r2: { origins: [{ address: 127.0.0.1:2 }] } }\n\
                shifts: [{ name: s, from: r1, to: r2, percent: 10, start: \"START\" }]\n";
    assert!(meridian::core::config::parse(
        "t.yaml",
        &base.replace("START", "2026-11-22T10:00:00Z")
    )
    .is_ok());
    for start in [
        "2026-11-22T10:00:0é+01:00",
        "2026-11-22T10:00:00.5é+01:00",
        "2026-11-22T10:00:00é0000",
        "2026-11-22T10:00:00+0é:0",
        "2026-11-2é10:00:00Z",
    ] {
        let text = base.replace("START", start);
        checks::config_parse(text.as_bytes());
        let errors = meridian::core::config::parse("t.yaml", &text).expect_err(start);
        assert!(
            errors[0].to_string().contains("RFC 3339"),
            "{start}: {errors:?}"
        );
    }
}

#[test]
fn listener_requests_seeds() {
    replay("listener_requests", checks::listener_requests);
}
