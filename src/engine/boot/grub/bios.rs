//! GRUB for legacy BIOS: the i386-pc `core.img` that `grub-mkimage` would make, its El Torito
//! variant for CDs, and the `boot.img`/`core.img` patches that point them at the BIOS boot
//! partition.
//!
//! `core.img` is `diskboot.img` (one sector that loads the rest), then `lzma_decompress.img`
//! (real-mode start-up plus an LZMA decoder), then the LZMA-compressed payload: the loaded
//! image of `kernel.img` followed by a module area (modules in dependency order, then the
//! prefix).

use super::modules::{load_modules, module_area};
use super::{check_prefix, invalid_in, missing_in, size_u32, too_big};
use crate::engine::EngineError;
use crate::engine::bytes::{le_u16, le_u32, put_u16, put_u32, put_u64};
use crate::engine::elf::{Class, Elf, Expected, SHT_NOBITS, SHT_PROGBITS, Section};
use liblzma::stream::{Action, Filters, LzmaOptions, PRESET_EXTREME, Status, Stream};

/// The BIOS boot partition is 1 MiB; `core.img` has to fit in it.
pub const BIOS_PARTITION_SIZE: usize = crate::size::MIB as usize;

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

fn missing(what: &str) -> EngineError {
    missing_in(BIOS_FILES, what)
}

fn invalid_file(reason: String) -> EngineError {
    invalid_in(BIOS_FILES, reason)
}

/// `kernel.img` as loaded: its PROGBITS sections copied to their link addresses, BSS left
/// out (the kernel clears it itself).
#[derive(Debug, Clone, PartialEq, Eq)]
struct LoadedKernel {
    image: Vec<u8>,
    bss_size: usize,
}

fn load_kernel(data: &[u8]) -> Result<LoadedKernel, EngineError> {
    let bad = |reason: &str| invalid_file(format!("kernel.img: {reason}"));
    // ELF32, little-endian, current version: what GRUB's i386-pc build always produces.
    let expected = Expected {
        class: Some(Class::Elf32),
        machine: None,
    };
    let elf = Elf::parse(data, expected).map_err(|error| bad(&error.to_string()))?;
    let is_text = |s: &Section| s.kind == SHT_PROGBITS && s.is_code();
    let is_data = |s: &Section| s.kind == SHT_PROGBITS && s.is_loaded_data();
    let relative = |s: &Section| {
        s.addr
            .checked_sub(u64::from(KERNEL_LINK_ADDR))
            .and_then(|at| usize::try_from(at).ok())
            .ok_or_else(|| {
                bad(&format!(
                    "section at {:#x} is below the link address",
                    s.addr
                ))
            })
    };
    let size = |s: &Section| usize::try_from(s.size).map_err(|_| bad("section too large"));

    // Text first, then data, each at its link address; the image ends where the last one
    // placed ends (grub-mkimage's layout for a kernel that is not relocated).
    let mut placed = Vec::new();
    let mut end = 0usize;
    let mut first_text = true;
    for section in elf.sections.iter().filter(|s| is_text(s)) {
        if first_text && section.addr != u64::from(KERNEL_LINK_ADDR) {
            return Err(bad(&format!(
                "code starts at {:#x}, not at {KERNEL_LINK_ADDR:#x}",
                section.addr
            )));
        }
        first_text = false;
        let at = relative(section)?;
        end = at.saturating_add(size(section)?);
        placed.push((at, *section));
    }
    if first_text {
        return Err(bad("no code section"));
    }
    for section in elf.sections.iter().filter(|s| is_data(s)) {
        let at = relative(section)?;
        end = at.saturating_add(size(section)?);
        placed.push((at, *section));
    }
    // Checked before allocating: nothing larger could run below 0x68000 anyway.
    if end > KERNEL_RUN_LIMIT {
        return Err(too_big(format!("kernel image is too big ({end:#x} bytes)")));
    }
    let mut bss_end = end;
    for section in elf.sections.iter().filter(|s| s.kind == SHT_NOBITS) {
        bss_end = relative(section)?.saturating_add(size(section)?);
    }

    let mut image = vec![0u8; end];
    for (at, section) in placed {
        let bytes = elf
            .contents(&section)
            .map_err(|_| bad("section data past the end of the file"))?;
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
    let (_, compressed) = decompressor
        .split_at_checked(decompressor_size)
        .ok_or_else(|| bad("compressed size past the end"))?;
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
    let boot_sector = match <[u8; SECTOR]>::try_from(boot_img) {
        Ok(sector) if sector[510..] == [0x55, 0xAA] => sector,
        _ => {
            return Err(invalid_file(
                "boot.img is not a 512-byte boot sector".into(),
            ));
        }
    };
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

    // Both patched fields lie in the boot code, so patching the whole sector and keeping its
    // code is the same as patching the code.
    let mut boot = boot_sector;
    put_u64(&mut boot, BOOT_KERNEL_SECTOR, bios_first_lba);
    boot[BOOT_DRIVE_CHECK..BOOT_DRIVE_CHECK + 2].copy_from_slice(&[0x90, 0x90]);
    let boot = boot[..MBR_BOOT_CODE_SIZE].to_vec();

    let mut core = core_img.to_vec();
    put_u64(&mut core, BLOCKLIST_START, second);
    Ok((boot, core))
}

#[cfg(test)]
mod tests {
    use super::super::PREFIX;
    use super::super::modules::MODULE_MAGIC;
    use super::*;

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
