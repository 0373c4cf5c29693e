//! The asset pipeline: an asset request becomes a plan (profile, command line, the exact
//! input images), the plan a cache key; a cache miss runs one build per key however many
//! requests wait for it, bounded by `build.maxConcurrency`, detached from the requests (a
//! client that goes away does not cancel the build).

use super::{Factory, ServiceError};
use crate::config::Config;
use crate::engine::SOURCE_DATE_EPOCH;
use crate::engine::boot::{BiosGrub, Bootloader, grub, uki};
use crate::engine::initramfs::extension;
use crate::engine::initramfs::{self, ExtensionSet};
use crate::engine::layout::disk::{self, DiskInputs};
use crate::engine::layout::installer;
use crate::engine::layout::iso::{self, BiosEltorito, IsoBoot, IsoInputs};
use crate::error::ErrorKind;
use crate::format::{Compression, SparseImage};
use crate::profile::{self, Arch, DiskFormat, OutFormat, OutputKind, PathProfile, TalosVersion};
use crate::schematic::{Schematic, SchematicId};
use crate::source::oci::Digest;
use crate::source::{FileTree, ImageRef};
use crate::store::cache::{AssetCache, CachedAsset, load_or_create_key};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Mutex, Semaphore, watch};

/// Upstream renamed some extensions; a schematic may still name the old one.
const EXTENSION_ALIASES: &[(&str, &str)] = &[
    ("siderolabs/v4l-uvc", "siderolabs/v4l-uvc-drivers"),
    ("siderolabs/usb-modem", "siderolabs/usb-modem-drivers"),
    ("siderolabs/gasket", "siderolabs/gasket-driver"),
    (
        "siderolabs/talos-vmtoolsd",
        "siderolabs/vmtoolsd-guest-agent",
    ),
    (
        "siderolabs/xe-guest-utilities",
        "siderolabs/xen-guest-agent",
    ),
    (
        "siderolabs/nvidia-container-toolkit",
        "siderolabs/nvidia-container-toolkit-lts",
    ),
    (
        "siderolabs/nvidia-open-gpu-kernel-modules",
        "siderolabs/nvidia-open-gpu-kernel-modules-lts",
    ),
    (
        "siderolabs/nonfree-kmod-nvidia",
        "siderolabs/nonfree-kmod-nvidia-lts",
    ),
    (
        "siderolabs/nvidia-fabricmanager",
        "siderolabs/nvidia-fabric-manager-lts",
    ),
    ("siderolabs/i915-ucode", "siderolabs/i915"),
    ("siderolabs/amdgpu-firmware", "siderolabs/amdgpu"),
];

/// Bumped whenever the engine's output for the same inputs changes, so old entries miss.
const ENGINE_GENERATION: &str = "image-factory asset pipeline 2";

/// One asset to serve.
#[derive(Debug, Clone)]
pub struct AssetRequest {
    pub schematic_id: SchematicId,
    pub schematic: Schematic,
    pub canonical: String,
    pub version: TalosVersion,
    pub path: PathProfile,
}

/// What exactly gets built: resolved inputs and the command line.
#[derive(Debug, Clone)]
pub struct Plan {
    pub request: AssetRequest,
    pub imager: ImageRef,
    /// `(catalog name, image pinned by digest)` in schematic order.
    pub extensions: Vec<(String, ImageRef)>,
    pub cmdline: String,
    /// The boot arrangement of a disk image.
    pub bootloader: Option<Bootloader>,
    /// How an ISO boots.
    pub iso_boot: Option<IsoBoot>,
    /// The installer base an installer image extends.
    pub installer_base: Option<ImageRef>,
    pub key: String,
}

/// Failures shared with every waiter of a build.
#[derive(Debug, Clone)]
pub struct SharedError {
    pub kind: ErrorKind,
    pub message: String,
}

type Outcome = Option<Result<CachedAsset, SharedError>>;

/// What waiters of a build see: the data file being written and its final bytes so far,
/// then the outcome.
#[derive(Debug, Clone, Default)]
pub struct BuildState {
    pub partial: Option<(std::path::PathBuf, u64)>,
    pub outcome: Outcome,
}

/// An asset ready in the cache, or one still being written that can be streamed.
#[derive(Debug)]
pub enum Delivery {
    Ready(CachedAsset),
    Growing(watch::Receiver<BuildState>),
}

