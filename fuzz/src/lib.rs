//! Fuzz targets for every parser of outside input: each target is a plain function over
//! bytes, so the AFL binaries (`src/bin/`, built by `cargo xtask fuzz`) and the corpus replay
//! test (`tests/corpus.rs`, part of the normal suite) run the same code.

pub mod seeds;
pub mod targets;
