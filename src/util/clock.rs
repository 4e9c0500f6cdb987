//! The two clocks the gateway reads: wall-clock unix milliseconds (tokens,
//! shifts, ejections, journal stamps) and a monotonic count from process start
//! (rolling rate windows, which a wall-clock step must not empty or double).

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock time in unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Milliseconds since the first call in this process; monotonic.
pub fn monotonic_ms() -> u64 {
    monotonic_ms_at(Instant::now())
}

/// `monotonic_ms` at `t`, for a caller that read the clock already.
pub fn monotonic_ms_at(t: Instant) -> u64 {
    since_start(t).as_millis() as u64
}

/// Nanoseconds since the first call in this process at `t` (the same start as
/// `monotonic_ms`); monotonic, and u64 lasts 584 years (rate-limit buckets).
pub fn monotonic_ns_at(t: Instant) -> u64 {
    since_start(t).as_nanos() as u64
}

/// Microseconds since the first call in this process; monotonic (rate cells).
pub fn monotonic_us() -> u64 {
    since_start(Instant::now()).as_micros() as u64
}

fn since_start(t: Instant) -> std::time::Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    t.saturating_duration_since(*START.get_or_init(|| t))
}
