//! The service layer between frontends and the engine: every frontend (HTTP, PXE, the
//! registry, the CLI) turns a request into a [`Plan`] with [`Factory::resolve`] and gets its
//! bytes from [`Factory::asset`] or [`Factory::deliver`]. Below that: `plan` (request →
//! checked inputs → cache key), `builds` (single flight into the asset cache), `delivery`
//! (finished or growing entries), `inputs` (files of the release, initramfs, UKIs, GRUB) and
//! `assemble` (which engine layout builds each asset kind). Errors carry their HTTP kind.

mod assemble;
pub mod builds;
pub mod checksums;
pub mod delivery;
mod inputs;
pub mod installer_registry;
pub mod metrics;
pub mod mirror;
pub mod overlay;
pub mod plan;
pub mod registry;
pub mod talosctl;

pub use delivery::{Delivery, GrowingAsset};
pub use plan::Plan;

use crate::config::Config;
use crate::error::{Classify, ErrorKind};
use crate::schematic::{Schematic, SchematicError, SchematicId};
use crate::sign::secureboot::{KeyFiles, SecureBootKeys};
use crate::source::catalog::{CatalogConfig, Catalogs, ExtensionInfo, OverlayInfo};
use crate::source::layout::OciLayout;
use crate::source::registry::Registry;
use crate::source::{Images, Source, SourceError, Verifier};
use crate::store::{SchematicStore, StoreError, Stored};
use crate::version::{parse_strict, tag_of};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Everything a request handler needs, shared by all frontends.
#[derive(Debug, Clone)]
pub struct Factory {
    pub config: Arc<Config>,
    schematics: Arc<dyn SchematicStore>,
    pub images: Arc<Images>,
    pub catalogs: Arc<Catalogs>,
    pub builds: Arc<builds::Builds>,
    /// Loaded at start-up when `secureBoot.enabled` is set.
    pub secure_boot: Option<Arc<SecureBootKeys>>,
    /// One `talosctl-all` extraction at a time.
    talosctl_extraction: Arc<tokio::sync::Mutex<()>>,
    /// How overlay installers run here.
    overlays: Arc<overlay::Overlays>,
    pub metrics: Arc<metrics::Metrics>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    InvalidSchematic(#[from] SchematicError),
    #[error("schematic not found")]
    SchematicNotFound,
    /// The wording of upstream's asset routes for a missing schematic.
    #[error("schematic ID {0:?} not found")]
    SchematicIdNotFound(String),
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// A request this factory understands but cannot serve (yet, or in this edition).
    #[error("{message}")]
    Refused { kind: ErrorKind, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking engine task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Background(#[from] tokio::task::JoinError),
    #[error("build table poisoned")]
    BuildTablePoisoned,
    #[error("the build ended without a result")]
    BuildLost,
    /// The failure of a build, as every waiter of it sees it.
    #[error("{}", .0.message)]
    Build(delivery::SharedError),
    #[error("the release image {image} has no {path}")]
    MissingFromRelease { image: String, path: String },
    #[error("{image}: {reason}")]
    BrokenImage { image: String, reason: String },
    #[error("reading {}: {source}", path.display())]
    Unreadable {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("stored schematic {0} is not UTF-8")]
    CorruptSchematic(SchematicId),
    #[error("hashing the asset: {0}")]
    Checksum(std::io::Error),
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A plan that lacks what its asset kind needs: a bug of the planner.
    #[error("incomplete plan: {0}")]
    IncompletePlan(&'static str),
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Upstream answers a malformed version with 500; it is the client's mistake, so 400.
    #[error("{0}")]
    MalformedVersion(#[from] crate::version::VersionError),
    #[error(transparent)]
    Overlay(#[from] crate::overlay::OverlayError),
}

impl Classify for ServiceError {
    fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::InvalidSchematic(error) => error.kind(),
            ServiceError::SchematicNotFound | ServiceError::SchematicIdNotFound(_) => {
                ErrorKind::NotFound
            }
            ServiceError::Profile(error) => error.kind(),
            ServiceError::Engine(error) => error.kind(),
            ServiceError::Refused { kind, .. } => *kind,
            ServiceError::Store(error) => error.kind(),
            ServiceError::Build(error) => error.kind,
            ServiceError::Background(_)
            | ServiceError::BuildTablePoisoned
            | ServiceError::BuildLost
            | ServiceError::MissingFromRelease { .. }
            | ServiceError::BrokenImage { .. }
            | ServiceError::Unreadable { .. }
            | ServiceError::CorruptSchematic(_)
            | ServiceError::Checksum(_)
            | ServiceError::Json(_)
            | ServiceError::IncompletePlan(_) => ErrorKind::Internal,
            ServiceError::MalformedVersion(_) => ErrorKind::InvalidInput,
            ServiceError::Source(error) => error.kind(),
            ServiceError::Overlay(error) => error.kind(),
        }
    }
}

/// A schematic accepted by [`Factory::create_schematic`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSchematic {
    pub id: SchematicId,
    pub canonical: String,
    pub stored: Stored,
}

/// The image source and signature policy the configuration asks for.
pub fn images_from_config(config: &Config) -> Result<Images, String> {
    let artifacts = &config.artifacts;
    let source = if artifacts.oci_layout.as_os_str().is_empty() {
        let mut insecure = BTreeSet::new();
        if artifacts.core.insecure || is_loopback(&artifacts.core.registry) {
            insecure.insert(artifacts.core.registry.clone());
        }
        Source::Registry(Registry::new(insecure))
    } else {
        Source::Layout(OciLayout::open(&artifacts.oci_layout).map_err(|error| error.to_string())?)
    };
    let verifier = Verifier::from_config(&config.container_signature)?;
    if matches!(verifier, Verifier::Disabled) {
        tracing::warn!("signature verification of source images is disabled by configuration");
    }
    Ok(Images::new(source, verifier))
}

/// A registry on this machine is reached over plain HTTP without further configuration.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.split(':').next().unwrap_or(registry),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

fn catalog_config(config: &Config) -> Result<CatalogConfig, String> {
    let core = &config.artifacts.core;
    let error = |error: crate::config::ConfigError| error.0;
    Ok(CatalogConfig {
        registry: core.registry.clone(),
        namespace: core.namespace.clone(),
        imager: core.components.imager.clone(),
        extension_manifest: core.components.extension_manifest.clone(),
        overlay_manifest: core.components.overlay_manifest.clone(),
        min_version: config.build.min_version().map_err(error)?,
        broken: config.build.broken_versions().map_err(error)?,
        recheck: config.artifacts.recheck_interval().map_err(error)?,
    })
}

impl Factory {
    /// Opens the sources the configuration names and wires the service together.
    pub fn from_config(
        config: Config,
        schematics: Arc<dyn SchematicStore>,
    ) -> Result<Factory, String> {
        let images = Arc::new(images_from_config(&config)?);
        let catalogs = Arc::new(Catalogs::new(images.clone(), catalog_config(&config)?));
        let builds = Arc::new(builds::Builds::open(&config).map_err(|error| error.to_string())?);
        let secure_boot = if config.secure_boot.enabled {
            let files = &config.secure_boot.file;
            let keys = SecureBootKeys::load(&KeyFiles {
                signing_key: &files.signing_key_path,
                signing_cert: &files.signing_cert_path,
                pcr_key: &files.pcr_key_path,
                pk_auth: &files.pk_auth_path,
                kek_auth: &files.kek_auth_path,
                db_auth: &files.db_auth_path,
            })
            .map_err(|error| format!("secure boot is enabled, but {error}"))?;
            Some(Arc::new(keys))
        } else {
            None
        };
        let overlays = Arc::new(overlay::Overlays::from_config(&config)?);
        Ok(Factory {
            overlays,
            config: Arc::new(config),
            schematics,
            images,
            catalogs,
            builds,
            secure_boot,
            talosctl_extraction: Arc::default(),
            metrics: Arc::default(),
        })
    }

    /// The offered Talos versions (`v`-prefixed, ascending), or with `broken` the configured
    /// broken list.
    pub async fn versions(&self, broken: bool) -> Result<Vec<String>, ServiceError> {
        if broken {
            return Ok(self.catalogs.config().broken.iter().map(tag_of).collect());
        }
        Ok(self.catalogs.versions().await?.iter().map(tag_of).collect())
    }

    pub async fn extensions(&self, version: &str) -> Result<Arc<Vec<ExtensionInfo>>, ServiceError> {
        let version = parse_strict(version).map_err(ServiceError::MalformedVersion)?;
        Ok(self.catalogs.extensions(&version).await?)
    }

    pub async fn overlays(&self, version: &str) -> Result<Arc<Vec<OverlayInfo>>, ServiceError> {
        let version = parse_strict(version).map_err(ServiceError::MalformedVersion)?;
        Ok(self.catalogs.overlays(&version).await?)
    }

    /// Parses, validates and stores a schematic document; idempotent.
    pub async fn create_schematic(&self, body: Vec<u8>) -> Result<CreatedSchematic, ServiceError> {
        let schematic = Schematic::parse_valid(&body)?;
        let canonical = schematic.canonical();
        let id = SchematicId::of_canonical(canonical.as_bytes());
        let store = self.schematics.clone();
        let bytes = canonical.clone().into_bytes();
        let stored = tokio::task::spawn_blocking(move || store.put(&id, &bytes)).await??;
        match stored {
            Stored::Created => self.metrics.schematic_create.inc(),
            Stored::AlreadyPresent => self.metrics.schematic_duplicate_create.inc(),
        };
        Ok(CreatedSchematic {
            id,
            canonical,
            stored,
        })
    }

    /// The canonical text of a stored schematic. Text that is not a well-formed ID is
    /// simply not found; it never reaches the store.
    pub async fn schematic(&self, id: &str) -> Result<String, ServiceError> {
        let id: SchematicId = id.parse().map_err(|_| ServiceError::SchematicNotFound)?;
        self.stored_schematic(&id)
            .await?
            .ok_or(ServiceError::SchematicNotFound)
    }

    /// The canonical text stored under `id`, if any.
    async fn stored_schematic(&self, id: &SchematicId) -> Result<Option<String>, ServiceError> {
        self.metrics.schematic_get.inc();
        let store = self.schematics.clone();
        let key = *id;
        let Some(bytes) = tokio::task::spawn_blocking(move || store.get(&key)).await?? else {
            return Ok(None);
        };
        // The store verified the bytes against the ID, which is a hash of canonical text.
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| ServiceError::CorruptSchematic(*id))
    }
}

/// A request this factory understands but cannot serve.
fn refused(kind: ErrorKind, message: impl Into<String>) -> ServiceError {
    ServiceError::Refused {
        kind,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_registries() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("ghcr.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }
}
