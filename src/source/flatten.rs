//! Flattening image layers into one file tree: layers applied in order, whiteouts honoured,
//! and any entry that would land outside the root refused.
//!
//! The tree lives in memory and is never extracted to disk by path, but the checks are those
//! an extractor needs: no absolute paths, no `..`, and no path that passes through a
//! symlink (which could point anywhere).

use super::SourceError;
use super::{limits, oci};
use std::collections::BTreeMap;
use std::io::Read;

/// One entry of a flattened file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir { mode: u32 },
    File { data: Vec<u8>, mode: u32 },
    Symlink { target: String },
}

/// A flattened file system: normalised relative paths (no leading `/` or `./`) to entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileTree {
    entries: BTreeMap<String, Entry>,
    /// PAX `SCHILY.xattr.*` records by path (SELinux labels of extension files).
    xattrs: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

impl FileTree {
    pub fn entries(&self) -> &BTreeMap<String, Entry> {
        &self.entries
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path.trim_start_matches('/'))
    }

    /// The bytes of a regular file.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        match self.get(path)? {
            Entry::File { data, .. } => Some(data),
            _ => None,
        }
    }

    pub fn xattrs(&self, path: &str) -> Option<&BTreeMap<String, Vec<u8>>> {
        self.xattrs.get(path)
    }

    /// Entries below `dir` (not including it), in path order.
    pub fn under<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a String, &'a Entry)> + 'a {
        let prefix = format!("{}/", dir.trim_matches('/'));
        self.entries
            .range(prefix.clone()..)
            .take_while(move |(path, _)| path.starts_with(&prefix))
    }

    /// Applies one layer blob (`media_type` decides the decompression; the magic number is
    /// trusted over a wrong label).
    ///
    /// What a layer may hold, by rule: regular files, directories, hard links to files of
    /// the layers so far, and symlinks whose target stays inside the image (extension
    /// rootfs trees are full of them, relative and absolute). Refused: absolute paths, `..`
    /// that climbs out, paths through a symlink, symlinks whose target climbs out of the
    /// root, device nodes and fifos (nothing of a Talos release is one, and the trees are
    /// written into squashfs images and scratch directories), and a layer that decompresses
    /// to more than its budget ([`limits::expansion_budget`]): a decompression bomb is
    /// refused within the budget's worth of memory and time.
    pub fn apply_layer(
        &mut self,
        image: &str,
        media_type: &str,
        blob: &[u8],
    ) -> Result<(), SourceError> {
        let invalid = |why: String| SourceError::Invalid(format!("layer of {image}: {why}"));
        let compressed = blob.len() as u64;
        let reader: Box<dyn Read + '_> = if blob.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::GzDecoder::new(blob))
        } else if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Box::new(zstd::stream::read::Decoder::new(blob).map_err(|e| invalid(e.to_string()))?)
        } else if media_type == oci::LAYER_GZIP || media_type == oci::DOCKER_LAYER_GZIP {
            return Err(invalid("labelled gzip but is not".into()));
        } else {
            Box::new(blob)
        };
        // An uncompressed layer is already in memory, whatever its size.
        let budget = limits::expansion_budget(compressed).max(compressed);
        let reader = limits::Budgeted::new(reader, budget);
        let exceeded = reader.exceeded();
        // The bytes kept in the tree: file data, hard-link copies and sparse files expanded
        // by the tar reader (which the stream budget does not see).
        let mut kept_left = budget;
        let mut last_path = String::new();
        let bomb = |entry: &str| SourceError::Expands {
            image: image.to_string(),
            entry: entry.to_string(),
            limit: budget,
        };
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(|e| invalid(e.to_string()))?;
        for entry in entries {
            let mut entry = match entry {
                Ok(entry) => entry,
                Err(_) if exceeded.get() => return Err(bomb(&last_path)),
                Err(error) => return Err(invalid(error.to_string())),
            };
            let raw_path = String::from_utf8_lossy(&entry.path_bytes()).to_string();
            last_path.clone_from(&raw_path);
            let path = normalise(image, &raw_path)?;
            let mut xattrs = BTreeMap::new();
            if let Ok(Some(extensions)) = entry.pax_extensions() {
                for extension in extensions.flatten() {
                    if let Ok(key) = extension.key()
                        && let Some(name) = key.strip_prefix("SCHILY.xattr.")
                    {
                        xattrs.insert(name.to_string(), extension.value_bytes().to_vec());
                    }
                }
            }
            let Some(path) = path else { continue };
            let name = path.rsplit('/').next().unwrap_or(&path);
            if name == OPAQUE_WHITEOUT {
                let dir = parent(&path).to_string();
                self.remove_children(&dir);
                continue;
            }
            if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
                let dir = parent(&path);
                let target = if dir.is_empty() {
                    hidden.to_string()
                } else {
                    format!("{dir}/{hidden}")
                };
                self.remove(&target);
                continue;
            }
            self.check_parents(image, &path)?;
            let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
            let kind = entry.header().entry_type();
            let refuse = |reason: String| SourceError::UnsafePath {
                image: image.to_string(),
                path: raw_path.clone(),
                reason,
            };
            let new = match kind {
                tar::EntryType::Directory => Entry::Dir { mode },
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .map(|bytes| String::from_utf8_lossy(&bytes).to_string())
                        .unwrap_or_default();
                    if escapes(&path, &target) {
                        return Err(refuse(format!(
                            "symlink to {target:?}, which points outside the image"
                        )));
                    }
                    Entry::Symlink { target }
                }
                tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|bytes| String::from_utf8_lossy(&bytes).to_string())
                        .unwrap_or_default();
                    let target = normalise(image, &target)?.unwrap_or_default();
                    match self.entries.get(&target) {
                        Some(Entry::File { data, .. }) => {
                            // Each link is a copy in the tree: a thousand links to one big
                            // file cost a thousand times its size.
                            kept_left = kept_left
                                .checked_sub(data.len() as u64)
                                .ok_or_else(|| bomb(&raw_path))?;
                            Entry::File {
                                data: data.clone(),
                                mode,
                            }
                        }
                        _ => {
                            return Err(refuse(format!(
                                "hard link to {target:?}, which is not a file"
                            )));
                        }
                    }
                }
                tar::EntryType::Char | tar::EntryType::Block => {
                    return Err(refuse("device node".into()));
                }
                tar::EntryType::Fifo => return Err(refuse("fifo".into())),
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
                // Regular files, and (as Talos's extractor does) every other kind as a file.
                _ => {
                    let size = entry.size();
                    kept_left = kept_left.checked_sub(size).ok_or_else(|| bomb(&raw_path))?;
                    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                    match entry.read_to_end(&mut data) {
                        Ok(_) => {}
                        Err(_) if exceeded.get() => return Err(bomb(&raw_path)),
                        Err(error) => return Err(invalid(error.to_string())),
                    }
                    Entry::File { data, mode }
                }
            };
            // A later entry replaces an earlier one; a directory over a directory keeps the
            // contents, anything else replaces the whole subtree.
            let keeps_children = matches!(
                (self.entries.get(&path), &new),
                (Some(Entry::Dir { .. }), Entry::Dir { .. })
            );
            if !keeps_children {
                self.remove(&path);
            }
            if !xattrs.is_empty() {
                self.xattrs.insert(path.clone(), xattrs);
            }
            self.entries.insert(path, new);
        }
        if exceeded.get() {
            return Err(bomb(&last_path));
        }
        Ok(())
    }

    fn remove(&mut self, path: &str) {
        self.entries.remove(path);
        self.xattrs.remove(path);
        self.remove_children(path);
    }

    fn remove_children(&mut self, dir: &str) {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let doomed: Vec<String> = self
            .entries
            .keys()
            .filter(|path| path.starts_with(&prefix) && path.as_str() != dir)
            .cloned()
            .collect();
        for path in doomed {
            self.entries.remove(&path);
            self.xattrs.remove(&path);
        }
    }

    /// Every ancestor must be a directory (created implicitly if absent), never a symlink or
    /// a file.
    fn check_parents(&mut self, image: &str, path: &str) -> Result<(), SourceError> {
        let mut ancestor = String::new();
        let mut components: Vec<&str> = path.split('/').collect();
        // Every component but the last is an ancestor.
        components.pop();
        for component in components {
            if !ancestor.is_empty() {
                ancestor.push('/');
            }
            ancestor.push_str(component);
            match self.entries.get(&ancestor) {
                None => {
                    self.entries
                        .insert(ancestor.clone(), Entry::Dir { mode: 0o755 });
                }
                Some(Entry::Dir { .. }) => {}
                Some(Entry::Symlink { target }) => {
                    return Err(SourceError::UnsafePath {
                        image: image.to_string(),
                        path: path.to_string(),
                        reason: format!("passes through the symlink {ancestor:?} -> {target:?}"),
                    });
                }
                Some(Entry::File { .. }) => {
                    return Err(SourceError::UnsafePath {
                        image: image.to_string(),
                        path: path.to_string(),
                        reason: format!("{ancestor:?} is a file"),
                    });
                }
            }
        }
        Ok(())
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("")
}

