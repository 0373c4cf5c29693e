//! Profiles: what to build, derived from an asset path (upstream's path grammar), a Talos
//! version (its quirks) and a schematic; plus the kernel command line and the cache key.
//!
//! Pure: no I/O, no async.

pub mod cmdline;
mod platform;

pub use crate::version::TalosVersion;
pub use platform::{PLATFORMS, Platform, platform};

use crate::schematic::{MetaValue, Schematic};
use base64::Engine;
use std::fmt;

pub use crate::size::MIB;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    /// Accepts upstream's aliases (`x86_64`, `i386` → amd64).
    pub fn parse(text: &str) -> Result<Arch, ProfileError> {
        match text {
            "amd64" | "x86_64" | "i386" => Ok(Arch::Amd64),
            "arm64" => Ok(Arch::Arm64),
            other => Err(ProfileError::InvalidArch(other.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputKind {
    Kernel,
    Cmdline,
    Initramfs,
    Iso,
    Uki,
    Installer,
    Image,
}

impl OutputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::Kernel => "kernel",
            OutputKind::Cmdline => "cmdline",
            OutputKind::Initramfs => "initramfs",
            OutputKind::Iso => "iso",
            OutputKind::Uki => "uki",
            OutputKind::Installer => "installer",
            OutputKind::Image => "image",
        }
    }
}

/// Compression applied to the finished asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutFormat {
    Raw,
    TarGz,
    Gz,
    Xz,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskFormat {
    Raw,
    Qcow2,
    Vhd,
    Ova,
}

/// Disk image options from the path and the platform's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageOptions {
    pub disk_size: u64,
    pub disk_format: DiskFormat,
    pub disk_format_options: String,
}

/// What an asset path asks for (upstream's `ParseFromPath`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathProfile {
    pub kind: OutputKind,
    pub platform: String,
    pub arch: Arch,
    pub secureboot: bool,
    pub out_format: OutFormat,
    pub image: Option<ImageOptions>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("error parsing profile from path: invalid architecture: {0:?}")]
    InvalidArch(String),
    #[error("error parsing profile from path: invalid platform-arch: {0:?}")]
    InvalidPlatformArch(String),
    #[error("error parsing profile from path: invalid profile path: {0:?}")]
    InvalidPath(String),
    #[error("{0}")]
    Unsupported(String),
}

impl crate::error::Classify for ProfileError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::InvalidInput
    }
}

/// `<platform>-<arch>[-secureboot]`, with `digital-ocean-<arch>` as the one platform that
/// holds a dash.
fn platform_arch(text: &str) -> Result<(String, Arch, bool), ProfileError> {
    let (text, secureboot) = match text.strip_suffix("-secureboot") {
        Some(rest) => (rest, true),
        None => (text, false),
    };
    if let Some(arch) = text.strip_prefix("digital-ocean-") {
        return Ok(("digital-ocean".into(), Arch::parse(arch)?, secureboot));
    }
    let (platform, arch) = text
        .split_once('-')
        .ok_or_else(|| ProfileError::InvalidPlatformArch(text.to_string()))?;
    Ok((platform.to_string(), Arch::parse(arch)?, secureboot))
}

/// Parses an asset path, rules in upstream's order (first match wins).
pub fn parse_path(path: &str) -> Result<PathProfile, ProfileError> {
    let simple = |kind, platform: String, arch, secureboot| PathProfile {
        kind,
        platform,
        arch,
        secureboot,
        out_format: OutFormat::Raw,
        image: None,
    };
    if let Some(arch) = path.strip_prefix("kernel-") {
        return Ok(simple(
            OutputKind::Kernel,
            "metal".into(),
            Arch::parse(arch)?,
            false,
        ));
    }
    if let Some(rest) = path.strip_prefix("cmdline-") {
        let (platform, arch, secureboot) = platform_arch(rest)?;
        return Ok(simple(OutputKind::Cmdline, platform, arch, secureboot));
    }
    if let Some(arch) = path
        .strip_prefix("initramfs-")
        .and_then(|rest| rest.strip_suffix(".xz"))
    {
        return Ok(simple(
            OutputKind::Initramfs,
            "metal".into(),
            Arch::parse(arch)?,
            false,
        ));
    }
    if let Some(rest) = path.strip_suffix(".iso") {
        let (platform, arch, secureboot) = platform_arch(rest)?;
        return Ok(simple(OutputKind::Iso, platform, arch, secureboot));
    }
    if let Some(rest) = path.strip_suffix("-uki.efi") {
        let (platform, arch, secureboot) = platform_arch(rest)?;
        return Ok(simple(OutputKind::Uki, platform, arch, secureboot));
    }
    if let Some(rest) = path
        .strip_prefix("installer-")
        .and_then(|rest| rest.strip_suffix(".tar"))
    {
        let (rest, secureboot) = match rest.strip_suffix("-secureboot") {
            Some(rest) => (rest, true),
            None => (rest, false),
        };
        return Ok(simple(
            OutputKind::Installer,
            "metal".into(),
            Arch::parse(rest)?,
            secureboot,
        ));
    }
    if let Some(rest) = path.strip_suffix(".tar")
        && let Some((platform, rest)) = rest.split_once("-installer-")
    {
        let (rest, secureboot) = match rest.strip_suffix("-secureboot") {
            Some(rest) => (rest, true),
            None => (rest, false),
        };
        return Ok(simple(
            OutputKind::Installer,
            platform.to_string(),
            Arch::parse(rest)?,
            secureboot,
        ));
    }

    // Disk images: compression, then disk format, then platform-arch.
    let (rest, out_format) = [
        (".tar.gz", OutFormat::TarGz),
        (".gz", OutFormat::Gz),
        (".xz", OutFormat::Xz),
        (".zst", OutFormat::Zstd),
    ]
    .iter()
    .find_map(|(suffix, format)| path.strip_suffix(suffix).map(|rest| (rest, *format)))
    .unwrap_or((path, OutFormat::Raw));
    let (rest, disk_format) = [
        (".raw", DiskFormat::Raw),
        (".qcow2", DiskFormat::Qcow2),
        (".vhd", DiskFormat::Vhd),
        (".ova", DiskFormat::Ova),
    ]
    .iter()
    .find_map(|(suffix, format)| rest.strip_suffix(suffix).map(|rest| (rest, *format)))
    .ok_or_else(|| ProfileError::InvalidPath(rest.to_string()))?;
    let (platform, arch, secureboot) = platform_arch(rest)?;
    let mut image = ImageOptions {
        disk_size: 8192 * MIB,
        disk_format,
        disk_format_options: if disk_format == DiskFormat::Qcow2 {
            "cluster_size=8k".into()
        } else {
            String::new()
        },
    };
    if let Some(defaults) = platform::platform(&platform) {
        if defaults.disk_size != 0 {
            image.disk_size = defaults.disk_size;
        }
        if !defaults.disk_format_options.is_empty() {
            image.disk_format_options = defaults.disk_format_options.to_string();
        }
    }
    Ok(PathProfile {
        kind: OutputKind::Image,
        platform,
        arch,
        secureboot,
        out_format,
        image: Some(image),
    })
}

