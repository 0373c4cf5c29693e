//! streamOptimized VMDK (what `qemu-img convert -O vmdk -o subformat=streamOptimized` and
//! VMware's OVA importers use): a sparse header, the descriptor, deflated 64 KiB grains each
//! behind a marker, then grain tables, the grain directory, a footer and the end-of-stream
//! marker. Grains that read as zeros are not stored.

use super::{FormatError, SparseImage};
use flate2::Compression;
use flate2::write::ZlibEncoder;
use std::io::Write;

const SECTOR: u64 = 512;
const GRAIN_SECTORS: u64 = 128;
const GRAIN: u64 = GRAIN_SECTORS * SECTOR;
const ENTRIES_PER_TABLE: u64 = 512;
const TABLE_SECTORS: u64 = ENTRIES_PER_TABLE * 4 / SECTOR;
const GD_AT_END: u64 = u64::MAX;
const MARKER_GRAIN_TABLE: u32 = 1;
const MARKER_GRAIN_DIRECTORY: u32 = 2;
const MARKER_FOOTER: u32 = 3;
/// Newline detection, compressed grains, markers.
const FLAGS: u32 = 1 | (1 << 16) | (1 << 17);

fn descriptor(capacity_sectors: u64, cid: u32) -> String {
    let cylinders = (capacity_sectors / (255 * 63)).min(65_535);
    format!(
        "# Disk DescriptorFile\nversion=1\nCID={cid:08x}\nparentCID=ffffffff\n\
         createType=\"streamOptimized\"\n\n# Extent description\n\
         RW {capacity_sectors} SPARSE \"disk.vmdk\"\n\n# The Disk Data Base\n#DDB\n\n\
         ddb.virtualHWVersion = \"6\"\nddb.geometry.cylinders = \"{cylinders}\"\n\
         ddb.geometry.heads = \"255\"\nddb.geometry.sectors = \"63\"\n\
         ddb.adapterType = \"lsilogic\"\nddb.toolsVersion = \"2147483647\"\n"
    )
}

fn header(capacity_sectors: u64, descriptor_sectors: u64, gd_offset: u64) -> Vec<u8> {
    let mut header = vec![0u8; SECTOR as usize];
    header[0..4].copy_from_slice(b"KDMV");
    header[4..8].copy_from_slice(&3u32.to_le_bytes());
    header[8..12].copy_from_slice(&FLAGS.to_le_bytes());
    header[12..20].copy_from_slice(&capacity_sectors.to_le_bytes());
    header[20..28].copy_from_slice(&GRAIN_SECTORS.to_le_bytes());
    header[28..36].copy_from_slice(&1u64.to_le_bytes());
    header[36..44].copy_from_slice(&descriptor_sectors.to_le_bytes());
    header[44..48].copy_from_slice(&(ENTRIES_PER_TABLE as u32).to_le_bytes());
    header[56..64].copy_from_slice(&gd_offset.to_le_bytes());
    header[64..72].copy_from_slice(&(1 + descriptor_sectors).to_le_bytes());
    header[73..77].copy_from_slice(b"\n \r\n");
    header[77..79].copy_from_slice(&1u16.to_le_bytes());
    header
}

fn marker(sectors: u64, kind: u32) -> Vec<u8> {
    let mut marker = vec![0u8; SECTOR as usize];
    marker[0..8].copy_from_slice(&sectors.to_le_bytes());
    marker[12..16].copy_from_slice(&kind.to_le_bytes());
    marker
}

