//! File system and partition-table writers: each turns a list of files (or partitions) into
//! the bytes of one image, knowing nothing of what boots from it.

pub mod cpio;
pub mod fat;
pub mod gpt;
pub mod iso9660;
pub mod xfs;
