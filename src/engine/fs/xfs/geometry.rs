//! Where everything sits: allocation group size and count, the fixed blocks at the head of
//! each group, the internal log and the first inode chunk, chosen as `mkfs.xfs` 6.1 chooses
//! them for a single disk so that `xfs_repair` finds the root inode where it expects it.

use crate::engine::EngineError;
use crate::size::MIB;

pub(super) const BLOCK: u64 = 4096;
pub(super) const BLOCK_LOG: u8 = 12;
pub(super) const INODE_SIZE: usize = 512;
pub(super) const INODE_LOG: u8 = 9;
pub(super) const INODES_PER_BLOCK_LOG: u8 = BLOCK_LOG - INODE_LOG;
pub(super) const INODES_PER_CHUNK: u64 = 64;
/// A chunk of 64 inodes of 512 bytes.
pub(super) const CHUNK_BLOCKS: u32 = 8;
/// `sb_inoalignmt`: chunks start on an inode cluster (16 KiB for 512-byte inodes).
pub(super) const INODE_ALIGN: u32 = 4;
/// Blocks put on each group's free list: one spare per level of the two free-space btrees
/// plus one, what the kernel wants there before it allocates.
pub(super) const AGFL_FILL: u32 = 4;
/// Sentinel for "no block" / "no inode" in 32-bit AG-relative fields.
pub(super) const NULL32: u32 = u32::MAX;

/// mkfs.xfs refuses anything smaller since xfsprogs 5.19.
pub(super) const MIN_SIZE: u64 = 300 * MIB;
/// Above this mkfs stops using four groups and the inode space percentage changes; a boot
/// partition never comes close.
pub(super) const MAX_SIZE: u64 = 1 << 40;
const MIN_AG_BLOCKS: u64 = (16 * MIB) / BLOCK;
/// mkfs's floor for the log (64 MiB) and its 1:2048 ratio above that.
const MIN_REALISTIC_LOG_BLOCKS: u64 = (64 * MIB) / BLOCK;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Geometry {
    pub sector: u64,
    pub dblocks: u64,
    pub agblocks: u32,
    pub agcount: u32,
    pub agblklog: u8,
    pub logblocks: u32,
    pub log_ag: u32,
}

impl Geometry {
    pub fn new(size: u64, sector: u64) -> Result<Geometry, EngineError> {
        if !matches!(sector, 512 | 4096) {
            return Err(EngineError::InvalidInput(format!(
                "XFS sector size {sector} is not 512 or 4096"
            )));
        }
        if size < MIN_SIZE {
            return Err(EngineError::InvalidInput(format!(
                "an XFS volume of {size} bytes is smaller than the {MIN_SIZE} bytes mkfs.xfs accepts"
            )));
        }
        if size >= MAX_SIZE {
            return Err(EngineError::InvalidInput(format!(
                "an XFS volume of {size} bytes is larger than the {MAX_SIZE} bytes supported"
            )));
        }
        let mut dblocks = size / BLOCK;
        // Four groups for a single disk between 128 MiB and 4 TiB, rounded up so the last
        // group keeps the remainder; a remainder too small to be a group is dropped.
        let agblocks = dblocks.div_ceil(4);
        let mut agcount = dblocks.div_ceil(agblocks);
        let tail = dblocks % agblocks;
        if tail != 0 && tail < MIN_AG_BLOCKS {
            agcount -= 1;
            dblocks = agcount * agblocks;
        }
        let agblklog = (64 - (agblocks - 1).leading_zeros()) as u8;
        let header_blocks = (4 * sector).div_ceil(BLOCK);
        let prealloc = header_blocks + 4;
        // The kernel wants the log to leave the group some room: headers, free list, roots.
        let max_logblocks = agblocks - (header_blocks + 4 + 3 + 1) - 1;
        let logblocks = (dblocks / 2048)
            .max(MIN_REALISTIC_LOG_BLOCKS)
            .min(max_logblocks);
        let log_ag = (agcount / 2) as u32;
        if log_ag == 0 || prealloc + logblocks + u64::from(AGFL_FILL) > agblocks {
            return Err(EngineError::InvalidInput(format!(
                "an XFS volume of {size} bytes leaves no room for the log"
            )));
        }
        Ok(Geometry {
            sector,
            dblocks,
            agblocks: agblocks as u32,
            agcount: agcount as u32,
            agblklog,
            logblocks: logblocks as u32,
            log_ag,
        })
    }

    /// Blocks taken by the four AG header sectors (superblock, AGF, AGI, AGFL).
    pub fn header_blocks(&self) -> u32 {
        (4 * self.sector).div_ceil(BLOCK) as u32
    }

    pub fn bno_root(&self) -> u32 {
        self.header_blocks()
    }

    pub fn cnt_root(&self) -> u32 {
        self.header_blocks() + 1
    }

    pub fn ino_root(&self) -> u32 {
        self.header_blocks() + 2
    }

    pub fn fino_root(&self) -> u32 {
        self.header_blocks() + 3
    }

    /// First block after the headers and the four btree roots.
    pub fn prealloc(&self) -> u32 {
        self.header_blocks() + 4
    }

