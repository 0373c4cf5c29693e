//! Unified kernel images: the release's systemd-stub (a PE32+) with `.osrel`, `.cmdline`,
//! `.uname`, `.splash`, `.linux`, `.initrd` (and, from Talos 1.10, a `.profile`) sections
//! appended, laid out as Talos's imager lays them out (no objcopy).

use crate::engine::{EngineError, SOURCE_DATE_EPOCH};
use crate::profile::TalosVersion;

const PE_OFFSET: usize = 0x80;
const COFF_SIZE: usize = 20;
const SECTION_HEADER_SIZE: usize = 40;
const PE32_PLUS: u16 = 0x20b;
const CNT_INITIALIZED_DATA: u32 = 0x40;
/// Initialized data, readable: every appended section.
const APPENDED_CHARACTERISTICS: u32 = 0x4000_0040;

/// One section to append.
#[derive(Debug, Clone)]
pub struct Section {
    pub name: &'static str,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone)]
struct SectionHeader {
    name: [u8; 8],
    virtual_size: u32,
    virtual_address: u32,
    raw_size: u32,
    raw_offset: u32,
    characteristics: u32,
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, EngineError> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| EngineError::Pe(format!("systemd-stub truncated at {at:#x}")))
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, EngineError> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| EngineError::Pe(format!("systemd-stub truncated at {at:#x}")))
}

fn round_up(value: u64, alignment: u64) -> u64 {
    if alignment == 0 {
        value
    } else {
        value.div_ceil(alignment) * alignment
    }
}

/// A second boot profile: its `.profile` text and the arguments added to the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtraProfile {
    pub profile: &'static str,
    pub extra_args: &'static str,
}

/// The reset profile of UKIs on disk images and in installers.
pub const RESET_MAINTENANCE: ExtraProfile = ExtraProfile {
    profile: "ID=reset-maintenance\nTITLE=Reset to maintenance mode",
    extra_args: " talos.experimental.wipe=system:EPHEMERAL,STATE",
};

/// The reset profile of UKIs on ISOs.
pub const RESET_SYSTEM_DISK: ExtraProfile = ExtraProfile {
    profile: "ID=reset\nTITLE=Reset system disk",
    extra_args: " talos.experimental.wipe=system",
};

/// The sections of a Talos UKI in the imager's order (imager.md §7.1), without Secure Boot.
/// Profiles exist from Talos 1.10: `main`, then `extra` if given.
pub fn talos_sections(
    version: &TalosVersion,
    cmdline: &str,
    kernel: Vec<u8>,
    initramfs: Vec<u8>,
    extra: Option<ExtraProfile>,
) -> Vec<Section> {
    let mut sections = vec![
        Section {
            name: ".osrel",
            data: os_release(&version.tag()).into_bytes(),
        },
        Section {
            name: ".cmdline",
            data: cmdline.as_bytes().to_vec(),
        },
    ];
    if let Some(release) = bzimage_release(&kernel) {
        sections.push(Section {
            name: ".uname",
            data: release.into_bytes(),
        });
    }
    sections.push(Section {
        name: ".splash",
        data: splash(),
    });
    sections.push(Section {
        name: ".linux",
        data: kernel,
    });
    sections.push(Section {
        name: ".initrd",
        data: initramfs,
    });
    if version.at_least(1, 10, 0) {
        sections.push(Section {
            name: ".profile",
            data: b"ID=main".to_vec(),
        });
        if let Some(extra) = extra {
            sections.push(Section {
                name: ".profile",
                data: extra.profile.as_bytes().to_vec(),
            });
            sections.push(Section {
                name: ".cmdline",
                data: format!("{cmdline}{}", extra.extra_args).into_bytes(),
            });
        }
    }
    sections
}

