//! Benches live in `primitives.rs`; the load generator is the `cairn-load` crate in `load/`.
