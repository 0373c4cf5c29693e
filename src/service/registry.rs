//! Installer images for the OCI registry frontend: the images of both architectures are
//! built from the same plans as the installer tarballs, their documents and blobs stored in
//! the asset cache by digest, and joined in an image index a node pulls by tag.

use super::delivery::read_all;
use super::plan::Plan;
use super::{Factory, ServiceError, refused};
use crate::engine::layout::installer::{self, InstallerImage};
use crate::error::ErrorKind;
use crate::profile::Arch;
use crate::store::cache::CachedAsset;
use serde_json::json;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A manifest or index as served: its bytes, media type and digest.
#[derive(Debug, Clone)]
pub struct RegistryManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: String,
}

/// What an image name asks for: the platform and Secure Boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallerName {
    pub platform: String,
    pub secureboot: bool,
}

impl InstallerName {
    /// `installer`, `installer-secureboot`, `<platform>-installer[-secureboot]`.
    pub fn parse(name: &str) -> Option<InstallerName> {
        let (rest, secureboot) = match name.strip_suffix("-secureboot") {
            Some(rest) => (rest, true),
            None => (name, false),
        };
        let platform = if rest == "installer" {
            "metal"
        } else {
            rest.strip_suffix("-installer")
                .filter(|platform| !platform.is_empty())?
        };
        Some(InstallerName {
            platform: platform.to_string(),
            secureboot,
        })
    }

    /// The asset path of this installer for `arch` (the profile grammar's rules 6 and 7).
    fn asset_path(&self, arch: Arch) -> String {
        let suffix = if self.secureboot { "-secureboot" } else { "" };
        if self.platform == "metal" {
            format!("installer-{arch}{suffix}.tar")
        } else {
            format!("{}-installer-{arch}{suffix}.tar", self.platform)
        }
    }
}

fn digest_of(bytes: &[u8]) -> String {
    crate::hex::sha256_digest(bytes)
}

/// Cache key of a blob or document by digest.
fn blob_key(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then(|| format!("oci-blob-{hex}"))
}

/// The digest a cosign signature tag `sha256-<hex>.sig` names.
fn signature_tag(reference: &str) -> Option<String> {
    let hex = reference.strip_prefix("sha256-")?.strip_suffix(".sig")?;
    let digest = format!("sha256:{hex}");
    blob_key(&digest).map(|_| digest)
}

fn media_type_of(document: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(document).ok()?;
    value.get("mediaType")?.as_str().map(String::from)
}

impl Factory {
    /// Checks the schematic (404 first), then the image name (400).
    pub(super) async fn installer_repository(
        &self,
        image: &str,
        schematic: &str,
    ) -> Result<InstallerName, ServiceError> {
        self.schematic(schematic)
            .await
            .map_err(|error| match error {
                ServiceError::SchematicNotFound => {
                    ServiceError::SchematicIdNotFound(schematic.into())
                }
                other => other,
            })?;
        InstallerName::parse(image)
            .ok_or_else(|| refused(ErrorKind::InvalidInput, format!("invalid image: {image}")))
    }

