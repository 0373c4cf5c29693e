//! Directories in the two formats a small tree needs: short-form (entries inside the
//! inode) and single-block (entries, hash-sorted leaf and tail in one 4 KiB block). Larger
//! directories would need separate leaf and free-index blocks, which we do not write.

use super::encode::{be16, be32, be64, seal};
use super::geometry::BLOCK;
use super::inode::LITERAL_AREA;

pub(super) const FT_REG_FILE: u8 = 1;
pub(super) const FT_DIR: u8 = 2;

const BLOCK_MAGIC: u32 = 0x5844_4233; // "XDB3"
/// A v3 data block header: self-describing block header, three best-free slots, padding.
const DATA_HEADER: usize = 64;
const TAIL: usize = 8;
const LEAF_ENTRY: usize = 8;
const FREE_TAG: u16 = 0xffff;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry<'a> {
    pub name: &'a [u8],
    pub ino: u64,
    pub ftype: u8,
}

/// The directory name hash (`xfs_da_hashname`): seven-bit rotations folding in up to four
/// bytes at a time.
pub(super) fn hash(name: &[u8]) -> u32 {
    let mut hash = 0u32;
    let mut chunks = name.chunks_exact(4);
    for chunk in &mut chunks {
        hash = (u32::from(chunk[0]) << 21)
            ^ (u32::from(chunk[1]) << 14)
            ^ (u32::from(chunk[2]) << 7)
            ^ u32::from(chunk[3])
            ^ hash.rotate_left(28);
    }
    match *chunks.remainder() {
        [a, b, c] => {
            (u32::from(a) << 14) ^ (u32::from(b) << 7) ^ u32::from(c) ^ hash.rotate_left(21)
        }
        [a, b] => (u32::from(a) << 7) ^ u32::from(b) ^ hash.rotate_left(14),
        [a] => u32::from(a) ^ hash.rotate_left(7),
        _ => hash,
    }
}

/// Bytes an entry takes in a data block: inode number, name length, name, file type and
/// the 2-byte back-pointer tag, 8-byte aligned.
fn entry_size(name_len: usize) -> usize {
    (8 + 1 + name_len + 1 + 2).next_multiple_of(8)
}

/// Where the first real entry of a data block sits, after `.` and `..`.
fn first_offset() -> usize {
    DATA_HEADER + entry_size(1) + entry_size(2)
}

