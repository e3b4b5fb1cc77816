//! Fuzz target `h1_request`: see `edgeplane_tests::fuzz::h1_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeplane_tests::fuzz::h1_request(data));
