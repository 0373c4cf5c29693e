//! The scratch tree an overlay installer runs against, and what is read back from it:
//!
//! ```text
//! <scratch>/overlay/artifacts/…     the host-arch overlay's artifacts   (read only)
//! <scratch>/overlay/installers/…    its installer programs              (read only)
//! <scratch>/disk.raw                the sparse disk image file          (written)
//! <scratch>/image/                  the mount prefix; boot/EFI/ is ESP  (written)
//! <scratch>/work/                   working directory, HOME, TMPDIR     (written)
//! ```
//!
//! When the factory is root the written parts belong to `nobody`, the user the program
//! runs as. The whole tree goes when the [`Scratch`] is dropped.

use super::OverlayError;
use crate::source::flatten::{Entry, FileTree};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const NOBODY: u32 = 65534;
/// The part of the mount prefix that becomes ESP content.
pub const ESP_DIR: &str = "boot/EFI";

/// One run's scratch tree, removed on drop.
#[derive(Debug)]
pub struct Scratch {
    root: PathBuf,
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> OverlayError {
    let what = what.to_string();
    move |source| OverlayError::Io { what, source }
}

/// Hands a path the installer writes to the user it runs as.
fn give_away(path: &Path) -> Result<(), OverlayError> {
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let nobody = Some(rustix::fs::Uid::from_raw(NOBODY));
    let group = Some(rustix::fs::Gid::from_raw(NOBODY));
    rustix::fs::chown(path, nobody, group)
        .map_err(|error| io(path.display())(std::io::Error::from(error)))
}

impl Scratch {
    /// A new scratch tree under `base` holding the overlay's `artifacts/` and `installers/`
    /// and a sparse disk image file of `disk_size` bytes.
    pub fn create(
        base: &Path,
        overlay: &FileTree,
        disk_size: u64,
    ) -> Result<Scratch, OverlayError> {
        fs::create_dir_all(base).map_err(io(base.display()))?;
        let root = base.join(format!("overlay-{}", uuid::Uuid::new_v4().simple()));
        fs::DirBuilder::new()
            .mode(0o711)
            .create(&root)
            .map_err(io(root.display()))?;
        let scratch = Scratch { root };
        for top in ["artifacts", "installers"] {
            let dir = scratch.overlay().join(top);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&dir)
                .map_err(io(dir.display()))?;
            for (path, entry) in overlay.under(top) {
                scratch.materialize(path, entry)?;
            }
        }
        for dir in [scratch.mount_prefix(), scratch.work_dir()] {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(io(dir.display()))?;
            give_away(&dir)?;
        }
        let disk = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(scratch.disk())
            .map_err(io(scratch.disk().display()))?;
        disk.set_len(disk_size)
            .map_err(io(scratch.disk().display()))?;
        give_away(&scratch.disk())?;
        Ok(scratch)
    }

