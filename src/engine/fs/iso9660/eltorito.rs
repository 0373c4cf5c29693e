//! El Torito: the boot catalog firmware reads from a CD, and the tables patched into a boot
//! image so it can find the rest of itself (boot info table, GRUB's hybrid blocklist).
// Patches boot images that come from the release: checked access only.
#![deny(clippy::indexing_slicing)]

use crate::engine::EngineError;

/// Which firmware an entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Bios,
    Efi,
}

impl Platform {
    fn id(self) -> u8 {
        match self {
            Platform::Bios => 0x00,
            Platform::Efi => 0xEF,
        }
    }
}

/// One no-emulation boot entry, resolved to its place on the medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogEntry {
    pub platform: Platform,
    /// 2048-byte block of the boot image.
    pub lba: u32,
    /// 512-byte sectors the firmware loads (0 lets UEFI take the whole image).
    pub load_sectors: u16,
}

const BOOTABLE: u8 = 0x88;
const SECTION_MORE: u8 = 0x90;
const SECTION_FINAL: u8 = 0x91;

/// The catalog block: the validation entry and the default entry (the first of `entries`),
/// then one section per further entry.
// Writes its own 2048-byte block at offsets bounded by the entry count checked first.
#[allow(clippy::indexing_slicing)]
pub fn catalog(entries: &[CatalogEntry]) -> Result<[u8; 2048], EngineError> {
    let (first, rest) = entries.split_first().ok_or_else(|| {
        EngineError::InvalidInput("an El Torito catalog needs a boot entry".into())
    })?;
    // Validation, default, then a header and an entry per section.
    if 2 + rest.len() * 2 > 2048 / 32 {
        return Err(EngineError::InvalidInput(format!(
            "{} El Torito entries do not fit in one catalog block",
            entries.len()
        )));
    }
    let mut block = [0u8; 2048];
    block[0] = 0x01;
    block[1] = first.platform.id();
    block[30] = 0x55;
    block[31] = 0xAA;
    let sum = block[..32].chunks(2).fold(0u16, |sum, word| {
        sum.wrapping_add(u16::from_le_bytes([word[0], word[1]]))
    });
    block[28..30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());

    let entry = |slot: &mut [u8], entry: &CatalogEntry| {
        slot[0] = BOOTABLE;
        // Media type 0: no emulation; load segment 0: the default 0x7C0.
        slot[6..8].copy_from_slice(&entry.load_sectors.to_le_bytes());
        slot[8..12].copy_from_slice(&entry.lba.to_le_bytes());
    };
    entry(&mut block[32..64], first);
    for (index, section) in rest.iter().enumerate() {
        let header = 64 + index * 64;
        block[header] = if index + 1 == rest.len() {
            SECTION_FINAL
        } else {
            SECTION_MORE
        };
        block[header + 1] = section.platform.id();
        block[header + 2..header + 4].copy_from_slice(&1u16.to_le_bytes());
        entry(&mut block[header + 32..header + 64], section);
    }
    Ok(block)
}

/// Offset of the 56-byte boot info table in a boot image.
const BOOT_INFO_TABLE: usize = 8;
/// The checksum covers the image from here to its end.
const BOOT_INFO_CHECKSUMMED: usize = 64;

/// Fills the boot info table (`-boot-info-table`): the primary volume descriptor's block, the
/// image's block and length, and the checksum of its 32-bit words after byte 64.
pub fn patch_boot_info_table(image: &mut [u8], pvd_lba: u32, lba: u32) -> Result<(), EngineError> {
    let length = u32::try_from(image.len()).map_err(|_| {
        EngineError::InvalidInput(format!("a {}-byte boot image is too big", image.len()))
    })?;
    let no_room = || {
        EngineError::InvalidInput(format!(
            "a {length}-byte boot image has no room for a boot info table"
        ))
    };
    let (head, checksummed) = image
        .split_at_mut_checked(BOOT_INFO_CHECKSUMMED)
        .ok_or_else(no_room)?;
    let checksum = checksummed.chunks(4).fold(0u32, |sum, word| {
        // A short last word counts as if padded with zeros.
        let mut bytes = [0u8; 4];
        bytes
            .iter_mut()
            .zip(word)
            .for_each(|(slot, byte)| *slot = *byte);
        sum.wrapping_add(u32::from_le_bytes(bytes))
    });
    let table = head.get_mut(BOOT_INFO_TABLE..).ok_or_else(no_room)?;
    table.fill(0);
    for (slot, value) in table
        .chunks_exact_mut(4)
        .zip([pvd_lba, lba, length, checksum])
    {
        slot.copy_from_slice(&value.to_le_bytes());
    }
    Ok(())
}

