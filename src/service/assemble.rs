//! What each asset kind is built from and which engine layout builds it: the boot assets
//! whole, disk images, ISOs and installers as sparse images with their output encoding.

use super::builds::Built;
use super::plan::Plan;
use super::{Factory, ServiceError};
use crate::engine::SOURCE_DATE_EPOCH;
use crate::engine::boot::grub;
use crate::engine::boot::uki;
use crate::engine::boot::{BiosGrub, Bootloader};
use crate::engine::layout::disk::{self, DiskInputs};
use crate::engine::layout::installer;
use crate::engine::layout::iso::{self, BiosEltorito, IsoBoot, IsoInputs};
use crate::format::{Compression, SparseImage};
use crate::profile::{Arch, OutputKind};
use bytes::Bytes;

impl Factory {
    /// Runs the engine for `plan`.
    pub(super) async fn build(&self, plan: &Plan) -> Result<Built, ServiceError> {
        let arch = plan.request.path.arch;
        Ok(match plan.request.path.kind {
            OutputKind::Cmdline => Built::Bytes(plan.cmdline.clone().into_bytes()),
            OutputKind::Kernel => Built::Bytes(self.imager(plan).await?.kernel(arch)?),
            OutputKind::Initramfs => Built::Bytes(self.initramfs(plan).await?),
            OutputKind::Uki => {
                let payload = self.boot_payload(plan).await?;
                Built::Bytes(
                    self.uki(plan, payload.kernel, payload.initramfs, None)
                        .await?,
                )
            }
            OutputKind::Image => self.disk_image(plan).await?,
            OutputKind::Iso => Built::Image(self.iso_image(plan).await?, Compression::None),
            OutputKind::Installer => {
                let inputs = self.installer_inputs(plan).await?;
                let tarball =
                    tokio::task::spawn_blocking(move || installer::tarball(&inputs)).await??;
                Built::Image(tarball, Compression::None)
            }
        })
    }

    /// The disk image of `plan` in its container, and its compression.
    async fn disk_image(&self, plan: &Plan) -> Result<Built, ServiceError> {
        let request = &plan.request;
        let (Some(image), Some(output)) = (&request.path.image, plan.output) else {
            return Err(ServiceError::IncompletePlan(
                "a disk image without its options",
            ));
        };
        let bootloader = plan.bootloader.unwrap_or(Bootloader::SdBoot);
        let arch = request.path.arch;
        let payload = self.boot_payload(plan).await?;
        let uses_uki = bootloader != Bootloader::Grub;
        let uses_grub = bootloader != Bootloader::SdBoot;
        let (uki, sd_boot) = if uses_uki {
            let (uki, sd_boot) = self
                .uki_with_loader(plan, &payload, uki::RESET_MAINTENANCE)
                .await?;
            (uki.into(), sd_boot.into())
        } else {
            (Bytes::new(), Bytes::new())
        };
        let grub_efi = if bootloader == Bootloader::Grub {
            self.grub_efi(plan, grub::PREFIX, grub::COMMON_MODULES)
                .await?
                .into()
        } else {
            Bytes::new()
        };
        let bios = if uses_grub && arch == Arch::Amd64 {
            let (boot_img, core_img) = self
                .grub_bios(plan, "boot.img", |files| {
                    grub::bios_core_image(files, grub::PREFIX, grub::BIOS_MODULES)
                })
                .await?;
            Some(BiosGrub { boot_img, core_img })
        } else {
            None
        };
        let sector_size = match request.schematic.customization.disk_image.sector_size {
            0 => 512,
            other => other,
        };
        let disk_size = disk::disk_size(image.disk_size, bootloader, &request.version);
        let overlay = match &plan.overlay {
            Some(overlay) => Some(
                self.overlay_install(overlay, &request.schematic, disk_size)
                    .await?,
            ),
            None => None,
        };
        let (kernel, initramfs) = if uses_grub {
            (payload.kernel.into(), payload.initramfs.into())
        } else {
            (Bytes::new(), Bytes::new())
        };
        let disk = DiskInputs {
            arch,
            version: request.version.clone(),
            bootloader,
            disk_size,
            sector_size,
            sd_boot,
            uki,
            kernel,
            initramfs,
            cmdline: plan.cmdline.clone(),
            grub_efi,
            bios,
            meta: request.schematic.customization.meta.clone(),
            enrollment: self.enrollment(plan).await?,
            mtime: SOURCE_DATE_EPOCH,
            overlay,
        };
        let contained = tokio::task::spawn_blocking(move || {
            output.contain(disk::build(&disk)?, SOURCE_DATE_EPOCH)
        })
        .await??;
        Ok(Built::Image(contained, output.compression))
    }