/// `image` as a streamOptimized VMDK; `cid` is the content id written in the descriptor.
pub fn stream_optimized(image: &SparseImage, cid: u32) -> Result<SparseImage, FormatError> {
    let capacity = image.size().div_ceil(SECTOR);
    let text = descriptor(capacity, cid);
    let descriptor_sectors = (text.len() as u64).div_ceil(SECTOR);
    let mut pieces: Vec<Vec<u8>> = vec![header(capacity, descriptor_sectors, GD_AT_END)];
    let mut descriptor_bytes = text.into_bytes();
    descriptor_bytes.resize((descriptor_sectors * SECTOR) as usize, 0);
    pieces.push(descriptor_bytes);
    let mut position = (1 + descriptor_sectors) * SECTOR;

    let grains = image.size().div_ceil(GRAIN);
    let tables = grains.div_ceil(ENTRIES_PER_TABLE);
    let mut grain_tables = vec![vec![0u32; ENTRIES_PER_TABLE as usize]; tables as usize];
    let mut candidates: Vec<u64> = Vec::new();
    for (offset, bytes, _) in image.extents() {
        let first = offset / GRAIN;
        let last = (offset + bytes.len() as u64 - 1) / GRAIN;
        for grain in first..=last {
            if candidates.last() != Some(&grain) {
                candidates.push(grain);
            }
        }
    }
    for grain in candidates {
        let start = grain * GRAIN;
        let len = GRAIN.min(image.size() - start) as usize;
        let data = image.read_at(start, len);
        if data.iter().all(|byte| *byte == 0) {
            continue;
        }
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        let compressed = encoder
            .write_all(&data)
            .and_then(|()| encoder.finish())
            .map_err(|error| FormatError::Encoding(error.to_string()))?;
        let mut piece = Vec::with_capacity(12 + compressed.len() + SECTOR as usize);
        piece.extend_from_slice(&(grain * GRAIN_SECTORS).to_le_bytes());
        piece.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
        piece.extend_from_slice(&compressed);
        piece.resize(
            (piece.len() as u64).div_ceil(SECTOR) as usize * SECTOR as usize,
            0,
        );
        grain_tables[(grain / ENTRIES_PER_TABLE) as usize][(grain % ENTRIES_PER_TABLE) as usize] =
            (position / SECTOR) as u32;
        position += piece.len() as u64;
        pieces.push(piece);
    }

    let mut directory = vec![0u32; tables as usize];
    for (index, table) in grain_tables.iter().enumerate() {
        if table.iter().all(|entry| *entry == 0) {
            continue;
        }
        pieces.push(marker(TABLE_SECTORS, MARKER_GRAIN_TABLE));
        position += SECTOR;
        directory[index] = (position / SECTOR) as u32;
        pieces.push(table.iter().flat_map(|entry| entry.to_le_bytes()).collect());
        position += TABLE_SECTORS * SECTOR;
    }
    let directory_sectors = (tables * 4).div_ceil(SECTOR);
    pieces.push(marker(directory_sectors, MARKER_GRAIN_DIRECTORY));
    position += SECTOR;
    let gd_offset = position / SECTOR;
    let mut directory_bytes: Vec<u8> = directory
        .iter()
        .flat_map(|entry| entry.to_le_bytes())
        .collect();
    directory_bytes.resize((directory_sectors * SECTOR) as usize, 0);
    position += directory_bytes.len() as u64;
    pieces.push(directory_bytes);
    pieces.push(marker(1, MARKER_FOOTER));
    pieces.push(header(capacity, descriptor_sectors, gd_offset));
    pieces.push(vec![0u8; SECTOR as usize]);
    position += 3 * SECTOR;

    let mut out = SparseImage::new(position);
    let mut at = 0u64;
    for piece in pieces {
        let len = piece.len() as u64;
        out.put(at, piece)?;
        at += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_grains_are_not_stored() {
        let mut image = SparseImage::new(64 << 20);
        image.put(3 << 20, vec![5u8; 100]).unwrap();
        image.put(10 << 20, vec![0u8; 100]).unwrap();
        let vmdk = stream_optimized(&image, 1).unwrap();
        let header = vmdk.read_at(0, 512);
        assert_eq!(&header[..4], b"KDMV");
        // Header, descriptor, one grain, one table (+marker), directory (+marker), footer
        // (+marker), end of stream.
        let grain_sectors = vmdk.size() / 512 - 1 - 1 - 5 - 2 - 3;
        assert_eq!(grain_sectors, 1);
    }
}
