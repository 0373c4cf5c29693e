//! The `modules.dep` extension: when extensions ship kernel modules, the release's module
//! tree (read from `rootfs.sqsh` inside the base initramfs, never unpacked to disk) and the
//! extensions' modules are indexed together, and the index files become one more extension.

use super::depmod::depmod;
use super::extension::{Extension, Manifest};
use crate::engine::EngineError;
use crate::engine::fs::cpio::read_newc;
use crate::profile::TalosVersion;
use crate::source::Entry;
use crate::source::limits::{Budgeted, expansion_budget};
use backhand::{FilesystemReader, InnerNode};
use std::collections::BTreeMap;
use std::io::{Cursor, Read};

/// depmod's search order in Talos (`search extras built-in`): modules an extension puts in
/// `extras/` win over in-tree ones.
const SEARCH: &[&str] = &["extras", "built-in"];

/// Decompresses the base initramfs (xz when it starts with the xz magic, else zstd), no
/// further than its budget: a hostile imager's initramfs could be a decompression bomb.
fn decompress(base: &[u8]) -> Result<Vec<u8>, EngineError> {
    let failure =
        |error: std::io::Error| EngineError::InvalidInput(format!("base initramfs: {error}"));
    let limit = expansion_budget(base.len() as u64);
    let decoder: Box<dyn Read + '_> = if base.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(base))
    } else {
        Box::new(zstd::stream::read::Decoder::new(base).map_err(failure)?)
    };
    let mut reader = Budgeted::new(decoder, limit);
    let exceeded = reader.exceeded();
    let mut out = Vec::new();
    match reader.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(_) if exceeded.get() => Err(EngineError::Expands {
            what: "base initramfs",
            limit,
        }),
        Err(error) => Err(failure(error)),
    }
}

/// The release's `<modules dir>/<release>/` tree from the base initramfs.
fn release_modules(
    base: &[u8],
    modules_dir: &str,
) -> Result<(String, BTreeMap<String, Vec<u8>>), EngineError> {
    let invalid = |why: String| EngineError::InvalidInput(format!("base initramfs: {why}"));
    let archive = decompress(base)?;
    let members = read_newc(&archive).map_err(invalid)?;
    let rootfs = members
        .into_iter()
        .find(|(name, _)| name.trim_start_matches("./") == "rootfs.sqsh")
        .map(|(_, data)| data)
        .ok_or_else(|| invalid("no rootfs.sqsh".into()))?;
    let reader = FilesystemReader::from_reader(Cursor::new(rootfs))
        .map_err(|error| invalid(format!("rootfs.sqsh: {error}")))?;
    let prefix = format!("/{modules_dir}/");
    let mut releases = BTreeMap::new();
    // The module files are kept: bounded like the archive they come from.
    let limit = expansion_budget(base.len() as u64);
    let mut kept = 0u64;
    for node in reader.files() {
        let path = node.fullpath.to_string_lossy().to_string();
        let Some(relative) = path.strip_prefix(&prefix) else {
            continue;
        };
        let Some((release, inside)) = relative.split_once('/') else {
            continue;
        };
        let files: &mut BTreeMap<String, Vec<u8>> =
            releases.entry(release.to_string()).or_default();
        if let InnerNode::File(file) = &node.inner {
            let mut data = Vec::new();
            let left = limit - kept;
            reader
                .file(file)
                .reader()
                .take(left + 1)
                .read_to_end(&mut data)
                .map_err(|error| invalid(format!("rootfs.sqsh {path}: {error}")))?;
            kept += data.len() as u64;
            if kept > limit {
                return Err(EngineError::Expands {
                    what: "base initramfs rootfs.sqsh",
                    limit,
                });
            }
            files.insert(inside.to_string(), data);
        }
    }
    if releases.len() != 1 {
        return Err(invalid(format!(
            "expected one kernel release under /{modules_dir}, found {:?}",
            releases.keys().collect::<Vec<_>>()
        )));
    }
    let (release, files) = releases
        .into_iter()
        .next()
        .ok_or_else(|| invalid("no kernel modules".into()))?;
    Ok((release, files))
}

/// The `modules.dep` extension for `extensions`, or `None` when none ships modules.
pub fn modules_dep_extension(
    base: &[u8],
    version: &TalosVersion,
    extensions: &[Extension],
) -> Result<Option<Extension>, EngineError> {
    let modules_dir = version.modules_dir();
    let prefix = format!("{modules_dir}/");
    if !extensions.iter().any(|extension| {
        extension
            .rootfs
            .keys()
            .any(|path| path.starts_with(&prefix))
    }) {
        return Ok(None);
    }
    let (release, mut tree) = release_modules(base, modules_dir)?;
    let release_prefix = format!("{prefix}{release}/");
    for extension in extensions {
        for (path, entry) in &extension.rootfs {
            let Some(relative) = path.strip_prefix(&prefix) else {
                continue;
            };
            let Some(inside) = path.strip_prefix(&release_prefix) else {
                if relative.contains('/') || matches!(entry, Entry::File { .. }) {
                    return Err(EngineError::InvalidExtension {
                        extension: extension.manifest.name.clone(),
                        reason: format!(
                            "ships modules for a kernel other than the release's {release} ({path})"
                        ),
                    });
                }
                continue;
            };
            if let Entry::File { data, .. } = entry {
                tree.insert(inside.to_string(), data.clone());
            }
        }
    }
    let outputs = depmod(&release, &tree, SEARCH)
        .map_err(|error| EngineError::InvalidInput(format!("depmod: {error}")))?;
    for (name, data) in outputs {
        tree.insert(name, data);
    }
    let mut rootfs = BTreeMap::new();
    let mut dir = String::new();
    for component in format!("{modules_dir}/{release}").split('/') {
        if !dir.is_empty() {
            dir.push('/');
        }
        dir.push_str(component);
        rootfs.insert(dir.clone(), Entry::Dir { mode: 0o755 });
    }
    for (name, data) in tree {
        if !name.contains('/') && name.starts_with("modules.") {
            rootfs.insert(
                format!("{modules_dir}/{release}/{name}"),
                Entry::File { data, mode: 0o644 },
            );
        }
    }
    Ok(Some(Extension {
        manifest: Manifest {
            name: "modules.dep".into(),
            version: release,
            author: "Talos Machinery".into(),
            description: "Combined modules.dep for all extensions".into(),
            compatibility: None,
            extra_info: None,
        },
        rootfs,
        selinux: BTreeMap::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_base_initramfs_bomb_stops_at_its_budget() {
        let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 0);
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..80 {
            encoder.write_all(&zeros).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
        let error = decompress(&bomb).unwrap_err();
        assert!(
            matches!(error, EngineError::Expands { limit, .. } if limit == 64 << 20),
            "{error}"
        );
    }
}
