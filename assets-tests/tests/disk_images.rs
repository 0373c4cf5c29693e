//! Disk images served over HTTP and checked with tools we did not write: sgdisk and fdisk
//! read the GPT, fsck.fat and mtools the ESP, objdump the UKI on it, zstd/xz/gzip test and
//! decode every compression to the raw image, qemu-img checks and compares qcow2, VHD and
//! the OVA's VMDK, tar reads the OVA and GCP archives, and the images boot under OVMF with
//! 512- and 4096-byte sectors, reading META from the META partition.

use assets_tests::{
    TestFactory, boot_bios_disk, boot_uefi_disk_with_sectors, expect_fixture_boot, fixture_lines,
    run,
};
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = "v1.12.0";
const MIB: u64 = 1024 * 1024;

const SD_BOOT: &str = "customization:
  extraKernelArgs:
    - console=ttyS0
    - fixture.marker=42
  meta:
    - key: 0xa
      value: disk-meta
  systemExtensions:
    officialExtensions:
      - siderolabs/gvisor
      - siderolabs/dummy-driver
  bootloader: sd-boot
";

fn sh(script: &str) -> String {
    run(Command::new("sh").args(["-c", script]))
}

/// `sgdisk -p`'s rows as (first sector, last sector, type code, name).
fn partition_table(disk: &Path) -> Vec<(String, String, String, String)> {
    let table = run(Command::new("sgdisk").arg("-p").arg(disk));
    let after_header = table.split("Number  Start").nth(1).unwrap_or_default();
    after_header
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|fields| fields.len() >= 7)
        .map(|f| (f[1].into(), f[2].into(), f[5].into(), f[6].into()))
        .collect()
}

fn rows(expected: &[(&str, &str, &str, &str)]) -> Vec<(String, String, String, String)> {
    expected
        .iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
        .collect()
}

/// Copies the partition at `[start, start + len)` into its own (sparse) file.
fn extract(disk: &Path, start: u64, len: u64, out: &Path) -> PathBuf {
    run(Command::new("dd")
        .arg(format!("if={}", disk.display()))
        .arg(format!("of={}", out.display()))
        .args(["bs=1M", "conv=sparse", "status=none"])
        .arg(format!("skip={}", start / MIB))
        .arg(format!("count={}", len / MIB)));
    out.to_path_buf()
}

/// Downloads `path` compressed with zstd, tests and unpacks it; returns the raw image.
async fn raw_image(factory: &TestFactory, id: &str, path: &str, work: &Path) -> PathBuf {
    let packed = work.join("disk.raw.zst");
    factory
        .download_to(&format!("/image/{id}/{VERSION}/{path}"), &packed)
        .await;
    run(Command::new("zstd").arg("-t").arg(&packed));
    let raw = work.join("disk.raw");
    run(Command::new("zstd")
        .args(["-d", "-q", "-f", "--sparse"])
        .arg(&packed)
        .arg("-o")
        .arg(&raw));
    raw
}