/// Single-flight bookkeeping, the build slots and the cache.
#[derive(Debug)]
pub struct Builds {
    pub cache: AssetCache,
    inflight: std::sync::Mutex<HashMap<String, watch::Receiver<BuildState>>>,
    slots: Arc<Semaphore>,
    started: AtomicU64,
    imagers: Mutex<Vec<(String, Arc<FileTree>)>>,
    /// Registry installer builds run one at a time (see `registry.rs`).
    pub registry_builds: Mutex<()>,
}

impl Builds {
    pub fn open(config: &Config) -> Result<Builds, String> {
        let key_path = if config.cache.signing_key_path.as_os_str().is_empty() {
            config.storage.dir.join("cache-signing-key.pem")
        } else {
            config.cache.signing_key_path.clone()
        };
        let key = load_or_create_key(&key_path)?;
        Ok(Builds {
            cache: AssetCache::open(&config.storage.dir.join("assets"), key)?,
            inflight: std::sync::Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(config.build.max_concurrency.max(1) as usize)),
            started: AtomicU64::new(0),
            imagers: Mutex::new(Vec::new()),
            registry_builds: Mutex::new(()),
        })
    }

    /// Builds started since start-up (cache misses that ran the engine).
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
}

fn refused(kind: ErrorKind, message: impl Into<String>) -> ServiceError {
    ServiceError::Refused {
        kind,
        message: message.into(),
    }
}

/// Waits for the outcome of a build.
pub async fn finished(
    receiver: &mut watch::Receiver<BuildState>,
) -> Result<CachedAsset, ServiceError> {
    let outcome = receiver
        .wait_for(|state| state.outcome.is_some())
        .await
        .map_err(|_| ServiceError::Task("build task ended without a result".into()))?
        .outcome
        .clone();
    match outcome {
        Some(Ok(asset)) => Ok(asset),
        Some(Err(error)) => Err(ServiceError::Refused {
            kind: error.kind,
            message: error.message,
        }),
        None => Err(ServiceError::Task("build produced nothing".into())),
    }
}

/// The cluster size of qemu-img's `cluster_size=<n>[k|M]` option (default 64 KiB).
fn qcow2_cluster_bits(options: &str) -> Result<u32, ServiceError> {
    let mut bits = 16;
    for option in options.split(',').filter(|o| !o.is_empty()) {
        let bad = || {
            refused(
                ErrorKind::InvalidInput,
                format!("unsupported qcow2 option {option:?}"),
            )
        };
        let value = option.strip_prefix("cluster_size=").ok_or_else(bad)?;
        let (digits, unit) = match value.strip_suffix(['k', 'K']) {
            Some(digits) => (digits, 1024u64),
            None => match value.strip_suffix('M') {
                Some(digits) => (digits, 1024 * 1024),
                None => (value, 1),
            },
        };
        let size = digits.parse::<u64>().map_err(|_| bad())? * unit;
        if !size.is_power_of_two() || !(512..=2 * 1024 * 1024).contains(&size) {
            return Err(bad());
        }
        bits = size.trailing_zeros();
    }
    Ok(bits)
}

impl Factory {
    /// Loads the schematic and parses version and path, with upstream's statuses.
    pub async fn asset_request(
        &self,
        schematic_id: &str,
        version: &str,
        path: &str,
    ) -> Result<AssetRequest, ServiceError> {
        let canonical = self
            .schematic(schematic_id)
            .await
            .map_err(|error| match error {
                ServiceError::SchematicNotFound => {
                    ServiceError::SchematicIdNotFound(schematic_id.into())
                }
                other => other,
            })?;
        let schematic = Schematic::parse(canonical.as_bytes())?;
        let version = crate::source::catalog::parse_strict(version)
            .map_err(ServiceError::MalformedVersion)?;
        let path = profile::parse_path(path)?;
        Ok(AssetRequest {
            schematic_id: schematic_id
                .parse()
                .map_err(|_| ServiceError::SchematicIdNotFound(schematic_id.into()))?,
            schematic,
            canonical,
            version: TalosVersion::new(version),
            path,
        })
    }

