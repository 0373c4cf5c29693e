//! From an asset request to a plan: the stored schematic, the version and the profile of the
//! path, checked against what the version and this factory support; the exact input images
//! (pinned by digest), the kernel command line, the boot arrangement, the output container;
//! and the cache key all of that hashes to.

use super::overlay::OverlayPlan;
use super::{Factory, ServiceError, refused};
use crate::engine::boot::Bootloader;
use crate::engine::boot::loader::EnrollKeys;
use crate::engine::boot::pcr;
use crate::engine::layout::iso::IsoBoot;
use crate::engine::layout::output::Output;
use crate::error::ErrorKind;
use crate::profile::{self, Arch, OutputKind, PathProfile, TalosVersion};
use crate::schematic::{Schematic, SchematicId};
use crate::source::ImageRef;
use crate::source::oci::Digest;
use sha2::{Digest as _, Sha256};

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
const ENGINE_GENERATION: &str = "image-factory asset pipeline 3";

/// One asset to serve: the stored schematic, the version and what the path asks for.
#[derive(Debug, Clone)]
pub struct AssetRequest {
    pub schematic_id: SchematicId,
    pub schematic: Schematic,
    pub canonical: String,
    pub version: TalosVersion,
    pub path: PathProfile,
}

/// How a Secure Boot asset is signed and what its ESP enrolls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecureBootPlan {
    pub enroll: EnrollKeys,
    /// Microsoft's KEK and UEFI CA certificates beside the factory's in KEK and db.
    pub include_well_known: bool,
    /// SHA-256 of the signing certificate and the PCR public key: new keys, new assets.
    pub keys: String,
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
    /// The container and compression of a disk image.
    pub output: Option<Output>,
    /// The installer base an installer image extends.
    pub installer_base: Option<ImageRef>,
    /// Secure Boot assets only.
    pub secure_boot: Option<SecureBootPlan>,
    /// The schematic's board overlay (every kind but the kernel and the initramfs).
    pub overlay: Option<OverlayPlan>,
    pub key: String,
}

impl Factory {
    /// The plan of `path` for a stored schematic and a version, with upstream's statuses: an
    /// unknown schematic is a 404, a malformed version a 500, an unsupported request a 400.
    pub async fn resolve(
        &self,
        schematic: &str,
        version: &str,
        path: &str,
    ) -> Result<Plan, ServiceError> {
        let request = self.asset_request(schematic, version, path).await?;
        self.plan(request).await
    }

    async fn asset_request(
        &self,
        schematic: &str,
        version: &str,
        path: &str,
    ) -> Result<AssetRequest, ServiceError> {
        let not_found = || ServiceError::SchematicIdNotFound(schematic.into());
        let schematic_id: SchematicId = schematic.parse().map_err(|_| not_found())?;
        let canonical = self
            .stored_schematic(&schematic_id)
            .await?
            .ok_or_else(not_found)?;
        let parsed = Schematic::from_canonical(&canonical)?;
        let version = TalosVersion::parse(version)?;
        Ok(AssetRequest {
            schematic_id,
            schematic: parsed,
            canonical,
            version,
            path: profile::parse_path(path)?,
        })
    }

