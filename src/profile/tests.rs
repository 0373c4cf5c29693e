//! Table-driven tests of the path grammar and the command lines, with upstream's examples.

use super::*;
use crate::schematic::MetaValue;
use semver::Version;

fn version(text: &str) -> TalosVersion {
    TalosVersion::new(Version::parse(text).unwrap())
}

#[test]
fn path_grammar() {
    let cases: &[(&str, OutputKind, &str, Arch, bool, OutFormat)] = &[
        (
            "kernel-amd64",
            OutputKind::Kernel,
            "metal",
            Arch::Amd64,
            false,
            OutFormat::Raw,
        ),
        (
            "kernel-x86_64",
            OutputKind::Kernel,
            "metal",
            Arch::Amd64,
            false,
            OutFormat::Raw,
        ),
        (
            "cmdline-metal-amd64",
            OutputKind::Cmdline,
            "metal",
            Arch::Amd64,
            false,
            OutFormat::Raw,
        ),
        (
            "cmdline-aws-arm64-secureboot",
            OutputKind::Cmdline,
            "aws",
            Arch::Arm64,
            true,
            OutFormat::Raw,
        ),
        (
            "initramfs-arm64.xz",
            OutputKind::Initramfs,
            "metal",
            Arch::Arm64,
            false,
            OutFormat::Raw,
        ),
        (
            "metal-amd64.iso",
            OutputKind::Iso,
            "metal",
            Arch::Amd64,
            false,
            OutFormat::Raw,
        ),
        (
            "metal-amd64-secureboot.iso",
            OutputKind::Iso,
            "metal",
            Arch::Amd64,
            true,
            OutFormat::Raw,
        ),
        (
            "nocloud-amd64-uki.efi",
            OutputKind::Uki,
            "nocloud",
            Arch::Amd64,
            false,
            OutFormat::Raw,
        ),
        (
            "installer-arm64.tar",
            OutputKind::Installer,
            "metal",
            Arch::Arm64,
            false,
            OutFormat::Raw,
        ),
        (
            "installer-amd64-secureboot.tar",
            OutputKind::Installer,
            "metal",
            Arch::Amd64,
            true,
            OutFormat::Raw,
        ),
        (
            "aws-installer-amd64.tar",
            OutputKind::Installer,
            "aws",
            Arch::Amd64,
            false,
            OutFormat::Raw,
        ),
        (
            "metal-arm64.raw.xz",
            OutputKind::Image,
            "metal",
            Arch::Arm64,
            false,
            OutFormat::Xz,
        ),
        (
            "digital-ocean-amd64.raw.gz",
            OutputKind::Image,
            "digital-ocean",
            Arch::Amd64,
            false,
            OutFormat::Gz,
        ),
        (
            "gcp-amd64.raw.tar.gz",
            OutputKind::Image,
            "gcp",
            Arch::Amd64,
            false,
            OutFormat::TarGz,
        ),
        (
            "metal-amd64.raw.zst",
            OutputKind::Image,
            "metal",
            Arch::Amd64,
            false,
            OutFormat::Zstd,
        ),
    ];
    for (path, kind, platform, arch, secureboot, out_format) in cases {
        let parsed = parse_path(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            (
                parsed.kind,
                parsed.platform.as_str(),
                parsed.arch,
                parsed.secureboot,
                parsed.out_format
            ),
            (*kind, *platform, *arch, *secureboot, *out_format),
            "{path}"
        );
    }
}

#[test]
fn disk_image_options_come_from_the_platform_table() {
    let image = |path: &str| parse_path(path).unwrap().image.unwrap();
    assert_eq!(image("metal-arm64.raw.xz").disk_size, 1246 * MIB);
    let aws = image("aws-amd64-secureboot.qcow2.tar.gz");
    assert_eq!(
        (
            aws.disk_size,
            aws.disk_format,
            aws.disk_format_options.as_str()
        ),
        (8192 * MIB, DiskFormat::Qcow2, "cluster_size=8k")
    );
    let azure = image("azure-amd64.vhd");
    assert_eq!(
        (azure.disk_size, azure.disk_format_options.as_str()),
        (8192 * MIB, "subformat=fixed,force_size")
    );
    let exoscale = image("exoscale-amd64.raw.xz");
    assert_eq!(
        (exoscale.disk_size, exoscale.disk_format_options.as_str()),
        (10240 * MIB, "cluster_size=8k")
    );
    assert_eq!(image("equinixMetal-amd64.raw").disk_size, 8192 * MIB);
    assert_eq!(image("vmware-amd64.ova").disk_format, DiskFormat::Ova);
}

#[test]
fn path_errors_match_upstream() {
    let cases = [
        (
            "metal-amd64.ssd",
            "error parsing profile from path: invalid profile path: \"metal-amd64.ssd\"",
        ),
        (
            "metal-rpi_generic-arm64.raw.xz",
            "error parsing profile from path: invalid architecture: \"rpi_generic-arm64\"",
        ),
        (
            "kernel-riscv64",
            "error parsing profile from path: invalid architecture: \"riscv64\"",
        ),
        (
            "metal.iso",
            "error parsing profile from path: invalid platform-arch: \"metal\"",
        ),
        (
            "initramfs-amd64",
            "error parsing profile from path: invalid profile path: \"initramfs-amd64\"",
        ),
    ];
    for (path, message) in cases {
        assert_eq!(parse_path(path).unwrap_err().to_string(), message, "{path}");
    }
}

