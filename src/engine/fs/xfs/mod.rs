//! XFS volumes for the BOOT partition, written natively in place of `mkfs.xfs -p protofile`:
//! a fresh, cleanly unmounted filesystem holding a small tree whose file data is laid out
//! contiguously and referenced, not copied, so the volume is a sparse image whose payload
//! is the files plus a few dozen kilobytes of metadata.
//!
//! Feature set: v5 superblock with metadata CRCs (`crc=1`), the free-inode btree
//! (`finobt=1`) and file types in directory entries (`ftype=1`); version 2 log, lazy
//! counters, 4 KiB blocks, 512-byte inodes, 4 KiB directory blocks. This is what mkfs.xfs
//! makes with `-m reflink=0,rmapbt=0,bigtime=0,inobtcount=0 -i sparse=0`, and the geometry
//! (four groups, a 64 MiB log in the middle group, the root inode right after the group 0
//! headers) is the one it picks for these sizes.
//!
//! Why not the `lts_6.12` profile the Talos imager uses (reflink, rmapbt, bigtime, nrext64,
//! sparse inodes, inobtcount): BIOS boots read this volume with GRUB, which refuses any
//! incompatible feature it does not know. GRUB 2.06 as released knows ftype, sparse inodes,
//! meta_uuid, bigtime and needsrepair, not nrext64 (2.12; Debian bookworm's 2.06 has it as a
//! backport), and GRUB 2.04 and older do not know bigtime either. So the incompatible set
//! is ftype alone, which every v5-capable GRUB reads. reflink, rmapbt and inobtcount are
//! read-only-compatible (GRUB ignores them) but would oblige us to write two more btrees
//! and extra counters that nothing on a boot partition needs. Sparse inode chunks only help
//! a filesystem whose free space is fragmented; ours is new. The price of leaving out
//! bigtime is that timestamps stop at 2038, so later mtimes are refused rather than wrapped.
//!
//! Scope: regular files and directories, owner 0:0. Directories are short-form while their
//! entries fit in the inode and a single 4 KiB block after that (about a hundred entries
//! of ordinary names); bigger ones are refused. Files get one extent where the free space
//! allows, else up to 21 (what fits in the inode), each in one allocation group.
// A writer: every index is computed from the layout it chose itself, never read from input.
#![allow(clippy::indexing_slicing)]

mod ag;
mod dir;
mod encode;
mod geometry;
mod inode;
mod log;
mod space;
mod tree;

use crate::engine::EngineError;
use crate::format::SparseImage;
use ag::{ChunkRecord, Counts};
use bytes::Bytes;
use dir::{Entry, FT_DIR, FT_REG_FILE};
use geometry::{
    AGFL_FILL, BLOCK, CHUNK_BLOCKS, Geometry, INODE_SIZE, INODES_PER_BLOCK_LOG, INODES_PER_CHUNK,
};
use inode::{Extent, Format, InodeFields, MAX_INLINE_EXTENTS, S_IFDIR, S_IFREG};
use space::{FreeSpace, Run};
use tree::{Kind, Tree};

/// Longest label the superblock holds.
pub const MAX_LABEL: usize = 12;
/// Marks the realtime bitmap inode as using the current bitmap format.
const FLAG_NEWRTBM: u16 = 0x0004;
/// The root directory's inode plus the realtime bitmap and summary inodes.
const RESERVED_INODES: u64 = 3;

/// What the volume looks like.
#[derive(Debug, Clone)]
pub struct XfsOptions {
    pub size: u64,
    /// 512 or 4096.
    pub sector_size: u64,
    /// At most 12 bytes.
    pub label: String,
    /// Filesystem UUID in textual byte order (e.g. [`crate::engine::fs::gpt::guid_from_label`]).
    pub uuid: [u8; 16],
    /// Unix time given to every inode; must be before 2038 (no bigtime).
    pub mtime: u32,
}

/// A directory to create (directories implied by file paths get 0o755).
#[derive(Debug, Clone)]
pub struct XfsDir {
    /// Slash-separated path from the root, e.g. `grub`.
    pub path: String,
    /// Permission bits only, e.g. 0o700.
    pub mode: u32,
}

/// A regular file to create.
#[derive(Debug, Clone)]
pub struct XfsFile {
    /// Slash-separated path from the root, e.g. `A/vmlinuz`.
    pub path: String,
    pub bytes: Bytes,
    /// Permission bits only, e.g. 0o644.
    pub mode: u32,
    /// Whether the bytes are already compressed (a hint for image encoders).
    pub packed: bool,
}

