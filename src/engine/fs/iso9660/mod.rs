//! ISO 9660 (level 3) file systems with Rock Ridge names, modes and times, laid out as a
//! sparse image: metadata blocks first, then every file's bytes referenced, never copied.
//!
//! With a partition offset the image also carries a second superblock and directory tree
//! 16 blocks in, whose addresses count from there, so a partition starting at that block
//! (after a GPT or MBR in the system area) holds a mountable ISO 9660 file system too.
//!
//! Written here rather than with hadris-iso: that crate takes every file's contents as an
//! owned buffer and writes through `Write + Seek`, so it could neither reference payload in
//! the sparse image nor stream, and it has no partition-offset view.
// A writer: every index is computed from the layout it chose itself, never read from input
// (`eltorito`, which patches boot images of the release, denies it again).
#![allow(clippy::indexing_slicing)]

mod descriptors;
pub mod eltorito;
mod records;
mod tree;

use crate::calendar::UtcTime;
use crate::engine::EngineError;
use crate::format::SparseImage;
use bytes::Bytes;
use descriptors::*;
use records::*;
use tree::*;

pub const BLOCK: u64 = 2048;
/// Blocks 0–15 are the system area, left to the caller (MBR, GPT, boot code).
pub const SYSTEM_AREA_BLOCKS: u32 = 16;
/// The second view's offset: its system area is blocks 16–31, its descriptors from 32.
pub const PARTITION_OFFSET_BLOCKS: u32 = 16;

/// One file of the tree.
#[derive(Debug, Clone)]
pub struct IsoFile {
    /// Slash-separated path from the root, e.g. `boot/vmlinuz`.
    pub path: String,
    pub bytes: Bytes,
    /// Already compressed (encoders skip their search on it).
    pub packed: bool,
}

/// The primary volume descriptor's names and the time of every entry.
#[derive(Debug, Clone)]
pub struct Volume {
    pub volume_id: String,
    pub volume_set_id: String,
    pub mtime: i64,
}

/// How the file system sits in the image.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Whether the image carries the second, partition-relative view.
    pub partition_offset: bool,
    /// Whether the medium boots: a boot record and `/boot.catalog`.
    pub bootable: bool,
}

/// Block of the boot catalog when [`Layout::bootable`] is set: right after the descriptors.
pub fn catalog_lba(partition_offset: bool) -> u32 {
    if partition_offset {
        PARTITION_OFFSET_BLOCKS + SYSTEM_AREA_BLOCKS + 2
    } else {
        SYSTEM_AREA_BLOCKS + 3
    }
}

/// Where everything goes, decided from sizes alone so boot images can be patched with their
/// own addresses before anything is written.
#[derive(Debug)]
pub struct Placement {
    tree: Tree,
    layout: Layout,
    continuation: u32,
    catalog: Option<u32>,
    table_len: u64,
    /// L and M path table blocks per view.
    tables: [[u32; 2]; 2],
    /// Block of each input file, in input order (`boot.catalog` last when bootable).
    pub file_lbas: Vec<u32>,
    /// End of the file system in bytes (the reserved space starts here).
    pub end: u64,
}

const CATALOG_PATH: &str = "boot.catalog";

fn with_catalog(files: &[IsoFile], bootable: bool) -> Vec<IsoFile> {
    let mut all = files.to_vec();
    if bootable {
        all.push(IsoFile {
            path: CATALOG_PATH.into(),
            bytes: Bytes::from(vec![0u8; BLOCK as usize]),
            packed: false,
        });
    }
    all
}

