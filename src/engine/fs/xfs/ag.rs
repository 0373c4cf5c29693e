//! Per-group metadata: the superblock (primary in group 0, copies elsewhere), the free-space
//! header (AGF) with its free list (AGFL), the inode header (AGI), and the single-leaf btrees
//! they point at (free space by block and by size, inodes, inodes with free slots).

use super::encode::{be16, be32, be64, seal};
use super::geometry::{
    AGFL_FILL, BLOCK, BLOCK_LOG, Geometry, INODE_ALIGN, INODE_LOG, INODE_SIZE,
    INODES_PER_BLOCK_LOG, NULL32,
};

const SB_MAGIC: u32 = 0x5846_5342; // "XFSB"
const AGF_MAGIC: u32 = 0x5841_4746; // "XAGF"
const AGI_MAGIC: u32 = 0x5841_4749; // "XAGI"
const AGFL_MAGIC: u32 = 0x5841_464c; // "XAFL"
pub(super) const BNO_MAGIC: u32 = 0x4142_3342; // "AB3B"
pub(super) const CNT_MAGIC: u32 = 0x4142_3343; // "AB3C"
pub(super) const INO_MAGIC: u32 = 0x4941_4233; // "IAB3"
pub(super) const FINO_MAGIC: u32 = 0x4649_4233; // "FIB3"
/// A short-pointer v5 btree block header.
const BTREE_HEADER: usize = 56;
pub(super) const ALLOC_RECORD: usize = 8;
pub(super) const INODE_RECORD: usize = 16;

/// Version 5, attribute 2/nlink/inode alignment/extent flags/v2 dirs/v2 log: what
/// `mkfs.xfs` sets for a CRC filesystem; the sector bit only for non-512-byte sectors.
const VERSION: u16 = 0xb4a5;
const VERSION_SECTOR: u16 = 0x0800;
/// Lazy superblock counters, attr2, 32-bit project ids, CRCs.
const FEATURES2: u32 = 0x018a;
const RO_COMPAT_FINOBT: u32 = 1;
const INCOMPAT_FTYPE: u32 = 1;

/// Filesystem-wide counters the superblock carries (kept exact so repair has nothing to say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counts {
    pub icount: u64,
    pub ifree: u64,
    pub fdblocks: u64,
}

/// One inode chunk as the inode btrees record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ChunkRecord {
    /// Group-relative number of the chunk's first inode.
    pub agino: u32,
    /// Bit `i` set when inode `agino + i` is free.
    pub free: u64,
}

impl ChunkRecord {
    fn bytes(&self) -> [u8; INODE_RECORD] {
        let mut out = [0u8; INODE_RECORD];
        be32(&mut out, 0, self.agino);
        be32(&mut out, 4, self.free.count_ones());
        be64(&mut out, 8, self.free);
        out
    }
}

pub(super) fn superblock(
    geometry: &Geometry,
    label: &[u8],
    uuid: &[u8; 16],
    counts: Counts,
) -> Vec<u8> {
    let root = geometry.root_ino();
    let mut sb = vec![0u8; geometry.sector as usize];
    be32(&mut sb, 0, SB_MAGIC);
    be32(&mut sb, 4, BLOCK as u32);
    be64(&mut sb, 8, geometry.dblocks);
    sb[32..48].copy_from_slice(uuid);
    be64(&mut sb, 48, geometry.log_start());
    be64(&mut sb, 56, root);
    // Realtime bitmap and summary inodes exist even without a realtime device.
    be64(&mut sb, 64, root + 1);
    be64(&mut sb, 72, root + 2);
    be32(&mut sb, 80, 1); // realtime extent size
    be32(&mut sb, 84, geometry.agblocks);
    be32(&mut sb, 88, geometry.agcount);
    be32(&mut sb, 96, geometry.logblocks);
    let version = if geometry.sector == 512 {
        VERSION
    } else {
        VERSION | VERSION_SECTOR
    };
    be16(&mut sb, 100, version);
    be16(&mut sb, 102, geometry.sector as u16);
    be16(&mut sb, 104, INODE_SIZE as u16);
    be16(&mut sb, 106, 1 << INODES_PER_BLOCK_LOG);
    sb[108..108 + label.len()].copy_from_slice(label);
    sb[120] = BLOCK_LOG;
    sb[121] = geometry.sector.trailing_zeros() as u8;
    sb[122] = INODE_LOG;
    sb[123] = INODES_PER_BLOCK_LOG;
    sb[124] = geometry.agblklog;
    sb[127] = 25; // at most 25% of the space for inodes, mkfs's default below 1 TiB
    be64(&mut sb, 128, counts.icount);
    be64(&mut sb, 136, counts.ifree);
    be64(&mut sb, 144, counts.fdblocks);
    be32(&mut sb, 180, INODE_ALIGN);
    if geometry.sector == 512 {
        // Log sectors default to 512 bytes (recorded as zero) and no log stripe unit (1).
        be32(&mut sb, 196, 1);
    } else {
        sb[193] = geometry.sector.trailing_zeros() as u8;
        be16(&mut sb, 194, geometry.sector as u16);
        // A log record must cover a whole log sector.
        be32(&mut sb, 196, BLOCK as u32);
    }
    be32(&mut sb, 200, FEATURES2);
    be32(&mut sb, 204, FEATURES2);
    be32(&mut sb, 212, RO_COMPAT_FINOBT);
    be32(&mut sb, 216, INCOMPAT_FTYPE);
    seal(&mut sb, 224);
    sb
}