    /// `GET /v2/<image>/<schematic>/manifests/<reference>`: the index of a version (built on
    /// first use; `latest` is the newest stable version), or a stored document by digest.
    pub async fn installer_manifest(
        &self,
        image: &str,
        schematic: &str,
        reference: &str,
    ) -> Result<RegistryManifest, ServiceError> {
        let name = self.installer_repository(image, schematic).await?;
        if let Some(signed) = signature_tag(reference) {
            return self.signature_manifest(image, schematic, &signed).await;
        }
        if reference.starts_with("sha256:") {
            let asset = self.stored_blob(reference)?;
            let bytes = read_all(&asset).await?;
            let media_type = media_type_of(&bytes).ok_or_else(|| {
                refused(
                    ErrorKind::NotFound,
                    format!("manifest unknown: {reference}"),
                )
            })?;
            return Ok(RegistryManifest {
                bytes,
                media_type,
                digest: reference.to_string(),
            });
        }
        let version = if reference == "latest" || reference.starts_with('v') {
            self.installer_version(reference).await?
        } else {
            return Err(refused(
                ErrorKind::NotFound,
                format!("manifest unknown: {reference}"),
            ));
        };
        // A board overlay is for arm64 boards: its installer index has only that image.
        let arm64 = self
            .resolve(schematic, &version, &name.asset_path(Arch::Arm64))
            .await?;
        let arches: &[Arch] = if arm64.overlay.is_some() {
            &[Arch::Arm64]
        } else {
            &[Arch::Amd64, Arch::Arm64]
        };
        let mut manifests = Vec::new();
        for &arch in arches {
            let plan = if arch == Arch::Arm64 {
                arm64.clone()
            } else {
                self.resolve(schematic, &version, &name.asset_path(arch))
                    .await?
            };
            let manifest = self.installer_arch_manifest(&plan).await?;
            manifests.push(json!({
                "mediaType": installer::OCI_MANIFEST,
                "digest": digest_of(&manifest),
                "size": manifest.len(),
                "platform": {"architecture": arch.as_str(), "os": "linux"},
            }));
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))?;
        let digest = digest_of(&index);
        self.store_blob(&digest, index.clone()).await?;
        Ok(RegistryManifest {
            bytes: index,
            media_type: OCI_INDEX.into(),
            digest,
        })
    }

    /// The cosign signature of an index this factory built, in the classic tag scheme: one
    /// simple-signing payload layer naming `<host>/<image>/<schematic>` and the digest, its
    /// ECDSA P-256 signature (the cache signing key) in the layer's annotation.
    async fn signature_manifest(
        &self,
        image: &str,
        schematic: &str,
        signed: &str,
    ) -> Result<RegistryManifest, ServiceError> {
        self.stored_blob(signed)?;
        let host = self
            .config
            .http
            .external_url
            .split("://")
            .nth(1)
            .unwrap_or(&self.config.http.external_url)
            .trim_end_matches('/')
            .to_string();
        let signature = crate::store::repository::signature_image(
            self.builds.cache.signing_key(),
            &format!("{host}/{image}/{schematic}"),
            signed,
        );
        let manifest = signature.manifest;
        self.store_blob(&digest_of(&signature.config), signature.config)
            .await?;
        self.store_blob(&digest_of(&signature.payload), signature.payload)
            .await?;
        let digest = digest_of(&manifest);
        self.store_blob(&digest, manifest.clone()).await?;
        Ok(RegistryManifest {
            bytes: manifest,
            media_type: installer::OCI_MANIFEST.into(),
            digest,
        })
    }

    /// `GET /v2/<image>/<schematic>/blobs/<digest>`: a config or layer stored by a build.
    pub async fn installer_blob(
        &self,
        image: &str,
        schematic: &str,
        digest: &str,
    ) -> Result<CachedAsset, ServiceError> {
        self.installer_repository(image, schematic).await?;
        self.stored_blob(digest)
    }

    pub(super) fn stored_blob(&self, digest: &str) -> Result<CachedAsset, ServiceError> {
        let key = blob_key(digest)
            .ok_or_else(|| refused(ErrorKind::NotFound, format!("blob unknown: {digest}")))?;
        self.builds
            .cache
            .get(&key)
            .ok_or_else(|| refused(ErrorKind::NotFound, format!("blob unknown: {digest}")))
    }

    async fn store_blob(&self, digest: &str, bytes: Vec<u8>) -> Result<(), ServiceError> {
        let key = blob_key(digest).ok_or_else(|| ServiceError::BrokenImage {
            image: "a built installer".into(),
            reason: format!("bad digest {digest}"),
        })?;
        let builds = self.builds.clone();
        tokio::task::spawn_blocking(move || {
            if builds.cache.get(&key).is_some() {
                return Ok(());
            }
            builds.cache.put(&key, &bytes).map(|_| ())
        })
        .await?
        .map_err(ServiceError::Store)
    }

    /// The image manifest of one architecture's installer, building and storing the image
    /// the first time; one registry build at a time, so concurrent pulls build once.
    async fn installer_arch_manifest(&self, plan: &Plan) -> Result<Vec<u8>, ServiceError> {
        let key = format!("oci-manifest-{}", plan.key);
        if let Some(asset) = self.builds.cache.get(&key) {
            return read_all(&asset).await;
        }
        let _building = self.builds.registry_builds.lock().await;
        if let Some(asset) = self.builds.cache.get(&key) {
            return read_all(&asset).await;
        }
        let inputs = self.installer_inputs(plan).await?;
        let InstallerImage {
            config,
            manifest,
            layers,
        } = tokio::task::spawn_blocking(move || installer::image(&inputs)).await??;
        self.store_blob(&digest_of(&config), config).await?;
        for (digest, blob) in layers {
            self.store_blob(&digest, blob.to_vec()).await?;
        }
        // The manifest goes in last: it is only served once everything it names is stored.
        self.store_blob(&digest_of(&manifest), manifest.clone())
            .await?;
        let builds = self.builds.clone();
        let stored = manifest.clone();
        tokio::task::spawn_blocking(move || builds.cache.put(&key, &stored))
            .await?
            .map_err(ServiceError::Store)?;
        Ok(manifest)
    }
}

/// A blob of a source image: a file of the local layout, or bytes from the registry.
#[derive(Debug)]
pub enum SourceBlob {
    File(std::path::PathBuf, u64),
    Bytes(Vec<u8>),
}

impl Factory {
    /// The configured repository of a source image name of `/v2/siderolabs/<name>/…`.
    fn source_repository(&self, name: &str) -> Result<String, ServiceError> {
        let components = &self.config.artifacts.core.components;
        let repository = match name {
            "installer-base" => &components.installer_base,
            "installer" => &components.installer,
            "imager" => &components.imager,
            "extensions" => &components.extension_manifest,
            "overlays" => &components.overlay_manifest,
            "talosctl-all" => &components.talosctl,
            _ => {
                return Err(refused(
                    ErrorKind::NotFound,
                    format!("unknown image: {name}"),
                ));
            }
        };
        Ok(repository.clone())
    }

