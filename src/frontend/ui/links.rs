//! The links of the result page: which assets apply to the choices (disk images in the
//! platform's format, ISO, PXE, boot files, UKI, installer references for install and
//! upgrade), each spelled from the configured external URLs, with what it is for.

use super::choices::{Choices, Target};
use crate::version::TalosVersion;

/// One downloadable asset or reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub label: String,
    /// What the asset is for.
    pub purpose: String,
    pub url: String,
    /// The asset path under `/image/<id>/<version>/`, when it is one (for checksums and
    /// the size once built).
    pub asset: Option<String>,
    /// How big it is, when the asset is already in the cache.
    pub size: Option<String>,
}

/// Platforms built for amd64 only.
const AMD64_ONLY: [&str; 6] = [
    "akamai",
    "cloudstack",
    "digital-ocean",
    "upcloud",
    "vultr",
    "alibabacloud",
];

/// Platforms whose images can boot with Secure Boot.
pub const SECURE_BOOT_PLATFORMS: [&str; 4] = ["metal", "aws", "azure", "gcp"];

/// The architectures a platform is built for.
pub fn architectures(target: Target, platform: &str) -> &'static [&'static str] {
    match target {
        Target::Sbc => &["arm64"],
        _ if AMD64_ONLY.contains(&platform) => &["amd64"],
        _ => &["amd64", "arm64"],
    }
}

/// The disk image format a platform's users upload, as upstream's wizard offers it.
fn disk_suffix(platform: &str, version: &TalosVersion) -> &'static str {
    match platform {
        "metal" | "opennebula" | "scaleway" if version.at_least(1, 8, 0) => "raw.zst",
        "aws" | "hcloud" | "nocloud" | "openstack" | "upcloud" | "vultr" | "metal"
        | "opennebula" | "scaleway" => "raw.xz",
        "azure" => "vhd.xz",
        "gcp" => "raw.tar.gz",
        "vmware" => "ova",
        "digital-ocean" | "akamai" | "cloudstack" => "raw.gz",
        "exoscale" | "oracle" | "alibabacloud" => "qcow2",
        _ => "raw.xz",
    }
}

/// `21.4 MB`-style sizes.
pub fn human_size(bytes: u64) -> String {
    let mut value = bytes as f64;
    let mut unit = None;
    for larger in ["kB", "MB", "GB", "TB"] {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = Some(larger);
    }
    match unit {
        None => format!("{bytes} bytes"),
        Some(unit) => format!("{value:.1} {unit}"),
    }
}

fn host_of(url: &str) -> &str {
    url.split_once("://")
        .map_or(url, |(_, rest)| rest)
        .trim_end_matches('/')
}

/// The Talos platform of the choices: a cloud's, else `metal` (boards included).
fn platform_of(choices: &Choices) -> &str {
    match choices.target {
        Target::Cloud => choices.platform.as_str(),
        _ => "metal",
    }
}

fn secureboot_suffix(choices: &Choices) -> &'static str {
    if choices.secureboot {
        "-secureboot"
    } else {
        ""
    }
}

/// Every link that applies; `external` and `pxe` are the factory's external URLs.
pub fn links(
    choices: &Choices,
    id: &str,
    version: &TalosVersion,
    external: &str,
    pxe: &str,
) -> Vec<Link> {
    let tag = version.tag();
    let base = external.trim_end_matches('/');
    let image = |path: &str| format!("{base}/image/{id}/{tag}/{path}");
    let arch = choices.arch.as_str();
    let (platform, sb) = (platform_of(choices), secureboot_suffix(choices));
    let mut links = Vec::new();
    let mut asset = |label: &str, purpose: &str, path: String| {
        links.push(Link {
            label: label.into(),
            purpose: purpose.into(),
            url: image(&path),
            asset: Some(path),
            size: None,
        });
    };
    match choices.target {
        Target::Sbc => asset(
            "Disk image",
            "write it to the board's SD card or eMMC",
            "metal-arm64.raw.xz".into(),
        ),
        _ => {
            let suffix = disk_suffix(platform, version);
            asset(
                "Disk image",
                if choices.target == Target::Cloud {
                    "upload it to the cloud as the node's image"
                } else {
                    "write it to the node's disk"
                },
                format!("{platform}-{arch}{sb}.{suffix}"),
            );
            if choices.target == Target::Metal {
                asset(
                    "Disk image (qcow2)",
                    "for virtual machines",
                    format!("metal-{arch}{sb}.qcow2"),
                );
                asset(
                    "ISO",
                    "boot from USB or virtual media, then install",
                    format!("metal-{arch}{sb}.iso"),
                );
            }
        }
    }
    asset(
        "Kernel",
        "for PXE or a hypervisor's direct boot",
        format!("kernel-{arch}"),
    );
    asset(
        "Initramfs",
        "goes with the kernel",
        format!("initramfs-{arch}.xz"),
    );
    asset(
        "Kernel command line",
        "the arguments the kernel needs",
        format!("cmdline-{platform}-{arch}{sb}"),
    );
    asset(
        "UKI",
        "kernel, initramfs and command line in one EFI application",
        format!("{platform}-{arch}{sb}-uki.efi"),
    );
    let pxe_base = pxe.trim_end_matches('/');
    links.push(Link {
        label: "iPXE script".into(),
        purpose: "chain-load it from your PXE server".into(),
        url: format!("{pxe_base}/pxe/{id}/{tag}/{platform}-{arch}{sb}"),
        asset: None,
        size: None,
    });
    links
}

/// The installer image reference (for the machine configuration and for upgrades).
pub fn installer_reference(
    choices: &Choices,
    id: &str,
    version: &TalosVersion,
    external: &str,
) -> String {
    let (platform, sb) = (platform_of(choices), secureboot_suffix(choices));
    let image = if version.at_least(1, 10, 0) {
        format!("{platform}-installer{sb}")
    } else {
        format!("installer{sb}")
    };
    format!("{}/{image}/{id}:{}", host_of(external), version.tag())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> TalosVersion {
        TalosVersion::parse(text).unwrap()
    }

    #[test]
    fn metal_links_and_the_installer_reference() {
        let choices = Choices::parse("target=metal&arch=amd64");
        let v = version("v1.12.0");
        let links = links(
            &choices,
            "abc",
            &v,
            "https://f.example/",
            "https://pxe.example",
        );
        let urls: Vec<&str> = links.iter().map(|link| link.url.as_str()).collect();
        assert!(urls.contains(&"https://f.example/image/abc/v1.12.0/metal-amd64.raw.zst"));
        assert!(urls.contains(&"https://f.example/image/abc/v1.12.0/metal-amd64.iso"));
        assert!(urls.contains(&"https://pxe.example/pxe/abc/v1.12.0/metal-amd64"));
        assert_eq!(
            installer_reference(&choices, "abc", &v, "https://f.example/"),
            "f.example/metal-installer/abc:v1.12.0"
        );
        let old = version("v1.9.6");
        assert_eq!(
            installer_reference(&choices, "abc", &old, "https://f.example/"),
            "f.example/installer/abc:v1.9.6"
        );
        let sb = Choices::parse("target=cloud&platform=aws&arch=arm64&secureboot=on");
        let links = super::links(&sb, "abc", &v, "http://h/", "http://h/");
        assert!(
            links
                .iter()
                .any(|link| link.url.ends_with("/aws-arm64-secureboot.raw.xz"))
        );
        assert_eq!(human_size(999), "999 bytes");
        assert_eq!(human_size(21_443_636), "21.4 MB");
    }
}
