//! GRUB without GRUB's tools, by concept:
//!
//! - [`modules`]: the module lists each image embeds, their order through `moddep.lst`, and
//!   the module area every core image carries;
//! - [`bios`]: the i386-pc `core.img` (and its El Torito variant) and the boot-sector patches;
//! - [`efi`]: the EFI application (`BOOTX64.efi`/`BOOTAA64.efi`), linked from `kernel.img`;
//! - [`config`]: the `grub.cfg` text GRUB reads.

mod bios;
mod config;
mod efi;
mod modules;

pub use bios::{
    BIOS_PARTITION_SIZE, BLOCKLIST_LENGTH, BLOCKLIST_SEGMENT, BLOCKLIST_START, BOOT_DRIVE_CHECK,
    BOOT_KERNEL_SECTOR, CDBOOT_SIZE, DECOMPRESSOR_COMPRESSED_SIZE, DECOMPRESSOR_UNCOMPRESSED_SIZE,
    KERNEL_LINK_ADDR, MAX_DECOMPRESSOR_SIZE, MBR_BOOT_CODE_SIZE, bios_core_image,
    bios_core_image_with_config, bios_core_payload, eltorito_image, install_bios,
};
pub use config::{grub_cfg, iso_grub_cfg, quote};
pub use efi::{EfiArch, PE_TIMESTAMP, efi_image};
pub use modules::{
    BIOS_EXTRA_MODULES, BIOS_MODULES, COMMON_MODULES, ISO_BIOS_MODULES, ISO_EFI_EXTRA_MODULES,
    ISO_EFI_MODULES, ISO_EFI_PREFIX, ISO_MODULES, ISO_PREFIX, MODULE_MAGIC, OBJ_TYPE_CONFIG,
    OBJ_TYPE_ELF, OBJ_TYPE_PREFIX, PREFIX, resolve_modules,
};

use crate::engine::EngineError;

fn missing_in(files: &'static str, what: &str) -> EngineError {
    EngineError::MissingFile {
        what: files,
        file: what.to_string(),
    }
}

fn invalid_in(files: &'static str, reason: String) -> EngineError {
    EngineError::BrokenFile {
        what: files,
        reason,
    }
}

fn too_big(reason: String) -> EngineError {
    EngineError::BrokenFile {
        what: "GRUB core.img",
        reason,
    }
}

fn size_u32(value: usize, what: &str) -> Result<u32, EngineError> {
    u32::try_from(value).map_err(|_| too_big(format!("{what} of {value} bytes")))
}

/// A NUL would end the prefix early at run time.
fn check_prefix(prefix: &str) -> Result<(), EngineError> {
    if prefix.contains('\0') {
        return Err(EngineError::InvalidInput(
            "GRUB prefix contains a NUL byte".into(),
        ));
    }
    Ok(())
}
