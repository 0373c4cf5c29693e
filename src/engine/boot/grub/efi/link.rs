//! The small linker inside `grub-mkimage` for EFI targets: `kernel.img`, a relocatable ELF64
//! object read through [`crate::engine::elf`], laid out for image base 0 and relocated, with
//! the PE base relocations a firmware needs to move it. One function per architecture applies
//! its relocation types.

use super::{EfiArch, HEADER_SIZE, PAGE, align_up, to_u32, too_big};
use crate::engine::EngineError;
use crate::engine::boot::grub::invalid_in;
use crate::engine::bytes::{le_u32, le_u64, put_u32, put_u64};
use crate::engine::elf::{
    Class, Elf, Expected, Relocation, SHN_ABS, SHN_UNDEF, SHT_NOBITS, SHT_REL, SHT_RELA,
    SHT_SYMTAB, Section,
};
use std::ops::Deref;

/// Far above any real GRUB kernel (about 0x1C000 bytes); refuses allocations a corrupt
/// `SHT_NOBITS` size would ask for.
const MAX_KERNEL_SIZE: u64 = 64 << 20;

/// PE base relocation type for a 64-bit absolute address.
pub(super) const REL_BASED_DIR64: u16 = 10;

pub(super) const R_X86_64_NONE: u32 = 0;
pub(super) const R_X86_64_64: u32 = 1;
pub(super) const R_X86_64_PC32: u32 = 2;
pub(super) const R_X86_64_PLT32: u32 = 4;
pub(super) const R_X86_64_32: u32 = 10;
pub(super) const R_X86_64_32S: u32 = 11;
pub(super) const R_X86_64_PC64: u32 = 24;

pub(super) const R_AARCH64_ABS64: u32 = 257;
pub(super) const R_AARCH64_PREL32: u32 = 261;
pub(super) const R_AARCH64_ADR_PREL_PG_HI21: u32 = 275;
pub(super) const R_AARCH64_ADD_ABS_LO12_NC: u32 = 277;
pub(super) const R_AARCH64_JUMP26: u32 = 282;
pub(super) const R_AARCH64_CALL26: u32 = 283;
pub(super) const R_AARCH64_LDST64_ABS_LO12_NC: u32 = 286;
pub(super) const R_AARCH64_ADR_GOT_PAGE: u32 = 311;
pub(super) const R_AARCH64_LD64_GOT_LO12_NC: u32 = 312;

/// Where a section ends up: code in `.text`, data and BSS in `.data`; everything else
/// (symbols, relocations, notes) is only read.
trait Placement {
    fn is_text(&self) -> bool;
    fn is_data(&self) -> bool;
    fn is_bss(&self) -> bool;
    fn is_kept(&self) -> bool {
        self.is_text() || self.is_data() || self.is_bss()
    }
}

impl Placement for Section {
    fn is_text(&self) -> bool {
        self.is_code()
    }

    fn is_data(&self) -> bool {
        self.is_loaded_data() && self.kind != SHT_NOBITS
    }

    fn is_bss(&self) -> bool {
        self.is_loaded_data() && self.kind == SHT_NOBITS
    }
}

/// `kernel.img` of one EFI platform: the ELF file, and the platform files its errors name.
pub(super) struct Kernel<'a> {
    elf: Elf<'a>,
    files: &'static str,
}

impl<'a> Deref for Kernel<'a> {
    type Target = Elf<'a>;

    fn deref(&self) -> &Elf<'a> {
        &self.elf
    }
}

impl<'a> Kernel<'a> {
    fn parse(data: &'a [u8], arch: EfiArch) -> Result<Kernel<'a>, EngineError> {
        let files = arch.files();
        let expected = Expected {
            class: Some(Class::Elf64),
            machine: Some(arch.elf_machine()),
        };
        let elf = Elf::parse(data, expected)
            .map_err(|error| invalid_in(files, format!("kernel.img: {error}")))?;
        Ok(Kernel { elf, files })
    }

    fn bad(&self, reason: String) -> EngineError {
        invalid_in(self.files, format!("kernel.img: {reason}"))
    }

    fn section(&self, index: u32) -> Result<Section, EngineError> {
        self.elf
            .section(index)
            .map_err(|error| self.bad(error.to_string()))
    }

    fn bytes(&self, section: &Section) -> Result<&'a [u8], EngineError> {
        self.elf
            .contents(section)
            .map_err(|_| self.bad("section data past the end of the file".into()))
    }

    fn relocations(&self, table: &Section) -> Result<Vec<Relocation>, EngineError> {
        let bad = |error: crate::engine::elf::ElfError| self.bad(error.to_string());
        self.elf
            .relocations(table)
            .map_err(bad)?
            .collect::<Result<_, _>>()
            .map_err(bad)
    }
}