/// Whether the symlink at `path` (normalised) with `target` leaves the image's root. The
/// target is resolved by its text alone, from the link's directory, or from the root when
/// absolute (as the node or a container runtime resolves it inside its root).
fn escapes(path: &str, target: &str) -> bool {
    let mut depth: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        parent(path).split('/').filter(|c| !c.is_empty()).collect()
    };
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return true;
                }
            }
            other => depth.push(other),
        }
    }
    false
}

/// `./a//b/` → `a/b`; the root itself → `None`; absolute paths and `..` are refused.
fn normalise(image: &str, raw: &str) -> Result<Option<String>, SourceError> {
    let refuse = |reason: &str| SourceError::UnsafePath {
        image: image.to_string(),
        path: raw.to_string(),
        reason: reason.to_string(),
    };
    if raw.starts_with('/') {
        return Err(refuse("absolute path"));
    }
    let mut parts = Vec::new();
    for component in raw.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(refuse("escapes the root with ..")),
            other if other.contains('\0') => return Err(refuse("NUL in path")),
            other => parts.push(other),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    enum Item<'a> {
        File(&'a str, &'a str),
        Dir(&'a str),
        Link(&'a str, &'a str),
        HardLink(&'a str, &'a str),
        Node(&'a str, tar::EntryType),
        Zeros(&'a str, usize),
    }

    fn layer(items: &[Item]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for item in items {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            match item {
                Item::File(path, data) => {
                    header.set_size(data.len() as u64);
                    header.set_entry_type(tar::EntryType::Regular);
                    // Write the name raw so that unsafe names reach the reader untouched.
                    header.as_gnu_mut().unwrap().name[..path.len()]
                        .copy_from_slice(path.as_bytes());
                    header.set_cksum();
                    builder.append(&header, data.as_bytes()).unwrap();
                }
                Item::Dir(path) => {
                    header.set_size(0);
                    header.set_entry_type(tar::EntryType::Directory);
                    builder
                        .append_data(&mut header, path, std::io::empty())
                        .unwrap();
                }
                Item::Link(path, target) => {
                    header.set_size(0);
                    header.set_entry_type(tar::EntryType::Symlink);
                    builder.append_link(&mut header, path, target).unwrap();
                }
                Item::HardLink(path, target) => {
                    header.set_size(0);
                    header.set_entry_type(tar::EntryType::Link);
                    builder.append_link(&mut header, path, target).unwrap();
                }
                Item::Node(path, kind) => {
                    header.set_size(0);
                    header.set_entry_type(*kind);
                    builder
                        .append_data(&mut header, path, std::io::empty())
                        .unwrap();
                }
                Item::Zeros(path, size) => {
                    header.set_size(*size as u64);
                    header.set_entry_type(tar::EntryType::Regular);
                    builder
                        .append_data(&mut header, path, &vec![0u8; *size][..])
                        .unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn layers_apply_in_order_with_whiteouts() {
        let mut tree = FileTree::default();
        tree.apply_layer(
            "test",
            oci::LAYER_TAR,
            &layer(&[
                Item::Dir("etc"),
                Item::File("etc/a", "1"),
                Item::File("etc/b", "2"),
                Item::File("opt/x/y", "3"),
                Item::File("keep", "4"),
            ]),
        )
        .unwrap();
        tree.apply_layer(
            "test",
            oci::LAYER_TAR,
            &layer(&[
                Item::File("etc/.wh.a", ""),
                Item::File("opt/.wh..wh..opq", ""),
                Item::File("opt/new", "5"),
                Item::File("keep", "6"),
            ]),
        )
        .unwrap();
        assert_eq!(tree.file("etc/a"), None);
        assert_eq!(tree.file("etc/b"), Some(&b"2"[..]));
        assert_eq!(tree.get("opt/x"), None);
        assert_eq!(tree.file("opt/new"), Some(&b"5"[..]));
        assert_eq!(tree.file("keep"), Some(&b"6"[..]));
    }

    #[test]
    fn escaping_entries_are_refused() {
        for bad in ["../evil", "a/../../evil", "/etc/passwd"] {
            let mut tree = FileTree::default();
            let error = tree
                .apply_layer("bad-image", oci::LAYER_TAR, &layer(&[Item::File(bad, "x")]))
                .unwrap_err();
            assert!(
                matches!(&error, SourceError::UnsafePath { path, .. } if path == bad),
                "{bad}: {error}"
            );
            assert!(error.to_string().contains("bad-image"), "{error}");
        }
    }

    #[test]
    fn paths_through_symlinks_are_refused() {
        let mut tree = FileTree::default();
        let error = tree
            .apply_layer(
                "tricky",
                oci::LAYER_TAR,
                &layer(&[Item::Link("lib", "/etc"), Item::File("lib/passwd", "x")]),
            )
            .unwrap_err();
        assert!(
            error.to_string().contains("passes through the symlink"),
            "{error}"
        );
    }

    #[test]
    fn symlinks_may_point_anywhere_inside_but_not_out() {
        let mut tree = FileTree::default();
        tree.apply_layer(
            "fine",
            oci::LAYER_TAR,
            &layer(&[
                Item::Link("rootfs/usr/lib/libz.so", "libz.so.1"),
                Item::Link("rootfs/lib", "/usr/lib"),
                Item::Link("rootfs/usr/share/manifest", "../../../manifest.yaml"),
            ]),
        )
        .unwrap();
        for target in ["../../../../etc", "/../etc", "a/../../../../x"] {
            let error = FileTree::default()
                .apply_layer(
                    "climbing",
                    oci::LAYER_TAR,
                    &layer(&[Item::Link("rootfs/usr/x", target)]),
                )
                .unwrap_err();
            assert!(
                matches!(&error, SourceError::UnsafePath { path, .. } if path == "rootfs/usr/x"),
                "{target}: {error}"
            );
            assert!(error.to_string().contains("climbing"), "{error}");
        }
    }

    #[test]
    fn devices_and_fifos_are_refused() {
        for kind in [
            tar::EntryType::Char,
            tar::EntryType::Block,
            tar::EntryType::Fifo,
        ] {
            let error = FileTree::default()
                .apply_layer(
                    "devices",
                    oci::LAYER_TAR,
                    &layer(&[Item::Node("dev/node", kind)]),
                )
                .unwrap_err();
            assert!(
                matches!(&error, SourceError::UnsafePath { path, .. } if path == "dev/node"),
                "{kind:?}: {error}"
            );
        }
    }

    #[test]
    fn hard_link_copies_count_against_the_budget() {
        let mut items = vec![Item::Zeros("big", 1 << 20)];
        let names: Vec<String> = (0..80).map(|i| format!("link{i}")).collect();
        items.extend(names.iter().map(|name| Item::HardLink(name, "big")));
        let tar = layer(&items);
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut encoder, &tar).unwrap();
        let error = FileTree::default()
            .apply_layer("links", oci::LAYER_GZIP, &encoder.finish().unwrap())
            .unwrap_err();
        assert!(
            matches!(&error, SourceError::Expands { limit, .. } if *limit == limits::MIN_EXPANDED),
            "{error}"
        );
    }

    #[test]
    fn gzip_layers_are_read() {
        let tar = layer(&[Item::File("a", "hello")]);
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, &tar).unwrap();
        let mut tree = FileTree::default();
        tree.apply_layer("gz", oci::LAYER_GZIP, &encoder.finish().unwrap())
            .unwrap();
        assert_eq!(tree.file("a"), Some(&b"hello"[..]));
    }
}
