//! Little-endian fields of byte slices.