    /// Resolves what a request needs (validating it against the version) and its cache key.
    pub async fn plan(&self, request: AssetRequest) -> Result<Plan, ServiceError> {
        let version = &request.version;
        let tag = version.tag();
        let customization = &request.schematic.customization;
        let kind = request.path.kind;
        if !matches!(
            kind,
            OutputKind::Kernel
                | OutputKind::Cmdline
                | OutputKind::Initramfs
                | OutputKind::Uki
                | OutputKind::Image
                | OutputKind::Iso
                | OutputKind::Installer
        ) {
            return Err(refused(
                ErrorKind::InvalidInput,
                format!(
                    "building {} assets is not supported by this factory yet",
                    kind.as_str()
                ),
            ));
        }
        if request.path.secureboot {
            return Err(refused(ErrorKind::InvalidInput, "secure boot is disabled"));
        }
        if !matches!(kind, OutputKind::Kernel | OutputKind::Cmdline)
            && !customization.embedded_machine_configuration.is_empty()
            && !version.at_least(1, 12, 0)
        {
            return Err(refused(
                ErrorKind::InvalidInput,
                format!("embedding configuration is not supported for Talos version {tag}"),
            ));
        }
        if !request.schematic.overlay.name.is_empty() {
            if !version.at_least(1, 7, 0) {
                return Err(refused(
                    ErrorKind::InvalidInput,
                    format!("overlay is not supported for Talos version {tag}"),
                ));
            }
            return Err(refused(
                ErrorKind::InvalidInput,
                "overlays are not supported by this factory yet",
            ));
        }
        if crate::profile::platform(&request.path.platform).is_none() {
            return Err(refused(
                ErrorKind::InvalidInput,
                format!("unknown platform {:?}", request.path.platform),
            ));
        }
        let bootloader = match &request.path.image {
            Some(image) => Some(Self::check_disk_image(&request, image)?),
            None => None,
        };
        let iso_boot = (kind == OutputKind::Iso).then(|| {
            IsoBoot::select(
                customization.bootloader,
                request.path.secureboot,
                request.path.arch,
                version,
            )
        });
        self.catalogs.require_available(&version.version).await?;

        let mut extensions = Vec::new();
        if !matches!(kind, OutputKind::Kernel | OutputKind::Cmdline) {
            let catalog = self.catalogs.extensions(&version.version).await?;
            for wanted in &customization.system_extensions.official_extensions {
                let alias = EXTENSION_ALIASES
                    .iter()
                    .find(|(old, _)| old == wanted)
                    .map(|(_, new)| *new);
                let found = catalog
                    .iter()
                    .find(|entry| &entry.name == wanted)
                    .or_else(|| alias.and_then(|alias| catalog.iter().find(|entry| entry.name == alias)))
                    .ok_or_else(|| {
                        refused(
                            ErrorKind::InvalidInput,
                            format!("official extension {wanted:?} is not available for Talos version {tag}"),
                        )
                    })?;
                let digest = Digest::parse(&found.digest)
                    .map_err(|error| refused(ErrorKind::Internal, error))?;
                let image = self
                    .catalogs
                    .core_image(&found.name, "pinned")
                    .with_digest(digest);
                extensions.push((found.name.clone(), image));
            }
        }

        let (args, meta) = profile::schematic_args(&request.schematic, &request.path, version);
        let cmdline = profile::kernel_cmdline(&request.path, version, &[], meta, args);
        let imager = self
            .catalogs
            .core_image(&self.config.artifacts.core.components.imager, &tag);
        // From 1.10 installers extend `installer-base`; before, the full `installer`.
        let installer_base = (kind == OutputKind::Installer).then(|| {
            let components = &self.config.artifacts.core.components;
            let base = if version.at_least(1, 10, 0) {
                &components.installer_base
            } else {
                &components.installer
            };
            self.catalogs.core_image(base, &tag)
        });

        let mut hasher = Sha256::new();
        for part in [
            ENGINE_GENERATION,
            kind.as_str(),
            &request.path.platform,
            request.path.arch.as_str(),
            &tag,
            &cmdline,
            &request.canonical,
            &self.config.http.external_url,
            &imager.to_string(),
        ] {
            hasher.update(part.as_bytes());
            hasher.update(b"\0");
        }
        for (name, image) in &extensions {
            hasher.update(format!("{name}={image}\0").as_bytes());
        }
        hasher.update(
            format!(
                "{:?}\0{bootloader:?}\0{iso_boot:?}\0{installer_base:?}\0",
                request.path
            )
            .as_bytes(),
        );
        let key = crate::source::oci::hex(&hasher.finalize());
        Ok(Plan {
            request,
            imager,
            extensions,
            cmdline,
            bootloader,
            iso_boot,
            installer_base,
            key,
        })
    }

