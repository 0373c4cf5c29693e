//! ISO images (imager.md §6): ISO 9660 with El Torito, booting UEFI through systemd-boot on
//! an appended ESP and, on the hybrid ISO, BIOS through GRUB, from a CD or written to a disk.

use crate::engine::EngineError;
use crate::engine::boot::loader::{self, EnrollKeys, Enrollment};
use crate::engine::boot::{Bootloader, grub};
use crate::engine::fs::fat::{self, FatFile, FatOptions};
use crate::engine::fs::gpt;
use crate::engine::fs::iso9660::eltorito::{self, CatalogEntry, Platform};
use crate::engine::fs::iso9660::{self, BLOCK, IsoFile, Layout, Placement, Volume};
use crate::format::SparseImage;
use crate::profile::{Arch, MIB, TalosVersion};
use crate::schematic::Bootloader as Requested;
use bytes::Bytes;

/// How an ISO boots (imager.md §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IsoBoot {
    /// GRUB for BIOS (El Torito and hybrid MBR), systemd-boot for UEFI on an appended ESP.
    Hybrid,
    /// systemd-boot for UEFI only.
    Uefi,
    /// GRUB for BIOS (amd64) and for UEFI on the appended ESP.
    Grub,
}

impl IsoBoot {
    pub fn select(
        requested: Requested,
        secureboot: bool,
        arch: Arch,
        version: &TalosVersion,
    ) -> IsoBoot {
        let boot = if secureboot {
            IsoBoot::Uefi
        } else if version.at_least(1, 12, 0) {
            match Bootloader::select(requested, false, arch, version) {
                Bootloader::DualBoot => IsoBoot::Hybrid,
                Bootloader::SdBoot => IsoBoot::Uefi,
                Bootloader::Grub => IsoBoot::Grub,
            }
        } else if version.at_least(1, 10, 0) {
            IsoBoot::Hybrid
        } else {
            IsoBoot::Grub
        };
        // BIOS does not exist on arm64: its hybrid ISO is the UEFI part alone.
        if boot == IsoBoot::Hybrid && arch == Arch::Arm64 {
            IsoBoot::Uefi
        } else {
            boot
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IsoBoot::Hybrid => "hybrid",
            IsoBoot::Uefi => "uefi",
            IsoBoot::Grub => "grub",
        }
    }
}

/// GRUB for BIOS on a hybrid ISO: the El Torito image (`cdboot.img` + core) and the MBR boot
/// code used when the ISO is written to a disk.
#[derive(Debug, Clone)]
pub struct BiosEltorito {
    pub eltorito_img: Vec<u8>,
    pub boot_hybrid_img: Vec<u8>,
}

/// Everything an ISO holds.
#[derive(Debug, Clone)]
pub struct IsoInputs {
    pub arch: Arch,
    pub version: TalosVersion,
    pub boot: IsoBoot,
    pub kernel: Bytes,
    pub initramfs: Bytes,
    pub cmdline: String,
    /// systemd-boot and the UKI with the ISO's reset profile (hybrid and UEFI-only).
    pub sd_boot: Bytes,
    pub uki: Bytes,
    /// GRUB's EFI application, finding `/boot/grub` on the medium it was loaded from (GRUB).
    pub grub_efi: Bytes,
    /// GRUB for BIOS: required for hybrid ISOs and amd64 GRUB ISOs.
    pub bios: Option<BiosEltorito>,
    /// Secure Boot (UEFI-only ISOs): the keys systemd-boot enrolls, and how.
    pub enrollment: Option<Enrollment>,
    /// Unix time of every file and of the volume.
    pub mtime: u32,
}