/// In GRUB's El Torito image, `cdboot.img` is followed by `diskboot.img`, whose first
/// blocklist entry starts here.
const GRUB2_BLOCKLIST: usize = 2048 + 0x1F4;
/// `boot_hybrid.img` keeps the 512-byte sector of `diskboot.img` here.
const GRUB2_MBR_KERNEL_SECTOR: usize = 0x1B0;

/// `--grub2-boot-info`: when the medium is booted as a disk, `diskboot.img` (512-byte
/// sector `4 × lba + 4`) loads the rest of the core from the sector after it.
pub fn patch_grub2_boot_info(image: &mut [u8], lba: u32) -> Result<(), EngineError> {
    let field = image
        .get_mut(GRUB2_BLOCKLIST..GRUB2_BLOCKLIST + 8)
        .ok_or_else(|| EngineError::InvalidInput("the GRUB El Torito image is too short".into()))?;
    field.copy_from_slice(&(u64::from(lba) * 4 + 5).to_le_bytes());
    Ok(())
}

/// `--grub2-mbr`: `boot_hybrid.img`'s boot code pointing at `diskboot.img` in the El Torito
/// image at block `lba`; the partition table area is left to the caller.
pub fn grub2_mbr(boot_hybrid: &[u8], lba: u32) -> Result<Vec<u8>, EngineError> {
    let Ok(sector) = <[u8; 512]>::try_from(boot_hybrid) else {
        return Err(EngineError::InvalidInput(format!(
            "boot_hybrid.img is {} bytes, not 512",
            boot_hybrid.len()
        )));
    };
    let mut sector = sector;
    sector[GRUB2_MBR_KERNEL_SECTOR..GRUB2_MBR_KERNEL_SECTOR + 8]
        .copy_from_slice(&(u64::from(lba) * 4 + 4).to_le_bytes());
    Ok(sector[..446].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_sums_to_zero_and_lists_sections() {
        let block = catalog(&[
            CatalogEntry {
                platform: Platform::Bios,
                lba: 598,
                load_sectors: 4,
            },
            CatalogEntry {
                platform: Platform::Efi,
                lba: 12288,
                load_sectors: 0,
            },
        ])
        .unwrap();
        let sum = block[..32].chunks(2).fold(0u16, |s, w| {
            s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
        });
        assert_eq!(sum, 0);
        assert_eq!(&block[32..44], &[0x88, 0, 0, 0, 0, 0, 4, 0, 0x56, 2, 0, 0]);
        assert_eq!(&block[64..68], &[0x91, 0xEF, 1, 0]);
        assert_eq!(&block[96..108], &[0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0x30, 0, 0]);
        assert!(catalog(&[]).is_err());
    }

    #[test]
    fn boot_info_table_checksum_covers_the_tail() {
        let mut image = vec![1u8; 70];
        patch_boot_info_table(&mut image, 16, 598).unwrap();
        assert_eq!(&image[8..20], &[16, 0, 0, 0, 0x56, 2, 0, 0, 70, 0, 0, 0]);
        // Six bytes of ones: one full word and a padded half word.
        assert_eq!(&image[20..24], &(0x0101_0101u32 + 0x0101).to_le_bytes());
        assert!(image[24..64].iter().all(|b| *b == 0));
        assert!(patch_boot_info_table(&mut [0u8; 10], 16, 1).is_err());
    }

    #[test]
    fn grub2_patches() {
        let mut image = vec![0u8; 4096];
        patch_grub2_boot_info(&mut image, 598).unwrap();
        assert_eq!(&image[2548..2556], &2397u64.to_le_bytes());
        let mbr = grub2_mbr(&[0u8; 512], 598).unwrap();
        assert_eq!(mbr.len(), 446);
        assert_eq!(&mbr[432..440], &2396u64.to_le_bytes());
        assert!(grub2_mbr(&[0u8; 100], 1).is_err());
        assert!(patch_grub2_boot_info(&mut [0u8; 100], 1).is_err());
    }
}
