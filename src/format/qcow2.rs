//! qcow2 (version 3, 16-bit refcounts) holding only the clusters that carry data: the
//! header, L1, refcount structures and L2 tables first, then data clusters in guest order,
//! each one a slice of the source extent where it lies inside one.

use super::{FormatError, SparseImage};
use bytes::Bytes;
use std::collections::BTreeMap;

const MAGIC: u32 = 0x5146_49FB;
const COPIED: u64 = 1 << 63;
const HEADER_LENGTH: u32 = 104;
const REFCOUNT_ORDER: u32 = 4;

/// The bytes of guest cluster `index`, or `None` when it reads as zeros.
fn cluster(image: &SparseImage, index: u64, size: u64) -> Option<Bytes> {
    let start = index * size;
    let len = size.min(image.size() - start);
    let inside = image
        .extents()
        .take_while(|(offset, _, _)| *offset <= start)
        .last()
        .filter(|(offset, bytes, _)| offset + bytes.len() as u64 >= start + len);
    let bytes = match inside {
        Some((offset, bytes, _)) => {
            bytes.slice((start - offset) as usize..(start - offset + len) as usize)
        }
        None => Bytes::from(image.read_at(start, len as usize)),
    };
    (!bytes.iter().all(|byte| *byte == 0)).then_some(bytes)
}

/// Guest clusters that hold data, in order.
fn allocated(image: &SparseImage, cluster_size: u64) -> BTreeMap<u64, Bytes> {
    let mut candidates = Vec::new();
    for (offset, bytes, _) in image.extents() {
        let first = offset / cluster_size;
        let last = (offset + bytes.len() as u64 - 1) / cluster_size;
        for index in first..=last {
            if candidates.last() != Some(&index) {
                candidates.push(index);
            }
        }
    }
    candidates.dedup();
    candidates
        .into_iter()
        .filter_map(|index| cluster(image, index, cluster_size).map(|bytes| (index, bytes)))
        .collect()
}

/// `image` as a qcow2 file with clusters of `1 << cluster_bits` bytes (upstream: 8 KiB).
pub fn qcow2(image: &SparseImage, cluster_bits: u32) -> Result<SparseImage, FormatError> {
    let cluster_size = 1u64 << cluster_bits;
    let l2_entries = cluster_size / 8;
    let refcounts_per_block = cluster_size * 8 / (1 << REFCOUNT_ORDER);
    let guest_clusters = image.size().div_ceil(cluster_size);
    let l1_size = guest_clusters.div_ceil(l2_entries).max(1);
    let l1_clusters = (l1_size * 8).div_ceil(cluster_size);

    let data = allocated(image, cluster_size);
    let mut tables: BTreeMap<u64, Vec<(u64, Bytes)>> = BTreeMap::new();
    for (index, bytes) in &data {
        tables
            .entry(index / l2_entries)
            .or_default()
            .push((*index, bytes.clone()));
    }

    // The refcount structures count themselves: grow them until they cover every cluster.
    let fixed = 1 + l1_clusters + tables.len() as u64 + data.len() as u64;
    let (mut table_clusters, mut blocks) = (1u64, 1u64);
    loop {
        let total = fixed + table_clusters + blocks;
        let needed_blocks = total.div_ceil(refcounts_per_block);
        let needed_table = (needed_blocks * 8).div_ceil(cluster_size);
        if needed_blocks <= blocks && needed_table <= table_clusters {
            break;
        }
        blocks = blocks.max(needed_blocks);
        table_clusters = table_clusters.max(needed_table);
    }
    let total = fixed + table_clusters + blocks;

    let l1_offset = cluster_size;
    let refcount_table_offset = l1_offset + l1_clusters * cluster_size;
    let blocks_offset = refcount_table_offset + table_clusters * cluster_size;
    let l2_offset = blocks_offset + blocks * cluster_size;
    let data_offset = l2_offset + tables.len() as u64 * cluster_size;

    let mut out = SparseImage::new(total * cluster_size);
    let mut header = vec![0u8; HEADER_LENGTH as usize + 8];
    header[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    header[4..8].copy_from_slice(&3u32.to_be_bytes());
    header[20..24].copy_from_slice(&cluster_bits.to_be_bytes());
    header[24..32].copy_from_slice(&image.size().to_be_bytes());
    header[36..40].copy_from_slice(&(l1_size as u32).to_be_bytes());
    header[40..48].copy_from_slice(&l1_offset.to_be_bytes());
    header[48..56].copy_from_slice(&refcount_table_offset.to_be_bytes());
    header[56..60].copy_from_slice(&(table_clusters as u32).to_be_bytes());
    header[96..100].copy_from_slice(&REFCOUNT_ORDER.to_be_bytes());
    header[100..104].copy_from_slice(&HEADER_LENGTH.to_be_bytes());
    // Bytes 104..112 stay zero: the end of the header extensions.
    out.put(0, header)?;

    let mut l1 = vec![0u8; (l1_size * 8) as usize];
    let mut next_data = data_offset;
    for (slot, (table, entries)) in tables.iter().enumerate() {
        let table_offset = l2_offset + slot as u64 * cluster_size;
        let at = (*table * 8) as usize;
        l1[at..at + 8].copy_from_slice(&(table_offset | COPIED).to_be_bytes());
        let mut l2 = vec![0u8; cluster_size as usize];
        for (index, bytes) in entries {
            let at = ((index % l2_entries) * 8) as usize;
            l2[at..at + 8].copy_from_slice(&(next_data | COPIED).to_be_bytes());
            out.put(next_data, bytes.clone())?;
            next_data += cluster_size;
        }
        out.put(table_offset, l2)?;
    }
    out.put(l1_offset, l1)?;

    let mut refcount_table = vec![0u8; (blocks * 8) as usize];
    for block in 0..blocks {
        let offset = blocks_offset + block * cluster_size;
        refcount_table[(block * 8) as usize..(block * 8 + 8) as usize]
            .copy_from_slice(&offset.to_be_bytes());
    }
    out.put(refcount_table_offset, refcount_table)?;
    let mut refcounts = vec![0u8; (total * 2) as usize];
    for entry in refcounts.chunks_exact_mut(2) {
        entry.copy_from_slice(&1u16.to_be_bytes());
    }
    out.put(blocks_offset, refcounts)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clusters_with_data_are_stored() {
        let mut image = SparseImage::new(100 << 20);
        image.put(0, vec![1u8; 512]).unwrap();
        image.put(50 << 20, vec![2u8; 20_000]).unwrap();
        image.put(60 << 20, vec![0u8; 8192]).unwrap();
        let data = allocated(&image, 8192);
        assert_eq!(
            data.keys().copied().collect::<Vec<_>>(),
            [0, 6400, 6401, 6402]
        );
        let out = qcow2(&image, 13).unwrap();
        // Header, L1, refcount table, one refcount block, two L2 tables, four data clusters.
        assert_eq!(out.size(), 10 * 8192);
        assert_eq!(&out.read_at(0, 4), b"QFI\xfb");
    }
}
