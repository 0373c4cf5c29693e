//! Disk image layouts (imager.md §5): which partitions a bootloader needs, their sizes by
//! version, and the assembly of GPT, ESP and META into one sparse image.

use crate::engine::EngineError;
use crate::engine::boot::loader::{self, EnrollKeys, Enrollment};
use crate::engine::boot::{BiosGrub, Bootloader, grub, meta};
use crate::engine::fs::fat::{self, FatFile, FatOptions};
use crate::engine::fs::gpt;
use crate::engine::fs::xfs::{self, XfsDir, XfsFile, XfsOptions};
use crate::format::SparseImage;
use crate::profile::{Arch, TalosVersion};
use crate::schematic::MetaValue;
use crate::size::MIB;
use bytes::Bytes;

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

/// Everything a disk image holds.
#[derive(Debug, Clone)]
pub struct DiskInputs {
    pub arch: Arch,
    pub version: TalosVersion,
    pub bootloader: Bootloader,
    /// Size after the bootloader adjustment ([`disk_size`]).
    pub disk_size: u64,
    pub sector_size: u64,
    /// systemd-boot's EFI binary (sd-boot and dual-boot).
    pub sd_boot: Bytes,
    /// The UKI (sd-boot and dual-boot).
    pub uki: Bytes,
    /// Kernel, initramfs and command line for GRUB's BOOT partition (dual-boot and grub).
    pub kernel: Bytes,
    pub initramfs: Bytes,
    pub cmdline: String,
    /// GRUB's EFI application for the ESP (grub).
    pub grub_efi: Bytes,
    /// GRUB for BIOS (amd64 with dual-boot or grub).
    pub bios: Option<BiosGrub>,
    /// The schematic's META values; the layout adds its own.
    pub meta: Vec<MetaValue>,
    /// Secure Boot: the keys systemd-boot enrolls, and how (none when the mode is `off`).
    pub enrollment: Option<Enrollment>,
    /// Unix time of every file.
    pub mtime: u32,
    /// What a board overlay's installer put into the image (GRUB layouts only).
    pub overlay: Option<DiskOverlay>,
}

/// What a board overlay's installer made of the image (imager.md §10).
#[derive(Debug, Clone, Default)]
pub struct DiskOverlay {
    /// LBAs left between the primary GPT header and its entries for the board's firmware.
    pub gap_lbas: u64,
    /// Bytes the installer wrote into the image file, `(offset, bytes)`. What falls on the
    /// partition table or a partition is overwritten, as upstream writes those afterwards.
    pub raw: Vec<(u64, Bytes)>,
    /// Files for the ESP root (the installer's `<mountPrefix>/boot/EFI/`).
    pub esp_files: Vec<(String, Bytes)>,
}

fn efi_name(arch: Arch) -> &'static str {
    match arch {
        Arch::Amd64 => "BOOTX64.efi",
        Arch::Arm64 => "BOOTAA64.efi",
    }
}

