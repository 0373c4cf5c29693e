//! GRUB for legacy BIOS without GRUB's tools: the i386-pc `core.img` that `grub-mkimage`
//! would make, the `boot.img`/`core.img` patches that point them at the BIOS boot partition,
//! and the `grub.cfg` of imager.md §5.4.
//!
//! `core.img` is `diskboot.img` (one sector that loads the rest), then `lzma_decompress.img`
//! (real-mode start-up plus an LZMA decoder), then the LZMA-compressed payload: the loaded
//! image of `kernel.img` followed by a module area (modules in dependency order, then the
//! prefix).
//!
//! The EFI image (`BOOTX64.efi`/`BOOTAA64.efi`) is built by [`efi_image`], in `grub/efi.rs`.

mod efi;

pub use efi::{EfiArch, efi_image};

use crate::engine::EngineError;
use liblzma::stream::{Action, Filters, LzmaOptions, PRESET_EXTREME, Status, Stream};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Modules of imager.md §5.4 that every GRUB image carries.
pub const COMMON_MODULES: &[&str] = &[
    "part_gpt",
    "ext2",
    "fat",
    "xfs",
    "normal",
    "configfile",
    "linux",
    "boot",
    "search",
    "search_fs_uuid",
    "search_fs_file",
    "ls",
    "cat",
    "echo",
    "test",
    "help",
    "reboot",
    "halt",
    "all_video",
];

/// The i386-pc module list: [`COMMON_MODULES`] then `biosdisk part_msdos`.
pub const BIOS_MODULES: &[&str] = &[
    "part_gpt",
    "ext2",
    "fat",
    "xfs",
    "normal",
    "configfile",
    "linux",
    "boot",
    "search",
    "search_fs_uuid",
    "search_fs_file",
    "ls",
    "cat",
    "echo",
    "test",
    "help",
    "reboot",
    "halt",
    "all_video",
    "biosdisk",
    "part_msdos",
];

/// What GRUB images on an ISO need beyond the disk lists ([`BIOS_MODULES`] for the El
/// Torito image): every module its `grub.cfg` needs is linked in, so the ISO carries no
/// module directory.
pub const ISO_MODULES: &[&str] = &["iso9660"];

/// On an ISO, GRUB's root is the boot CD (or the disk it was written to).
pub const ISO_PREFIX: &str = "/boot/grub";

/// GRUB's EFI application on an ISO's ESP: `()` is the drive it was loaded from, without the
/// ESP's partition, which holds the ISO 9660 file system.
pub const ISO_EFI_PREFIX: &str = "()/boot/grub";
/// Modules the EFI application needs on an ISO beyond [`COMMON_MODULES`].
pub const ISO_EFI_EXTRA_MODULES: &[&str] = &["iso9660", "part_msdos"];

/// BOOT is always partition 3 of the disk GRUB was loaded from.
pub const PREFIX: &str = "(hd0,gpt3)/grub";

/// The BIOS boot partition is 1 MiB; `core.img` has to fit in it.
pub const BIOS_PARTITION_SIZE: usize = 1024 * 1024;

/// `kernel.img` is linked to run at this address; its sections are laid out relative to it.
pub const KERNEL_LINK_ADDR: u32 = 0x9000;
/// `diskboot.img` is loaded at 0x8000 and the decompressor at 0x8200, so the decompressor
/// must end before the kernel's link address.
pub const MAX_DECOMPRESSOR_SIZE: usize = (KERNEL_LINK_ADDR - 0x8200) as usize;
/// The compressed image is loaded below 0x78000 (conventional memory GRUB may use).
const CORE_LOAD_LIMIT: usize = 0x78000;
/// The kernel with its BSS runs below 0x68000.
const KERNEL_RUN_LIMIT: usize = 0x68000;

/// Offsets in `lzma_decompress.img` (and so at 0x200 in `core.img`).
pub const DECOMPRESSOR_COMPRESSED_SIZE: usize = 0x08;
pub const DECOMPRESSOR_UNCOMPRESSED_SIZE: usize = 0x0C;

/// `diskboot.img`'s first blocklist entry, at the end of its sector: LE64 start sector,
/// LE16 sector count, LE16 load segment.
pub const BLOCKLIST_START: usize = 0x1F4;
pub const BLOCKLIST_LENGTH: usize = 0x1FC;
pub const BLOCKLIST_SEGMENT: usize = 0x1FE;
/// The rest of core.img is loaded right after diskboot.img at 0x8000, i.e. segment 0x820.
const BLOCKLIST_SEGMENT_VALUE: u16 = 0x820;

/// `boot.img` fields: LE64 sector of diskboot.img, and the jump over the boot-drive check
/// that must become two NOPs on hard disks whose BIOS passes a bogus drive number.
pub const BOOT_KERNEL_SECTOR: usize = 0x5C;
pub const BOOT_DRIVE_CHECK: usize = 0x66;
/// Boot code ends where the MBR partition table starts.
pub const MBR_BOOT_CODE_SIZE: usize = 446;

/// `grub_module_info32` magic ("mimg" little-endian).
pub const MODULE_MAGIC: u32 = 0x676D_696D;
/// Module header types of the module area.
pub const OBJ_TYPE_ELF: u32 = 0;
pub const OBJ_TYPE_CONFIG: u32 = 2;
pub const OBJ_TYPE_PREFIX: u32 = 3;

