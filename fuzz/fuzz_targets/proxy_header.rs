#![no_main]
//! See `meridian_fuzz::proxy_header` for the input layout and the invariants checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| meridian_fuzz::proxy_header(data));