#[tokio::test(flavor = "multi_thread")]
async fn sd_boot_image_is_valid_and_boots_under_ovmf() {
    let work = tempfile::tempdir().unwrap();
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(SD_BOOT).await;
    let disk = raw_image(&factory, &id, "metal-amd64.raw.zst", work.path()).await;
    // 1246 MiB + (2000 − 1000) MiB for Talos ≥ 1.11 with sd-boot.
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), 2_355_101_696);

    let verify = run(Command::new("sgdisk").arg("-v").arg(&disk));
    assert!(verify.contains("No problems found"), "{verify}");
    assert_eq!(
        partition_table(&disk),
        rows(&[
            ("2048", "4304895", "EF00", "EFI"),
            ("4304896", "4306943", "8300", "META"),
        ])
    );
    let efi = run(Command::new("sgdisk").args(["-i", "1"]).arg(&disk));
    assert!(
        efi.contains("BCA5174B-0118-8A6A-AF0B-2C6E1585ACAE"),
        "{efi}"
    );
    assert!(
        efi.contains("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
        "{efi}"
    );

    let esp = extract(&disk, MIB, 2101 * MIB, &work.path().join("esp.img"));
    let fsck = run(Command::new("fsck.fat").arg("-n").arg(&esp));
    assert!(
        fsck.contains("3 files") || fsck.contains("files,"),
        "{fsck}"
    );
    let listing = run(Command::new("mdir")
        .arg("-i")
        .arg(&esp)
        .args(["-/", "-b", "::"]));
    for path in [
        "::/EFI/boot/BOOTX64.efi",
        "::/EFI/Linux/Talos-v1.12.0.efi",
        "::/loader/loader.conf",
    ] {
        assert!(listing.lines().any(|l| l == path), "{path} in:\n{listing}");
    }
    let info = run(Command::new("minfo").arg("-i").arg(&esp).arg("::"));
    assert!(info.contains("serial number: 1234ABCD"), "{info}");
    assert!(info.contains("disk label=\"EFI        \""), "{info}");
    let loader = run(Command::new("mtype")
        .arg("-i")
        .arg(&esp)
        .arg("::/loader/loader.conf"));
    assert_eq!(loader, "# systemd-boot configuration\n\ntimeout 10\n");

    // The disk's UKI carries the reset profile after the main one.
    let uki = work.path().join("talos.efi");
    run(Command::new("mcopy")
        .arg("-i")
        .arg(&esp)
        .arg("::/EFI/Linux/Talos-v1.12.0.efi")
        .arg(&uki));
    let sections = run(Command::new("objdump").arg("-h").arg(&uki));
    let names: Vec<&str> = sections
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|n| n.starts_with('.'))
        .collect();
    let tail: Vec<&str> = names.iter().rev().take(4).rev().copied().collect();
    assert_eq!(
        tail,
        [".initrd", ".profile", ".profile", ".cmdline"],
        "{sections}"
    );

    let log = boot_uefi_disk_with_sectors(&disk, work.path(), 512);
    let lines = fixture_lines(&log);
    // Debian's systemd-stub 252 predates multi-profile UKIs and takes the last `.cmdline`
    // (the reset profile's), so the base arguments are what must be there.
    expect_fixture_boot(
        &lines,
        VERSION,
        &id,
        " fixture.marker=42",
        &["gvisor", "dummy-driver"],
        &["FIXTURE-META 0xa=disk-meta"],
    );
}

/// The default amd64 layout: extensions, META and arguments, no bootloader chosen.
const DUAL_BOOT: &str = "customization:
  extraKernelArgs:
    - console=ttyS0
    - fixture.marker=42
  meta:
    - key: 0xa
      value: disk-meta
  systemExtensions:
    officialExtensions:
      - siderolabs/gvisor
      - siderolabs/dummy-driver
";

