//! The embedded asset cache: one directory per cache key holding the asset bytes and a
//! signed record of their digest and size. Entries appear atomically (built in a temporary
//! directory, renamed into place) and are verified before they are served; an entry that
//! fails verification is discarded, so the asset is rebuilt.
//!
//! The digest is SHA-256 over the SHA-256 of each 1 MiB chunk, so a disk image's holes
//! cost one precomputed chunk digest each instead of hashing gigabytes of zeros; an entry is
//! verified once per process (and again whenever its file changes).
//!
//! The cache is bounded: after every new entry, the least recently used entries (by the
//! modification time of their record, renewed on every hit) are removed until the entries
//! take no more than the configured disk space.

use super::{StoreError, io_error};
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
    /// Lowercase hex chunked digest of the bytes (see the module documentation).
    pub digest: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    size: u64,
    digest: String,
    /// Base64 DER ECDSA signature of [`signed_text`].
    signature: String,
}

fn signed_text(key: &str, digest: &str, size: u64) -> String {
    format!("image-factory asset v2\n{key}\n{digest}\n{size}\n")
}

const CHUNK: usize = 1 << 20;

/// SHA-256 of a whole chunk of zeros, computed once.
fn zero_chunk_digest() -> &'static [u8] {
    static DIGEST: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DIGEST.get_or_init(|| Sha256::digest(vec![0u8; CHUNK]).to_vec())
}

/// The chunked digest, fed in order; whole chunks of zeros are never hashed.
struct ChunkedDigest {
    outer: Sha256,
    chunk: Sha256,
    filled: usize,
}

impl ChunkedDigest {
    fn new() -> ChunkedDigest {
        ChunkedDigest {
            outer: Sha256::new(),
            chunk: Sha256::new(),
            filled: 0,
        }
    }

    fn close_chunk(&mut self) {
        let digest = std::mem::replace(&mut self.chunk, Sha256::new()).finalize();
        self.outer.update(digest);
        self.filled = 0;
    }

    fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let (step, rest) = bytes.split_at(bytes.len().min(CHUNK - self.filled));
            self.chunk.update(step);
            self.filled += step.len();
            bytes = rest;
            if self.filled == CHUNK {
                self.close_chunk();
            }
        }
    }

    fn zeros(&mut self, mut len: u64) {
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        while len > 0 {
            if self.filled == 0 && len >= CHUNK as u64 {
                self.outer.update(zero_chunk_digest());
                len -= CHUNK as u64;
                continue;
            }
            let step = len.min((CHUNK - self.filled).min(ZEROS.len()) as u64) as usize;
            self.update(ZEROS.split_at(step).0);
            len -= step as u64;
        }
    }

    fn finish(mut self) -> String {
        if self.filled > 0 {
            self.close_chunk();
        }
        crate::hex::encode(&self.outer.finalize())
    }
}

#[derive(Debug)]
pub struct AssetCache {
    root: PathBuf,
    signing: SigningKey,
    verifying: VerifyingKey,
    temporaries: AtomicU64,
    /// Entries whose data was verified in this process, with the file state then.
    verified: std::sync::Mutex<std::collections::HashMap<String, FileState>>,
    /// Disk space (allocated bytes) the entries may take.
    max_bytes: u64,
    /// One eviction pass at a time.
    evicting: std::sync::Mutex<()>,
}

/// What identifies one version of a data file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileState {
    len: u64,
    modified: Option<std::time::SystemTime>,
    digest: String,
}

fn file_state(path: &Path, digest: &str) -> Option<FileState> {
    let metadata = fs::metadata(path).ok()?;
    Some(FileState {
        len: metadata.len(),
        modified: metadata.modified().ok(),
        digest: digest.to_string(),
    })
}

