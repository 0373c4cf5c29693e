//! FAT32 volumes as `mkfs.fat -F 32 --invariant` plus `mcopy` make them: 32 reserved
//! sectors, two FATs, media 0xF8, volume id 0x1234ABCD, backup boot sector at 6. Files are
//! laid out contiguously and referenced, not copied, so the volume is a sparse image whose
//! payload is the files plus a few kilobytes of metadata.
// A writer: every index is computed from the layout it chose itself, never read from input.
#![allow(clippy::indexing_slicing)]

use crate::engine::EngineError;
use crate::format::SparseImage;
use bytes::Bytes;

const RESERVED_SECTORS: u64 = 32;
const FATS: u64 = 2;
const MIN_FAT32_CLUSTERS: u64 = 65_525;
const END_OF_CHAIN: u32 = 0x0FFF_FFFF;
const DIRECTORY: u8 = 0x10;
const ARCHIVE: u8 = 0x20;
const READ_ONLY: u8 = 0x01;
const VOLUME_LABEL: u8 = 0x08;
const LONG_NAME: u8 = 0x0F;
/// mkfs.fat's `--invariant` volume id.
pub const INVARIANT_VOLUME_ID: u32 = 0x1234_ABCD;

/// One file to put on the volume.
#[derive(Debug, Clone)]
pub struct FatFile {
    /// Slash-separated path from the root, e.g. `EFI/boot/BOOTX64.efi`.
    pub path: String,
    pub bytes: Bytes,
    pub packed: bool,
    /// Sets the read-only attribute (for files a loader must not rewrite in place).
    pub read_only: bool,
}

/// What the volume looks like.
#[derive(Debug, Clone)]
pub struct FatOptions {
    pub size: u64,
    pub sector_size: u64,
    pub label: String,
    pub volume_id: u32,
    /// Unix time given to every entry.
    pub mtime: u32,
}

#[derive(Debug, Default)]
struct Node {
    name: String,
    file: Option<(Bytes, bool)>,
    read_only: bool,
    children: Vec<usize>,
    parent: usize,
    first_cluster: u32,
    clusters: u64,
}

struct Geometry {
    sector: u64,
    sectors_per_cluster: u64,
    total_sectors: u64,
    fat_sectors: u64,
    clusters: u64,
}

impl Geometry {
    fn new(options: &FatOptions) -> Result<Geometry, EngineError> {
        let sector = options.sector_size;
        if !matches!(sector, 512 | 1024 | 2048 | 4096) {
            return Err(EngineError::InvalidInput(format!(
                "FAT sector size {sector} is not one of 512, 1024, 2048, 4096"
            )));
        }
        // The cluster sizes mkfs.fat picks for FAT32: 512 bytes up to 260 MiB, then 4 KiB.
        let cluster_bytes = if options.size <= 260 * 1024 * 1024 {
            512
        } else {
            4096
        };
        let sectors_per_cluster = (cluster_bytes / sector).max(1);
        let total_sectors = options.size / sector;
        let mut fat_sectors = 1u64;
        let clusters = loop {
            let data = total_sectors
                .checked_sub(RESERVED_SECTORS + FATS * fat_sectors)
                .ok_or_else(|| too_small(options.size))?;
            let clusters = data / sectors_per_cluster;
            let needed = ((clusters + 2) * 4).div_ceil(sector);
            if needed <= fat_sectors {
                break clusters;
            }
            fat_sectors = needed;
        };
        if !(MIN_FAT32_CLUSTERS..=0x0FFF_FFF5).contains(&clusters) {
            return Err(too_small(options.size));
        }
        Ok(Geometry {
            sector,
            sectors_per_cluster,
            total_sectors,
            fat_sectors,
            clusters,
        })
    }

    fn cluster_bytes(&self) -> u64 {
        self.sector * self.sectors_per_cluster
    }

    fn cluster_offset(&self, cluster: u32) -> u64 {
        let data_start = RESERVED_SECTORS + FATS * self.fat_sectors;
        (data_start + (u64::from(cluster) - 2) * self.sectors_per_cluster) * self.sector
    }
}

fn too_small(size: u64) -> EngineError {
    EngineError::InvalidInput(format!(
        "a FAT32 volume of {size} bytes does not hold the {MIN_FAT32_CLUSTERS} clusters FAT32 needs"
    ))
}

