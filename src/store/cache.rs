//! The embedded asset cache: one directory per cache key holding the asset bytes and a
//! signed record of their digest and size. Entries appear atomically (built in a temporary
//! directory, renamed into place) and are verified before they are served; an entry that
//! fails verification is discarded, so the asset is rebuilt.

use crate::format::Sink;
use crate::sign::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A verified cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedAsset {
    pub path: PathBuf,
    pub size: u64,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    size: u64,
    sha256: String,
    /// Base64 DER ECDSA signature of [`signed_text`].
    signature: String,
}

fn signed_text(key: &str, sha256: &str, size: u64) -> String {
    format!("image-factory asset v1\n{key}\n{sha256}\n{size}\n")
}

#[derive(Debug)]
pub struct AssetCache {
    root: PathBuf,
    signing: SigningKey,
    verifying: VerifyingKey,
    temporaries: AtomicU64,
}

fn io_error(what: &str, path: &Path, error: std::io::Error) -> String {
    format!("asset cache: {what} {}: {error}", path.display())
}

impl AssetCache {
    /// Opens the cache under `root`, signing entries with `signing`.
    pub fn open(root: &Path, signing: SigningKey) -> Result<AssetCache, String> {
        fs::create_dir_all(root).map_err(|e| io_error("create", root, e))?;
        // Leftovers of builds interrupted by a crash are never valid entries.
        if let Ok(entries) = fs::read_dir(root) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        let verifying = signing.verifying_key();
        Ok(AssetCache {
            root: root.to_path_buf(),
            signing,
            verifying,
            temporaries: AtomicU64::new(0),
        })
    }

    fn entry_dir(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// The entry for `key` if it is present and intact; a damaged entry is removed.
    pub fn get(&self, key: &str) -> Option<CachedAsset> {
        let dir = self.entry_dir(key);
        let record_path = dir.join("record.json");
        let record: Record = match fs::read(&record_path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(record) => record,
                Err(_) => return self.discard(key, "unreadable record"),
            },
            Err(_) => return None,
        };
        let signature = crate::sign::decode_signature(&record.signature).unwrap_or_default();
        let text = signed_text(key, &record.sha256, record.size);
        if !self.verifying.verify(text.as_bytes(), &signature) {
            return self.discard(key, "signature does not verify");
        }
        let data = dir.join("data");
        match hash_file(&data) {
            Ok((sha256, size)) if sha256 == record.sha256 && size == record.size => {
                Some(CachedAsset {
                    path: data,
                    size,
                    sha256,
                })
            }
            Ok(_) => self.discard(key, "content does not match its signed digest"),
            Err(_) => self.discard(key, "content unreadable"),
        }
    }

    fn discard(&self, key: &str, reason: &str) -> Option<CachedAsset> {
        tracing::warn!(key, reason, "discarding damaged asset cache entry");
        let _ = fs::remove_dir_all(self.entry_dir(key));
        None
    }

    /// Stores `bytes` under `key`, atomically; returns the new entry.
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<CachedAsset, String> {
        self.put_with(key, |sink| sink.data(bytes, false))
    }