impl AssetCache {
    /// Opens the cache under `root`, signing entries with `signing`.
    pub fn open(root: &Path, signing: SigningKey) -> Result<AssetCache, StoreError> {
        fs::create_dir_all(root).map_err(io_error("create", root))?;
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
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
            max_bytes: u64::MAX,
            evicting: std::sync::Mutex::new(()),
        })
    }

    /// Bounds the entries to `max_bytes` of disk space.
    pub fn with_limit(mut self, max_bytes: u64) -> AssetCache {
        self.max_bytes = max_bytes;
        self
    }

    /// Disk space the entries take now (allocated bytes, so holes cost nothing).
    pub fn disk_usage(&self) -> u64 {
        self.entries_by_use().iter().map(|entry| entry.1).sum()
    }

    /// Every finished entry with its disk space and last use, least recently used first.
    fn entries_by_use(&self) -> Vec<(String, u64, std::time::SystemTime)> {
        let Ok(listing) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut entries: Vec<_> = listing
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.starts_with(".tmp-") {
                    return None;
                }
                let used = fs::metadata(entry.path().join("record.json"))
                    .and_then(|metadata| metadata.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                let space: u64 = fs::read_dir(entry.path())
                    .map(|files| files.flatten().map(|file| allocated(&file.path())).sum())
                    .unwrap_or(0);
                Some((name, space, used))
            })
            .collect();
        entries.sort_by_key(|entry| entry.2);
        entries
    }

    /// Removes least recently used entries, never `keep`, until the rest fit the limit.
    fn enforce_limit(&self, keep: &str) {
        if self.max_bytes == u64::MAX {
            return;
        }
        let Ok(_pass) = self.evicting.lock() else {
            return;
        };
        let entries = self.entries_by_use();
        let mut total: u64 = entries.iter().map(|entry| entry.1).sum();
        for (key, space, _) in entries {
            if total <= self.max_bytes {
                break;
            }
            if key == keep {
                continue;
            }
            if let Ok(mut verified) = self.verified.lock() {
                verified.remove(&key);
            }
            if fs::remove_dir_all(self.entry_dir(&key)).is_ok() {
                tracing::info!(key, bytes = space, "evicted from the local asset cache");
                total -= space;
            }
        }
        if total > self.max_bytes {
            tracing::warn!(
                total,
                limit = self.max_bytes,
                "the newest asset cache entry alone exceeds cache.local.maxBytes"
            );
        }
    }

    /// The key entries are signed with, which also signs what the factory publishes.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    fn entry_dir(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// The entry for `key` if it is present and intact; a damaged entry is removed.
    pub fn get(&self, key: &str) -> Option<CachedAsset> {
        match self.verify(key) {
            Ok(found) => found,
            Err(damage) => self.discard(key, &damage),
        }
    }

    /// The entry for `key` checked against its signed record; `None` if there is none.
    fn verify(&self, key: &str) -> Result<Option<CachedAsset>, StoreError> {
        let dir = self.entry_dir(key);
        let record_path = dir.join("record.json");
        let Ok(bytes) = fs::read(&record_path) else {
            return Ok(None);
        };
        let record: Record =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::MalformedRecord {
                path: record_path.clone(),
                source,
            })?;
        let signature = crate::sign::decode_signature(&record.signature).unwrap_or_default();
        let text = signed_text(key, &record.digest, record.size);
        if !self.verifying.verify(text.as_bytes(), &signature) {
            return Err(StoreError::BadSignature { path: record_path });
        }
        let data = dir.join("data");
        let state = file_state(&data, &record.digest);
        let known = self.verified.lock().ok().and_then(|v| v.get(key).cloned());
        touch(&record_path);
        if state.is_some() && known == state {
            return Ok(Some(CachedAsset {
                path: data,
                size: record.size,
                digest: record.digest,
            }));
        }
        let (digest, size) = hash_file(&data).map_err(io_error("read", &data))?;
        if digest != record.digest || size != record.size {
            return Err(StoreError::DigestMismatch { path: data });
        }
        if let (Some(state), Ok(mut verified)) = (state, self.verified.lock()) {
            verified.insert(key.to_string(), state);
        }
        Ok(Some(CachedAsset {
            path: data,
            size,
            digest,
        }))
    }

    fn discard(&self, key: &str, damage: &StoreError) -> Option<CachedAsset> {
        tracing::warn!(key, %damage, "discarding damaged asset cache entry");
        if let Ok(mut verified) = self.verified.lock() {
            verified.remove(key);
        }
        let _ = fs::remove_dir_all(self.entry_dir(key));
        None
    }

    /// Stores `bytes` under `key`, atomically; returns the new entry.
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<CachedAsset, StoreError> {
        self.put_with(key, |sink| sink.data(bytes, false))
    }

    /// Stores what `write` produces under `key`: written into a temporary entry (holes stay
    /// holes in the file), hashed on the way, signed, then renamed into place. If `write`
    /// fails, nothing is left behind.
    pub fn put_with(
        &self,
        key: &str,
        write: impl FnOnce(&mut dyn Sink) -> std::io::Result<()>,
    ) -> Result<CachedAsset, StoreError> {
        self.put_streaming(key, &|_, _| {}, write)
    }

    /// Like [`AssetCache::put_with`], reporting the temporary data file and how many bytes
    /// of it are final after every write, so readers can stream the entry while it is made
    /// (reads past the file's end inside the reported length are zeros of a hole).
    pub fn put_streaming(
        &self,
        key: &str,
        progress: &(dyn Fn(&Path, u64) + Sync),
        write: impl FnOnce(&mut dyn Sink) -> std::io::Result<()>,
    ) -> Result<CachedAsset, StoreError> {
        let temporary = self.root.join(format!(
            ".tmp-{key}-{}-{}",
            std::process::id(),
            self.temporaries.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            fs::create_dir_all(&temporary).map_err(io_error("create", &temporary))?;
            let data_path = temporary.join("data");
            let file = fs::File::create(&data_path).map_err(io_error("create", &data_path))?;
            let mut sink = FileSink {
                file,
                digest: ChunkedDigest::new(),
                size: 0,
                path: &data_path,
                progress,
            };
            write(&mut sink).map_err(io_error("write", &data_path))?;
            let (digest, size) = sink.finish().map_err(io_error("write", &data_path))?;
            let record = Record {
                size,
                digest: digest.clone(),
                signature: crate::sign::encode_signature(
                    &self
                        .signing
                        .sign(signed_text(key, &digest, size).as_bytes()),
                ),
            };
            let record_path = temporary.join("record.json");
            let record =
                serde_json::to_vec(&record).map_err(|source| StoreError::MalformedRecord {
                    path: record_path.clone(),
                    source,
                })?;
            write_synced(&record_path, &record)?;
            let target = self.entry_dir(key);
            if target.exists() {
                fs::remove_dir_all(&target).map_err(io_error("replace", &target))?;
            }
            fs::rename(&temporary, &target).map_err(io_error("rename", &target))?;
            if let Ok(dir) = fs::File::open(&self.root) {
                let _ = dir.sync_all();
            }
            let path = target.join("data");
            if let (Some(state), Ok(mut verified)) =
                (file_state(&path, &digest), self.verified.lock())
            {
                verified.insert(key.to_string(), state);
            }
            Ok(CachedAsset { path, size, digest })
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&temporary);
        } else {
            self.enforce_limit(key);
        }
        result
    }

    /// Removes every entry (used by tests and `cache clear`).
    pub fn clear(&self) -> Result<(), StoreError> {
        if let Ok(mut verified) = self.verified.lock() {
            verified.clear();
        }
        let entries = fs::read_dir(&self.root).map_err(io_error("list", &self.root))?;
        for entry in entries.flatten() {
            fs::remove_dir_all(entry.path()).map_err(io_error("remove", &entry.path()))?;
        }
        Ok(())
    }
}