#[tokio::test(flavor = "multi_thread")]
async fn dual_boot_image_boots_under_seabios_and_ovmf() {
    let work = tempfile::tempdir().unwrap();
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(DUAL_BOOT).await;
    let disk = raw_image(&factory, &id, "metal-amd64.raw.zst", work.path()).await;
    // 1246 MiB + 1000 MiB + 1 MiB (BIOS) + 2000 MiB (BOOT).
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), 4_453_302_272);

    let verify = run(Command::new("sgdisk").arg("-v").arg(&disk));
    assert!(verify.contains("No problems found"), "{verify}");
    assert_eq!(
        partition_table(&disk),
        rows(&[
            ("2048", "4304895", "EF00", "EFI"),
            ("4304896", "4306943", "EF02", "BIOS"),
            ("4306944", "8402943", "8300", "BOOT"),
            ("8402944", "8404991", "8300", "META"),
        ])
    );
    let bios = run(Command::new("sgdisk").args(["-A", "2:show"]).arg(&disk));
    assert!(bios.contains("legacy BIOS bootable"), "{bios}");
    let boot_part = run(Command::new("sgdisk").args(["-i", "3"]).arg(&disk));
    assert!(
        boot_part.contains("24C73076-4092-85DD-9D98-686A2DBF6D81"),
        "{boot_part}"
    );

    let esp = extract(&disk, MIB, 2101 * MIB, &work.path().join("esp.img"));
    run(Command::new("fsck.fat").arg("-n").arg(&esp));
    std::fs::remove_file(&esp).unwrap();
    let boot = extract(
        &disk,
        4_306_944 * 512,
        2000 * MIB,
        &work.path().join("boot.img"),
    );
    run(Command::new("xfs_repair").args(["-n", "-f"]).arg(&boot));
    let label = run(Command::new("xfs_db")
        .args(["-r", "-c", "label"])
        .arg(&boot));
    assert!(label.contains("\"BOOT\""), "{label}");
    let config = run(Command::new("grub-fstest")
        .arg(&boot)
        .args(["cat", "/grub/grub.cfg"]));
    assert!(
        config.starts_with("set default=\"A - Talos v1.12.0\"\n"),
        "{config}"
    );
    assert!(
        config.contains(" fixture.marker=42 talos.experimental.wipe=system:EPHEMERAL,STATE\n"),
        "{config}"
    );
    std::fs::remove_file(&boot).unwrap();

    let meta = ["FIXTURE-META 0xa=disk-meta", "FIXTURE-META 0x11=dual-boot"];
    let extensions = ["gvisor", "dummy-driver", "modules.dep"];
    let log = boot_bios_disk(&disk);
    let lines = fixture_lines(&log);
    expect_fixture_boot(
        &lines,
        VERSION,
        &id,
        " fixture.marker=42",
        &extensions,
        &meta,
    );
    assert!(
        lines[1].starts_with("FIXTURE-CMDLINE BOOT_IMAGE=/A/vmlinuz "),
        "GRUB booted it: {lines:?}"
    );

    let log = boot_uefi_disk_with_sectors(&disk, work.path(), 512);
    let lines = fixture_lines(&log);
    expect_fixture_boot(
        &lines,
        VERSION,
        &id,
        " fixture.marker=42",
        &extensions,
        &meta,
    );
    assert!(
        !lines[1].contains("BOOT_IMAGE="),
        "systemd-boot booted the UKI: {lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grub_era_image_boots_under_seabios_and_ovmf() {
    let work = tempfile::tempdir().unwrap();
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(DUAL_BOOT).await;
    let version = "v1.9.6";
    let packed = work.path().join("disk.raw.xz");
    factory
        .download_to(
            &format!("/image/{id}/{version}/metal-amd64.raw.xz"),
            &packed,
        )
        .await;
    run(Command::new("xz").arg("-t").arg(&packed));
    let disk = work.path().join("disk.raw");
    sh(&format!(
        "xz -dc {} | cp --sparse=always /dev/stdin {}",
        packed.display(),
        disk.display()
    ));
    // Before 1.11 the BOOT partition is 1000 MiB, so the base size is unchanged.
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), 1246 * MIB);
    assert_eq!(
        partition_table(&disk),
        rows(&[
            ("2048", "206847", "EF00", "EFI"),
            ("206848", "208895", "EF02", "BIOS"),
            ("208896", "2256895", "8300", "BOOT"),
            ("2256896", "2258943", "8300", "META"),
        ])
    );

    let esp = extract(&disk, MIB, 100 * MIB, &work.path().join("esp.img"));
    run(Command::new("fsck.fat").arg("-n").arg(&esp));
    let listing = run(Command::new("mdir")
        .arg("-i")
        .arg(&esp)
        .args(["-/", "-b", "::"]));
    assert!(
        listing.lines().any(|l| l == "::/EFI/boot/BOOTX64.efi"),
        "{listing}"
    );
    let boot = extract(
        &disk,
        208_896 * 512,
        1000 * MIB,
        &work.path().join("boot.img"),
    );
    run(Command::new("xfs_repair").args(["-n", "-f"]).arg(&boot));

    let meta = ["FIXTURE-META 0xa=disk-meta"];
    let extensions = ["gvisor", "dummy-driver"];
    for log in [
        boot_bios_disk(&disk),
        boot_uefi_disk_with_sectors(&disk, work.path(), 512),
    ] {
        let lines = fixture_lines(&log);
        expect_fixture_boot(
            &lines,
            version,
            &id,
            " fixture.marker=42",
            &extensions,
            &meta,
        );
        assert!(
            lines[1].starts_with("FIXTURE-CMDLINE BOOT_IMAGE=/A/vmlinuz "),
            "GRUB booted it: {lines:?}"
        );
        assert!(
            !lines.iter().any(|l| l.contains("0x11=")),
            "no dual-boot marker: {lines:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_compression_decodes_to_the_raw_image() {
    let work = tempfile::tempdir().unwrap();
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(SD_BOOT).await;
    let raw = raw_image(&factory, &id, "metal-amd64.raw.zst", work.path()).await;
    let size = std::fs::metadata(&raw).unwrap().len();

    let head = reqwest::Client::new()
        .head(format!(
            "{}/image/{id}/{VERSION}/metal-amd64.raw",
            factory.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], size.to_string().as_str());
    let range = reqwest::Client::new()
        .get(format!(
            "{}/image/{id}/{VERSION}/metal-amd64.raw",
            factory.base
        ))
        .header("range", "bytes=0-1048575")
        .send()
        .await
        .unwrap();
    assert_eq!(range.status(), 206);
    let start = range.bytes().await.unwrap();
    let expected = std::fs::read(&raw).unwrap();
    assert!(start[..] == expected[..1 << 20]);
    drop(expected);

    for (suffix, tool) in [("raw.xz", "xz"), ("raw.gz", "gzip"), ("raw", "")] {
        let file = work.path().join(format!("disk.{suffix}"));
        factory
            .download_to(
                &format!("/image/{id}/{VERSION}/metal-amd64.{suffix}"),
                &file,
            )
            .await;
        let compare = if tool.is_empty() {
            format!("cmp {} {}", file.display(), raw.display())
        } else {
            sh(&format!("{tool} -t {}", file.display()));
            format!("{tool} -dc {} | cmp - {}", file.display(), raw.display())
        };
        sh(&compare);
        if !tool.is_empty() {
            let packed = std::fs::metadata(&file).unwrap().len();
            assert!(packed < 64 * MIB, "{suffix} is {packed} bytes");
        }
        std::fs::remove_file(&file).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_hold_the_raw_image() {
    let work = tempfile::tempdir().unwrap();
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(SD_BOOT).await;
    // Containers do not depend on the platform: every one holds metal's raw image.
    let raw = raw_image(&factory, &id, "metal-amd64.raw.zst", work.path()).await;
    for container in ["qcow2", "vhd", "ova", "raw.tar.gz"] {
        let dir = work.path().join(container);
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join(format!("disk.{container}"));
        factory
            .download_to(
                &format!("/image/{id}/{VERSION}/metal-amd64.{container}"),
                &file,
            )
            .await;
        match container {
            "qcow2" => {
                run(Command::new("qemu-img")
                    .args(["check", "-f", "qcow2"])
                    .arg(&file));
                let info = run(Command::new("qemu-img")
                    .args(["info", "--output=json", "-f", "qcow2"])
                    .arg(&file));
                assert!(info.contains("\"cluster-size\": 8192"), "{info}");
                run(Command::new("qemu-img")
                    .args(["compare", "-f", "qcow2", "-F", "raw"])
                    .arg(&file)
                    .arg(&raw));
            }
            "vhd" => {
                let info = run(Command::new("qemu-img")
                    .args(["info", "-f", "vpc"])
                    .arg(&file));
                let size = std::fs::metadata(&raw).unwrap().len();
                assert!(info.contains(&format!("({size} bytes)")), "{info}");
                run(Command::new("qemu-img")
                    .args(["compare", "-f", "vpc", "-F", "raw"])
                    .arg(&file)
                    .arg(&raw));
            }
            "ova" => {
                let listing = run(Command::new("tar").arg("-tf").arg(&file));
                assert_eq!(listing, "disk.ovf\ndisk.mf\ndisk.vmdk\n");
                run(Command::new("tar")
                    .arg("-xf")
                    .arg(&file)
                    .arg("-C")
                    .arg(&dir));
                let manifest = std::fs::read_to_string(dir.join("disk.mf")).unwrap();
                for name in ["disk.vmdk", "disk.ovf"] {
                    let sum = run(Command::new("sha256sum").arg(dir.join(name)));
                    let digest = sum.split_whitespace().next().unwrap();
                    assert!(
                        manifest.contains(&format!("SHA256({name})= {digest}\n")),
                        "{manifest}"
                    );
                }
                let ovf = std::fs::read_to_string(dir.join("disk.ovf")).unwrap();
                let vmdk_size = std::fs::metadata(dir.join("disk.vmdk")).unwrap().len();
                assert!(ovf.contains(&format!("ovf:size=\"{vmdk_size}\"")), "{ovf}");
                assert!(ovf.contains("ovf:capacity=\"2246\""), "{ovf}");
                let vmdk = dir.join("disk.vmdk");
                run(Command::new("qemu-img")
                    .args(["check", "-f", "vmdk"])
                    .arg(&vmdk));
                let info = run(Command::new("qemu-img")
                    .args(["info", "-f", "vmdk"])
                    .arg(&vmdk));
                assert!(info.contains("create type: streamOptimized"), "{info}");
                run(Command::new("qemu-img")
                    .args(["compare", "-f", "vmdk", "-F", "raw"])
                    .arg(&vmdk)
                    .arg(&raw));
            }
            _ => {
                run(Command::new("gzip").arg("-t").arg(&file));
                let listing = run(Command::new("tar").arg("-tzf").arg(&file));
                assert_eq!(listing, "disk.raw\n");
                // A GNU sparse member: it extracts as a sparse file equal to the image.
                let verbose = run(Command::new("tar").arg("-tvzf").arg(&file));
                let size = std::fs::metadata(&raw).unwrap().len();
                assert!(verbose.contains(&format!(" {size} ")), "{verbose}");
                run(Command::new("tar")
                    .arg("-xzf")
                    .arg(&file)
                    .arg("-C")
                    .arg(&dir));
                let extracted = dir.join("disk.raw");
                run(Command::new("cmp").arg(&extracted).arg(&raw));
                use std::os::unix::fs::MetadataExt;
                let allocated = std::fs::metadata(&extracted).unwrap().blocks() * 512;
                assert!(
                    allocated < 256 * MIB,
                    "extracted disk.raw allocates {allocated} bytes"
                );
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn uncached_images_stream_while_they_are_built() {
    use futures_util::StreamExt;
    use sha2::{Digest, Sha256};
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(SD_BOOT).await;
    let path = format!("/image/{id}/{VERSION}/metal-amd64.raw");
    let response = factory.get(&path).await;
    assert_eq!(response.status(), 200);
    // Only a response that starts before the build ends has no length to announce.
    assert!(
        response.headers().get("content-length").is_none(),
        "{:?}",
        response.headers()
    );
    let mut streamed = Sha256::new();
    let mut size = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("the stream completes");
        size += chunk.len() as u64;
        streamed.update(&chunk);
    }
    assert_eq!(size, 2_355_101_696);

    let cached = factory.get(&path).await;
    assert_eq!(
        cached.headers()["content-length"],
        size.to_string().as_str()
    );
    let mut stored = Sha256::new();
    let mut body = cached.bytes_stream();
    while let Some(chunk) = body.next().await {
        stored.update(chunk.unwrap());
    }
    assert!(
        streamed.finalize() == stored.finalize(),
        "streamed bytes differ from the entry"
    );
    assert_eq!(factory.factory.builds.started(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn image_with_4096_byte_sectors_boots_under_ovmf() {
    let work = tempfile::tempdir().unwrap();
    let factory = TestFactory::start(|_| {}).await;
    let id = factory
        .create_schematic(
            "customization:\n  extraKernelArgs: [console=ttyS0, fixture.marker=42]\n  \
             bootloader: sd-boot\n  diskImage:\n    sectorSize: 4096\n",
        )
        .await;
    let disk = raw_image(&factory, &id, "metal-amd64.raw.zst", work.path()).await;
    let table = run(Command::new("fdisk").args(["-l", "-b", "4096"]).arg(&disk));
    assert!(
        table.contains("Sector size (logical/physical): 4096 bytes"),
        "{table}"
    );
    let rows: Vec<Vec<&str>> = table
        .lines()
        .filter(|l| l.starts_with(&disk.display().to_string()))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert_eq!(
        (rows[0][1], rows[0][2]),
        ("256", &(256 + 2101 * 256 - 1).to_string()[..]),
        "{table}"
    );
    let esp = extract(&disk, MIB, 2101 * MIB, &work.path().join("esp.img"));
    run(Command::new("fsck.fat").arg("-n").arg(&esp));
    let info = run(Command::new("minfo").arg("-i").arg(&esp).arg("::"));
    assert!(info.contains("sector size: 4096 bytes"), "{info}");

    let log = boot_uefi_disk_with_sectors(&disk, work.path(), 4096);
    expect_fixture_boot(
        &fixture_lines(&log),
        VERSION,
        &id,
        " fixture.marker=42",
        &[],
        &[],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_images_are_reproducible_and_per_arch() {
    let work = tempfile::tempdir().unwrap();
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(SD_BOOT).await;
    let dual_boot = factory.create_schematic(DUAL_BOOT).await;
    let path = format!("/image/{id}/{VERSION}/metal-arm64.raw.xz");
    let dual_boot_path = format!("/image/{dual_boot}/{VERSION}/metal-amd64.raw.zst");
    let first = factory.get(&path).await.bytes().await.unwrap();
    let first_dual_boot = factory.get(&dual_boot_path).await.bytes().await.unwrap();
    factory.factory.builds.cache.clear().unwrap();
    let second = factory.get(&path).await.bytes().await.unwrap();
    let second_dual_boot = factory.get(&dual_boot_path).await.bytes().await.unwrap();
    assert!(first == second, "two sd-boot builds differ");
    assert!(
        first_dual_boot == second_dual_boot,
        "two dual-boot builds differ"
    );

    let file = work.path().join("arm64.raw.xz");
    std::fs::write(&file, &first).unwrap();
    let disk = work.path().join("arm64.raw");
    sh(&format!(
        "xz -dc {} | cp --sparse=always /dev/stdin {}",
        file.display(),
        disk.display()
    ));
    let esp = extract(&disk, MIB, 2101 * MIB, &work.path().join("esp.img"));
    run(Command::new("fsck.fat").arg("-n").arg(&esp));
    let listing = run(Command::new("mdir")
        .arg("-i")
        .arg(&esp)
        .args(["-/", "-b", "::"]));
    assert!(
        listing.lines().any(|l| l == "::/EFI/boot/BOOTAA64.efi"),
        "{listing}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_disk_image_requests_are_refused_with_the_reason() {
    let factory = TestFactory::start(|_| {}).await;
    let vanilla = factory.create_schematic("{}").await;
    let odd_sector = factory
        .create_schematic(
            "customization:\n  bootloader: sd-boot\n  diskImage:\n    sectorSize: 1000\n",
        )
        .await;
    for (id, version, path, message) in [
        (
            &odd_sector,
            VERSION,
            "metal-amd64.raw.zst",
            "sector size 1000 is not supported",
        ),
        (
            &vanilla,
            VERSION,
            "metal-amd64.raw.bz2",
            "invalid profile path: \"metal-amd64.raw.bz2\"",
        ),
        (
            &vanilla,
            VERSION,
            "metal-amd64-secureboot.raw.zst",
            "secure boot is disabled",
        ),
    ] {
        let response = factory.get(&format!("/image/{id}/{version}/{path}")).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(message), "{path}: {body}");
    }
}