/// The smallest ESP our FAT32 writer (like mtools) accepts: 65525 clusters of 512 bytes.
const MIN_ESP_SIZE: u64 = 34 * MIB;
/// xorriso's `-partition_cyl_align all` with 64 heads and 32 sectors: 1 MiB cylinders.
const CYLINDER: u64 = MIB;
/// The GPT type xorriso gives the ISO 9660 partition (basic data), and its attributes:
/// required (bit 0) and read-only (bit 60).
const BASIC_DATA_TYPE: &str = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";
const ISO_PARTITION_ATTRIBUTES: u64 = 0x1000_0000_0000_0001;
/// MBR types of `-iso_mbr_part_type 0x83` and the appended ESP.
const MBR_LINUX: u8 = 0x83;
const MBR_ESP: u8 = 0xEF;
/// A backup GPT: 32 sectors of entries and the header.
const BACKUP_GPT_BYTES: u64 = 33 * 512;

/// The ISO 9660 volume id for a version: `Talos-<version>` upper-cased, `-`, `.` and `_` as
/// `_`, other characters outside `[A-Z0-9]` dropped, at most 32 characters.
pub fn volume_id(version: &str) -> String {
    format!("Talos-{version}")
        .to_ascii_uppercase()
        .chars()
        .filter_map(|c| match c {
            '-' | '.' | '_' => Some('_'),
            'A'..='Z' | '0'..='9' => Some(c),
            _ => None,
        })
        .take(32)
        .collect()
}

/// `loader/loader.conf` on an ISO: always a `secure-boot-enroll` line, `off` without Secure
/// Boot.
pub fn loader_conf(enrollment: Option<&Enrollment>) -> String {
    loader::loader_conf(Some(enrollment.map_or(EnrollKeys::Off, |keys| keys.mode)))
}

fn efi_loader_name(arch: Arch) -> &'static str {
    match arch {
        Arch::Amd64 => "EFI/BOOT/BOOTX64.EFI",
        Arch::Arm64 => "EFI/BOOT/BOOTAA64.EFI",
    }
}

/// The files of the ESP (the ISO tree has systemd-boot's too).
fn uefi_files(iso: &IsoInputs) -> Vec<(String, Bytes, bool, bool)> {
    if iso.boot == IsoBoot::Grub {
        return vec![(
            efi_loader_name(iso.arch).into(),
            iso.grub_efi.clone(),
            false,
            false,
        )];
    }
    let mut files = vec![
        (
            efi_loader_name(iso.arch).into(),
            iso.sd_boot.clone(),
            false,
            false,
        ),
        (
            format!("EFI/Linux/Talos-{}.efi", iso.version.tag()),
            iso.uki.clone(),
            true,
            false,
        ),
        (
            "loader/loader.conf".into(),
            Bytes::from(loader_conf(iso.enrollment.as_ref()).into_bytes()),
            false,
            false,
        ),
        // Read-only, or systemd-boot 261+ tries to rewrite it on read-only media.
        (
            "loader/random-seed".into(),
            Bytes::from_static(&[0u8; 32]),
            false,
            true,
        ),
    ];
    if let Some(enrollment) = &iso.enrollment {
        let (path, bytes) = enrollment.certificate_file();
        files.push((path, bytes, false, false));
        for (path, bytes) in enrollment.key_files() {
            files.push((path, bytes, false, false));
        }
    }
    files
}

/// `efiboot.img` of imager.md §6.4: 10 MiB plus sd-boot and the UKI (or GRUB) rounded up to
/// MiB.
fn esp(iso: &IsoInputs) -> Result<SparseImage, EngineError> {
    let mib = |bytes: &Bytes| (bytes.len() as u64).div_ceil(MIB) * MIB;
    let size =
        (10 * MIB + mib(&iso.sd_boot) + mib(&iso.uki) + mib(&iso.grub_efi)).max(MIN_ESP_SIZE);
    let files: Vec<FatFile> = uefi_files(iso)
        .into_iter()
        .map(|(path, bytes, packed, read_only)| FatFile {
            path,
            bytes,
            packed,
            read_only,
        })
        .collect();
    fat::build(
        &FatOptions {
            size,
            sector_size: 512,
            label: "EFI".into(),
            volume_id: fat::INVARIANT_VOLUME_ID,
            mtime: iso.mtime,
        },
        &files,
    )
}

