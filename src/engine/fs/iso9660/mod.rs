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

pub mod eltorito;

use crate::calendar::UtcTime;
use crate::engine::EngineError;
use crate::format::SparseImage;
use bytes::Bytes;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir(usize),
    File(usize),
}

#[derive(Debug, Clone)]
struct Child {
    name: String,
    identifier: Vec<u8>,
    kind: Kind,
}

#[derive(Debug, Clone, Default)]
struct Dir {
    parent: usize,
    children: Vec<Child>,
    /// 1-based number in the path table.
    number: u16,
    /// Extent length in bytes.
    size: u64,
    /// Block of the extent, per view.
    lba: [u32; 2],
}

const FLAG_DIRECTORY: u8 = 0x02;
/// Directory modes as mkisofs `-r` gives them: readable and searchable by everyone.
const DIR_MODE: u32 = 0o040_555;
const FILE_MODE: u32 = 0o100_444;
const EXECUTABLE_FILE_MODE: u32 = 0o100_555;

const ER_ID: &[u8] = b"RRIP_1991A";
const ER_DESCRIPTOR: &[u8] =
    b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
const ER_SOURCE: &[u8] = b"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";

fn both16(value: u16) -> [u8; 4] {
    let [a, b] = value.to_le_bytes();
    [a, b, b, a]
}

fn both32(value: u32) -> [u8; 8] {
    let le = value.to_le_bytes();
    [le[0], le[1], le[2], le[3], le[3], le[2], le[1], le[0]]
}

/// The 7-byte recording time of directory records and Rock Ridge TF entries (UTC).
fn record_time(time: &UtcTime) -> [u8; 7] {
    [
        (time.year - 1900).clamp(0, 255) as u8,
        time.month as u8,
        time.day as u8,
        time.hour as u8,
        time.minute as u8,
        time.second as u8,
        0,
    ]
}

/// The 17-byte volume descriptor time: `YYYYMMDDhhmmsscc` and a zero UTC offset.
fn volume_time(time: Option<&UtcTime>) -> [u8; 17] {
    let mut out = [b'0'; 17];
    if let Some(t) = time {
        let text = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}00",
            t.year.clamp(0, 9999),
            t.month,
            t.day,
            t.hour,
            t.minute,
            t.second
        );
        out[..16].copy_from_slice(text.as_bytes());
    }
    out[16] = 0;
    out
}

/// ISO 9660 identifiers: upper-case d-characters, `_` for anything else.
fn d_characters(text: &str) -> String {
    text.chars()
        .map(|c| match c.to_ascii_uppercase() {
            upper @ ('A'..='Z' | '0'..='9' | '_') => upper,
            _ => '_',
        })
        .collect()
}

/// The level-3 identifier of `name`: `NAME.EXT;1` for files (at most 30 characters before
/// the version), `NAME` for directories (at most 31); `attempt` > 0 makes a clashing name
/// unique.
fn identifier(name: &str, directory: bool, attempt: usize) -> Vec<u8> {
    let suffix = if attempt == 0 {
        String::new()
    } else {
        format!("_{attempt}")
    };
    let fit = |base: String, room: usize| -> String {
        let keep = room.saturating_sub(suffix.len());
        format!("{}{suffix}", &base[..base.len().min(keep)])
    };
    if directory {
        return fit(d_characters(name), 31).into_bytes();
    }
    let (base, extension) = match name.rfind('.') {
        Some(dot) if dot > 0 => (&name[..dot], &name[dot + 1..]),
        _ => (name, ""),
    };
    let extension: String = d_characters(extension).chars().take(8).collect();
    let base = fit(d_characters(base), 30 - extension.len());
    format!("{base}.{extension};1").into_bytes()
}

#[derive(Debug)]
struct Tree {
    dirs: Vec<Dir>,
    /// Directory indices in path-table order (breadth first, by identifier).
    order: Vec<usize>,
}