/// Marks an entry as just used.
fn touch(record: &Path) {
    if let Ok(file) = fs::File::options().append(true).open(record) {
        let _ = file.set_modified(std::time::SystemTime::now());
    }
}

/// Disk blocks a file takes, in bytes.
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).map_or(0, |metadata| metadata.blocks() * 512)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut file = fs::File::create(path).map_err(io_error("create", path))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_error("write", path))
}

/// The data file of an entry being written: holes become file holes. Writers hand over
/// large pieces (encoders buffer), so writes go straight to the file and readers see them.
struct FileSink<'a> {
    file: fs::File,
    digest: ChunkedDigest,
    size: u64,
    path: &'a Path,
    progress: &'a (dyn Fn(&Path, u64) + Sync),
}

impl Sink for FileSink<'_> {
    fn data(&mut self, bytes: &[u8], _packed: bool) -> std::io::Result<()> {
        self.digest.update(bytes);
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        (self.progress)(self.path, self.size);
        Ok(())
    }

    fn zeros(&mut self, len: u64) -> std::io::Result<()> {
        self.digest.zeros(len);
        let offset = i64::try_from(len).map_err(std::io::Error::other)?;
        self.file.seek(SeekFrom::Current(offset))?;
        self.size += len;
        (self.progress)(self.path, self.size);
        Ok(())
    }
}

