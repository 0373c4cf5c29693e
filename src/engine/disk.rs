//! Disk image layouts (imager.md §5): which partitions a bootloader needs, their sizes by
//! version, and the assembly of GPT, ESP and META into one sparse image.

use super::fat::{self, FatFile, FatOptions};
use super::{EngineError, gpt, meta};
use crate::format::SparseImage;
use crate::profile::{Arch, MIB, TalosVersion};
use crate::schematic::{Bootloader as Requested, MetaValue};
use bytes::Bytes;

/// The boot arrangement of a disk image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bootloader {
    /// systemd-boot and a UKI on the ESP (UEFI only).
    SdBoot,
    /// sd-boot for UEFI, GRUB on a BIOS partition and an XFS BOOT partition for BIOS.
    DualBoot,
    /// GRUB for both UEFI and BIOS.
    Grub,
}

impl Bootloader {
    /// The imager's selection rules (imager.md §2.3), first match wins.
    pub fn select(
        requested: Requested,
        secureboot: bool,
        arch: Arch,
        version: &TalosVersion,
    ) -> Bootloader {
        match requested {
            Requested::SdBoot if !secureboot => return Bootloader::SdBoot,
            Requested::DualBoot if !secureboot => return Bootloader::DualBoot,
            Requested::Grub if !secureboot => return Bootloader::Grub,
            _ => {}
        }
        if secureboot || (arch == Arch::Arm64 && version.at_least(1, 10, 0)) {
            Bootloader::SdBoot
        } else if !version.at_least(1, 10, 0) {
            Bootloader::Grub
        } else {
            Bootloader::DualBoot
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Bootloader::SdBoot => "sd-boot",
            Bootloader::DualBoot => "dual-boot",
            Bootloader::Grub => "grub",
        }
    }
}

/// Size of the XFS BOOT partition, which also drives the disk size adjustment.
pub fn boot_partition_size(version: &TalosVersion) -> u64 {
    if version.at_least(1, 11, 0) {
        2000 * MIB
    } else {
        1000 * MIB
    }
}

/// The final disk size for a profile's base size (imager.md §2.3).
pub fn disk_size(base: u64, bootloader: Bootloader, version: &TalosVersion) -> u64 {
    let boot = boot_partition_size(version);
    let mut size = base + boot - 1000 * MIB;
    if bootloader == Bootloader::DualBoot {
        size += MIB + boot;
    }
    size
}

/// The ESP size for a bootloader: room for two UKIs with sd-boot, 100 MiB for GRUB.
pub fn esp_size(bootloader: Bootloader, version: &TalosVersion) -> u64 {
    match bootloader {
        Bootloader::Grub => 100 * MIB,
        _ => boot_partition_size(version) + 101 * MIB,
    }
}

/// Everything an sd-boot disk holds.
#[derive(Debug, Clone)]
pub struct SdBootDisk {
    pub arch: Arch,
    pub version: TalosVersion,
    /// Size after the bootloader adjustment ([`disk_size`]).
    pub disk_size: u64,
    pub sector_size: u64,
    /// systemd-boot's EFI binary.
    pub sd_boot: Bytes,
    pub uki: Bytes,
    pub meta: Vec<MetaValue>,
    /// Unix time of every file on the ESP.
    pub mtime: u32,
}

fn efi_name(arch: Arch) -> &'static str {
    match arch {
        Arch::Amd64 => "BOOTX64.efi",
        Arch::Arm64 => "BOOTAA64.efi",
    }
}

/// `loader/loader.conf` without Secure Boot key enrollment.
pub const LOADER_CONF: &str = "# systemd-boot configuration\n\ntimeout 10\n";

/// The ESP of an sd-boot disk: systemd-boot as the removable-media loader, the UKI under
/// `EFI/Linux`, and the loader configuration.
pub fn sd_boot_esp(disk: &SdBootDisk, size: u64) -> Result<SparseImage, EngineError> {
    let files = [
        FatFile {
            path: format!("EFI/boot/{}", efi_name(disk.arch)),
            bytes: disk.sd_boot.clone(),
            packed: false,
        },
        FatFile {
            path: format!("EFI/Linux/Talos-{}.efi", disk.version.tag()),
            bytes: disk.uki.clone(),
            packed: true,
        },
        FatFile {
            path: "loader/loader.conf".into(),
            bytes: Bytes::from_static(LOADER_CONF.as_bytes()),
            packed: false,
        },
    ];
    fat::build(
        &FatOptions {
            size,
            sector_size: disk.sector_size,
            label: "EFI".into(),
            volume_id: fat::INVARIANT_VOLUME_ID,
            mtime: disk.mtime,
        },
        &files,
    )
}

