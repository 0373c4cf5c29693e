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

use crate::profile::Arch;

use super::{
    EngineError, check_prefix, invalid_in, load_modules, missing_in, module_area, put_u16, put_u32,
    put_u64,
};

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
            EfiArch::X86_64 => 0x8664,
            EfiArch::Arm64 => 0xAA64,
        }
    }

    fn elf_machine(self) -> u16 {
        match self {
            EfiArch::X86_64 => 62,
            EfiArch::Arm64 => 183,
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
const DOS_STUB_SIZE: usize = 0x80;
const COFF_HEADER: usize = DOS_STUB_SIZE + 4;
const OPTIONAL_HEADER: usize = COFF_HEADER + 20;
const OPTIONAL_HEADER_SIZE: usize = 240;
const SECTION_TABLE: usize = OPTIONAL_HEADER + OPTIONAL_HEADER_SIZE;
const SECTION_HEADER_SIZE: usize = 40;
const SECTIONS: usize = 4;
/// `STABLE_EMBEDDING_TIMESTAMP` of grub-mkimage: 2015-01-01T00:00:00Z.
pub const PE_TIMESTAMP: u32 = 1_420_070_400;
/// Executable, line numbers, local symbols and debug information stripped.
const COFF_CHARACTERISTICS: u16 = 0x0002 | 0x0004 | 0x0008 | 0x0200;
const PE32_PLUS: u16 = 0x20B;
const SUBSYSTEM_EFI_APPLICATION: u16 = 10;
const STACK_AND_HEAP_SIZE: u64 = 0x10000;
const DATA_DIRECTORIES: u32 = 16;
const BASE_RELOCATION_DIRECTORY: usize = 5;
const SCN_CODE: u32 = 0x20;
const SCN_INITIALIZED_DATA: u32 = 0x40;
const SCN_DISCARDABLE: u32 = 0x0200_0000;
const SCN_EXECUTE: u32 = 0x2000_0000;
const SCN_READ: u32 = 0x4000_0000;
const SCN_WRITE: u32 = 0x8000_0000;
/// PE base relocation type for a 64-bit absolute address.
const REL_BASED_DIR64: u16 = 10;

/// Far above any real GRUB kernel (about 0x1C000 bytes); refuses allocations a corrupt
/// `SHT_NOBITS` size would ask for.
const MAX_KERNEL_SIZE: u64 = 64 << 20;

const SHT_SYMTAB: u32 = 2;
const SHT_RELA: u32 = 4;
const SHT_NOBITS: u32 = 8;
const SHT_REL: u32 = 9;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;
const SHN_UNDEF: u16 = 0;
const SHN_ABS: u16 = 0xFFF1;

const R_X86_64_NONE: u32 = 0;
const R_X86_64_64: u32 = 1;
const R_X86_64_PC32: u32 = 2;
const R_X86_64_PLT32: u32 = 4;
const R_X86_64_32: u32 = 10;
const R_X86_64_32S: u32 = 11;
const R_X86_64_PC64: u32 = 24;

const R_AARCH64_ABS64: u32 = 257;
const R_AARCH64_PREL32: u32 = 261;
const R_AARCH64_ADR_PREL_PG_HI21: u32 = 275;
const R_AARCH64_ADD_ABS_LO12_NC: u32 = 277;
const R_AARCH64_JUMP26: u32 = 282;
const R_AARCH64_CALL26: u32 = 283;
const R_AARCH64_LDST64_ABS_LO12_NC: u32 = 286;
const R_AARCH64_ADR_GOT_PAGE: u32 = 311;
const R_AARCH64_LD64_GOT_LO12_NC: u32 = 312;

fn align_up(value: u64, alignment: u64) -> u64 {
    value.div_ceil(alignment) * alignment
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

fn too_big(reason: String) -> EngineError {
    EngineError::Io {
        what: "GRUB EFI image",
        reason,
    }
}

fn to_u32(value: u64, what: &str) -> Result<u32, EngineError> {
    u32::try_from(value)
        .map_err(|_| too_big(format!("{what} of {value:#x} does not fit a PE image")))
}

/// One ELF64 section header, the fields the linker needs.
#[derive(Debug, Clone, Copy)]
struct Section {
    name: u32,
    kind: u32,
    flags: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    addralign: u64,
    entsize: u64,
}

impl Section {
    fn is_text(&self) -> bool {
        self.flags & (SHF_ALLOC | SHF_EXECINSTR) == SHF_ALLOC | SHF_EXECINSTR
    }

    fn is_data(&self) -> bool {
        self.flags & (SHF_ALLOC | SHF_EXECINSTR) == SHF_ALLOC && self.kind != SHT_NOBITS
    }

    fn is_bss(&self) -> bool {
        self.flags & (SHF_ALLOC | SHF_EXECINSTR) == SHF_ALLOC && self.kind == SHT_NOBITS
    }

    /// Sections that end up in the image; everything else (symbols, relocations, notes) is
    /// only read.
    fn is_kept(&self) -> bool {
        self.is_text() || self.is_data() || self.is_bss()
    }
}

/// `kernel.img` read as a relocatable little-endian ELF64 object.
struct Elf<'a> {
    data: &'a [u8],
    sections: Vec<Section>,
    names: &'a [u8],
    files: &'static str,
}

impl<'a> Elf<'a> {
    fn parse(data: &'a [u8], arch: EfiArch) -> Result<Elf<'a>, EngineError> {
        let files = arch.files();
        let bad = |reason: &str| invalid_in(files, format!("kernel.img: {reason}"));
        if data.get(0..4) != Some(b"\x7fELF".as_slice())
            || data.get(4) != Some(&2)
            || data.get(5) != Some(&1)
            || data.get(6) != Some(&1)
            || super::le_u32(data, 0x14) != Some(1)
        {
            return Err(bad("not a little-endian ELF64 file"));
        }
        let machine = super::le_u16(data, 0x12).ok_or_else(|| bad("truncated header"))?;
        if machine != arch.elf_machine() {
            return Err(bad(&format!(
                "built for ELF machine {machine}, not {}",
                arch.platform()
            )));
        }
        let truncated = || bad("truncated section table");
        let shoff = le_u64(data, 0x28).ok_or_else(truncated)?;
        let shentsize = u64::from(super::le_u16(data, 0x3A).ok_or_else(truncated)?);
        let shnum = super::le_u16(data, 0x3C).ok_or_else(truncated)?;
        let shstrndx = super::le_u16(data, 0x3E).ok_or_else(truncated)?;
        if shentsize < 64 {
            return Err(bad("section headers are too small"));
        }
        let mut sections = Vec::with_capacity(usize::from(shnum));
        for index in 0..u64::from(shnum) {
            let at = index
                .checked_mul(shentsize)
                .and_then(|offset| offset.checked_add(shoff))
                .and_then(|at| usize::try_from(at).ok())
                .ok_or_else(truncated)?;
            let u32_field = |offset: usize| super::le_u32(data, at + offset).ok_or_else(truncated);
            let u64_field = |offset: usize| le_u64(data, at + offset).ok_or_else(truncated);
            sections.push(Section {
                name: u32_field(0)?,
                kind: u32_field(4)?,
                flags: u64_field(8)?,
                offset: u64_field(24)?,
                size: u64_field(32)?,
                link: u32_field(40)?,
                info: u32_field(44)?,
                addralign: u64_field(48)?,
                entsize: u64_field(56)?,
            });
        }
        let mut elf = Elf {
            data,
            sections,
            names: &[],
            files,
        };
        let names = elf.section(u32::from(shstrndx))?;
        elf.names = elf.bytes(&names)?;
        Ok(elf)
    }

    fn bad(&self, reason: String) -> EngineError {
        invalid_in(self.files, format!("kernel.img: {reason}"))
    }

    fn section(&self, index: u32) -> Result<Section, EngineError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.sections.get(i))
            .copied()
            .ok_or_else(|| self.bad(format!("section {index} does not exist")))
    }

    /// The file bytes of a section that has any.
    fn bytes(&self, section: &Section) -> Result<&'a [u8], EngineError> {
        if section.kind == SHT_NOBITS {
            return Ok(&[]);
        }
        usize::try_from(section.offset)
            .ok()
            .zip(usize::try_from(section.size).ok())
            .and_then(|(start, size)| self.data.get(start..start.checked_add(size)?))
            .ok_or_else(|| self.bad("section data past the end of the file".into()))
    }

    fn name(&self, section: &Section) -> &'a [u8] {
        string(self.names, section.name)
    }

    /// The entries of a table section (symbols, relocations), each at least `minimum` bytes.
    fn entries(
        &self,
        section: &Section,
        minimum: u64,
    ) -> Result<impl Iterator<Item = &'a [u8]> + use<'a>, EngineError> {
        if section.entsize < minimum {
            return Err(self.bad(format!(
                "table entries of {} bytes, expected at least {minimum}",
                section.entsize
            )));
        }
        let bytes = self.bytes(section)?;
        let size = section.entsize as usize;
        Ok(bytes.chunks_exact(size))
    }
}

