//! The rate limiter's memory bound, measured: a million distinct keys (client
//! addresses, then header values, as a client choosing a new value per request
//! would send) leave a route's buckets at their fixed size. Alone in its test
//! binary so the process's resident memory is this test's.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use meridian::core::config::RateLimit;
use meridian::request::rate_limit::{Key, RouteLimit, CELLS};

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn a_million_distinct_keys_stay_within_the_tables_fixed_size() {
    const KEYS: u32 = 1_000_000;
    // The table's cells (8 bytes each) and nothing that grows with the keys.
    const BOUND_BYTES: usize = CELLS * 8;
    let config = |key: &str| RateLimit {
        key: key.parse().unwrap(),
        rate: "100/s".parse().unwrap(),
        burst: Some(200),
        headers: Default::default(),
    };
    let by_ip = RouteLimit::compile(0, None, "/", &config("client_ip"));
    let by_header = RouteLimit::compile(1, None, "/", &config("header:x-api-key"));
    let before = rss_kib();
    let started = Instant::now();
    let now_ns = 1_000_000_000;
    let mut refused = 0u32;
    for i in 0..KEYS {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        refused += u32::from(by_ip.check(Key::Ip(ip), now_ns).is_err());
    }
    let mut value = String::with_capacity(16);
    for i in 0..KEYS {
        use std::fmt::Write;
        value.clear();
        let _ = write!(value, "key-{i}");
        refused += u32::from(
            by_header
                .check(Key::Header(value.as_bytes()), now_ns)
                .is_err(),
        );
    }
    let elapsed = started.elapsed();
    let grown_kib = rss_kib().saturating_sub(before);
    println!(
        "2 x {KEYS} distinct keys: {} bytes of buckets per route, resident memory +{grown_kib} KiB, {:.0} ns a check, {refused} refused",
        by_ip.bytes(),
        elapsed.as_nanos() as f64 / f64::from(2 * KEYS),
    );
    assert_eq!(by_ip.bytes(), BOUND_BYTES);
    assert_eq!(by_header.bytes(), BOUND_BYTES);
    // Two tables and the allocator's rounding; a map of a million keys would be
    // tens of MiB (governor's keyed store: ~69 bytes a key).
    assert!(
        grown_kib * 1024 <= 2 * BOUND_BYTES as u64 + (1 << 20),
        "resident memory grew by {grown_kib} KiB"
    );
    // Each cell took ~15 keys' single request: far within a burst of 200.
    assert_eq!(refused, 0);
}
