//! The initramfs with extensions: early microcode in a plain cpio before the base
//! initramfs, then the base (never unpacked), then one compressed cpio holding a squashfs per
//! extension, `extensions.yaml` and the extensions' firmware.

pub mod depmod;
pub mod extension;
pub mod modules;

use crate::engine::fs::cpio::{Member, write_newc};
use crate::engine::{EngineError, SOURCE_DATE_EPOCH};
use crate::profile::TalosVersion;
use crate::source::Entry;
use crate::yaml::emit::{Emit, to_string};
use backhand::compression::Compressor;
use backhand::{FilesystemCompressor, FilesystemWriter, NodeHeader};
use extension::Extension;
use std::collections::BTreeMap;
use std::io::{Cursor, Write};

/// Extensions in build order; their directory names are their indexes, except
/// `modules.dep`, which comes last.
#[derive(Debug, Clone, Default)]
pub struct ExtensionSet {
    pub extensions: Vec<Extension>,
    pub modules_dep: Option<Extension>,
}

impl ExtensionSet {
    /// `(directory name, extension)` in the order Talos processes them: the names sorted as
    /// strings (`0, 1, 10, 2, …`), then `modules.dep`.
    pub fn ordered(&self) -> Vec<(String, &Extension)> {
        let mut named: Vec<(String, &Extension)> = self
            .extensions
            .iter()
            .enumerate()
            .map(|(index, extension)| (index.to_string(), extension))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(modules) = &self.modules_dep {
            named.push(("modules.dep".into(), modules));
        }
        named
    }
}

/// Builds the initramfs for `version` from the release's `base` initramfs.
pub fn build(
    base: &[u8],
    version: &TalosVersion,
    set: &ExtensionSet,
) -> Result<Vec<u8>, EngineError> {
    if set.extensions.is_empty() && set.modules_dep.is_none() {
        return Ok(base.to_vec());
    }
    let firmware_dir = version.firmware_dir();
    let mut microcode: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    let mut stage: BTreeMap<String, Member> = BTreeMap::new();
    let mut layers = Vec::new();

    for (name, extension) in set.ordered() {
        let mut rootfs = extension.rootfs.clone();
        // Early microcode: concatenated per vendor, removed from the extension.
        for (vendor_dir, file_prefix, target) in [
            ("intel-ucode", "", "GenuineIntel.bin"),
            ("amd-ucode", "microcode_amd", "AuthenticAMD.bin"),
        ] {
            let dir = format!("{firmware_dir}/{vendor_dir}/");
            let blobs: Vec<String> = rootfs
                .iter()
                .filter(|(path, entry)| {
                    path.strip_prefix(&dir).is_some_and(|file| {
                        !file.contains('/')
                            && file.starts_with(file_prefix)
                            && (file_prefix.is_empty() || file.ends_with(".bin"))
                    }) && matches!(entry, Entry::File { .. })
                })
                .map(|(path, _)| path.clone())
                .collect();
            for path in blobs {
                if let Some(Entry::File { data, .. }) = rootfs.remove(&path) {
                    microcode.entry(target).or_default().extend(data);
                }
            }
        }
        // Remaining firmware (the directory itself included) moves into the initramfs.
        let firmware_prefix = format!("{firmware_dir}/");
        let firmware: Vec<String> = rootfs
            .keys()
            .filter(|path| path.starts_with(&firmware_prefix) || *path == firmware_dir)
            .cloned()
            .collect();
        for path in firmware {
            if let Some(entry) = rootfs.remove(&path) {
                add_with_parents(&mut stage, &path, member_of(&entry));
            }
        }
        let image_name = format!("{name}.sqsh");
        let squashfs = squash(&extension.manifest.name, &rootfs, version)?;
        stage.insert(
            image_name.clone(),
            Member::File {
                data: squashfs,
                mode: 0o644,
            },
        );
        layers.push(Emit::Map(vec![
            (Emit::Str("image".into()), Emit::Str(image_name)),
            (
                Emit::Str("metadata".into()),
                extension.manifest.metadata_emit(),
            ),
        ]));
    }
    let extensions_yaml = to_string(&Emit::Map(vec![(
        Emit::Str("layers".into()),
        Emit::Seq(layers),
    )]));
    stage.insert(
        "extensions.yaml".into(),
        Member::File {
            data: extensions_yaml.into_bytes(),
            mode: 0o644,
        },
    );

    let mut out = Vec::new();
    if !microcode.is_empty() {
        let mut early = BTreeMap::new();
        for (file, data) in microcode {
            add_with_parents(
                &mut early,
                &format!("kernel/x86/microcode/{file}"),
                Member::File { data, mode: 0o644 },
            );
        }
        let members: Vec<(String, Member)> = early.into_iter().collect();
        write_newc(&mut out, &members, SOURCE_DATE_EPOCH).map_err(EngineError::io("early cpio"))?;
    }
    out.extend_from_slice(base);
    let members: Vec<(String, Member)> = stage.into_iter().collect();
    let mut cpio = Vec::new();
    write_newc(&mut cpio, &members, SOURCE_DATE_EPOCH)
        .map_err(EngineError::io("extensions cpio"))?;
    out.extend(compress(&cpio, version)?);
    Ok(out)
}