    /// What the installer of `plan` is made of: the base image's config and layers, and the
    /// boot artifacts.
    pub(super) async fn installer_inputs(
        &self,
        plan: &Plan,
    ) -> Result<installer::InstallerInputs, ServiceError> {
        let request = &plan.request;
        let arch = request.path.arch;
        let base = plan
            .installer_base
            .clone()
            .ok_or(ServiceError::IncompletePlan(
                "an installer without a base image",
            ))?;
        let (config, layers) = self.images.image_parts(&base, arch.as_str()).await?;
        let broken = |reason: String| ServiceError::BrokenImage {
            image: base.to_string(),
            reason,
        };
        let base_config: serde_json::Value = serde_json::from_slice(&config)
            .map_err(|error| broken(format!("invalid image config: {error}")))?;
        let diff_ids: Vec<String> = base_config
            .get("rootfs")
            .and_then(|rootfs| rootfs.get("diff_ids"))
            .and_then(serde_json::Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if diff_ids.len() != layers.len() {
            return Err(broken(format!(
                "the config lists {} layers, the manifest {}",
                diff_ids.len(),
                layers.len()
            )));
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
        let payload = self.boot_payload(plan).await?;
        // From 1.10, and for Secure Boot, the installer carries the UKI and its loader;
        // before, the kernel and the initramfs.
        let boot = if request.version.at_least(1, 10, 0) || plan.secure_boot.is_some() {
            let (uki, sd_boot) = self
                .uki_with_loader(plan, &payload, uki::RESET_MAINTENANCE)
                .await?;
            installer::BootArtifacts::Uki {
                sd_boot: sd_boot.into(),
                uki: uki.into(),
                signed: plan.secure_boot.is_some(),
            }
        } else {
            installer::BootArtifacts::Kernel {
                kernel: payload.kernel.into(),
                initramfs: payload.initramfs.into(),
            }
        };
        let artifacts = installer::artifacts(arch, &request.version, boot);
        let overlay = self.overlay_layer(plan, arch).await?;
        Ok(installer::InstallerInputs {
            arch,
            reference: base.to_string(),
            base_config,
            base_layers,
            artifacts,
            overlay,
            created: i64::from(SOURCE_DATE_EPOCH),
        })
    }

    /// The ISO of `plan` as a sparse image.
    async fn iso_image(&self, plan: &Plan) -> Result<SparseImage, ServiceError> {
        let request = &plan.request;
        let boot = plan.iso_boot.ok_or(ServiceError::IncompletePlan(
            "an ISO without a boot arrangement",
        ))?;
        let arch = request.path.arch;
        let payload = self.boot_payload(plan).await?;
        let (uki, sd_boot, grub_efi) = if boot == IsoBoot::Grub {
            let grub_efi = self
                .grub_efi(plan, grub::ISO_EFI_PREFIX, grub::ISO_EFI_MODULES)
                .await?;
            (Vec::new(), Vec::new(), grub_efi)
        } else {
            let (uki, sd_boot) = self
                .uki_with_loader(plan, &payload, uki::RESET_SYSTEM_DISK)
                .await?;
            (uki, sd_boot, Vec::new())
        };
        let bios = if arch == Arch::Amd64 && boot != IsoBoot::Uefi {
            let (boot_hybrid_img, eltorito_img) = self
                .grub_bios(plan, "boot_hybrid.img", |files| {
                    grub::eltorito_image(files, grub::ISO_PREFIX, grub::ISO_BIOS_MODULES, None)
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
            kernel: payload.kernel.into(),
            initramfs: payload.initramfs.into(),
            cmdline: plan.cmdline.clone(),
            sd_boot: sd_boot.into(),
            uki: uki.into(),
            grub_efi: grub_efi.into(),
            bios,
            enrollment: self.enrollment(plan).await?,
            mtime: SOURCE_DATE_EPOCH,
        };
        Ok(tokio::task::spawn_blocking(move || iso::build(&inputs)).await??)
    }
}
