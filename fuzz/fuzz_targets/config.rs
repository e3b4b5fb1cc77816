//! Fuzz target `config`: see `edgeplane_tests::fuzz::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeplane_tests::fuzz::config(data));