    fn materialize(&self, path: &str, entry: &Entry) -> Result<(), OverlayError> {
        let target = self.overlay().join(path);
        let failed = io(target.display());
        match entry {
            Entry::Dir { .. } => fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&target)
                .map_err(failed),
            Entry::File { data, mode } => {
                if let Some(parent) = target.parent() {
                    fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o755)
                        .create(parent)
                        .map_err(io(parent.display()))?;
                }
                fs::write(&target, data).map_err(io(target.display()))?;
                // Readable by the installer's user; executable bits as the image has them.
                let mode = (mode & 0o755) | 0o444;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(failed)
            }
            Entry::Symlink { target: link } => {
                std::os::unix::fs::symlink(inside(path, link), &target).map_err(failed)
            }
        }
    }

    pub fn overlay(&self) -> PathBuf {
        self.root.join("overlay")
    }

    pub fn artifacts(&self) -> PathBuf {
        self.overlay().join("artifacts")
    }

    pub fn installer(&self, name: &str) -> PathBuf {
        self.overlay().join("installers").join(name)
    }

    pub fn disk(&self) -> PathBuf {
        self.root.join("disk.raw")
    }

    pub fn mount_prefix(&self) -> PathBuf {
        self.root.join("image")
    }

    pub fn work_dir(&self) -> PathBuf {
        self.root.join("work")
    }

    /// The ranges of the disk image file that hold data, as `(offset, bytes)`; all-zero
    /// blocks are holes too.
    pub fn disk_extents(&self) -> Result<Vec<(u64, Vec<u8>)>, OverlayError> {
        use rustix::fs::SeekFrom;
        use std::os::unix::fs::FileExt;
        let path = self.disk();
        let file = fs::File::open(&path).map_err(io(path.display()))?;
        let size = file.metadata().map_err(io(path.display()))?.len();
        let mut extents: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut offset = 0u64;
        const BLOCK: u64 = 4096;
        while offset < size {
            let Ok(data) = rustix::fs::seek(&file, SeekFrom::Data(offset)) else {
                break; // ENXIO: no data after `offset`.
            };
            let hole = rustix::fs::seek(&file, SeekFrom::Hole(data))
                .map_err(|error| io(path.display())(std::io::Error::from(error)))?;
            let mut at = data;
            while at < hole {
                let length = (hole - at).min(BLOCK) as usize;
                let mut block = vec![0u8; length];
                file.read_exact_at(&mut block, at)
                    .map_err(io(path.display()))?;
                if block.iter().any(|byte| *byte != 0) {
                    match extents.last_mut() {
                        Some((start, bytes)) if *start + bytes.len() as u64 == at => {
                            bytes.extend_from_slice(&block);
                        }
                        _ => extents.push((at, block)),
                    }
                }
                at += length as u64;
            }
            offset = hole;
        }
        Ok(extents)
    }

    /// The files the installer left under `<mount prefix>/boot/EFI/`, by path relative to
    /// it, in path order.
    pub fn esp_files(&self) -> Result<Vec<(String, Vec<u8>)>, OverlayError> {
        let mut files = Vec::new();
        let root = self.mount_prefix().join(ESP_DIR);
        if root.is_dir() {
            collect_files(&root, "", &mut files)?;
        }
        files.sort();
        Ok(files)
    }

    /// Bytes the installer wrote: data in the disk image file and everything in the trees
    /// it may write.
    pub fn written(&self) -> Result<u64, OverlayError> {
        let disk: u64 = self
            .disk_extents()?
            .iter()
            .map(|(_, bytes)| bytes.len() as u64)
            .sum();
        Ok(disk + tree_size(&self.mount_prefix())? + tree_size(&self.work_dir())?)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(error) = fs::remove_dir_all(&self.root) {
            tracing::warn!(path = %self.root.display(), %error, "cannot remove an overlay scratch tree");
        }
    }
}

/// The target to write for a symlink at `path` of the overlay image: an absolute target
/// names a path of the image, so it becomes relative to the link, and the link stays inside
/// the scratch tree instead of naming a path of the host. (Flattening refused any target
/// that climbs out of the image.)
fn inside(path: &str, link: &str) -> String {
    let Some(rooted) = link.strip_prefix('/') else {
        return link.to_string();
    };
    let depth = path.matches('/').count();
    let up = "../".repeat(depth);
    let rooted = rooted.trim_start_matches('/');
    if rooted.is_empty() {
        if up.is_empty() {
            ".".into()
        } else {
            up.trim_end_matches('/').to_string()
        }
    } else {
        format!("{up}{rooted}")
    }
}

fn collect_files(
    dir: &Path,
    prefix: &str,
    files: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), OverlayError> {
    for entry in fs::read_dir(dir).map_err(io(dir.display()))? {
        let entry = entry.map_err(io(dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        // Only what the installer made itself: a symlink could point anywhere.
        let kind = entry.file_type().map_err(io(entry.path().display()))?;
        if kind.is_dir() {
            collect_files(&entry.path(), &relative, files)?;
        } else if kind.is_file() {
            let bytes = fs::read(entry.path()).map_err(io(entry.path().display()))?;
            files.push((relative, bytes));
        }
    }
    Ok(())
}

fn tree_size(dir: &Path) -> Result<u64, OverlayError> {
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(io(dir.display()))? {
        let entry = entry.map_err(io(dir.display()))?;
        let kind = entry.file_type().map_err(io(entry.path().display()))?;
        if kind.is_dir() {
            total += tree_size(&entry.path())?;
        } else {
            let metadata = entry.metadata().map_err(io(entry.path().display()))?;
            total += std::os::unix::fs::MetadataExt::blocks(&metadata) * 512;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::inside;

    #[test]
    fn absolute_symlinks_stay_in_the_scratch_tree() {
        assert_eq!(
            inside("artifacts/a/link", "/artifacts/x"),
            "../../artifacts/x"
        );
        assert_eq!(inside("link", "/etc"), "etc");
        assert_eq!(inside("artifacts/link", "/"), "..");
        assert_eq!(inside("artifacts/link", "relative"), "relative");
    }
}