/// Where one entry of the tree keeps its data.
#[derive(Debug)]
enum Placement {
    /// A short-form directory: the entries live in the inode.
    ShortDir(Vec<u8>),
    /// A single-block directory and the block it occupies.
    BlockDir { run: Run, block: Vec<u8> },
    /// A file's data runs in file order, and the data (a reference-counted handle).
    File {
        runs: Vec<Run>,
        bytes: Bytes,
        packed: bool,
    },
}

/// Builds the volume holding `dirs` and `files`.
pub fn build(
    options: &XfsOptions,
    dirs: &[XfsDir],
    files: &[XfsFile],
) -> Result<SparseImage, EngineError> {
    let geometry = Geometry::new(options.size, options.sector_size)?;
    check_options(options)?;
    let tree = Tree::build(dirs, files)?;
    let inodes = Inodes::number(&tree, &geometry);
    let mut space = FreeSpace::new(&geometry);
    for chunk in 0..inodes.chunks {
        let run = Run {
            agno: 0,
            agbno: geometry.first_chunk() + chunk as u32 * CHUNK_BLOCKS,
            len: CHUNK_BLOCKS,
        };
        if inodes.chunks as usize > ag::leaf_capacity(ag::INODE_RECORD) || !space.claim(run) {
            return Err(EngineError::InvalidInput(format!(
                "{} entries need more inodes than this XFS writer places",
                tree.nodes.len()
            )));
        }
    }
    let placements = place(&tree, &inodes, &geometry, &mut space, options)?;

    let mut image = SparseImage::new(options.size);
    let table = inode_table(&tree, &inodes, &placements, &geometry, options);
    image.put(geometry.offset(0, geometry.first_chunk()), table)?;
    for placement in placements {
        match placement {
            Placement::BlockDir { run, block } => {
                image.put(geometry.offset(run.agno, run.agbno), block)?
            }
            Placement::File {
                runs,
                bytes,
                packed,
            } => {
                let mut start = 0usize;
                for run in runs {
                    let end = bytes.len().min(start + run.len as usize * BLOCK as usize);
                    // A slice of the caller's buffer, not a copy.
                    let data = bytes.slice(start..end);
                    let at = geometry.offset(run.agno, run.agbno);
                    if packed {
                        image.put_packed(at, data)?;
                    } else {
                        image.put(at, data)?;
                    }
                    start = end;
                }
            }
            Placement::ShortDir(_) => {}
        }
    }
    write_groups(&mut image, &geometry, &space, &inodes, options)?;
    // The log shares the volume's sector size.
    image.put(
        geometry.offset(geometry.log_ag, geometry.prealloc()),
        log::clean_record(geometry.sector as usize, &options.uuid),
    )?;
    Ok(image)
}

fn check_options(options: &XfsOptions) -> Result<(), EngineError> {
    if options.label.len() > MAX_LABEL {
        return Err(EngineError::InvalidInput(format!(
            "XFS label {:?} is longer than {MAX_LABEL} bytes",
            options.label
        )));
    }
    if options.uuid == [0; 16] {
        return Err(EngineError::InvalidInput(
            "XFS UUID 00000000-0000-0000-0000-000000000000 is nil, which Linux refuses to mount"
                .into(),
        ));
    }
    if i32::try_from(options.mtime).is_err() {
        return Err(EngineError::InvalidInput(format!(
            "XFS mtime {} is past 2038, which XFS without bigtime cannot store",
            options.mtime
        )));
    }
    Ok(())
}

/// Inode numbers: the root first (where mkfs puts it), then the realtime bitmap and
/// summary, then the tree depth first, in consecutive chunks of group 0 so that every
/// number fits the 4-byte form of short-form directories.
#[derive(Debug)]
struct Inodes {
    root: u64,
    /// Per tree node.
    numbers: Vec<u64>,
    used: u64,
    chunks: u64,
}

impl Inodes {
    fn number(tree: &Tree, geometry: &Geometry) -> Inodes {
        let root = geometry.root_ino();
        let mut numbers = vec![0u64; tree.nodes.len()];
        for (position, index) in tree.preorder().into_iter().enumerate() {
            let slot = if position == 0 {
                0
            } else {
                position as u64 + RESERVED_INODES - 1
            };
            numbers[index] = root + slot;
        }
        let used = tree.nodes.len() as u64 + RESERVED_INODES - 1;
        Inodes {
            root,
            numbers,
            used,
            chunks: used.div_ceil(INODES_PER_CHUNK),
        }
    }