/// Where each section goes, as offsets from the start of `.text` (RVA `HEADER_SIZE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layout {
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
    /// The virtual address of section `index`, if the kernel has that section.
    fn vaddr(&self, index: usize) -> Option<u64> {
        self.addrs.get(index).map(|addr| addr + HEADER_SIZE)
    }
}

/// `got_size` is only for arm64 (`arm64` true), whose kernel also gets 16-byte aligned.
pub(super) fn layout(elf: &Kernel, arm64: bool, got_size: u64) -> Result<Layout, EngineError> {
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
        if let Some(slot) = addrs.get_mut(index) {
            // Always there: one address per section of the same table.
            *slot = at;
        }
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
pub(super) struct Symbols {
    values: Vec<u64>,
    start: u64,
}

fn symbols(elf: &Kernel, layout: &Layout) -> Result<Symbols, EngineError> {
    let table = elf
        .sections
        .iter()
        .find(|s| s.kind == SHT_SYMTAB)
        .copied()
        .ok_or_else(|| elf.bad("no symbol table".into()))?;
    let mut values = Vec::new();
    let mut start = None;
    let entries = elf
        .elf
        .symbols(&table)
        .map_err(|error| elf.bad(error.to_string()))?;
    for symbol in entries {
        let symbol = symbol.map_err(|error| elf.bad(error.to_string()))?;
        let name = symbol.name;
        let mut value = symbol.value;
        let located = match symbol.section {
            SHN_ABS => false,
            SHN_UNDEF if symbol.name_offset == 0 => false,
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
            index => {
                let address = layout.vaddr(usize::from(index)).ok_or_else(|| {
                    elf.bad(format!("symbol in section {index}, which does not exist"))
                })?;
                value = value.wrapping_add(address);
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
pub(super) struct Fixups {
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

    pub(super) fn add(&mut self, kind: u16, rva: u64) -> Result<(), EngineError> {
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
    pub(super) fn finish(mut self) -> Vec<u8> {
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
pub(super) fn set_hi21(insn: u32, page_offset: i64) -> u32 {
    let pages = page_offset >> 12;
    let value = (((pages & 3) as u32) << 29) | ((((pages >> 2) & 0x7FFFF) as u32) << 5);
    (insn & 0x9F00_001F) | value
}

/// ADD (immediate): the address's low 12 bits in imm12 (bits 10..21).
pub(super) fn set_lo12(insn: u32, address: u64) -> u32 {
    (insn & 0xFFC0_03FF) | (((address & 0xFFF) as u32) << 10)
}

/// The 64-bit load's scaled 12-bit offset: bits 3..11 of the address go to bits 10..18
/// (bits 19..21 of the field stay as assembled, zero).
pub(super) fn set_lo12_ldst64(insn: u32, address: u64) -> u32 {
    (insn & 0xFFF8_03FF) | ((((address >> 3) & 0x1FF) as u32) << 10)
}

/// B/BL: the word offset in imm26 (bits 0..25).
pub(super) fn set_branch26(insn: u32, offset: i64) -> u32 {
    (insn & 0xFC00_0000) | (((offset >> 2) as u32) & 0x03FF_FFFF)
}

/// Rewrites the 32-bit little-endian word at `at` (in bounds: checked by the caller).
fn patch32(image: &mut [u8], at: usize, change: impl FnOnce(u32) -> u32) {
    let old = le_u32(image, at).unwrap_or_default();
    put_u32(image, at, change(old));
}

/// Whether a relocation table's section is loaded: `.rela.X`/`.rel.X` belong to the first
/// section named `X`; tables named otherwise are always applied.
fn table_is_kept(elf: &Kernel, table: &Section) -> bool {
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
        .is_some_and(|section| section.is_kept())
}

/// The loaded, relocated kernel and its base relocation table.
pub(super) struct Linked {
    pub image: Vec<u8>,
    pub exec_size: u64,
    pub entry: u64,
    pub relocs: Vec<u8>,
}

/// One relocation being applied: what it resolves to and where it patches.
struct Site {
    rela: Relocation,
    /// Symbol plus addend.
    value: u64,
    /// The patched field's RVA.
    place: u64,
    /// Where the target section starts in the image, and its size.
    base: u64,
    target_size: u64,
}

impl Site {
    fn relative(&self) -> i64 {
        self.value.wrapping_sub(self.place) as i64
    }
}

/// The image being relocated, with the base relocations and GOT slots used so far.
struct Linker<'k, 'a> {
    kernel: &'k Kernel<'a>,
    arch: EfiArch,
    layout: &'k Layout,
    image: Vec<u8>,
    fixups: Fixups,
    got_used: u64,
    unmatched_got_pages: usize,
}

impl Linker<'_, '_> {
    /// The image offset of a field of `width` bytes at `offset` in the site's section.
    fn field_at(&self, site: &Site, offset: u64, width: u64) -> Result<usize, EngineError> {
        offset
            .checked_add(width)
            .filter(|&end| end <= site.target_size)
            .map(|_| (site.base + offset) as usize)
            .ok_or_else(|| {
                self.kernel
                    .bad(format!("relocation at {offset:#x} past its section"))
            })
    }

    fn field(&self, site: &Site, width: u64) -> Result<usize, EngineError> {
        self.field_at(site, site.rela.offset, width)
    }

    fn out_of_range(&self, site: &Site, what: &str) -> EngineError {
        self.kernel.bad(format!(
            "{what} relocation at {:#x} out of range",
            site.place
        ))
    }

    /// A 64-bit absolute address, which the firmware moves through a base relocation.
    fn absolute64(&mut self, site: &Site) -> Result<(), EngineError> {
        let at = self.field(site, 8)?;
        let old = le_u64(&self.image, at).unwrap_or_default();
        put_u64(&mut self.image, at, old.wrapping_add(site.value));
        self.fixups.add(REL_BASED_DIR64, site.place)
    }

    fn relative32(&mut self, site: &Site) -> Result<(), EngineError> {
        let relative = site.relative();
        if i32::try_from(relative).is_err() {
            return Err(self.out_of_range(site, "32-bit relative"));
        }
        let at = self.field(site, 4)?;
        patch32(&mut self.image, at, |old| old.wrapping_add(relative as u32));
        Ok(())
    }

    fn unsupported(&self, site: &Site) -> EngineError {
        self.kernel.bad(format!(
            "relocation type {} is not supported for {}",
            site.rela.kind,
            self.arch.platform()
        ))
    }

    fn x86_64(&mut self, site: &Site) -> Result<(), EngineError> {
        match site.rela.kind {
            R_X86_64_NONE => Ok(()),
            R_X86_64_64 => self.absolute64(site),
            R_X86_64_PC32 | R_X86_64_PLT32 => self.relative32(site),
            R_X86_64_PC64 => {
                let at = self.field(site, 8)?;
                let old = le_u64(&self.image, at).unwrap_or_default();
                put_u64(
                    &mut self.image,
                    at,
                    old.wrapping_add(site.relative() as u64),
                );
                Ok(())
            }
            // A PE loader can only move 64-bit absolute addresses.
            R_X86_64_32 | R_X86_64_32S => Err(self
                .kernel
                .bad("32-bit absolute relocations cannot be based in a PE image".into())),
            _ => Err(self.unsupported(site)),
        }
    }

    /// `later` are the relocations after this one in its table, where a GOT page's load is.
    fn arm64(&mut self, site: &Site, later: &[Relocation]) -> Result<(), EngineError> {
        let value = site.value;
        match site.rela.kind {
            R_AARCH64_ABS64 => self.absolute64(site),
            R_AARCH64_PREL32 => self.relative32(site),
            R_AARCH64_ADD_ABS_LO12_NC => {
                let at = self.field(site, 4)?;
                patch32(&mut self.image, at, |insn| set_lo12(insn, value));
                Ok(())
            }
            R_AARCH64_LDST64_ABS_LO12_NC => {
                let at = self.field(site, 4)?;
                patch32(&mut self.image, at, |insn| set_lo12_ldst64(insn, value));
                Ok(())
            }
            R_AARCH64_JUMP26 | R_AARCH64_CALL26 => {
                let relative = site.relative();
                if !(-(1 << 27)..(1 << 27)).contains(&relative) {
                    return Err(self.out_of_range(site, "branch"));
                }
                let at = self.field(site, 4)?;
                patch32(&mut self.image, at, |insn| set_branch26(insn, relative));
                Ok(())
            }
            R_AARCH64_ADR_PREL_PG_HI21 => {
                let pages = (value & !0xFFF).wrapping_sub(site.place & !0xFFF) as i64;
                if i32::try_from(pages).is_err() {
                    return Err(self.out_of_range(site, "page"));
                }
                let at = self.field(site, 4)?;
                patch32(&mut self.image, at, |insn| set_hi21(insn, pages));
                Ok(())
            }
            R_AARCH64_ADR_GOT_PAGE => self.got_page(site, later),
            R_AARCH64_LD64_GOT_LO12_NC => {
                self.unmatched_got_pages =
                    self.unmatched_got_pages.checked_sub(1).ok_or_else(|| {
                        self.kernel
                            .bad("LD64_GOT_LO12_NC without a matching ADR_GOT_PAGE".into())
                    })?;
                Ok(())
            }
            _ => Err(self.unsupported(site)),
        }
    }

    /// The slot holds the address; ADRP gets the slot's page, and the first later
    /// LD64_GOT_LO12_NC for the same symbol and addend its offset.
    fn got_page(&mut self, site: &Site, later: &[Relocation]) -> Result<(), EngineError> {
        if self.got_used >= self.layout.got_size {
            return Err(self.kernel.bad("GOT overflow".into()));
        }
        let slot = self.layout.got_offset + self.got_used;
        self.got_used += 8;
        put_u64(&mut self.image, slot as usize, site.value);
        let slot_rva = slot + HEADER_SIZE;
        let pages = (slot_rva & !0xFFF).wrapping_sub(site.place & !0xFFF) as i64;
        if i32::try_from(pages).is_err() {
            return Err(self.out_of_range(site, "GOT page"));
        }
        let at = self.field(site, 4)?;
        patch32(&mut self.image, at, |insn| set_hi21(insn, pages));
        let rela = site.rela;
        let load = later
            .iter()
            .find(|other| {
                other.kind == R_AARCH64_LD64_GOT_LO12_NC
                    && other.symbol == rela.symbol
                    && other.addend == rela.addend
            })
            .ok_or_else(|| {
                self.kernel
                    .bad("ADR_GOT_PAGE without a matching LD64_GOT_LO12_NC".into())
            })?;
        let at = self
            .field_at(site, load.offset, 4)
            .map_err(|_| self.kernel.bad("GOT load past its section".into()))?;
        patch32(&mut self.image, at, |insn| set_lo12_ldst64(insn, slot_rva));
        self.unmatched_got_pages += 1;
        Ok(())
    }
}

pub(super) fn link(kernel: &[u8], arch: EfiArch) -> Result<Linked, EngineError> {
    let elf = Kernel::parse(kernel, arch)?;
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
            got_size += 8 * elf
                .relocations(table)?
                .iter()
                .filter(|r| r.kind == R_AARCH64_ADR_GOT_PAGE)
                .count() as u64;
        }
    }
    let layout = layout(&elf, arch == EfiArch::Arm64, got_size)?;
    let symbols = symbols(&elf, &layout)?;

    let mut image = vec![0u8; layout.kernel_size as usize];
    for (section, &at) in elf.sections.iter().zip(&layout.addrs) {
        if section.is_kept() && section.kind != SHT_NOBITS {
            let at = at as usize;
            let bytes = elf.bytes(section)?;
            image
                .get_mut(at..at + bytes.len())
                .ok_or_else(|| too_big(format!("a section at {at:#x} ends past the kernel")))?
                .copy_from_slice(bytes);
        }
    }

    let mut linker = Linker {
        kernel: &elf,
        arch,
        layout: &layout,
        image,
        fixups: Fixups::default(),
        got_used: 0,
        unmatched_got_pages: 0,
    };
    for table in tables.iter().filter(|t| table_is_kept(&elf, t)) {
        let target_index = table.info;
        let target = elf.section(target_index)?;
        if !target.is_kept() || target.kind == SHT_NOBITS {
            return Err(elf.bad(format!(
                "relocations for section {}, which is not loaded",
                String::from_utf8_lossy(elf.name(&target))
            )));
        }
        let base = layout
            .addrs
            .get(target_index as usize)
            .copied()
            .ok_or_else(|| {
                elf.bad(format!(
                    "relocations for section {target_index}, which does not exist"
                ))
            })?;
        let entries = elf.relocations(table)?;
        let mut rest = entries.as_slice();
        while let Some((&rela, following)) = rest.split_first() {
            rest = following;
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
            let site = Site {
                rela,
                value: symbol.wrapping_add(rela.addend as u64),
                place: base + HEADER_SIZE + rela.offset,
                base,
                target_size: target.size,
            };
            match arch {
                EfiArch::X86_64 => linker.x86_64(&site)?,
                EfiArch::Arm64 => linker.arm64(&site, following)?,
            }
        }
    }
    // GOT slots hold absolute addresses too; their fixups follow all others.
    let mut fixups = linker.fixups;
    for slot in (0..layout.got_size).step_by(8) {
        fixups.add(REL_BASED_DIR64, layout.got_offset + HEADER_SIZE + slot)?;
    }
    Ok(Linked {
        image: linker.image,
        exec_size: layout.exec_size,
        entry: symbols.start,
        relocs: fixups.finish(),
    })
}
