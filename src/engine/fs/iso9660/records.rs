//! Directory records with their Rock Ridge (SUSP) entries: names, modes and times as
//! `mkisofs -r` writes them, and the size of each directory's extent.

use super::*;

pub(super) const FLAG_DIRECTORY: u8 = 0x02;
/// Directory modes as mkisofs `-r` gives them: readable and searchable by everyone.
pub(super) const DIR_MODE: u32 = 0o040_555;
pub(super) const FILE_MODE: u32 = 0o100_444;
pub(super) const EXECUTABLE_FILE_MODE: u32 = 0o100_555;

pub(super) const ER_ID: &[u8] = b"RRIP_1991A";
pub(super) const ER_DESCRIPTOR: &[u8] =
    b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
pub(super) const ER_SOURCE: &[u8] = b"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";

pub(super) fn both16(value: u16) -> [u8; 4] {
    let [a, b] = value.to_le_bytes();
    [a, b, b, a]
}

pub(super) fn both32(value: u32) -> [u8; 8] {
    let le = value.to_le_bytes();
    [le[0], le[1], le[2], le[3], le[3], le[2], le[1], le[0]]
}

/// The 7-byte recording time of directory records and Rock Ridge TF entries (UTC).
pub(super) fn record_time(time: &UtcTime) -> [u8; 7] {
    [
        (time.year - 1900).clamp(0, 255) as u8,
        time.month as u8,
        time.day as u8,
        time.hour as u8,
        time.minute as u8,
        time.second as u8,
        0,
    ]
}

/// The 17-byte volume descriptor time: `YYYYMMDDhhmmsscc` and a zero UTC offset.
pub(super) fn volume_time(time: Option<&UtcTime>) -> [u8; 17] {
    let mut out = [b'0'; 17];
    if let Some(t) = time {
        let text = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}00",
            t.year.clamp(0, 9999),
            t.month,
            t.day,
            t.hour,
            t.minute,
            t.second
        );
        out[..16].copy_from_slice(text.as_bytes());
    }
    out[16] = 0;
    out
}

/// The System Use fields of one record.
pub(super) struct Susp<'a> {
    pub(super) mode: u32,
    pub(super) links: u32,
    pub(super) serial: u32,
    pub(super) name: Option<&'a str>,
    /// Root `.` only: the SUSP indicator and the continuation holding the ER entry.
    pub(super) root: Option<u32>,
}

pub(super) const PX_LEN: usize = 44;
pub(super) const TF_LEN: usize = 5 + 7 * 3;
pub(super) const SP_LEN: usize = 7;
pub(super) const CE_LEN: usize = 28;

pub(super) fn susp_len(susp: &Susp) -> usize {
    PX_LEN
        + TF_LEN
        + susp.name.map_or(0, |name| 5 + name.len())
        + if susp.root.is_some() {
            SP_LEN + CE_LEN
        } else {
            0
        }
}

pub(super) fn record_len(identifier_len: usize, susp: &Susp) -> usize {
    let base = 33 + identifier_len + usize::from(identifier_len.is_multiple_of(2));
    let len = base + susp_len(susp);
    len + len % 2
}

/// The ER entry naming the Rock Ridge extension, kept in the root's continuation area.
pub(super) fn er_entry() -> Vec<u8> {
    let mut out = vec![b'E', b'R', 0, 1];
    out.push(ER_ID.len() as u8);
    out.push(ER_DESCRIPTOR.len() as u8);
    out.push(ER_SOURCE.len() as u8);
    out.push(1);
    out.extend_from_slice(ER_ID);
    out.extend_from_slice(ER_DESCRIPTOR);
    out.extend_from_slice(ER_SOURCE);
    out[2] = out.len() as u8;
    out
}