impl FileSink<'_> {
    fn finish(self) -> std::io::Result<(String, u64)> {
        // A trailing hole only moved the position; the length makes it part of the file.
        self.file.set_len(self.size)?;
        self.file.sync_all()?;
        Ok((self.digest.finish(), self.size))
    }
}

/// The chunked digest of a data file; chunks inside holes are never read.
fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = fs::File::open(path)?;
    let size = file.metadata()?.len();
    let ranges = crate::format::holes::data_ranges(&file)?;
    let mut digest = ChunkedDigest::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut next_range = 0usize;
    let mut position = 0u64;
    while position < size {
        let len = (size - position).min(CHUNK as u64);
        let end = position + len;
        while ranges
            .get(next_range)
            .is_some_and(|(_, range_end)| *range_end <= position)
        {
            next_range += 1;
        }
        let has_data = ranges
            .get(next_range)
            .is_some_and(|(start, _)| *start < end);
        if !has_data {
            digest.zeros(len);
        } else {
            file.seek(SeekFrom::Start(position))?;
            // `len` is at most `CHUNK`, the buffer's size.
            let (chunk, _) = buffer.split_at_mut(len as usize);
            file.read_exact(chunk)?;
            if len == CHUNK as u64 && chunk.iter().all(|byte| *byte == 0) {
                digest.zeros(len);
            } else {
                digest.update(chunk);
            }
        }
        position = end;
    }
    Ok((digest.finish(), size))
}

/// Loads the cache signing key from `path`, or creates one there (mode 0600) on first use.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, StoreError> {
    if let Ok(pem) = fs::read_to_string(path) {
        return SigningKey::from_pem(&pem).map_err(|source| StoreError::SigningKey {
            path: path.to_path_buf(),
            source,
        });
    }
    let key = SigningKey::generate();
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_error("create", parent))?;
    }
    let pem = key.to_pem().map_err(|source| StoreError::SigningKey {
        path: path.to_path_buf(),
        source,
    })?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io_error("create", path))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_error("write", path))?;
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

    #[test]
    fn the_least_recently_used_entries_go_beyond_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let cache = AssetCache::open(dir.path(), SigningKey::generate())
            .unwrap()
            .with_limit(3 * 64 * 1024);
        let bytes = vec![7u8; 60 * 1024];
        for key in ["a", "b", "c"] {
            cache.put(key, &bytes).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(cache.get("a").is_some(), "a is used again");
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put("d", &bytes).unwrap();
        assert!(
            cache.disk_usage() <= 3 * 64 * 1024,
            "{}",
            cache.disk_usage()
        );
        assert!(
            cache.get("b").is_none(),
            "the least recently used entry went"
        );
        for key in ["a", "c", "d"] {
            assert!(cache.get(key).is_some(), "{key} stays");
        }
        let huge = vec![1u8; 400 * 1024];
        let kept = cache.put("huge", &huge).unwrap();
        assert_eq!(
            fs::read(&kept.path).unwrap(),
            huge,
            "the newest entry is never evicted"
        );
    }

    #[test]
    fn holes_digest_like_the_zeros_they_stand_for() {
        let mut sparse = ChunkedDigest::new();
        let mut dense = ChunkedDigest::new();
        sparse.update(b"head");
        dense.update(b"head");
        let hole = 3 * CHUNK as u64 + 12_345;
        sparse.zeros(hole);
        dense.update(&vec![0u8; hole as usize]);
        sparse.update(b"tail");
        dense.update(b"tail");
        assert_eq!(sparse.finish(), dense.finish());

        let dir = tempfile::tempdir().unwrap();
        let cache = AssetCache::open(dir.path(), SigningKey::generate()).unwrap();
        let entry = cache
            .put_with("sparse", |sink| {
                sink.data(b"head", false)?;
                sink.zeros(hole)?;
                sink.data(b"tail", false)?;
                sink.zeros(100)
            })
            .unwrap();
        assert_eq!(entry.size, 4 + hole + 4 + 100);
        assert_eq!(fs::metadata(&entry.path).unwrap().len(), entry.size);
        let fresh = AssetCache::open(dir.path(), cache.signing.clone()).unwrap();
        assert_eq!(fresh.get("sparse"), Some(entry));
        let failed = cache.put_with("broken", |sink| {
            sink.data(b"partial", false)?;
            Err(std::io::Error::other("encoder failed"))
        });
        assert!(failed.is_err());
        assert_eq!(cache.get("broken"), None);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "nothing half-written is left"
        );
    }
}
