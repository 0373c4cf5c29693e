//! `image-factory mirror`: copies what the factory needs for some Talos versions from its
//! configured source into an OCI layout (for an air-gapped site to serve with
//! `artifacts.ociLayout`) or into another registry. Per version: the imager, installer base, extension and overlay
//! catalogs, every catalog entry's image and `talosctl-all`; per manifest, its `.sig` tag
//! and its referrers (Sigstore bundles). Every image's signature is checked before it is
//! written, every blob against its digest; blobs and manifests already at the target are not
//! fetched again, and a layout's index is written after each image, so a cut-off run resumes.

mod target;

pub use target::MirrorTarget;

use super::{Factory, ServiceError};

use crate::source::oci::{self, Descriptor, Digest, ManifestKind};
use crate::source::{ImageRef, SourceError};
use crate::version::{parse_strict, tag_of};
use semver::Version;
use std::collections::BTreeSet;
use target::Target;

/// What to mirror.
#[derive(Debug, Clone)]
pub struct MirrorOptions {
    /// Talos versions (`v1.12.0`); empty: every version the source offers.
    pub versions: Vec<String>,
    pub target: MirrorTarget,
}

/// Something the mirror is doing, for a progress display.
#[derive(Debug, Clone, Copy)]
pub enum MirrorEvent<'a> {
    /// Copying this image (a tag or digest reference at the source).
    Image(&'a str),
    /// A blob of this size was copied (`true`) or found already present (`false`).
    Blob { size: u64, copied: bool },
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MirrorReport {
    pub images: usize,
    pub signatures: usize,
    pub blobs_copied: usize,
    pub bytes_copied: u64,
    pub blobs_present: usize,
}

struct Run<'a> {
    factory: &'a Factory,
    target: Target,
    progress: &'a (dyn Fn(MirrorEvent<'_>) + Sync),
    report: MirrorReport,
    /// Manifests already copied in this run with their signatures.
    done: BTreeSet<Digest>,
}

