//! Small hand-built `kernel.img` objects: every value expected here was also checked against
//! `grub-mkimage` 2.06 on objects of the same shape (assets-tests/tests/grub_efi.rs compares
//! the real kernels and modules byte for byte).

use super::link::*;
use super::*;
use crate::engine::boot::grub::{MODULE_MAGIC, OBJ_TYPE_ELF, OBJ_TYPE_PREFIX};
use crate::engine::bytes::{le_u16, le_u32, le_u64};
use crate::engine::elf::{SHF_ALLOC, SHF_EXECINSTR, SHT_NOBITS, SHT_RELA, SHT_SYMTAB};

const AX: u64 = SHF_ALLOC | SHF_EXECINSTR;
const WA: u64 = SHF_ALLOC | 1;
const PROGBITS: u32 = 1;
const STRTAB: u32 = 3;

struct Sec {
    name: &'static str,
    kind: u32,
    flags: u64,
    align: u64,
    data: Vec<u8>,
    /// For `SHT_NOBITS`.
    size: u64,
    link: u32,
    info: u32,
    entsize: u64,
}

fn progbits(name: &'static str, flags: u64, align: u64, data: Vec<u8>) -> Sec {
    Sec {
        name,
        kind: PROGBITS,
        flags,
        align,
        size: data.len() as u64,
        data,
        link: 0,
        info: 0,
        entsize: 0,
    }
}

fn nobits(name: &'static str, align: u64, size: u64) -> Sec {
    Sec {
        name,
        kind: SHT_NOBITS,
        flags: WA,
        align,
        data: Vec::new(),
        size,
        link: 0,
        info: 0,
        entsize: 0,
    }
}

/// `.rela<target name>` for section `target` with symbols from section `symtab`:
/// `(offset, symbol, type, addend)`.
fn rela(name: &'static str, symtab: u32, target: u32, entries: &[(u64, u32, u32, i64)]) -> Sec {
    let mut data = Vec::new();
    for &(offset, symbol, kind, addend) in entries {
        data.extend_from_slice(&offset.to_le_bytes());
        data.extend_from_slice(&((u64::from(symbol) << 32) | u64::from(kind)).to_le_bytes());
        data.extend_from_slice(&addend.to_le_bytes());
    }
    Sec {
        name,
        kind: SHT_RELA,
        flags: 0x40,
        align: 8,
        size: data.len() as u64,
        data,
        link: symtab,
        info: target,
        entsize: 24,
    }
}

/// `.symtab` (linked to the next section, `.strtab`) and `.strtab` for `(name, section,
/// value)`; symbol 0 is the null symbol.
fn symbols(symbols: &[(&str, u16, u64)], strtab_index: u32) -> [Sec; 2] {
    let mut table = vec![0u8; 24];
    let mut names = vec![0u8];
    for &(name, section, value) in symbols {
        let name_offset = if name.is_empty() {
            0
        } else {
            let at = names.len() as u32;
            names.extend_from_slice(name.as_bytes());
            names.push(0);
            at
        };
        let mut entry = [0u8; 24];
        put_u32(&mut entry, 0, name_offset);
        // Section symbols are local, named ones global.
        entry[4] = if name.is_empty() { 3 } else { 0x10 };
        put_u16(&mut entry, 6, section);
        put_u64(&mut entry, 8, value);
        table.extend_from_slice(&entry);
    }
    [
        Sec {
            name: ".symtab",
            kind: SHT_SYMTAB,
            flags: 0,
            align: 8,
            size: table.len() as u64,
            data: table,
            link: strtab_index,
            info: 1,
            entsize: 24,
        },
        Sec {
            name: ".strtab",
            kind: STRTAB,
            flags: 0,
            align: 1,
            size: names.len() as u64,
            data: names,
            link: 0,
            info: 0,
            entsize: 0,
        },
    ]
}