/// The NUL-terminated string at `offset` of a string table (empty past its end).
fn string(table: &[u8], offset: u32) -> &[u8] {
    let rest = table.get(offset as usize..).unwrap_or_default();
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    &rest[..end]
}

/// Where each section goes, as offsets from the start of `.text` (RVA `HEADER_SIZE`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    addrs: Vec<u64>,
    /// `.text`'s size, a page multiple.
    exec_size: u64,
    /// The loaded kernel's size (`.text` + `.data`), a page multiple.
    kernel_size: u64,
    got_offset: u64,
    got_size: u64,
    /// Where BSS starts and where the page-padded kernel ends before the GOT, as offsets (what
    /// grub-mkimage gives undefined `__bss_start` and `_end`).
    bss_start: u64,
    bss_end: u64,
}

impl Layout {
    fn vaddr(&self, index: usize) -> u64 {
        self.addrs[index] + HEADER_SIZE
    }
}

/// `got_size` is only for arm64 (`arm64` true), whose kernel also gets 16-byte aligned.
fn layout(elf: &Elf, arm64: bool, got_size: u64) -> Result<Layout, EngineError> {
    let mut addrs = vec![0u64; elf.sections.len()];
    // Each section starts at its alignment counted in RVAs, i.e. after the headers.
    let mut place = |index: usize, section: &Section, current: u64| -> Result<u64, EngineError> {
        let mut at = current;
        if section.addralign != 0 {
            if !section.addralign.is_power_of_two() {
                return Err(elf.bad(format!(
                    "section alignment {} is not a power of two",
                    section.addralign
                )));
            }
            at = align_up(at + HEADER_SIZE, section.addralign) - HEADER_SIZE;
        }
        addrs[index] = at;
        let end = at
            .checked_add(section.size)
            .filter(|&end| end <= MAX_KERNEL_SIZE)
            .ok_or_else(|| too_big(format!("kernel sections end past {MAX_KERNEL_SIZE:#x}")))?;
        Ok(end)
    };
    let page_end = |end: u64| align_up(end + HEADER_SIZE, PAGE) - HEADER_SIZE;

    let mut end = 0;
    let mut any_text = false;
    for (index, section) in elf.sections.iter().enumerate() {
        if section.is_text() {
            end = place(index, section, end)?;
            any_text = true;
        }
    }
    if !any_text {
        return Err(elf.bad("no code section".into()));
    }
    let exec_size = page_end(end);
    end = exec_size;
    for (index, section) in elf.sections.iter().enumerate() {
        if section.is_data() {
            end = place(index, section, end)?;
        }
    }
    let bss_start = end;
    for (index, section) in elf.sections.iter().enumerate() {
        if section.is_bss() {
            end = place(index, section, end)?;
        }
    }
    // BSS is part of the file: some firmware does not zero a PE section's tail.
    let bss_end = page_end(end);
    let mut kernel_size = bss_end;
    let mut got_offset = kernel_size;
    if arm64 {
        kernel_size = align_up(kernel_size, 16);
        got_offset = kernel_size;
        kernel_size += align_up(got_size, 16);
    }
    kernel_size = align_up(kernel_size, PAGE);
    if kernel_size > MAX_KERNEL_SIZE {
        return Err(too_big(format!("kernel image of {kernel_size:#x} bytes")));
    }
    Ok(Layout {
        addrs,
        exec_size,
        kernel_size,
        got_offset,
        got_size,
        bss_start,
        bss_end,
    })
}