const SECTOR: usize = 512;

/// The decoder in `lzma_decompress.img` is built with fixed properties lc=3, lp=0, pb=2 and
/// takes a raw stream (no header); it stops after the uncompressed size, so the end marker
/// liblzma's raw LZMA1 encoder always writes is never read.
const LZMA_LC: u32 = 3;
const LZMA_LP: u32 = 0;
const LZMA_PB: u32 = 2;
/// The decoder writes into one flat buffer, so any distance back into the output is fine; a
/// dictionary covering the whole payload compresses best.
const LZMA_DICT_SIZE: u32 = 1 << 20;

const BIOS_FILES: &str = "GRUB i386-pc files";
/// `moddep.lst` problems are the same whatever the platform.
const MODULE_FILES: &str = "GRUB modules";

fn missing_in(files: &'static str, what: &str) -> EngineError {
    EngineError::Io {
        what: files,
        reason: format!("{what} is missing"),
    }
}

fn invalid_in(files: &'static str, reason: String) -> EngineError {
    EngineError::Io {
        what: files,
        reason,
    }
}

fn missing(what: &str) -> EngineError {
    missing_in(BIOS_FILES, what)
}

fn invalid_file(reason: String) -> EngineError {
    invalid_in(BIOS_FILES, reason)
}

fn too_big(reason: String) -> EngineError {
    EngineError::Io {
        what: "GRUB core.img",
        reason,
    }
}

fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn put_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

fn size_u32(value: usize, what: &str) -> Result<u32, EngineError> {
    u32::try_from(value).map_err(|_| too_big(format!("{what} of {value} bytes")))
}

/// `kernel.img` as loaded: its PROGBITS sections copied to their link addresses, BSS left
/// out (the kernel clears it itself).
#[derive(Debug, Clone, PartialEq, Eq)]
struct LoadedKernel {
    image: Vec<u8>,
    bss_size: usize,
}

const SHT_PROGBITS: u32 = 1;
const SHT_NOBITS: u32 = 8;
const SHF_ALLOC: u32 = 2;
const SHF_EXECINSTR: u32 = 4;

#[derive(Debug, Clone, Copy)]
struct SectionHeader {
    kind: u32,
    flags: u32,
    addr: u32,
    offset: u32,
    size: u32,
}

fn load_kernel(elf: &[u8]) -> Result<LoadedKernel, EngineError> {
    let bad = |reason: &str| invalid_file(format!("kernel.img: {reason}"));
    // ELF32, little-endian, current version: what GRUB's i386-pc build always produces.
    if elf.get(0..4) != Some(b"\x7fELF".as_slice())
        || elf.get(4) != Some(&1)
        || elf.get(5) != Some(&1)
        || elf.get(6) != Some(&1)
        || le_u32(elf, 0x14) != Some(1)
    {
        return Err(bad("not a little-endian ELF32 file"));
    }
    let truncated = || bad("truncated section table");
    let shoff = le_u32(elf, 0x20).ok_or_else(truncated)? as usize;
    let shentsize = usize::from(le_u16(elf, 0x2E).ok_or_else(truncated)?);
    let shnum = usize::from(le_u16(elf, 0x30).ok_or_else(truncated)?);
    if shentsize < 40 {
        return Err(bad("section headers are too small"));
    }
    let mut sections = Vec::with_capacity(shnum);
    for index in 0..shnum {
        let at = index
            .checked_mul(shentsize)
            .and_then(|o| o.checked_add(shoff))
            .ok_or_else(truncated)?;
        let field = |offset: usize| le_u32(elf, at + offset).ok_or_else(truncated);
        sections.push(SectionHeader {
            kind: field(4)?,
            flags: field(8)?,
            addr: field(12)?,
            offset: field(16)?,
            size: field(20)?,
        });
    }

    let is_text = |s: &SectionHeader| {
        s.kind == SHT_PROGBITS && s.flags & (SHF_ALLOC | SHF_EXECINSTR) == SHF_ALLOC | SHF_EXECINSTR
    };
    let is_data = |s: &SectionHeader| {
        s.kind == SHT_PROGBITS && s.flags & (SHF_ALLOC | SHF_EXECINSTR) == SHF_ALLOC
    };
    let relative = |s: &SectionHeader| {
        s.addr
            .checked_sub(KERNEL_LINK_ADDR)
            .map(|a| a as usize)
            .ok_or_else(|| {
                bad(&format!(
                    "section at {:#x} is below the link address",
                    s.addr
                ))
            })
    };

    // Text first, then data, each at its link address; the image ends where the last one
    // placed ends (grub-mkimage's layout for a kernel that is not relocated).
    let mut placed = Vec::new();
    let mut end = 0usize;
    let mut first_text = true;
    for section in sections.iter().filter(|s| is_text(s)) {
        if first_text && section.addr != KERNEL_LINK_ADDR {
            return Err(bad(&format!(
                "code starts at {:#x}, not at {KERNEL_LINK_ADDR:#x}",
                section.addr
            )));
        }
        first_text = false;
        let at = relative(section)?;
        end = at + section.size as usize;
        placed.push((at, *section));
    }
    if first_text {
        return Err(bad("no code section"));
    }
    for section in sections.iter().filter(|s| is_data(s)) {
        let at = relative(section)?;
        end = at + section.size as usize;
        placed.push((at, *section));
    }
    // Checked before allocating: nothing larger could run below 0x68000 anyway.
    if end > KERNEL_RUN_LIMIT {
        return Err(too_big(format!("kernel image is too big ({end:#x} bytes)")));
    }
    let mut bss_end = end;
    for section in sections.iter().filter(|s| s.kind == SHT_NOBITS) {
        bss_end = relative(section)? + section.size as usize;
    }

    let mut image = vec![0u8; end];
    for (at, section) in placed {
        let from = section.offset as usize;
        let bytes = elf
            .get(from..from + section.size as usize)
            .ok_or_else(|| bad("section data past the end of the file"))?;
        image
            .get_mut(at..at + bytes.len())
            .ok_or_else(|| bad("sections out of order"))?
            .copy_from_slice(bytes);
    }
    Ok(LoadedKernel {
        image,
        bss_size: bss_end.saturating_sub(end),
    })
}