/// The free-space header; `free` is the group's free runs in block order.
pub(super) fn agf(geometry: &Geometry, agno: u32, free: &[(u32, u32)], uuid: &[u8; 16]) -> Vec<u8> {
    let mut agf = vec![0u8; geometry.sector as usize];
    be32(&mut agf, 0, AGF_MAGIC);
    be32(&mut agf, 4, 1);
    be32(&mut agf, 8, agno);
    be32(&mut agf, 12, geometry.ag_length(agno));
    be32(&mut agf, 16, geometry.bno_root());
    be32(&mut agf, 20, geometry.cnt_root());
    be32(&mut agf, 28, 1);
    be32(&mut agf, 32, 1);
    be32(&mut agf, 40, 0);
    be32(&mut agf, 44, AGFL_FILL - 1);
    be32(&mut agf, 48, AGFL_FILL);
    be32(&mut agf, 52, free.iter().map(|(_, len)| len).sum());
    be32(
        &mut agf,
        56,
        free.iter().map(|(_, len)| *len).max().unwrap_or(0),
    );
    agf[64..80].copy_from_slice(uuid);
    seal(&mut agf, 216);
    agf
}

/// The free list: the reserved blocks first, the rest of the slots empty.
pub(super) fn agfl(geometry: &Geometry, agno: u32, uuid: &[u8; 16]) -> Vec<u8> {
    let mut agfl = vec![0u8; geometry.sector as usize];
    be32(&mut agfl, 0, AGFL_MAGIC);
    be32(&mut agfl, 4, agno);
    agfl[8..24].copy_from_slice(uuid);
    let start = geometry.agfl_start(agno);
    for slot in 0..geometry.agfl_size() {
        let block = if slot < AGFL_FILL as usize {
            start + slot as u32
        } else {
            NULL32
        };
        be32(&mut agfl, 36 + 4 * slot, block);
    }
    seal(&mut agfl, 32);
    agfl
}

/// The inode header of a group holding `chunks`.
pub(super) fn agi(
    geometry: &Geometry,
    agno: u32,
    chunks: &[ChunkRecord],
    uuid: &[u8; 16],
) -> Vec<u8> {
    let mut agi = vec![0u8; geometry.sector as usize];
    be32(&mut agi, 0, AGI_MAGIC);
    be32(&mut agi, 4, 1);
    be32(&mut agi, 8, agno);
    be32(&mut agi, 12, geometry.ag_length(agno));
    be32(&mut agi, 16, chunks.len() as u32 * 64);
    be32(&mut agi, 20, geometry.ino_root());
    be32(&mut agi, 24, 1);
    be32(
        &mut agi,
        28,
        chunks.iter().map(|c| c.free.count_ones()).sum(),
    );
    be32(&mut agi, 32, chunks.last().map_or(NULL32, |c| c.agino));
    be32(&mut agi, 36, NULL32);
    // Unlinked-inode hash buckets, all empty.
    agi[40..296].fill(0xff);
    agi[296..312].copy_from_slice(uuid);
    be32(&mut agi, 328, geometry.fino_root());
    be32(&mut agi, 332, 1);
    seal(&mut agi, 312);
    agi
}

