//! PE32+ images, the one place that knows their layout: reading an image's headers and
//! sections (a systemd-stub the UKI is appended to), writing the headers of an image the
//! engine links itself (GRUB's EFI application), and the Authenticode image hash that Secure
//! Boot signs.

use sha2::{Digest, Sha256};

/// `e_lfanew`: where the MS-DOS header points at the PE signature.
pub const LFANEW: usize = 0x3C;
pub const DOS_HEADER_SIZE: usize = 0x40;
pub const SIGNATURE: &[u8; 4] = b"PE\0\0";
pub const COFF_HEADER_SIZE: usize = 20;
pub const SECTION_HEADER_SIZE: usize = 40;
pub const PE32_PLUS: u16 = 0x20B;

pub const MACHINE_X86_64: u16 = 0x8664;
pub const MACHINE_ARM64: u16 = 0xAA64;
pub const SUBSYSTEM_EFI_APPLICATION: u16 = 10;

pub const SCN_CODE: u32 = 0x20;
pub const SCN_INITIALIZED_DATA: u32 = 0x40;
pub const SCN_DISCARDABLE: u32 = 0x0200_0000;
pub const SCN_EXECUTE: u32 = 0x2000_0000;
pub const SCN_READ: u32 = 0x4000_0000;
pub const SCN_WRITE: u32 = 0x8000_0000;

/// Data directory indexes.
pub const DIRECTORY_SECURITY: usize = 4;
pub const DIRECTORY_BASE_RELOCATION: usize = 5;

/// Field offsets in the COFF header.
pub mod coff {
    pub const MACHINE: usize = 0;
    pub const NUMBER_OF_SECTIONS: usize = 2;
    pub const TIME_DATE_STAMP: usize = 4;
    pub const POINTER_TO_SYMBOL_TABLE: usize = 8;
    pub const SIZE_OF_OPTIONAL_HEADER: usize = 16;
    pub const CHARACTERISTICS: usize = 18;
}

/// Field offsets in the PE32+ optional header.
pub mod optional {
    pub const MAGIC: usize = 0;
    pub const LINKER_VERSION: usize = 2;
    pub const SIZE_OF_CODE: usize = 4;
    pub const SIZE_OF_INITIALIZED_DATA: usize = 8;
    pub const ADDRESS_OF_ENTRY_POINT: usize = 16;
    pub const BASE_OF_CODE: usize = 20;
    pub const SECTION_ALIGNMENT: usize = 32;
    pub const FILE_ALIGNMENT: usize = 36;
    pub const SIZE_OF_IMAGE: usize = 56;
    pub const SIZE_OF_HEADERS: usize = 60;
    pub const CHECKSUM: usize = 64;
    pub const SUBSYSTEM: usize = 68;
    /// Stack reserve and commit, heap reserve and commit: four 64-bit fields.
    pub const STACK_AND_HEAP: usize = 72;
    pub const NUMBER_OF_RVA_AND_SIZES: usize = 108;
    pub const DATA_DIRECTORIES: usize = 112;
    /// The smallest optional header with every fixed field.
    pub const FIXED_SIZE: usize = DATA_DIRECTORIES;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeError {
    #[error("not a PE file (no MZ)")]
    NoMz,
    #[error("no PE signature")]
    NoSignature,
    #[error("not PE32+")]
    NotPe32Plus,
    #[error("truncated at {0:#x}")]
    Truncated(usize),
    #[error("no sections")]
    NoSections,
    #[error("section {0} lies past the end of the file")]
    SectionPastEnd(usize),
    #[error("the certificate table lies outside the file")]
    CertificateTable,
    #[error("{0} too large")]
    TooLarge(String),
}

use crate::engine::bytes::{le_u16, le_u32};
pub use crate::engine::bytes::{put_u16, put_u32, put_u64};

pub fn u16_at(bytes: &[u8], at: usize) -> Result<u16, PeError> {
    le_u16(bytes, at).ok_or(PeError::Truncated(at))
}

pub fn u32_at(bytes: &[u8], at: usize) -> Result<u32, PeError> {
    le_u32(bytes, at).ok_or(PeError::Truncated(at))
}

/// One section table entry (relocation and line-number fields are always zero here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionHeader {
    pub name: [u8; 8],
    pub virtual_size: u32,
    pub virtual_address: u32,
    pub raw_size: u32,
    pub raw_offset: u32,
    pub characteristics: u32,
}

impl SectionHeader {
    /// `name` cut to the 8 bytes a section name has.
    pub fn name_bytes(name: &str) -> [u8; 8] {
        let mut bytes = [0u8; 8];
        for (slot, byte) in bytes.iter_mut().zip(name.as_bytes()) {
            *slot = *byte;
        }
        bytes
    }

    fn read(bytes: &[u8], at: usize) -> Result<SectionHeader, PeError> {
        let name = bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or(PeError::Truncated(at))?;
        Ok(SectionHeader {
            name,
            virtual_size: u32_at(bytes, at + 8)?,
            virtual_address: u32_at(bytes, at + 12)?,
            raw_size: u32_at(bytes, at + 16)?,
            raw_offset: u32_at(bytes, at + 20)?,
            characteristics: u32_at(bytes, at + 36)?,
        })
    }