/// Symbol values relocated to their RVAs, and the entry point.
struct Symbols {
    values: Vec<u64>,
    start: u64,
}

fn symbols(elf: &Elf, layout: &Layout) -> Result<Symbols, EngineError> {
    let table = elf
        .sections
        .iter()
        .find(|s| s.kind == SHT_SYMTAB)
        .copied()
        .ok_or_else(|| elf.bad("no symbol table".into()))?;
    let names = elf.bytes(&elf.section(table.link)?)?;
    let mut values = Vec::new();
    let mut start = None;
    for entry in elf.entries(&table, 24)? {
        let name_offset = super::le_u32(entry, 0).unwrap_or_default();
        let index = super::le_u16(entry, 6).unwrap_or_default();
        let mut value = le_u64(entry, 8).unwrap_or_default();
        let name = string(names, name_offset);
        let located = match index {
            SHN_ABS => false,
            SHN_UNDEF if name_offset == 0 => false,
            // Linker-defined symbols left undefined by `ld -r`; grub-mkimage gives them
            // offsets, not RVAs.
            SHN_UNDEF if name == b"__bss_start" => {
                value = layout.bss_start;
                true
            }
            SHN_UNDEF if name == b"_end" => {
                value = layout.bss_end;
                true
            }
            SHN_UNDEF => {
                return Err(elf.bad(format!(
                    "undefined symbol {}",
                    String::from_utf8_lossy(name)
                )));
            }
            index if usize::from(index) >= elf.sections.len() => {
                return Err(elf.bad(format!("symbol in section {index}, which does not exist")));
            }
            index => {
                value = value.wrapping_add(layout.vaddr(usize::from(index)));
                true
            }
        };
        if located && start.is_none() && (name == b"_start" || name == b"start") {
            start = Some(value);
        }
        values.push(value);
    }
    let start = start.ok_or_else(|| elf.bad("no start symbol".into()))?;
    Ok(Symbols { values, start })
}