fn build_tree(files: &[IsoFile]) -> Result<Tree, EngineError> {
    let mut dirs = vec![Dir::default()];
    for (index, file) in files.iter().enumerate() {
        let parts: Vec<&str> = file.path.split('/').filter(|p| !p.is_empty()).collect();
        let bad =
            |reason: &str| EngineError::InvalidInput(format!("ISO path {:?} {reason}", file.path));
        if parts.is_empty() {
            return Err(bad("is empty"));
        }
        let mut current = 0usize;
        for (at, part) in parts.iter().enumerate() {
            if *part == "." || *part == ".." || part.contains('\0') {
                return Err(bad("has an invalid component"));
            }
            // Rock Ridge names live in the record with its other entries; keep well below
            // the 255-byte record limit.
            if part.len() > 120 {
                return Err(bad("has a component longer than 120 bytes"));
            }
            let last = at + 1 == parts.len();
            let existing = dirs[current]
                .children
                .iter()
                .find(|child| child.name == *part)
                .map(|child| child.kind);
            match existing {
                Some(Kind::Dir(dir)) if !last => current = dir,
                Some(_) => return Err(bad("collides with an existing entry")),
                None => {
                    let kind = if last {
                        Kind::File(index)
                    } else {
                        dirs.push(Dir {
                            parent: current,
                            ..Dir::default()
                        });
                        Kind::Dir(dirs.len() - 1)
                    };
                    let directory = !last;
                    let mut attempt = 0;
                    let identifier = loop {
                        let candidate = identifier(part, directory, attempt);
                        if !dirs[current]
                            .children
                            .iter()
                            .any(|child| child.identifier == candidate)
                        {
                            break candidate;
                        }
                        attempt += 1;
                    };
                    dirs[current].children.push(Child {
                        name: (*part).to_string(),
                        identifier,
                        kind,
                    });
                    if let Kind::Dir(dir) = kind {
                        current = dir;
                    }
                }
            }
        }
    }
    for dir in &mut dirs {
        dir.children.sort_by(|a, b| a.identifier.cmp(&b.identifier));
    }
    let mut order = vec![0usize];
    let mut at = 0;
    while at < order.len() {
        let dir = order[at];
        for child in &dirs[dir].children {
            if let Kind::Dir(sub) = child.kind {
                order.push(sub);
            }
        }
        at += 1;
    }
    for (number, dir) in order.iter().enumerate() {
        dirs[*dir].number = u16::try_from(number + 1).map_err(|_| {
            EngineError::InvalidInput("more than 65535 directories in an ISO".into())
        })?;
    }
    Ok(Tree { dirs, order })
}

/// The System Use fields of one record.
struct Susp<'a> {
    mode: u32,
    links: u32,
    serial: u32,
    name: Option<&'a str>,
    /// Root `.` only: the SUSP indicator and the continuation holding the ER entry.
    root: Option<u32>,
}

const PX_LEN: usize = 44;
const TF_LEN: usize = 5 + 7 * 3;
const SP_LEN: usize = 7;
const CE_LEN: usize = 28;

fn susp_len(susp: &Susp) -> usize {
    PX_LEN
        + TF_LEN
        + susp.name.map_or(0, |name| 5 + name.len())
        + if susp.root.is_some() {
            SP_LEN + CE_LEN
        } else {
            0
        }
}

fn record_len(identifier_len: usize, susp: &Susp) -> usize {
    let base = 33 + identifier_len + usize::from(identifier_len.is_multiple_of(2));
    let len = base + susp_len(susp);
    len + len % 2
}

/// The ER entry naming the Rock Ridge extension, kept in the root's continuation area.
fn er_entry() -> Vec<u8> {
    let mut out = vec![b'E', b'R', 0, 1];
    out.push(ER_ID.len() as u8);
    out.push(ER_DESCRIPTOR.len() as u8);
    out.push(ER_SOURCE.len() as u8);
    out.push(1);
    out.extend_from_slice(ER_ID);
    out.extend_from_slice(ER_DESCRIPTOR);
    out.extend_from_slice(ER_SOURCE);
    out[2] = out.len() as u8;
    out
}

