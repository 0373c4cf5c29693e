//! Version discovery and the official catalogs: which Talos versions exist (from the imager
//! repository's tags), which extensions and overlays each version offers (from the
//! `extensions` and `overlays` catalog images). Results are kept in memory: the version list
//! for a refresh interval, catalogs for good (a released catalog never changes).

use super::reference::ImageRef;
use super::{Images, SourceError};
use crate::version::{parse_tolerant, tag_of};
use crate::yaml::node::{Node, NodeKind, read_first_document};
use semver::Version;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Where the core images live and which versions to offer.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    pub registry: String,
    pub namespace: String,
    pub imager: String,
    pub extension_manifest: String,
    pub overlay_manifest: String,
    pub min_version: Version,
    pub broken: Vec<Version>,
    pub recheck: Duration,
}

/// One official extension of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtensionInfo {
    /// Repository path, e.g. `siderolabs/amd-ucode`.
    pub name: String,
    /// `<configured registry>/<repository>:<tag>`.
    #[serde(rename = "ref")]
    pub reference: String,
    pub digest: String,
    pub author: String,
    pub description: String,
}

/// One official overlay of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverlayInfo {
    pub name: String,
    /// Repository path, e.g. `siderolabs/sbc-raspberrypi`.
    pub image: String,
    /// The catalog's reference text as-is.
    #[serde(rename = "ref")]
    pub reference: String,
    pub digest: String,
}

#[derive(Debug)]
pub struct Catalogs {
    images: Arc<Images>,
    config: CatalogConfig,
    versions: Mutex<Option<(Instant, Arc<Vec<Version>>)>>,
    extensions: Mutex<HashMap<Version, Arc<Vec<ExtensionInfo>>>>,
    overlays: Mutex<HashMap<Version, Arc<Vec<OverlayInfo>>>>,
}

/// Which tags are offered: at least the floor, not broken, and pre-releases only of the
/// newest minor in the `alpha.N` / `beta.N` / `rc.N` form.
pub fn filter_versions(tags: &[String], min: &Version, broken: &[Version]) -> Vec<Version> {
    let parsed: Vec<Version> = tags.iter().filter_map(|tag| parse_tolerant(tag)).collect();
    let Some(max) = parsed.iter().max().cloned() else {
        return Vec::new();
    };
    let mut kept: Vec<Version> = parsed
        .into_iter()
        .filter(|version| version >= min)
        .filter(|version| !broken.contains(version))
        .filter(|version| {
            if version.pre.is_empty() {
                return true;
            }
            // Exactly two identifiers: a pre-release kind and its number.
            let prerelease = version.pre.as_str().split_once('.');
            version.major == max.major
                && version.minor == max.minor
                && prerelease.is_some_and(|(kind, number)| {
                    matches!(kind, "alpha" | "beta" | "rc")
                        && number.bytes().all(|b| b.is_ascii_digit())
                })
        })
        .collect();
    kept.sort();
    kept.dedup();
    kept
}