impl Placement {
    pub fn plan(files: &[IsoFile], layout: &Layout) -> Result<Placement, EngineError> {
        let all = with_catalog(files, layout.bootable);
        let mut tree = build_tree(&all)?;
        let views = if layout.partition_offset { 2 } else { 1 };
        let mut next = if layout.partition_offset {
            PARTITION_OFFSET_BLOCKS + SYSTEM_AREA_BLOCKS + 2
        } else {
            SYSTEM_AREA_BLOCKS + 2 + u32::from(layout.bootable)
        };
        let catalog = layout.bootable.then(|| {
            let block = next;
            next += 1;
            block
        });
        let continuation = next;
        next += 1;
        // Directory sizes do not depend on addresses.
        for dir in 0..tree.dirs.len() {
            tree.dirs[dir].size = directory_size(&entries(&tree, &all, dir, 0));
        }
        let table_len = path_table(&tree, 0, 0, false).len() as u64;
        let table_blocks = blocks_of(table_len)?;
        let mut tables = [[0u32; 2]; 2];
        for (view, table) in tables.iter_mut().enumerate().take(views) {
            *table = [next, next + table_blocks];
            next += 2 * table_blocks;
            for dir in tree.order.clone() {
                tree.dirs[dir].lba[view] = next;
                next += blocks_of(tree.dirs[dir].size)?;
            }
        }
        let mut file_lbas = Vec::with_capacity(all.len());
        for (index, file) in all.iter().enumerate() {
            if index == files.len() {
                file_lbas.push(catalog.unwrap_or_default());
            } else if file.bytes.is_empty() {
                // Empty files have no extent; any address will do.
                file_lbas.push(0);
            } else {
                file_lbas.push(next);
                next = next
                    .checked_add(blocks_of(file.bytes.len() as u64)?)
                    .ok_or_else(|| EngineError::InvalidInput("the ISO is too big".into()))?;
            }
        }
        Ok(Placement {
            tree,
            layout: layout.clone(),
            continuation,
            catalog,
            table_len,
            tables,
            file_lbas,
            end: u64::from(next) * BLOCK,
        })
    }

