//! Fixed VHD (what Azure imports): the raw image followed by a 512-byte footer, written as
//! `qemu-img convert -O vpc -o subformat=fixed,force_size` does, with the exact size
//! authoritative (creator `qem2`) rather than one rounded to a CHS geometry.

use super::{FormatError, SparseImage};

const FOOTER: u64 = 512;
/// Seconds from the Unix epoch to the VHD epoch (2000-01-01T00:00:00Z).
const VHD_EPOCH: u32 = 946_684_800;

/// The VHD specification's CHS geometry for `size` bytes: (cylinders, heads, sectors).
pub fn geometry(size: u64) -> (u16, u8, u8) {
    let mut total = (size / 512).min(65_535 * 16 * 255);
    let (mut sectors, mut heads, mut cylinder_heads);
    if total >= 65_535 * 16 * 63 {
        sectors = 255;
        heads = 16;
        cylinder_heads = total / sectors;
    } else {
        sectors = 17;
        cylinder_heads = total / sectors;
        heads = cylinder_heads.div_ceil(1024);
        if heads < 4 {
            heads = 4;
        }
        if cylinder_heads >= heads * 1024 || heads > 16 {
            sectors = 31;
            heads = 16;
            cylinder_heads = total / sectors;
        }
        if cylinder_heads >= heads * 1024 {
            sectors = 63;
            heads = 16;
            cylinder_heads = total / sectors;
        }
    }
    total = cylinder_heads / heads;
    (total as u16, heads as u8, sectors as u8)
}

/// The footer of a fixed disk of `size` bytes; `unique_id` names the disk, `mtime` is Unix time.
pub fn footer(size: u64, unique_id: [u8; 16], mtime: u32) -> [u8; 512] {
    let mut footer = [0u8; 512];
    footer[..8].copy_from_slice(b"conectix");
    footer[8..12].copy_from_slice(&2u32.to_be_bytes());
    footer[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    footer[16..24].copy_from_slice(&u64::MAX.to_be_bytes());
    footer[24..28].copy_from_slice(&mtime.saturating_sub(VHD_EPOCH).to_be_bytes());
    footer[28..32].copy_from_slice(b"qem2");
    footer[32..36].copy_from_slice(&0x0005_0003u32.to_be_bytes());
    footer[36..40].copy_from_slice(b"Wi2k");
    footer[40..48].copy_from_slice(&size.to_be_bytes());
    footer[48..56].copy_from_slice(&size.to_be_bytes());
    let (cylinders, heads, sectors) = geometry(size);
    footer[56..58].copy_from_slice(&cylinders.to_be_bytes());
    footer[58] = heads;
    footer[59] = sectors;
    footer[60..64].copy_from_slice(&2u32.to_be_bytes());
    footer[68..84].copy_from_slice(&unique_id);
    let sum = footer
        .iter()
        .fold(0u32, |sum, byte| sum.wrapping_add(u32::from(*byte)));
    footer[64..68].copy_from_slice(&(!sum).to_be_bytes());
    footer
}

/// `image` as a fixed VHD.
pub fn fixed(
    image: &SparseImage,
    unique_id: [u8; 16],
    mtime: u32,
) -> Result<SparseImage, FormatError> {
    let size = image.size();
    let mut out = SparseImage::new(size + FOOTER);
    out.place(0, image.clone())?;
    out.put(size, footer(size, unique_id, mtime).to_vec())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_follows_the_specification() {
        // 1 GiB: 2097152 sectors → 63 sectors, 16 heads, 2080 cylinders.
        assert_eq!(geometry(1 << 30), (2080, 16, 63));
        // Past 127 GiB the geometry is capped.
        assert_eq!(geometry(200 << 30), (65_535, 16, 255));
    }

    #[test]
    fn footer_checksum_is_the_complement_of_the_byte_sum() {
        let footer = footer(8 << 30, [7; 16], 1_559_424_892);
        let stored = u32::from_be_bytes(footer[64..68].try_into().unwrap());
        let mut copy = footer;
        copy[64..68].fill(0);
        let sum = copy.iter().map(|b| u32::from(*b)).sum::<u32>();
        assert_eq!(stored, !sum);
        assert_eq!(&footer[..8], b"conectix");
    }
}
