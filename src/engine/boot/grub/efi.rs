//! GRUB's EFI application (`BOOTX64.efi`/`BOOTAA64.efi`) without GRUB's tools.
//!
//! For EFI targets `grub-mkimage` is a small linker: `kernel.img` is a relocatable ELF64
//! object, and the image is a PE32+ application whose sections are that object's sections
//! laid out and relocated for image base 0:
//!
//! - the first page (0x1000 bytes) holds the headers: the MS-DOS stub, `PE\0\0`, the COFF
//!   header (timestamp fixed at 2015-01-01, 1420070400), the PE32+ optional header with its
//!   16 data directories, and 4 section headers. File alignment = section alignment = 4096,
//!   so every RVA is also the file offset.
//! - `.text` at 0x1000: the ELF code sections (`SHF_ALLOC|SHF_EXECINSTR`) in section-table
//!   order, each at its `sh_addralign` (counted from RVA 0), padded to a page.
//! - `.data`: the other allocated sections (data, then `SHT_NOBITS` ones stored as zeros), the
//!   end padded to a page; arm64 then adds a GOT (8 bytes per `ADR_GOT_PAGE` relocation,
//!   16-byte aligned) and pads to a page again.
//! - `mods`: the module area, as in i386-pc but with 64-bit `grub_module_info64` and 8-byte
//!   padding, padded to a page.
//! - `.reloc`: PE base relocation blocks, one `DIR64` entry per absolute 64-bit relocation (and
//!   per GOT slot), in relocation-table order; a block ends when an address leaves its 4 KiB
//!   page (padded to 8 bytes with zero entries) and the last block is padded with zero
//!   entries up to a page.
//!
//! The entry point is the first `_start`/`start` symbol. GRUB 2.06 ignores `--compression` for
//! EFI targets (only platforms with a decompressor compress), so there is nothing to compress.

use super::modules::{load_modules, module_area};
use super::{check_prefix, missing_in};
use crate::engine::EngineError;
use crate::engine::boot::pe::{
    self, COFF_HEADER_SIZE, DIRECTORY_BASE_RELOCATION, DOS_STUB_SIZE, PE32_PLUS, SCN_CODE,
    SCN_DISCARDABLE, SCN_EXECUTE, SCN_INITIALIZED_DATA, SCN_READ, SCN_WRITE, SECTION_HEADER_SIZE,
    SUBSYSTEM_EFI_APPLICATION, SectionHeader, coff, dos_stub, optional, put_u16, put_u32, put_u64,
};
use crate::engine::elf::{EM_AARCH64, EM_X86_64};
use crate::profile::Arch;

mod link;

use link::{Linked, link};

/// The two EFI platforms Talos ships GRUB for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EfiArch {
    X86_64,
    Arm64,
}

impl EfiArch {
    /// The directory under `/usr/lib/grub` and `grub-mkimage -O`'s name for it.
    pub fn platform(self) -> &'static str {
        match self {
            EfiArch::X86_64 => "x86_64-efi",
            EfiArch::Arm64 => "arm64-efi",
        }
    }

    /// The removable-media loader path on the ESP (imager.md §5.3).
    pub fn esp_path(self) -> &'static str {
        match self {
            EfiArch::X86_64 => "EFI/boot/BOOTX64.efi",
            EfiArch::Arm64 => "EFI/boot/BOOTAA64.efi",
        }
    }

    fn pe_machine(self) -> u16 {
        match self {
            EfiArch::X86_64 => pe::MACHINE_X86_64,
            EfiArch::Arm64 => pe::MACHINE_ARM64,
        }
    }

    fn elf_machine(self) -> u16 {
        match self {
            EfiArch::X86_64 => EM_X86_64,
            EfiArch::Arm64 => EM_AARCH64,
        }
    }

    fn files(self) -> &'static str {
        match self {
            EfiArch::X86_64 => "GRUB x86_64-efi files",
            EfiArch::Arm64 => "GRUB arm64-efi files",
        }
    }
}

impl From<Arch> for EfiArch {
    fn from(arch: Arch) -> EfiArch {
        match arch {
            Arch::Amd64 => EfiArch::X86_64,
            Arch::Arm64 => EfiArch::Arm64,
        }
    }
}