/// `moddep.lst`: `name: dep dep …` per line.
fn parse_moddep(text: &str) -> Result<HashMap<&str, Vec<&str>>, EngineError> {
    let mut deps = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (name, list) = line.split_once(':').ok_or_else(|| {
            invalid_in(MODULE_FILES, format!("moddep.lst: invalid line {line:?}"))
        })?;
        // A later line for the same module wins, as in grub-mkimage.
        deps.insert(name, list.split_whitespace().collect());
    }
    Ok(deps)
}

fn module_name(name: &str) -> Result<&str, EngineError> {
    let base = name.strip_suffix(".mod").unwrap_or(name);
    if base.is_empty() || base.contains(['/', '\0']) || base.chars().any(char::is_whitespace) {
        return Err(EngineError::InvalidInput(format!(
            "invalid GRUB module name {name:?}"
        )));
    }
    Ok(base)
}

/// Modules in the order grub-mkimage embeds them: depth first, each module after its
/// dependencies, a module's dependencies taken from the last one listed to the first.
pub fn resolve_modules(moddep: &str, modules: &[&str]) -> Result<Vec<String>, EngineError> {
    fn add<'a>(
        deps: &HashMap<&'a str, Vec<&'a str>>,
        name: &'a str,
        order: &mut Vec<String>,
        visiting: &mut Vec<&'a str>,
    ) -> Result<(), EngineError> {
        let name = module_name(name)?;
        if order.iter().any(|done| done == name) {
            return Ok(());
        }
        if visiting.contains(&name) {
            return Err(invalid_in(
                MODULE_FILES,
                format!(
                    "moddep.lst: dependency cycle through {}",
                    visiting.join(" → ")
                ),
            ));
        }
        visiting.push(name);
        if let Some(list) = deps.get(name) {
            for dep in list.iter().rev() {
                add(deps, dep, order, visiting)?;
            }
        }
        visiting.pop();
        order.push(name.to_string());
        Ok(())
    }
    let deps = parse_moddep(moddep)?;
    let mut order = Vec::new();
    for module in modules {
        add(&deps, module, &mut order, &mut Vec::new())?;
    }
    Ok(order)
}

/// The module area grub-mkimage appends to the loaded kernel: `grub_module_info32`
/// (`{magic, offset, size}`, 12 bytes) or, for 64-bit targets, `grub_module_info64`
/// (`{magic, padding, offset: u64, size: u64}`, 24 bytes), then each module and the prefix
/// (NUL-terminated) behind an 8-byte `{type, size}` header, each padded to `word` bytes (the
/// target's pointer size). `size` counts the whole area, headers included.
fn module_area(
    modules: &[(String, Vec<u8>)],
    config: Option<&str>,
    prefix: &str,
    word: usize,
) -> Result<Vec<u8>, EngineError> {
    let align = |value: usize| value.div_ceil(word) * word;
    let info_size = if word == 8 { 24 } else { 12 };
    let prefix_size = align(prefix.len() + 1);
    let config_size = config.map_or(0, |config| align(config.len() + 1) + 8);
    let total_module_size = info_size
        + modules
            .iter()
            .map(|(_, bytes)| align(bytes.len()) + 8)
            .sum::<usize>()
        + config_size
        + prefix_size
        + 8;
    let mut out = Vec::with_capacity(total_module_size);
    out.extend_from_slice(&MODULE_MAGIC.to_le_bytes());
    if word == 8 {
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(info_size as u64).to_le_bytes());
        out.extend_from_slice(&(total_module_size as u64).to_le_bytes());
    } else {
        out.extend_from_slice(&(info_size as u32).to_le_bytes());
        out.extend_from_slice(&size_u32(total_module_size, "module area")?.to_le_bytes());
    }
    let mut entry = |kind: u32, bytes: &[u8], padded: usize| -> Result<(), EngineError> {
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&size_u32(padded + 8, "module")?.to_le_bytes());
        out.extend_from_slice(bytes);
        out.resize(out.len() + padded - bytes.len(), 0);
        Ok(())
    };
    for (_, bytes) in modules {
        entry(OBJ_TYPE_ELF, bytes, align(bytes.len()))?;
    }
    if let Some(config) = config {
        // NUL-terminated, like the prefix.
        entry(OBJ_TYPE_CONFIG, config.as_bytes(), align(config.len() + 1))?;
    }
    entry(OBJ_TYPE_PREFIX, prefix.as_bytes(), prefix_size)?;
    debug_assert_eq!(out.len(), total_module_size);
    Ok(out)
}