/// A relocatable ELF64: section 0 is null, `sections` follow, `.shstrtab` ends the table.
fn elf64(machine: u16, sections: Vec<Sec>) -> Vec<u8> {
    let mut names = vec![0u8];
    let mut name_offsets = Vec::new();
    for section in &sections {
        name_offsets.push(names.len() as u32);
        names.extend_from_slice(section.name.as_bytes());
        names.push(0);
    }
    let shstrtab_name = names.len() as u32;
    names.extend_from_slice(b".shstrtab\0");

    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    elf[6] = 1;
    put_u16(&mut elf, 0x10, 1);
    put_u16(&mut elf, 0x12, machine);
    put_u32(&mut elf, 0x14, 1);
    let mut offsets = Vec::new();
    for section in &sections {
        elf.resize(elf.len().next_multiple_of(8), 0);
        offsets.push(elf.len() as u64);
        elf.extend_from_slice(&section.data);
    }
    let names_offset = elf.len() as u64;
    elf.extend_from_slice(&names);
    elf.resize(elf.len().next_multiple_of(8), 0);
    let shoff = elf.len();
    elf.extend_from_slice(&[0u8; 64]);
    let mut header = |name: u32, s: &Sec, offset: u64| {
        let mut h = [0u8; 64];
        put_u32(&mut h, 0, name);
        put_u32(&mut h, 4, s.kind);
        put_u64(&mut h, 8, s.flags);
        put_u64(&mut h, 24, offset);
        put_u64(&mut h, 32, s.size);
        put_u32(&mut h, 40, s.link);
        put_u32(&mut h, 44, s.info);
        put_u64(&mut h, 48, s.align);
        put_u64(&mut h, 56, s.entsize);
        elf.extend_from_slice(&h);
    };
    for ((section, name), offset) in sections.iter().zip(&name_offsets).zip(&offsets) {
        header(*name, section, *offset);
    }
    let shstrtab = Sec {
        name: ".shstrtab",
        kind: STRTAB,
        flags: 0,
        align: 1,
        data: Vec::new(),
        size: names.len() as u64,
        link: 0,
        info: 0,
        entsize: 0,
    };
    header(shstrtab_name, &shstrtab, names_offset);
    put_u64(&mut elf, 0x28, shoff as u64);
    put_u16(&mut elf, 0x34, 64);
    put_u16(&mut elf, 0x3A, 64);
    put_u16(&mut elf, 0x3C, sections.len() as u16 + 2);
    put_u16(&mut elf, 0x3E, sections.len() as u16 + 1);
    elf
}

/// x86_64: two code sections (the second 64-byte aligned), data with an absolute pointer,
/// BSS, and one relocation of each kind the real kernel uses plus PC64.
fn x86_kernel() -> Vec<u8> {
    let mut text = vec![0u8; 0x20];
    text[0x18] = 0x90;
    let mut data = vec![0u8; 0x10];
    data[..8].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
    let [symtab, strtab] = symbols(
        &[("", 1, 0), ("", 4, 0), ("_start", 1, 0), ("helper", 3, 0)],
        9,
    );
    elf64(
        62,
        vec![
            progbits(".text", AX, 16, text),
            rela(
                ".rela.text",
                8,
                1,
                &[
                    (0x0, 2, R_X86_64_64, 8),
                    (0x8, 4, R_X86_64_PC32, -4),
                    (0x10, 2, R_X86_64_PC64, 0),
                ],
            ),
            progbits(".text.helper", AX, 64, vec![0xC3]),
            progbits(".data", WA, 8, data),
            rela(".rela.data", 8, 4, &[(0x8, 3, R_X86_64_64, 4)]),
            nobits(".bss", 32, 0x2345),
            progbits(".note.GNU-stack", 0, 1, Vec::new()),
            symtab,
            strtab,
        ],
    )
}

