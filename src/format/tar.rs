//! GNU tar archives over sparse members, as `tar -cf` with `--owner=0 --group=0
//! --numeric-owner --mtime=@<epoch>` writes them: 512-byte headers, members padded to 512,
//! two zero blocks, the whole padded to a 10 KiB record. A member may be stored as a GNU
//! sparse file (`tar --sparse`: type `S`, a map of data regions, only those stored), so a
//! disk image inside an archive costs only its payload and extracts as a sparse file.

use super::{FormatError, SparseImage};

const BLOCK: u64 = 512;
const RECORD: u64 = 20 * BLOCK;
/// Octal fields hold sizes below 8 GiB; larger ones use GNU's base-256 form.
const OCTAL_SIZE_LIMIT: u64 = 1 << 33;

/// Holes shorter than this stay inside a data region: a map entry costs more.
const MIN_SPARSE_HOLE: u64 = 64 * 1024;
/// Map entries in the header, and in each extension block.
const HEADER_ENTRIES: usize = 4;
const EXTENSION_ENTRIES: usize = 21;

/// One regular file of an archive.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub mode: u32,
    pub content: SparseImage,
    /// Store only the data regions (GNU sparse format).
    pub sparse: bool,
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

/// A numeric field in octal, or in GNU's base-256 form when octal cannot hold the value.
fn number(field: &mut [u8], value: u64) {
    if value < 1u64 << (3 * (field.len() as u32 - 1)).min(63) {
        octal(field, value);
    } else {
        field.fill(0);
        field[0] = 0x80;
        let at = field.len() - 8;
        field[at..].copy_from_slice(&value.to_be_bytes());
    }
}

/// The data regions of `image` for a sparse member, small holes merged; a trailing hole is
/// marked by an empty region at the end, as GNU tar writes it.
fn regions(image: &SparseImage) -> Vec<(u64, u64)> {
    let mut regions: Vec<(u64, u64)> = Vec::new();
    for (offset, bytes, _) in image.extents() {
        let start = offset / BLOCK * BLOCK;
        let end = (offset + bytes.len() as u64).div_ceil(BLOCK) * BLOCK;
        let end = end.min(image.size());
        match regions.last_mut() {
            Some(last) if start <= last.1 + MIN_SPARSE_HOLE => last.1 = last.1.max(end),
            _ => regions.push((start, end)),
        }
    }
    if regions.last().is_none_or(|last| last.1 < image.size()) {
        regions.push((image.size(), image.size()));
    }
    regions
}

fn put_entries(block: &mut [u8], entries: &[(u64, u64)]) {
    for (index, (start, end)) in entries.iter().enumerate() {
        let at = index * 24;
        number(&mut block[at..at + 12], *start);
        number(&mut block[at + 12..at + 24], end - start);
    }
}

fn header(
    member: &Member,
    mtime: u32,
    stored: u64,
    map: &[(u64, u64)],
) -> Result<[u8; 512], FormatError> {
    let mut header = [0u8; 512];
    let name = member.name.as_bytes();
    if name.len() > 100 {
        return Err(FormatError::Name(member.name.clone()));
    }
    header[..name.len()].copy_from_slice(name);
    octal(&mut header[100..108], u64::from(member.mode));
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    if stored < OCTAL_SIZE_LIMIT {
        octal(&mut header[124..136], stored);
    } else {
        header[124] = 0x80;
        header[128..136].copy_from_slice(&stored.to_be_bytes());
    }
    octal(&mut header[136..148], u64::from(mtime));
    header[156] = b'0';
    if member.sparse {
        header[156] = b'S';
        put_entries(&mut header[386..482], &map[..map.len().min(HEADER_ENTRIES)]);
        header[482] = u8::from(map.len() > HEADER_ENTRIES);
        number(&mut header[483..495], member.content.size());
    }
    header[257..263].copy_from_slice(b"ustar ");
    header[263..265].copy_from_slice(b" \0");
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|byte| u32::from(*byte)).sum();
    let text = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(text.as_bytes());
    Ok(header)
}

/// One member laid out: header and extension blocks, then where its stored bytes come from.
struct Layout {
    blocks: Vec<Vec<u8>>,
    /// `(source start, source end)` ranges of the content, stored back to back.
    stored: Vec<(u64, u64)>,
}