/// The uncompressed i386-pc payload: the loaded kernel, then the module area.
fn payload(
    kernel: &[u8],
    modules: &[(String, Vec<u8>)],
    config: Option<&str>,
    prefix: &str,
) -> Result<Vec<u8>, EngineError> {
    let area = module_area(modules, config, prefix, 4)?;
    let mut out = Vec::with_capacity(kernel.len() + area.len());
    out.extend_from_slice(kernel);
    out.extend_from_slice(&area);
    Ok(out)
}

/// `modules` and their dependencies from `files` (a platform directory), in embedding order.
/// `platform_files` names the directory in errors.
fn load_modules(
    files: &dyn Fn(&str) -> Option<Vec<u8>>,
    modules: &[&str],
    platform_files: &'static str,
) -> Result<Vec<(String, Vec<u8>)>, EngineError> {
    let moddep = files("moddep.lst").ok_or_else(|| missing_in(platform_files, "moddep.lst"))?;
    let moddep = std::str::from_utf8(&moddep)
        .map_err(|_| invalid_in(platform_files, "moddep.lst is not UTF-8".into()))?;
    let order = resolve_modules(moddep, modules)?;
    let mut loaded = Vec::with_capacity(order.len());
    for name in order {
        let file = format!("{name}.mod");
        let bytes = files(&file)
            .ok_or_else(|| missing_in(platform_files, &format!("GRUB module {name} ({file})")))?;
        loaded.push((name, bytes));
    }
    Ok(loaded)
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

fn lzma_error(error: liblzma::stream::Error) -> EngineError {
    EngineError::Compression(format!("LZMA for GRUB core.img: {error}"))
}

fn lzma_options() -> Result<LzmaOptions, EngineError> {
    let mut options = LzmaOptions::new_preset(9 | PRESET_EXTREME).map_err(lzma_error)?;
    options
        .dict_size(LZMA_DICT_SIZE)
        .literal_context_bits(LZMA_LC)
        .literal_position_bits(LZMA_LP)
        .position_bits(LZMA_PB);
    Ok(options)
}

/// Raw LZMA1 (no header) with the decoder's fixed properties.
fn lzma_compress(data: &[u8]) -> Result<Vec<u8>, EngineError> {
    let mut filters = Filters::new();
    filters.lzma1(&lzma_options()?);
    let mut stream = Stream::new_raw_encoder(&filters).map_err(lzma_error)?;
    let mut out = Vec::with_capacity(data.len() / 2 + 4096);
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(64 * 1024);
        }
        let consumed = usize::try_from(stream.total_in()).unwrap_or(data.len());
        let status = stream
            .process_vec(
                data.get(consumed..).unwrap_or_default(),
                &mut out,
                Action::Finish,
            )
            .map_err(lzma_error)?;
        if status == Status::StreamEnd {
            return Ok(out);
        }
    }
}

/// The uncompressed payload of a `core.img` (ours or grub-mkimage's), found through the
/// decompressor's size fields: the compressed data ends the image.
pub fn bios_core_payload(core_img: &[u8]) -> Result<Vec<u8>, EngineError> {
    let bad = |reason: &str| EngineError::InvalidInput(format!("GRUB core.img: {reason}"));
    let decompressor = core_img
        .get(SECTOR..)
        .ok_or_else(|| bad("shorter than one sector"))?;
    let compressed_size = le_u32(decompressor, DECOMPRESSOR_COMPRESSED_SIZE)
        .ok_or_else(|| bad("no decompressor header"))? as usize;
    let uncompressed_size = le_u32(decompressor, DECOMPRESSOR_UNCOMPRESSED_SIZE)
        .ok_or_else(|| bad("no decompressor header"))? as usize;
    let decompressor_size = decompressor
        .len()
        .checked_sub(compressed_size)
        .ok_or_else(|| bad("compressed size past the end"))?;
    let compressed = &decompressor[decompressor_size..];
    let mut filters = Filters::new();
    filters.lzma1(&lzma_options()?);
    let mut stream = Stream::new_raw_decoder(&filters).map_err(lzma_error)?;
    let mut out = Vec::new();
    while out.len() < uncompressed_size {
        // Grown as data arrives, so a corrupt size field cannot demand gigabytes up front.
        out.reserve((uncompressed_size - out.len()).min(1 << 20));
        let consumed = usize::try_from(stream.total_in()).unwrap_or(compressed.len());
        let before = out.len();
        let input = compressed.get(consumed..).unwrap_or_default();
        match stream.process_vec(input, &mut out, Action::Run) {
            Ok(Status::StreamEnd) => break,
            Ok(_) if out.len() == before && input.is_empty() => break,
            Ok(_) => {}
            // Without an end marker the decoder only learns the end from running dry.
            Err(_) if out.len() >= uncompressed_size => break,
            Err(error) => return Err(lzma_error(error)),
        }
    }
    if out.len() < uncompressed_size {
        return Err(bad("compressed data ends early"));
    }
    out.truncate(uncompressed_size);
    Ok(out)
}

