//! Where a mirror writes: an OCI layout (images named `<name registry>/<repository>:<tag>`
//! in its index) or another registry (the same repositories under another host), behind one
//! interface that also says what is already there.

use super::ServiceError;
use crate::source::ImageRef;
use crate::source::layout::LayoutWriter;
use crate::source::oci::{Descriptor, Digest};
use crate::source::registry::Registry;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// The destination a mirror run is asked for.
#[derive(Debug, Clone)]
pub enum MirrorTarget {
    /// An OCI layout directory (created, or continued); images are named by
    /// `name_registry`, the `artifacts.core.registry` of the factory that will serve it.
    Layout { dir: PathBuf, name_registry: String },
    /// A registry host (`host[:port]`); plain HTTP when `insecure`.
    Registry { host: String, insecure: bool },
}

pub(super) enum Target {
    Layout {
        writer: LayoutWriter,
        name_registry: String,
    },
    Registry {
        registry: Registry,
        host: String,
    },
}

impl Target {
    pub fn open(target: &MirrorTarget) -> Result<Target, ServiceError> {
        Ok(match target {
            MirrorTarget::Layout { dir, name_registry } => Target::Layout {
                writer: LayoutWriter::resume(dir)?,
                name_registry: name_registry.clone(),
            },
            MirrorTarget::Registry { host, insecure } => {
                let plain = if *insecure {
                    BTreeSet::from([host.clone()])
                } else {
                    BTreeSet::new()
                };
                Target::Registry {
                    registry: Registry::new(plain),
                    host: host.clone(),
                }
            }
        })
    }

    fn at(host: &str, repository: &str, digest: &Digest) -> ImageRef {
        ImageRef::with_tag(host, repository, "latest").with_digest(digest.clone())
    }

    pub async fn has_blob(&self, repository: &str, digest: &Digest) -> Result<bool, ServiceError> {
        match self {
            Target::Layout { writer, .. } => Ok(writer.contains(digest)),
            Target::Registry { registry, host } => Ok(registry
                .has_blob(&Self::at(host, repository, digest), digest)
                .await?),
        }
    }

    pub async fn has_manifest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<bool, ServiceError> {
        match self {
            Target::Layout { writer, .. } => Ok(writer.contains(digest)),
            Target::Registry { registry, host } => Ok(registry
                .has_manifest(&Self::at(host, repository, digest))
                .await?),
        }
    }

    pub async fn put_blob(
        &mut self,
        repository: &str,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<(), ServiceError> {
        match self {
            Target::Layout { writer, .. } => {
                writer.put_blob(media_type, &bytes)?;
            }
            Target::Registry { registry, host } => {
                let digest = Digest::of(&bytes);
                registry
                    .push_blob(&Self::at(host, repository, &digest), &digest, bytes)
                    .await?;
            }
        }
        Ok(())
    }

    /// Stores a manifest by its digest, and under `tag` when given.
    pub async fn put_manifest(
        &mut self,
        repository: &str,
        media_type: &str,
        bytes: &[u8],
        tag: Option<&str>,
    ) -> Result<Descriptor, ServiceError> {
        match self {
            Target::Layout {
                writer,
                name_registry,
            } => {
                let descriptor = writer.put_blob(media_type, bytes)?;
                if let Some(tag) = tag {
                    writer.tag(&format!("{name_registry}/{repository}:{tag}"), &descriptor);
                }
                Ok(descriptor)
            }
            Target::Registry { registry, host } => {
                let digest = Digest::of(bytes);
                let image = match tag {
                    Some(tag) => ImageRef::with_tag(host, repository, tag),
                    None => Self::at(host, repository, &digest),
                };
                registry
                    .push_manifest(&image, media_type, bytes.to_vec())
                    .await?;
                Ok(Descriptor {
                    media_type: media_type.to_string(),
                    digest,
                    size: bytes.len() as u64,
                    platform: None,
                    artifact_type: None,
                    annotations: Default::default(),
                })
            }
        }
    }

    /// Makes what is written so far usable (a layout's index); a registry needs nothing.
    pub fn checkpoint(&self) -> Result<(), ServiceError> {
        if let Target::Layout { writer, .. } = self {
            writer.flush()?;
        }
        Ok(())
    }
}