/// Builds the volume holding `files`.
pub fn build(options: &FatOptions, files: &[FatFile]) -> Result<SparseImage, EngineError> {
    let geometry = Geometry::new(options)?;
    let mut nodes = vec![Node::default()];
    for file in files {
        insert(&mut nodes, file)?;
    }
    for index in 0..nodes.len() {
        let mut children = std::mem::take(&mut nodes[index].children);
        children.sort_by(|a, b| nodes[*a].name.cmp(&nodes[*b].name));
        nodes[index].children = children;
    }
    let short_names = short_names(&nodes)?;

    // Allocate clusters depth first: each directory, then its children in order.
    let cluster_bytes = geometry.cluster_bytes();
    let mut next_cluster = 2u64;
    let mut order = vec![0usize];
    let mut allocation = Vec::new();
    while let Some(index) = order.pop() {
        let node = &nodes[index];
        let bytes = match &node.file {
            Some((bytes, _)) => bytes.len() as u64,
            None => directory_entries(&nodes, index, &short_names) as u64 * 32,
        };
        let clusters = if node.file.is_some() {
            bytes.div_ceil(cluster_bytes)
        } else {
            bytes.div_ceil(cluster_bytes).max(1)
        };
        allocation.push((
            index,
            if clusters == 0 { 0 } else { next_cluster },
            clusters,
        ));
        next_cluster += clusters;
        order.extend(node.children.iter().rev());
    }
    let used = next_cluster - 2;
    if used > geometry.clusters {
        return Err(EngineError::InvalidInput(format!(
            "the files need {} bytes, more than the {}-byte FAT32 volume holds",
            used * cluster_bytes,
            options.size
        )));
    }
    for (index, first, clusters) in allocation {
        nodes[index].first_cluster = first as u32;
        nodes[index].clusters = clusters;
    }

    let mut image = SparseImage::new(options.size);
    let boot = boot_sector(options, &geometry);
    let info = fs_info(&geometry, geometry.clusters - used, next_cluster as u32);
    let mut head = boot.clone();
    head.extend_from_slice(&info);
    image.put(0, head.clone())?;
    image.put(6 * geometry.sector, head)?;

    let mut fat = Vec::with_capacity(next_cluster as usize * 4);
    fat.extend_from_slice(&0x0FFF_FFF8u32.to_le_bytes());
    fat.extend_from_slice(&END_OF_CHAIN.to_le_bytes());
    let mut chains: Vec<(u32, u64)> = nodes
        .iter()
        .filter(|node| node.clusters > 0)
        .map(|node| (node.first_cluster, node.clusters))
        .collect();
    chains.sort();
    for (first, clusters) in chains {
        for at in 0..clusters {
            let next = if at + 1 == clusters {
                END_OF_CHAIN
            } else {
                first + at as u32 + 1
            };
            fat.extend_from_slice(&next.to_le_bytes());
        }
    }
    let fat = Bytes::from(fat);
    for copy in 0..FATS {
        let offset = (RESERVED_SECTORS + copy * geometry.fat_sectors) * geometry.sector;
        image.put(offset, fat.clone())?;
    }

    let stamp = DosTime::from_unix(options.mtime);
    for (index, node) in nodes.iter().enumerate() {
        let offset = geometry.cluster_offset(node.first_cluster.max(2));
        match &node.file {
            Some((bytes, packed)) if !bytes.is_empty() => {
                if *packed {
                    image.put_packed(offset, bytes.clone())?;
                } else {
                    image.put(offset, bytes.clone())?;
                }
            }
            Some(_) => {}
            None => {
                let entries = directory(&nodes, index, &short_names, options, stamp);
                image.put(offset, entries)?;
            }
        }
    }
    Ok(image)
}

fn insert(nodes: &mut Vec<Node>, file: &FatFile) -> Result<(), EngineError> {
    let parts: Vec<&str> = file.path.split('/').filter(|p| !p.is_empty()).collect();
    let mut current = 0usize;
    for (at, part) in parts.iter().enumerate() {
        if *part == "." || *part == ".." || part.len() > 255 {
            return Err(EngineError::InvalidInput(format!(
                "FAT path {:?} has an invalid component",
                file.path
            )));
        }
        let last = at + 1 == parts.len();
        let existing = nodes[current]
            .children
            .iter()
            .copied()
            .find(|child| nodes[*child].name.eq_ignore_ascii_case(part));
        match existing {
            Some(child) if last || nodes[child].file.is_some() => {
                return Err(EngineError::InvalidInput(format!(
                    "FAT path {:?} collides with an existing entry",
                    file.path
                )));
            }
            Some(child) => current = child,
            None => {
                nodes.push(Node {
                    name: (*part).to_string(),
                    file: last.then(|| (file.bytes.clone(), file.packed)),
                    read_only: last && file.read_only,
                    parent: current,
                    ..Node::default()
                });
                let child = nodes.len() - 1;
                nodes[current].children.push(child);
                current = child;
            }
        }
    }
    Ok(())
}

