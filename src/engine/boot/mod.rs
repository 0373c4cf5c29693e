//! What boots an image: the bootloader choice and the pieces each bootloader needs (GRUB
//! images, UKIs over the PE module, the META partition, Secure Boot signatures and
//! enrollment databases). Layouts put these pieces on file systems; nothing here knows a
//! partition table.

pub mod authenticode;
pub mod enrollment;
pub mod grub;
pub mod loader;
pub mod meta;
pub mod pcr;
pub mod pe;
pub mod uki;

use crate::profile::{Arch, TalosVersion};
use crate::schematic::Bootloader as Requested;

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

/// GRUB for legacy BIOS: the release's `boot.img` and a `core.img` built for the disk.
#[derive(Debug, Clone)]
pub struct BiosGrub {
    pub boot_img: Vec<u8>,
    pub core_img: Vec<u8>,
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
}