/// PE base relocation blocks, built in the order relocations come.
#[derive(Debug, Default)]
struct Fixups {
    out: Vec<u8>,
    block: Option<(u32, Vec<u16>)>,
}

impl Fixups {
    fn write_block(&mut self, page: u32, entries: &[u16]) {
        let size = 8 + 2 * entries.len();
        self.out.extend_from_slice(&page.to_le_bytes());
        self.out.extend_from_slice(&(size as u32).to_le_bytes());
        for entry in entries {
            self.out.extend_from_slice(&entry.to_le_bytes());
        }
    }

    fn add(&mut self, kind: u16, rva: u64) -> Result<(), EngineError> {
        let rva = to_u32(rva, "relocation address")?;
        if let Some((page, entries)) = self.block.take() {
            if rva < page || rva - page >= 0x1000 {
                // A block closed by a new page is padded to 8 bytes with zero entries.
                let mut entries = entries;
                entries.resize(entries.len().next_multiple_of(4), 0);
                self.write_block(page, &entries);
            } else {
                self.block = Some((page, entries));
            }
        }
        let (page, entries) = self.block.get_or_insert_with(|| (rva & !0xFFF, Vec::new()));
        // An entry's offset has 12 bits, so a page can only hold 0x1000 distinct ones.
        if entries.len() >= 0x1000 {
            return Err(too_big("too many relocations in one page".into()));
        }
        entries.push((kind << 12) | (rva - *page) as u16);
        Ok(())
    }

    /// The table; the last block is padded with zero entries so that it ends on a page.
    fn finish(mut self) -> Vec<u8> {
        if let Some((page, mut entries)) = self.block.take() {
            let end = (self.out.len() + 8 + 2 * entries.len()) as u64;
            let padding = (align_up(end, PAGE) - end) / 2;
            entries.resize(entries.len() + padding as usize, 0);
            self.write_block(page, &entries);
        }
        self.out
    }
}

