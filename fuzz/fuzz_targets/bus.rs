//! Fuzz target `bus`: see `edgeplane_tests::fuzz::bus`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeplane_tests::fuzz::bus(data));
