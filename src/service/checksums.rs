//! Checksums of built assets (`<asset>.sha256`, `<asset>.sha512`): the plain SHA-2 digest of
//! the file a client downloads, computed once per asset and kept in the asset cache.

use super::delivery::read_all;
use super::plan::Plan;
use super::{Factory, ServiceError};
use sha2::{Digest, Sha256, Sha512};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The digests offered, by their file suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    Sha256,
    Sha512,
}

impl Checksum {
    /// Splits `metal-amd64.iso.sha256` into the asset path and the checksum.
    pub fn split(path: &str) -> Option<(&str, Checksum)> {
        if let Some(asset) = path.strip_suffix(".sha256") {
            Some((asset, Checksum::Sha256))
        } else {
            path.strip_suffix(".sha512")
                .map(|asset| (asset, Checksum::Sha512))
        }
    }

    fn name(self) -> &'static str {
        match self {
            Checksum::Sha256 => "sha256",
            Checksum::Sha512 => "sha512",
        }
    }
}

const CHUNK: usize = 1 << 20;

/// Hashes `path` as a reader would see it; holes are fed as zeros without reading them.
// Hashes a cached file through buffers of `CHUNK` bytes, and never asks for more.
#[allow(clippy::indexing_slicing)]
fn digest_file<D: Digest>(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let ranges = crate::format::holes::data_ranges(&file)?;
    let zeros = vec![0u8; CHUNK];
    let mut buffer = vec![0u8; CHUNK];
    let mut hasher = D::new();
    let mut position = 0u64;
    let feed_zeros = |hasher: &mut D, mut count: u64| {
        while count > 0 {
            let take = count.min(CHUNK as u64) as usize;
            hasher.update(&zeros[..take]);
            count -= take as u64;
        }
    };
    for (start, end) in ranges {
        feed_zeros(&mut hasher, start - position);
        file.seek(SeekFrom::Start(start))?;
        let mut left = end - start;
        while left > 0 {
            let take = left.min(CHUNK as u64) as usize;
            file.read_exact(&mut buffer[..take])?;
            hasher.update(&buffer[..take]);
            left -= take as u64;
        }
        position = end;
    }
    feed_zeros(&mut hasher, len - position);
    Ok(crate::hex::encode(&hasher.finalize()))
}

impl Factory {
    /// The hex digest of the asset of `plan` (built first if needed).
    pub async fn checksum(&self, plan: Plan, checksum: Checksum) -> Result<String, ServiceError> {
        let key = format!("checksum-{}-{}", checksum.name(), plan.key);
        if let Some(stored) = self.builds.cache.get(&key) {
            let text = read_all(&stored).await?;
            // Written below as the hex of a digest.
            return Ok(String::from_utf8_lossy(&text).into_owned());
        }
        let asset = self.asset(plan).await?;
        let builds = self.builds.clone();
        tokio::task::spawn_blocking(move || {
            let hex = match checksum {
                Checksum::Sha256 => digest_file::<Sha256>(&asset.path),
                Checksum::Sha512 => digest_file::<Sha512>(&asset.path),
            }
            .map_err(ServiceError::Checksum)?;
            builds
                .cache
                .put(&key, hex.as_bytes())
                .map_err(ServiceError::Store)?;
            Ok(hex)
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn sparse_files_hash_like_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"head").unwrap();
        file.seek(SeekFrom::Start(5 * CHUNK as u64 + 7)).unwrap();
        file.write_all(b"tail").unwrap();
        file.set_len(8 * CHUNK as u64 + 3).unwrap();
        drop(file);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            digest_file::<Sha256>(&path).unwrap(),
            crate::hex::encode(&Sha256::digest(&bytes))
        );
        assert_eq!(
            digest_file::<Sha512>(&path).unwrap(),
            crate::hex::encode(&Sha512::digest(&bytes))
        );
    }

    #[test]
    fn suffixes() {
        assert_eq!(
            Checksum::split("metal-amd64.iso.sha256"),
            Some(("metal-amd64.iso", Checksum::Sha256))
        );
        assert_eq!(
            Checksum::split("kernel-amd64.sha512"),
            Some(("kernel-amd64", Checksum::Sha512))
        );
        assert_eq!(Checksum::split("metal-amd64.iso"), None);
    }
}
