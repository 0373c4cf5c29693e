//! The ceilings every read of a source stays under, and the readers that enforce them while
//! the bytes stream, so that a hostile registry or layout costs bounded memory and time: a
//! manifest is a few KiB, a layer is at most its descriptor's size, and a layer expands by
//! a bounded factor.

use super::SourceError;
use super::oci::Digest;
use sha2::{Digest as _, Sha256};
use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;

/// The largest manifest or index read. Real ones are a few KiB (an index of every platform
/// a release ships is under 10 KiB); distribution registries refuse to store more than
/// 4 MiB, so anything larger is not a manifest.
pub const MAX_MANIFEST: u64 = 4 << 20;

/// The largest `index.json` of a layout: a mirror of every extension of many releases
/// names tens of thousands of images, a few hundred bytes each.
pub const MAX_LAYOUT_INDEX: u64 = 32 << 20;

/// The largest blob read into memory. Talos's largest layers (the imager's, an NVIDIA
/// extension's) are a few hundred MiB compressed.
pub const MAX_BLOB: u64 = 2 << 30;

/// How much a layer may expand when decompressed, over its compressed size. Release layers
/// hold mostly compressed payloads (kernels, squashfs, firmware), which expand less than 4×;
/// a decompression bomb expands by 1000× (gzip) to a million (zstd, xz).
pub const MAX_EXPANSION: u64 = 16;
/// Small layers may expand more (a tar of a few text files is mostly headers and padding).
pub const MIN_EXPANDED: u64 = 64 << 20;
/// Nothing of a release is larger than this once decompressed, whatever its compressed size.
pub const MAX_EXPANDED: u64 = 4 << 30;

/// How many bytes a layer of `compressed` bytes may decompress to.
pub fn expansion_budget(compressed: u64) -> u64 {
    compressed
        .saturating_mul(MAX_EXPANSION)
        .clamp(MIN_EXPANDED, MAX_EXPANDED)
}

/// How much of a blob a reader accepts: exactly the size its descriptor declares (a blob
/// that runs longer or shorter is not the one the manifest names), or, where nothing
/// declares a size, no more than a ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Exactly(u64),
    AtMost(u64),
}

impl Expected {
    /// The most bytes to accept.
    pub fn ceiling(self) -> u64 {
        match self {
            Expected::Exactly(size) | Expected::AtMost(size) => size,
        }
    }
}

/// Collects a blob as its chunks arrive, refusing it the moment it outgrows `expected`, and
/// hashing as it goes, so that a wrong or endless blob is never held whole.
#[derive(Debug)]
pub struct BlobSink {
    image: String,
    /// "blob" or "manifest", for messages.
    what: &'static str,
    digest: Digest,
    expected: Expected,
    bytes: Vec<u8>,
    hasher: Sha256,
}

impl BlobSink {
    /// `expected` must already be within [`MAX_BLOB`] (see [`check_declared`]).
    pub fn new(image: &str, what: &'static str, digest: &Digest, expected: Expected) -> BlobSink {
        BlobSink {
            image: image.to_string(),
            what,
            digest: digest.clone(),
            expected,
            bytes: Vec::new(),
            hasher: Sha256::new(),
        }
    }