    /// Stores what `write` produces under `key`: written into a temporary entry (holes stay
    /// holes in the file), hashed on the way, signed, then renamed into place. If `write`
    /// fails, nothing is left behind.
    pub fn put_with(
        &self,
        key: &str,
        write: impl FnOnce(&mut dyn Sink) -> std::io::Result<()>,
    ) -> Result<CachedAsset, String> {
        let temporary = self.root.join(format!(
            ".tmp-{key}-{}-{}",
            std::process::id(),
            self.temporaries.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            fs::create_dir_all(&temporary).map_err(|e| io_error("create", &temporary, e))?;
            let data_path = temporary.join("data");
            let file =
                fs::File::create(&data_path).map_err(|e| io_error("create", &data_path, e))?;
            let mut sink = FileSink {
                file: std::io::BufWriter::with_capacity(1 << 20, file),
                hasher: Sha256::new(),
                size: 0,
            };
            write(&mut sink).map_err(|e| io_error("write", &data_path, e))?;
            let (sha256, size) = sink
                .finish()
                .map_err(|e| io_error("write", &data_path, e))?;
            let record = Record {
                size,
                sha256: sha256.clone(),
                signature: crate::sign::encode_signature(
                    &self
                        .signing
                        .sign(signed_text(key, &sha256, size).as_bytes()),
                ),
            };
            let record = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
            write_synced(&temporary.join("record.json"), &record)?;
            let target = self.entry_dir(key);
            if target.exists() {
                fs::remove_dir_all(&target).map_err(|e| io_error("replace", &target, e))?;
            }
            fs::rename(&temporary, &target).map_err(|e| io_error("rename", &target, e))?;
            if let Ok(dir) = fs::File::open(&self.root) {
                let _ = dir.sync_all();
            }
            Ok(CachedAsset {
                path: target.join("data"),
                size,
                sha256,
            })
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&temporary);
        }
        result
    }

    /// Removes every entry (used by tests and `cache clear`).
    pub fn clear(&self) -> Result<(), String> {
        let entries = fs::read_dir(&self.root).map_err(|e| io_error("list", &self.root, e))?;
        for entry in entries.flatten() {
            fs::remove_dir_all(entry.path()).map_err(|e| io_error("remove", &entry.path(), e))?;
        }
        Ok(())
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut file = fs::File::create(path).map_err(|e| io_error("create", path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", path, e))
}

/// The data file of an entry being written: holes become file holes.
struct FileSink {
    file: std::io::BufWriter<fs::File>,
    hasher: Sha256,
    size: u64,
}

impl Sink for FileSink {
    fn data(&mut self, bytes: &[u8], _packed: bool) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        self.file.write_all(bytes)
    }

    fn zeros(&mut self, len: u64) -> std::io::Result<()> {
        let zeros = [0u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let step = left.min(zeros.len() as u64) as usize;
            self.hasher.update(&zeros[..step]);
            left -= step as u64;
        }
        self.size += len;
        let offset = i64::try_from(len).map_err(std::io::Error::other)?;
        self.file.seek(SeekFrom::Current(offset)).map(drop)
    }
}

impl FileSink {
    fn finish(self) -> std::io::Result<(String, u64)> {
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        // A trailing hole only moved the position; the length makes it part of the file.
        file.set_len(self.size)?;
        file.sync_all()?;
        Ok((crate::source::oci::hex(&self.hasher.finalize()), self.size))
    }
}

fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((crate::source::oci::hex(&hasher.finalize()), size))
}

/// Loads the cache signing key from `path`, or creates one there (mode 0600) on first use.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, String> {
    if let Ok(pem) = fs::read_to_string(path) {
        return SigningKey::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()));
    }
    let key = SigningKey::generate();
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
    }
    let pem = key.to_pem().map_err(|e| e.to_string())?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| io_error("create", path, e))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", path, e))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_verify_and_tampering_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_create_key(&dir.path().join("key.pem")).unwrap();
        let again = load_or_create_key(&dir.path().join("key.pem")).unwrap();
        assert_eq!(key.verifying_key(), again.verifying_key());
        let cache = AssetCache::open(&dir.path().join("cache"), key).unwrap();
        assert_eq!(cache.get("k"), None);
        let entry = cache.put("k", b"asset bytes").unwrap();
        assert_eq!(cache.get("k"), Some(entry.clone()));
        assert_eq!(fs::read(&entry.path).unwrap(), b"asset bytes");
        fs::write(&entry.path, b"asset bytez").unwrap();
        assert_eq!(cache.get("k"), None, "tampered content is refused");
        assert!(!dir.path().join("cache/k").exists(), "and removed");
        let other = AssetCache::open(&dir.path().join("cache"), SigningKey::generate()).unwrap();
        cache.put("k", b"asset bytes").unwrap();
        assert_eq!(other.get("k"), None, "a different key invalidates entries");
    }
}