fn files_with(kernel: Vec<u8>) -> impl Fn(&str) -> Option<Vec<u8>> {
    move |name: &str| match name {
        "kernel.img" => Some(kernel.clone()),
        "moddep.lst" => Some(b"b: a\na:\n".to_vec()),
        "a.mod" => Some(b"AAAAAAAAA".to_vec()),
        "b.mod" => Some(b"BBBB".to_vec()),
        _ => None,
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    le_u16(bytes, at).unwrap()
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    le_u32(bytes, at).unwrap()
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    le_u64(bytes, at).unwrap()
}

/// (name, virtual size, RVA, raw size, raw offset, characteristics) of each section.
fn section_table(pe: &[u8]) -> Vec<(String, u32, u32, u32, u32, u32)> {
    (0..usize::from(u16_at(pe, 0x86)))
        .map(|i| {
            let at = 0x188 + 40 * i;
            let name = String::from_utf8_lossy(&pe[at..at + 8])
                .trim_end_matches('\0')
                .to_string();
            (
                name,
                u32_at(pe, at + 8),
                u32_at(pe, at + 12),
                u32_at(pe, at + 16),
                u32_at(pe, at + 20),
                u32_at(pe, at + 36),
            )
        })
        .collect()
}

#[test]
fn x86_64_image_layout_and_relocations() {
    let pe = efi_image(EfiArch::X86_64, &files_with(x86_kernel()), "p", &["b"]).unwrap();
    assert_eq!(pe.len(), 0x7000);

    // Headers.
    assert_eq!(&pe[..2], b"MZ");
    assert_eq!(u32_at(&pe, 0x3C), 0x80);
    assert_eq!(
        &pe[0x4E..0x4E + 39],
        b"This program cannot be run in DOS mode."
    );
    assert_eq!(&pe[0x80..0x84], b"PE\0\0");
    assert_eq!(u16_at(&pe, 0x84), 0x8664);
    assert_eq!(u16_at(&pe, 0x86), 4);
    assert_eq!(u32_at(&pe, 0x88), 1_420_070_400);
    assert_eq!(u16_at(&pe, 0x94), 240);
    assert_eq!(u16_at(&pe, 0x96), 0x020E);
    let o = 0x98;
    assert_eq!(u16_at(&pe, o), 0x20B);
    assert_eq!(u32_at(&pe, o + 4), 0x1000, "code size");
    assert_eq!(u32_at(&pe, o + 8), 0x3000 + 0x1000, "data + mods");
    assert_eq!(u32_at(&pe, o + 16), 0x1000, "entry: _start");
    assert_eq!(u32_at(&pe, o + 20), 0x1000);
    assert_eq!(u64_at(&pe, o + 24), 0, "image base");
    assert_eq!(u32_at(&pe, o + 32), 0x1000);
    assert_eq!(u32_at(&pe, o + 36), 0x1000);
    assert_eq!(u32_at(&pe, o + 56), 0x7000, "image size");
    assert_eq!(u32_at(&pe, o + 60), 0x1000, "headers");
    assert_eq!(u16_at(&pe, o + 68), 10, "EFI application");
    assert_eq!(u16_at(&pe, o + 70), 0, "no DLL characteristics");
    for field in 0..4 {
        assert_eq!(u64_at(&pe, o + 72 + 8 * field), 0x10000);
    }
    assert_eq!(u32_at(&pe, o + 108), 16);
    assert_eq!(
        (u32_at(&pe, o + 152), u32_at(&pe, o + 156)),
        (0x6000, 0x1000),
        "base relocation directory"
    );
    let sections = section_table(&pe);
    let expected = [
        (".text", 0x1000, 0x1000, 0x1000, 0x1000, 0x6000_0020),
        (".data", 0x3000, 0x2000, 0x3000, 0x2000, 0xC000_0040),
        ("mods", 0x1000, 0x5000, 0x1000, 0x5000, 0xC000_0040),
        (".reloc", 0x1000, 0x6000, 0x1000, 0x6000, 0x4200_0040),
    ];
    for (got, want) in sections.iter().zip(expected) {
        assert_eq!((got.0.as_str(), got.1, got.2, got.3, got.4, got.5), want);
    }
    assert!(pe[0x238..0x1000].iter().all(|&b| b == 0));

    // .text at 0x1000: absolute `.data + 8` (.data at RVA 0x2000), helper (at RVA 0x1040)
    // relative to 0x1008 + 4, `.data` relative to 0x1010.
    assert_eq!(u64_at(&pe, 0x1000), 0x2008);
    assert_eq!(u32_at(&pe, 0x1008), 0x1040 - 4 - 0x1008);
    assert_eq!(u64_at(&pe, 0x1010), 0x2000 - 0x1010);
    assert_eq!(pe[0x1018], 0x90);
    assert_eq!(pe[0x1040], 0xC3, "64-byte aligned second code section");
    // .data: kept bytes, `_start + 4`, BSS zeros through the page end.
    assert_eq!(u64_at(&pe, 0x2000), 0x1122_3344_5566_7788);
    assert_eq!(u64_at(&pe, 0x2008), 0x1004);
    assert!(pe[0x2010..0x5000].iter().all(|&b| b == 0));

    // mods: grub_module_info64, a then b (b depends on a), each padded to 8, the prefix.
    let mut area = Vec::new();
    area.extend_from_slice(&MODULE_MAGIC.to_le_bytes());
    area.extend_from_slice(&0u32.to_le_bytes());
    area.extend_from_slice(&24u64.to_le_bytes());
    area.extend_from_slice(&(24u64 + 24 + 16 + 16).to_le_bytes());
    for (kind, size, bytes) in [
        (OBJ_TYPE_ELF, 24u32, b"AAAAAAAAA\0\0\0\0\0\0\0".as_slice()),
        (OBJ_TYPE_ELF, 16, b"BBBB\0\0\0\0"),
        (OBJ_TYPE_PREFIX, 16, b"p\0\0\0\0\0\0\0"),
    ] {
        area.extend_from_slice(&kind.to_le_bytes());
        area.extend_from_slice(&size.to_le_bytes());
        area.extend_from_slice(bytes);
    }
    assert_eq!(&pe[0x5000..0x5000 + area.len()], area.as_slice());
    assert!(pe[0x5000 + area.len()..0x6000].iter().all(|&b| b == 0));

    // .reloc: the page-0x1000 block, closed by an address in another page, padded to 8 bytes
    // with zero entries; the last block padded with zero entries to the page end.
    assert_eq!(u32_at(&pe, 0x6000), 0x1000);
    assert_eq!(u32_at(&pe, 0x6004), 16);
    assert_eq!(u16_at(&pe, 0x6008), 0xA000);
    assert!(pe[0x600A..0x6010].iter().all(|&b| b == 0));
    assert_eq!(u32_at(&pe, 0x6010), 0x2000);
    assert_eq!(u32_at(&pe, 0x6014), 0x1000 - 16);
    assert_eq!(u16_at(&pe, 0x6018), 0xA008);
    assert!(pe[0x601A..].iter().all(|&b| b == 0));
}

#[test]
fn fixup_blocks() {
    let mut fixups = Fixups::default();
    for rva in [
        0x1008, 0x1FF8, 0x1010, 0x3000, 0x3004, 0x3008, 0x300C, 0x2000,
    ] {
        fixups.add(REL_BASED_DIR64, rva).unwrap();
    }
    let table = fixups.finish();
    assert_eq!(table.len(), 0x1000);
    let mut expected = Vec::new();
    // Three entries, padded to four; four entries need no padding; the last block runs to
    // the page end.
    for (page, size, entries) in [
        (0x1000u32, 16u32, &[0xA008u16, 0xAFF8, 0xA010, 0][..]),
        (0x3000, 16, &[0xA000, 0xA004, 0xA008, 0xA00C]),
        (0x2000, 0x1000 - 32, &[0xA000]),
    ] {
        expected.extend_from_slice(&page.to_le_bytes());
        expected.extend_from_slice(&size.to_le_bytes());
        for entry in entries {
            expected.extend_from_slice(&entry.to_le_bytes());
        }
    }
    assert_eq!(&table[..expected.len()], expected.as_slice());
    assert!(table[expected.len()..].iter().all(|&b| b == 0));

    assert!(Fixups::default().finish().is_empty());
    let mut full = Fixups::default();
    for offset in 0..0x1000 {
        full.add(REL_BASED_DIR64, 0x4000 + offset).unwrap();
    }
    assert!(full.add(REL_BASED_DIR64, 0x4000).is_err());
}

#[test]
fn arm64_instruction_fields() {
    // Encodings as an assembler writes them with these operands.
    assert_eq!(
        set_hi21(0x9000_0000, 0x5000),
        0xB000_0020,
        "adrp x0, #0x5000"
    );
    assert_eq!(
        set_hi21(0x9000_0003, -0x3000),
        0xB0FF_FFE3,
        "adrp x3, #-0x3000"
    );
    assert_eq!(
        set_lo12(0x9100_0021, 0x7123),
        0x9104_8C21,
        "add x1, x1, #0x123"
    );
    assert_eq!(
        set_lo12_ldst64(0xF940_0022, 0x5128),
        0xF940_9422,
        "ldr x2, [x1, #0x128]"
    );
    assert_eq!(set_branch26(0x9400_0000, 0x100), 0x9400_0040, "bl #0x100");
    assert_eq!(set_branch26(0x1400_0000, -8), 0x17FF_FFFE, "b #-8");
}

/// arm64: GOT loads of a BSS object and of `_start`, a call, a page + low-12 address and an
/// absolute pointer in data.
fn arm64_kernel(with_second_load: bool) -> Vec<u8> {
    let words = [
        0x9000_0000u32, // adrp x0, :got:counter
        0xF940_0000,    // ldr x0, [x0, :got_lo12:counter]
        0x9400_0000,    // bl _start
        0x9000_0001,    // adrp x1, table
        0x9100_0021,    // add x1, x1, :lo12:table
        0xF940_0022,    // ldr x2, [x1, :lo12:table]
        0x9000_0003,    // adrp x3, :got:_start
        0xF940_0063,    // ldr x3, [x3, :got_lo12:_start]
    ];
    let text: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut data = vec![0u8; 0x18];
    data[0x10] = 0x5A;
    let mut text_relocs = vec![
        (0x00, 3, R_AARCH64_ADR_GOT_PAGE, 0),
        (0x04, 3, R_AARCH64_LD64_GOT_LO12_NC, 0),
        (0x08, 4, R_AARCH64_CALL26, 0),
        (0x0C, 2, R_AARCH64_ADR_PREL_PG_HI21, 0x10),
        (0x10, 2, R_AARCH64_ADD_ABS_LO12_NC, 0x10),
        (0x14, 2, R_AARCH64_LDST64_ABS_LO12_NC, 0x10),
        (0x18, 4, R_AARCH64_ADR_GOT_PAGE, 0),
    ];
    if with_second_load {
        text_relocs.push((0x1C, 4, R_AARCH64_LD64_GOT_LO12_NC, 0));
    }
    let [symtab, strtab] = symbols(&[("", 1, 0), ("", 3, 0), ("", 5, 0), ("_start", 1, 0)], 7);
    elf64(
        183,
        vec![
            progbits(".text", AX, 4, text),
            rela(".rela.text", 6, 1, &text_relocs),
            progbits(".data", WA, 8, data),
            rela(".rela.data", 6, 3, &[(0, 4, R_AARCH64_ABS64, 0)]),
            nobits(".bss", 8, 0x10),
            symtab,
            strtab,
        ],
    )
}

#[test]
fn arm64_got_and_page_relocations() {
    let pe = efi_image(EfiArch::Arm64, &files_with(arm64_kernel(true)), "p", &[]).unwrap();
    assert_eq!(u16_at(&pe, 0x84), 0xAA64);
    // .text page, .data page (data, BSS), then the GOT: 16-byte aligned after the page end,
    // so .data grows to two pages.
    let sections = section_table(&pe);
    assert_eq!((sections[0].1, sections[0].2), (0x1000, 0x1000));
    assert_eq!(
        (sections[1].1, sections[1].2, sections[1].3),
        (0x2000, 0x2000, 0x2000)
    );
    assert_eq!(sections[2].2, 0x4000, "mods after the GOT page");
    let word = |rva: usize| u32_at(&pe, rva);
    // GOT slots at RVA 0x3000 (BSS object at 0x2018) and 0x3008 (_start at 0x1000).
    assert_eq!(u64_at(&pe, 0x3000), 0x2018);
    assert_eq!(u64_at(&pe, 0x3008), 0x1000);
    assert_eq!(word(0x1000), 0xD000_0000, "adrp x0: two pages up");
    assert_eq!(word(0x1004), 0xF940_0000, "ldr x0: slot offset 0");
    assert_eq!(word(0x1008), 0x97FF_FFFE, "bl: -8");
    assert_eq!(word(0x100C), 0xB000_0001, "adrp x1: one page up");
    assert_eq!(word(0x1010), 0x9100_4021, "add x1: low 12 bits 0x010");
    assert_eq!(word(0x1014), 0xF940_0822, "ldr x2: 0x010 / 8");
    assert_eq!(word(0x1018), 0xD000_0003, "adrp x3: two pages up");
    assert_eq!(word(0x101C), 0xF940_0463, "ldr x3: slot offset 8");
    assert_eq!(u64_at(&pe, 0x2000), 0x1000, "absolute pointer to _start");
    assert_eq!(pe[0x2010], 0x5A);

    // Fixups: the data pointer, then the GOT slots.
    let reloc = sections[3].4 as usize;
    assert_eq!((u32_at(&pe, reloc), u32_at(&pe, reloc + 4)), (0x2000, 16));
    assert_eq!(u16_at(&pe, reloc + 8), 0xA000);
    assert_eq!(u32_at(&pe, reloc + 16), 0x3000);
    assert_eq!(u16_at(&pe, reloc + 24), 0xA000);
    assert_eq!(u16_at(&pe, reloc + 26), 0xA008);
    assert_eq!(u16_at(&pe, reloc + 28), 0);

    let error = efi_image(EfiArch::Arm64, &files_with(arm64_kernel(false)), "p", &[])
        .unwrap_err()
        .to_string();
    assert!(error.contains("LD64_GOT_LO12_NC"), "{error}");
}

#[test]
fn prefix_closes_the_module_area() {
    let x86 = efi_image(
        EfiArch::X86_64,
        &files_with(x86_kernel()),
        "(hd0,gpt3)/grub",
        &["b"],
    )
    .unwrap();
    let mods = section_table(&x86)[2].4 as usize;
    assert_eq!(u32_at(&x86, mods), MODULE_MAGIC);
    assert_eq!(u64_at(&x86, mods + 16), 24 + 24 + 16 + 8 + 16);
    assert_eq!(
        &x86[mods + 64..mods + 88],
        b"\x03\0\0\0\x18\0\0\0(hd0,gpt3)/grub\0"
    );
}

#[test]
fn bad_inputs_are_refused_with_a_reason() {
    let error = |kernel: Vec<u8>, arch: EfiArch| {
        efi_image(arch, &files_with(kernel), "p", &[])
            .unwrap_err()
            .to_string()
    };
    assert!(error(x86_kernel(), EfiArch::Arm64).contains("ELF machine 62"));
    assert!(error(arm64_kernel(true), EfiArch::X86_64).contains("ELF machine 183"));
    assert!(error(b"\x7fELF".to_vec(), EfiArch::X86_64).contains("not a little-endian ELF64"));

    let mut kernel = x86_kernel();
    // Turn the PC64 relocation into R_X86_64_32, which a PE loader cannot move.
    let at = kernel
        .windows(8)
        .position(|w| w == ((2u64 << 32) | u64::from(R_X86_64_PC64)).to_le_bytes())
        .unwrap();
    kernel[at] = R_X86_64_32 as u8;
    assert!(error(kernel, EfiArch::X86_64).contains("32-bit absolute"));

    let renamed = x86_kernel()
        .windows(7)
        .position(|w| w == b"_start\0")
        .map(|at| {
            let mut kernel = x86_kernel();
            kernel[at + 1] = b'S';
            kernel
        })
        .unwrap();
    assert!(error(renamed, EfiArch::X86_64).contains("no start symbol"));

    let missing = |skip: &'static str| {
        move |name: &str| {
            if name == skip {
                None
            } else {
                files_with(x86_kernel())(name)
            }
        }
    };
    let error = efi_image(EfiArch::X86_64, &missing("kernel.img"), "p", &[]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "GRUB x86_64-efi files: kernel.img is missing"
    );
    let error = efi_image(EfiArch::X86_64, &missing("a.mod"), "p", &["b"]).unwrap_err();
    assert!(error.to_string().contains("a.mod"), "{error}");
    assert!(efi_image(EfiArch::X86_64, &files_with(x86_kernel()), "p\0q", &[]).is_err());
}