/// ADRP: the page offset in pages, low 2 bits in immlo (bits 29..30), the next 19 in immhi
/// (bits 5..23).
fn set_hi21(insn: u32, page_offset: i64) -> u32 {
    let pages = page_offset >> 12;
    let value = (((pages & 3) as u32) << 29) | ((((pages >> 2) & 0x7FFFF) as u32) << 5);
    (insn & 0x9F00_001F) | value
}

/// ADD (immediate): the address's low 12 bits in imm12 (bits 10..21).
fn set_lo12(insn: u32, address: u64) -> u32 {
    (insn & 0xFFC0_03FF) | (((address & 0xFFF) as u32) << 10)
}

/// The 64-bit load's scaled 12-bit offset: bits 3..11 of the address go to bits 10..18
/// (bits 19..21 of the field stay as assembled, zero).
fn set_lo12_ldst64(insn: u32, address: u64) -> u32 {
    (insn & 0xFFF8_03FF) | ((((address >> 3) & 0x1FF) as u32) << 10)
}

/// B/BL: the word offset in imm26 (bits 0..25).
fn set_branch26(insn: u32, offset: i64) -> u32 {
    (insn & 0xFC00_0000) | (((offset >> 2) as u32) & 0x03FF_FFFF)
}

/// Rewrites the 32-bit little-endian word at `at` (in bounds: checked by the caller).
fn patch32(image: &mut [u8], at: usize, change: impl FnOnce(u32) -> u32) {
    let old = super::le_u32(image, at).unwrap_or_default();
    put_u32(image, at, change(old));
}

/// One relocation entry.
#[derive(Debug, Clone, Copy)]
struct Rela {
    offset: u64,
    symbol: u32,
    kind: u32,
    addend: i64,
}

fn relocations<'a>(
    elf: &Elf<'a>,
    table: &Section,
) -> Result<impl Iterator<Item = Rela> + use<'a>, EngineError> {
    let with_addend = table.kind == SHT_RELA;
    let entries = elf.entries(table, if with_addend { 24 } else { 16 })?;
    Ok(entries.map(move |entry| {
        let info = le_u64(entry, 8).unwrap_or_default();
        Rela {
            offset: le_u64(entry, 0).unwrap_or_default(),
            symbol: (info >> 32) as u32,
            kind: info as u32,
            addend: if with_addend {
                le_u64(entry, 16).unwrap_or_default() as i64
            } else {
                0
            },
        }
    }))
}

/// Whether a relocation table's section is loaded: `.rela.X`/`.rel.X` belong to the first
/// section named `X`; tables named otherwise are always applied.
fn table_is_kept(elf: &Elf, table: &Section) -> bool {
    let name = elf.name(table);
    let Some(target) = [b".rela".as_slice(), b".rel"].iter().find_map(|prefix| {
        name.strip_prefix(*prefix)
            .filter(|rest| rest.starts_with(b"."))
    }) else {
        return true;
    };
    elf.sections
        .iter()
        .find(|s| elf.name(s) == target)
        .is_some_and(Section::is_kept)
}

/// The loaded, relocated kernel and its base relocation table.
struct Linked {
    image: Vec<u8>,
    exec_size: u64,
    entry: u64,
    relocs: Vec<u8>,
}

