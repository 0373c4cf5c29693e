//! Byte sizes, named once: partition, disk and buffer sizes are written in these.

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