impl Catalogs {
    pub fn new(images: Arc<Images>, config: CatalogConfig) -> Catalogs {
        Catalogs {
            images,
            config,
            versions: Mutex::new(None),
            extensions: Mutex::new(HashMap::new()),
            overlays: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &CatalogConfig {
        &self.config
    }

    /// `<registry>/<namespace>/<repository>:<tag>`.
    pub fn core_image(&self, repository: &str, tag: &str) -> ImageRef {
        let repository = if self.config.namespace.is_empty() {
            repository.to_string()
        } else {
            format!("{}/{repository}", self.config.namespace.trim_matches('/'))
        };
        ImageRef::with_tag(&self.config.registry, &repository, tag)
    }

    /// The offered Talos versions, ascending. Refreshed after the recheck interval; one
    /// refresh at a time.
    pub async fn versions(&self) -> Result<Arc<Vec<Version>>, SourceError> {
        let mut cached = self.versions.lock().await;
        if let Some((at, versions)) = cached.as_ref()
            && at.elapsed() < self.config.recheck
        {
            return Ok(versions.clone());
        }
        let imager = self.core_image(&self.config.imager, "latest");
        let tags = self.images.source.tags(&imager).await?;
        let versions = Arc::new(filter_versions(
            &tags,
            &self.config.min_version,
            &self.config.broken,
        ));
        *cached = Some((Instant::now(), versions.clone()));
        Ok(versions)
    }

    /// Fails with "version X is not available" unless `version` is offered.
    pub async fn require_available(&self, version: &Version) -> Result<(), SourceError> {
        if self.versions().await?.contains(version) {
            Ok(())
        } else {
            Err(SourceError::NotFound(format!(
                "version {version} is not available"
            )))
        }
    }

    pub async fn extensions(
        &self,
        version: &Version,
    ) -> Result<Arc<Vec<ExtensionInfo>>, SourceError> {
        self.require_available(version).await?;
        let mut cache = self.extensions.lock().await;
        if let Some(found) = cache.get(version) {
            return Ok(found.clone());
        }
        let image = self.core_image(&self.config.extension_manifest, &tag_of(version));
        let pulled = self.images.pull(&image, "amd64").await?;
        let digests = pulled
            .tree
            .file("image-digests")
            .ok_or_else(|| SourceError::Invalid(format!("{image} has no image-digests file")))?;
        let descriptions = match pulled.tree.file("descriptions.yaml") {
            Some(bytes) => parse_descriptions(&image, bytes)?,
            None => HashMap::new(),
        };
        let mut extensions = Vec::new();
        for line in String::from_utf8_lossy(digests).lines() {
            let line = line.trim();
            let Ok(parsed) = ImageRef::parse(line) else {
                continue;
            };
            let (Some(tag), Some(digest)) = (&parsed.tag, &parsed.digest) else {
                continue;
            };
            let (author, description) = descriptions.get(line).cloned().unwrap_or_default();
            extensions.push(ExtensionInfo {
                name: parsed.repository.clone(),
                reference: format!("{}/{}:{tag}", self.config.registry, parsed.repository),
                digest: digest.to_string(),
                author,
                description,
            });
        }
        let extensions = Arc::new(extensions);
        cache.insert(version.clone(), extensions.clone());
        Ok(extensions)
    }

    pub async fn overlays(&self, version: &Version) -> Result<Arc<Vec<OverlayInfo>>, SourceError> {
        if *version < Version::new(1, 7, 0) {
            return Ok(Arc::new(Vec::new()));
        }
        self.require_available(version).await?;
        let mut cache = self.overlays.lock().await;
        if let Some(found) = cache.get(version) {
            return Ok(found.clone());
        }
        let image = self.core_image(&self.config.overlay_manifest, &tag_of(version));
        let pulled = self.images.pull(&image, "amd64").await?;
        let text = pulled
            .tree
            .file("overlays.yaml")
            .ok_or_else(|| SourceError::Invalid(format!("{image} has no overlays.yaml file")))?;
        let overlays = Arc::new(parse_overlays(&image, text)?);
        cache.insert(version.clone(), overlays.clone());
        Ok(overlays)
    }
}

fn yaml_document(image: &ImageRef, file: &str, bytes: &[u8]) -> Result<Option<Node>, SourceError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| SourceError::Invalid(format!("{image}: {file} is not UTF-8")))?;
    read_first_document(text)
        .map_err(|error| SourceError::Invalid(format!("{image}: {file}: {error}")))
}

fn mapping_value<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    node.get(key)
}

fn text_of(node: Option<&Node>) -> String {
    node.and_then(Node::scalar_text)
        .unwrap_or_default()
        .to_string()
}

fn parse_descriptions(
    image: &ImageRef,
    bytes: &[u8],
) -> Result<HashMap<String, (String, String)>, SourceError> {
    let mut descriptions = HashMap::new();
    if let Some(Node {
        kind: NodeKind::Mapping(entries),
        ..
    }) = yaml_document(image, "descriptions.yaml", bytes)?
    {
        for (key, value) in entries {
            let Some(line) = key.scalar_text() else {
                continue;
            };
            descriptions.insert(
                line.to_string(),
                (
                    text_of(mapping_value(&value, "author")),
                    text_of(mapping_value(&value, "description")),
                ),
            );
        }
    }
    Ok(descriptions)
}

fn parse_overlays(image: &ImageRef, bytes: &[u8]) -> Result<Vec<OverlayInfo>, SourceError> {
    let document = yaml_document(image, "overlays.yaml", bytes)?;
    let Some(Node {
        kind: NodeKind::Sequence(items),
        ..
    }) = document
        .as_ref()
        .and_then(|root| mapping_value(root, "overlays"))
    else {
        return Ok(Vec::new());
    };
    let mut overlays = Vec::new();
    for item in items {
        let reference = text_of(mapping_value(item, "image"));
        let repository = match ImageRef::parse(&reference) {
            Ok(parsed) => parsed.repository,
            Err(_) => reference
                .split_once('/')
                .map(|(_, rest)| rest)
                .unwrap_or(&reference)
                .split(':')
                .next()
                .unwrap_or_default()
                .to_string(),
        };
        overlays.push(OverlayInfo {
            name: text_of(mapping_value(item, "name")),
            image: repository,
            reference,
            digest: text_of(mapping_value(item, "digest")),
        });
    }
    Ok(overlays)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn version_filtering() {
        let tags: Vec<String> = [
            "v1.1.0",
            "v1.2.0",
            "v1.9.6",
            "v1.12.0-alpha.1",
            "v1.12.0",
            "v1.13.0-beta.0",
            "v1.13.0-beta",
            "v1.13.0-custom.1",
            "v1.13.1",
            "latest",
            "sha256-00.sig",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let kept = filter_versions(&tags, &v("1.2.0"), &[v("1.13.1")]);
        assert_eq!(
            kept,
            vec![v("1.2.0"), v("1.9.6"), v("1.12.0"), v("1.13.0-beta.0")]
        );
        assert!(filter_versions(&[], &v("1.2.0"), &[]).is_empty());
    }
}
