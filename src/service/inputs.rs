//! Gathering what the engine builds from: files of the release's imager (kept flattened per
//! version), the initramfs with the schematic's extensions, UKIs with systemd-boot, and
//! GRUB's images. Every engine call runs on the blocking pool.

use super::plan::Plan;
use super::{Factory, ServiceError, refused};
use crate::engine::EngineError;
use crate::engine::boot::authenticode;
use crate::engine::boot::enrollment;
use crate::engine::boot::grub;
use crate::engine::boot::loader::Enrollment;
use crate::engine::boot::uki;
use crate::engine::initramfs::extension;
use crate::engine::initramfs::{self, ExtensionSet};
use crate::error::ErrorKind;
use crate::profile::Arch;
use crate::sign::secureboot::SecureBootKeys;
use crate::source::{FileTree, ImageRef};
use der::Encode;
use std::sync::Arc;

/// How many flattened imagers stay in memory.
const KEPT_IMAGERS: usize = 3;

/// The flattened imager of a plan's version and the image it came from.
#[derive(Debug, Clone)]
pub(super) struct Imager {
    image: ImageRef,
    tree: Arc<FileTree>,
}

impl Imager {
    /// A file of the imager; a release without it is broken, not the request.
    pub fn file(&self, path: &str) -> Result<Vec<u8>, ServiceError> {
        self.tree
            .file(path)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| ServiceError::MissingFromRelease {
                image: self.image.to_string(),
                path: path.to_string(),
            })
    }

    /// `usr/install/<arch>/<name>`: the boot assets of one architecture.
    pub fn install_file(&self, arch: Arch, name: &str) -> Result<Vec<u8>, ServiceError> {
        self.file(&format!("usr/install/{arch}/{name}"))
    }

    pub fn kernel(&self, arch: Arch) -> Result<Vec<u8>, ServiceError> {
        self.install_file(arch, "vmlinuz")
    }

    /// systemd-boot, the loader of every UKI-booting layout.
    pub fn sd_boot(&self, arch: Arch) -> Result<Vec<u8>, ServiceError> {
        self.install_file(arch, "systemd-boot.efi")
    }
}

/// A kernel and the initramfs built for a plan.
#[derive(Debug)]
pub(super) struct BootPayload {
    pub kernel: Vec<u8>,
    pub initramfs: Vec<u8>,
}

impl Factory {
    /// The flattened imager of a version (both architectures' boot assets), kept for reuse.
    pub(super) async fn imager(&self, plan: &Plan) -> Result<Imager, ServiceError> {
        let image = &plan.imager;
        let name = image.to_string();
        let mut cached = self.builds.imagers.lock().await;
        let tree = match cached.iter().find(|(cached_name, _)| *cached_name == name) {
            Some((_, tree)) => tree.clone(),
            None => {
                let pulled = self.images.pull(image, "amd64").await?;
                let tree = Arc::new(pulled.tree);
                cached.push((name, tree.clone()));
                if cached.len() > KEPT_IMAGERS {
                    cached.remove(0);
                }
                tree
            }
        };
        Ok(Imager {
            image: image.clone(),
            tree,
        })
    }

    /// The kernel of the plan's architecture and the initramfs with its extensions.
    pub(super) async fn boot_payload(&self, plan: &Plan) -> Result<BootPayload, ServiceError> {
        let initramfs = self.initramfs(plan).await?;
        let kernel = self.imager(plan).await?.kernel(plan.request.path.arch)?;
        Ok(BootPayload { kernel, initramfs })
    }

    /// The keys of a Secure Boot plan; `None` for other plans.
    fn signing_keys(&self, plan: &Plan) -> Result<Option<Arc<SecureBootKeys>>, ServiceError> {
        if plan.secure_boot.is_none() {
            return Ok(None);
        }
        self.secure_boot
            .clone()
            .map(Some)
            .ok_or(ServiceError::IncompletePlan(
                "a Secure Boot plan on a factory without keys",
            ))
    }

    /// The UKI of `plan` (with an extra boot profile for disk images, ISOs and installers)
    /// and the systemd-boot that loads it, both signed for Secure Boot plans.
    pub(super) async fn uki_with_loader(
        &self,
        plan: &Plan,
        payload: &BootPayload,
        extra: uki::ExtraProfile,
    ) -> Result<(Vec<u8>, Vec<u8>), ServiceError> {
        let uki = self
            .uki(
                plan,
                payload.kernel.clone(),
                payload.initramfs.clone(),
                Some(extra),
            )
            .await?;
        let sd_boot = self.imager(plan).await?.sd_boot(plan.request.path.arch)?;
        let sd_boot = match self.signing_keys(plan)? {
            Some(keys) => {
                tokio::task::spawn_blocking(move || {
                    authenticode::sign(&sd_boot, keys.signer.as_ref())
                })
                .await??
            }
            None => sd_boot,
        };
        Ok((uki, sd_boot))
    }