/// `grub-mkimage -O i386-pc -p <prefix> <modules>` equivalent; `files(name)` returns the bytes
/// of `/usr/lib/grub/i386-pc/<name>`. Resolves dependencies through `moddep.lst`.
pub fn bios_core_image(
    files: &dyn Fn(&str) -> Option<Vec<u8>>,
    prefix: &str,
    modules: &[&str],
) -> Result<Vec<u8>, EngineError> {
    bios_core_image_with_config(files, prefix, modules, None)
}

/// `grub-mkimage -O i386-pc-eltorito -p <prefix> [-c <config>] <modules>` equivalent: the
/// El Torito no-emulation boot image of a CD, `cdboot.img` followed by a `core.img`.
pub fn eltorito_image(
    files: &dyn Fn(&str) -> Option<Vec<u8>>,
    prefix: &str,
    modules: &[&str],
    config: Option<&str>,
) -> Result<Vec<u8>, EngineError> {
    let mut image = files("cdboot.img").ok_or_else(|| missing("cdboot.img"))?;
    if image.len() != CDBOOT_SIZE {
        return Err(invalid_file(format!(
            "cdboot.img is {} bytes, not {CDBOOT_SIZE}",
            image.len()
        )));
    }
    image.extend_from_slice(&bios_core_image_with_config(
        files, prefix, modules, config,
    )?);
    Ok(image)
}

/// `cdboot.img` is one CD sector; it loads the rest of the image with BIOS disk calls.
pub const CDBOOT_SIZE: usize = 2048;

/// [`bios_core_image`] with an embedded early configuration (`grub-mkimage -c`), run before
/// `normal` reads `$prefix/grub.cfg`.
pub fn bios_core_image_with_config(
    files: &dyn Fn(&str) -> Option<Vec<u8>>,
    prefix: &str,
    modules: &[&str],
    config: Option<&str>,
) -> Result<Vec<u8>, EngineError> {
    check_prefix(prefix)?;
    if config.is_some_and(|config| config.contains('\0')) {
        return Err(EngineError::InvalidInput(
            "GRUB embedded configuration contains a NUL byte".into(),
        ));
    }
    let read = |name: &str| files(name).ok_or_else(|| missing(name));
    let loaded = load_modules(files, modules, BIOS_FILES)?;

    let kernel = load_kernel(&read("kernel.img")?)?;
    if kernel.image.len() + kernel.bss_size + KERNEL_LINK_ADDR as usize > KERNEL_RUN_LIMIT {
        return Err(too_big(format!(
            "kernel image is too big ({:#x} > {KERNEL_RUN_LIMIT:#x})",
            kernel.image.len() + kernel.bss_size + KERNEL_LINK_ADDR as usize
        )));
    }
    let payload = payload(&kernel.image, &loaded, config, prefix)?;
    let compressed = lzma_compress(&payload)?;

    let mut decompressor = read("lzma_decompress.img")?;
    if decompressor.len() > MAX_DECOMPRESSOR_SIZE {
        return Err(invalid_file(format!(
            "lzma_decompress.img is too big ({} > {MAX_DECOMPRESSOR_SIZE} bytes)",
            decompressor.len()
        )));
    }
    if decompressor.len() < DECOMPRESSOR_UNCOMPRESSED_SIZE + 4 {
        return Err(invalid_file("lzma_decompress.img is truncated".into()));
    }
    put_u32(
        &mut decompressor,
        DECOMPRESSOR_COMPRESSED_SIZE,
        size_u32(compressed.len(), "compressed payload")?,
    );
    put_u32(
        &mut decompressor,
        DECOMPRESSOR_UNCOMPRESSED_SIZE,
        size_u32(payload.len(), "payload")?,
    );

    let loaded_size = decompressor.len() + compressed.len();
    if KERNEL_LINK_ADDR as usize + loaded_size > CORE_LOAD_LIMIT {
        return Err(too_big(format!(
            "core image is too big ({:#x} > {CORE_LOAD_LIMIT:#x})",
            KERNEL_LINK_ADDR as usize + loaded_size
        )));
    }
    if SECTOR + loaded_size > BIOS_PARTITION_SIZE {
        return Err(too_big(format!(
            "{} bytes do not fit in the {BIOS_PARTITION_SIZE}-byte BIOS boot partition",
            SECTOR + loaded_size
        )));
    }
    let sectors = u16::try_from(loaded_size.div_ceil(SECTOR))
        .map_err(|_| too_big(format!("{loaded_size} bytes are too many sectors")))?;

    let mut diskboot = read("diskboot.img")?;
    if diskboot.len() != SECTOR {
        return Err(invalid_file(format!(
            "diskboot.img is {} bytes, not {SECTOR}",
            diskboot.len()
        )));
    }
    // A different segment would mean a diskboot.img built for another layout.
    if le_u16(&diskboot, BLOCKLIST_SEGMENT) != Some(BLOCKLIST_SEGMENT_VALUE) {
        return Err(invalid_file(
            "diskboot.img does not load at segment 0x820".into(),
        ));
    }
    put_u16(&mut diskboot, BLOCKLIST_LENGTH, sectors);

    let mut core = diskboot;
    core.reserve(loaded_size);
    core.extend_from_slice(&decompressor);
    core.extend_from_slice(&compressed);
    Ok(core)
}