fn cmdline(path: &str, version_text: &str, meta: &[MetaValue], extra: &[&str]) -> String {
    let parsed = parse_path(path).unwrap();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    kernel_cmdline(&parsed, &version(version_text), &[], meta, &extra)
}

#[test]
fn default_command_lines_per_version() {
    let cases = [
        (
            "cmdline-metal-amd64",
            "1.11.0",
            "talos.platform=metal console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on selinux=1",
        ),
        (
            "cmdline-metal-amd64",
            "1.12.0",
            "talos.platform=metal console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on selinux=1 module.sig_enforce=1",
        ),
        (
            "cmdline-metal-amd64",
            "1.13.0",
            "talos.platform=metal console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on selinux=1 module.sig_enforce=1 proc_mem.force_override=never",
        ),
        (
            "cmdline-metal-amd64",
            "1.14.0",
            "talos.platform=metal console=tty0 slab_nomerge pti=on consoleblank=0 printk.devkmsg=on selinux=1 module.sig_enforce=1 proc_mem.force_override=never",
        ),
        (
            "cmdline-metal-arm64",
            "1.14.0",
            "talos.platform=metal console=ttyAMA0 console=tty0 slab_nomerge pti=on consoleblank=0 printk.devkmsg=on selinux=1 module.sig_enforce=1 proc_mem.force_override=never",
        ),
        (
            "metal-amd64.iso",
            "1.14.0",
            "talos.platform=metal console=tty0 talos.halt_if_installed=1 slab_nomerge pti=on consoleblank=0 printk.devkmsg=on selinux=1 module.sig_enforce=1 proc_mem.force_override=never",
        ),
        (
            "cmdline-aws-amd64",
            "1.14.0",
            "talos.platform=aws console=tty1 console=ttyS0 net.ifnames=0 nvme_core.io_timeout=4294967295 slab_nomerge pti=on consoleblank=0 printk.devkmsg=on selinux=1 module.sig_enforce=1 proc_mem.force_override=never",
        ),
        (
            "cmdline-metal-amd64",
            "1.7.0",
            "talos.platform=metal console=ttyS0 console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix ima_hash=sha512",
        ),
        (
            "cmdline-metal-amd64",
            "1.10.2",
            "talos.platform=metal console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix ima_hash=sha512 selinux=1",
        ),
        (
            "cmdline-equinixMetal-amd64",
            "1.11.0",
            "talos.platform=equinixMetal console=ttyS1,115200n8 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on selinux=1",
        ),
        (
            "cmdline-metal-amd64-secureboot",
            "1.11.0",
            "talos.platform=metal console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on selinux=1 lockdown=confidentiality",
        ),
    ];
    for (path, version_text, expected) in cases {
        assert_eq!(
            cmdline(path, version_text, &[], &[]),
            expected,
            "{path} {version_text}"
        );
    }
}

#[test]
fn extra_args_and_meta() {
    let line = cmdline(
        "cmdline-metal-amd64",
        "1.11.0",
        &[],
        &["nolapic", "nomodeset"],
    );
    assert!(line.ends_with("selinux=1 nolapic nomodeset"), "{line}");
    let line = cmdline(
        "cmdline-metal-amd64",
        "1.11.0",
        &[],
        &["console=ttyS0", "-pti"],
    );
    assert!(
        line.starts_with(
            "talos.platform=metal console=ttyS0 init_on_alloc=1 slab_nomerge consoleblank=0"
        ),
        "{line}"
    );
    let meta = [MetaValue {
        key: 0xa,
        value: "{\"externalIPs\":[\"1.2.3.4\"]}".into(),
    }];
    let line = cmdline("cmdline-metal-amd64", "1.11.0", &meta, &[]);
    assert!(
        line.ends_with(
            " talos.environment=INSTALLER_META_BASE64=MHhhPXsiZXh0ZXJuYWxJUHMiOlsiMS4yLjMuNCJdfQ=="
        ),
        "{line}"
    );
    // Disk images carry META in their META partition, not on the command line.
    let parsed = parse_path("metal-amd64.raw.xz").unwrap();
    assert!(
        !kernel_cmdline(&parsed, &version("1.11.0"), &[], &meta, &[]).contains("talos.environment")
    );
    // Long META is gzip'ed from 1.6.3.
    let long = [MetaValue {
        key: 0xc,
        value: "x".repeat(300),
    }];
    let encoded = meta_environment(&long, &version("1.6.3"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
    let plain = meta_environment(&long, &version("1.6.2"));
    assert!(
        base64::engine::general_purpose::STANDARD
            .decode(plain)
            .unwrap()
            .starts_with(b"0xc=xxx")
    );
}
