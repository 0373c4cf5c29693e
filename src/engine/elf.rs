//! The one ELF reader of the engine: GRUB's `kernel.img` (ELF32 for i386-pc, a relocatable
//! ELF64 object for EFI) and kernel modules (depmod) are all read through it. Section headers,
//! symbols and relocations, ELF32 or ELF64, either byte order; every offset is checked and
//! nothing in the file is trusted.

pub const SHT_PROGBITS: u32 = 1;
pub const SHT_SYMTAB: u32 = 2;
pub const SHT_RELA: u32 = 4;
pub const SHT_NOBITS: u32 = 8;
pub const SHT_REL: u32 = 9;
pub const SHF_ALLOC: u64 = 2;
pub const SHF_EXECINSTR: u64 = 4;
pub const SHN_UNDEF: u16 = 0;
pub const SHN_ABS: u16 = 0xFFF1;
/// `e_shstrndx` value meaning "the real index is in section 0's `sh_link`".
const SHN_XINDEX: u16 = 0xFFFF;

pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file (bad magic)")]
    BadMagic,
    #[error("unknown ELF class {0:?}")]
    UnknownClass(Option<u8>),
    #[error("unknown ELF data encoding {0:?}")]
    UnknownEncoding(Option<u8>),
    #[error("not a {0} file")]
    NotExpected(&'static str),
    #[error("built for ELF machine {found}, not {expected}")]
    Machine { found: u16, expected: u16 },
    #[error("truncated: {width}-byte field at offset {offset} is past the end")]
    Truncated { width: usize, offset: u64 },
    #[error("no section header table")]
    NoSectionTable,
    #[error("section header entries of {0} bytes are too small")]
    SmallSectionHeaders(u64),
    #[error("{0} section headers do not fit in the file")]
    TooManySections(u64),
    #[error("section header table offset overflows")]
    TableOverflow,
    #[error("section {0} does not exist")]
    NoSuchSection(u64),
    #[error("section at offset {offset} with {size} bytes is past the end of the file")]
    SectionPastEnd { offset: u64, size: u64 },
    #[error("table entries of {found} bytes, expected at least {minimum}")]
    SmallEntries { found: u64, minimum: u64 },
    #[error("symbol name offset {0} is outside its string table")]
    SymbolName(u32),
}

/// ELF32 or ELF64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Elf32,
    Elf64,
}

/// What a caller requires of a file before it reads it.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    /// A little-endian file of this class and ELF version 1; `None` takes any class and
    /// byte order.
    pub class: Option<Class>,
    /// `e_machine`, when only one target makes sense.
    pub machine: Option<u16>,
}

impl Expected {
    pub const ANY: Expected = Expected {
        class: None,
        machine: None,
    };
}

/// How the file's fields are encoded.
#[derive(Debug, Clone, Copy)]
struct Encoding {
    wide: bool,
    big_endian: bool,
}

impl Encoding {
    fn bytes<const N: usize>(self, data: &[u8], offset: u64) -> Result<[u8; N], ElfError> {
        usize::try_from(offset)
            .ok()
            .and_then(|start| data.get(start..start.checked_add(N)?))
            .and_then(|slice| slice.try_into().ok())
            .ok_or(ElfError::Truncated { width: N, offset })
    }

    fn u16(self, data: &[u8], offset: u64) -> Result<u16, ElfError> {
        let raw = self.bytes(data, offset)?;
        Ok(if self.big_endian {
            u16::from_be_bytes(raw)
        } else {
            u16::from_le_bytes(raw)
        })
    }

    fn u32(self, data: &[u8], offset: u64) -> Result<u32, ElfError> {
        let raw = self.bytes(data, offset)?;
        Ok(if self.big_endian {
            u32::from_be_bytes(raw)
        } else {
            u32::from_le_bytes(raw)
        })
    }

    fn u64(self, data: &[u8], offset: u64) -> Result<u64, ElfError> {
        let raw = self.bytes(data, offset)?;
        Ok(if self.big_endian {
            u64::from_be_bytes(raw)
        } else {
            u64::from_le_bytes(raw)
        })
    }