    /// The inode btree records: which slots of each chunk are free.
    fn records(&self, geometry: &Geometry) -> Vec<ChunkRecord> {
        (0..self.chunks)
            .map(|chunk| {
                let taken = self.used.saturating_sub(chunk * INODES_PER_CHUNK);
                let agbno = geometry.first_chunk() + chunk as u32 * CHUNK_BLOCKS;
                ChunkRecord {
                    agino: agbno << INODES_PER_BLOCK_LOG,
                    free: if taken >= INODES_PER_CHUNK {
                        0
                    } else {
                        u64::MAX << taken
                    },
                }
            })
            .collect()
    }
}

/// Directory blocks first (they are small and find room near the inodes), then file data.
fn place(
    tree: &Tree,
    inodes: &Inodes,
    geometry: &Geometry,
    space: &mut FreeSpace,
    options: &XfsOptions,
) -> Result<Vec<Placement>, EngineError> {
    let order = tree.preorder();
    let mut placements: Vec<Option<Placement>> = (0..tree.nodes.len()).map(|_| None).collect();
    for &index in &order {
        let node = &tree.nodes[index];
        if !node.is_dir() {
            continue;
        }
        let entries: Vec<Entry<'_>> = node
            .children()
            .iter()
            .map(|child| Entry {
                name: &tree.nodes[*child].name,
                ino: inodes.numbers[*child],
                ftype: if tree.nodes[*child].is_dir() {
                    FT_DIR
                } else {
                    FT_REG_FILE
                },
            })
            .collect();
        let parent = inodes.numbers[node.parent];
        if let Some(fork) = dir::short_form(parent, &entries) {
            placements[index] = Some(Placement::ShortDir(fork));
            continue;
        }
        let too_big = || {
            EngineError::InvalidInput(format!(
                "XFS directory {:?} has {} entries, more than one {BLOCK}-byte directory \
                 block holds",
                path_of(tree, index),
                entries.len()
            ))
        };
        if dir::block_bytes(&entries) > BLOCK as usize {
            return Err(too_big());
        }
        let run = allocate(space, 1, options.size)?
            .first()
            .copied()
            .ok_or_else(|| no_space(options.size))?;
        let daddr = geometry.daddr(run.agno, run.agbno);
        let block = dir::block(
            inodes.numbers[index],
            parent,
            &entries,
            daddr,
            &options.uuid,
        )
        .ok_or_else(too_big)?;
        placements[index] = Some(Placement::BlockDir { run, block });
    }
    for &index in &order {
        let Kind::File { bytes, packed } = &tree.nodes[index].kind else {
            continue;
        };
        let runs = allocate(space, (bytes.len() as u64).div_ceil(BLOCK), options.size)?;
        if runs.len() > MAX_INLINE_EXTENTS {
            return Err(EngineError::InvalidInput(format!(
                "XFS file {:?} of {} bytes needs {} extents, more than the {MAX_INLINE_EXTENTS} \
                 an inode holds",
                path_of(tree, index),
                bytes.len(),
                runs.len()
            )));
        }
        placements[index] = Some(Placement::File {
            runs,
            bytes: bytes.clone(),
            packed: *packed,
        });
    }
    placements
        .into_iter()
        .map(|placement| placement.ok_or_else(|| no_space(options.size)))
        .collect()
}