#[test]
fn dos_stub_points_at_the_pe_header() {
    let stub = dos_stub();
    assert_eq!(&stub[..2], b"MZ");
    assert_eq!(u32_at(&stub, 0x3C), 0x80);
    assert_eq!(&stub[0x40..0x42], &[0x0E, 0x1F]);
    let message_end = 0x4E + b"This program cannot be run in DOS mode.\r\r\n$".len();
    assert_eq!(stub[message_end - 1], b'$');
    assert!(stub[message_end..].iter().all(|&b| b == 0));
}

#[test]
fn linker_symbols_get_offsets_like_grub_mkimage() {
    // `.quad __bss_start` and `.quad _end + 4` in data, both undefined in the object.
    let sections = |start: &'static str| {
        let [symtab, strtab] = symbols(&[(start, 1, 0), ("__bss_start", 0, 0), ("_end", 0, 0)], 6);
        vec![
            progbits(".text", AX, 16, vec![0xC3; 0x10]),
            progbits(".data", WA, 8, vec![0; 0x10]),
            rela(
                ".rela.data",
                5,
                2,
                &[(0, 2, R_X86_64_64, 0), (8, 3, R_X86_64_64, 4)],
            ),
            nobits(".bss", 32, 0x2345),
            symtab,
            strtab,
        ]
    };
    let pe = efi_image(
        EfiArch::X86_64,
        &files_with(elf64(62, sections("_start"))),
        "p",
        &[],
    )
    .unwrap();
    // BSS starts right after data (offset 0x1010), the kernel ends at page offset 0x4000:
    // offsets from .text, not RVAs.
    assert_eq!(u64_at(&pe, 0x2000), 0x1010);
    assert_eq!(u64_at(&pe, 0x2008), 0x4004);
    // `start` is an entry point too.
    let pe = efi_image(
        EfiArch::X86_64,
        &files_with(elf64(62, sections("start"))),
        "p",
        &[],
    )
    .unwrap();
    assert_eq!(u32_at(&pe, 0x98 + 16), 0x1000);

    let [symtab, strtab] = symbols(&[("_start", 1, 0), ("grub_missing", 0, 0)], 5);
    let kernel = elf64(
        62,
        vec![
            progbits(".text", AX, 16, vec![0; 0x10]),
            rela(".rela.text", 4, 1, &[(0, 2, R_X86_64_64, 0)]),
            nobits(".bss", 32, 0x10),
            symtab,
            strtab,
        ],
    );
    let error = efi_image(EfiArch::X86_64, &files_with(kernel), "p", &[]).unwrap_err();
    assert!(
        error.to_string().contains("undefined symbol grub_missing"),
        "{error}"
    );
}
