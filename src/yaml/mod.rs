//! The YAML dialect of go-yaml, as far as schematics and configuration need it: reading documents with line
//! numbers, resolving plain scalars, and emitting the canonical form byte for byte.

pub mod emit;
pub mod node;
pub mod resolve;