/// Patches for a disk: returns (MBR boot code = `boot.img[0..446]` patched, `core.img`
/// patched) for a BIOS partition starting at `bios_first_lba` in units of `sector_size`.
///
/// Both blocklist values are in `sector_size` units as imager.md §5.3 prescribes; note that
/// `diskboot.img` copies 512 bytes per sector read, so GRUB's loader itself only boots from
/// 512-byte-sector disks.
pub fn install_bios(
    boot_img: &[u8],
    core_img: &[u8],
    bios_first_lba: u64,
    sector_size: u64,
) -> Result<(Vec<u8>, Vec<u8>), EngineError> {
    if !matches!(sector_size, 512 | 4096) {
        return Err(EngineError::InvalidInput(format!(
            "GRUB: unsupported sector size {sector_size}"
        )));
    }
    if boot_img.len() != SECTOR || boot_img[510..] != [0x55, 0xAA] {
        return Err(invalid_file(
            "boot.img is not a 512-byte boot sector".into(),
        ));
    }
    if core_img.len() < SECTOR {
        return Err(EngineError::InvalidInput(
            "GRUB core.img is shorter than one sector".into(),
        ));
    }
    if core_img.len() > BIOS_PARTITION_SIZE {
        return Err(too_big(format!(
            "{} bytes do not fit in the {BIOS_PARTITION_SIZE}-byte BIOS boot partition",
            core_img.len()
        )));
    }
    let second = bios_first_lba.checked_add(1).ok_or_else(|| {
        EngineError::InvalidInput(format!("BIOS partition LBA {bios_first_lba} overflows"))
    })?;

    let mut boot = boot_img[..MBR_BOOT_CODE_SIZE].to_vec();
    put_u64(&mut boot, BOOT_KERNEL_SECTOR, bios_first_lba);
    boot[BOOT_DRIVE_CHECK..BOOT_DRIVE_CHECK + 2].copy_from_slice(&[0x90, 0x90]);

    let mut core = core_img.to_vec();
    put_u64(&mut core, BLOCKLIST_START, second);
    Ok((boot, core))
}

/// `Q()` of imager.md §5.4: GRUB's special characters behind a backslash.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '{' | '}' | '&' | '$' | '|' | ';' | '<' | '>' | '"'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `/boot/grub/grub.cfg` of an ISO (imager.md §6.2); `reset_entry` adds the entry that wipes
/// the system disk (Talos 1.4 and later).
pub fn iso_grub_cfg(cmdline: &str, reset_entry: bool) -> String {
    let cmdline = quote(cmdline);
    let mut out = String::from(
        "set default=0\nset timeout=3\n\ninsmod all_video\n\nterminal_input console\nterminal_output console\n",
    );
    let mut entry = |title: &str, extra: &str| {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "\nmenuentry \"{title}\" {{\n\tset gfxmode=auto\n\tset gfxpayload=text\n\tlinux /boot/vmlinuz {cmdline}{extra}\n\tinitrd /boot/initramfs.xz\n}}\n"
        );
    };
    entry("Talos ISO", "");
    if reset_entry {
        entry(
            "Reset Talos installation",
            " talos.experimental.wipe=system",
        );
    }
    out
}