    /// The asset of `plan`, from the cache or built once for all concurrent callers.
    pub async fn asset(&self, plan: Plan) -> Result<CachedAsset, ServiceError> {
        match self.delivery(plan, false).await? {
            Delivery::Ready(asset) => Ok(asset),
            Delivery::Growing(mut receiver) => finished(&mut receiver).await,
        }
    }

    /// Like [`Factory::asset`], but hands out a build as soon as its first bytes are
    /// written, so a response can stream it while it is made.
    pub async fn asset_streaming(&self, plan: Plan) -> Result<Delivery, ServiceError> {
        self.delivery(plan, true).await
    }

    async fn delivery(&self, plan: Plan, early: bool) -> Result<Delivery, ServiceError> {
        let builds = self.builds.clone();
        if let Some(hit) = tokio::task::spawn_blocking({
            let builds = builds.clone();
            let key = plan.key.clone();
            move || builds.cache.get(&key)
        })
        .await
        .map_err(|error| ServiceError::Task(error.to_string()))?
        {
            return Ok(Delivery::Ready(hit));
        }
        let mut receiver = {
            let mut inflight = builds
                .inflight
                .lock()
                .map_err(|_| ServiceError::Task("build table poisoned".into()))?;
            match inflight.get(&plan.key) {
                Some(receiver) => receiver.clone(),
                None => {
                    let (sender, receiver) = watch::channel(BuildState::default());
                    inflight.insert(plan.key.clone(), receiver.clone());
                    let factory = self.clone();
                    let sender = Arc::new(sender);
                    tokio::spawn(async move {
                        let key = plan.key.clone();
                        let outcome = factory.run_build(plan, sender.clone()).await;
                        if let Ok(mut inflight) = factory.builds.inflight.lock() {
                            inflight.remove(&key);
                        }
                        sender.send_modify(|state| state.outcome = Some(outcome));
                    });
                    receiver
                }
            }
        };
        if early {
            receiver
                .wait_for(|state| state.outcome.is_some() || state.partial.is_some())
                .await
                .map_err(|_| ServiceError::Task("build task ended without a result".into()))?;
            let ready = receiver.borrow().outcome.clone();
            return match ready {
                Some(Ok(asset)) => Ok(Delivery::Ready(asset)),
                Some(Err(error)) => Err(ServiceError::Refused {
                    kind: error.kind,
                    message: error.message,
                }),
                None => Ok(Delivery::Growing(receiver)),
            };
        }
        finished(&mut receiver).await.map(Delivery::Ready)
    }