/// An 8.3 name: the 11 directory bytes, the NT case flags, and whether long-name entries
/// must carry the real name.
#[derive(Debug, Clone)]
struct ShortName {
    raw: [u8; 11],
    case_flags: u8,
    long: bool,
}

fn short_char(c: char) -> Option<u8> {
    match c {
        'A'..='Z' | '0'..='9' => Some(c as u8),
        '!' | '#' | '$' | '%' | '&' | '\'' | '(' | ')' | '-' | '@' | '^' | '_' | '`' | '{'
        | '}' | '~' => Some(c as u8),
        _ => None,
    }
}

/// A name that fits 8.3 exactly once upper-cased, with each part in a single case.
fn exact_short(name: &str) -> Option<ShortName> {
    let (base, ext) = match name.rsplit_once('.') {
        Some((base, ext)) => (base, ext),
        None => (name, ""),
    };
    if base.is_empty() || base.len() > 8 || ext.len() > 3 {
        return None;
    }
    let single_case = |part: &str| {
        if part.chars().any(|c| c.is_ascii_lowercase()) {
            if part.chars().any(|c| c.is_ascii_uppercase()) {
                None
            } else {
                Some(true)
            }
        } else {
            Some(false)
        }
    };
    let base_lower = single_case(base)?;
    let ext_lower = single_case(ext)?;
    let mut raw = [b' '; 11];
    for (slot, c) in raw[..8].iter_mut().zip(base.chars()) {
        *slot = short_char(c.to_ascii_uppercase())?;
    }
    for (slot, c) in raw[8..].iter_mut().zip(ext.chars()) {
        *slot = short_char(c.to_ascii_uppercase())?;
    }
    Some(ShortName {
        raw,
        case_flags: if base_lower { 0x08 } else { 0 } | if ext_lower { 0x10 } else { 0 },
        long: false,
    })
}

/// A numbered alias (`TALOS-~1.EFI`) for a name that needs long-name entries.
fn alias(name: &str, taken: &[[u8; 11]]) -> Option<[u8; 11]> {
    let (base, ext) = match name.rsplit_once('.') {
        Some((base, ext)) if !base.is_empty() => (base, ext),
        _ => (name, ""),
    };
    let clean = |part: &str| -> Vec<u8> {
        part.chars()
            .filter(|c| *c != ' ' && *c != '.')
            .map(|c| short_char(c.to_ascii_uppercase()).unwrap_or(b'_'))
            .collect()
    };
    let base = clean(base);
    let ext = clean(ext);
    let mut raw = [b' '; 11];
    for (slot, byte) in raw[8..].iter_mut().zip(ext.iter()) {
        *slot = *byte;
    }
    for number in 1..1_000_000u32 {
        let tail = format!("~{number}");
        let keep = base.len().min(8 - tail.len());
        let mut candidate = raw;
        candidate[..8].fill(b' ');
        candidate[..keep].copy_from_slice(&base[..keep]);
        candidate[keep..keep + tail.len()].copy_from_slice(tail.as_bytes());
        if !taken.contains(&candidate) {
            return Some(candidate);
        }
    }
    None
}

fn short_names(nodes: &[Node]) -> Result<Vec<ShortName>, EngineError> {
    let mut names = vec![
        ShortName {
            raw: [b' '; 11],
            case_flags: 0,
            long: false,
        };
        nodes.len()
    ];
    for node in nodes {
        let mut taken: Vec<[u8; 11]> = Vec::new();
        for child in &node.children {
            if let Some(short) = exact_short(&nodes[*child].name) {
                taken.push(short.raw);
                names[*child] = short;
            }
        }
        for child in &node.children {
            if exact_short(&nodes[*child].name).is_some() {
                continue;
            }
            let raw = alias(&nodes[*child].name, &taken).ok_or_else(|| {
                EngineError::InvalidInput(format!("no 8.3 alias left for {:?}", nodes[*child].name))
            })?;
            taken.push(raw);
            names[*child] = ShortName {
                raw,
                case_flags: 0,
                long: true,
            };
        }
    }
    Ok(names)
}