    /// An address-sized field: 4 bytes in ELF32, 8 in ELF64.
    fn word(self, data: &[u8], offset: u64) -> Result<u64, ElfError> {
        if self.wide {
            self.u64(data, offset)
        } else {
            self.u32(data, offset).map(u64::from)
        }
    }
}

/// One section header.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    pub name: u32,
    pub kind: u32,
    pub flags: u64,
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
    pub link: u32,
    pub info: u32,
    pub addralign: u64,
    pub entsize: u64,
}

impl Section {
    /// Loaded code: `SHF_ALLOC | SHF_EXECINSTR`.
    pub fn is_code(&self) -> bool {
        self.flags & (SHF_ALLOC | SHF_EXECINSTR) == SHF_ALLOC | SHF_EXECINSTR
    }

    /// Loaded, not executable: data or (with `SHT_NOBITS`) BSS.
    pub fn is_loaded_data(&self) -> bool {
        self.flags & (SHF_ALLOC | SHF_EXECINSTR) == SHF_ALLOC
    }
}

/// One symbol table entry.
#[derive(Debug, Clone, Copy)]
pub struct Symbol<'a> {
    pub name_offset: u32,
    pub name: &'a [u8],
    pub value: u64,
    pub section: u16,
}

/// One `SHT_REL` or `SHT_RELA` entry (`addend` 0 for the former).
#[derive(Debug, Clone, Copy)]
pub struct Relocation {
    pub offset: u64,
    pub symbol: u32,
    pub kind: u32,
    pub addend: i64,
}

/// A parsed file: its header facts and section table, borrowing the bytes.
#[derive(Debug)]
pub struct Elf<'a> {
    data: &'a [u8],
    encoding: Encoding,
    pub machine: u16,
    pub sections: Vec<Section>,
    section_names: &'a [u8],
}

impl<'a> Elf<'a> {
    pub fn parse(data: &'a [u8], expected: Expected) -> Result<Elf<'a>, ElfError> {
        if data.get(..4) != Some(b"\x7fELF".as_slice()) {
            return Err(ElfError::BadMagic);
        }
        let encoding = match expected.class {
            Some(class) => {
                let wide = class == Class::Elf64;
                let required = if wide {
                    "little-endian ELF64"
                } else {
                    "little-endian ELF32"
                };
                let encoding = Encoding {
                    wide,
                    big_endian: false,
                };
                let ident_ok = data.get(4..7) == Some([if wide { 2 } else { 1 }, 1, 1].as_slice());
                if !ident_ok || encoding.u32(data, 0x14).ok() != Some(1) {
                    return Err(ElfError::NotExpected(required));
                }
                encoding
            }
            None => Encoding {
                wide: match data.get(4) {
                    Some(1) => false,
                    Some(2) => true,
                    other => return Err(ElfError::UnknownClass(other.copied())),
                },
                big_endian: match data.get(5) {
                    Some(1) => false,
                    Some(2) => true,
                    other => return Err(ElfError::UnknownEncoding(other.copied())),
                },
            },
        };
        let machine = encoding.u16(data, 0x12)?;
        if let Some(wanted) = expected.machine
            && machine != wanted
        {
            return Err(ElfError::Machine {
                found: machine,
                expected: wanted,
            });
        }
        let wide = encoding.wide;
        let (shoff_at, shentsize_at) = if wide { (40, 58) } else { (32, 46) };
        let table_offset = encoding.word(data, shoff_at)?;
        let entry_size = u64::from(encoding.u16(data, shentsize_at)?);
        let mut count = u64::from(encoding.u16(data, shentsize_at + 2)?);
        let mut names_index = encoding.u16(data, shentsize_at + 4)?;
        if table_offset == 0 {
            return Err(ElfError::NoSectionTable);
        }
        if entry_size < if wide { 64 } else { 40 } {
            return Err(ElfError::SmallSectionHeaders(entry_size));
        }
        let header_at = |index: u64| -> Result<Section, ElfError> {
            let at = index
                .checked_mul(entry_size)
                .and_then(|relative| relative.checked_add(table_offset))
                .ok_or(ElfError::TableOverflow)?;
            // Saturating: an offset past the end is reported as truncation by the reads.
            let field = |delta: u64| at.saturating_add(delta);
            let word = |narrow: u64, wide_at: u64| {
                encoding.word(data, field(if wide { wide_at } else { narrow }))
            };
            let u32_at = |narrow: u64, wide_at: u64| {
                encoding.u32(data, field(if wide { wide_at } else { narrow }))
            };
            Ok(Section {
                name: encoding.u32(data, at)?,
                kind: encoding.u32(data, field(4))?,
                flags: word(8, 8)?,
                addr: word(12, 16)?,
                offset: word(16, 24)?,
                size: word(20, 32)?,
                link: u32_at(24, 40)?,
                info: u32_at(28, 44)?,
                addralign: word(32, 48)?,
                entsize: word(36, 56)?,
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
            return Err(ElfError::TooManySections(count));
        }
        let sections = (0..count).map(header_at).collect::<Result<Vec<_>, _>>()?;
        let mut elf = Elf {
            data,
            encoding,
            machine,
            sections,
            section_names: &[],
        };
        let names = elf.section(u32::from(names_index))?;
        elf.section_names = elf.contents(&names)?;
        Ok(elf)
    }

    pub fn section(&self, index: u32) -> Result<Section, ElfError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.sections.get(i))
            .copied()
            .ok_or(ElfError::NoSuchSection(u64::from(index)))
    }

    /// The file bytes of a section (none for `SHT_NOBITS`).
    pub fn contents(&self, section: &Section) -> Result<&'a [u8], ElfError> {
        if section.kind == SHT_NOBITS {
            return Ok(&[]);
        }
        usize::try_from(section.offset)
            .ok()
            .zip(usize::try_from(section.size).ok())
            .and_then(|(start, size)| self.data.get(start..start.checked_add(size)?))
            .ok_or(ElfError::SectionPastEnd {
                offset: section.offset,
                size: section.size,
            })
    }

