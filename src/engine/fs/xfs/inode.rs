//! Version 3 inodes (the 176-byte core of CRC-enabled filesystems plus the data fork) and the
//! packed 128-bit extent records their data forks hold.

use super::encode::{be16, be32, be64, seal};
use super::geometry::{INODE_SIZE, NULL32};

const MAGIC: u16 = 0x494e; // "IN"
const CORE_SIZE: usize = 176;
const CRC_AT: usize = 100;
/// Bytes left for the data fork when there is no attribute fork.
pub(super) const LITERAL_AREA: usize = INODE_SIZE - CORE_SIZE;
/// Extent records that fit in the literal area; more would need a block-map btree.
pub(super) const MAX_INLINE_EXTENTS: usize = LITERAL_AREA / 16;

pub(super) const S_IFREG: u16 = 0o100000;
pub(super) const S_IFDIR: u16 = 0o040000;

/// How the data fork is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// Inside the inode (short-form directories).
    Local = 1,
    /// A list of extent records.
    Extents = 2,
}

/// A file's block range: `offset` in the file, `fsbno` on disk, `len` blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Extent {
    pub offset: u64,
    pub fsbno: u64,
    pub len: u32,
}

impl Extent {
    /// Bit 127 is the unwritten flag, then 54 bits of file offset, 52 of disk block and 21
    /// of length.
    pub fn pack(&self) -> [u8; 16] {
        let high = (self.offset << 9) | (self.fsbno >> 43);
        let low = ((self.fsbno & ((1 << 43) - 1)) << 21) | u64::from(self.len);
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&high.to_be_bytes());
        out[8..].copy_from_slice(&low.to_be_bytes());
        out
    }
}

/// What differs between the inodes we write.
#[derive(Debug, Clone)]
pub(super) struct InodeFields<'a> {
    pub mode: u16,
    pub nlink: u32,
    pub format: Format,
    pub size: u64,
    pub nblocks: u64,
    pub nextents: u32,
    pub flags: u16,
    pub fork: &'a [u8],
}

/// An inode in use: owned by root, every timestamp `mtime`.
pub(super) fn encode(
    ino: u64,
    uuid: &[u8; 16],
    mtime: u32,
    fields: &InodeFields<'_>,
) -> [u8; INODE_SIZE] {
    let mut out = blank(ino, uuid);
    be16(&mut out, 2, fields.mode);
    out[5] = fields.format as u8;
    be32(&mut out, 16, fields.nlink);
    for at in [32, 40, 48, 144] {
        be32(&mut out, at, mtime);
    }
    be64(&mut out, 56, fields.size);
    be64(&mut out, 64, fields.nblocks);
    be32(&mut out, 76, fields.nextents);
    // No attribute fork, but its format reads as extents like mkfs leaves it.
    out[83] = Format::Extents as u8;
    be16(&mut out, 90, fields.flags);
    be64(&mut out, 104, 1);
    out[CORE_SIZE..CORE_SIZE + fields.fork.len()].copy_from_slice(fields.fork);
    seal(&mut out, CRC_AT);
    out
}

/// A free slot of an allocated chunk: enough for the verifiers (magic, version, identity,
/// CRC), everything else zero.
pub(super) fn free(ino: u64, uuid: &[u8; 16]) -> [u8; INODE_SIZE] {
    let mut out = blank(ino, uuid);
    seal(&mut out, CRC_AT);
    out
}

fn blank(ino: u64, uuid: &[u8; 16]) -> [u8; INODE_SIZE] {
    let mut out = [0u8; INODE_SIZE];
    be16(&mut out, 0, MAGIC);
    out[4] = 3;
    be32(&mut out, 96, NULL32);
    be64(&mut out, 152, ino);
    out[160..176].copy_from_slice(uuid);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extent_fields_land_in_their_bits() {
        let extent = Extent {
            offset: 3,
            fsbno: (1 << 43) | 5,
            len: 7,
        };
        let packed = extent.pack();
        let high = u64::from_be_bytes(packed[..8].try_into().unwrap());
        let low = u64::from_be_bytes(packed[8..].try_into().unwrap());
        assert_eq!(high >> 63, 0, "written, not preallocated");
        assert_eq!((high >> 9) & ((1 << 54) - 1), 3);
        assert_eq!(high & 0x1ff, 1);
        assert_eq!(low >> 21, 5);
        assert_eq!(low & ((1 << 21) - 1), 7);
    }

    #[test]
    fn inode_core_layout() {
        let uuid = [7u8; 16];
        let fork = [0xAAu8; 16];
        let inode = encode(
            99,
            &uuid,
            1_700_000_000,
            &InodeFields {
                mode: S_IFREG | 0o644,
                nlink: 1,
                format: Format::Extents,
                size: 5,
                nblocks: 1,
                nextents: 1,
                flags: 0,
                fork: &fork,
            },
        );
        assert_eq!(&inode[..6], &[0x49, 0x4e, 0x81, 0xa4, 3, 2]);
        assert_eq!(&inode[40..44], &1_700_000_000u32.to_be_bytes());
        assert_eq!(&inode[96..100], &[0xff; 4]);
        assert_eq!(&inode[152..160], &99u64.to_be_bytes());
        assert_eq!(&inode[160..176], &uuid);
        assert_eq!(&inode[176..192], &fork);
        let mut zeroed = inode;
        zeroed[100..104].fill(0);
        assert_eq!(
            u32::from_le_bytes(inode[100..104].try_into().unwrap()),
            crc32c::crc32c(&zeroed)
        );
        assert_eq!(MAX_INLINE_EXTENTS, 21);
    }
}
