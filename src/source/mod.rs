//! Sources of the factory's inputs: the Talos release images (imager, extensions, overlays,
//! installer-base) read from an OCI registry or from a local OCI layout, with every blob
//! checked against its digest and every image checked against its signature.

pub mod catalog;
pub mod credentials;
pub mod flatten;
pub mod layout;
pub mod limits;
pub mod oci;
pub mod reference;
pub mod registry;
pub mod verify;

pub use flatten::{Entry, FileTree};
pub use reference::ImageRef;
pub use verify::{CheckKind, Verified, Verifier};

use crate::error::{Classify, ErrorKind};
use oci::Digest;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{what} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("signature verification failed for {image}: {reason}")]
    Signature { image: String, reason: String },
    #[error("unsafe path in image {image}: {path:?} ({reason})")]
    UnsafePath {
        image: String,
        path: String,
        reason: String,
    },
    /// A manifest, blob or decompressed layer over the ceiling the factory reads.
    #[error("{what} of {image} is larger than the {limit} bytes the factory reads")]
    TooLarge {
        image: String,
        what: String,
        limit: u64,
    },
    /// A blob that is not the size its descriptor declares.
    #[error(
        "blob {digest} of {image} is not the {declared} bytes its descriptor declares: {actual}"
    )]
    SizeMismatch {
        image: String,
        digest: Digest,
        declared: u64,
        actual: String,
    },
    /// An index whose platform entry is another index: Talos images are one level deep, and
    /// following further would let a source send the reader down a chain without end.
    #[error("{image}: the image index names another index ({digest}); nested indexes are refused")]
    NestedIndex { image: String, digest: Digest },
    /// A layer that decompresses to more than its budget (see [`limits::expansion_budget`]).
    #[error(
        "a layer of {image} expands beyond {limit} bytes (at {entry:?}): refused as a decompression bomb"
    )]
    Expands {
        image: String,
        entry: String,
        limit: u64,
    },
    #[error("{0}")]
    Io(String),
}

impl SourceError {
    pub fn io(path: &Path, error: std::io::Error) -> SourceError {
        SourceError::Io(format!("{}: {error}", path.display()))
    }
}

impl Classify for SourceError {
    fn kind(&self) -> ErrorKind {
        match self {
            SourceError::NotFound(_) => ErrorKind::NotFound,
            SourceError::Unavailable(_) => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }
}

/// Where images come from: an OCI registry, or a local OCI layout holding images under their
/// full references (the air-gapped mirror).
#[derive(Debug)]
pub enum Source {
    Registry(registry::Registry),
    Layout(layout::OciLayout),
}

impl Source {
    /// The manifest `image` names and its digest (checked when `image` names a digest).
    pub async fn manifest(&self, image: &ImageRef) -> Result<(Vec<u8>, Digest), SourceError> {
        match self {
            Source::Registry(registry) => registry.manifest(image).await,
            Source::Layout(layout) => {
                let digest = match (&image.digest, &image.tag) {
                    (Some(digest), _) => digest.clone(),
                    (None, Some(tag)) => layout
                        .find(&format!("{}:{tag}", image.name()))
                        .map(|descriptor| descriptor.digest.clone())
                        .ok_or_else(|| {
                            SourceError::NotFound(format!(
                                "{image} not found in the OCI layout {}",
                                layout.root().display()
                            ))
                        })?,
                    (None, None) => {
                        return Err(SourceError::Invalid(format!("{image} names no manifest")));
                    }
                };
                let bytes = layout
                    .manifest(&image.to_string(), &digest)
                    .map_err(|error| match error {
                        SourceError::NotFound(_) => SourceError::NotFound(format!(
                            "{image} not found in the OCI layout {}",
                            layout.root().display()
                        )),
                        other => other,
                    })?;
                Ok((bytes, digest))
            }
        }
    }

    /// A blob of `image`'s repository, checked against `digest` and the size `expected` as
    /// it streams (a descriptor's size, or a ceiling where nothing declares one).
    pub async fn blob(
        &self,
        image: &ImageRef,
        digest: &Digest,
        expected: limits::Expected,
    ) -> Result<Vec<u8>, SourceError> {
        limits::check_declared(&image.to_string(), digest, expected.ceiling())?;
        match self {
            Source::Registry(registry) => registry.blob(image, digest, expected).await,
            Source::Layout(layout) => layout.blob(&image.to_string(), digest, expected),
        }
    }

    /// The blob `descriptor` names, exactly its declared size.
    pub async fn blob_of(
        &self,
        image: &ImageRef,
        descriptor: &oci::Descriptor,
    ) -> Result<Vec<u8>, SourceError> {
        self.blob(
            image,
            &descriptor.digest,
            limits::Expected::Exactly(descriptor.size),
        )
        .await
    }

