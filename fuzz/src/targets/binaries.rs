//! Targets over the executables a release ships: kernel modules (ELF, read by depmod) and
//! the systemd-boot stub and kernel (PE32+, read to assemble and hash a UKI).

use image_factory::engine::boot::pe::{self, SectionHeader};
use image_factory::engine::boot::uki::{self, Section};
use image_factory::engine::elf::{Class, EM_X86_64, Elf, Expected, SHT_REL, SHT_RELA, SHT_SYMTAB};
use image_factory::engine::initramfs::depmod::depmod;
use std::collections::BTreeMap;

/// A kernel module: its sections, symbols and relocations under every expectation the
/// engine reads with, then the module indexed by depmod.
pub fn elf(data: &[u8]) {
    let expectations = [
        Expected::ANY,
        Expected {
            class: Some(Class::Elf64),
            machine: Some(EM_X86_64),
        },
        Expected {
            class: Some(Class::Elf32),
            machine: None,
        },
    ];
    for expected in expectations {
        let Ok(elf) = Elf::parse(data, expected) else {
            continue;
        };
        for section in &elf.sections {
            let _ = elf.name(section);
            let _ = elf.contents(section);
            if section.kind == SHT_SYMTAB
                && let Ok(symbols) = elf.symbols(section)
            {
                symbols.for_each(drop);
            }
            if matches!(section.kind, SHT_REL | SHT_RELA)
                && let Ok(relocations) = elf.relocations(section)
            {
                relocations.for_each(drop);
            }
        }
    }
    let tree = BTreeMap::from([("kernel/fuzz.ko".to_string(), data.to_vec())]);
    let _ = depmod("6.12.0-talos", &tree, &["extras", "built-in"]);
}

/// The payload a fuzzed stub gets as a UKI section.
const PAYLOAD: &[u8] = b"fuzz payload";

/// A PE32+ image as a UKI stub: its sections, its Authenticode hash, and a UKI assembled
/// on it, which parses, hashes and holds the added section.
pub fn pe(data: &[u8]) {
    if let Ok(image) = pe::Image::parse(data) {
        for index in 0..image.sections.len() {
            let _ = image.section_data(index);
        }
        let _ = image.section_alignment();
        let _ = image.file_alignment();
    }
    let _ = pe::authenticode_sha256(data);
    let _ = uki::bzimage_release(data);
    let section = Section {
        name: ".fuzz",
        data: PAYLOAD.to_vec(),
    };
    let Ok(assembled) = uki::assemble(data, &[section]) else {
        return;
    };
    let image = pe::Image::parse(&assembled)
        .unwrap_or_else(|error| panic!("an assembled UKI does not parse: {error}"));
    // Appended sections follow the stub's (which may hold a `.fuzz` of their own).
    let index = image.sections.len() - 1;
    assert_eq!(
        image.sections[index].name,
        SectionHeader::name_bytes(".fuzz"),
        "the assembled UKI does not end with its .fuzz section"
    );
    let stored = image
        .section_data(index)
        .unwrap_or_else(|error| panic!("the .fuzz section lies outside the UKI: {error}"));
    assert!(
        stored.starts_with(PAYLOAD),
        "the .fuzz section holds other bytes"
    );
    pe::authenticode_sha256(&assembled)
        .unwrap_or_else(|error| panic!("an assembled UKI does not hash: {error}"));
}
