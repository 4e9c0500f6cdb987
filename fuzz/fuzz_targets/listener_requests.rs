#![no_main]
//! See `meridian_fuzz::listener_requests` for what is sent and the invariant checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| meridian_fuzz::listener_requests(data));