/// `/grub/grub.cfg` of imager.md §5.4: `version` like "v1.12.0", `cmdline` the kernel command
/// line, `reset_entry` whether to add the reset menu entry.
pub fn grub_cfg(version: &str, cmdline: &str, reset_entry: bool) -> String {
    let name = format!("A - Talos {version}");
    let cmdline = quote(cmdline);
    let mut out = String::new();
    let entry = |out: &mut String, title: &str, extra: &str| {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "menuentry \"{title}\" {{\n  set gfxmode=auto\n  set gfxpayload=text\n  linux /A/vmlinuz {cmdline}{extra}\n  initrd /A/initramfs.xz\n}}\n"
        );
    };
    let _ = write!(
        out,
        "set default=\"{name}\"\n\nset timeout=3\n\ninsmod all_video\n\nterminal_input console\nterminal_output console\n\n"
    );
    entry(&mut out, &name, "");
    if reset_entry {
        entry(
            &mut out,
            "Reset Talos installation and return to maintenance mode",
            " talos.experimental.wipe=system:EPHEMERAL,STATE",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bios_modules_are_the_common_list_plus_disk_drivers() {
        assert_eq!(&BIOS_MODULES[..COMMON_MODULES.len()], COMMON_MODULES);
        assert_eq!(
            &BIOS_MODULES[COMMON_MODULES.len()..],
            ["biosdisk", "part_msdos"]
        );
    }

    #[test]
    fn grub_cfg_bytes() {
        let expected = "set default=\"A - Talos v1.12.0\"\n\
\n\
set timeout=3\n\
\n\
insmod all_video\n\
\n\
terminal_input console\n\
terminal_output console\n\
\n\
menuentry \"A - Talos v1.12.0\" {\n\
\x20 set gfxmode=auto\n\
\x20 set gfxpayload=text\n\
\x20 linux /A/vmlinuz talos.platform=metal console=ttyS0 a=\\$b\n\
\x20 initrd /A/initramfs.xz\n\
}\n\
menuentry \"Reset Talos installation and return to maintenance mode\" {\n\
\x20 set gfxmode=auto\n\
\x20 set gfxpayload=text\n\
\x20 linux /A/vmlinuz talos.platform=metal console=ttyS0 a=\\$b talos.experimental.wipe=system:EPHEMERAL,STATE\n\
\x20 initrd /A/initramfs.xz\n\
}\n";
        let cfg = grub_cfg("v1.12.0", "talos.platform=metal console=ttyS0 a=$b", true);
        assert_eq!(cfg, expected);
        let without = grub_cfg("v1.12.0", "talos.platform=metal console=ttyS0 a=$b", false);
        let cut = expected
            .find("menuentry \"Reset")
            .expect("reset entry in the sample");
        assert_eq!(without, &expected[..cut]);
    }

    #[test]
    fn quoting_escapes_exactly_grub_specials() {
        assert_eq!(
            quote(r#"a\b{c}d&e$f|g;h<i>j"k"#),
            r#"a\\b\{c\}d\&e\$f\|g\;h\<i\>j\"k"#
        );
        let plain = "talos.config=http://x/y?a=1 'q' (p) [b] #h ~ * ! , = : % @ ` é";
        assert_eq!(quote(plain), plain);
    }

    fn boot_img() -> Vec<u8> {
        let mut boot = vec![0u8; 512];
        boot[BOOT_KERNEL_SECTOR] = 1;
        boot[0x64] = 0xFF;
        boot[BOOT_DRIVE_CHECK..BOOT_DRIVE_CHECK + 2].copy_from_slice(&[0xEB, 0x05]);
        boot[446] = 0x77;
        boot[510] = 0x55;
        boot[511] = 0xAA;
        boot
    }

    #[test]
    fn install_patches_the_blocklists() {
        let core: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
        let (mbr, patched) = install_bios(&boot_img(), &core, 4_304_896, 512).unwrap();
        assert_eq!(mbr.len(), 446);
        assert_eq!(&mbr[0x5C..0x64], &4_304_896u64.to_le_bytes());
        assert_eq!(mbr[0x64], 0xFF);
        assert_eq!(&mbr[0x66..0x68], &[0x90, 0x90]);
        assert_eq!(mbr[..0x5C], boot_img()[..0x5C]);
        assert_eq!(mbr[0x68..], boot_img()[0x68..446]);
        assert_eq!(&patched[0x1F4..0x1FC], &4_304_897u64.to_le_bytes());
        assert_eq!(patched[..0x1F4], core[..0x1F4]);
        assert_eq!(patched[0x1FC..], core[0x1FC..]);

        let (mbr, patched) = install_bios(&boot_img(), &core, 538_112, 4096).unwrap();
        assert_eq!(&mbr[0x5C..0x64], &538_112u64.to_le_bytes());
        assert_eq!(&patched[0x1F4..0x1FC], &538_113u64.to_le_bytes());
    }

    #[test]
    fn install_rejects_what_cannot_boot() {
        let core = vec![0u8; 1024];
        assert!(install_bios(&boot_img(), &core, 2048, 1000).is_err());
        assert!(install_bios(&boot_img()[..446], &core, 2048, 512).is_err());
        assert!(install_bios(&boot_img(), &core[..100], 2048, 512).is_err());
        assert!(install_bios(&boot_img(), &vec![0; BIOS_PARTITION_SIZE + 1], 2048, 512).is_err());
        assert!(install_bios(&boot_img(), &core, u64::MAX, 512).is_err());
    }

    #[test]
    fn dependencies_resolve_in_grub_mkimage_order() {
        let moddep = "normal: extcmd crypto boot\nextcmd:\ncrypto:\nboot:\nxfs: fshelp\nfshelp:\n";
        assert_eq!(
            resolve_modules(moddep, &["xfs", "normal", "boot.mod", "fshelp"]).unwrap(),
            ["fshelp", "xfs", "boot", "crypto", "extcmd", "normal"]
        );
        assert!(resolve_modules("a: b\nb: a\n", &["a"]).is_err());
        assert!(resolve_modules("no colon\n", &["a"]).is_err());
        assert!(resolve_modules("", &["../x"]).is_err());
    }

    /// An ELF32 with .text at the link address, .data after a gap, .bss and .shstrtab.
    fn tiny_kernel() -> Vec<u8> {
        let text = b"TEXT-CODE".to_vec();
        let data = b"DATA".to_vec();
        let mut elf = vec![0u8; 0x40];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 1;
        elf[5] = 1;
        elf[6] = 1;
        elf[0x14] = 1;
        let text_off = elf.len();
        elf.extend_from_slice(&text);
        let data_off = elf.len();
        elf.extend_from_slice(&data);
        let shoff = elf.len();
        // (type, flags, addr, offset, size)
        let sections = [
            (0u32, 0u32, 0u32, 0u32, 0u32),
            (1, 6, 0x9000, text_off as u32, text.len() as u32),
            (1, 2, 0x9010, data_off as u32, data.len() as u32),
            (8, 3, 0x9020, 0, 0x100),
            (3, 0, 0, 0, 0),
        ];
        for (kind, flags, addr, offset, size) in sections {
            let mut header = [0u8; 40];
            put_u32(&mut header, 4, kind);
            put_u32(&mut header, 8, flags);
            put_u32(&mut header, 12, addr);
            put_u32(&mut header, 16, offset);
            put_u32(&mut header, 20, size);
            elf.extend_from_slice(&header);
        }
        put_u32(&mut elf, 0x20, shoff as u32);
        put_u16(&mut elf, 0x2E, 40);
        put_u16(&mut elf, 0x30, sections.len() as u16);
        elf
    }

    fn fake_files(name: &str) -> Option<Vec<u8>> {
        let mut decompressor = vec![0u8; 0x40];
        decompressor[0] = 0xEA;
        let mut diskboot = vec![0u8; 512];
        diskboot[0x1F8] = 2;
        put_u16(&mut diskboot, BLOCKLIST_SEGMENT, 0x820);
        Some(match name {
            "kernel.img" => tiny_kernel(),
            "lzma_decompress.img" => decompressor,
            "diskboot.img" => diskboot,
            "moddep.lst" => b"b: a\na:\nc:\n".to_vec(),
            "a.mod" => b"AAAAA".to_vec(),
            "b.mod" => b"BBBB".to_vec(),
            "c.mod" => b"CC".to_vec(),
            _ => return None,
        })
    }

    #[test]
    fn kernel_sections_land_at_their_link_addresses() {
        let kernel = load_kernel(&tiny_kernel()).unwrap();
        let mut expected = b"TEXT-CODE".to_vec();
        expected.resize(0x10, 0);
        expected.extend_from_slice(b"DATA");
        assert_eq!(kernel.image, expected);
        assert_eq!(kernel.bss_size, 0x20 + 0x100 - 0x14);
        assert!(load_kernel(b"\x7fELF").is_err());
    }

    #[test]
    fn core_image_layout() {
        let core = bios_core_image(&fake_files, "(hd0,gpt3)/grub", &["b", "c"]).unwrap();
        let loaded = core.len() - 512;
        assert_eq!(
            le_u16(&core, BLOCKLIST_LENGTH),
            Some(loaded.div_ceil(512) as u16)
        );
        assert_eq!(le_u16(&core, BLOCKLIST_SEGMENT), Some(0x820));
        assert_eq!(core[0x1F8], 2, "the rest of diskboot.img is kept");
        assert_eq!(core[512], 0xEA);
        let compressed = le_u32(&core, 512 + DECOMPRESSOR_COMPRESSED_SIZE).unwrap() as usize;
        assert_eq!(512 + 0x40 + compressed, core.len());
        // The properties byte a `.lzma` header would carry is implied; the raw stream starts
        // with the range coder's zero byte.
        assert_eq!(core[512 + 0x40], 0);

        let payload = bios_core_payload(&core).unwrap();
        assert_eq!(
            le_u32(&core, 512 + DECOMPRESSOR_UNCOMPRESSED_SIZE),
            Some(payload.len() as u32)
        );
        let mut expected = load_kernel(&tiny_kernel()).unwrap().image;
        let total = 12 + (8 + 8) + (8 + 4) + (8 + 4) + (8 + 16);
        for word in [MODULE_MAGIC, 12, total] {
            expected.extend_from_slice(&word.to_le_bytes());
        }
        for (kind, size, bytes) in [
            (0u32, 16u32, b"AAAAA\0\0\0".as_slice()),
            (0, 12, b"BBBB"),
            (0, 12, b"CC\0\0"),
            (3, 24, b"(hd0,gpt3)/grub\0"),
        ] {
            expected.extend_from_slice(&kind.to_le_bytes());
            expected.extend_from_slice(&size.to_le_bytes());
            expected.extend_from_slice(bytes);
        }
        assert_eq!(payload, expected);
    }

    #[test]
    fn core_image_names_what_is_missing() {
        let error = bios_core_image(&fake_files, PREFIX, &["b", "zz"]).unwrap_err();
        assert!(error.to_string().contains("zz.mod"), "{error}");
        let no_kernel = |name: &str| {
            if name == "kernel.img" {
                None
            } else {
                fake_files(name)
            }
        };
        let error = bios_core_image(&no_kernel, PREFIX, &["b"]).unwrap_err();
        assert!(error.to_string().contains("kernel.img"), "{error}");
    }

    #[test]
    fn core_image_too_big_for_conventional_memory_is_refused() {
        let huge = |name: &str| {
            if name == "c.mod" {
                // Incompressible, so the compressed image outgrows 0x78000.
                let mut state = 0x1234_5678u32;
                Some(
                    (0..0x80000)
                        .map(|_| {
                            state ^= state << 13;
                            state ^= state >> 17;
                            state ^= state << 5;
                            state as u8
                        })
                        .collect(),
                )
            } else {
                fake_files(name)
            }
        };
        let error = bios_core_image(&huge, PREFIX, &["c"]).unwrap_err();
        assert!(error.to_string().contains("too big"), "{error}");
    }
}