/// Appends `sections` to `stub`.
pub fn assemble(stub: &[u8], sections: &[Section]) -> Result<Vec<u8>, EngineError> {
    if stub.get(0..2) != Some(b"MZ") {
        return Err(EngineError::Pe(
            "systemd-stub is not a PE file (no MZ)".into(),
        ));
    }
    let pe = u32_at(stub, 0x3c)? as usize;
    if stub.get(pe..pe + 4) != Some(b"PE\0\0") {
        return Err(EngineError::Pe("systemd-stub has no PE signature".into()));
    }
    let coff = pe + 4;
    let stub_sections = u16_at(stub, coff + 2)? as usize;
    let optional_size = u16_at(stub, coff + 16)? as usize;
    let optional = coff + COFF_SIZE;
    if u16_at(stub, optional)? != PE32_PLUS || optional_size < 112 {
        return Err(EngineError::Pe("systemd-stub is not PE32+".into()));
    }
    let section_alignment = u64::from(u32_at(stub, optional + 32)?);
    let file_alignment = u64::from(u32_at(stub, optional + 36)?);
    let table = optional + optional_size;
    let mut headers = Vec::new();
    for index in 0..stub_sections {
        let at = table + index * SECTION_HEADER_SIZE;
        let name: [u8; 8] = stub
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| EngineError::Pe("systemd-stub section table truncated".into()))?;
        headers.push(SectionHeader {
            name,
            virtual_size: u32_at(stub, at + 8)?,
            virtual_address: u32_at(stub, at + 12)?,
            raw_size: u32_at(stub, at + 16)?,
            raw_offset: u32_at(stub, at + 20)?,
            characteristics: u32_at(stub, at + 36)?,
        });
    }
    let last = headers
        .iter()
        .max_by_key(|header| header.virtual_address)
        .ok_or_else(|| EngineError::Pe("systemd-stub has no sections".into()))?;
    let mut next_va = round_up(
        u64::from(last.virtual_address) + u64::from(last.virtual_size),
        section_alignment,
    );
    let stub_count = headers.len();
    for section in sections {
        let mut name = [0u8; 8];
        name[..section.name.len().min(8)]
            .copy_from_slice(&section.name.as_bytes()[..section.name.len().min(8)]);
        let size = section.data.len() as u64;
        headers.push(SectionHeader {
            name,
            virtual_size: u32::try_from(size)
                .map_err(|_| EngineError::Pe(format!("section {} too large", section.name)))?,
            virtual_address: u32::try_from(next_va)
                .map_err(|_| EngineError::Pe("image too large".into()))?,
            raw_size: round_up(size, file_alignment) as u32,
            raw_offset: 0,
            characteristics: APPENDED_CHARACTERISTICS,
        });
        next_va = round_up(next_va + size, section_alignment);
    }
    let total = headers.len();
    // The imager leaves the 4-byte signature out of this sum; the table still fits.
    let size_of_headers = round_up(
        (PE_OFFSET + COFF_SIZE + optional_size + SECTION_HEADER_SIZE * total) as u64,
        file_alignment,
    );
    let mut offset = size_of_headers;
    for header in &mut headers {
        header.raw_offset =
            u32::try_from(offset).map_err(|_| EngineError::Pe("image too large".into()))?;
        offset += u64::from(header.raw_size);
    }
    let last = headers
        .iter()
        .max_by_key(|header| header.virtual_address)
        .ok_or_else(|| EngineError::Pe("no sections".into()))?;
    let size_of_image = round_up(
        u64::from(last.virtual_address) + u64::from(last.virtual_size),
        section_alignment,
    );
    let (mut size_of_code, mut size_of_data) = (0u32, 0u32);
    for header in &headers {
        if header.characteristics & CNT_INITIALIZED_DATA != 0 {
            size_of_data = size_of_data.wrapping_add(header.raw_size);
        } else {
            size_of_code = size_of_code.wrapping_add(header.raw_size);
        }
    }

    let mut out = vec![0u8; offset as usize];
    out[..0x40].copy_from_slice(&stub[..0x40]);
    out[0x3c..0x40].copy_from_slice(&(PE_OFFSET as u32).to_le_bytes());
    out[PE_OFFSET..PE_OFFSET + 4].copy_from_slice(b"PE\0\0");
    let new_coff = PE_OFFSET + 4;
    out[new_coff..new_coff + COFF_SIZE].copy_from_slice(&stub[coff..coff + COFF_SIZE]);
    out[new_coff + 2..new_coff + 4].copy_from_slice(&(total as u16).to_le_bytes());
    out[new_coff + 4..new_coff + 8].copy_from_slice(&SOURCE_DATE_EPOCH.to_le_bytes());
    // A stub's COFF symbol table (distribution builds keep one) lies past its sections and
    // is not carried over, so the header must not point at it.
    out[new_coff + 8..new_coff + 16].fill(0);
    let new_optional = new_coff + COFF_SIZE;
    out[new_optional..new_optional + optional_size]
        .copy_from_slice(&stub[optional..optional + optional_size]);
    let put = |out: &mut Vec<u8>, at: usize, value: u32| {
        out[new_optional + at..new_optional + at + 4].copy_from_slice(&value.to_le_bytes())
    };
    out[new_optional + 2] = 0;
    out[new_optional + 3] = 0;
    put(&mut out, 4, size_of_code);
    put(&mut out, 8, size_of_data);
    put(&mut out, 56, size_of_image as u32);
    put(&mut out, 60, size_of_headers as u32);
    put(&mut out, 64, 0);
    let new_table = new_optional + optional_size;
    for (index, header) in headers.iter().enumerate() {
        let at = new_table + index * SECTION_HEADER_SIZE;
        out[at..at + 8].copy_from_slice(&header.name);
        out[at + 8..at + 12].copy_from_slice(&header.virtual_size.to_le_bytes());
        out[at + 12..at + 16].copy_from_slice(&header.virtual_address.to_le_bytes());
        out[at + 16..at + 20].copy_from_slice(&header.raw_size.to_le_bytes());
        out[at + 20..at + 24].copy_from_slice(&header.raw_offset.to_le_bytes());
        out[at + 36..at + 40].copy_from_slice(&header.characteristics.to_le_bytes());
    }
    for (index, header) in headers.iter().enumerate() {
        let start = header.raw_offset as usize;
        let data: &[u8] = if index < stub_count {
            let from = headers_raw_offset(stub, table, index)?;
            stub.get(from..from + header.raw_size as usize)
                .ok_or_else(|| {
                    EngineError::Pe(format!(
                        "systemd-stub section {index} lies past the end of the file"
                    ))
                })?
        } else {
            &sections[index - stub_count].data
        };
        out[start..start + data.len()].copy_from_slice(data);
    }
    Ok(out)
}