fn long_entries(name: &str) -> usize {
    name.encode_utf16().count().div_ceil(13)
}

fn directory_entries(nodes: &[Node], index: usize, names: &[ShortName]) -> usize {
    let own = if index == 0 { 1 } else { 2 };
    own + nodes[index]
        .children
        .iter()
        .map(|child| {
            1 + if names[*child].long {
                long_entries(&nodes[*child].name)
            } else {
                0
            }
        })
        .sum::<usize>()
}

#[derive(Debug, Clone, Copy)]
struct DosTime {
    date: u16,
    time: u16,
}

impl DosTime {
    /// FAT stores local time from 1980; we store UTC, as mkfs.fat --invariant does.
    fn from_unix(seconds: u32) -> DosTime {
        let crate::calendar::UtcTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        } = crate::calendar::UtcTime::from_unix(i64::from(seconds));
        if year < 1980 {
            return DosTime {
                date: (1 << 5) | 1,
                time: 0,
            };
        }
        let year = (year - 1980).min(127) as u16;
        DosTime {
            date: (year << 9) | ((month as u16) << 5) | day as u16,
            time: (hour as u16) << 11 | (minute as u16) << 5 | (second / 2) as u16,
        }
    }
}

fn short_entry(
    raw: &[u8; 11],
    attributes: u8,
    case_flags: u8,
    cluster: u32,
    size: u32,
    stamp: DosTime,
) -> [u8; 32] {
    let mut entry = [0u8; 32];
    entry[..11].copy_from_slice(raw);
    entry[11] = attributes;
    entry[12] = case_flags;
    entry[14..16].copy_from_slice(&stamp.time.to_le_bytes());
    entry[16..18].copy_from_slice(&stamp.date.to_le_bytes());
    entry[18..20].copy_from_slice(&stamp.date.to_le_bytes());
    entry[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
    entry[22..24].copy_from_slice(&stamp.time.to_le_bytes());
    entry[24..26].copy_from_slice(&stamp.date.to_le_bytes());
    entry[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
    entry[28..32].copy_from_slice(&size.to_le_bytes());
    entry
}

fn checksum(raw: &[u8; 11]) -> u8 {
    raw.iter()
        .fold(0u8, |sum, byte| sum.rotate_right(1).wrapping_add(*byte))
}

fn push_long_entries(out: &mut Vec<u8>, name: &str, raw: &[u8; 11]) {
    let mut units: Vec<u16> = name.encode_utf16().collect();
    let count = units.len().div_ceil(13);
    if units.len() < count * 13 {
        units.push(0);
        units.resize(count * 13, 0xFFFF);
    }
    let sum = checksum(raw);
    for sequence in (1..=count).rev() {
        let chunk = &units[(sequence - 1) * 13..sequence * 13];
        let mut entry = [0u8; 32];
        entry[0] = sequence as u8 | if sequence == count { 0x40 } else { 0 };
        entry[11] = LONG_NAME;
        entry[13] = sum;
        let slots = (1..11)
            .step_by(2)
            .chain((14..26).step_by(2))
            .chain((28..32).step_by(2));
        for (slot, unit) in slots.zip(chunk) {
            entry[slot..slot + 2].copy_from_slice(&unit.to_le_bytes());
        }
        out.extend_from_slice(&entry);
    }
}

fn directory(
    nodes: &[Node],
    index: usize,
    names: &[ShortName],
    options: &FatOptions,
    stamp: DosTime,
) -> Vec<u8> {
    let node = &nodes[index];
    let mut out = Vec::new();
    if index == 0 {
        let mut label = [b' '; 11];
        for (slot, byte) in label.iter_mut().zip(options.label.bytes()) {
            *slot = byte.to_ascii_uppercase();
        }
        out.extend_from_slice(&short_entry(&label, VOLUME_LABEL, 0, 0, 0, stamp));
    } else {
        let parent = if node.parent == 0 {
            0
        } else {
            nodes[node.parent].first_cluster
        };
        out.extend_from_slice(&short_entry(
            b".          ",
            DIRECTORY,
            0,
            node.first_cluster,
            0,
            stamp,
        ));
        out.extend_from_slice(&short_entry(b"..         ", DIRECTORY, 0, parent, 0, stamp));
    }
    for child in &node.children {
        let entry = &nodes[*child];
        let name = &names[*child];
        if name.long {
            push_long_entries(&mut out, &entry.name, &name.raw);
        }
        let (attributes, size) = match &entry.file {
            Some((bytes, _)) if entry.read_only => (ARCHIVE | READ_ONLY, bytes.len() as u32),
            Some((bytes, _)) => (ARCHIVE, bytes.len() as u32),
            None => (DIRECTORY, 0),
        };
        out.extend_from_slice(&short_entry(
            &name.raw,
            attributes,
            name.case_flags,
            entry.first_cluster,
            size,
            stamp,
        ));
    }
    out
}

fn boot_sector(options: &FatOptions, geometry: &Geometry) -> Vec<u8> {
    let mut sector = vec![0u8; geometry.sector as usize];
    sector[..3].copy_from_slice(&[0xEB, 0x58, 0x90]);
    sector[3..11].copy_from_slice(b"mkfs.fat");
    sector[11..13].copy_from_slice(&(geometry.sector as u16).to_le_bytes());
    sector[13] = geometry.sectors_per_cluster as u8;
    sector[14..16].copy_from_slice(&(RESERVED_SECTORS as u16).to_le_bytes());
    sector[16] = FATS as u8;
    sector[21] = 0xF8;
    sector[24..26].copy_from_slice(&32u16.to_le_bytes());
    sector[26..28].copy_from_slice(&64u16.to_le_bytes());
    sector[32..36].copy_from_slice(&(geometry.total_sectors as u32).to_le_bytes());
    sector[36..40].copy_from_slice(&(geometry.fat_sectors as u32).to_le_bytes());
    sector[44..48].copy_from_slice(&2u32.to_le_bytes());
    sector[48..50].copy_from_slice(&1u16.to_le_bytes());
    sector[50..52].copy_from_slice(&6u16.to_le_bytes());
    sector[64] = 0x80;
    sector[66] = 0x29;
    sector[67..71].copy_from_slice(&options.volume_id.to_le_bytes());
    let mut label = [b' '; 11];
    for (slot, byte) in label.iter_mut().zip(options.label.bytes()) {
        *slot = byte.to_ascii_uppercase();
    }
    sector[71..82].copy_from_slice(&label);
    sector[82..90].copy_from_slice(b"FAT32   ");
    // Not bootable: halt if a BIOS ever jumps here.
    sector[90..93].copy_from_slice(&[0xF4, 0xEB, 0xFD]);
    sector[510] = 0x55;
    sector[511] = 0xAA;
    sector
}

fn fs_info(geometry: &Geometry, free: u64, next_free: u32) -> Vec<u8> {
    let mut sector = vec![0u8; geometry.sector as usize];
    sector[..4].copy_from_slice(&0x4161_5252u32.to_le_bytes());
    sector[484..488].copy_from_slice(&0x6141_7272u32.to_le_bytes());
    sector[488..492].copy_from_slice(&(free as u32).to_le_bytes());
    sector[492..496].copy_from_slice(&next_free.to_le_bytes());
    sector[508..512].copy_from_slice(&0xAA55_0000u32.to_le_bytes());
    sector
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_follow_vfat_rules() {
        let exact = exact_short("BOOTX64.efi").unwrap();
        assert_eq!(&exact.raw, b"BOOTX64 EFI");
        assert_eq!(exact.case_flags, 0x10);
        assert_eq!(exact_short("boot").unwrap().case_flags, 0x08);
        assert!(exact_short("Linux").is_none());
        assert!(exact_short("loader.conf").is_none());
        assert_eq!(&alias("Talos-v1.12.0.efi", &[]).unwrap(), b"TALOS-~1EFI");
        assert_eq!(&alias("loader.conf", &[]).unwrap(), b"LOADER~1CON");
        assert_eq!(
            &alias("loader.conf", &[*b"LOADER~1CON"]).unwrap(),
            b"LOADER~2CON"
        );
    }

    #[test]
    fn dos_time_of_a_known_instant() {
        // 2019-06-01 21:34:52 UTC
        let stamp = DosTime::from_unix(1_559_424_892);
        assert_eq!(stamp.date, (39 << 9) | (6 << 5) | 1);
        assert_eq!(stamp.time, (21 << 11) | (34 << 5) | 26);
    }

    #[test]
    fn too_small_volumes_are_refused() {
        let options = FatOptions {
            size: 16 * 1024 * 1024,
            sector_size: 512,
            label: "EFI".into(),
            volume_id: INVARIANT_VOLUME_ID,
            mtime: 0,
        };
        assert!(build(&options, &[]).is_err());
    }
}