fn push_record(
    out: &mut Vec<u8>,
    identifier: &[u8],
    lba: u32,
    size: u64,
    directory: bool,
    time: &[u8; 7],
    susp: &Susp,
) -> Result<(), EngineError> {
    let len = record_len(identifier.len(), susp);
    let start = out.len();
    let size = u32::try_from(size).map_err(|_| {
        EngineError::InvalidInput(format!(
            "a {size}-byte file does not fit in one ISO 9660 extent (4 GiB)"
        ))
    })?;
    out.push(len as u8);
    out.push(0);
    out.extend_from_slice(&both32(lba));
    out.extend_from_slice(&both32(size));
    out.extend_from_slice(time);
    out.push(if directory { FLAG_DIRECTORY } else { 0 });
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&both16(1));
    out.push(identifier.len() as u8);
    out.extend_from_slice(identifier);
    if identifier.len().is_multiple_of(2) {
        out.push(0);
    }
    if let Some(continuation) = susp.root {
        out.extend_from_slice(&[b'S', b'P', SP_LEN as u8, 1, 0xBE, 0xEF, 0]);
        out.extend_from_slice(&[b'C', b'E', CE_LEN as u8, 1]);
        out.extend_from_slice(&both32(continuation));
        out.extend_from_slice(&both32(0));
        out.extend_from_slice(&both32(er_entry().len() as u32));
    }
    out.extend_from_slice(&[b'P', b'X', PX_LEN as u8, 1]);
    out.extend_from_slice(&both32(susp.mode));
    out.extend_from_slice(&both32(susp.links));
    out.extend_from_slice(&both32(0));
    out.extend_from_slice(&both32(0));
    out.extend_from_slice(&both32(susp.serial));
    // Modification, access and attribute-change times.
    out.extend_from_slice(&[b'T', b'F', TF_LEN as u8, 1, 0x0E]);
    for _ in 0..3 {
        out.extend_from_slice(time);
    }
    if let Some(name) = susp.name {
        out.extend_from_slice(&[b'N', b'M', (5 + name.len()) as u8, 1, 0]);
        out.extend_from_slice(name.as_bytes());
    }
    out.resize(start + len, 0);
    Ok(())
}

/// One directory record of `dir` without its position: what `push_record` needs.
struct Entry<'a> {
    identifier: &'a [u8],
    target: Kind,
    susp: Susp<'a>,
}

fn entries<'a>(tree: &'a Tree, files: &[IsoFile], dir: usize, continuation: u32) -> Vec<Entry<'a>> {
    let links = |index: usize| {
        2 + tree.dirs[index]
            .children
            .iter()
            .filter(|child| matches!(child.kind, Kind::Dir(_)))
            .count() as u32
    };
    // Serial numbers: directories 1.., then files after all directories.
    let dir_serial = |index: usize| index as u32 + 1;
    let file_serial = |index: usize| (tree.dirs.len() + index) as u32 + 1;
    let parent = tree.dirs[dir].parent;
    let mut out = vec![
        Entry {
            identifier: &[0],
            target: Kind::Dir(dir),
            susp: Susp {
                mode: DIR_MODE,
                links: links(dir),
                serial: dir_serial(dir),
                name: None,
                root: (dir == 0).then_some(continuation),
            },
        },
        Entry {
            identifier: &[1],
            target: Kind::Dir(parent),
            susp: Susp {
                mode: DIR_MODE,
                links: links(parent),
                serial: dir_serial(parent),
                name: None,
                root: None,
            },
        },
    ];
    for child in &tree.dirs[dir].children {
        let susp = match child.kind {
            Kind::Dir(sub) => Susp {
                mode: DIR_MODE,
                links: links(sub),
                serial: dir_serial(sub),
                name: Some(&child.name),
                root: None,
            },
            Kind::File(index) => Susp {
                mode: if is_executable(&files[index].bytes) {
                    EXECUTABLE_FILE_MODE
                } else {
                    FILE_MODE
                },
                links: 1,
                serial: file_serial(index),
                name: Some(&child.name),
                root: None,
            },
        };
        out.push(Entry {
            identifier: &child.identifier,
            target: child.kind,
            susp,
        });
    }
    out
}

/// ELF and PE files keep an executable mode, as `-r` keeps execute bits.
fn is_executable(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF") || bytes.starts_with(b"MZ")
}

/// Bytes a directory's records take: records never straddle a block.
fn directory_size(entries: &[Entry]) -> u64 {
    let mut used = 0u64;
    for entry in entries {
        let len = record_len(entry.identifier.len(), &entry.susp) as u64;
        if used % BLOCK + len > BLOCK {
            used = used.div_ceil(BLOCK) * BLOCK;
        }
        used += len;
    }
    used.div_ceil(BLOCK) * BLOCK
}

