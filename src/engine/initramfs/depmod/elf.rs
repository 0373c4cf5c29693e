//! The few ELF structures depmod reads from a kernel module: section headers, the symbol
//! table, `.modinfo` and `__ksymtab_strings`. Every offset is checked; nothing is trusted.

const SHN_UNDEF: u16 = 0;
/// `e_shstrndx` value meaning "the real index is in section 0's `sh_link`".
const SHN_XINDEX: u16 = 0xffff;
const SHT_NOBITS: u32 = 8;
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

/// Reads `data` as a relocatable kernel module. The error says what is wrong with it.
pub(super) fn read_module(data: &[u8]) -> Result<ModuleFacts<'_>, String> {
    let elf = Elf::parse(data)?;
    let mut facts = ModuleFacts::default();

    if let Some(modinfo) = elf.section_data(".modinfo")? {
        facts.modinfo = nul_separated(modinfo).collect();
    }

    let mut crc_exports = Vec::new();
    if let Some(symbols) = elf.symbols()? {
        for symbol in symbols {
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

#[derive(Debug, Clone, Copy)]
struct Encoding {
    wide: bool,
    big_endian: bool,
}

impl Encoding {
    fn bytes<const N: usize>(self, data: &[u8], offset: u64) -> Result<[u8; N], String> {
        usize::try_from(offset)
            .ok()
            .and_then(|start| data.get(start..start.checked_add(N)?))
            .and_then(|slice| slice.try_into().ok())
            .ok_or_else(|| format!("truncated: {N}-byte field at offset {offset} is past the end"))
    }

    fn u16(self, data: &[u8], offset: u64) -> Result<u16, String> {
        let raw = self.bytes(data, offset)?;
        Ok(if self.big_endian {
            u16::from_be_bytes(raw)
        } else {
            u16::from_le_bytes(raw)
        })
    }

    fn u32(self, data: &[u8], offset: u64) -> Result<u32, String> {
        let raw = self.bytes(data, offset)?;
        Ok(if self.big_endian {
            u32::from_be_bytes(raw)
        } else {
            u32::from_le_bytes(raw)
        })
    }

    /// An address-sized field: 4 bytes in ELF32, 8 in ELF64.
    fn word(self, data: &[u8], offset: u64) -> Result<u64, String> {
        if !self.wide {
            return self.u32(data, offset).map(u64::from);
        }
        let raw = self.bytes(data, offset)?;
        Ok(if self.big_endian {
            u64::from_be_bytes(raw)
        } else {
            u64::from_le_bytes(raw)
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Section {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
}

struct Elf<'a> {
    data: &'a [u8],
    encoding: Encoding,
    sections: Vec<Section>,
    section_names: &'a [u8],
}

struct Symbol<'a> {
    name: &'a [u8],
    section: u16,
}

impl<'a> Elf<'a> {
    fn parse(data: &'a [u8]) -> Result<Elf<'a>, String> {
        if data.get(..4) != Some(b"\x7fELF".as_slice()) {
            return Err("not an ELF file (bad magic)".into());
        }
        let wide = match data.get(4) {
            Some(1) => false,
            Some(2) => true,
            other => return Err(format!("unknown ELF class {other:?}")),
        };
        let big_endian = match data.get(5) {
            Some(1) => false,
            Some(2) => true,
            other => return Err(format!("unknown ELF data encoding {other:?}")),
        };
        let encoding = Encoding { wide, big_endian };
        let (shoff_at, shentsize_at) = if wide { (40, 58) } else { (32, 46) };
        let table_offset = encoding.word(data, shoff_at)?;
        let entry_size = u64::from(encoding.u16(data, shentsize_at)?);
        let mut count = u64::from(encoding.u16(data, shentsize_at + 2)?);
        let mut names_index = encoding.u16(data, shentsize_at + 4)?;
        if table_offset == 0 {
            return Err("no section header table".into());
        }
        if entry_size < if wide { 64 } else { 40 } {
            return Err(format!(
                "section header entries of {entry_size} bytes are too small"
            ));
        }

        let header_at = |index: u64| -> Result<Section, String> {
            let at = index
                .checked_mul(entry_size)
                .and_then(|relative| relative.checked_add(table_offset))
                .ok_or("section header table offset overflows")?;
            let (offset_at, size_at, link_at) = if wide { (24, 32, 40) } else { (16, 20, 24) };
            // Saturating: an offset past the end is reported as truncation by the reads.
            let field = |delta: u64| at.saturating_add(delta);
            Ok(Section {
                name: encoding.u32(data, at)?,
                kind: encoding.u32(data, field(4))?,
                offset: encoding.word(data, field(offset_at))?,
                size: encoding.word(data, field(size_at))?,
                link: encoding.u32(data, field(link_at))?,
            })
        };
        // Files with more sections than fit in 16 bits keep the real numbers in section 0.
        let first = header_at(0)?;
        if count == 0 {
            count = first.size;
        }
        if names_index == SHN_XINDEX {
            names_index = u16::try_from(first.link).unwrap_or(u16::MAX);
        }
        if count.saturating_mul(entry_size) > data.len() as u64 {
            return Err(format!("{count} section headers do not fit in the file"));
        }
        let sections = (0..count).map(header_at).collect::<Result<Vec<_>, _>>()?;
        let mut elf = Elf {
            data,
            encoding,
            sections,
            section_names: &[],
        };
        let names = elf
            .sections
            .get(usize::from(names_index))
            .copied()
            .ok_or_else(|| format!("section name table index {names_index} is out of range"))?;
        elf.section_names = elf.contents(&names)?;
        Ok(elf)
    }

    fn contents(&self, section: &Section) -> Result<&'a [u8], String> {
        if section.kind == SHT_NOBITS {
            return Ok(&[]);
        }
        usize::try_from(section.offset)
            .ok()
            .zip(usize::try_from(section.size).ok())
            .and_then(|(start, size)| self.data.get(start..start.checked_add(size)?))
            .ok_or_else(|| {
                format!(
                    "section at offset {} with {} bytes is past the end of the file",
                    section.offset, section.size
                )
            })
    }

    /// The contents of the first section called `name`, if there is one.
    fn section_data(&self, name: &str) -> Result<Option<&'a [u8]>, String> {
        for section in &self.sections {
            if c_string(self.section_names, section.name) == Some(name.as_bytes()) {
                return self.contents(section).map(Some);
            }
        }
        Ok(None)
    }

    fn symbols(&self) -> Result<Option<impl Iterator<Item = Result<Symbol<'a>, String>>>, String> {
        let Some(table) = self.section_data(".symtab")? else {
            return Ok(None);
        };
        let names = self.section_data(".strtab")?.unwrap_or_default();
        let encoding = self.encoding;
        let entry_size: usize = if encoding.wide { 24 } else { 16 };
        let shndx_at = if encoding.wide { 6 } else { 14 };
        // Entry 0 is the reserved null symbol.
        let entries = table.chunks_exact(entry_size).skip(1);
        Ok(Some(entries.map(move |entry| {
            let name_offset = encoding.u32(entry, 0)?;
            let section = encoding.u16(entry, shndx_at)?;
            let name = c_string(names, name_offset)
                .ok_or_else(|| format!("symbol name offset {name_offset} is outside .strtab"))?;
            Ok(Symbol { name, section })
        })))
    }
}

/// The NUL-terminated string at `offset` of a string table.
fn c_string(table: &[u8], offset: u32) -> Option<&[u8]> {
    let tail = table.get(usize::try_from(offset).ok()?..)?;
    let end = tail.iter().position(|&byte| byte == 0)?;
    Some(&tail[..end])
}