    /// Refuses up front a response that announces more than the blob may hold.
    pub fn announce(&self, length: Option<u64>) -> Result<(), SourceError> {
        match length {
            Some(length) if length > self.expected.ceiling() => Err(self.too_long(length)),
            _ => Ok(()),
        }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), SourceError> {
        let total = self.bytes.len() as u64 + chunk.len() as u64;
        if total > self.expected.ceiling() {
            return Err(self.too_long(total));
        }
        self.hasher.update(chunk);
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    fn too_long(&self, seen: u64) -> SourceError {
        match self.expected {
            Expected::Exactly(declared) => SourceError::SizeMismatch {
                image: self.image.clone(),
                digest: self.digest.clone(),
                declared,
                actual: format!("at least {seen}"),
            },
            Expected::AtMost(limit) => SourceError::TooLarge {
                image: self.image.clone(),
                what: format!("{} {}", self.what, self.digest),
                limit,
            },
        }
    }

    /// The whole blob, once its size and digest are checked.
    pub fn finish(self) -> Result<Vec<u8>, SourceError> {
        let length = self.bytes.len() as u64;
        if let Expected::Exactly(declared) = self.expected
            && length != declared
        {
            return Err(SourceError::SizeMismatch {
                image: self.image,
                digest: self.digest,
                declared,
                actual: length.to_string(),
            });
        }
        let actual = Digest::from_sha256(self.hasher.finalize().into());
        if actual != self.digest {
            return Err(SourceError::DigestMismatch {
                what: format!("{} of {}", self.what, self.image),
                expected: self.digest,
                actual,
            });
        }
        Ok(self.bytes)
    }
}

/// Refuses a descriptor whose declared size is more than a blob may be.
pub fn check_declared(image: &str, digest: &Digest, size: u64) -> Result<(), SourceError> {
    if size > MAX_BLOB {
        return Err(SourceError::TooLarge {
            image: image.to_string(),
            what: format!("blob {digest} (declared {size} bytes)"),
            limit: MAX_BLOB,
        });
    }
    Ok(())
}

/// Reads all of `reader` into `sink`, chunk by chunk.
pub fn read_into(
    sink: &mut BlobSink,
    reader: &mut impl Read,
    path: &std::path::Path,
) -> Result<(), SourceError> {
    let mut chunk = vec![0u8; 256 << 10];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(read) => sink.push(chunk.get(..read).unwrap_or_default())?,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(SourceError::io(path, error)),
        }
    }
}

/// A reader that fails once more than `budget` bytes came through it: the decompressed
/// side of a layer, so that a bomb stops at the budget instead of filling memory.
#[derive(Debug)]
pub struct Budgeted<R> {
    inner: R,
    left: u64,
    /// Set when the budget ran out, so the caller (whose reader may be owned by a tar
    /// parser) can tell a bomb from a broken stream.
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Budgeted<R> {
    pub fn new(inner: R, budget: u64) -> Budgeted<R> {
        Budgeted {
            inner,
            left: budget,
            exceeded: Rc::new(Cell::new(false)),
        }
    }

    /// Whether the budget ran out, readable after the reader moved.
    pub fn exceeded(&self) -> Rc<Cell<bool>> {
        self.exceeded.clone()
    }
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // One byte more than the budget tells "exactly at the budget" from "over it".
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.exceeded.set(true);
            return Err(std::io::Error::other("decompressed size over its budget"));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let read = self.inner.read(buf.get_mut(..want).unwrap_or_default())?;
        self.left -= read as u64;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(bytes: &[u8]) -> Digest {
        Digest::of(bytes)
    }

    #[test]
    fn a_blob_longer_than_declared_stops_at_the_declared_size() {
        let digest = digest_of(b"hello");
        let mut sink = BlobSink::new("img", "blob", &digest, Expected::Exactly(5));
        sink.push(b"hel").unwrap();
        let error = sink.push(b"lo!").unwrap_err();
        assert!(matches!(error, SourceError::SizeMismatch { .. }), "{error}");
        assert!(error.to_string().contains("img"), "{error}");
        let mut sink = BlobSink::new("img", "blob", &digest, Expected::Exactly(5));
        assert!(sink.announce(Some(6)).is_err());
        sink.push(b"hell").unwrap();
        assert!(matches!(
            sink.finish(),
            Err(SourceError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn a_blob_is_hashed_as_it_streams() {
        let digest = digest_of(b"hello");
        let mut sink = BlobSink::new("img", "blob", &digest, Expected::AtMost(100));
        sink.push(b"he").unwrap();
        sink.push(b"llo").unwrap();
        assert_eq!(sink.finish().unwrap(), b"hello");
        let mut sink = BlobSink::new("img", "blob", &digest, Expected::AtMost(100));
        sink.push(b"jello").unwrap();
        let error = sink.finish().unwrap_err();
        assert!(
            matches!(&error, SourceError::DigestMismatch { what, .. } if what.contains("img")),
            "{error}"
        );
    }

    #[test]
    fn budgets_stop_a_stream_one_byte_over() {
        let mut out = Vec::new();
        let mut exact = Budgeted::new(&[7u8; 10][..], 10);
        exact.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 10);
        let mut over = Budgeted::new(&[7u8; 11][..], 10);
        let exceeded = over.exceeded();
        assert!(over.read_to_end(&mut Vec::new()).is_err());
        assert!(exceeded.get());
        assert_eq!(expansion_budget(1), MIN_EXPANDED);
        assert_eq!(expansion_budget(u64::MAX), MAX_EXPANDED);
    }
}
