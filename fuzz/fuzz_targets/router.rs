//! Fuzz target `router`: see `edgeplane_tests::fuzz::router`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeplane_tests::fuzz::router(data));
