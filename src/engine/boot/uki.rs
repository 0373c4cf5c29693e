//! Unified kernel images: the release's systemd-stub (a PE32+) with `.osrel`, `.cmdline`,
//! `.uname`, `.splash`, `.linux`, `.initrd` (and, from Talos 1.10, a `.profile`) sections
//! appended, laid out as Talos's imager lays them out (no objcopy). A Secure Boot UKI also
//! carries the PCR public key and one policy signature per boot profile
//! ([`with_pcr_signatures`]), and is signed as a whole afterwards.

use super::pcr;
use super::pe::{self, PeError, SectionHeader, coff, optional as pe_optional};
use crate::engine::{EngineError, SOURCE_DATE_EPOCH};
use crate::profile::TalosVersion;
use rsa::RsaPrivateKey;

/// Where the assembled image's PE signature goes: right after the stub's MS-DOS header.
const PE_OFFSET: usize = pe::DOS_STUB_SIZE;
/// Initialized data, readable: every appended section.
const APPENDED_CHARACTERISTICS: u32 = pe::SCN_READ | pe::SCN_INITIALIZED_DATA;

/// One section to append.
#[derive(Debug, Clone)]
pub struct Section {
    pub name: &'static str,
    pub data: Vec<u8>,
}

fn round_up(value: u64, alignment: u64) -> u64 {
    if alignment == 0 {
        value
    } else {
        value.div_ceil(alignment) * alignment
    }
}

/// The largest file alignment the PE format allows.
const MAX_FILE_ALIGNMENT: u64 = 64 * 1024;

fn stub_error(error: PeError) -> EngineError {
    EngineError::Pe(format!("systemd-stub: {error}"))
}

