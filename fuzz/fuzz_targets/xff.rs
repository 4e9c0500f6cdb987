#![no_main]
//! See `meridian_fuzz::xff` for the input layout and the invariants checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| meridian_fuzz::xff(data));
