//! GNU tar archives over sparse members, as `tar -cf` with `--owner=0 --group=0
//! --numeric-owner --mtime=@<epoch>` writes them: 512-byte headers, members padded to 512,
//! two zero blocks, the whole padded to a 10 KiB record. Member contents stay sparse, so a
//! disk image inside an archive still costs only its payload.

use super::{FormatError, SparseImage};

const BLOCK: u64 = 512;
const RECORD: u64 = 20 * BLOCK;
/// Octal fields hold sizes below 8 GiB; larger ones use GNU's base-256 form.
const OCTAL_SIZE_LIMIT: u64 = 1 << 33;

/// One regular file of an archive.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub mode: u32,
    pub content: SparseImage,
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

fn header(member: &Member, mtime: u32) -> Result<[u8; 512], FormatError> {
    let mut header = [0u8; 512];
    let name = member.name.as_bytes();
    if name.len() > 100 {
        return Err(FormatError::Name(member.name.clone()));
    }
    header[..name.len()].copy_from_slice(name);
    octal(&mut header[100..108], u64::from(member.mode));
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    let size = member.content.size();
    if size < OCTAL_SIZE_LIMIT {
        octal(&mut header[124..136], size);
    } else {
        header[124] = 0x80;
        header[128..136].copy_from_slice(&size.to_be_bytes());
    }
    octal(&mut header[136..148], u64::from(mtime));
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar ");
    header[263..265].copy_from_slice(b" \0");
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|byte| u32::from(*byte)).sum();
    let text = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(text.as_bytes());
    Ok(header)
}

/// The archive of `members`, in order, every entry dated `mtime`.
pub fn archive(members: Vec<Member>, mtime: u32) -> Result<SparseImage, FormatError> {
    let mut size = 0u64;
    for member in &members {
        size += BLOCK + member.content.size().div_ceil(BLOCK) * BLOCK;
    }
    size = (size + 2 * BLOCK).div_ceil(RECORD) * RECORD;
    let mut out = SparseImage::new(size);
    let mut offset = 0u64;
    for member in members {
        out.put(offset, header(&member, mtime)?.to_vec())?;
        offset += BLOCK;
        let length = member.content.size();
        out.place(offset, member.content)?;
        offset += length.div_ceil(BLOCK) * BLOCK;
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
        };
        let block = header(&small, 1_559_424_892).unwrap();
        assert_eq!(&block[124..136], b"00000001750\0");
        assert_eq!(&block[257..265], b"ustar  \0");
        let big = Member {
            content: SparseImage::new(12 << 30),
            ..small
        };
        let block = header(&big, 0).unwrap();
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
            }],
            0,
        )
        .unwrap();
        assert_eq!(out.size(), 10_240);
        assert_eq!(out.read_at(512, 5), b"hello");
    }
}