/// The short-form data fork, or None if it does not fit the inode. Short-form entries keep
/// the offsets they would have in a data block, so the kernel can convert without renaming.
pub(super) fn short_form(parent: u64, entries: &[Entry<'_>]) -> Option<Vec<u8>> {
    let parent = u32::try_from(parent).ok()?;
    let count = u8::try_from(entries.len()).ok()?;
    let size = 6 + entries.iter().map(|e| 8 + e.name.len()).sum::<usize>();
    if size > LITERAL_AREA {
        return None;
    }
    let mut out = Vec::with_capacity(size);
    out.push(count);
    out.push(0); // no 8-byte inode numbers
    out.extend_from_slice(&parent.to_be_bytes());
    let mut offset = first_offset();
    for entry in entries {
        let ino = u32::try_from(entry.ino).ok()?;
        out.push(entry.name.len() as u8);
        out.extend_from_slice(&(offset as u16).to_be_bytes());
        out.extend_from_slice(entry.name);
        out.push(entry.ftype);
        out.extend_from_slice(&ino.to_be_bytes());
        offset += entry_size(entry.name.len());
    }
    Some(out)
}

/// Bytes a single-block directory of `entries` (plus `.` and `..`) needs.
pub(super) fn block_bytes(entries: &[Entry<'_>]) -> usize {
    first_offset()
        + entries
            .iter()
            .map(|e| entry_size(e.name.len()) + LEAF_ENTRY)
            .sum::<usize>()
        + 2 * LEAF_ENTRY
        + TAIL
}

/// The single directory block, or None if the entries do not fit one. `daddr` is where the
/// block lives (in 512-byte units) and `owner` the directory's inode: v5 blocks name both.
pub(super) fn block(
    owner: u64,
    parent: u64,
    entries: &[Entry<'_>],
    daddr: u64,
    uuid: &[u8; 16],
) -> Option<Vec<u8>> {
    let size = BLOCK as usize;
    if block_bytes(entries) > size {
        return None;
    }
    let mut out = vec![0u8; size];
    be32(&mut out, 0, BLOCK_MAGIC);
    be64(&mut out, 8, daddr);
    out[24..40].copy_from_slice(uuid);
    be64(&mut out, 40, owner);

    let own = [
        Entry {
            name: b".",
            ino: owner,
            ftype: FT_DIR,
        },
        Entry {
            name: b"..",
            ino: parent,
            ftype: FT_DIR,
        },
    ];
    let mut leaf = Vec::with_capacity(entries.len() + 2);
    let mut offset = DATA_HEADER;
    for entry in own.iter().chain(entries) {
        let length = entry_size(entry.name.len());
        be64(&mut out, offset, entry.ino);
        out[offset + 8] = entry.name.len() as u8;
        out[offset + 9..offset + 9 + entry.name.len()].copy_from_slice(entry.name);
        out[offset + 9 + entry.name.len()] = entry.ftype;
        be16(&mut out, offset + length - 2, offset as u16);
        leaf.push((hash(entry.name), (offset / 8) as u32));
        offset += length;
    }

    let leaf_start = size - TAIL - leaf.len() * LEAF_ENTRY;
    let gap = leaf_start - offset;
    if gap > 0 {
        be16(&mut out, offset, FREE_TAG);
        be16(&mut out, offset + 2, gap as u16);
        be16(&mut out, leaf_start - 2, offset as u16);
        // The largest free region goes first among the three best-free slots.
        be16(&mut out, 48, offset as u16);
        be16(&mut out, 50, gap as u16);
    }
    leaf.sort_unstable();
    for (index, (hash, address)) in leaf.iter().enumerate() {
        let at = leaf_start + index * LEAF_ENTRY;
        be32(&mut out, at, *hash);
        be32(&mut out, at + 4, *address);
    }
    be32(&mut out, size - TAIL, leaf.len() as u32);
    seal(&mut out, 4);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_hashes_match_xfs_db() {
        // `xfs_db -c 'hash NAME'` from xfsprogs 6.1.
        assert_eq!(hash(b"."), 0x2e);
        assert_eq!(hash(b".."), 0x172e);
        assert_eq!(hash(b"vmlinuz"), 0xcd3a_6194);
        assert_eq!(hash(b"initramfs.xz"), 0x9a83_00a0);
        assert_eq!(hash(b"grub.cfg"), 0x2517_38c9);
    }

    #[test]
    fn short_form_layout() {
        let entries = [
            Entry {
                name: b"A",
                ino: 99,
                ftype: FT_DIR,
            },
            Entry {
                name: b"grub",
                ino: 102,
                ftype: FT_DIR,
            },
        ];
        let fork = short_form(96, &entries).unwrap();
        assert_eq!(
            fork,
            [
                2, 0, 0, 0, 0, 96, // count, i8count, parent
                1, 0, 0x60, b'A', 2, 0, 0, 0, 99, // offsets as mkfs.xfs writes them
                4, 0, 0x70, b'g', b'r', b'u', b'b', 2, 0, 0, 0, 102,
            ]
        );
        let long = vec![b'x'; 200];
        let too_big = [
            Entry {
                name: &long,
                ino: 1,
                ftype: FT_REG_FILE,
            },
            Entry {
                name: &long,
                ino: 2,
                ftype: FT_REG_FILE,
            },
        ];
        assert!(short_form(96, &too_big).is_none());
    }

    #[test]
    fn block_layout() {
        let names: Vec<Vec<u8>> = (0..40)
            .map(|i| format!("entry-{i:02}").into_bytes())
            .collect();
        let entries: Vec<Entry<'_>> = names
            .iter()
            .enumerate()
            .map(|(i, name)| Entry {
                name,
                ino: 200 + i as u64,
                ftype: FT_REG_FILE,
            })
            .collect();
        let block = block(99, 96, &entries, 1234, &[9; 16]).unwrap();
        assert_eq!(&block[..4], b"XDB3");
        assert_eq!(&block[8..16], &1234u64.to_be_bytes());
        assert_eq!(&block[40..48], &99u64.to_be_bytes());
        // "." then ".." then the entries, each tagged with its own offset.
        assert_eq!(&block[64..72], &99u64.to_be_bytes());
        assert_eq!(&block[72..74], &[1, b'.']);
        assert_eq!(&block[78..80], &64u16.to_be_bytes());
        assert_eq!(&block[80..88], &96u64.to_be_bytes());
        let count = u32::from_be_bytes(block[4088..4092].try_into().unwrap());
        assert_eq!(count, 42);
        let leaf_start = 4088 - 42 * 8;
        let hashes: Vec<u32> = (0..42)
            .map(|i| {
                let at = leaf_start + i * 8;
                u32::from_be_bytes(block[at..at + 4].try_into().unwrap())
            })
            .collect();
        assert!(hashes.windows(2).all(|w| w[0] <= w[1]));
        // One free region from the last entry to the leaf, recorded as the best free.
        let free_at = u16::from_be_bytes([block[48], block[49]]) as usize;
        let free_len = u16::from_be_bytes([block[50], block[51]]) as usize;
        assert_eq!(free_at + free_len, leaf_start);
        assert_eq!(&block[free_at..free_at + 2], &[0xff, 0xff]);
        let many: Vec<Entry<'_>> = (0..200).map(|_| entries[0]).collect();
        assert!(super::block(99, 96, &many, 0, &[0; 16]).is_none());
    }
}