/// Every inode of the allocated chunks: ours encoded, the rest initialised as free.
fn inode_table(
    tree: &Tree,
    inodes: &Inodes,
    placements: &[Placement],
    geometry: &Geometry,
    options: &XfsOptions,
) -> Vec<u8> {
    let uuid = &options.uuid;
    let slots = (inodes.chunks * INODES_PER_CHUNK) as usize;
    let mut table = vec![0u8; slots * INODE_SIZE];
    for slot in 0..slots {
        let inode = inode::free(inodes.root + slot as u64, uuid);
        table[slot * INODE_SIZE..(slot + 1) * INODE_SIZE].copy_from_slice(&inode);
    }
    let mut write = |ino: u64, fields: &InodeFields<'_>| {
        let slot = (ino - inodes.root) as usize;
        let inode = inode::encode(ino, uuid, options.mtime, fields);
        table[slot * INODE_SIZE..(slot + 1) * INODE_SIZE].copy_from_slice(&inode);
    };
    for (offset, flags) in [(1, FLAG_NEWRTBM), (2, 0)] {
        let fields = InodeFields {
            mode: S_IFREG,
            nlink: 1,
            format: Format::Extents,
            size: 0,
            nblocks: 0,
            nextents: 0,
            flags,
            fork: &[],
        };
        write(inodes.root + offset, &fields);
    }
    for (index, placement) in placements.iter().enumerate() {
        let node = &tree.nodes[index];
        let mode = node.mode as u16;
        let dir_links = 2 + node
            .children()
            .iter()
            .filter(|c| tree.nodes[**c].is_dir())
            .count() as u32;
        let extent_fork = |runs: &[Run]| -> Vec<u8> {
            let mut offset = 0u64;
            let mut fork = Vec::with_capacity(runs.len() * 16);
            for run in runs {
                let extent = Extent {
                    offset,
                    fsbno: geometry.fsbno(run.agno, run.agbno),
                    len: run.len,
                };
                fork.extend_from_slice(&extent.pack());
                offset += u64::from(run.len);
            }
            fork
        };
        let fields = match placement {
            Placement::ShortDir(fork) => InodeFields {
                mode: S_IFDIR | mode,
                nlink: dir_links,
                format: Format::Local,
                size: fork.len() as u64,
                nblocks: 0,
                nextents: 0,
                flags: 0,
                fork,
            },
            Placement::BlockDir { run, .. } => InodeFields {
                mode: S_IFDIR | mode,
                nlink: dir_links,
                format: Format::Extents,
                size: BLOCK,
                nblocks: 1,
                nextents: 1,
                flags: 0,
                fork: &extent_fork(std::slice::from_ref(run)),
            },
            Placement::File { runs, bytes, .. } => InodeFields {
                mode: S_IFREG | mode,
                nlink: 1,
                format: Format::Extents,
                size: bytes.len() as u64,
                nblocks: runs.iter().map(|run| u64::from(run.len)).sum(),
                nextents: runs.len() as u32,
                flags: 0,
                fork: &extent_fork(runs),
            },
        };
        write(inodes.numbers[index], &fields);
    }
    table
}

/// Superblock copies, group headers and btree roots, once the free space is final.
fn write_groups(
    image: &mut SparseImage,
    geometry: &Geometry,
    space: &FreeSpace,
    inodes: &Inodes,
    options: &XfsOptions,
) -> Result<(), EngineError> {
    let uuid = &options.uuid;
    let icount = inodes.chunks * INODES_PER_CHUNK;
    let counts = Counts {
        icount,
        ifree: icount - inodes.used,
        // Blocks on the free lists count as free.
        fdblocks: space.free() + u64::from(AGFL_FILL) * u64::from(geometry.agcount),
    };
    let superblock = ag::superblock(geometry, options.label.as_bytes(), uuid, counts);
    let chunk_records = inodes.records(geometry);
    for agno in 0..geometry.agcount {
        let free = space.group(agno);
        if free.len() > ag::leaf_capacity(ag::ALLOC_RECORD) {
            return Err(EngineError::InvalidInput(format!(
                "the free space of XFS group {agno} is too fragmented for this writer"
            )));
        }
        let chunks: &[ChunkRecord] = if agno == 0 { &chunk_records } else { &[] };
        // Secondary superblocks are plain copies of the primary, as Linux writes them.
        let mut headers = superblock.clone();
        headers.extend_from_slice(&ag::agf(geometry, agno, free, uuid));
        headers.extend_from_slice(&ag::agi(geometry, agno, chunks, uuid));
        headers.extend_from_slice(&ag::agfl(geometry, agno, uuid));
        image.put(geometry.offset(agno, 0), headers)?;

        let (by_block, by_size) = ag::free_records(free);
        let (all_chunks, free_chunks, with_free) = ag::inode_records(chunks);
        let leaves = [
            (ag::BNO_MAGIC, geometry.bno_root(), by_block, free.len()),
            (ag::CNT_MAGIC, geometry.cnt_root(), by_size, free.len()),
            (ag::INO_MAGIC, geometry.ino_root(), all_chunks, chunks.len()),
            (ag::FINO_MAGIC, geometry.fino_root(), free_chunks, with_free),
        ];
        for (magic, agbno, records, count) in leaves {
            let block = ag::leaf(geometry, magic, agno, agbno, &records, count, uuid);
            image.put(geometry.offset(agno, agbno), block)?;
        }
    }
    Ok(())
}

fn allocate(space: &mut FreeSpace, blocks: u64, size: u64) -> Result<Vec<Run>, EngineError> {
    space.allocate(blocks).ok_or_else(|| no_space(size))
}

fn no_space(size: u64) -> EngineError {
    EngineError::InvalidInput(format!(
        "the files need more space than the {size}-byte XFS volume holds"
    ))
}

fn path_of(tree: &Tree, mut index: usize) -> String {
    let mut parts = Vec::new();
    while index != 0 {
        parts.push(String::from_utf8_lossy(&tree.nodes[index].name).to_string());
        index = tree.nodes[index].parent;
    }
    parts.reverse();
    parts.join("/")
}

#[cfg(test)]
mod tests;
