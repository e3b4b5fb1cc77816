//! Replays every fuzz target's kept corpus (`fuzz/corpus/<target>/`: seeds, inputs the fuzzer found
//! interesting, and every input that once crashed) through the target's function on stable, so that CI
//! checks them and a fixed crash stays fixed. The fuzzing itself: `fuzz/` (cargo-fuzz, nightly).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

#[test]
fn every_kept_fuzz_input_runs_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (target, run) in edgeplane_tests::fuzz::TARGETS {
        let dir = root.join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "no corpus for {target}");
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target} panicked on {}", input.display());
        }
    }
}