    /// A section's name (empty when its offset is outside the name table).
    pub fn name(&self, section: &Section) -> &'a [u8] {
        string(self.section_names, section.name).unwrap_or_default()
    }

    /// The first section called `name`, if there is one.
    pub fn section_named(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|section| self.name(section) == name.as_bytes())
    }

    /// The contents of the first section called `name`, if there is one.
    pub fn section_data(&self, name: &str) -> Result<Option<&'a [u8]>, ElfError> {
        self.section_named(name)
            .map(|section| self.contents(section))
            .transpose()
    }

    /// The entries of a table section, each `sh_entsize` bytes and at least `minimum`.
    fn entries(
        &self,
        section: &Section,
        minimum: u64,
    ) -> Result<impl Iterator<Item = &'a [u8]> + use<'a>, ElfError> {
        if section.entsize < minimum {
            return Err(ElfError::SmallEntries {
                found: section.entsize,
                minimum,
            });
        }
        let bytes = self.contents(section)?;
        let size = usize::try_from(section.entsize).unwrap_or(usize::MAX);
        Ok(bytes.chunks_exact(size))
    }

    /// Every entry of symbol table `table`, the reserved null symbol first, with names from
    /// the string table its `sh_link` names.
    pub fn symbols(
        &self,
        table: &Section,
    ) -> Result<impl Iterator<Item = Result<Symbol<'a>, ElfError>> + use<'a>, ElfError> {
        let names = self.contents(&self.section(table.link)?)?;
        let encoding = self.encoding;
        let (minimum, value_at, shndx_at) = if encoding.wide {
            (24, 8, 6)
        } else {
            (16, 4, 14)
        };
        Ok(self.entries(table, minimum)?.map(move |entry| {
            let name_offset = encoding.u32(entry, 0)?;
            Ok(Symbol {
                name_offset,
                name: string(names, name_offset).ok_or(ElfError::SymbolName(name_offset))?,
                value: encoding.word(entry, value_at)?,
                section: encoding.u16(entry, shndx_at)?,
            })
        }))
    }

    /// Every entry of relocation table `table` (`SHT_REL` or `SHT_RELA`).
    pub fn relocations(
        &self,
        table: &Section,
    ) -> Result<impl Iterator<Item = Result<Relocation, ElfError>> + use<'a>, ElfError> {
        let encoding = self.encoding;
        let with_addend = table.kind == SHT_RELA;
        let width = if encoding.wide { 8 } else { 4 };
        let minimum = width * if with_addend { 3 } else { 2 };
        Ok(self.entries(table, minimum)?.map(move |entry| {
            let info = encoding.word(entry, width)?;
            let (symbol, kind) = if encoding.wide {
                ((info >> 32) as u32, info as u32)
            } else {
                ((info >> 8) as u32, info as u32 & 0xFF)
            };
            let addend = if with_addend {
                let raw = encoding.word(entry, 2 * width)?;
                if encoding.wide {
                    raw as i64
                } else {
                    i64::from(raw as u32 as i32)
                }
            } else {
                0
            };
            Ok(Relocation {
                offset: encoding.word(entry, 0)?,
                symbol,
                kind,
                addend,
            })
        }))
    }
}