    /// Writes the file system: `files` must have the sizes they were planned with (boot
    /// images may have been patched since), `catalog` the El Torito catalog when bootable.
    /// `reserved_after` bytes follow the file system (appended partitions, a backup GPT); the
    /// session's volume size covers them so UEFI reads appended boot images in full.
    pub fn write(
        &self,
        volume: &Volume,
        files: &[IsoFile],
        catalog: Option<&[u8; 2048]>,
        reserved_after: u64,
    ) -> Result<SparseImage, EngineError> {
        let all = with_catalog(files, self.layout.bootable);
        let planned = all.len() == self.file_lbas.len()
            && all.iter().zip(&self.file_lbas).all(|(file, lba)| {
                file.bytes.is_empty() == (*lba == 0) || file.path == CATALOG_PATH
            });
        if !planned {
            return Err(EngineError::InvalidInput(
                "ISO files changed between planning and writing".into(),
            ));
        }
        let tree = &self.tree;
        let views = if self.layout.partition_offset { 2 } else { 1 };
        let view_base = [0u32, PARTITION_OFFSET_BLOCKS];
        let total = self.end + reserved_after;
        let mut image = SparseImage::new(total);
        let time = record_time(&UtcTime::from_unix(volume.mtime));
        for (view, base) in view_base.iter().copied().enumerate().take(views) {
            let relative = |lba: u32| if lba == 0 { 0 } else { lba - base };
            for dir in 0..tree.dirs.len() {
                let mut extent = Vec::with_capacity(tree.dirs[dir].size as usize);
                for entry in entries(tree, &all, dir, relative(self.continuation)) {
                    let (lba, size, directory) = match entry.target {
                        Kind::Dir(target) => {
                            (tree.dirs[target].lba[view], tree.dirs[target].size, true)
                        }
                        Kind::File(index) => {
                            (self.file_lbas[index], all[index].bytes.len() as u64, false)
                        }
                    };
                    let len = record_len(entry.identifier.len(), &entry.susp) as u64;
                    let used = extent.len() as u64;
                    if used % BLOCK + len > BLOCK {
                        extent.resize(used.div_ceil(BLOCK) as usize * BLOCK as usize, 0);
                    }
                    push_record(
                        &mut extent,
                        entry.identifier,
                        relative(lba),
                        size,
                        directory,
                        &time,
                        &entry.susp,
                    )?;
                }
                extent.resize(tree.dirs[dir].size as usize, 0);
                image.put(u64::from(tree.dirs[dir].lba[view]) * BLOCK, extent)?;
            }
            let [little, big] = self.tables[view];
            image.put(
                u64::from(little) * BLOCK,
                path_table(tree, view, base, false),
            )?;
            image.put(u64::from(big) * BLOCK, path_table(tree, view, base, true))?;

            let mut root_record = Vec::new();
            push_record(
                &mut root_record,
                &[0],
                relative(tree.dirs[0].lba[view]),
                tree.dirs[0].size,
                true,
                &time,
                &Susp {
                    mode: 0,
                    links: 0,
                    serial: 0,
                    name: None,
                    root: None,
                },
            )?;
            // The descriptor's copy of the root record carries no System Use fields.
            root_record.truncate(34);
            root_record[0] = 34;
            let blocks = if view == 0 {
                blocks_of(total)?
            } else {
                blocks_of(self.end)? - base
            };
            let fields = DescriptorFields {
                volume,
                blocks,
                path_table_size: self.table_len as u32,
                l_table: relative(little),
                m_table: relative(big),
                root_record,
            };
            let mut descriptors = primary_descriptor(&fields);
            if view == 0
                && let Some(catalog) = self.catalog
            {
                descriptors.extend_from_slice(&boot_record(catalog));
            }
            descriptors.extend_from_slice(&terminator());
            image.put(u64::from(base + SYSTEM_AREA_BLOCKS) * BLOCK, descriptors)?;
        }
        image.put(u64::from(self.continuation) * BLOCK, er_entry())?;
        for (index, (file, lba)) in all.iter().zip(&self.file_lbas).enumerate() {
            let offset = u64::from(*lba) * BLOCK;
            if index == files.len() {
                let catalog = catalog.ok_or_else(|| {
                    EngineError::InvalidInput("a bootable ISO needs its boot catalog".into())
                })?;
                image.put(offset, catalog.to_vec())?;
            } else if file.bytes.is_empty() {
                continue;
            } else if file.packed {
                image.put_packed(offset, file.bytes.clone())?;
            } else {
                image.put(offset, file.bytes.clone())?;
            }
        }
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume() -> Volume {
        Volume {
            volume_id: "V".into(),
            volume_set_id: "S".into(),
            mtime: 0,
        }
    }

    #[test]
    fn identifiers_are_level_3_d_characters() {
        assert_eq!(identifier("vmlinuz", false, 0), b"VMLINUZ.;1");
        assert_eq!(identifier("initramfs.xz", false, 0), b"INITRAMFS.XZ;1");
        assert_eq!(
            identifier("Talos-v1.12.0.efi", false, 0),
            b"TALOS_V1_12_0.EFI;1"
        );
        assert_eq!(identifier("i386-pc", true, 0), b"I386_PC");
        assert_eq!(identifier("a.b", true, 2), b"A_B_2");
        let long = identifier(&"x".repeat(40), false, 0);
        assert_eq!(long.len(), 30 + 1 + 2);
    }

    #[test]
    fn records_never_straddle_blocks() {
        let files: Vec<IsoFile> = (0..100)
            .map(|index| IsoFile {
                path: format!("dir/file-with-a-longer-name-{index}.txt"),
                bytes: Bytes::from(vec![index as u8; 10]),
                packed: false,
            })
            .collect();
        let placement = Placement::plan(&files, &Layout::default()).unwrap();
        let dir = placement.tree.dirs[1].clone();
        assert!(dir.size > BLOCK);
        let image = placement.write(&volume(), &files, None, 0).unwrap();
        let extent = image.read_at(u64::from(dir.lba[0]) * BLOCK, dir.size as usize);
        let mut at = 0usize;
        let mut seen = 0;
        while at < extent.len() {
            let len = extent[at] as usize;
            if len == 0 {
                at = (at / BLOCK as usize + 1) * BLOCK as usize;
                continue;
            }
            assert_eq!(at / 2048, (at + len - 1) / 2048, "record at {at} straddles");
            seen += 1;
            at += len;
        }
        assert_eq!(seen, 102);
    }

    #[test]
    fn bad_paths_are_refused() {
        let file = |path: &str| IsoFile {
            path: path.into(),
            bytes: Bytes::from_static(b"x"),
            packed: false,
        };
        for files in [
            vec![file("")],
            vec![file("a/../b")],
            vec![file("a"), file("a")],
            vec![file("a"), file("a/b")],
            vec![file(&"n".repeat(200))],
        ] {
            assert!(Placement::plan(&files, &Layout::default()).is_err());
        }
    }

    #[test]
    fn a_bootable_plan_needs_its_catalog() {
        let files = [IsoFile {
            path: "boot.img".into(),
            bytes: Bytes::from(vec![1u8; 4096]),
            packed: false,
        }];
        let layout = Layout {
            bootable: true,
            ..Layout::default()
        };
        let placement = Placement::plan(&files, &layout).unwrap();
        assert_eq!(placement.file_lbas.last(), Some(&catalog_lba(false)));
        assert!(placement.write(&volume(), &files, None, 0).is_err());
        assert!(
            placement
                .write(&volume(), &files, Some(&[0; 2048]), 0)
                .is_ok()
        );
    }
}
