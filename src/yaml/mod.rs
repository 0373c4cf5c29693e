//! The YAML dialect of go-yaml, as far as schematics and configuration need it: reading documents with line
//! numbers, resolving plain scalars, emitting the canonical form byte for byte, and reading that
//! form back where go-yaml's bytes are not strict YAML 1.2.

pub mod emit;
pub mod node;
pub mod readback;
pub mod resolve;