/// The NUL-terminated string at `offset` of a string table.
pub fn string(table: &[u8], offset: u32) -> Option<&[u8]> {
    let tail = table.get(usize::try_from(offset).ok()?..)?;
    let end = tail.iter().position(|&byte| byte == 0)?;
    tail.get(..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian ELF32 with a null section and a name table.
    fn elf32() -> Vec<u8> {
        let mut elf = vec![0u8; 52];
        elf[..7].copy_from_slice(b"\x7fELF\x01\x01\x01");
        elf[0x12] = 3;
        elf[0x14] = 1;
        let names_at = elf.len() as u32;
        elf.extend_from_slice(b"\0.shstrtab\0");
        let shoff = elf.len() as u32;
        elf.extend_from_slice(&[0u8; 40]);
        let mut names = [0u8; 40];
        names[0..4].copy_from_slice(&1u32.to_le_bytes());
        names[4..8].copy_from_slice(&3u32.to_le_bytes());
        names[16..20].copy_from_slice(&names_at.to_le_bytes());
        names[20..24].copy_from_slice(&11u32.to_le_bytes());
        elf.extend_from_slice(&names);
        elf[32..36].copy_from_slice(&shoff.to_le_bytes());
        elf[46..48].copy_from_slice(&40u16.to_le_bytes());
        elf[48..50].copy_from_slice(&2u16.to_le_bytes());
        elf[50..52].copy_from_slice(&1u16.to_le_bytes());
        elf
    }

    #[test]
    fn reads_sections_by_name() {
        let data = elf32();
        let elf = Elf::parse(&data, Expected::ANY).unwrap();
        assert_eq!(elf.machine, 3);
        assert_eq!(elf.sections.len(), 2);
        assert_eq!(elf.section_data(".shstrtab").unwrap(), Some(&data[52..63]));
        assert_eq!(elf.section_data(".text").unwrap(), None);
        assert!(matches!(elf.section(2), Err(ElfError::NoSuchSection(2))));
    }

    #[test]
    fn expectations_are_checked() {
        let data = elf32();
        let elf64 = Expected {
            class: Some(Class::Elf64),
            machine: None,
        };
        assert_eq!(
            Elf::parse(&data, elf64).err(),
            Some(ElfError::NotExpected("little-endian ELF64"))
        );
        let x86 = Expected {
            class: Some(Class::Elf32),
            machine: Some(EM_X86_64),
        };
        assert_eq!(
            Elf::parse(&data, x86).err(),
            Some(ElfError::Machine {
                found: 3,
                expected: EM_X86_64
            })
        );
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let data = elf32();
        for cut in 0..data.len() {
            assert!(Elf::parse(&data[..cut], Expected::ANY).is_err(), "{cut}");
        }
        let mut huge = data.clone();
        huge[48..50].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(
            Elf::parse(&huge, Expected::ANY).err(),
            Some(ElfError::TooManySections(65535))
        );
        let mut past = data;
        past[63 + 40 + 16..63 + 40 + 20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Elf::parse(&past, Expected::ANY),
            Err(ElfError::SectionPastEnd { .. })
        ));
    }
}