/// The ESP: systemd-boot and the UKI, or GRUB's EFI application.
fn esp(disk: &DiskInputs, size: u64) -> Result<SparseImage, EngineError> {
    let loader = format!("EFI/boot/{}", efi_name(disk.arch));
    // A disk enrolls nothing, and says nothing about it, when the mode is off.
    let enrollment = disk
        .enrollment
        .as_ref()
        .filter(|enrollment| enrollment.mode != EnrollKeys::Off);
    let enroll = enrollment.map(|enrollment| enrollment.mode);
    let files = match disk.bootloader {
        Bootloader::Grub => {
            let mut files = vec![FatFile {
                path: loader.clone(),
                bytes: disk.grub_efi.clone(),
                packed: false,
                read_only: false,
            }];
            let overlay_files = disk.overlay.iter().flat_map(|overlay| &overlay.esp_files);
            // GRUB keeps its place; FAT names are case-insensitive.
            files.extend(
                overlay_files
                    .filter(|(path, _)| !path.eq_ignore_ascii_case(&loader))
                    .map(|(path, bytes)| FatFile {
                        path: path.clone(),
                        bytes: bytes.clone(),
                        packed: false,
                        read_only: false,
                    }),
            );
            files
        }
        Bootloader::SdBoot | Bootloader::DualBoot => {
            let mut files = vec![
                FatFile {
                    path: loader,
                    bytes: disk.sd_boot.clone(),
                    packed: false,
                    read_only: false,
                },
                FatFile {
                    path: format!("EFI/Linux/Talos-{}.efi", disk.version.tag()),
                    bytes: disk.uki.clone(),
                    packed: true,
                    read_only: false,
                },
                FatFile {
                    path: "loader/loader.conf".into(),
                    bytes: Bytes::from(loader::loader_conf(enroll).into_bytes()),
                    packed: false,
                    read_only: false,
                },
            ];
            if let Some(enrollment) = enrollment {
                files.extend(
                    enrollment
                        .key_files()
                        .into_iter()
                        .map(|(path, bytes)| FatFile {
                            path,
                            bytes,
                            packed: false,
                            read_only: false,
                        }),
                );
            }
            files
        }
    };
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

/// The XFS BOOT partition GRUB boots from.
fn boot_partition(disk: &DiskInputs, size: u64) -> Result<SparseImage, EngineError> {
    let reset = disk.bootloader == Bootloader::DualBoot || disk.version.at_least(1, 4, 0);
    let config = grub::grub_cfg(&disk.version.tag(), &disk.cmdline, reset);
    xfs::build(
        &XfsOptions {
            size,
            sector_size: disk.sector_size,
            label: "BOOT".into(),
            uuid: gpt::guid_from_label("BOOT"),
            mtime: disk.mtime,
        },
        &[XfsDir {
            path: "grub".into(),
            mode: 0o700,
        }],
        &[
            XfsFile {
                path: "A/vmlinuz".into(),
                bytes: disk.kernel.clone(),
                mode: 0o644,
                packed: true,
            },
            XfsFile {
                path: "A/initramfs.xz".into(),
                bytes: disk.initramfs.clone(),
                mode: 0o644,
                packed: true,
            },
            XfsFile {
                path: "grub/grub.cfg".into(),
                bytes: Bytes::from(config.into_bytes()),
                mode: 0o600,
                packed: false,
            },
        ],
    )
}

/// Partitions placed one after another from `start` (bytes), in LBAs of `sector`.
fn allocate(
    sector: u64,
    start: u64,
    parts: &[(&'static str, &'static str, u64, u64)],
) -> Vec<gpt::Partition> {
    let mut start = start;
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

/// The boot code area of the protective MBR.
const MBR_CODE: usize = 446;

/// The board's bytes in the MBR's boot code area (zero without an overlay).
fn board_mbr_code(overlay: Option<&DiskOverlay>) -> [u8; MBR_CODE] {
    let mut code = [0u8; MBR_CODE];
    for (offset, bytes) in overlay.iter().flat_map(|overlay| &overlay.raw) {
        // What lies past the code area is the partition table's, or the disk's.
        let Ok(start) = usize::try_from(*offset) else {
            continue;
        };
        overwrite(code.iter_mut().skip(start), bytes);
    }
    code
}

/// Copies `bytes` over `slots`, as far as both go.
fn overwrite<'a>(slots: impl Iterator<Item = &'a mut u8>, bytes: &[u8]) {
    for (slot, byte) in slots.zip(bytes) {
        *slot = *byte;
    }
}

/// Byte ranges the table and the partitions own, sorted: the first sector (whose boot
/// code is copied in separately), the primary header, the primary and backup entries with
/// the backup header, every partition.
fn taken_ranges(
    sector: u64,
    disk_size: u64,
    gap: u64,
    partitions: &[gpt::Partition],
) -> Vec<(u64, u64)> {
    let entries = gpt::entry_sectors(sector) * sector;
    let backup = (disk_size / sector - 1) * sector - entries;
    let mut taken = vec![
        (0, 2 * sector),
        ((2 + gap) * sector, (2 + gap) * sector + entries),
        (backup, disk_size),
    ];
    taken.extend(partitions.iter().map(|partition| {
        (
            partition.first_lba * sector,
            (partition.last_lba + 1) * sector,
        )
    }));
    taken.sort_unstable();
    taken
}

/// The parts of `start..end` that no range of `taken` (sorted) covers.
fn outside(start: u64, end: u64, taken: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut free = Vec::new();
    let mut at = start;
    for &(from, to) in taken {
        if to <= at || from >= end {
            continue;
        }
        if from > at {
            free.push((at, from));
        }
        at = at.max(to);
    }
    if at < end {
        free.push((at, end));
    }
    free
}

/// GPT attribute bit 2: legacy BIOS bootable.
const LEGACY_BIOS_BOOTABLE: u64 = 1 << 2;
const STATE_SIZE: u64 = 100 * MIB;

/// The whole disk image for `disk.bootloader` (imager.md §5).
pub fn build(disk: &DiskInputs) -> Result<SparseImage, EngineError> {
    let sector = disk.sector_size;
    if !matches!(sector, 512 | 4096) {
        return Err(EngineError::InvalidInput(format!(
            "disk sector size {sector} is not supported (512 or 4096)"
        )));
    }
    let esp_bytes = esp_size(disk.bootloader, &disk.version);
    let meta_bytes = meta::PARTITION_SIZE as u64;
    let boot_bytes = boot_partition_size(&disk.version);
    let bios_bytes = grub::BIOS_PARTITION_SIZE as u64;
    let mut parts = vec![("EFI", gpt::ESP_TYPE, esp_bytes, 0)];
    if disk.bootloader != Bootloader::SdBoot {
        parts.push((
            "BIOS",
            gpt::BIOS_BOOT_TYPE,
            bios_bytes,
            LEGACY_BIOS_BOOTABLE,
        ));
        parts.push(("BOOT", gpt::LINUX_DATA_TYPE, boot_bytes, 0));
    }
    parts.push(("META", gpt::LINUX_DATA_TYPE, meta_bytes, 0));
    // Before 1.8 the image also carried empty STATE and EPHEMERAL partitions.
    let legacy = disk.bootloader == Bootloader::Grub && !disk.version.at_least(1, 8, 0);
    if legacy {
        parts.push(("STATE", gpt::LINUX_DATA_TYPE, STATE_SIZE, 0));
    }
    let gap = disk.overlay.as_ref().map_or(0, |overlay| overlay.gap_lbas);
    // The first partition starts at 1 MiB, or after a board's gap rounded up to 1 MiB.
    let first_start = (gpt::first_usable_lba(sector, gap) * sector).div_ceil(MIB) * MIB;
    let used: u64 = first_start + parts.iter().map(|part| part.2).sum::<u64>();
    // Room for the backup table (32 sectors of 512 or 4 of 4096, plus the header) too.
    if disk.disk_size < used + MIB {
        return Err(EngineError::InvalidInput(format!(
            "disk size {} is smaller than the {} bytes the partitions need",
            disk.disk_size,
            used + MIB
        )));
    }
    let mut partitions = allocate(sector, first_start, &parts);
    if legacy {
        let last_lba = disk.disk_size / sector - 1;
        let entry_sectors = 128 * 128 / sector;
        partitions.push(gpt::Partition {
            name: "EPHEMERAL",
            type_guid: gpt::LINUX_DATA_TYPE,
            first_lba: used / sector,
            last_lba: last_lba - entry_sectors - 1,
            attributes: 0,
        });
    }
    let offset_of = |name: &str| -> u64 {
        partitions
            .iter()
            .find(|partition| partition.name == name)
            .map(|partition| partition.first_lba * sector)
            .unwrap_or(0)
    };

    let mut image = SparseImage::new(disk.disk_size);
    let bios = match (&disk.bios, disk.bootloader) {
        (Some(bios), Bootloader::DualBoot | Bootloader::Grub) => Some(grub::install_bios(
            &bios.boot_img,
            &bios.core_img,
            offset_of("BIOS") / sector,
            sector,
        )?),
        _ => None,
    };
    let mbr_code = board_mbr_code(disk.overlay.as_ref());
    for (offset, mut bytes) in gpt::write_with_gap(sector, disk.disk_size, &partitions, gap) {
        // The MBR's boot code area is GRUB's or the board's; the table writer leaves it be.
        if offset == 0 {
            overwrite(bytes.iter_mut(), &mbr_code);
            if let Some((code, _)) = &bios {
                overwrite(bytes.iter_mut(), code);
            }
        }
        image.put(offset, bytes)?;
    }
    if let Some(overlay) = &disk.overlay {
        let taken = taken_ranges(sector, disk.disk_size, gap, &partitions);
        for (offset, bytes) in &overlay.raw {
            for (start, end) in outside(*offset, *offset + bytes.len() as u64, &taken) {
                let from = (start - offset) as usize;
                let to = (end - offset) as usize;
                image.put(start, bytes.slice(from..to))?;
            }
        }
    }
    image.place(offset_of("EFI"), esp(disk, esp_bytes)?)?;
    if disk.bootloader != Bootloader::SdBoot {
        image.place(offset_of("BOOT"), boot_partition(disk, boot_bytes)?)?;
        if let Some((_, core)) = bios {
            image.put(offset_of("BIOS"), core)?;
        }
    }
    let mut values = disk.meta.clone();
    if disk.bootloader == Bootloader::DualBoot && disk.arch == Arch::Amd64 {
        values.push(MetaValue {
            key: 0x11,
            value: "dual-boot".into(),
        });
    }
    if !values.is_empty() {
        let mut adv = meta::partition(&values).map_err(EngineError::InvalidInput)?;
        // Both ADV copies; the rest of the partition stays a hole.
        adv.truncate(meta::PARTITION_SIZE / 2);
        image.put(offset_of("META"), adv)?;
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
    fn board_bytes_survive_only_where_nothing_else_is_written() {
        let taken = [(0, 1024), (10_486_784, 10_503_168), (11 * MIB, 111 * MIB)];
        assert_eq!(outside(32768, 40960, &taken), [(32768, 40960)]);
        assert_eq!(outside(0, 2048, &taken), [(1024, 2048)]);
        assert_eq!(
            outside(10 * MIB, 12 * MIB, &taken),
            [(10 * MIB, 10_486_784), (10_503_168, 11 * MIB)]
        );
        let overlay = DiskOverlay {
            raw: vec![(440, Bytes::from_static(&[7; 16]))],
            ..DiskOverlay::default()
        };
        let code = board_mbr_code(Some(&overlay));
        assert_eq!(code[440..], [7; 6]);
        assert_eq!(code[..440], [0; 440]);
    }

    #[test]
    fn partitions_start_at_one_mebibyte_and_touch() {
        let parts = allocate(
            512,
            MIB,
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
        let parts = allocate(4096, MIB, &[("EFI", gpt::ESP_TYPE, 2101 * MIB, 0)]);
        assert_eq!(
            (parts[0].first_lba, parts[0].last_lba),
            (256, 256 + 2101 * 256 - 1)
        );
    }
}