    fn source_ref(
        &self,
        name: &str,
        reference: &str,
    ) -> Result<crate::source::ImageRef, ServiceError> {
        let repository = self.source_repository(name)?;
        match reference.strip_prefix("sha256:") {
            Some(_) => {
                let digest = crate::source::oci::Digest::parse(reference).map_err(|error| {
                    refused(ErrorKind::NotFound, format!("manifest unknown: {error}"))
                })?;
                Ok(self
                    .catalogs
                    .core_image(&repository, "latest")
                    .with_digest(digest))
            }
            None => Ok(self.catalogs.core_image(&repository, reference)),
        }
    }

    /// `/v2/siderolabs/<name>/manifests/<reference>`: a source image's manifest, as stored
    /// (signature tags included), from the configured source, registry or OCI layout.
    pub async fn source_manifest(
        &self,
        name: &str,
        reference: &str,
    ) -> Result<RegistryManifest, ServiceError> {
        let image = self.source_ref(name, reference)?;
        let (bytes, digest) = self.images.source.manifest(&image).await?;
        let media_type = match media_type_of(&bytes) {
            Some(media_type) => media_type,
            None => match crate::source::oci::ManifestKind::parse(&bytes) {
                Ok(crate::source::oci::ManifestKind::Index(_)) => OCI_INDEX.into(),
                _ => installer::OCI_MANIFEST.into(),
            },
        };
        Ok(RegistryManifest {
            bytes,
            media_type,
            digest: digest.as_str().to_string(),
        })
    }

    /// `/v2/siderolabs/<name>/blobs/<digest>`.
    pub async fn source_blob(&self, name: &str, digest: &str) -> Result<SourceBlob, ServiceError> {
        let image = self.source_ref(name, "latest")?;
        let digest = crate::source::oci::Digest::parse(digest)
            .map_err(|error| refused(ErrorKind::NotFound, format!("blob unknown: {error}")))?;
        match &self.images.source {
            crate::source::Source::Layout(layout) => {
                let path = layout.blob_path(&digest);
                let size = tokio::fs::metadata(&path)
                    .await
                    .map_err(|_| refused(ErrorKind::NotFound, format!("blob unknown: {digest}")))?
                    .len();
                Ok(SourceBlob::File(path, size))
            }
            source => Ok(SourceBlob::Bytes(
                source
                    .blob(
                        &image,
                        &digest,
                        crate::source::limits::Expected::AtMost(crate::source::limits::MAX_BLOB),
                    )
                    .await?,
            )),
        }
    }

    /// `/v2/siderolabs/<name>/tags/list`.
    pub async fn source_tags(&self, name: &str) -> Result<Vec<u8>, ServiceError> {
        let image = self.source_ref(name, "latest")?;
        let tags = self.images.source.tags(&image).await?;
        Ok(serde_json::to_vec(
            &json!({"name": format!("siderolabs/{name}"), "tags": tags}),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        let name = |platform: &str, secureboot| {
            Some(InstallerName {
                platform: platform.into(),
                secureboot,
            })
        };
        assert_eq!(InstallerName::parse("installer"), name("metal", false));
        assert_eq!(
            InstallerName::parse("installer-secureboot"),
            name("metal", true)
        );
        assert_eq!(InstallerName::parse("aws-installer"), name("aws", false));
        assert_eq!(
            InstallerName::parse("metal-installer-secureboot"),
            name("metal", true)
        );
        for bad in ["", "-installer", "imager", "installer-foo", "secureboot"] {
            assert_eq!(InstallerName::parse(bad), None, "{bad}");
        }
        assert_eq!(
            name("aws", false).unwrap().asset_path(Arch::Arm64),
            "aws-installer-arm64.tar"
        );
        assert_eq!(
            name("metal", true).unwrap().asset_path(Arch::Amd64),
            "installer-amd64-secureboot.tar"
        );
    }

    #[test]
    fn signature_tags() {
        let hex = "b".repeat(64);
        assert_eq!(
            signature_tag(&format!("sha256-{hex}.sig")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(signature_tag(&format!("sha256-{hex}")), None);
        assert_eq!(signature_tag("sha256-abc.sig"), None);
        assert_eq!(signature_tag("v1.12.0"), None);
    }

    #[test]
    fn blob_keys_need_a_sha256_digest() {
        assert_eq!(
            blob_key(&format!("sha256:{}", "a".repeat(64))),
            Some(format!("oci-blob-{}", "a".repeat(64)))
        );
        for bad in [
            "sha256:abc",
            "md5:00",
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            assert_eq!(blob_key(bad), None);
        }
        assert!(blob_key(&format!("sha256:../{}", "a".repeat(61))).is_none());
    }
}