/// An MBR partition entry addressed by LBA only (CHS fields saturated).
fn mbr_entry(kind: u8, first_lba: u64, sectors: u64) -> Result<[u8; 16], EngineError> {
    let field = |value: u64| {
        u32::try_from(value).map_err(|_| {
            EngineError::InvalidInput(format!("{value} sectors do not fit an MBR partition"))
        })
    };
    let mut entry = [0u8; 16];
    entry[1..4].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
    entry[4] = kind;
    entry[5..8].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
    entry[8..12].copy_from_slice(&field(first_lba)?.to_le_bytes());
    entry[12..16].copy_from_slice(&field(sectors)?.to_le_bytes());
    Ok(entry)
}

/// The whole ISO for `iso.boot`.
pub fn build(iso: &IsoInputs) -> Result<SparseImage, EngineError> {
    let wants_bios = match iso.boot {
        IsoBoot::Hybrid => true,
        IsoBoot::Grub => iso.arch == Arch::Amd64,
        IsoBoot::Uefi => false,
    };
    let bios = match (wants_bios, &iso.bios) {
        (true, None) => {
            return Err(EngineError::InvalidInput(format!(
                "a {} ISO for {} needs GRUB's El Torito image",
                iso.boot.as_str(),
                iso.arch
            )));
        }
        (true, Some(bios)) => Some(bios),
        (false, _) => None,
    };
    if iso.boot == IsoBoot::Grub && iso.grub_efi.is_empty() {
        return Err(EngineError::InvalidInput(
            "a GRUB ISO needs GRUB's EFI application".into(),
        ));
    }
    let esp = esp(iso)?;
    let esp_size = esp.size();

    let mut files = Vec::new();
    if bios.is_some() || iso.boot == IsoBoot::Grub {
        let reset = iso.version.at_least(1, 4, 0);
        files.extend([
            IsoFile {
                path: "boot/vmlinuz".into(),
                bytes: iso.kernel.clone(),
                packed: true,
            },
            IsoFile {
                path: "boot/initramfs.xz".into(),
                bytes: iso.initramfs.clone(),
                packed: true,
            },
            IsoFile {
                path: "boot/grub/grub.cfg".into(),
                bytes: Bytes::from(grub::iso_grub_cfg(&iso.cmdline, reset).into_bytes()),
                packed: false,
            },
        ]);
    }
    let eltorito_index = files.len();
    if let Some(bios) = bios {
        files.push(IsoFile {
            path: "boot/grub/i386-pc/eltorito.img".into(),
            bytes: Bytes::from(bios.eltorito_img.clone()),
            packed: false,
        });
    }
    // systemd-boot's files are also plain files of the tree, as the imager copies them.
    if iso.boot != IsoBoot::Grub {
        files.extend(
            uefi_files(iso)
                .into_iter()
                .map(|(path, bytes, packed, _)| IsoFile {
                    path,
                    bytes,
                    packed,
                }),
        );
    }

    let layout = Layout {
        partition_offset: true,
        bootable: true,
    };
    let placement = Placement::plan(&files, &layout)?;
    let fs_end = placement.end.div_ceil(CYLINDER) * CYLINDER;
    let esp_start = fs_end;
    let esp_end = esp_start + esp_size;
    let total = if bios.is_some() {
        (esp_end + BACKUP_GPT_BYTES).div_ceil(BLOCK) * BLOCK
    } else {
        esp_end
    };
    let block = |bytes: u64| {
        u32::try_from(bytes / BLOCK)
            .map_err(|_| EngineError::InvalidInput("the ISO is too big".into()))
    };

    let esp_entry = CatalogEntry {
        platform: Platform::Efi,
        lba: block(esp_start)?,
        load_sectors: u16::try_from(esp_size / 512).unwrap_or(0),
    };
    let mut entries = Vec::new();
    let mut mbr_code = None;
    if let Some(bios) = bios {
        // The El Torito image was pushed at `eltorito_index` above and placed with the rest.
        let placed = || EngineError::InvalidInput("the El Torito image was not placed".into());
        let lba = *placement.file_lbas.get(eltorito_index).ok_or_else(placed)?;
        let mut image = bios.eltorito_img.clone();
        eltorito::patch_grub2_boot_info(&mut image, lba)?;
        eltorito::patch_boot_info_table(&mut image, iso9660::SYSTEM_AREA_BLOCKS, lba)?;
        files.get_mut(eltorito_index).ok_or_else(placed)?.bytes = Bytes::from(image);
        mbr_code = Some(eltorito::grub2_mbr(&bios.boot_hybrid_img, lba)?);
        entries.push(CatalogEntry {
            platform: Platform::Bios,
            lba,
            // cdboot.img: one CD sector, which loads the rest itself.
            load_sectors: 4,
        });
    }
    entries.push(esp_entry);
    let catalog = eltorito::catalog(&entries)?;

    let volume = Volume {
        volume_id: volume_id(&iso.version.tag()),
        volume_set_id: format!("Talos-{}", iso.version.tag()),
        mtime: i64::from(iso.mtime),
    };
    let mut image = placement.write(&volume, &files, Some(&catalog), total - placement.end)?;
    image.place(esp_start, esp)?;

    let iso_partition = 64..placement.end / 512;
    if let Some(code) = mbr_code {
        let partitions = [
            gpt::Partition {
                name: "ISO9660",
                type_guid: BASIC_DATA_TYPE,
                first_lba: iso_partition.start,
                last_lba: iso_partition.end - 1,
                attributes: ISO_PARTITION_ATTRIBUTES,
            },
            gpt::Partition {
                name: "Appended2",
                type_guid: gpt::ESP_TYPE,
                first_lba: esp_start / 512,
                last_lba: esp_end / 512 - 1,
                attributes: 0,
            },
        ];
        for (offset, mut bytes) in gpt::write(512, total, &partitions) {
            if offset == 0 {
                for (slot, byte) in bytes.iter_mut().zip(&code) {
                    *slot = *byte;
                }
            }
            image.put(offset, bytes)?;
        }
    } else {
        let mut mbr = [0u8; 512];
        mbr[446..462].copy_from_slice(&mbr_entry(
            MBR_LINUX,
            iso_partition.start,
            iso_partition.end - iso_partition.start,
        )?);
        mbr[462..478].copy_from_slice(&mbr_entry(MBR_ESP, esp_start / 512, esp_size / 512)?);
        mbr[510..512].copy_from_slice(&[0x55, 0xAA]);
        image.put(0, mbr.to_vec())?;
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_ids() {
        assert_eq!(volume_id("v1.15.0"), "TALOS_V1_15_0");
        assert_eq!(volume_id("v1.12.0-alpha.1+x"), "TALOS_V1_12_0_ALPHA_1X");
        assert!(volume_id(&"v1.2.3-".repeat(10)).len() <= 32);
    }

    #[test]
    fn selection_follows_the_version_and_bootloader() {
        let v = |text: &str| {
            TalosVersion::new(semver::Version::parse(text.trim_start_matches('v')).unwrap())
        };
        let select = |requested, secureboot, arch, version: &str| {
            IsoBoot::select(requested, secureboot, arch, &v(version))
        };
        assert_eq!(
            select(Requested::None, false, Arch::Amd64, "v1.12.0"),
            IsoBoot::Hybrid
        );
        assert_eq!(
            select(Requested::None, false, Arch::Arm64, "v1.12.0"),
            IsoBoot::Uefi
        );
        assert_eq!(
            select(Requested::SdBoot, false, Arch::Amd64, "v1.12.0"),
            IsoBoot::Uefi
        );
        assert_eq!(
            select(Requested::Grub, false, Arch::Amd64, "v1.12.0"),
            IsoBoot::Grub
        );
        assert_eq!(
            select(Requested::None, true, Arch::Amd64, "v1.12.0"),
            IsoBoot::Uefi
        );
        assert_eq!(
            select(Requested::SdBoot, false, Arch::Amd64, "v1.11.0"),
            IsoBoot::Hybrid
        );
        assert_eq!(
            select(Requested::None, false, Arch::Amd64, "v1.9.6"),
            IsoBoot::Grub
        );
    }
}