fn headers_raw_offset(stub: &[u8], table: usize, index: usize) -> Result<usize, EngineError> {
    Ok(u32_at(stub, table + index * SECTION_HEADER_SIZE + 20)? as usize)
}

/// The kernel release of an x86 bzImage (`HdrS` header), cut at the first space.
pub fn bzimage_release(kernel: &[u8]) -> Option<String> {
    if kernel.get(0x202..0x206) != Some(b"HdrS") {
        return None;
    }
    let pointer = u16::from_le_bytes([*kernel.get(0x20e)?, *kernel.get(0x20f)?]) as usize;
    let start = 0x200 + pointer;
    let text = kernel.get(start..)?;
    let end = text
        .iter()
        .position(|&b| b == 0 || b == b' ')
        .unwrap_or(text.len().min(256));
    String::from_utf8(text[..end].to_vec())
        .ok()
        .filter(|s| !s.is_empty())
}

/// `.osrel` for `version` (a `v` tag).
pub fn os_release(version: &str) -> String {
    format!(
        "NAME=\"Talos\"\nID=talos\nVERSION_ID={version}\nPRETTY_NAME=\"Talos ({version})\"\nHOME_URL=\"https://www.talos.dev/\"\nBUG_REPORT_URL=\"https://github.com/siderolabs/talos/issues\"\nVENDOR_NAME=\"Sidero Labs\"\nVENDOR_URL=\"https://www.siderolabs.com/\"\n"
    )
}

/// The boot splash: a small 24-bit BMP, generated so the engine ships no binary assets.
pub fn splash() -> Vec<u8> {
    const WIDTH: u32 = 64;
    const HEIGHT: u32 = 16;
    let row = (WIDTH * 3).div_ceil(4) * 4;
    let pixels = row * HEIGHT;
    let mut bmp = Vec::with_capacity(54 + pixels as usize);
    bmp.extend_from_slice(b"BM");
    bmp.extend_from_slice(&(54 + pixels).to_le_bytes());
    bmp.extend_from_slice(&0u32.to_le_bytes());
    bmp.extend_from_slice(&54u32.to_le_bytes());
    bmp.extend_from_slice(&40u32.to_le_bytes());
    bmp.extend_from_slice(&WIDTH.to_le_bytes());
    bmp.extend_from_slice(&HEIGHT.to_le_bytes());
    bmp.extend_from_slice(&1u16.to_le_bytes());
    bmp.extend_from_slice(&24u16.to_le_bytes());
    bmp.extend_from_slice(&[0u8; 24]);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            // A band of Talos orange on black.
            let lit = (4..12).contains(&y) && x % 8 < 6;
            bmp.extend_from_slice(if lit { &[0x1f, 0x6b, 0xff] } else { &[0, 0, 0] });
        }
        bmp.extend(std::iter::repeat_n(0u8, (row - WIDTH * 3) as usize));
    }
    bmp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bzimage_release_is_read_from_the_header() {
        let mut kernel = vec![0u8; 0x400];
        kernel[0x202..0x206].copy_from_slice(b"HdrS");
        kernel[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        kernel[0x300..0x300 + 22].copy_from_slice(b"6.1.0-56-amd64 (debian");
        assert_eq!(bzimage_release(&kernel).as_deref(), Some("6.1.0-56-amd64"));
        assert_eq!(bzimage_release(&[0u8; 16]), None);
    }

    #[test]
    fn rejects_what_is_not_a_pe32_plus() {
        assert!(assemble(b"not a pe", &[]).is_err());
    }

    #[test]
    fn splash_is_a_bmp() {
        let bmp = splash();
        assert_eq!(&bmp[..2], b"BM");
        assert_eq!(
            u32::from_le_bytes(bmp[2..6].try_into().unwrap()) as usize,
            bmp.len()
        );
    }
}
