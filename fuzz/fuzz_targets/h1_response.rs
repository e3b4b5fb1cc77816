//! Fuzz target `h1_response`: see `edgeplane_tests::fuzz::h1_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeplane_tests::fuzz::h1_response(data));