    /// Checks what a request asks for against the version and resolves its inputs.
    async fn plan(&self, request: AssetRequest) -> Result<Plan, ServiceError> {
        let version = &request.version;
        let tag = version.tag();
        let customization = &request.schematic.customization;
        let kind = request.path.kind;
        refuse_unsupported(&request, self.secure_boot.is_some())?;
        let secure_boot = self.secure_boot_plan(&request)?;
        self.catalogs.require_available(&version.version).await?;
        // Upstream builds the kernel and the initramfs without the overlay.
        let overlay = if matches!(kind, OutputKind::Kernel | OutputKind::Initramfs) {
            None
        } else {
            self.overlay_plan(&request.schematic, version).await?
        };
        let (bootloader, output) = match &request.path.image {
            Some(image) => {
                // The schematic's bootloader wins over the board profile's.
                let requested = match (customization.bootloader, &overlay) {
                    (crate::schematic::Bootloader::None, Some(overlay)) => {
                        overlay.profile.bootloader
                    }
                    (requested, _) => requested,
                };
                let bootloader = Bootloader::select(
                    requested,
                    request.path.secureboot,
                    request.path.arch,
                    version,
                );
                if let (Some(overlay), Bootloader::SdBoot) = (&overlay, bootloader) {
                    return Err(refused(
                        ErrorKind::InvalidInput,
                        format!(
                            "overlay {:?} needs a GRUB disk image (its installer runs only \
                             with the grub or dual-boot bootloader), but this one boots sd-boot",
                            overlay.name
                        ),
                    ));
                }
                let output = Output::of_image(image, request.path.out_format)?;
                check_sector_size(customization.disk_image.sector_size)?;
                (Some(bootloader), Some(output))
            }
            None => (None, None),
        };
        let iso_boot = (kind == OutputKind::Iso).then(|| {
            IsoBoot::select(
                customization.bootloader,
                request.path.secureboot,
                request.path.arch,
                version,
            )
        });
        let extensions = if matches!(kind, OutputKind::Kernel | OutputKind::Cmdline) {
            Vec::new()
        } else {
            self.official_extensions(&request).await?
        };

        let (args, meta) = profile::schematic_args(&request.schematic, &request.path, version);
        let board_args = overlay
            .as_ref()
            .map(|overlay| overlay.board.kernel_args.clone())
            .unwrap_or_default();
        let cmdline = profile::kernel_cmdline(&request.path, version, &board_args, meta, args);
        let components = &self.config.artifacts.core.components;
        let imager = self.catalogs.core_image(&components.imager, &tag);
        // From 1.10 installers extend `installer-base`; before, the full `installer`.
        let installer_base = (kind == OutputKind::Installer).then(|| {
            let base = if version.at_least(1, 10, 0) {
                &components.installer_base
            } else {
                &components.installer
            };
            self.catalogs.core_image(base, &tag)
        });
        let mut plan = Plan {
            request,
            imager,
            extensions,
            cmdline,
            bootloader,
            iso_boot,
            output,
            installer_base,
            secure_boot,
            overlay,
            key: String::new(),
        };
        plan.key = cache_key(&plan, &self.config.http.external_url);
        Ok(plan)
    }

    /// The signing of a Secure Boot request; `None` for every other one, whose schematic's
    /// Secure Boot options are ignored, as upstream ignores them.
    fn secure_boot_plan(
        &self,
        request: &AssetRequest,
    ) -> Result<Option<SecureBootPlan>, ServiceError> {
        let Some(keys) = self
            .secure_boot
            .as_ref()
            .filter(|_| request.path.secureboot)
        else {
            return Ok(None);
        };
        let options = &request.schematic.customization.secureboot;
        let enroll = EnrollKeys::parse(&options.enroll_keys).ok_or_else(|| {
            refused(
                ErrorKind::InvalidInput,
                format!(
                    "invalid secureboot.enrollKeys {:?}: if-safe, manual, force or off",
                    options.enroll_keys
                ),
            )
        })?;
        let pcr_public = pcr::public_key_pem(&keys.pcr_key)?;
        let mut hasher = Sha256::new();
        hasher.update(keys.certificate_pem.as_bytes());
        hasher.update(b"\0");
        hasher.update(pcr_public.as_bytes());
        Ok(Some(SecureBootPlan {
            enroll,
            include_well_known: options.include_well_known_certificates,
            keys: crate::hex::encode(&hasher.finalize()),
        }))
    }