fn link(kernel: &[u8], arch: EfiArch) -> Result<Linked, EngineError> {
    let elf = Elf::parse(kernel, arch)?;
    let tables: Vec<Section> = elf
        .sections
        .iter()
        .filter(|s| s.kind == SHT_RELA || s.kind == SHT_REL)
        .copied()
        .collect();
    // Every GOT-page relocation gets its own 8-byte slot, kept or not.
    let mut got_size = 0;
    if arch == EfiArch::Arm64 {
        for table in &tables {
            got_size += 8 * relocations(&elf, table)?
                .filter(|r| r.kind == R_AARCH64_ADR_GOT_PAGE)
                .count() as u64;
        }
    }
    let layout = layout(&elf, arch == EfiArch::Arm64, got_size)?;
    let symbols = symbols(&elf, &layout)?;

    let mut image = vec![0u8; layout.kernel_size as usize];
    for (index, section) in elf.sections.iter().enumerate() {
        if section.is_kept() && section.kind != SHT_NOBITS {
            let at = layout.addrs[index] as usize;
            image[at..at + section.size as usize].copy_from_slice(elf.bytes(section)?);
        }
    }

    let mut fixups = Fixups::default();
    let mut got_used = 0u64;
    let mut unmatched_got_pages = 0usize;
    for table in tables.iter().filter(|t| table_is_kept(&elf, t)) {
        let target_index = table.info;
        let target = elf.section(target_index)?;
        if !target.is_kept() || target.kind == SHT_NOBITS {
            return Err(elf.bad(format!(
                "relocations for section {}, which is not loaded",
                String::from_utf8_lossy(elf.name(&target))
            )));
        }
        let base = layout.addrs[target_index as usize];
        let entries: Vec<Rela> = relocations(&elf, table)?.collect();
        for (position, rela) in entries.iter().enumerate() {
            let symbol = symbols
                .values
                .get(rela.symbol as usize)
                .copied()
                .ok_or_else(|| {
                    elf.bad(format!(
                        "relocation of symbol {}, which does not exist",
                        rela.symbol
                    ))
                })?;
            let value = symbol.wrapping_add(rela.addend as u64);
            let place = base + HEADER_SIZE + rela.offset;
            let field = |width: u64| -> Result<usize, EngineError> {
                rela.offset
                    .checked_add(width)
                    .filter(|&end| end <= target.size)
                    .map(|_| (base + rela.offset) as usize)
                    .ok_or_else(|| {
                        elf.bad(format!("relocation at {:#x} past its section", rela.offset))
                    })
            };
            let relative = value.wrapping_sub(place) as i64;
            let fits_i32 = |v: i64| i32::try_from(v).is_ok();
            let unsupported = || {
                elf.bad(format!(
                    "relocation type {} is not supported for {}",
                    rela.kind,
                    arch.platform()
                ))
            };
            let out_of_range =
                |what: &str| elf.bad(format!("{what} relocation at {place:#x} out of range"));
            match (arch, rela.kind) {
                (EfiArch::X86_64, R_X86_64_NONE) => {}
                (EfiArch::X86_64, R_X86_64_64) | (EfiArch::Arm64, R_AARCH64_ABS64) => {
                    let at = field(8)?;
                    let old = le_u64(&image, at).unwrap_or_default();
                    put_u64(&mut image, at, old.wrapping_add(value));
                    fixups.add(REL_BASED_DIR64, place)?;
                }
                (EfiArch::X86_64, R_X86_64_PC32 | R_X86_64_PLT32)
                | (EfiArch::Arm64, R_AARCH64_PREL32) => {
                    if !fits_i32(relative) {
                        return Err(out_of_range("32-bit relative"));
                    }
                    let at = field(4)?;
                    patch32(&mut image, at, |old| old.wrapping_add(relative as u32));
                }
                (EfiArch::X86_64, R_X86_64_PC64) => {
                    let at = field(8)?;
                    let old = le_u64(&image, at).unwrap_or_default();
                    put_u64(&mut image, at, old.wrapping_add(relative as u64));
                }
                // A PE loader can only move 64-bit absolute addresses.
                (EfiArch::X86_64, R_X86_64_32 | R_X86_64_32S) => {
                    return Err(
                        elf.bad("32-bit absolute relocations cannot be based in a PE image".into())
                    );
                }
                (EfiArch::Arm64, R_AARCH64_ADD_ABS_LO12_NC) => {
                    let at = field(4)?;
                    patch32(&mut image, at, |insn| set_lo12(insn, value));
                }
                (EfiArch::Arm64, R_AARCH64_LDST64_ABS_LO12_NC) => {
                    let at = field(4)?;
                    patch32(&mut image, at, |insn| set_lo12_ldst64(insn, value));
                }
                (EfiArch::Arm64, R_AARCH64_JUMP26 | R_AARCH64_CALL26) => {
                    if !(-(1 << 27)..(1 << 27)).contains(&relative) {
                        return Err(out_of_range("branch"));
                    }
                    let at = field(4)?;
                    patch32(&mut image, at, |insn| set_branch26(insn, relative));
                }
                (EfiArch::Arm64, R_AARCH64_ADR_PREL_PG_HI21) => {
                    let pages = (value & !0xFFF).wrapping_sub(place & !0xFFF) as i64;
                    if !fits_i32(pages) {
                        return Err(out_of_range("page"));
                    }
                    let at = field(4)?;
                    patch32(&mut image, at, |insn| set_hi21(insn, pages));
                }
                (EfiArch::Arm64, R_AARCH64_ADR_GOT_PAGE) => {
                    // The slot holds the address; ADRP gets the slot's page, and the first
                    // later LD64_GOT_LO12_NC for the same symbol and addend its offset.
                    if got_used >= layout.got_size {
                        return Err(elf.bad("GOT overflow".into()));
                    }
                    let slot = layout.got_offset + got_used;
                    got_used += 8;
                    put_u64(&mut image, slot as usize, value);
                    let slot_rva = slot + HEADER_SIZE;
                    let pages = (slot_rva & !0xFFF).wrapping_sub(place & !0xFFF) as i64;
                    if !fits_i32(pages) {
                        return Err(out_of_range("GOT page"));
                    }
                    let at = field(4)?;
                    patch32(&mut image, at, |insn| set_hi21(insn, pages));
                    let load = entries[position + 1..]
                        .iter()
                        .find(|other| {
                            other.kind == R_AARCH64_LD64_GOT_LO12_NC
                                && other.symbol == rela.symbol
                                && other.addend == rela.addend
                        })
                        .ok_or_else(|| {
                            elf.bad("ADR_GOT_PAGE without a matching LD64_GOT_LO12_NC".into())
                        })?;
                    let at = load
                        .offset
                        .checked_add(4)
                        .filter(|&end| end <= target.size)
                        .map(|_| (base + load.offset) as usize)
                        .ok_or_else(|| elf.bad("GOT load past its section".into()))?;
                    patch32(&mut image, at, |insn| set_lo12_ldst64(insn, slot_rva));
                    unmatched_got_pages += 1;
                }
                (EfiArch::Arm64, R_AARCH64_LD64_GOT_LO12_NC) => {
                    unmatched_got_pages = unmatched_got_pages.checked_sub(1).ok_or_else(|| {
                        elf.bad("LD64_GOT_LO12_NC without a matching ADR_GOT_PAGE".into())
                    })?;
                }
                _ => return Err(unsupported()),
            }
        }
    }
    // GOT slots hold absolute addresses too; their fixups follow all others.
    for slot in (0..layout.got_size).step_by(8) {
        fixups.add(REL_BASED_DIR64, layout.got_offset + HEADER_SIZE + slot)?;
    }
    Ok(Linked {
        image,
        exec_size: layout.exec_size,
        entry: symbols.start,
        relocs: fixups.finish(),
    })
}