pub(super) fn push_record(
    out: &mut Vec<u8>,
    identifier: &[u8],
    lba: u32,
    size: u64,
    directory: bool,
    time: &[u8; 7],
    susp: &Susp,
) -> Result<(), EngineError> {
    let len = record_len(identifier.len(), susp);
    let start = out.len();
    let size = u32::try_from(size).map_err(|_| {
        EngineError::InvalidInput(format!(
            "a {size}-byte file does not fit in one ISO 9660 extent (4 GiB)"
        ))
    })?;
    out.push(len as u8);
    out.push(0);
    out.extend_from_slice(&both32(lba));
    out.extend_from_slice(&both32(size));
    out.extend_from_slice(time);
    out.push(if directory { FLAG_DIRECTORY } else { 0 });
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&both16(1));
    out.push(identifier.len() as u8);
    out.extend_from_slice(identifier);
    if identifier.len().is_multiple_of(2) {
        out.push(0);
    }
    if let Some(continuation) = susp.root {
        out.extend_from_slice(&[b'S', b'P', SP_LEN as u8, 1, 0xBE, 0xEF, 0]);
        out.extend_from_slice(&[b'C', b'E', CE_LEN as u8, 1]);
        out.extend_from_slice(&both32(continuation));
        out.extend_from_slice(&both32(0));
        out.extend_from_slice(&both32(er_entry().len() as u32));
    }
    out.extend_from_slice(&[b'P', b'X', PX_LEN as u8, 1]);
    out.extend_from_slice(&both32(susp.mode));
    out.extend_from_slice(&both32(susp.links));
    out.extend_from_slice(&both32(0));
    out.extend_from_slice(&both32(0));
    out.extend_from_slice(&both32(susp.serial));
    // Modification, access and attribute-change times.
    out.extend_from_slice(&[b'T', b'F', TF_LEN as u8, 1, 0x0E]);
    for _ in 0..3 {
        out.extend_from_slice(time);
    }
    if let Some(name) = susp.name {
        out.extend_from_slice(&[b'N', b'M', (5 + name.len()) as u8, 1, 0]);
        out.extend_from_slice(name.as_bytes());
    }
    out.resize(start + len, 0);
    Ok(())
}

/// One directory record of `dir` without its position: what `push_record` needs.
pub(super) struct Entry<'a> {
    pub(super) identifier: &'a [u8],
    pub(super) target: Kind,
    pub(super) susp: Susp<'a>,
}

pub(super) fn entries<'a>(
    tree: &'a Tree,
    files: &[IsoFile],
    dir: usize,
    continuation: u32,
) -> Vec<Entry<'a>> {
    let links = |index: usize| {
        2 + tree.dirs[index]
            .children
            .iter()
            .filter(|child| matches!(child.kind, Kind::Dir(_)))
            .count() as u32
    };
    // Serial numbers: directories 1.., then files after all directories.
    let dir_serial = |index: usize| index as u32 + 1;
    let file_serial = |index: usize| (tree.dirs.len() + index) as u32 + 1;
    let parent = tree.dirs[dir].parent;
    let mut out = vec![
        Entry {
            identifier: &[0],
            target: Kind::Dir(dir),
            susp: Susp {
                mode: DIR_MODE,
                links: links(dir),
                serial: dir_serial(dir),
                name: None,
                root: (dir == 0).then_some(continuation),
            },
        },
        Entry {
            identifier: &[1],
            target: Kind::Dir(parent),
            susp: Susp {
                mode: DIR_MODE,
                links: links(parent),
                serial: dir_serial(parent),
                name: None,
                root: None,
            },
        },
    ];
    for child in &tree.dirs[dir].children {
        let susp = match child.kind {
            Kind::Dir(sub) => Susp {
                mode: DIR_MODE,
                links: links(sub),
                serial: dir_serial(sub),
                name: Some(&child.name),
                root: None,
            },
            Kind::File(index) => Susp {
                mode: if is_executable(&files[index].bytes) {
                    EXECUTABLE_FILE_MODE
                } else {
                    FILE_MODE
                },
                links: 1,
                serial: file_serial(index),
                name: Some(&child.name),
                root: None,
            },
        };
        out.push(Entry {
            identifier: &child.identifier,
            target: child.kind,
            susp,
        });
    }
    out
}

/// ELF and PE files keep an executable mode, as `-r` keeps execute bits.
pub(super) fn is_executable(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF") || bytes.starts_with(b"MZ")
}

/// Bytes a directory's records take: records never straddle a block.
pub(super) fn directory_size(entries: &[Entry]) -> u64 {
    let mut used = 0u64;
    for entry in entries {
        let len = record_len(entry.identifier.len(), &entry.susp) as u64;
        if used % BLOCK + len > BLOCK {
            used = used.div_ceil(BLOCK) * BLOCK;
        }
        used += len;
    }
    used.div_ceil(BLOCK) * BLOCK
}