impl Factory {
    /// Mirrors into the target `options` name.
    pub async fn mirror(
        &self,
        options: &MirrorOptions,
        progress: &(dyn Fn(MirrorEvent<'_>) + Sync),
    ) -> Result<MirrorReport, ServiceError> {
        let versions: Vec<Version> = if options.versions.is_empty() {
            self.catalogs.versions().await?.to_vec()
        } else {
            let mut versions = Vec::new();
            for text in &options.versions {
                let version = parse_strict(text).map_err(ServiceError::MalformedVersion)?;
                self.catalogs.require_available(&version).await?;
                versions.push(version);
            }
            versions
        };
        let mut run = Run {
            factory: self,
            target: Target::open(&options.target)?,
            progress,
            report: MirrorReport::default(),
            done: BTreeSet::new(),
        };
        for version in &versions {
            run.version(version).await?;
        }
        run.target.checkpoint()?;
        Ok(run.report)
    }
}

impl Run<'_> {
    async fn version(&mut self, version: &Version) -> Result<(), ServiceError> {
        let components = &self.factory.config.artifacts.core.components;
        let tag = tag_of(version);
        let core = |repository: &str| self.factory.catalogs.core_image(repository, &tag);
        let mut required = vec![
            core(&components.imager),
            core(&components.extension_manifest),
        ];
        if *version >= Version::new(1, 7, 0) {
            required.push(core(&components.overlay_manifest));
        }
        required.push(if *version >= Version::new(1, 10, 0) {
            core(&components.installer_base)
        } else {
            core(&components.installer)
        });
        for image in &required {
            self.image(image).await?;
        }
        if *version >= Version::new(1, 11, 0) {
            match self.image(&core(&components.talosctl)).await {
                Err(ServiceError::Source(SourceError::NotFound(_))) => {}
                other => other?,
            }
        }
        for extension in self.factory.catalogs.extensions(version).await?.iter() {
            let image = ImageRef::parse(&extension.reference)
                .map_err(SourceError::Invalid)?
                .with_tag_and_digest(&extension.digest)?;
            self.image(&image).await?;
        }
        for overlay in self.factory.catalogs.overlays(version).await?.iter() {
            let named = ImageRef::parse(&overlay.reference).map_err(SourceError::Invalid)?;
            let image = ImageRef {
                registry: self.factory.catalogs.config().registry.clone(),
                repository: overlay.image.clone(),
                tag: named.tag,
                digest: None,
            }
            .with_tag_and_digest(&overlay.digest)?;
            self.image(&image).await?;
        }
        Ok(())
    }

    /// Copies `image` (verified), its signatures, and names it in the layout by its tag.
    async fn image(&mut self, image: &ImageRef) -> Result<(), ServiceError> {
        (self.progress)(MirrorEvent::Image(&image.to_string()));
        let images = &self.factory.images;
        let (bytes, digest) = images.source.manifest(image).await?;
        images
            .verifier
            .verify(&images.source, image, &digest)
            .await?;
        let descriptor = self.manifest(image, &bytes, &digest, true, 0).await?;
        if let Some(tag) = &image.tag {
            self.target
                .put_manifest(&image.repository, &descriptor.media_type, &bytes, Some(tag))
                .await?;
        }
        self.report.images += 1;
        self.target.checkpoint()?;
        Ok(())
    }

    /// Copies a manifest and everything it references (platform manifests, config, layers),
    /// with the signatures of each manifest when `signed`.
    async fn manifest(
        &mut self,
        image: &ImageRef,
        bytes: &[u8],
        digest: &Digest,
        signed: bool,
        depth: usize,
    ) -> Result<Descriptor, ServiceError> {
        let kind = ManifestKind::parse(bytes)
            .map_err(|error| SourceError::Invalid(format!("{image}@{digest}: {error}")))?;
        let media_type = match &kind {
            // An index of indexes is no Talos image (pulls refuse it too), and following one
            // would let a source lead the mirror down a chain without end.
            ManifestKind::Index(_) if depth > 0 => {
                return Err(SourceError::NestedIndex {
                    image: image.to_string(),
                    digest: digest.clone(),
                }
                .into());
            }
            ManifestKind::Index(index) => {
                for entry in &index.manifests {
                    let child = image.with_digest(entry.digest.clone());
                    let (child_bytes, child_digest) =
                        self.factory.images.source.manifest(&child).await?;
                    Box::pin(self.manifest(&child, &child_bytes, &child_digest, signed, depth + 1))
                        .await?;
                }
                index
                    .media_type
                    .clone()
                    .unwrap_or_else(|| oci::INDEX.to_string())
            }
            ManifestKind::Image(manifest) => {
                self.blob(image, &manifest.config).await?;
                for layer in &manifest.layers {
                    self.blob(image, layer).await?;
                }
                manifest
                    .media_type
                    .clone()
                    .unwrap_or_else(|| oci::MANIFEST.to_string())
            }
        };
        let descriptor = self.put(&image.repository, &media_type, bytes).await?;
        if signed && self.done.insert(digest.clone()) {
            self.signatures(image, digest).await?;
        }
        Ok(descriptor)
    }

    /// Stores a manifest by digest, unless the target has it.
    async fn put(
        &mut self,
        repository: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Descriptor, ServiceError> {
        let digest = Digest::of(bytes);
        let size = bytes.len() as u64;
        if self.target.has_manifest(repository, &digest).await? {
            self.count(size, false);
            return Ok(Descriptor {
                media_type: media_type.to_string(),
                digest,
                size,
                platform: None,
                artifact_type: None,
                annotations: Default::default(),
            });
        }
        let descriptor = self
            .target
            .put_manifest(repository, media_type, bytes, None)
            .await?;
        self.count(size, true);
        Ok(descriptor)
    }

    fn count(&mut self, size: u64, copied: bool) {
        if copied {
            self.report.blobs_copied += 1;
            self.report.bytes_copied += size;
        } else {
            self.report.blobs_present += 1;
        }
        (self.progress)(MirrorEvent::Blob { size, copied });
    }

    async fn blob(
        &mut self,
        image: &ImageRef,
        descriptor: &Descriptor,
    ) -> Result<(), ServiceError> {
        if self
            .target
            .has_blob(&image.repository, &descriptor.digest)
            .await?
        {
            self.count(descriptor.size, false);
            return Ok(());
        }
        let bytes = self
            .factory
            .images
            .source
            .blob_of(image, descriptor)
            .await?;
        self.target
            .put_blob(&image.repository, &descriptor.media_type, bytes)
            .await?;
        self.count(descriptor.size, true);
        Ok(())
    }

    /// The `.sig` tag and the referrers of `digest`, as the source has them.
    async fn signatures(&mut self, image: &ImageRef, digest: &Digest) -> Result<(), ServiceError> {
        let source = &self.factory.images.source;
        let signature_tag = format!("sha256-{}.sig", digest.hex());
        let signature = ImageRef {
            tag: Some(signature_tag.clone()),
            digest: None,
            ..image.clone()
        };
        match source.manifest(&signature).await {
            Ok((bytes, signature_digest)) => {
                let descriptor =
                    Box::pin(self.manifest(&signature, &bytes, &signature_digest, false, 0))
                        .await?;
                self.target
                    .put_manifest(
                        &image.repository,
                        &descriptor.media_type,
                        &bytes,
                        Some(&signature_tag),
                    )
                    .await?;
                self.report.signatures += 1;
            }
            Err(SourceError::NotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
        let referrers = match source.referrers(image, digest).await {
            Ok(referrers) => referrers,
            Err(SourceError::NotFound(_)) => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        if referrers.is_empty() {
            return Ok(());
        }
        for referrer in &referrers {
            let at = image.with_digest(referrer.digest.clone());
            let (bytes, referrer_digest) = source.manifest(&at).await?;
            Box::pin(self.manifest(&at, &bytes, &referrer_digest, false, 0)).await?;
            self.report.signatures += 1;
        }
        let index = oci::Index {
            schema_version: 2,
            media_type: Some(oci::INDEX.to_string()),
            manifests: referrers,
            annotations: Default::default(),
        };
        let bytes = serde_json::to_vec(&index).map_err(ServiceError::Json)?;
        let tag = format!("sha256-{}", digest.hex());
        self.target
            .put_manifest(&image.repository, oci::INDEX, &bytes, Some(&tag))
            .await?;
        Ok(())
    }
}

impl ImageRef {
    /// This reference pinned to `digest` (text `sha256:<hex>`), its tag kept.
    fn with_tag_and_digest(mut self, digest: &str) -> Result<ImageRef, SourceError> {
        self.digest = Some(Digest::parse(digest).map_err(SourceError::Invalid)?);
        Ok(self)
    }
}