    /// The manifests that name `digest` of `image`'s repository as their subject, as the
    /// OCI 1.1 referrers API lists them, falling back to the referrers tag schema (an index
    /// tagged `sha256-<hex>`), which is also how an OCI layout holds them. No referrers is
    /// an empty list, not an error.
    pub async fn referrers(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Vec<oci::Descriptor>, SourceError> {
        if let Source::Registry(registry) = self {
            return registry.referrers(image, digest).await;
        }
        let tag_ref = ImageRef {
            tag: Some(format!("sha256-{}", digest.hex())),
            digest: None,
            ..image.clone()
        };
        let bytes = match self.manifest(&tag_ref).await {
            Ok((bytes, _)) => bytes,
            Err(SourceError::NotFound(_)) => return Ok(Vec::new()),
            Err(other) => return Err(other),
        };
        match oci::ManifestKind::parse(&bytes) {
            Ok(oci::ManifestKind::Index(index)) => Ok(index.manifests),
            Ok(oci::ManifestKind::Image(_)) => Err(SourceError::Invalid(format!(
                "{tag_ref}: the referrers tag holds an image manifest, not an index"
            ))),
            Err(error) => Err(SourceError::Invalid(format!("{tag_ref}: {error}"))),
        }
    }

    /// The tags of `image`'s repository.
    pub async fn tags(&self, image: &ImageRef) -> Result<Vec<String>, SourceError> {
        match self {
            Source::Registry(registry) => registry.tags(image).await,
            Source::Layout(layout) => Ok(layout.tags(&image.name())),
        }
    }
}

/// A verified pull of one platform of an image.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The digest the reference resolved to (the one whose signature was checked).
    pub digest: Digest,
    /// The flattened file system of the platform's layers.
    pub tree: FileTree,
}

/// Sources plus signature checks: the only way the engine reads images.
#[derive(Debug)]
pub struct Images {
    pub source: Source,
    pub verifier: Verifier,
}

impl Images {
    pub fn new(source: Source, verifier: Verifier) -> Images {
        Images { source, verifier }
    }

    /// Resolves `image`, checks its signature, picks the `linux/<arch>` manifest if it is an
    /// index, and flattens that manifest's layers.
    pub async fn pull(&self, image: &ImageRef, arch: &str) -> Result<Pulled, SourceError> {
        let (manifest, digest) = self.platform_manifest(image, arch).await?;
        let mut tree = FileTree::default();
        let name = image.to_string();
        for layer in &manifest.layers {
            let blob = self.source.blob_of(image, layer).await?;
            tree.apply_layer(&name, &layer.media_type, &blob)?;
        }
        Ok(Pulled { digest, tree })
    }

    /// The `linux/<arch>` image of `image` as stored: its config document and its layer
    /// blobs (compressed) with their media types, after the signature check.
    pub async fn image_parts(
        &self,
        image: &ImageRef,
        arch: &str,
    ) -> Result<(Vec<u8>, Vec<(oci::Descriptor, Vec<u8>)>), SourceError> {
        let (manifest, _) = self.platform_manifest(image, arch).await?;
        let config = self.source.blob_of(image, &manifest.config).await?;
        let mut layers = Vec::with_capacity(manifest.layers.len());
        for layer in manifest.layers {
            let blob = self.source.blob_of(image, &layer).await?;
            layers.push((layer, blob));
        }
        Ok((config, layers))
    }

    /// The verified image manifest of `image` for `linux/<arch>`, and the digest `image`
    /// resolved to.
    async fn platform_manifest(
        &self,
        image: &ImageRef,
        arch: &str,
    ) -> Result<(oci::Manifest, Digest), SourceError> {
        let (bytes, digest) = self.source.manifest(image).await?;
        self.verifier.verify(&self.source, image, &digest).await?;
        let manifest = match oci::ManifestKind::parse(&bytes)
            .map_err(|error| SourceError::Invalid(format!("{image}: {error}")))?
        {
            oci::ManifestKind::Image(manifest) => manifest,
            oci::ManifestKind::Index(index) => {
                let entry = index
                    .manifests
                    .iter()
                    .find(|entry| {
                        entry.platform.as_ref().is_some_and(|platform| {
                            platform.os == "linux" && platform.architecture == arch
                        })
                    })
                    .ok_or_else(|| {
                        SourceError::NotFound(format!("{image} has no linux/{arch} image"))
                    })?;
                let platform_ref = image.with_digest(entry.digest.clone());
                let (bytes, _) = self.source.manifest(&platform_ref).await?;
                match oci::ManifestKind::parse(&bytes)
                    .map_err(|error| SourceError::Invalid(format!("{platform_ref}: {error}")))?
                {
                    oci::ManifestKind::Image(manifest) => manifest,
                    oci::ManifestKind::Index(_) => {
                        return Err(SourceError::NestedIndex {
                            image: image.to_string(),
                            digest: entry.digest.clone(),
                        });
                    }
                }
            }
        };
        Ok((manifest, digest))
    }
}