    /// Writes the entry at `at` of a zeroed header buffer.
    // `out` is a header buffer the linker or UKI builder sized for its own section table.
    #[allow(clippy::indexing_slicing)]
    pub fn write(&self, out: &mut [u8], at: usize) {
        out[at..at + 8].copy_from_slice(&self.name);
        put_u32(out, at + 8, self.virtual_size);
        put_u32(out, at + 12, self.virtual_address);
        put_u32(out, at + 16, self.raw_size);
        put_u32(out, at + 20, self.raw_offset);
        put_u32(out, at + 36, self.characteristics);
    }
}

/// A PE32+ image's headers as read from its bytes.
#[derive(Debug)]
pub struct Image<'a> {
    pub data: &'a [u8],
    /// Offset of the COFF header (after the signature).
    pub coff: usize,
    /// Offset and size of the optional header.
    pub optional: usize,
    pub optional_size: usize,
    pub sections: Vec<SectionHeader>,
}

impl<'a> Image<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Image<'a>, PeError> {
        if data.get(0..2) != Some(b"MZ") {
            return Err(PeError::NoMz);
        }
        let pe = u32_at(data, LFANEW)? as usize;
        if data.get(pe..pe.saturating_add(4)) != Some(SIGNATURE) {
            return Err(PeError::NoSignature);
        }
        let coff = pe + 4;
        let count = usize::from(u16_at(data, coff + coff::NUMBER_OF_SECTIONS)?);
        let optional_size = usize::from(u16_at(data, coff + coff::SIZE_OF_OPTIONAL_HEADER)?);
        let optional = coff + COFF_HEADER_SIZE;
        if u16_at(data, optional + optional::MAGIC)? != PE32_PLUS
            || optional_size < optional::FIXED_SIZE
        {
            return Err(PeError::NotPe32Plus);
        }
        let table = optional + optional_size;
        let sections = (0..count)
            .map(|index| SectionHeader::read(data, table + index * SECTION_HEADER_SIZE))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Image {
            data,
            coff,
            optional,
            optional_size,
            sections,
        })
    }

    /// A 32-bit field of the optional header.
    pub fn optional_u32(&self, field: usize) -> Result<u32, PeError> {
        u32_at(self.data, self.optional + field)
    }

    pub fn section_alignment(&self) -> Result<u64, PeError> {
        self.optional_u32(optional::SECTION_ALIGNMENT)
            .map(u64::from)
    }

    pub fn file_alignment(&self) -> Result<u64, PeError> {
        self.optional_u32(optional::FILE_ALIGNMENT).map(u64::from)
    }

    /// Offset in the file of data directory `index`'s `{rva, size}` pair, if the image has
    /// that many directories.
    fn directory_at(&self, index: usize) -> Result<Option<usize>, PeError> {
        let count = self.optional_u32(optional::NUMBER_OF_RVA_AND_SIZES)? as usize;
        let at = optional::DATA_DIRECTORIES + 8 * index;
        Ok((index < count && at + 8 <= self.optional_size).then_some(self.optional + at))
    }

    /// The raw bytes of section `index`.
    pub fn section_data(&self, index: usize) -> Result<&'a [u8], PeError> {
        let header = self
            .sections
            .get(index)
            .ok_or(PeError::SectionPastEnd(index))?;
        let start = header.raw_offset as usize;
        self.data
            .get(start..start + header.raw_size as usize)
            .ok_or(PeError::SectionPastEnd(index))
    }
}

/// Size of [`dos_stub`]; the PE signature follows it.
pub const DOS_STUB_SIZE: usize = 0x80;

/// The MS-DOS header and the classic "cannot be run in DOS mode" program; `e_lfanew` points
/// at the PE signature right after it.
// Fills its own fixed-size array at fixed offsets.
#[allow(clippy::indexing_slicing)]
pub fn dos_stub() -> [u8; DOS_STUB_SIZE] {
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
    put_u32(&mut stub, LFANEW, DOS_STUB_SIZE as u32);
    // push cs; pop ds; mov dx, message; mov ah, 9; int 21h; mov ax, 4C01h; int 21h
    let program = [
        0x0E, 0x1F, 0xBA, 0x0E, 0x00, 0xB4, 0x09, 0xCD, 0x21, 0xB8, 0x01, 0x4C, 0xCD, 0x21,
    ];
    stub[DOS_HEADER_SIZE..DOS_HEADER_SIZE + program.len()].copy_from_slice(&program);
    let message = b"This program cannot be run in DOS mode.\r\r\n$";
    let at = DOS_HEADER_SIZE + program.len();
    stub[at..at + message.len()].copy_from_slice(message);
    stub
}