    /// The schematic's official extensions in the version's catalog, pinned by digest.
    async fn official_extensions(
        &self,
        request: &AssetRequest,
    ) -> Result<Vec<(String, ImageRef)>, ServiceError> {
        let version = &request.version;
        let catalog = self.catalogs.extensions(&version.version).await?;
        let wanted = &request
            .schematic
            .customization
            .system_extensions
            .official_extensions;
        let mut extensions = Vec::new();
        for wanted in wanted {
            let alias = EXTENSION_ALIASES
                .iter()
                .find(|(old, _)| old == wanted)
                .map(|(_, new)| *new);
            let found = catalog
                .iter()
                .find(|entry| &entry.name == wanted)
                .or_else(|| {
                    alias.and_then(|alias| catalog.iter().find(|entry| entry.name == alias))
                })
                .ok_or_else(|| {
                    refused(
                        ErrorKind::InvalidInput,
                        format!(
                            "official extension {wanted:?} is not available for Talos version {}",
                            version.tag()
                        ),
                    )
                })?;
            let digest =
                Digest::parse(&found.digest).map_err(|reason| ServiceError::BrokenImage {
                    image: format!("extensions catalog entry {}", found.name),
                    reason,
                })?;
            let image = self
                .catalogs
                .core_image(&found.name, "pinned")
                .with_digest(digest);
            extensions.push((found.name.clone(), image));
        }
        Ok(extensions)
    }
}

/// Requests this factory or the version cannot serve, with upstream's messages.
fn refuse_unsupported(request: &AssetRequest, has_keys: bool) -> Result<(), ServiceError> {
    let version = &request.version;
    let tag = version.tag();
    let customization = &request.schematic.customization;
    let kind = request.path.kind;
    if request.path.secureboot && !has_keys {
        return Err(refused(
            ErrorKind::InvalidInput,
            "secure boot is disabled: this factory has no signing keys \
             (secureBoot.enabled with secureBoot.file.signingKeyPath, signingCertPath and pcrKeyPath)",
        ));
    }
    if request.path.secureboot && !version.at_least(1, 5, 0) {
        return Err(refused(
            ErrorKind::InvalidInput,
            format!("secure boot is not supported for Talos version {tag}"),
        ));
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
        if request.path.arch != Arch::Arm64
            && !matches!(kind, OutputKind::Kernel | OutputKind::Initramfs)
        {
            return Err(refused(
                ErrorKind::InvalidInput,
                format!(
                    "overlay {:?} is for arm64 boards; this asset is for {}",
                    request.schematic.overlay.name, request.path.arch
                ),
            ));
        }
    }
    if profile::platform(&request.path.platform).is_none() {
        return Err(refused(
            ErrorKind::InvalidInput,
            format!("unknown platform {:?}", request.path.platform),
        ));
    }
    Ok(())
}

fn check_sector_size(sector: u64) -> Result<(), ServiceError> {
    if matches!(sector, 0 | 512 | 4096) {
        return Ok(());
    }
    Err(refused(
        ErrorKind::InvalidInput,
        format!("disk image sector size {sector} is not supported (512 or 4096)"),
    ))
}

/// Everything the bytes of an asset depend on, hashed.
fn cache_key(plan: &Plan, external_url: &str) -> String {
    let request = &plan.request;
    let mut hasher = Sha256::new();
    for part in [
        ENGINE_GENERATION,
        request.path.kind.as_str(),
        &request.path.platform,
        request.path.arch.as_str(),
        &request.version.tag(),
        &plan.cmdline,
        &request.canonical,
        external_url,
        &plan.imager.to_string(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update(b"\0");
    }
    for (name, image) in &plan.extensions {
        hasher.update(format!("{name}={image}\0").as_bytes());
    }
    // The output container follows from the path, hashed above in full.
    hasher.update(
        format!(
            "{:?}\0{:?}\0{:?}\0{:?}\0{:?}\0{:?}\0",
            request.path,
            plan.bootloader,
            plan.iso_boot,
            plan.installer_base,
            plan.secure_boot,
            plan.overlay
        )
        .as_bytes(),
    );
    crate::hex::encode(&hasher.finalize())
}
