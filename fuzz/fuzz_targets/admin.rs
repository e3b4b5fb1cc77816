//! Fuzz target `admin`: see `edgeplane_tests::fuzz::admin`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeplane_tests::fuzz::admin(data));