fn layout(member: &Member, mtime: u32) -> Result<Layout, FormatError> {
    let size = member.content.size();
    if !member.sparse {
        return Ok(Layout {
            blocks: vec![header(member, mtime, size, &[])?.to_vec()],
            stored: vec![(0, size)],
        });
    }
    let map = regions(&member.content);
    let stored_bytes: u64 = map.iter().map(|(start, end)| end - start).sum();
    let mut blocks = vec![header(member, mtime, stored_bytes, &map)?.to_vec()];
    let rest = &map[map.len().min(HEADER_ENTRIES)..];
    let chunks: Vec<&[(u64, u64)]> = rest.chunks(EXTENSION_ENTRIES).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        let mut block = vec![0u8; BLOCK as usize];
        put_entries(&mut block[..504], chunk);
        block[504] = u8::from(index + 1 < chunks.len());
        blocks.push(block);
    }
    Ok(Layout {
        blocks,
        stored: map,
    })
}

/// The archive of `members`, in order, every entry dated `mtime`.
pub fn archive(members: Vec<Member>, mtime: u32) -> Result<SparseImage, FormatError> {
    let layouts = members
        .iter()
        .map(|member| layout(member, mtime))
        .collect::<Result<Vec<_>, _>>()?;
    let mut size = 0u64;
    for layout in &layouts {
        let stored: u64 = layout.stored.iter().map(|(start, end)| end - start).sum();
        size += BLOCK * layout.blocks.len() as u64 + stored.div_ceil(BLOCK) * BLOCK;
    }
    size = (size + 2 * BLOCK).div_ceil(RECORD) * RECORD;
    let mut out = SparseImage::new(size);
    let mut offset = 0u64;
    for (member, layout) in members.into_iter().zip(layouts) {
        for block in layout.blocks {
            out.put(offset, block)?;
            offset += BLOCK;
        }
        if !member.sparse {
            let length = member.content.size();
            out.place(offset, member.content)?;
            offset += length.div_ceil(BLOCK) * BLOCK;
            continue;
        }
        let mut written = 0u64;
        for (start, end) in layout.stored {
            for (at, bytes, packed) in member.content.extents() {
                let extent_end = at + bytes.len() as u64;
                if extent_end <= start || at >= end {
                    continue;
                }
                let from = at.max(start);
                let to = extent_end.min(end);
                let slice = bytes.slice((from - at) as usize..(to - at) as usize);
                let target = offset + written + (from - start);
                if packed {
                    out.put_packed(target, slice)?;
                } else {
                    out.put(target, slice)?;
                }
            }
            written += end - start;
        }
        offset += written.div_ceil(BLOCK) * BLOCK;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_octal_and_base256_sizes() {
        let small = Member {
            name: "disk.raw".into(),
            mode: 0o644,
            content: SparseImage::new(1000),
            sparse: false,
        };
        let block = header(&small, 1_559_424_892, 1000, &[]).unwrap();
        assert_eq!(&block[124..136], b"00000001750\0");
        assert_eq!(&block[257..265], b"ustar  \0");
        let big = Member {
            content: SparseImage::new(12 << 30),
            ..small
        };
        let block = header(&big, 0, 12 << 30, &[]).unwrap();
        assert_eq!(block[124], 0x80);
        assert_eq!(
            u64::from_be_bytes(block[128..136].try_into().unwrap()),
            12 << 30
        );
    }

    #[test]
    fn archives_pad_to_whole_records() {
        let mut content = SparseImage::new(700);
        content.put(0, b"hello".to_vec()).unwrap();
        let out = archive(
            vec![Member {
                name: "a".into(),
                mode: 0o644,
                content,
                sparse: false,
            }],
            0,
        )
        .unwrap();
        assert_eq!(out.size(), 10_240);
        assert_eq!(out.read_at(512, 5), b"hello");
    }

    #[test]
    fn sparse_members_store_only_their_regions() {
        let mut content = SparseImage::new(20 << 30);
        content.put(0, vec![1u8; 600]).unwrap();
        content.put(10 << 30, vec![2u8; 10]).unwrap();
        let map = regions(&content);
        assert_eq!(
            map,
            [
                (0, 1024),
                (10 << 30, (10 << 30) + 512),
                (20 << 30, 20 << 30)
            ]
        );
        let out = archive(
            vec![Member {
                name: "disk.raw".into(),
                mode: 0o644,
                content,
                sparse: true,
            }],
            0,
        )
        .unwrap();
        let header = out.read_at(0, 512);
        assert_eq!(header[156], b'S');
        assert_eq!(header[482], 0, "three regions fit the header");
        assert_eq!(header[483], 0x80, "the real size needs base-256");
        assert_eq!(out.read_at(512, 2), [1, 1]);
        assert_eq!(out.read_at(512 + 1024, 1), [2]);
        assert_eq!(out.size(), 10_240);
    }
}
