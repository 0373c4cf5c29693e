//! What depmod reads from a kernel module, through [`crate::engine::elf`]: the symbols it
//! exports and imports, and its `.modinfo`.

use crate::engine::elf::{Elf, ElfError, Expected, SHN_UNDEF, SHT_SYMTAB};

const CRC_PREFIX: &[u8] = b"__crc_";

/// What depmod needs from one module.
#[derive(Debug, Default)]
pub(super) struct ModuleFacts<'a> {
    /// Symbols the module exports, in the order the module lists them.
    pub exports: Vec<&'a [u8]>,
    /// Names of the undefined symbols in its symbol table, in table order.
    pub imports: Vec<&'a [u8]>,
    /// The `.modinfo` entries (`key=value`), in section order.
    pub modinfo: Vec<&'a [u8]>,
}

/// Reads `data` as a relocatable kernel module of any class and byte order.
pub(super) fn read_module(data: &[u8]) -> Result<ModuleFacts<'_>, ElfError> {
    let elf = Elf::parse(data, Expected::ANY)?;
    let mut facts = ModuleFacts::default();

    if let Some(modinfo) = elf.section_data(".modinfo")? {
        facts.modinfo = nul_separated(modinfo).collect();
    }

    let mut crc_exports = Vec::new();
    if let Some(table) = elf
        .section_named(".symtab")
        .filter(|table| table.kind == SHT_SYMTAB)
    {
        // Entry 0 is the reserved null symbol.
        for symbol in elf.symbols(table)?.skip(1) {
            let symbol = symbol?;
            if let Some(exported) = symbol.name.strip_prefix(CRC_PREFIX) {
                crc_exports.push(exported);
            }
            if symbol.section == SHN_UNDEF && !symbol.name.is_empty() {
                facts.imports.push(symbol.name);
            }
        }
    }
    // A kernel built with symbol versions leaves one `__crc_<name>` per export; that list is
    // exact, whereas `__ksymtab_strings` also holds the names of symbol namespaces. The
    // string table is only the fallback for kernels without versions, as kmod does it.
    facts.exports = if crc_exports.is_empty() {
        match elf.section_data("__ksymtab_strings")? {
            Some(strings) => nul_separated(strings).collect(),
            None => Vec::new(),
        }
    } else {
        crc_exports
    };
    Ok(facts)
}

/// The non-empty strings of a NUL-separated table.
fn nul_separated(table: &[u8]) -> impl Iterator<Item = &[u8]> {
    table
        .split(|&byte| byte == 0)
        .filter(|entry| !entry.is_empty())
}
