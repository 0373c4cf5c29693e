//! The Talos META partition: two identical copies of a 256 KiB "ADV" block holding
//! tag/length/value records (big-endian), each copy closed by a SHA-256 and a magic.

use crate::schematic::MetaValue;
use sha2::{Digest, Sha256};

/// Size of the META partition.
pub const PARTITION_SIZE: usize = crate::size::MIB as usize;
const BLOCK: usize = 256 * 1024;
const MAGIC_HEAD: u32 = 0x5A4B_3C2D;
const MAGIC_TAIL: u32 = 0xA5B4_C3D2;

/// The partition contents for `values` (later duplicates of a key win; records in ascending
/// key order, so the bytes are reproducible). Fails when the values exceed the capacity.
pub fn partition(values: &[MetaValue]) -> Result<Vec<u8>, String> {
    let mut merged: std::collections::BTreeMap<u8, &str> = std::collections::BTreeMap::new();
    for value in values {
        merged.insert(value.key, &value.value);
    }
    // Records, then zeros up to the checksum; the block is built by appending, so the
    // capacity check is the only bound there is.
    let mut block = Vec::with_capacity(BLOCK);
    block.extend_from_slice(&MAGIC_HEAD.to_be_bytes());
    for (key, value) in merged {
        if block.len() + 8 + value.len() > BLOCK - 40 {
            return Err(format!(
                "META values exceed the {} bytes the partition holds",
                BLOCK - 40
            ));
        }
        block.extend_from_slice(&u32::from(key).to_be_bytes());
        block.extend_from_slice(&(value.len() as u32).to_be_bytes());
        block.extend_from_slice(value.as_bytes());
    }
    block.resize(BLOCK - 36, 0);
    // The checksum covers the whole block with its own 32 bytes zero.
    let tail = MAGIC_TAIL.to_be_bytes();
    let checksum = Sha256::new()
        .chain_update(&block)
        .chain_update([0u8; 32])
        .chain_update(tail)
        .finalize();
    block.extend_from_slice(&checksum);
    block.extend_from_slice(&tail);
    let mut partition = Vec::with_capacity(PARTITION_SIZE);
    partition.extend_from_slice(&block);
    partition.extend_from_slice(&block);
    partition.resize(PARTITION_SIZE, 0);
    Ok(partition)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_checksum() {
        let meta = partition(&[
            MetaValue {
                key: 0x11,
                value: "dual-boot".into(),
            },
            MetaValue {
                key: 0xa,
                value: "x".into(),
            },
            MetaValue {
                key: 0xa,
                value: "hello".into(),
            },
        ])
        .unwrap();
        assert_eq!(&meta[..4], &MAGIC_HEAD.to_be_bytes());
        assert_eq!(&meta[4..8], &10u32.to_be_bytes());
        assert_eq!(&meta[8..12], &5u32.to_be_bytes());
        assert_eq!(&meta[12..17], b"hello");
        assert_eq!(&meta[17..21], &0x11u32.to_be_bytes());
        let mut block = meta[..BLOCK].to_vec();
        let stored = block[BLOCK - 36..BLOCK - 4].to_vec();
        block[BLOCK - 36..BLOCK - 4].fill(0);
        assert_eq!(Sha256::digest(&block).as_slice(), stored.as_slice());
        assert_eq!(meta[..BLOCK], meta[BLOCK..2 * BLOCK]);
        assert!(
            partition(&[MetaValue {
                key: 1,
                value: "x".repeat(300_000)
            }])
            .is_err()
        );
    }
}
