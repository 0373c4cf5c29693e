//! newc cpio archives as GNU `cpio -H newc --reproducible -R +0:+0` writes them: root-owned,
//! inodes numbered in order, one fixed mtime, 4-byte alignment, `TRAILER!!!`, padded to 512.

use std::io::{self, Write};

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    Dir { mode: u32 },
    File { data: Vec<u8>, mode: u32 },
    Symlink { target: String },
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// Writes `members` (name, member) in the given order, all with `mtime`; returns the
/// archive size.
pub fn write_newc<W: Write>(out: W, members: &[(String, Member)], mtime: u32) -> io::Result<u64> {
    let mut writer = NewcWriter { out, written: 0 };
    for (index, (name, member)) in members.iter().enumerate() {
        let ino = index as u32;
        match member {
            Member::Dir { mode } => {
                writer.entry(ino, name, S_IFDIR | (mode & 0o7777), 2, mtime, &[])?
            }
            Member::File { data, mode } => {
                writer.entry(ino, name, S_IFREG | (mode & 0o7777), 1, mtime, data)?
            }
            Member::Symlink { target } => {
                writer.entry(ino, name, S_IFLNK | 0o777, 1, mtime, target.as_bytes())?
            }
        }
    }
    writer.entry(0, "TRAILER!!!", 0, 1, 0, &[])?;
    let padding = (512 - writer.written % 512) % 512;
    writer.raw(&vec![0u8; padding as usize])?;
    Ok(writer.written)
}

struct NewcWriter<W> {
    out: W,
    written: u64,
}

impl<W: Write> NewcWriter<W> {
    fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn entry(
        &mut self,
        ino: u32,
        name: &str,
        mode: u32,
        nlink: u32,
        mtime: u32,
        data: &[u8],
    ) -> io::Result<()> {
        let name_size = name.len() + 1;
        let header = format!(
            "070701{ino:08X}{mode:08X}{uid:08X}{gid:08X}{nlink:08X}{mtime:08X}{size:08X}{zero:08X}{zero:08X}{zero:08X}{zero:08X}{name_size:08X}{zero:08X}",
            uid = 0,
            gid = 0,
            size = data.len(),
            zero = 0,
        );
        self.raw(header.as_bytes())?;
        self.raw(name.as_bytes())?;
        self.raw(&[0])?;
        self.raw(padding(110 + name_size))?;
        self.raw(data)?;
        self.raw(padding(data.len()))
    }
}

/// The zeros that pad `length` bytes to the archive's 4-byte alignment.
fn padding(length: usize) -> &'static [u8] {
    let zeros: &'static [u8] = &[0; 3];
    zeros.get(..(4 - length % 4) % 4).unwrap_or_default()
}

/// Members of a newc archive, for reading the base initramfs (`rootfs.sqsh`).
pub fn read_newc(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut members = Vec::new();
    let mut at = 0usize;
    let field = |bytes: &[u8], at: usize, index: usize| -> Result<usize, String> {
        let start = at + 6 + index * 8;
        let text = bytes
            .get(start..start + 8)
            .and_then(|raw| std::str::from_utf8(raw).ok())
            .ok_or("truncated cpio header")?;
        usize::from_str_radix(text, 16).map_err(|_| format!("bad cpio header field {text:?}"))
    };
    loop {
        // Concatenated archives may be separated by zero padding.
        while bytes.get(at) == Some(&0) {
            at += 1;
        }
        if at >= bytes.len() {
            break;
        }
        match bytes.get(at..at + 6) {
            Some(b"070701") | Some(b"070702") => {}
            _ => return Err(format!("not a newc cpio header at offset {at}")),
        }
        let file_size = field(bytes, at, 6)?;
        let name_size = field(bytes, at, 11)?;
        let name_start = at + 110;
        let name = bytes
            .get(name_start..name_start + name_size.saturating_sub(1))
            .ok_or("truncated cpio name")?;
        let name = String::from_utf8_lossy(name).to_string();
        let data_start = (name_start + name_size).div_ceil(4) * 4;
        let data = bytes
            .get(data_start..data_start + file_size)
            .ok_or("truncated cpio data")?;
        at = (data_start + file_size).div_ceil(4) * 4;
        if name == "TRAILER!!!" {
            continue;
        }
        members.push((name, data.to_vec()));
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let members = vec![
            ("kernel".to_string(), Member::Dir { mode: 0o755 }),
            (
                "kernel/x86/microcode/AuthenticAMD.bin".to_string(),
                Member::File {
                    data: b"ucode".to_vec(),
                    mode: 0o644,
                },
            ),
            (
                "link".to_string(),
                Member::Symlink {
                    target: "kernel".into(),
                },
            ),
        ];
        let mut out = Vec::new();
        let size = write_newc(&mut out, &members, 1559424892).unwrap();
        assert_eq!(size as usize, out.len());
        assert_eq!(out.len() % 512, 0);
        let read = read_newc(&out).unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(read[1].0, "kernel/x86/microcode/AuthenticAMD.bin");
        assert_eq!(read[1].1, b"ucode");
        assert_eq!(read[2].1, b"kernel");
    }
}
