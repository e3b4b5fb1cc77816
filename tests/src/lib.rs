//! Fixtures for edgeplane's end-to-end tests: backends, nodes and clients bound to `127.0.0.1:0`.
