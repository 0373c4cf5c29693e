//! The schematic document: every field a user can set, in the order that the canonical form
//! (and so the ID) depends on.

use super::value::Value;
use crate::yaml::emit::Emit;
use std::fmt;

/// A schematic: the user's customisation of a Talos image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schematic {
    /// Owning account; only meaningful with authentication, rejected otherwise.
    pub owner: String,
    pub overlay: Overlay,
    pub customization: Customization,
}

/// A board overlay (Raspberry Pi, Rock Pi, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overlay {
    pub image: String,
    pub name: String,
    /// Free-form options passed to the overlay installer, keyed by string; `None` when absent.
    pub options: Vec<(String, Value)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Customization {
    pub embedded_machine_configuration: String,
    pub extra_kernel_args: Vec<String>,
    pub meta: Vec<MetaValue>,
    pub system_extensions: SystemExtensions,
    pub bootloader: Bootloader,
    pub secureboot: SecureBootCustomization,
    pub disk_image: DiskImageCustomization,
}

/// One initial value of the Talos META partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaValue {
    pub key: u8,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemExtensions {
    /// Extension image names; the order is part of the ID.
    pub official_extensions: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecureBootCustomization {
    /// Validated only when an image is built (`if-safe`, `manual`, `force`, `off`).
    pub enroll_keys: String,
    pub include_well_known_certificates: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskImageCustomization {
    /// Logical sector size of disk images; 0 means the default (512).
    pub sector_size: u64,
}

/// Which bootloader disk images use; `None` lets the Talos version decide.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Bootloader {
    #[default]
    None,
    DualBoot,
    SdBoot,
    Grub,
}

impl Bootloader {
    pub const ALL: [Bootloader; 4] = [
        Bootloader::None,
        Bootloader::DualBoot,
        Bootloader::SdBoot,
        Bootloader::Grub,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Bootloader::None => "none",
            Bootloader::DualBoot => "dual-boot",
            Bootloader::SdBoot => "sd-boot",
            Bootloader::Grub => "grub",
        }
    }

    /// Case-insensitive, as upstream's enum parser.
    pub fn parse(text: &str) -> Option<Bootloader> {
        let lower = text.to_lowercase();
        Bootloader::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text || kind.as_str() == lower)
    }
}

impl fmt::Display for Bootloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn key(name: &str) -> Emit {
    Emit::Str(name.to_string())
}

fn strings(items: &[String]) -> Emit {
    Emit::Seq(items.iter().cloned().map(Emit::Str).collect())
}

impl Schematic {
    /// The document tree that the canonical form is written from, with upstream's
    /// omission rules applied (`customization` is the one field that is always present).
    pub fn to_emit(&self) -> Emit {
        let mut root = Vec::new();
        if !self.owner.is_empty() {
            root.push((key("owner"), Emit::Str(self.owner.clone())));
        }
        if !self.overlay.is_zero() {
            let mut overlay = vec![
                (key("image"), Emit::Str(self.overlay.image.clone())),
                (key("name"), Emit::Str(self.overlay.name.clone())),
            ];
            if !self.overlay.options.is_empty() {
                let options = self
                    .overlay
                    .options
                    .iter()
                    .map(|(name, value)| (Emit::Str(name.clone()), value.to_emit()))
                    .collect();
                overlay.push((key("options"), Emit::Map(options)));
            }
            root.push((key("overlay"), Emit::Map(overlay)));
        }
        root.push((key("customization"), self.customization.to_emit()));
        Emit::Map(root)
    }
}

impl Overlay {
    pub fn is_zero(&self) -> bool {
        self.image.is_empty() && self.name.is_empty() && self.options.is_empty()
    }
}

impl Customization {
    fn to_emit(&self) -> Emit {
        let mut fields = Vec::new();
        if !self.embedded_machine_configuration.is_empty() {
            fields.push((
                key("embeddedMachineConfiguration"),
                Emit::Str(self.embedded_machine_configuration.clone()),
            ));
        }
        if !self.extra_kernel_args.is_empty() {
            fields.push((key("extraKernelArgs"), strings(&self.extra_kernel_args)));
        }
        if !self.meta.is_empty() {
            let items = self
                .meta
                .iter()
                .map(|meta| {
                    Emit::Map(vec![
                        (key("key"), Emit::Uint(u64::from(meta.key))),
                        (key("value"), Emit::Str(meta.value.clone())),
                    ])
                })
                .collect();
            fields.push((key("meta"), Emit::Seq(items)));
        }
        if !self.system_extensions.official_extensions.is_empty() {
            fields.push((
                key("systemExtensions"),
                Emit::Map(vec![(
                    key("officialExtensions"),
                    strings(&self.system_extensions.official_extensions),
                )]),
            ));
        }
        if self.bootloader != Bootloader::None {
            fields.push((key("bootloader"), Emit::Str(self.bootloader.to_string())));
        }
        let secureboot = &self.secureboot;
        if !secureboot.enroll_keys.is_empty() || secureboot.include_well_known_certificates {
            let mut children = Vec::new();
            if !secureboot.enroll_keys.is_empty() {
                children.push((key("enrollKeys"), Emit::Str(secureboot.enroll_keys.clone())));
            }
            if secureboot.include_well_known_certificates {
                children.push((key("includeWellKnownCertificates"), Emit::Bool(true)));
            }
            fields.push((key("secureboot"), Emit::Map(children)));
        }
        if self.disk_image.sector_size != 0 {
            fields.push((
                key("diskImage"),
                Emit::Map(vec![(
                    key("sectorSize"),
                    Emit::Uint(self.disk_image.sector_size),
                )]),
            ));
        }
        Emit::Map(fields)
    }
}
