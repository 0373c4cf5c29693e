//! The embedded schematic store: one file per schematic under `<state dir>/schematics/`,
//! written atomically (temporary file, fsync, rename, fsync of the directory).

use super::{SchematicStore, StoreError, Stored, io_error};
use crate::schematic::SchematicId;
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Schematics as files named by ID, fanned out by the ID's first two characters.
#[derive(Debug)]
pub struct FsSchematicStore {
    root: PathBuf,
    temporaries: AtomicU64,
}

impl FsSchematicStore {
    /// Opens (creating if needed) the store under `state_dir`.
    pub fn open(state_dir: &Path) -> Result<FsSchematicStore, StoreError> {
        let root = state_dir.join("schematics");
        fs::create_dir_all(&root).map_err(|source| StoreError::Io {
            action: "create directory",
            path: root.clone(),
            source,
        })?;
        remove_leftovers(&root);
        Ok(FsSchematicStore {
            root,
            temporaries: AtomicU64::new(0),
        })
    }

    fn path_of(&self, id: &SchematicId) -> PathBuf {
        let name = id.to_string();
        self.root.join(&name[..2]).join(format!("{name}.yaml"))
    }
}

/// Removes the temporary files of writes a crash interrupted: they were never renamed into
/// place, so no reader ever saw them.
fn remove_leftovers(root: &Path) {
    let Ok(shards) = fs::read_dir(root) else {
        return;
    };
    for shard in shards.flatten() {
        let Ok(files) = fs::read_dir(shard.path()) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = fs::remove_file(file.path());
            }
        }
    }
}

impl SchematicStore for FsSchematicStore {
    fn put(&self, id: &SchematicId, canonical: &[u8]) -> Result<Stored, StoreError> {
        let path = self.path_of(id);
        if matches!(self.get(id), Ok(Some(_))) {
            return Ok(Stored::AlreadyPresent);
        }
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        // Unique per process and call, so concurrent writers never share a temporary file.
        let temporary = dir.join(format!(
            ".{id}.{}.{}.tmp",
            std::process::id(),
            self.temporaries.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temporary)
                .map_err(io_error("create", &temporary))?;
            file.write_all(canonical)
                .map_err(io_error("write", &temporary))?;
            file.sync_all().map_err(io_error("sync", &temporary))?;
            fs::rename(&temporary, &path).map_err(io_error("rename into place", &path))?;
            File::open(dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io_error("sync directory", dir))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        written.map(|()| Stored::Created)
    }

    fn get(&self, id: &SchematicId) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(id);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        if Sha256::digest(&bytes).as_slice() != id.as_bytes() {
            return Err(StoreError::Corrupt { id: *id, path });
        }
        Ok(Some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schematic::Schematic;

    fn vanilla() -> (SchematicId, String) {
        let schematic = Schematic::default();
        (schematic.id(), schematic.canonical())
    }

    #[test]
    fn leftovers_of_an_interrupted_write_are_removed_on_opening() {
        let dir = tempfile::tempdir().unwrap();
        let (id, canonical) = vanilla();
        let store = FsSchematicStore::open(dir.path()).unwrap();
        store.put(&id, canonical.as_bytes()).unwrap();
        let shard = store.path_of(&id).parent().unwrap().to_path_buf();
        let leftover = shard.join(format!(".{id}.1.0.tmp"));
        std::fs::write(&leftover, "half").unwrap();
        drop(store);
        let store = FsSchematicStore::open(dir.path()).unwrap();
        assert!(!leftover.exists());
        assert_eq!(store.get(&id).unwrap().unwrap(), canonical.as_bytes());
    }

    #[test]
    fn put_then_get_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (id, canonical) = vanilla();
        let store = FsSchematicStore::open(dir.path()).unwrap();
        assert_eq!(store.get(&id).unwrap(), None);
        assert_eq!(
            store.put(&id, canonical.as_bytes()).unwrap(),
            Stored::Created
        );
        assert_eq!(
            store.put(&id, canonical.as_bytes()).unwrap(),
            Stored::AlreadyPresent
        );
        drop(store);
        let store = FsSchematicStore::open(dir.path()).unwrap();
        assert_eq!(
            store.get(&id).unwrap().as_deref(),
            Some(canonical.as_bytes())
        );
        let leftovers: Vec<_> = fs::read_dir(store.path_of(&id).parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "no temporary files remain: {leftovers:?}"
        );
    }

    #[test]
    fn corruption_is_detected_and_repaired_by_a_new_upload() {
        let dir = tempfile::tempdir().unwrap();
        let (id, canonical) = vanilla();
        let store = FsSchematicStore::open(dir.path()).unwrap();
        store.put(&id, canonical.as_bytes()).unwrap();
        fs::write(store.path_of(&id), b"customization: {}\nowner: mallory\n").unwrap();
        assert!(matches!(store.get(&id), Err(StoreError::Corrupt { .. })));
        assert_eq!(
            store.put(&id, canonical.as_bytes()).unwrap(),
            Stored::Created
        );
        assert_eq!(
            store.get(&id).unwrap().as_deref(),
            Some(canonical.as_bytes())
        );
    }
}