/// The MS-DOS header and the classic "cannot be run in DOS mode" program; `e_lfanew` points
/// at the PE signature right after it.
fn dos_stub() -> [u8; DOS_STUB_SIZE] {
    let mut stub = [0u8; DOS_STUB_SIZE];
    stub[0..2].copy_from_slice(b"MZ");
    // Header fields: bytes on the last page, pages, header paragraphs, maximum extra
    // paragraphs, initial SP, relocation table offset.
    for (at, value) in [
        (0x02, 0x90u16),
        (0x04, 3),
        (0x08, 4),
        (0x0C, 0xFFFF),
        (0x10, 0xB8),
        (0x18, 0x40),
    ] {
        put_u16(&mut stub, at, value);
    }
    put_u32(&mut stub, 0x3C, DOS_STUB_SIZE as u32);
    // push cs; pop ds; mov dx, message; mov ah, 9; int 21h; mov ax, 4C01h; int 21h
    let program = [
        0x0E, 0x1F, 0xBA, 0x0E, 0x00, 0xB4, 0x09, 0xCD, 0x21, 0xB8, 0x01, 0x4C, 0xCD, 0x21,
    ];
    stub[0x40..0x40 + program.len()].copy_from_slice(&program);
    let message = b"This program cannot be run in DOS mode.\r\r\n$";
    let at = 0x40 + program.len();
    stub[at..at + message.len()].copy_from_slice(message);
    stub
}