/// Headers fill the first page; the kernel's RVAs start after it.
const HEADER_SIZE: u64 = 0x1000;
const PAGE: u64 = 0x1000;
const COFF_HEADER: usize = DOS_STUB_SIZE + 4;
const OPTIONAL_HEADER: usize = COFF_HEADER + COFF_HEADER_SIZE;
const OPTIONAL_HEADER_SIZE: usize = 240;
const SECTION_TABLE: usize = OPTIONAL_HEADER + OPTIONAL_HEADER_SIZE;
const SECTIONS: usize = 4;
/// `STABLE_EMBEDDING_TIMESTAMP` of grub-mkimage: 2015-01-01T00:00:00Z.
pub const PE_TIMESTAMP: u32 = 1_420_070_400;
/// Executable, line numbers, local symbols and debug information stripped.
const COFF_CHARACTERISTICS: u16 = 0x0002 | 0x0004 | 0x0008 | 0x0200;
const STACK_AND_HEAP_SIZE: u64 = 0x10000;
const DATA_DIRECTORIES: u32 = 16;

fn align_up(value: u64, alignment: u64) -> u64 {
    value.div_ceil(alignment) * alignment
}

fn too_big(reason: String) -> EngineError {
    EngineError::BrokenFile {
        what: "GRUB EFI image",
        reason,
    }
}

fn to_u32(value: u64, what: &str) -> Result<u32, EngineError> {
    u32::try_from(value)
        .map_err(|_| too_big(format!("{what} of {value:#x} does not fit a PE image")))
}

struct PeSection {
    name: &'static str,
    virtual_size: u64,
    rva: u64,
    raw_size: u64,
    characteristics: u32,
}