/// Talos's default kernel arguments, in order, for a version.
fn default_args(version: &TalosVersion) -> Vec<&'static str> {
    let mut args = Vec::new();
    if !version.at_least(1, 14, 0) {
        args.push("init_on_alloc=1");
    }
    args.extend(["slab_nomerge=", "pti=on", "consoleblank=0"]);
    if !version.at_least(1, 14, 0) {
        args.push("nvme_core.io_timeout=4294967295");
    }
    args.push("printk.devkmsg=on");
    if !version.at_least(1, 11, 0) {
        args.extend(["ima_template=ima-ng", "ima_appraise=fix", "ima_hash=sha512"]);
    }
    if version.at_least(1, 10, 0) {
        args.push("selinux=1");
    }
    if version.at_least(1, 12, 0) {
        args.push("module.sig_enforce=1");
    }
    if version.at_least(1, 13, 0) {
        args.push("proc_mem.force_override=never");
    }
    args
}

/// `talos.environment=INSTALLER_META_BASE64=…`: `0x<key>=<value>` pairs joined by `;`,
/// gzip'ed first when longer than 256 bytes (Talos ≥ 1.6.3), then base64.
pub fn meta_environment(meta: &[MetaValue], version: &TalosVersion) -> String {
    let text = meta
        .iter()
        .map(|value| format!("0x{:x}={}", value.key, value.value))
        .collect::<Vec<_>>()
        .join(";");
    let bytes = if text.len() > 256 && version.at_least(1, 6, 3) {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut encoder, text.as_bytes())
            .and_then(|()| encoder.finish())
            .unwrap_or_else(|_| text.clone().into_bytes())
    } else {
        text.into_bytes()
    };
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The kernel command line of an asset (upstream's `buildCmdline`, then the schematic's args).
pub fn kernel_cmdline(
    path: &PathProfile,
    version: &TalosVersion,
    overlay_args: &[String],
    meta: &[MetaValue],
    extra_args: &[String],
) -> String {
    let mut cmdline = cmdline::Cmdline::default();
    let platform_name = if path.platform == "packet" {
        "equinixMetal"
    } else {
        path.platform.as_str()
    };
    cmdline.append("talos.platform", platform_name);
    cmdline.set_all(&platform::kernel_args(platform_name, path.arch, version));
    if path.kind == OutputKind::Iso && version.at_least(1, 8, 0) {
        cmdline.append("talos.halt_if_installed", "1");
    }
    for arg in overlay_args {
        cmdline.set_all(arg);
    }
    cmdline.append_all(&default_args(version).join(" "));
    if path.secureboot && !version.at_least(1, 14, 0) {
        cmdline.append("lockdown", "confidentiality");
    }
    if !meta.is_empty() && path.kind != OutputKind::Image {
        cmdline.append(
            "talos.environment",
            &format!("INSTALLER_META_BASE64={}", meta_environment(meta, version)),
        );
    }
    cmdline.merge_extra(extra_args);
    cmdline.render()
}

/// Which schematic parts apply to an asset kind (upstream's enhancement rules).
pub fn schematic_args<'a>(
    schematic: &'a Schematic,
    path: &PathProfile,
    version: &TalosVersion,
) -> (&'a [String], &'a [MetaValue]) {
    let customization = &schematic.customization;
    let args: &[String] = match path.kind {
        OutputKind::Kernel | OutputKind::Initramfs => &[],
        OutputKind::Installer | OutputKind::Uki
            if !(path.secureboot || version.at_least(1, 10, 0)) =>
        {
            &[]
        }
        _ => &customization.extra_kernel_args,
    };
    let meta: &[MetaValue] = match path.kind {
        OutputKind::Iso | OutputKind::Image | OutputKind::Cmdline => &customization.meta,
        _ => &[],
    };
    (args, meta)
}

#[cfg(test)]
mod tests;