/// A root-and-only leaf block of one of the group btrees.
pub(super) fn leaf(
    geometry: &Geometry,
    magic: u32,
    agno: u32,
    agbno: u32,
    records: &[u8],
    numrecs: usize,
    uuid: &[u8; 16],
) -> Vec<u8> {
    let mut block = vec![0u8; BLOCK as usize];
    be32(&mut block, 0, magic);
    be16(&mut block, 6, numrecs as u16);
    be32(&mut block, 8, NULL32);
    be32(&mut block, 12, NULL32);
    be64(&mut block, 16, geometry.daddr(agno, agbno));
    block[32..48].copy_from_slice(uuid);
    be32(&mut block, 48, agno);
    block[BTREE_HEADER..BTREE_HEADER + records.len()].copy_from_slice(records);
    seal(&mut block, 52);
    block
}

/// Records a single leaf holds.
pub(super) fn leaf_capacity(record: usize) -> usize {
    (BLOCK as usize - BTREE_HEADER) / record
}

/// Free runs as the by-block and by-size btrees record them.
pub(super) fn free_records(free: &[(u32, u32)]) -> (Vec<u8>, Vec<u8>) {
    let encode = |runs: &[(u32, u32)]| {
        let mut out = Vec::with_capacity(runs.len() * ALLOC_RECORD);
        for (start, len) in runs {
            out.extend_from_slice(&start.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
        }
        out
    };
    let mut by_size = free.to_vec();
    by_size.sort_by_key(|(start, len)| (*len, *start));
    (encode(free), encode(&by_size))
}

/// Inode btree records (every chunk) and free-inode btree records (chunks with a free slot).
pub(super) fn inode_records(chunks: &[ChunkRecord]) -> (Vec<u8>, Vec<u8>, usize) {
    let all: Vec<u8> = chunks.iter().flat_map(|c| c.bytes()).collect();
    let with_free: Vec<&ChunkRecord> = chunks.iter().filter(|c| c.free != 0).collect();
    let free: Vec<u8> = with_free.iter().flat_map(|c| c.bytes()).collect();
    (all, free, with_free.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::size::MIB;

    fn read32(buf: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(buf[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn superblock_fields_match_mkfs() {
        let geometry = Geometry::new(2000 * MIB, 512).unwrap();
        let counts = Counts {
            icount: 64,
            ifree: 61,
            fdblocks: 495_588,
        };
        let sb = superblock(&geometry, b"BOOT", &[1; 16], counts);
        assert_eq!(sb.len(), 512);
        // Values xfs_db prints for mkfs.xfs -L BOOT -m crc=1,finobt=1 of 2000 MiB.
        assert_eq!(u16::from_be_bytes([sb[100], sb[101]]), 0xb4a5);
        assert_eq!(read32(&sb, 200), 0x18a);
        assert_eq!(&sb[108..120], b"BOOT\0\0\0\0\0\0\0\0");
        assert_eq!(u64::from_be_bytes(sb[48..56].try_into().unwrap()), 262_149);
        assert_eq!(read32(&sb, 196), 1);
        let large = Geometry::new(2000 * MIB, 4096).unwrap();
        let sb = superblock(&large, b"BOOT", &[1; 16], counts);
        assert_eq!(sb.len(), 4096);
        assert_eq!(u16::from_be_bytes([sb[100], sb[101]]), 0xbca5);
        assert_eq!((sb[193], read32(&sb, 196)), (12, 4096));
    }

    #[test]
    fn free_space_records_are_sorted_both_ways() {
        let (by_block, by_size) = free_records(&[(9, 3), (20, 100), (200, 50)]);
        let pairs = |bytes: &[u8]| -> Vec<(u32, u32)> {
            bytes
                .chunks(8)
                .map(|r| (read32(r, 0), read32(r, 4)))
                .collect()
        };
        assert_eq!(pairs(&by_block), [(9, 3), (20, 100), (200, 50)]);
        assert_eq!(pairs(&by_size), [(9, 3), (200, 50), (20, 100)]);
    }

    #[test]
    fn agf_and_agi_summaries() {
        let geometry = Geometry::new(1000 * MIB, 512).unwrap();
        let agf = agf(&geometry, 0, &[(9, 3), (20, 63_980)], &[0; 16]);
        assert_eq!(read32(&agf, 52), 63_983);
        assert_eq!(read32(&agf, 56), 63_980);
        let chunks = [ChunkRecord {
            agino: 96,
            free: !0b111,
        }];
        let agi = agi(&geometry, 0, &chunks, &[0; 16]);
        assert_eq!((read32(&agi, 16), read32(&agi, 28)), (64, 61));
        assert_eq!(read32(&agi, 32), 96);
        let (all, free, with_free) = inode_records(&chunks);
        assert_eq!(all, free);
        assert_eq!(with_free, 1);
        assert_eq!(read32(&all, 4), 61);
    }
}