/// The PE32+ file: headers, `.text` + `.data` (the linked kernel), `mods`, `.reloc`.
// Writes a buffer it sized itself from the linked image, the module area and the relocations.
#[allow(clippy::indexing_slicing)]
fn pe_image(arch: EfiArch, linked: &Linked, area: &[u8]) -> Result<Vec<u8>, EngineError> {
    let kernel_size = linked.image.len() as u64;
    let core_size = kernel_size + area.len() as u64;
    let reloc_size = linked.relocs.len() as u64;
    let pe_size = align_up(HEADER_SIZE + core_size, PAGE) + align_up(reloc_size, PAGE);
    let image_size = to_u32(pe_size, "image size")?;
    let mut pe = vec![0u8; pe_size as usize];
    let header = HEADER_SIZE as usize;
    pe[header..header + linked.image.len()].copy_from_slice(&linked.image);
    pe[header + linked.image.len()..header + linked.image.len() + area.len()].copy_from_slice(area);
    let reloc_at = (pe_size - reloc_size) as usize;
    pe[reloc_at..].copy_from_slice(&linked.relocs);

    let data_raw = kernel_size - linked.exec_size;
    let mods_raw = pe_size - reloc_size - HEADER_SIZE - kernel_size;
    let sections = [
        PeSection {
            name: ".text",
            virtual_size: linked.exec_size,
            rva: HEADER_SIZE,
            raw_size: linked.exec_size,
            characteristics: SCN_CODE | SCN_EXECUTE | SCN_READ,
        },
        PeSection {
            name: ".data",
            virtual_size: align_up(data_raw, PAGE),
            rva: HEADER_SIZE + linked.exec_size,
            raw_size: data_raw,
            characteristics: SCN_INITIALIZED_DATA | SCN_READ | SCN_WRITE,
        },
        PeSection {
            name: "mods",
            virtual_size: align_up(mods_raw, PAGE),
            rva: HEADER_SIZE + kernel_size,
            raw_size: mods_raw,
            characteristics: SCN_INITIALIZED_DATA | SCN_READ | SCN_WRITE,
        },
        PeSection {
            name: ".reloc",
            virtual_size: align_up(reloc_size, PAGE),
            rva: HEADER_SIZE + kernel_size + align_up(mods_raw, PAGE),
            raw_size: reloc_size,
            characteristics: SCN_INITIALIZED_DATA | SCN_DISCARDABLE | SCN_READ,
        },
    ];
    debug_assert_eq!(SECTIONS, sections.len());

    pe[..DOS_STUB_SIZE].copy_from_slice(&dos_stub());
    pe[DOS_STUB_SIZE..COFF_HEADER].copy_from_slice(pe::SIGNATURE);
    put_u16(&mut pe, COFF_HEADER + coff::MACHINE, arch.pe_machine());
    put_u16(
        &mut pe,
        COFF_HEADER + coff::NUMBER_OF_SECTIONS,
        SECTIONS as u16,
    );
    put_u32(&mut pe, COFF_HEADER + coff::TIME_DATE_STAMP, PE_TIMESTAMP);
    put_u16(
        &mut pe,
        COFF_HEADER + coff::SIZE_OF_OPTIONAL_HEADER,
        OPTIONAL_HEADER_SIZE as u16,
    );
    put_u16(
        &mut pe,
        COFF_HEADER + coff::CHARACTERISTICS,
        COFF_CHARACTERISTICS,
    );

    let o = OPTIONAL_HEADER;
    put_u16(&mut pe, o + optional::MAGIC, PE32_PLUS);
    put_u32(
        &mut pe,
        o + optional::SIZE_OF_CODE,
        to_u32(linked.exec_size, "code size")?,
    );
    // Initialized data counts `.data` and `mods`, each rounded to a page.
    let data_size = align_up(data_raw, PAGE) + align_up(area.len() as u64, PAGE);
    put_u32(
        &mut pe,
        o + optional::SIZE_OF_INITIALIZED_DATA,
        to_u32(data_size, "data size")?,
    );
    put_u32(
        &mut pe,
        o + optional::ADDRESS_OF_ENTRY_POINT,
        to_u32(linked.entry, "entry point")?,
    );
    put_u32(&mut pe, o + optional::BASE_OF_CODE, HEADER_SIZE as u32);
    // Image base 0: the firmware always relocates.
    put_u32(&mut pe, o + optional::SECTION_ALIGNMENT, PAGE as u32);
    put_u32(&mut pe, o + optional::FILE_ALIGNMENT, PAGE as u32);
    put_u32(&mut pe, o + optional::SIZE_OF_IMAGE, image_size);
    put_u32(&mut pe, o + optional::SIZE_OF_HEADERS, HEADER_SIZE as u32);
    put_u16(&mut pe, o + optional::SUBSYSTEM, SUBSYSTEM_EFI_APPLICATION);
    for field in 0..4 {
        put_u64(
            &mut pe,
            o + optional::STACK_AND_HEAP + 8 * field,
            STACK_AND_HEAP_SIZE,
        );
    }
    put_u32(
        &mut pe,
        o + optional::NUMBER_OF_RVA_AND_SIZES,
        DATA_DIRECTORIES,
    );
    let directory = o + optional::DATA_DIRECTORIES + 8 * DIRECTORY_BASE_RELOCATION;
    put_u32(
        &mut pe,
        directory,
        to_u32(sections[3].rva, "relocation table")?,
    );
    put_u32(
        &mut pe,
        directory + 4,
        to_u32(sections[3].virtual_size, "relocation table")?,
    );

    let mut raw = HEADER_SIZE;
    for (index, section) in sections.iter().enumerate() {
        SectionHeader {
            name: SectionHeader::name_bytes(section.name),
            virtual_size: to_u32(section.virtual_size, "section size")?,
            virtual_address: to_u32(section.rva, "section address")?,
            raw_size: to_u32(section.raw_size, "section size")?,
            raw_offset: to_u32(raw, "section offset")?,
            characteristics: section.characteristics,
        }
        .write(&mut pe, SECTION_TABLE + index * SECTION_HEADER_SIZE);
        raw += section.raw_size;
    }
    Ok(pe)
}

/// `grub-mkimage -O x86_64-efi|arm64-efi -p <prefix> <modules>` equivalent: a PE32+ EFI
/// application. `files(name)` returns the bytes of `/usr/lib/grub/<platform>/<name>`
/// (`kernel.img`, `*.mod`, `moddep.lst`). Resolves dependencies through `moddep.lst`.
pub fn efi_image(
    arch: EfiArch,
    files: &dyn Fn(&str) -> Option<Vec<u8>>,
    prefix: &str,
    modules: &[&str],
) -> Result<Vec<u8>, EngineError> {
    check_prefix(prefix)?;
    let loaded = load_modules(files, modules, arch.files())?;
    let kernel = files("kernel.img").ok_or_else(|| missing_in(arch.files(), "kernel.img"))?;
    let linked = link(&kernel, arch)?;
    let area = module_area(&loaded, None, prefix, 8)?;
    pe_image(arch, &linked, &area)
}

#[cfg(test)]
mod tests;