/// Partitions placed one after another from 1 MiB, in LBAs of `sector`.
fn allocate(sector: u64, parts: &[(&'static str, &'static str, u64, u64)]) -> Vec<gpt::Partition> {
    let mut start = MIB;
    parts
        .iter()
        .map(|(name, type_guid, size, attributes)| {
            let partition = gpt::Partition {
                name,
                type_guid,
                first_lba: start / sector,
                last_lba: (start + size) / sector - 1,
                attributes: *attributes,
            };
            start += size;
            partition
        })
        .collect()
}

/// The whole sd-boot disk: GPT, ESP, META.
pub fn sd_boot(disk: &SdBootDisk) -> Result<SparseImage, EngineError> {
    let sector = disk.sector_size;
    if !matches!(sector, 512 | 4096) {
        return Err(EngineError::InvalidInput(format!(
            "disk sector size {sector} is not supported (512 or 4096)"
        )));
    }
    let esp = esp_size(Bootloader::SdBoot, &disk.version);
    let partitions = allocate(
        sector,
        &[
            ("EFI", gpt::ESP_TYPE, esp, 0),
            ("META", gpt::LINUX_DATA_TYPE, meta::PARTITION_SIZE as u64, 0),
        ],
    );
    let needed = MIB + esp + meta::PARTITION_SIZE as u64 + MIB;
    if disk.disk_size < needed {
        return Err(EngineError::InvalidInput(format!(
            "disk size {} is smaller than the {needed} bytes the partitions need",
            disk.disk_size
        )));
    }
    let mut image = SparseImage::new(disk.disk_size);
    let fail = |error: crate::format::FormatError| EngineError::InvalidInput(error.to_string());
    for (offset, bytes) in gpt::write(sector, disk.disk_size, &partitions) {
        image.put(offset, bytes).map_err(fail)?;
    }
    image
        .place(partitions[0].first_lba * sector, sd_boot_esp(disk, esp)?)
        .map_err(fail)?;
    if !disk.meta.is_empty() {
        let mut adv = meta::partition(&disk.meta).map_err(EngineError::InvalidInput)?;
        // Both ADV copies; the rest of the partition stays a hole.
        adv.truncate(meta::PARTITION_SIZE / 2);
        image
            .put(partitions[1].first_lba * sector, adv)
            .map_err(fail)?;
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> TalosVersion {
        TalosVersion::new(semver::Version::parse(text).unwrap())
    }

    #[test]
    fn bootloader_selection_follows_the_imager() {
        let v112 = version("1.12.0");
        let v19 = version("1.9.6");
        assert_eq!(
            Bootloader::select(Requested::None, false, Arch::Amd64, &v112),
            Bootloader::DualBoot
        );
        assert_eq!(
            Bootloader::select(Requested::None, false, Arch::Arm64, &v112),
            Bootloader::SdBoot
        );
        assert_eq!(
            Bootloader::select(Requested::None, false, Arch::Amd64, &v19),
            Bootloader::Grub
        );
        assert_eq!(
            Bootloader::select(Requested::None, true, Arch::Amd64, &v112),
            Bootloader::SdBoot
        );
        assert_eq!(
            Bootloader::select(Requested::Grub, true, Arch::Amd64, &v112),
            Bootloader::SdBoot
        );
        assert_eq!(
            Bootloader::select(Requested::SdBoot, false, Arch::Amd64, &v112),
            Bootloader::SdBoot
        );
    }

    #[test]
    fn disk_sizes_match_the_imager() {
        let v112 = version("1.12.0");
        let base = 1246 * MIB;
        assert_eq!(disk_size(base, Bootloader::SdBoot, &v112), 2_355_101_696);
        assert_eq!(disk_size(base, Bootloader::DualBoot, &v112), 4_453_302_272);
        assert_eq!(
            disk_size(8192 * MIB, Bootloader::DualBoot, &v112),
            11_736_711_168
        );
        assert_eq!(
            disk_size(10240 * MIB, Bootloader::SdBoot, &v112),
            11_785_994_240
        );
        assert_eq!(esp_size(Bootloader::SdBoot, &version("1.10.0")), 1101 * MIB);
        assert_eq!(esp_size(Bootloader::SdBoot, &v112), 2101 * MIB);
    }

    #[test]
    fn partitions_start_at_one_mebibyte_and_touch() {
        let parts = allocate(
            512,
            &[
                ("EFI", gpt::ESP_TYPE, 2101 * MIB, 0),
                ("META", gpt::LINUX_DATA_TYPE, MIB, 0),
            ],
        );
        assert_eq!((parts[0].first_lba, parts[0].last_lba), (2048, 4_304_895));
        assert_eq!(
            (parts[1].first_lba, parts[1].last_lba),
            (4_304_896, 4_306_943)
        );
        let parts = allocate(4096, &[("EFI", gpt::ESP_TYPE, 2101 * MIB, 0)]);
        assert_eq!(
            (parts[0].first_lba, parts[0].last_lba),
            (256, 256 + 2101 * 256 - 1)
        );
    }
}
