//! OCI image layout directories (`oci-layout`, `index.json`, `blobs/sha256/…`): the
//! air-gapped mirror format. Index entries are named by full image reference
//! (`org.opencontainers.image.ref.name` = `ghcr.io/siderolabs/imager:v1.12.0`).

use super::SourceError;
use super::limits::{self, BlobSink, Expected};
use super::oci::{Descriptor, Digest, INDEX, Index, REF_NAME};
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const LAYOUT_FILE: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// A layout opened for reading.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
    /// Index entries by reference name.
    names: BTreeMap<String, Descriptor>,
}

impl OciLayout {
    pub fn open(root: &Path) -> Result<OciLayout, SourceError> {
        let marker = root.join("oci-layout");
        let text = fs::read_to_string(&marker).map_err(|error| {
            SourceError::Unavailable(format!(
                "{} is not an OCI image layout ({}: {error})",
                root.display(),
                marker.display()
            ))
        })?;
        if !text.contains("imageLayoutVersion") {
            return Err(SourceError::Invalid(format!(
                "{} is not an OCI layout marker",
                marker.display()
            )));
        }
        let index_path = root.join("index.json");
        let bytes = read_capped(&index_path, limits::MAX_LAYOUT_INDEX)?;
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|error| SourceError::Invalid(format!("{}: {error}", index_path.display())))?;
        let names = index
            .manifests
            .into_iter()
            .filter_map(|descriptor| {
                let name = descriptor.annotations.get(REF_NAME)?.clone();
                Some((name, descriptor))
            })
            .collect();
        Ok(OciLayout {
            root: root.to_path_buf(),
            names,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The index entry named `reference` (`registry/repository:tag`).
    pub fn find(&self, reference: &str) -> Option<&Descriptor> {
        self.names.get(reference)
    }

    /// Tags of `name` (`registry/repository`) present in the index.
    pub fn tags(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}:");
        self.names
            .keys()
            .filter_map(|key| key.strip_prefix(&prefix))
            .map(str::to_string)
            .collect()
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    /// A blob of `image`'s, after checking it against its digest and `expected` size: the
    /// file's length is checked before a byte is read, and the read stops at the ceiling
    /// whatever the file system says.
    pub fn blob(
        &self,
        image: &str,
        digest: &Digest,
        expected: Expected,
    ) -> Result<Vec<u8>, SourceError> {
        self.read_blob(image, "blob", digest, expected)
    }

    /// The manifest (or index) `digest` of `image`, at most [`limits::MAX_MANIFEST`] bytes.
    pub fn manifest(&self, image: &str, digest: &Digest) -> Result<Vec<u8>, SourceError> {
        self.read_blob(
            image,
            "manifest",
            digest,
            Expected::AtMost(limits::MAX_MANIFEST),
        )
    }

    fn read_blob(
        &self,
        image: &str,
        what: &'static str,
        digest: &Digest,
        expected: Expected,
    ) -> Result<Vec<u8>, SourceError> {
        let path = self.blob_path(digest);
        let mut file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(SourceError::NotFound(format!(
                    "{what} {digest} of {image} is missing from the OCI layout {}",
                    self.root.display()
                )));
            }
            Err(error) => return Err(SourceError::io(&path, error)),
        };
        let mut sink = BlobSink::new(image, what, digest, expected);
        let length = file
            .metadata()
            .map_err(|error| SourceError::io(&path, error))?
            .len();
        sink.announce(Some(length))?;
        let mut capped = std::io::Read::take(&mut file, expected.ceiling() + 1);
        limits::read_into(&mut sink, &mut capped, &path)?;
        sink.finish()
    }
}

/// A whole file of at most `limit` bytes (the layout's own `index.json`).
fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, SourceError> {
    let file = fs::File::open(path).map_err(|error| SourceError::io(path, error))?;
    let mut bytes = Vec::new();
    std::io::Read::take(file, limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| SourceError::io(path, error))?;
    if bytes.len() as u64 > limit {
        return Err(SourceError::TooLarge {
            image: path.display().to_string(),
            what: "the OCI layout index".into(),
            limit,
        });
    }
    Ok(bytes)
}

/// Builds a layout: blobs are written as they come, the index at [`LayoutWriter::finish`].
#[derive(Debug)]
pub struct LayoutWriter {
    root: PathBuf,
    names: BTreeMap<String, Descriptor>,
}

impl LayoutWriter {
    /// Starts a layout in `root`, keeping any blobs already there (they are content-addressed).
    pub fn create(root: &Path) -> Result<LayoutWriter, SourceError> {
        let blobs = root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(|error| SourceError::io(&blobs, error))?;
        Ok(LayoutWriter {
            root: root.to_path_buf(),
            names: BTreeMap::new(),
        })
    }

    /// Continues the layout in `root`: blobs and the names of its `index.json`, if any, are
    /// kept (a mirror run that was cut off picks up where it stopped).
    pub fn resume(root: &Path) -> Result<LayoutWriter, SourceError> {
        let mut writer = LayoutWriter::create(root)?;
        if root.join("index.json").is_file() {
            writer.names = OciLayout::open(root)?.names;
        }
        Ok(writer)
    }

    /// Whether the blob `digest` is stored, with content matching the digest.
    pub fn contains(&self, digest: &Digest) -> bool {
        let path = self.root.join("blobs").join("sha256").join(digest.hex());
        fs::read(&path).is_ok_and(|existing| digest.matches(&existing))
    }

    /// Stores `bytes` as a blob and returns its descriptor.
    pub fn put_blob(&mut self, media_type: &str, bytes: &[u8]) -> Result<Descriptor, SourceError> {
        let digest = Digest::of(bytes);
        let path = self.root.join("blobs").join("sha256").join(digest.hex());
        let present = fs::read(&path).is_ok_and(|existing| digest.matches(&existing));
        if !present {
            write_atomically(&path, bytes)?;
        }
        Ok(Descriptor {
            media_type: media_type.to_string(),
            digest,
            size: bytes.len() as u64,
            platform: None,
            artifact_type: None,
            annotations: BTreeMap::new(),
        })
    }

    /// Names `descriptor` in the index as `reference`.
    pub fn tag(&mut self, reference: &str, descriptor: &Descriptor) {
        let mut descriptor = descriptor.clone();
        descriptor.platform = None;
        descriptor
            .annotations
            .insert(REF_NAME.to_string(), reference.to_string());
        self.names.insert(reference.to_string(), descriptor);
    }

    /// Writes `oci-layout` and `index.json` (entries sorted by name, so output is stable).
    pub fn finish(self) -> Result<PathBuf, SourceError> {
        self.flush()?;
        Ok(self.root)
    }

    /// Writes `oci-layout` and `index.json` as they stand, and goes on.
    pub fn flush(&self) -> Result<(), SourceError> {
        let index = Index {
            schema_version: 2,
            media_type: Some(INDEX.to_string()),
            manifests: self.names.values().cloned().collect(),
            annotations: BTreeMap::new(),
        };
        let bytes = serde_json::to_vec_pretty(&index)
            .map_err(|error| SourceError::Invalid(error.to_string()))?;
        write_atomically(&self.root.join("oci-layout"), LAYOUT_FILE.as_bytes())?;
        write_atomically(&self.root.join("index.json"), &bytes)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SourceError> {
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result.map_err(|error| SourceError::io(path, error))
}