    async fn run_build(
        &self,
        plan: Plan,
        state: Arc<watch::Sender<BuildState>>,
    ) -> Result<CachedAsset, SharedError> {
        let shared = |error: ServiceError| {
            use crate::error::Classify;
            SharedError {
                kind: error.kind(),
                message: error.to_string(),
            }
        };
        let _slot = self
            .builds
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|error| shared(ServiceError::Task(error.to_string())))?;
        self.builds.started.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let key = plan.key.clone();
        let kind = plan.request.path.kind;
        let builds = self.builds.clone();
        let stored = if matches!(
            kind,
            OutputKind::Image | OutputKind::Iso | OutputKind::Installer
        ) {
            let image = match kind {
                OutputKind::Iso => self.iso_image(&plan).await,
                OutputKind::Installer => self.installer_image(&plan).await,
                _ => self.disk_image(&plan).await,
            }
            .map_err(shared)?;
            let compression = match plan.request.path.out_format {
                OutFormat::Zstd => Compression::Zstd,
                OutFormat::Xz => Compression::Xz,
                OutFormat::Gz | OutFormat::TarGz => Compression::Gzip,
                OutFormat::Raw => Compression::None,
            };
            tokio::task::spawn_blocking(move || {
                let progress = |path: &std::path::Path, written: u64| {
                    state.send_modify(|state| state.partial = Some((path.to_path_buf(), written)));
                };
                builds.cache.put_streaming(&key, &progress, |sink| {
                    crate::format::encode(&image, compression, sink)
                })
            })
            .await
        } else {
            let bytes = self.build_bytes(&plan).await.map_err(shared)?;
            tokio::task::spawn_blocking(move || builds.cache.put(&key, &bytes)).await
        };
        let asset = stored
            .map_err(|error| shared(ServiceError::Task(error.to_string())))?
            .map_err(|error| shared(ServiceError::Task(error)))?;
        tracing::info!(
            kind = kind.as_str(),
            size = asset.size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "asset built"
        );
        Ok(asset)
    }

    /// The flattened imager of a version (both architectures' boot assets), kept for reuse.
    async fn imager(&self, image: &ImageRef) -> Result<Arc<FileTree>, ServiceError> {
        let name = image.to_string();
        let mut cached = self.builds.imagers.lock().await;
        if let Some((_, tree)) = cached.iter().find(|(cached_name, _)| *cached_name == name) {
            return Ok(tree.clone());
        }
        let pulled = self.images.pull(image, "amd64").await?;
        let tree = Arc::new(pulled.tree);
        cached.push((name, tree.clone()));
        if cached.len() > 3 {
            cached.remove(0);
        }
        Ok(tree)
    }

    fn imager_file(tree: &FileTree, path: &str) -> Result<Vec<u8>, ServiceError> {
        tree.file(path)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| refused(ErrorKind::Internal, format!("the imager has no {path}")))
    }

    async fn build_bytes(&self, plan: &Plan) -> Result<Vec<u8>, ServiceError> {
        let arch = plan.request.path.arch.as_str();
        match plan.request.path.kind {
            OutputKind::Cmdline => Ok(plan.cmdline.clone().into_bytes()),
            OutputKind::Kernel => {
                let imager = self.imager(&plan.imager).await?;
                Self::imager_file(&imager, &format!("usr/install/{arch}/vmlinuz"))
            }
            OutputKind::Initramfs => self.initramfs(plan).await,
            OutputKind::Uki => self.uki(plan, None).await,
            other => Err(refused(
                ErrorKind::InvalidInput,
                format!(
                    "building {} assets is not supported by this factory yet",
                    other.as_str()
                ),
            )),
        }
    }

    /// Refuses disk images this factory cannot build yet; returns the bootloader otherwise.
    fn check_disk_image(
        request: &AssetRequest,
        image: &profile::ImageOptions,
    ) -> Result<Bootloader, ServiceError> {
        let bootloader = Bootloader::select(
            request.schematic.customization.bootloader,
            request.path.secureboot,
            request.path.arch,
            &request.version,
        );
        if image.disk_format == DiskFormat::Qcow2 {
            qcow2_cluster_bits(&image.disk_format_options)?;
        }
        let sector = request.schematic.customization.disk_image.sector_size;
        if !matches!(sector, 0 | 512 | 4096) {
            return Err(refused(
                ErrorKind::InvalidInput,
                format!("disk image sector size {sector} is not supported (512 or 4096)"),
            ));
        }
        Ok(bootloader)
    }

    /// The disk image of `plan` as a sparse image, ready for its container and compression.
    async fn disk_image(&self, plan: &Plan) -> Result<SparseImage, ServiceError> {
        let request = &plan.request;
        let image = request
            .path
            .image
            .as_ref()
            .ok_or_else(|| refused(ErrorKind::Internal, "disk image without image options"))?;
        let bootloader = plan.bootloader.unwrap_or(Bootloader::SdBoot);
        let arch = request.path.arch;
        let imager = self.imager(&plan.imager).await?;
        let initramfs = self.initramfs(plan).await?;
        let kernel = Self::imager_file(&imager, &format!("usr/install/{arch}/vmlinuz"))?;
        let uses_uki = bootloader != Bootloader::Grub;
        let uses_grub = bootloader != Bootloader::SdBoot;
        let (uki, sd_boot) = if uses_uki {
            let uki = self
                .assemble_uki(
                    plan,
                    kernel.clone(),
                    initramfs.clone(),
                    Some(uki::RESET_MAINTENANCE),
                )
                .await?;
            let sd_boot =
                Self::imager_file(&imager, &format!("usr/install/{arch}/systemd-boot.efi"))?;
            (uki.into(), sd_boot.into())
        } else {
            (Bytes::new(), Bytes::new())
        };
        let grub_efi = if bootloader == Bootloader::Grub {
            Self::grub_efi(&imager, arch, grub::PREFIX, grub::COMMON_MODULES.to_vec())
                .await?
                .into()
        } else {
            Bytes::new()
        };
        let bios = if uses_grub && arch == Arch::Amd64 {
            let (boot_img, core_img) = Self::grub_bios(&imager, "boot.img", |files| {
                grub::bios_core_image(files, grub::PREFIX, grub::BIOS_MODULES)
            })
            .await?;
            Some(BiosGrub { boot_img, core_img })
        } else {
            None
        };
        let sector = match request.schematic.customization.disk_image.sector_size {
            0 => 512,
            other => other,
        };
        let disk = DiskInputs {
            arch,
            version: request.version.clone(),
            bootloader,
            disk_size: disk::disk_size(image.disk_size, bootloader, &request.version),
            sector_size: sector,
            sd_boot,
            uki,
            kernel: if uses_grub {
                kernel.into()
            } else {
                Bytes::new()
            },
            initramfs: if uses_grub {
                initramfs.into()
            } else {
                Bytes::new()
            },
            cmdline: plan.cmdline.clone(),
            grub_efi,
            bios,
            meta: request.schematic.customization.meta.clone(),
            mtime: SOURCE_DATE_EPOCH,
        };
        let disk_format = image.disk_format;
        let options = image.disk_format_options.clone();
        let tarred = request.path.out_format == OutFormat::TarGz;
        tokio::task::spawn_blocking(move || {
            let layout = disk::build(&disk)?;
            let fail = |error: crate::format::FormatError| {
                ServiceError::Engine(crate::engine::EngineError::InvalidInput(error.to_string()))
            };
            let disk_id = crate::engine::fs::gpt::guid_from_label("talos-image-disk");
            let contained = match disk_format {
                DiskFormat::Raw => layout,
                DiskFormat::Qcow2 => {
                    crate::format::qcow2::qcow2(&layout, qcow2_cluster_bits(&options)?)
                        .map_err(fail)?
                }
                DiskFormat::Vhd => {
                    crate::format::vhd::fixed(&layout, disk_id, SOURCE_DATE_EPOCH).map_err(fail)?
                }
                DiskFormat::Ova => crate::format::ova::ova(
                    &layout,
                    u32::from_be_bytes([disk_id[0], disk_id[1], disk_id[2], disk_id[3]]),
                    SOURCE_DATE_EPOCH,
                )
                .map_err(fail)?,
            };
            if !tarred {
                return Ok(contained);
            }
            crate::format::tar::archive(
                vec![crate::format::tar::Member {
                    name: "disk.raw".into(),
                    mode: 0o644,
                    content: contained,
                    sparse: true,
                }],
                SOURCE_DATE_EPOCH,
            )
            .map_err(fail)
        })
        .await
        .map_err(|error| ServiceError::Task(error.to_string()))?
    }

    /// GRUB's EFI application for `arch` from the imager's GRUB directory.
    async fn grub_efi(
        imager: &Arc<FileTree>,
        arch: Arch,
        prefix: &'static str,
        modules: Vec<&'static str>,
    ) -> Result<Vec<u8>, ServiceError> {
        let imager = imager.clone();
        let efi = grub::EfiArch::from(arch);
        tokio::task::spawn_blocking(move || {
            let dir = format!("usr/lib/grub/{}", efi.platform());
            let files = |name: &str| imager.file(&format!("{dir}/{name}")).map(<[u8]>::to_vec);
            grub::efi_image(efi, &files, prefix, &modules)
        })
        .await
        .map_err(|error| ServiceError::Task(error.to_string()))?
        .map_err(ServiceError::from)
    }

    /// GRUB for BIOS from the imager's i386-pc directory: the boot sector `boot_file` and the
    /// image `build` makes from the modules.
    async fn grub_bios(
        imager: &Arc<FileTree>,
        boot_file: &'static str,
        build: impl FnOnce(
            &dyn Fn(&str) -> Option<Vec<u8>>,
        ) -> Result<Vec<u8>, crate::engine::EngineError>
        + Send
        + 'static,
    ) -> Result<(Vec<u8>, Vec<u8>), ServiceError> {
        let imager = imager.clone();
        tokio::task::spawn_blocking(move || {
            let grub_dir = "usr/lib/grub/i386-pc";
            let boot = Self::imager_file(&imager, &format!("{grub_dir}/{boot_file}"))?;
            let files = |name: &str| {
                imager
                    .file(&format!("{grub_dir}/{name}"))
                    .map(<[u8]>::to_vec)
            };
            Ok::<_, ServiceError>((boot, build(&files)?))
        })
        .await
        .map_err(|error| ServiceError::Task(error.to_string()))?
    }

    /// The installer of `plan`: a `docker save` tarball of the installer base plus the boot
    /// artifacts layer.
    async fn installer_image(&self, plan: &Plan) -> Result<SparseImage, ServiceError> {
        let inputs = self.installer_inputs(plan).await?;
        tokio::task::spawn_blocking(move || installer::tarball(&inputs))
            .await
            .map_err(|error| ServiceError::Task(error.to_string()))?
            .map_err(ServiceError::from)
    }

    /// What the installer of `plan` is made of: the base image's config and layers, and the
    /// boot artifacts.
    pub async fn installer_inputs(
        &self,
        plan: &Plan,
    ) -> Result<installer::InstallerInputs, ServiceError> {
        let request = &plan.request;
        let arch = request.path.arch;
        let base = plan
            .installer_base
            .clone()
            .ok_or_else(|| refused(ErrorKind::Internal, "installer without a base image"))?;
        let (config, layers) = self.images.image_parts(&base, arch.as_str()).await?;
        let base_config: serde_json::Value = serde_json::from_slice(&config).map_err(|error| {
            refused(
                ErrorKind::Internal,
                format!("{base}: invalid image config: {error}"),
            )
        })?;
        let diff_ids: Vec<String> = base_config["rootfs"]["diff_ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if diff_ids.len() != layers.len() {
            return Err(refused(
                ErrorKind::Internal,
                format!(
                    "{base}: the config lists {} layers, the manifest {}",
                    diff_ids.len(),
                    layers.len()
                ),
            ));
        }
        let base_layers = layers
            .into_iter()
            .zip(diff_ids)
            .map(|((descriptor, blob), diff_id)| installer::BaseLayer {
                blob: blob.into(),
                media_type: descriptor.media_type,
                diff_id,
            })
            .collect();
        let imager = self.imager(&plan.imager).await?;
        let (sd_boot, uki, kernel, initramfs) = if request.version.at_least(1, 10, 0) {
            let uki = self.uki(plan, Some(uki::RESET_MAINTENANCE)).await?;
            let sd_boot =
                Self::imager_file(&imager, &format!("usr/install/{arch}/systemd-boot.efi"))?;
            (sd_boot, uki, Vec::new(), Vec::new())
        } else {
            let initramfs = self.initramfs(plan).await?;
            let kernel = Self::imager_file(&imager, &format!("usr/install/{arch}/vmlinuz"))?;
            (Vec::new(), Vec::new(), kernel, initramfs)
        };
        let inputs = installer::InstallerInputs {
            arch,
            reference: base.to_string(),
            base_config,
            base_layers,
            artifacts: installer::artifacts(
                arch,
                &request.version,
                sd_boot.into(),
                uki.into(),
                kernel.into(),
                initramfs.into(),
            ),
            created: i64::from(SOURCE_DATE_EPOCH),
        };
        Ok(inputs)
    }

    /// The ISO of `plan` as a sparse image.
    async fn iso_image(&self, plan: &Plan) -> Result<SparseImage, ServiceError> {
        let request = &plan.request;
        let boot = plan
            .iso_boot
            .ok_or_else(|| refused(ErrorKind::Internal, "ISO without a boot arrangement"))?;
        let arch = request.path.arch;
        let imager = self.imager(&plan.imager).await?;
        let initramfs = self.initramfs(plan).await?;
        let kernel = Self::imager_file(&imager, &format!("usr/install/{arch}/vmlinuz"))?;
        let (uki, sd_boot, grub_efi) = if boot == IsoBoot::Grub {
            let modules = [grub::COMMON_MODULES, grub::ISO_EFI_EXTRA_MODULES].concat();
            let grub_efi = Self::grub_efi(&imager, arch, grub::ISO_EFI_PREFIX, modules).await?;
            (Vec::new(), Vec::new(), grub_efi)
        } else {
            let uki = self
                .assemble_uki(
                    plan,
                    kernel.clone(),
                    initramfs.clone(),
                    Some(uki::RESET_SYSTEM_DISK),
                )
                .await?;
            let sd_boot =
                Self::imager_file(&imager, &format!("usr/install/{arch}/systemd-boot.efi"))?;
            (uki, sd_boot, Vec::new())
        };
        let bios = if arch == Arch::Amd64 && boot != IsoBoot::Uefi {
            let (boot_hybrid_img, eltorito_img) =
                Self::grub_bios(&imager, "boot_hybrid.img", |files| {
                    let modules = [grub::BIOS_MODULES, grub::ISO_MODULES].concat();
                    grub::eltorito_image(files, grub::ISO_PREFIX, &modules, None)
                })
                .await?;
            Some(BiosEltorito {
                eltorito_img,
                boot_hybrid_img,
            })
        } else {
            None
        };
        let inputs = IsoInputs {
            arch,
            version: request.version.clone(),
            boot,
            kernel: kernel.into(),
            initramfs: initramfs.into(),
            cmdline: plan.cmdline.clone(),
            sd_boot: sd_boot.into(),
            uki: uki.into(),
            grub_efi: grub_efi.into(),
            bios,
            mtime: SOURCE_DATE_EPOCH,
        };
        tokio::task::spawn_blocking(move || iso::build(&inputs))
            .await
            .map_err(|error| ServiceError::Task(error.to_string()))?
            .map_err(ServiceError::from)
    }

    /// The UKI of `plan`, with an extra boot profile for disk images and installers.
    async fn uki(
        &self,
        plan: &Plan,
        extra: Option<uki::ExtraProfile>,
    ) -> Result<Vec<u8>, ServiceError> {
        let arch = plan.request.path.arch.as_str();
        let initramfs = self.initramfs(plan).await?;
        let imager = self.imager(&plan.imager).await?;
        let kernel = Self::imager_file(&imager, &format!("usr/install/{arch}/vmlinuz"))?;
        self.assemble_uki(plan, kernel, initramfs, extra).await
    }

    async fn assemble_uki(
        &self,
        plan: &Plan,
        kernel: Vec<u8>,
        initramfs: Vec<u8>,
        extra: Option<uki::ExtraProfile>,
    ) -> Result<Vec<u8>, ServiceError> {
        let arch = plan.request.path.arch.as_str();
        let imager = self.imager(&plan.imager).await?;
        let stub = Self::imager_file(&imager, &format!("usr/install/{arch}/systemd-stub.efi"))?;
        let version = plan.request.version.clone();
        let cmdline = plan.cmdline.clone();
        tokio::task::spawn_blocking(move || {
            let sections = uki::talos_sections(&version, &cmdline, kernel, initramfs, extra);
            uki::assemble(&stub, &sections)
        })
        .await
        .map_err(|error| ServiceError::Task(error.to_string()))?
        .map_err(ServiceError::from)
    }

    /// The release's initramfs with the schematic's extensions appended.
    async fn initramfs(&self, plan: &Plan) -> Result<Vec<u8>, ServiceError> {
        let request = &plan.request;
        let arch = request.path.arch.as_str();
        let version = request.version.clone();
        let imager = self.imager(&plan.imager).await?;
        let base = Self::imager_file(&imager, &format!("usr/install/{arch}/initramfs.xz"))?;
        let mut set = ExtensionSet::default();
        for (name, image) in &plan.extensions {
            let pulled = self.images.pull(image, arch).await?;
            let checked_out = extension::checkout(name, &pulled.tree)?;
            if !checked_out
                .manifest
                .compatible_with(&version)
                .map_err(|error| {
                    refused(
                        ErrorKind::InvalidInput,
                        format!("extension {name}: {error}"),
                    )
                })?
            {
                return Err(ServiceError::Engine(
                    crate::engine::EngineError::Incompatible {
                        extension: name.clone(),
                        version: version.tag(),
                        range: checked_out
                            .manifest
                            .compatibility
                            .clone()
                            .unwrap_or_default(),
                    },
                ));
            }
            set.extensions.push(checked_out);
        }
        set.extensions.push(extension::schematic_extension(
            &request.schematic_id.to_string(),
            &request.canonical,
            &self.config.http.external_url,
            &version,
        ));
        let config = &request
            .schematic
            .customization
            .embedded_machine_configuration;
        if !config.is_empty() {
            set.extensions
                .push(extension::embedded_config_extension(config));
        }
        tokio::task::spawn_blocking(move || {
            set.modules_dep = crate::engine::initramfs::modules::modules_dep_extension(
                &base,
                &version,
                &set.extensions,
            )?;
            initramfs::build(&base, &version, &set)
        })
        .await
        .map_err(|error| ServiceError::Task(error.to_string()))?
        .map_err(ServiceError::from)
    }
}
