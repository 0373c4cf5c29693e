//! Installer images through registries (`artifacts.installer.*`, api.md §7.2): a version's
//! index is built as usual, then pushed with everything it names to the internal repository
//! `<internal>/<image>/<schematic>` and cosign-signed there; the tag goes in last, so only a
//! whole, signed image is ever found by it. Pulls are answered with a 307 to the external
//! repository (the internal one when none is configured), or relayed when proxying.

use super::delivery::read_all;
use super::{Factory, ServiceError, refused};
use crate::config::RepositoryConfig;
use crate::error::ErrorKind;
use crate::source::SourceError;
use crate::source::oci::{Digest, ManifestKind};
use crate::store::repository::Repository;

/// Where a registry request is answered when installer registries are configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallerTarget {
    /// The same request on the target registry.
    pub url: String,
    /// Relay the answer instead of redirecting to it.
    pub proxy: bool,
}

/// Plain HTTP for registries that are insecure, on this machine or on a private network.
fn scheme_of(repository: &RepositoryConfig) -> &'static str {
    let host = repository
        .registry
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(repository.registry.as_str(), |(host, _)| host);
    let private = host
        .parse::<std::net::Ipv4Addr>()
        .is_ok_and(|address| address.is_private() || address.is_loopback());
    if repository.insecure || private || super::is_loopback(&repository.registry) {
        "http"
    } else {
        "https"
    }
}

impl Factory {
    fn internal_installers(&self) -> Option<Repository> {
        Repository::from_config(&self.config.artifacts.installer.internal)
    }

    /// With installer registries configured, where `GET /v2/<image>/<schematic>/<resource>/
    /// <reference>` is answered (building and publishing a version first when the internal
    /// repository lacks a signed one); `None` to serve it here.
    pub async fn installer_target(
        &self,
        image: &str,
        schematic: &str,
        resource: &str,
        reference: &str,
    ) -> Result<Option<InstallerTarget>, ServiceError> {
        let Some(internal) = self.internal_installers() else {
            return Ok(None);
        };
        if !matches!(resource, "manifests" | "blobs") {
            return Ok(None);
        }
        self.installer_repository(image, schematic).await?;
        let repository = internal.child(&format!("{image}/{schematic}"));
        let reference =
            if resource == "manifests" && (reference == "latest" || reference.starts_with('v')) {
                let version = self.installer_version(reference).await?;
                self.published_index(image, schematic, &version, &repository)
                    .await?
                    .to_string()
            } else {
                reference.to_string()
            };
        let installers = &self.config.artifacts.installer;
        let (target, proxy) = if installers.external.is_configured() {
            (&installers.external, self.config.registry.proxy)
        } else {
            (&installers.internal, true)
        };
        let path = target.path();
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        Ok(Some(InstallerTarget {
            url: format!(
                "{}://{}/v2/{prefix}{image}/{schematic}/{resource}/{reference}",
                scheme_of(target),
                target.registry
            ),
            proxy,
        }))
    }

    /// The digest of the signed index of `version` in `repository`, published now if the
    /// repository has none (or one whose signature does not verify).
    async fn published_index(
        &self,
        image: &str,
        schematic: &str,
        version: &str,
        repository: &Repository,
    ) -> Result<Digest, ServiceError> {
        let key = self.builds.cache.signing_key().verifying_key();
        let registry_error = |source: SourceError| ServiceError::Source(source);
        let existing = || async {
            match repository
                .registry()
                .manifest_digest(&repository.tagged(version))
                .await
                .map_err(registry_error)?
            {
                Some(digest) if repository.verify_signature(&key, &digest).await? => {
                    Ok::<_, ServiceError>(Some(digest))
                }
                Some(digest) => {
                    tracing::warn!(%digest, version, "installer in the registry has no valid signature: rebuilding");
                    Ok(None)
                }
                None => Ok(None),
            }
        };
        if let Some(digest) = existing().await? {
            return Ok(digest);
        }
        let _publishing = self.builds.registry_publishing.lock().await;
        if let Some(digest) = existing().await? {
            return Ok(digest);
        }
        let index = self.installer_manifest(image, schematic, version).await?;
        let ManifestKind::Index(parsed) =
            ManifestKind::parse(&index.bytes).map_err(|reason| ServiceError::BrokenImage {
                image: "a built installer index".into(),
                reason,
            })?
        else {
            return Err(ServiceError::IncompletePlan("an installer index"));
        };
        for entry in &parsed.manifests {
            let manifest = read_all(&self.stored_blob(entry.digest.as_str())?).await?;
            if let Ok(ManifestKind::Image(image_manifest)) = ManifestKind::parse(&manifest) {
                for blob in std::iter::once(&image_manifest.config).chain(&image_manifest.layers) {
                    let stored = self.stored_blob(blob.digest.as_str())?;
                    repository.put_file_blob(&stored.path, &blob.digest).await?;
                }
            }
            repository.put_manifest(&manifest, None).await?;
        }
        let digest = repository.put_manifest(&index.bytes, None).await?;
        repository
            .sign(self.builds.cache.signing_key(), &digest)
            .await?;
        repository.put_manifest(&index.bytes, Some(version)).await?;
        tracing::info!(
            repository = %repository.name(),
            version,
            %digest,
            "installer published"
        );
        Ok(digest)
    }

    /// `latest` is the newest stable version; a `v` tag is itself.
    pub(super) async fn installer_version(&self, reference: &str) -> Result<String, ServiceError> {
        if reference != "latest" {
            return Ok(reference.to_string());
        }
        let versions = self.catalogs.versions().await?;
        versions
            .iter()
            .rev()
            .find(|version| version.pre.is_empty())
            .map(|version| format!("v{version}"))
            .ok_or_else(|| refused(ErrorKind::NotFound, "no stable Talos version"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository(registry: &str, insecure: bool) -> RepositoryConfig {
        RepositoryConfig {
            registry: registry.into(),
            insecure,
            ..RepositoryConfig::default()
        }
    }

    #[test]
    fn plain_http_only_where_upstream_uses_it() {
        assert_eq!(scheme_of(&repository("127.0.0.1:5000", false)), "http");
        assert_eq!(scheme_of(&repository("localhost:5000", false)), "http");
        assert_eq!(scheme_of(&repository("10.1.2.3:5000", false)), "http");
        assert_eq!(scheme_of(&repository("192.168.0.10", false)), "http");
        assert_eq!(scheme_of(&repository("registry.example", true)), "http");
        assert_eq!(scheme_of(&repository("ghcr.io", false)), "https");
        assert_eq!(scheme_of(&repository("8.8.8.8:443", false)), "https");
    }
}
