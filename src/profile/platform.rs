//! The platform table: every platform Talos builds for, its disk image defaults and the
//! kernel arguments it adds.

use super::{Arch, MIB, TalosVersion};

/// One platform's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    pub name: &'static str,
    /// Disk size of its built-in disk-image profile; 0 when it has none (8192 MiB applies).
    pub disk_size: u64,
    /// `diskFormatOptions` of its built-in profile.
    pub disk_format_options: &'static str,
}

const fn platform_entry(name: &'static str, mib: u64, options: &'static str) -> Platform {
    Platform {
        name,
        disk_size: mib * MIB,
        disk_format_options: options,
    }
}

/// Platforms the imager accepts, with the defaults of their built-in profiles.
pub const PLATFORMS: &[Platform] = &[
    platform_entry("metal", 1246, ""),
    platform_entry("akamai", 1246, ""),
    platform_entry("alibabacloud", 1246, "cluster_size=8k"),
    platform_entry("aws", 8192, ""),
    platform_entry("azure", 8192, "subformat=fixed,force_size"),
    platform_entry("cloudstack", 8192, ""),
    platform_entry("digital-ocean", 8192, ""),
    platform_entry("exoscale", 10240, "cluster_size=8k"),
    platform_entry("gcp", 8192, ""),
    platform_entry("hcloud", 1246, ""),
    platform_entry("nocloud", 1246, ""),
    platform_entry("opennebula", 1246, ""),
    platform_entry("openstack", 1246, ""),
    platform_entry("oracle", 8192, "cluster_size=8k"),
    platform_entry("scaleway", 1246, ""),
    platform_entry("upcloud", 8192, ""),
    platform_entry("vmware", 8192, ""),
    platform_entry("vultr", 8192, ""),
    // Valid platforms without a built-in disk-image profile.
    platform_entry("equinixMetal", 0, ""),
    platform_entry("packet", 0, ""),
    platform_entry("container", 0, ""),
];

/// The platform named exactly `name`, if Talos knows it.
pub fn platform(name: &str) -> Option<&'static Platform> {
    PLATFORMS.iter().find(|platform| platform.name == name)
}

/// The kernel arguments a platform adds after `talos.platform=`.
pub fn kernel_args(platform: &str, arch: Arch, version: &TalosVersion) -> String {
    let args = match (platform, arch) {
        ("metal", Arch::Amd64) if !version.at_least(1, 8, 0) => "console=ttyS0 console=tty0",
        ("metal", Arch::Amd64) => "console=tty0",
        ("metal", Arch::Arm64) => "console=ttyAMA0 console=tty0",
        ("akamai" | "digital-ocean", _) => "console=ttyS0 console=tty0 console=tty1 net.ifnames=0",
        (
            "alibabacloud" | "cloudstack" | "exoscale" | "hcloud" | "nocloud" | "opennebula"
            | "openstack",
            _,
        ) => "console=tty1 console=ttyS0 net.ifnames=0",
        ("aws", _) if version.at_least(1, 14, 0) => {
            "console=tty1 console=ttyS0 net.ifnames=0 nvme_core.io_timeout=4294967295"
        }
        ("aws", _) => "console=tty1 console=ttyS0 net.ifnames=0",
        ("azure", _) => {
            "console=ttyS0,115200n8 earlyprintk=ttyS0,115200 rootdelay=300 net.ifnames=0 talos.dashboard.disabled=1 sysctl.kernel.kexec_load_disabled=1"
        }
        ("gcp", _) => {
            "console=ttyS0 net.ifnames=0 talos.dashboard.disabled=1 sysctl.kernel.kexec_load_disabled=1"
        }
        ("oracle" | "scaleway", _) => {
            "console=tty1 console=ttyS0 net.ifnames=0 talos.dashboard.disabled=1"
        }
        ("upcloud" | "vultr", _) => "net.ifnames=0",
        ("vmware", Arch::Amd64) => {
            "talos.config=guestinfo console=tty0 console=ttyS0 earlyprintk=ttyS0,115200 net.ifnames=0"
        }
        ("vmware", Arch::Arm64) => {
            "talos.config=guestinfo console=tty0 console=ttyAMA0 net.ifnames=0"
        }
        ("equinixMetal" | "packet", Arch::Amd64) => "console=ttyS1,115200n8",
        ("equinixMetal" | "packet", Arch::Arm64) => "console=ttyAMA0,115200",
        _ => "",
    };
    args.to_string()
}