    /// First of the blocks on group `agno`'s free list: after the log where there is one.
    pub fn agfl_start(&self, agno: u32) -> u32 {
        if agno == self.log_ag {
            self.prealloc() + self.logblocks
        } else {
            self.prealloc()
        }
    }

    /// Where the root directory's inode chunk starts in group 0.
    pub fn first_chunk(&self) -> u32 {
        (self.prealloc() + AGFL_FILL).next_multiple_of(INODE_ALIGN)
    }

    pub fn ag_length(&self, agno: u32) -> u32 {
        let start = u64::from(agno) * u64::from(self.agblocks);
        (self.dblocks - start).min(u64::from(self.agblocks)) as u32
    }

    /// Filesystem block number: group number in the high bits, block in the group below.
    pub fn fsbno(&self, agno: u32, agbno: u32) -> u64 {
        (u64::from(agno) << self.agblklog) | u64::from(agbno)
    }

    /// Byte offset in the volume.
    pub fn offset(&self, agno: u32, agbno: u32) -> u64 {
        (u64::from(agno) * u64::from(self.agblocks) + u64::from(agbno)) * BLOCK
    }

    /// Address in 512-byte units, as blocks record their own location.
    pub fn daddr(&self, agno: u32, agbno: u32) -> u64 {
        self.offset(agno, agbno) / 512
    }

    /// Inode number of the `index`-th inode of block `agbno` in group `agno`.
    pub fn ino(&self, agno: u32, agbno: u32, index: u32) -> u64 {
        (u64::from(agno) << (self.agblklog + INODES_PER_BLOCK_LOG))
            | (u64::from(agbno) << INODES_PER_BLOCK_LOG)
            | u64::from(index)
    }

    pub fn root_ino(&self) -> u64 {
        self.ino(0, self.first_chunk(), 0)
    }

    pub fn log_start(&self) -> u64 {
        self.fsbno(self.log_ag, self.prealloc())
    }

    /// Entries in an AGFL sector after its 36-byte header.
    pub fn agfl_size(&self) -> usize {
        (self.sector as usize - 36) / 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(size, agcount, agsize, dblocks, logblocks)` as `mkfs.xfs -N` (xfsprogs 6.1) prints
    /// them with crc=1,finobt=1,reflink=0,rmapbt=0.
    const MKFS: &[(u64, u32, u32, u64, u32)] = &[
        (300 * MIB, 4, 19200, 76800, 16384),
        (301 * MIB, 4, 19264, 77056, 16384),
        (333 * MIB, 4, 21312, 85248, 16384),
        (314_576_896, 4, 19201, 76801, 16384),
        (314_577_896, 4, 19201, 76801, 16384),
        (314_585_088, 4, 19201, 76803, 16384),
        (1000 * MIB, 4, 64000, 256000, 16384),
        (1001 * MIB, 4, 64064, 256256, 16384),
        (2000 * MIB, 4, 128000, 512000, 16384),
        (10 * 1024 * MIB, 4, 655360, 2621440, 16384),
        (500 * 1024 * MIB, 4, 32768000, 131072000, 64000),
        (1023 * 1024 * MIB, 4, 67043328, 268173312, 130944),
    ];

    #[test]
    fn geometry_matches_mkfs() {
        for &(size, agcount, agblocks, dblocks, logblocks) in MKFS {
            let geometry = Geometry::new(size, 512).unwrap();
            assert_eq!(
                (
                    geometry.agcount,
                    geometry.agblocks,
                    geometry.dblocks,
                    geometry.logblocks
                ),
                (agcount, agblocks, dblocks, logblocks),
                "size {size}"
            );
        }
    }

    #[test]
    fn fixed_positions_match_mkfs() {
        // xfs_db on mkfs.xfs output: rootino 96 and logstart 262149 (512-byte sectors),
        // 262152 (4096-byte sectors) for 2000 MiB.
        let small = Geometry::new(2000 * MIB, 512).unwrap();
        assert_eq!(small.agblklog, 17);
        assert_eq!(small.root_ino(), 96);
        assert_eq!(small.log_start(), 262_149);
        assert_eq!(small.agfl_start(2), 5 + 16384);
        assert_eq!(small.agfl_size(), 119);
        let large = Geometry::new(2000 * MIB, 4096).unwrap();
        assert_eq!(large.root_ino(), 96);
        assert_eq!(large.log_start(), 262_152);
        assert_eq!(large.bno_root(), 4);
        assert_eq!(large.agfl_size(), 1015);
        assert_eq!(large.daddr(1, 2), (128_000 + 2) * 8);
    }

    #[test]
    fn bad_sizes_and_sectors_are_refused() {
        let error = Geometry::new(299 * MIB, 512).unwrap_err();
        assert!(
            error.to_string().contains(&(299 * MIB).to_string()),
            "{error}"
        );
        let error = Geometry::new(2000 * MIB, 1024).unwrap_err();
        assert!(error.to_string().contains("1024"), "{error}");
        assert!(Geometry::new(MAX_SIZE, 512).is_err());
    }
}