fn too_large(what: &str) -> EngineError {
    stub_error(PeError::TooLarge(what.to_string()))
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

/// The stub's own `.sbat`, which systemd-stub measures: its data cut to the virtual size.
fn stub_sbat(stub: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
    let parsed = pe::Image::parse(stub).map_err(stub_error)?;
    let name = SectionHeader::name_bytes(".sbat");
    let Some((index, header)) = parsed
        .sections
        .iter()
        .enumerate()
        .find(|(_, header)| header.name == name)
    else {
        return Ok(None);
    };
    let data = parsed.section_data(index).map_err(stub_error)?;
    Ok(Some(
        data.iter()
            .take(header.virtual_size as usize)
            .copied()
            .collect(),
    ))
}

/// `sections` made into a Secure Boot UKI's (imager.md §7.1, §7.3): `.pcrpkey` before
/// `.linux`, and a `.pcrsig` after each boot profile, signing what PCR 11 holds once that
/// profile booted. A profile is measured as the sections before the first `.profile` plus its
/// own, its `.cmdline` replacing the base one. Before Talos 1.10 there are no profiles and
/// one `.pcrsig` comes last.
pub fn with_pcr_signatures(
    sections: Vec<Section>,
    stub: &[u8],
    pcr_key: &RsaPrivateKey,
) -> Result<Vec<Section>, EngineError> {
    let sbat = stub_sbat(stub)?;
    let mut sections = sections;
    let linux = sections
        .iter()
        .position(|section| section.name == ".linux")
        .unwrap_or(sections.len());
    sections.insert(
        linux,
        Section {
            name: ".pcrpkey",
            data: pcr::public_key_pem(pcr_key)?.into_bytes(),
        },
    );
    let first_profile = sections
        .iter()
        .position(|section| section.name == ".profile")
        .unwrap_or(sections.len());
    let (base, profiles) = sections.split_at(first_profile);
    let mut measured_base: Vec<(&str, &[u8])> = base
        .iter()
        .map(|section| (section.name, section.data.as_slice()))
        .collect();
    if let Some(sbat) = &sbat {
        measured_base.push((".sbat", sbat));
    }
    let signature = |measured: &[(&str, &[u8])]| -> Result<Section, EngineError> {
        Ok(Section {
            name: ".pcrsig",
            data: pcr::signature_json(measured, pcr_key)?.into_bytes(),
        })
    };
    let mut out = base.to_vec();
    if profiles.is_empty() {
        out.push(signature(&measured_base)?);
        return Ok(out);
    }
    // Each group runs from one `.profile` section to the next.
    for group in profiles.chunk_by(|_, next| next.name != ".profile") {
        let mut measured = measured_base.clone();
        for section in group {
            match measured.iter_mut().find(|(name, _)| *name == section.name) {
                Some(slot) => slot.1 = &section.data,
                None => measured.push((section.name, &section.data)),
            }
        }
        out.extend_from_slice(group);
        out.push(signature(&measured)?);
    }
    Ok(out)
}

/// Copies `bytes` into `out` at `at`, where the layout put them.
fn place(out: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), EngineError> {
    out.get_mut(at..at + bytes.len())
        .ok_or_else(|| stub_error(PeError::Truncated(at)))?
        .copy_from_slice(bytes);
    Ok(())
}

/// Appends `sections` to `stub`.
pub fn assemble(stub: &[u8], sections: &[Section]) -> Result<Vec<u8>, EngineError> {
    let parsed = pe::Image::parse(stub).map_err(stub_error)?;
    let section_alignment = parsed.section_alignment().map_err(stub_error)?;
    let file_alignment = parsed.file_alignment().map_err(stub_error)?;
    // The output's size follows the stub's section sizes and file alignment: a stub whose
    // sections lie past its end, or whose alignment is past the PE limit of 64 KiB, would
    // have it allocate gigabytes before failing.
    for index in 0..parsed.sections.len() {
        parsed.section_data(index).map_err(stub_error)?;
    }
    if file_alignment > MAX_FILE_ALIGNMENT {
        return Err(too_large("file alignment"));
    }
    let (coff, optional, optional_size) = (parsed.coff, parsed.optional, parsed.optional_size);
    let mut headers = parsed.sections.clone();
    let last = headers
        .iter()
        .max_by_key(|header| header.virtual_address)
        .ok_or_else(|| stub_error(PeError::NoSections))?;
    let mut next_va = round_up(
        u64::from(last.virtual_address) + u64::from(last.virtual_size),
        section_alignment,
    );
    let stub_count = headers.len();
    for section in sections {
        let size = section.data.len() as u64;
        headers.push(SectionHeader {
            name: SectionHeader::name_bytes(section.name),
            virtual_size: u32::try_from(size)
                .map_err(|_| too_large(&format!("section {}", section.name)))?,
            virtual_address: u32::try_from(next_va).map_err(|_| too_large("image"))?,
            raw_size: round_up(size, file_alignment) as u32,
            raw_offset: 0,
            characteristics: APPENDED_CHARACTERISTICS,
        });
        next_va = round_up(next_va + size, section_alignment);
    }
    let total = headers.len();
    // The imager leaves the 4-byte signature out of this sum; the table still fits.
    let size_of_headers = round_up(
        (PE_OFFSET + pe::COFF_HEADER_SIZE + optional_size + pe::SECTION_HEADER_SIZE * total) as u64,
        file_alignment,
    );
    let mut offset = size_of_headers;
    for header in &mut headers {
        header.raw_offset = u32::try_from(offset).map_err(|_| too_large("image"))?;
        offset += u64::from(header.raw_size);
    }
    let last = headers
        .iter()
        .max_by_key(|header| header.virtual_address)
        .ok_or_else(|| stub_error(PeError::NoSections))?;
    let size_of_image = round_up(
        u64::from(last.virtual_address) + u64::from(last.virtual_size),
        section_alignment,
    );
    let (mut size_of_code, mut size_of_data) = (0u32, 0u32);
    for header in &headers {
        if header.characteristics & pe::SCN_INITIALIZED_DATA != 0 {
            size_of_data = size_of_data.wrapping_add(header.raw_size);
        } else {
            size_of_code = size_of_code.wrapping_add(header.raw_size);
        }
    }

    // Every offset below was computed from the sizes above; the stub's own header bytes are
    // read through checked ranges, its parsed headers having only vouched for their fields.
    let stub_range = |start: usize, length: usize| {
        stub.get(start..start + length)
            .ok_or_else(|| stub_error(PeError::Truncated(start)))
    };
    let mut out = vec![0u8; offset as usize];
    place(&mut out, 0, stub_range(0, pe::DOS_HEADER_SIZE)?)?;
    pe::put_u32(&mut out, pe::LFANEW, PE_OFFSET as u32);
    place(&mut out, PE_OFFSET, pe::SIGNATURE)?;
    let new_coff = PE_OFFSET + 4;
    place(&mut out, new_coff, stub_range(coff, pe::COFF_HEADER_SIZE)?)?;
    pe::put_u16(&mut out, new_coff + coff::NUMBER_OF_SECTIONS, total as u16);
    pe::put_u32(
        &mut out,
        new_coff + coff::TIME_DATE_STAMP,
        SOURCE_DATE_EPOCH,
    );
    // A stub's COFF symbol table (distribution builds keep one) lies past its sections and
    // is not carried over, so the header must not point at it.
    place(&mut out, new_coff + coff::POINTER_TO_SYMBOL_TABLE, &[0; 8])?;
    let new_optional = new_coff + pe::COFF_HEADER_SIZE;
    place(&mut out, new_optional, stub_range(optional, optional_size)?)?;
    place(
        &mut out,
        new_optional + pe_optional::LINKER_VERSION,
        &[0; 2],
    )?;
    for (field, value) in [
        (pe_optional::SIZE_OF_CODE, size_of_code),
        (pe_optional::SIZE_OF_INITIALIZED_DATA, size_of_data),
        (pe_optional::SIZE_OF_IMAGE, size_of_image as u32),
        (pe_optional::SIZE_OF_HEADERS, size_of_headers as u32),
        (pe_optional::CHECKSUM, 0),
    ] {
        pe::put_u32(&mut out, new_optional + field, value);
    }
    // A signed stub's certificate table is not carried over either (its offset would point
    // into the new sections, and the UKI is signed afresh), so its directory entry goes.
    let directories = parsed
        .optional_u32(pe_optional::NUMBER_OF_RVA_AND_SIZES)
        .map_err(stub_error)? as usize;
    let security = pe_optional::DATA_DIRECTORIES + 8 * pe::DIRECTORY_SECURITY;
    if directories > pe::DIRECTORY_SECURITY
        && security + 8 <= optional_size
        && let Some(entry) = out.get_mut(new_optional + security..new_optional + security + 8)
    {
        entry.fill(0);
    }
    let new_table = new_optional + optional_size;
    for (index, header) in headers.iter().enumerate() {
        header.write(&mut out, new_table + index * pe::SECTION_HEADER_SIZE);
    }
    let stub_data = (0..stub_count).map(|index| parsed.section_data(index).map_err(stub_error));
    let appended = sections.iter().map(|section| Ok(section.data.as_slice()));
    for (header, data) in headers.iter().zip(stub_data.chain(appended)) {
        place(&mut out, header.raw_offset as usize, data?)?;
    }
    Ok(out)
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
    String::from_utf8(text.get(..end)?.to_vec())
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