    /// What the ESP of a Secure Boot plan enrolls: the factory's signing certificate in PK,
    /// KEK and db (with Microsoft's if the schematic asks), and systemd-boot's mode.
    pub(super) async fn enrollment(&self, plan: &Plan) -> Result<Option<Enrollment>, ServiceError> {
        let (Some(keys), Some(secure_boot)) = (self.signing_keys(plan)?, plan.secure_boot.clone())
        else {
            return Ok(None);
        };
        let include_well_known = secure_boot.include_well_known;
        let certificate_der =
            keys.signer
                .certificate()
                .to_der()
                .map_err(|error| EngineError::BrokenFile {
                    what: "signing certificate",
                    reason: error.to_string(),
                })?;
        let databases =
            tokio::task::spawn_blocking(move || enrollment::databases(&keys, include_well_known))
                .await??;
        Ok(Some(Enrollment {
            mode: secure_boot.enroll,
            certificate_der: certificate_der.into(),
            pk: databases.pk.into(),
            kek: databases.kek.into(),
            db: databases.db.into(),
        }))
    }

    /// A UKI of the release's stub, the plan's command line and `payload`; for Secure Boot
    /// with the PCR policy signatures, and signed.
    pub(super) async fn uki(
        &self,
        plan: &Plan,
        kernel: Vec<u8>,
        initramfs: Vec<u8>,
        extra: Option<uki::ExtraProfile>,
    ) -> Result<Vec<u8>, ServiceError> {
        let stub = self
            .imager(plan)
            .await?
            .install_file(plan.request.path.arch, "systemd-stub.efi")?;
        let version = plan.request.version.clone();
        let cmdline = plan.cmdline.clone();
        let keys = self.signing_keys(plan)?;
        Ok(tokio::task::spawn_blocking(move || {
            let sections = uki::talos_sections(&version, &cmdline, kernel, initramfs, extra);
            match keys {
                Some(keys) => {
                    let sections = uki::with_pcr_signatures(sections, &stub, &keys.pcr_key)?;
                    authenticode::sign(&uki::assemble(&stub, &sections)?, keys.signer.as_ref())
                }
                None => uki::assemble(&stub, &sections),
            }
        })
        .await??)
    }

    /// The release's initramfs with the schematic's extensions appended.
    pub(super) async fn initramfs(&self, plan: &Plan) -> Result<Vec<u8>, ServiceError> {
        let request = &plan.request;
        let arch = request.path.arch;
        let version = request.version.clone();
        let base = self
            .imager(plan)
            .await?
            .install_file(arch, "initramfs.xz")?;
        let mut set = ExtensionSet::default();
        for (name, image) in &plan.extensions {
            let pulled = self.images.pull(image, arch.as_str()).await?;
            let checked_out = extension::checkout(name, &pulled.tree)?;
            let compatible = checked_out
                .manifest
                .compatible_with(&version)
                .map_err(|reason| {
                    refused(
                        ErrorKind::InvalidInput,
                        format!("extension {name}: {reason}"),
                    )
                })?;
            if !compatible {
                return Err(EngineError::Incompatible {
                    extension: name.clone(),
                    version: version.tag(),
                    range: checked_out
                        .manifest
                        .compatibility
                        .clone()
                        .unwrap_or_default(),
                }
                .into());
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
        let imager = plan.imager.to_string();
        tokio::task::spawn_blocking(move || {
            set.modules_dep = crate::engine::initramfs::modules::modules_dep_extension(
                &base,
                &version,
                &set.extensions,
            )
            .map_err(|error| match error {
                // The engine does not know images; the refusal must name the one at fault.
                EngineError::Expands { what, limit } => {
                    ServiceError::from(crate::source::SourceError::Expands {
                        image: imager,
                        entry: format!("usr/install/{arch}/initramfs.xz ({what})"),
                        limit,
                    })
                }
                other => other.into(),
            })?;
            Ok(initramfs::build(&base, &version, &set)?)
        })
        .await?
    }

    /// GRUB's EFI application for `arch` from the imager's GRUB directory.
    pub(super) async fn grub_efi(
        &self,
        plan: &Plan,
        prefix: &'static str,
        modules: &'static [&'static str],
    ) -> Result<Vec<u8>, ServiceError> {
        let imager = self.imager(plan).await?;
        let efi = grub::EfiArch::from(plan.request.path.arch);
        Ok(tokio::task::spawn_blocking(move || {
            let dir = format!("usr/lib/grub/{}", efi.platform());
            let files = |name: &str| {
                imager
                    .tree
                    .file(&format!("{dir}/{name}"))
                    .map(<[u8]>::to_vec)
            };
            grub::efi_image(efi, &files, prefix, modules)
        })
        .await??)
    }

    /// GRUB for BIOS from the imager's i386-pc directory: the boot sector `boot_file` and the
    /// image `build` makes from the modules.
    pub(super) async fn grub_bios(
        &self,
        plan: &Plan,
        boot_file: &'static str,
        build: impl FnOnce(&dyn Fn(&str) -> Option<Vec<u8>>) -> Result<Vec<u8>, EngineError>
        + Send
        + 'static,
    ) -> Result<(Vec<u8>, Vec<u8>), ServiceError> {
        let imager = self.imager(plan).await?;
        tokio::task::spawn_blocking(move || {
            let grub_dir = "usr/lib/grub/i386-pc";
            let boot = imager.file(&format!("{grub_dir}/{boot_file}"))?;
            let files = |name: &str| {
                imager
                    .tree
                    .file(&format!("{grub_dir}/{name}"))
                    .map(<[u8]>::to_vec)
            };
            Ok::<_, ServiceError>((boot, build(&files)?))
        })
        .await?
    }
}
