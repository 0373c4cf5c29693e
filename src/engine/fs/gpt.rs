//! GUID partition tables as the imager writes them: protective MBR, 128 entries, backup at
//! the end, GUIDs derived from labels so the same image gets the same bytes.
// A writer: every index is computed from the layout it chose itself, never read from input.
#![allow(clippy::indexing_slicing)]

use sha2::{Digest, Sha256};

pub const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
pub const BIOS_BOOT_TYPE: &str = "21686148-6449-6E6F-744E-656564454649";
pub const LINUX_DATA_TYPE: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
const ENTRIES: usize = 128;
const ENTRY_SIZE: usize = 128;

/// One partition: start and end LBAs (inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub name: &'static str,
    pub type_guid: &'static str,
    pub first_lba: u64,
    pub last_lba: u64,
    pub attributes: u64,
}

/// Talos's `GUIDFromLabel`: SHA-256 of 16 zero bytes and the label, as a version-8 GUID,
/// in the textual byte order.
pub fn guid_from_label(label: &str) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update([0u8; 16]);
    hasher.update(label.as_bytes());
    let digest = hasher.finalize();
    let mut guid = [0u8; 16];
    guid.copy_from_slice(&digest[..16]);
    guid[6] = (guid[6] & 0x0f) | 0x80;
    guid[8] = (guid[8] & 0x3f) | 0x80;
    guid
}

pub fn format_guid(guid: &[u8; 16]) -> String {
    let hex: String = guid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn parse_guid(text: &str) -> [u8; 16] {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let mut guid = [0u8; 16];
    for (index, byte) in guid.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).unwrap_or(0);
    }
    guid
}

/// GPT stores the first three GUID fields little-endian.
fn mixed_endian(guid: [u8; 16]) -> [u8; 16] {
    let mut out = guid;
    out[..4].reverse();
    out[4..6].reverse();
    out[6..8].reverse();
    out
}

/// Sectors the 128 entries take.
pub fn entry_sectors(sector: u64) -> u64 {
    (ENTRIES * ENTRY_SIZE) as u64 / sector
}

/// The first LBA a partition may use when `gap` LBAs separate the primary header from
/// the entries (a board's firmware lives there, imager.md §10).
pub fn first_usable_lba(sector: u64, gap: u64) -> u64 {
    2 + gap + entry_sectors(sector)
}

/// The table's bytes: `(offset, bytes)` pieces for the start and the end of the disk.
pub fn write(sector: u64, disk_size: u64, partitions: &[Partition]) -> Vec<(u64, Vec<u8>)> {
    write_with_gap(sector, disk_size, partitions, 0)
}

/// Like [`write`], with `gap` LBAs left untouched between the primary header and its
/// entries (upstream's `WithSkipLBAs`); the protective MBR's first 446 bytes stay zero for
/// the caller to fill.
pub fn write_with_gap(
    sector: u64,
    disk_size: u64,
    partitions: &[Partition],
    gap: u64,
) -> Vec<(u64, Vec<u8>)> {
    let last_lba = disk_size / sector - 1;
    let entry_sectors = entry_sectors(sector);
    let mut entries = vec![0u8; ENTRIES * ENTRY_SIZE];
    for (index, partition) in partitions.iter().enumerate() {
        let entry = &mut entries[index * ENTRY_SIZE..(index + 1) * ENTRY_SIZE];
        entry[..16].copy_from_slice(&mixed_endian(parse_guid(partition.type_guid)));
        entry[16..32].copy_from_slice(&mixed_endian(guid_from_label(partition.name)));
        entry[32..40].copy_from_slice(&partition.first_lba.to_le_bytes());
        entry[40..48].copy_from_slice(&partition.last_lba.to_le_bytes());
        entry[48..56].copy_from_slice(&partition.attributes.to_le_bytes());
        for (at, unit) in partition.name.encode_utf16().take(36).enumerate() {
            entry[56 + at * 2..58 + at * 2].copy_from_slice(&unit.to_le_bytes());
        }
    }
    let entries_crc = crc32fast::hash(&entries);
    let header = |current: u64, backup: u64, entries_lba: u64| {
        let mut header = vec![0u8; sector as usize];
        header[..8].copy_from_slice(b"EFI PART");
        header[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        header[12..16].copy_from_slice(&92u32.to_le_bytes());
        header[24..32].copy_from_slice(&current.to_le_bytes());
        header[32..40].copy_from_slice(&backup.to_le_bytes());
        header[40..48].copy_from_slice(&first_usable_lba(sector, gap).to_le_bytes());
        header[48..56].copy_from_slice(&(last_lba - entry_sectors - 1).to_le_bytes());
        header[56..72].copy_from_slice(&mixed_endian(guid_from_label("talos-image-disk")));
        header[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        header[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
        header[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
        header[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32fast::hash(&header[..92]);
        header[16..20].copy_from_slice(&crc.to_le_bytes());
        header
    };
    let mut mbr = vec![0u8; sector as usize];
    let record = &mut mbr[446..462];
    record[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
    record[4] = 0xee;
    record[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
    record[8..12].copy_from_slice(&1u32.to_le_bytes());
    record[12..16].copy_from_slice(&(last_lba.min(0xffff_ffff) as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    let mut start = mbr;
    start.extend(header(1, last_lba, 2 + gap));
    let backup_entries = last_lba - entry_sectors;
    let mut end = entries.clone();
    end.extend(header(last_lba, 1, backup_entries));
    if gap == 0 {
        start.extend(&entries);
        return vec![(0, start), (backup_entries * sector, end)];
    }
    vec![
        (0, start),
        ((2 + gap) * sector, entries),
        (backup_entries * sector, end),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_moves_the_entries_and_the_first_usable_lba() {
        let partitions = [Partition {
            name: "EFI",
            type_guid: ESP_TYPE,
            first_lba: 22528,
            last_lba: 22528 + 2047,
            attributes: 0,
        }];
        let pieces = write_with_gap(512, 64 << 20, &partitions, 20480);
        let offsets: Vec<u64> = pieces.iter().map(|(offset, _)| *offset).collect();
        assert_eq!(offsets[..2], [0, 20482 * 512]);
        let header = &pieces[0].1[512..1024];
        assert_eq!(
            u64::from_le_bytes(header[40..48].try_into().unwrap()),
            20514
        );
        assert_eq!(
            u64::from_le_bytes(header[72..80].try_into().unwrap()),
            20482
        );
        assert_eq!(pieces[0].1.len(), 1024);
        assert_eq!(first_usable_lba(512, 0), 34);
        assert_eq!(first_usable_lba(4096, 0), 6);
    }

    #[test]
    fn label_guids_match_talos() {
        assert_eq!(
            format_guid(&guid_from_label("talos-image-disk")),
            "d92d45b3-cde9-8760-be9f-a2a71fac8d11"
        );
        assert_eq!(
            format_guid(&guid_from_label("EFI")),
            "bca5174b-0118-8a6a-af0b-2c6e1585acae"
        );
        assert_eq!(
            format_guid(&guid_from_label("META")),
            "cf04f137-101e-8ec6-9627-fa3f51cdabb8"
        );
        assert_eq!(
            format_guid(&guid_from_label("BOOT")),
            "24c73076-4092-85dd-9d98-686a2dbf6d81"
        );
    }
}
