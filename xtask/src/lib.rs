//! The parts of the developer tasks that tests share: the test Sigstore that signs the
//! fixture release keyless.

pub mod sigstore;