/// The Authenticode SHA-256 of a PE32+ image (the digest its signature signs): the headers
/// without the checksum and the certificate table's directory entry, the sections in file
/// order, then whatever follows them up to the certificate table.
pub fn authenticode_sha256(data: &[u8]) -> Result<[u8; 32], PeError> {
    let image = Image::parse(data)?;
    let checksum = image.optional + optional::CHECKSUM;
    let headers_end = image.optional_u32(optional::SIZE_OF_HEADERS)? as usize;
    let security = image.directory_at(DIRECTORY_SECURITY)?;
    let (certificates_at, certificates_size) = match security {
        Some(at) => (u32_at(data, at)? as usize, u32_at(data, at + 4)? as usize),
        None => (0, 0),
    };
    let file_end = if certificates_size == 0 {
        data.len()
    } else {
        if certificates_at
            .checked_add(certificates_size)
            .is_none_or(|end| end > data.len())
        {
            return Err(PeError::CertificateTable);
        }
        certificates_at
    };
    if headers_end > file_end || checksum + 4 > headers_end {
        return Err(PeError::Truncated(headers_end));
    }

    let range = |start: usize, end: usize| data.get(start..end).ok_or(PeError::Truncated(start));
    let mut hasher = Sha256::new();
    hasher.update(range(0, checksum)?);
    match security {
        Some(at) if at + 8 <= headers_end => {
            hasher.update(range(checksum + 4, at)?);
            hasher.update(range(at + 8, headers_end)?);
        }
        _ => hasher.update(range(checksum + 4, headers_end)?),
    }
    let mut order: Vec<(usize, &SectionHeader)> = image
        .sections
        .iter()
        .enumerate()
        .filter(|(_, header)| header.raw_size != 0)
        .collect();
    order.sort_by_key(|(_, header)| header.raw_offset);
    let mut hashed_end = headers_end;
    for (index, header) in order {
        let section = image.section_data(index)?;
        let start = header.raw_offset as usize;
        if start + section.len() > file_end {
            return Err(PeError::SectionPastEnd(index));
        }
        hasher.update(section);
        hashed_end = hashed_end.max(start + section.len());
    }
    hasher.update(range(hashed_end, file_end)?);
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PE32+ with 16 directories and one section, `tail` bytes after it.
    fn image(tail: &[u8]) -> Vec<u8> {
        let mut pe = vec![0u8; 0x400];
        pe[..0x80].copy_from_slice(&dos_stub());
        pe[0x80..0x84].copy_from_slice(SIGNATURE);
        let coff = 0x84;
        put_u16(&mut pe, coff + coff::NUMBER_OF_SECTIONS, 1);
        put_u16(&mut pe, coff + coff::SIZE_OF_OPTIONAL_HEADER, 240);
        let o = coff + COFF_HEADER_SIZE;
        put_u16(&mut pe, o, PE32_PLUS);
        put_u32(&mut pe, o + optional::SIZE_OF_HEADERS, 0x200);
        put_u32(&mut pe, o + optional::NUMBER_OF_RVA_AND_SIZES, 16);
        SectionHeader {
            name: SectionHeader::name_bytes(".text"),
            virtual_size: 0x200,
            virtual_address: 0x1000,
            raw_size: 0x200,
            raw_offset: 0x200,
            characteristics: SCN_CODE,
        }
        .write(&mut pe, o + 240);
        pe[0x200..0x400].fill(0xCC);
        pe.extend_from_slice(tail);
        pe
    }

    #[test]
    fn headers_and_sections_are_read() {
        let pe = image(&[]);
        let parsed = Image::parse(&pe).unwrap();
        assert_eq!(parsed.sections.len(), 1);
        assert_eq!(&parsed.sections[0].name, b".text\0\0\0");
        assert_eq!(parsed.section_data(0).unwrap(), &[0xCC; 0x200][..]);
        assert_eq!(Image::parse(b"MZ").err(), Some(PeError::Truncated(LFANEW)));
        assert_eq!(Image::parse(b"not a pe").err(), Some(PeError::NoMz));
    }

    #[test]
    fn authenticode_skips_the_checksum_and_the_signature() {
        let unsigned = image(&[]);
        let digest = authenticode_sha256(&unsigned).unwrap();
        // The checksum field is not hashed.
        let mut summed = unsigned.clone();
        put_u32(&mut summed, 0x98 + optional::CHECKSUM, 0x1234);
        assert_eq!(authenticode_sha256(&summed).unwrap(), digest);
        // Nor are an appended certificate table and its directory entry.
        let mut signed = image(&[0xAB; 16]);
        let directory = 0x98 + optional::DATA_DIRECTORIES + 8 * DIRECTORY_SECURITY;
        put_u32(&mut signed, directory, 0x400);
        put_u32(&mut signed, directory + 4, 16);
        assert_eq!(authenticode_sha256(&signed).unwrap(), digest);
        // Data after the sections that is not a certificate table is.
        assert_ne!(authenticode_sha256(&image(&[0xAB; 16])).unwrap(), digest);
        // A section's bytes are.
        let mut changed = unsigned;
        changed[0x300] = 0;
        assert_ne!(authenticode_sha256(&changed).unwrap(), digest);
        put_u32(&mut signed, directory + 4, 17);
        assert_eq!(
            authenticode_sha256(&signed).err(),
            Some(PeError::CertificateTable)
        );
    }
}