struct PeSection {
    name: &'static [u8],
    virtual_size: u64,
    rva: u64,
    raw_size: u64,
    characteristics: u32,
}

/// The PE32+ file: headers, `.text` + `.data` (the linked kernel), `mods`, `.reloc`.
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
            name: b".text",
            virtual_size: linked.exec_size,
            rva: HEADER_SIZE,
            raw_size: linked.exec_size,
            characteristics: SCN_CODE | SCN_EXECUTE | SCN_READ,
        },
        PeSection {
            name: b".data",
            virtual_size: align_up(data_raw, PAGE),
            rva: HEADER_SIZE + linked.exec_size,
            raw_size: data_raw,
            characteristics: SCN_INITIALIZED_DATA | SCN_READ | SCN_WRITE,
        },
        PeSection {
            name: b"mods",
            virtual_size: align_up(mods_raw, PAGE),
            rva: HEADER_SIZE + kernel_size,
            raw_size: mods_raw,
            characteristics: SCN_INITIALIZED_DATA | SCN_READ | SCN_WRITE,
        },
        PeSection {
            name: b".reloc",
            virtual_size: align_up(reloc_size, PAGE),
            rva: HEADER_SIZE + kernel_size + align_up(mods_raw, PAGE),
            raw_size: reloc_size,
            characteristics: SCN_INITIALIZED_DATA | SCN_DISCARDABLE | SCN_READ,
        },
    ];
    debug_assert_eq!(SECTIONS, sections.len());

    pe[..DOS_STUB_SIZE].copy_from_slice(&dos_stub());
    pe[DOS_STUB_SIZE..COFF_HEADER].copy_from_slice(b"PE\0\0");
    put_u16(&mut pe, COFF_HEADER, arch.pe_machine());
    put_u16(&mut pe, COFF_HEADER + 2, SECTIONS as u16);
    put_u32(&mut pe, COFF_HEADER + 4, PE_TIMESTAMP);
    put_u16(&mut pe, COFF_HEADER + 16, OPTIONAL_HEADER_SIZE as u16);
    put_u16(&mut pe, COFF_HEADER + 18, COFF_CHARACTERISTICS);

    let o = OPTIONAL_HEADER;
    put_u16(&mut pe, o, PE32_PLUS);
    put_u32(&mut pe, o + 4, to_u32(linked.exec_size, "code size")?);
    // Initialized data counts `.data` and `mods`, each rounded to a page.
    let data_size = align_up(data_raw, PAGE) + align_up(area.len() as u64, PAGE);
    put_u32(&mut pe, o + 8, to_u32(data_size, "data size")?);
    put_u32(&mut pe, o + 16, to_u32(linked.entry, "entry point")?);
    put_u32(&mut pe, o + 20, HEADER_SIZE as u32);
    // Image base 0 (o + 24): the firmware always relocates.
    put_u32(&mut pe, o + 32, PAGE as u32);
    put_u32(&mut pe, o + 36, PAGE as u32);
    put_u32(&mut pe, o + 56, image_size);
    put_u32(&mut pe, o + 60, HEADER_SIZE as u32);
    put_u16(&mut pe, o + 68, SUBSYSTEM_EFI_APPLICATION);
    for field in 0..4 {
        put_u64(&mut pe, o + 72 + 8 * field, STACK_AND_HEAP_SIZE);
    }
    put_u32(&mut pe, o + 108, DATA_DIRECTORIES);
    let directory = o + 112 + 8 * BASE_RELOCATION_DIRECTORY;
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
        let at = SECTION_TABLE + index * SECTION_HEADER_SIZE;
        pe[at..at + section.name.len()].copy_from_slice(section.name);
        put_u32(
            &mut pe,
            at + 8,
            to_u32(section.virtual_size, "section size")?,
        );
        put_u32(&mut pe, at + 12, to_u32(section.rva, "section address")?);
        put_u32(&mut pe, at + 16, to_u32(section.raw_size, "section size")?);
        put_u32(&mut pe, at + 20, to_u32(raw, "section offset")?);
        put_u32(&mut pe, at + 36, section.characteristics);
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