fn path_table(tree: &Tree, view: usize, base: u32, big_endian: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for dir in &tree.order {
        let identifier: &[u8] = if *dir == 0 {
            &[0]
        } else {
            let parent = &tree.dirs[tree.dirs[*dir].parent];
            parent
                .children
                .iter()
                .find(|child| child.kind == Kind::Dir(*dir))
                .map(|child| child.identifier.as_slice())
                .unwrap_or(&[0])
        };
        let lba = tree.dirs[*dir].lba[view] - base;
        let parent = tree.dirs[tree.dirs[*dir].parent].number;
        out.push(identifier.len() as u8);
        out.push(0);
        if big_endian {
            out.extend_from_slice(&lba.to_be_bytes());
            out.extend_from_slice(&parent.to_be_bytes());
        } else {
            out.extend_from_slice(&lba.to_le_bytes());
            out.extend_from_slice(&parent.to_le_bytes());
        }
        out.extend_from_slice(identifier);
        if identifier.len() % 2 == 1 {
            out.push(0);
        }
    }
    out
}

fn padded_text(field: &mut [u8], text: &str) {
    field.fill(b' ');
    let bytes = text.as_bytes();
    let len = bytes.len().min(field.len());
    field[..len].copy_from_slice(&bytes[..len]);
}

struct DescriptorFields<'a> {
    volume: &'a Volume,
    blocks: u32,
    path_table_size: u32,
    l_table: u32,
    m_table: u32,
    root_record: Vec<u8>,
}

fn primary_descriptor(fields: &DescriptorFields) -> Vec<u8> {
    let mut block = vec![0u8; BLOCK as usize];
    block[0] = 1;
    block[1..6].copy_from_slice(b"CD001");
    block[6] = 1;
    padded_text(&mut block[8..40], "");
    padded_text(&mut block[40..72], &fields.volume.volume_id);
    block[80..88].copy_from_slice(&both32(fields.blocks));
    block[120..124].copy_from_slice(&both16(1));
    block[124..128].copy_from_slice(&both16(1));
    block[128..132].copy_from_slice(&both16(BLOCK as u16));
    block[132..140].copy_from_slice(&both32(fields.path_table_size));
    block[140..144].copy_from_slice(&fields.l_table.to_le_bytes());
    block[148..152].copy_from_slice(&fields.m_table.to_be_bytes());
    block[156..156 + fields.root_record.len()].copy_from_slice(&fields.root_record);
    padded_text(&mut block[190..318], &fields.volume.volume_set_id);
    padded_text(&mut block[318..446], "");
    padded_text(&mut block[446..574], "");
    padded_text(&mut block[574..702], "IMAGE-FACTORY");
    padded_text(&mut block[702..813], "");
    let time = UtcTime::from_unix(fields.volume.mtime);
    block[813..830].copy_from_slice(&volume_time(Some(&time)));
    block[830..847].copy_from_slice(&volume_time(Some(&time)));
    block[847..864].copy_from_slice(&volume_time(None));
    block[864..881].copy_from_slice(&volume_time(None));
    block[881] = 1;
    block
}

fn descriptor(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut block = vec![0u8; BLOCK as usize];
    block[0] = kind;
    block[1..6].copy_from_slice(b"CD001");
    block[6] = 1;
    block[7..7 + body.len()].copy_from_slice(body);
    block
}

fn boot_record(catalog: u32) -> Vec<u8> {
    let mut body = vec![0u8; 68];
    body[..23].copy_from_slice(b"EL TORITO SPECIFICATION");
    body[64..68].copy_from_slice(&catalog.to_le_bytes());
    descriptor(0, &body)
}

fn terminator() -> Vec<u8> {
    descriptor(0xFF, &[])
}

fn blocks_of(bytes: u64) -> Result<u32, EngineError> {
    u32::try_from(bytes.div_ceil(BLOCK))
        .map_err(|_| EngineError::InvalidInput(format!("{bytes} bytes are too many ISO blocks")))
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