fn member_of(entry: &Entry) -> Member {
    match entry {
        Entry::Dir { mode } => Member::Dir { mode: *mode },
        Entry::File { data, mode } => Member::File {
            data: data.clone(),
            mode: *mode,
        },
        Entry::Symlink { target } => Member::Symlink {
            target: target.clone(),
        },
    }
}

fn add_with_parents(stage: &mut BTreeMap<String, Member>, path: &str, member: Member) {
    let mut prefix = String::new();
    let mut parts: Vec<&str> = path.split('/').collect();
    // Every component but the last is a parent directory.
    parts.pop();
    for part in parts {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        stage
            .entry(prefix.clone())
            .or_insert(Member::Dir { mode: 0o755 });
    }
    stage.insert(path.to_string(), member);
}

/// The appended cpio's compression: `zstd -18` from 1.8, else xz with CRC32 (`-0 -e`), the
/// only check the kernel's xz decoder supports.
pub fn compress(bytes: &[u8], version: &TalosVersion) -> Result<Vec<u8>, EngineError> {
    if version.uses_zstd() {
        zstd::bulk::compress(bytes, 18).map_err(EngineError::io("zstd"))
    } else {
        let stream = liblzma::stream::Stream::new_easy_encoder(
            liblzma::stream::PRESET_EXTREME,
            liblzma::stream::Check::Crc32,
        )
        .map_err(|error| EngineError::Compression(error.to_string()))?;
        let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        encoder
            .write_all(bytes)
            .and_then(|()| encoder.finish())
            .map_err(EngineError::io("xz"))
    }
}

/// One extension's squashfs: all files root-owned, one mtime, zstd level 18 from 1.8 (xz
/// before), as `mksquashfs -all-root` makes it.
fn squash(
    name: &str,
    rootfs: &BTreeMap<String, Entry>,
    version: &TalosVersion,
) -> Result<Vec<u8>, EngineError> {
    let failure = |error: backhand::BackhandError| EngineError::Squashfs {
        extension: name.to_string(),
        reason: error.to_string(),
    };
    let mut writer = FilesystemWriter::default();
    writer.set_time(SOURCE_DATE_EPOCH);
    writer.set_root_mode(0o755);
    writer.set_root_uid(0);
    writer.set_root_gid(0);
    writer.set_only_root_id();
    let compressor = if version.uses_zstd() {
        FilesystemCompressor::new(
            Compressor::Zstd,
            Some(backhand::compression::CompressionOptions::Zstd(
                backhand::compression::Zstd {
                    compression_level: 18,
                },
            )),
        )
    } else {
        FilesystemCompressor::new(Compressor::Xz, None)
    }
    .map_err(failure)?;
    writer.set_compressor(compressor);
    let header = |mode: u32| NodeHeader::new((mode & 0o7777) as u16, 0, 0, SOURCE_DATE_EPOCH);
    for (path, entry) in rootfs {
        let path = format!("/{path}");
        match entry {
            Entry::Dir { mode } => writer.push_dir(&path, header(*mode)).map_err(failure)?,
            Entry::File { data, mode } => writer
                .push_file(Cursor::new(data.clone()), &path, header(*mode))
                .map_err(failure)?,
            Entry::Symlink { target } => writer
                .push_symlink(target, &path, header(0o777))
                .map_err(failure)?,
        }
    }
    let mut out = Cursor::new(Vec::new());
    writer.write(&mut out).map_err(failure)?;
    Ok(out.into_inner())
}
