//! ISOs served over HTTP and checked with tools we did not write: xorriso reads the El
//! Torito catalog, the system area and both ISO 9660 views (from block 0 and from the GPT
//! or MBR partition at 16 blocks), osirrox extracts the tree, sgdisk and fdisk read the
//! partition tables, fsck.fat and mtools the appended ESP; the hybrid ISO boots under
//! SeaBIOS and OVMF both as a CD and written to a disk, the UEFI-only ISO under OVMF, and
//! the GRUB ISO of Talos before 1.10 under SeaBIOS and OVMF through GRUB.

use assets_tests::{
    TestFactory, boot_bios_cdrom, boot_bios_disk, boot_uefi_cdrom, boot_uefi_disk,
    expect_fixture_boot, fixture_lines, run,
};
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = "v1.12.0";

const HYBRID: &str = "customization:
  extraKernelArgs:
    - console=ttyS0
    - fixture.marker=iso
  systemExtensions:
    officialExtensions:
      - siderolabs/gvisor
";

const SD_BOOT: &str = "customization:
  extraKernelArgs:
    - console=ttyS0
  bootloader: sd-boot
";

async fn download_iso(factory: &TestFactory, id: &str, path: &str, work: &Path) -> PathBuf {
    let response = factory.get(&format!("/image/{id}/{VERSION}/{path}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/x-iso9660-image"
    );
    let iso = work.join(path);
    std::fs::write(&iso, response.bytes().await.unwrap()).unwrap();
    iso
}

/// xorriso's reports on the volume, El Torito and the system area (it writes some of them
/// to standard error).
fn xorriso_report(iso: &Path) -> String {
    run(Command::new("sh").arg("-c").arg(format!(
        "xorriso -indev '{}' -report_el_torito plain -report_system_area plain 2>&1",
        iso.display()
    )))
}

/// The files xorriso sees (the leaves of its `-find` listing), sorted.
fn tree(iso: &Path) -> Vec<String> {
    let listing = run(Command::new("xorriso")
        .arg("-indev")
        .arg(iso)
        .args(["-find", "/"]));
    let paths: Vec<String> = listing
        .lines()
        .filter_map(|line| {
            line.strip_prefix('\'')?
                .strip_suffix('\'')
                .map(String::from)
        })
        .collect();
    let mut files: Vec<String> = paths
        .iter()
        .filter(|path| {
            let inside = format!("{}/", path.trim_end_matches('/'));
            !paths.iter().any(|other| other.starts_with(&inside))
        })
        .cloned()
        .collect();
    files.sort();
    files
}

fn extract_tree(iso: &Path, into: &Path) {
    run(Command::new("osirrox")
        .arg("-indev")
        .arg(iso)
        .args(["-extract", "/"])
        .arg(into));
}

/// `dd` of `count` 512-byte sectors from `skip`.
fn sectors(image: &Path, skip: u64, count: u64, out: &Path) -> PathBuf {
    run(Command::new("dd")
        .arg(format!("if={}", image.display()))
        .arg(format!("of={}", out.display()))
        .args(["bs=512", "status=none"])
        .arg(format!("skip={skip}"))
        .arg(format!("count={count}")));
    out.to_path_buf()
}

/// "  GPT start and size :   2  43008  69632" → (43008, 69632) for partition `number`.
fn gpt_extent(report: &str, number: u32) -> (u64, u64) {
    report
        .lines()
        .filter_map(|line| line.strip_prefix("GPT start and size :"))
        .map(|rest| rest.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields[0] == number.to_string())
        .map(|fields| (fields[1].parse().unwrap(), fields[2].parse().unwrap()))
        .unwrap_or_else(|| panic!("GPT partition {number} in:\n{report}"))
}

fn check_esp(esp: &Path, uki: &[u8]) {
    let fsck = run(Command::new("fsck.fat").arg("-n").arg(esp));
    assert!(fsck.contains("files,"), "{fsck}");
    let listing = run(Command::new("mdir")
        .arg("-i")
        .arg(esp)
        .args(["-/", "-b", "::"]));
    for path in [
        "::/EFI/BOOT/BOOTX64.EFI",
        &format!("::/EFI/Linux/Talos-{VERSION}.efi"),
        "::/loader/loader.conf",
        "::/loader/random-seed",
    ] {
        assert!(listing.contains(path), "{path} in\n{listing}");
    }
    let attributes = run(Command::new("mattrib")
        .arg("-i")
        .arg(esp)
        .arg("::/loader/random-seed"));
    assert!(
        attributes.split_whitespace().any(|flag| flag == "R"),
        "random-seed is read-only: {attributes}"
    );
    let copied = esp.with_extension("uki");
    run(Command::new("mcopy")
        .arg("-i")
        .arg(esp)
        .arg(format!("::/EFI/Linux/Talos-{VERSION}.efi"))
        .arg(&copied));
    assert!(std::fs::read(&copied).unwrap() == uki, "UKI on the ESP");
}

#[tokio::test(flavor = "multi_thread")]
async fn hybrid_iso_is_valid_and_boots_bios_and_uefi_as_cd_and_disk() {
    let work = tempfile::tempdir().unwrap();
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(HYBRID).await;
    let iso = download_iso(&factory, &id, "metal-amd64.iso", work.path()).await;

    let report = xorriso_report(&iso);
    for expected in [
        "Volume id    : 'TALOS_V1_12_0'",
        "El Torito cat path : /boot.catalog",
        "El Torito img path :   1  /boot/grub/i386-pc/eltorito.img",
        "El Torito img opts :   1  boot-info-table grub2-boot-info",
        "System area summary: MBR protective-msdos-label grub2-mbr",
        "Partition offset   : 16",
        "GPT partname local :   1  ISO9660",
        "GPT partname local :   2  Appended2",
        "GPT type GUID      :   2  28732ac11ff8d211ba4b00a0c93ec93b",
    ] {
        assert!(report.contains(expected), "{expected} in:\n{report}");
    }
    let boot_entries: Vec<&str> = report
        .lines()
        .filter(|line| line.starts_with("El Torito boot img :"))
        .collect();
    assert_eq!(boot_entries.len(), 2, "{report}");
    assert!(boot_entries[0].contains("BIOS  y   none") && boot_entries[0].contains("     4 "));
    assert!(boot_entries[1].contains("UEFI  y   none"), "{report}");
    let verify = run(Command::new("sgdisk").arg("-v").arg(&iso));
    assert!(verify.contains("No problems found"), "{verify}");

    let expected_tree: Vec<String> = [
        "/EFI/BOOT/BOOTX64.EFI",
        "/EFI/Linux/Talos-v1.12.0.efi",
        "/boot.catalog",
        "/boot/grub/grub.cfg",
        "/boot/grub/i386-pc/eltorito.img",
        "/boot/initramfs.xz",
        "/boot/vmlinuz",
        "/loader/loader.conf",
        "/loader/random-seed",
    ]
    .iter()
    .map(|path| path.to_string())
    .collect();
    assert_eq!(tree(&iso), expected_tree);
    // The partition-relative view: the ISO 9660 partition alone is a complete file system.
    let (first, size) = gpt_extent(&report, 1);
    assert_eq!(first, 64);
    let partition = sectors(&iso, first, size, &work.path().join("iso-partition.img"));
    assert_eq!(tree(&partition), expected_tree);

    let files = work.path().join("tree");
    extract_tree(&iso, &files);
    let imager = factory.imager(VERSION).await;
    assert!(
        std::fs::read(files.join("boot/vmlinuz")).unwrap()
            == imager.file("usr/install/amd64/vmlinuz").unwrap(),
        "kernel"
    );
    let initramfs = factory
        .get(&format!("/image/{id}/{VERSION}/initramfs-amd64.xz"))
        .await
        .bytes()
        .await
        .unwrap();
    assert!(
        std::fs::read(files.join("boot/initramfs.xz")).unwrap() == initramfs,
        "initramfs with extensions"
    );
    let grub_cfg = std::fs::read_to_string(files.join("boot/grub/grub.cfg")).unwrap();
    assert!(
        grub_cfg.starts_with("set default=0\nset timeout=3\n"),
        "{grub_cfg}"
    );
    assert!(grub_cfg.contains("menuentry \"Talos ISO\""), "{grub_cfg}");
    assert!(
        grub_cfg.contains("talos.halt_if_installed=1") && grub_cfg.contains("fixture.marker=iso"),
        "{grub_cfg}"
    );
    assert!(
        grub_cfg.contains("talos.experimental.wipe=system\n"),
        "{grub_cfg}"
    );
    assert_eq!(
        std::fs::read_to_string(files.join("loader/loader.conf")).unwrap(),
        "# systemd-boot configuration\n\ntimeout 10\n\nsecure-boot-enroll off\n"
    );
    let uki = std::fs::read(files.join(format!("EFI/Linux/Talos-{VERSION}.efi"))).unwrap();
    let sections = run(Command::new("objdump")
        .arg("-h")
        .arg(files.join(format!("EFI/Linux/Talos-{VERSION}.efi"))));
    assert!(sections.contains(".profile"), "{sections}");

    let (esp_first, esp_size) = gpt_extent(&report, 2);
    let esp = sectors(&iso, esp_first, esp_size, &work.path().join("esp.img"));
    check_esp(&esp, &uki);

    // Boots: as a CD and as a disk, under SeaBIOS (GRUB) and OVMF (systemd-boot). Disk boots
    // get their own copy, since QEMU locks a writable image.
    let as_disk = |name: &str| {
        let copy = work.path().join(name);
        std::fs::copy(&iso, &copy).unwrap();
        copy
    };
    let (bios_disk, uefi_disk) = (as_disk("bios-disk.iso"), as_disk("uefi-disk.iso"));
    let bios_cd = {
        let iso = iso.clone();
        std::thread::spawn(move || boot_bios_cdrom(&iso))
    };
    let bios_hd = std::thread::spawn(move || boot_bios_disk(&bios_disk));
    let uefi_cd = boot_uefi_cdrom(&iso, work.path());
    let uefi_hd = boot_uefi_disk(&uefi_disk, work.path());
    let cmdline = "talos.halt_if_installed=1";
    for (how, log) in [
        ("SeaBIOS CD", bios_cd.join().unwrap()),
        ("SeaBIOS disk", bios_hd.join().unwrap()),
        ("OVMF CD", uefi_cd),
        ("OVMF disk", uefi_hd),
    ] {
        let lines = fixture_lines(&log);
        assert!(!lines.is_empty(), "{how}: no fixture output:\n{log}");
        expect_fixture_boot(&lines, VERSION, &id, cmdline, &["gvisor"], &[]);
        if how.starts_with("SeaBIOS") {
            assert!(
                lines.iter().any(|l| l.contains("BOOT_IMAGE=/boot/vmlinuz")),
                "{how}: GRUB boots /boot/vmlinuz:\n{}",
                lines.join("\n")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sd_boot_iso_is_uefi_only_and_boots_under_ovmf() {
    let work = tempfile::tempdir().unwrap();
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(SD_BOOT).await;
    let iso = download_iso(&factory, &id, "metal-amd64.iso", work.path()).await;

    let report = xorriso_report(&iso);
    let boot_entries: Vec<&str> = report
        .lines()
        .filter(|line| line.starts_with("El Torito boot img :"))
        .collect();
    assert_eq!(boot_entries.len(), 1, "{report}");
    assert!(boot_entries[0].contains("UEFI  y   none"), "{report}");
    assert!(
        !report.contains("grub2-mbr") && !report.contains("GPT "),
        "{report}"
    );
    let fdisk = run(Command::new("sfdisk").arg("--dump").arg(&iso));
    let partitions: Vec<&str> = fdisk.lines().filter(|l| l.contains("start=")).collect();
    assert_eq!(partitions.len(), 2, "{fdisk}");
    assert!(
        partitions[0].contains("start=          64") && partitions[0].contains("type=83"),
        "{fdisk}"
    );
    assert!(partitions[1].contains("type=ef"), "{fdisk}");
    assert_eq!(
        tree(&iso),
        [
            "/EFI/BOOT/BOOTX64.EFI",
            "/EFI/Linux/Talos-v1.12.0.efi",
            "/boot.catalog",
            "/loader/loader.conf",
            "/loader/random-seed",
        ]
    );
    let field = |line: &str, key: &str| -> u64 {
        line.split(key)
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .map(|value| value.trim().parse().unwrap())
            .unwrap()
    };
    let esp = sectors(
        &iso,
        field(partitions[1], "start="),
        field(partitions[1], "size="),
        &work.path().join("esp.img"),
    );
    let files = work.path().join("tree");
    extract_tree(&iso, &files);
    let uki = std::fs::read(files.join(format!("EFI/Linux/Talos-{VERSION}.efi"))).unwrap();
    check_esp(&esp, &uki);

    let lines = fixture_lines(&boot_uefi_cdrom(&iso, work.path()));
    expect_fixture_boot(&lines, VERSION, &id, "talos.halt_if_installed=1", &[], &[]);

    // arm64 has no BIOS: its default ISO is UEFI-only too, with the arm64 loader name.
    let arm64 = download_iso(&factory, &id, "metal-arm64.iso", work.path()).await;
    let report = xorriso_report(&arm64);
    assert_eq!(
        report
            .lines()
            .filter(|line| line.starts_with("El Torito boot img :"))
            .count(),
        1,
        "{report}"
    );
    assert!(
        tree(&arm64).contains(&"/EFI/BOOT/BOOTAA64.EFI".to_string()),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grub_iso_boots_bios_and_uefi_through_grub() {
    let work = tempfile::tempdir().unwrap();
    let factory = TestFactory::start(|_| {}).await;
    let id = factory
        .create_schematic("customization:\n  extraKernelArgs:\n    - console=ttyS0\n")
        .await;
    // Before 1.10 every ISO is a GRUB ISO.
    let version = "v1.9.6";
    let response = factory
        .get(&format!("/image/{id}/{version}/metal-amd64.iso"))
        .await;
    assert_eq!(response.status(), 200);
    let iso = work.path().join("grub.iso");
    std::fs::write(&iso, response.bytes().await.unwrap()).unwrap();

    let report = xorriso_report(&iso);
    let boot_entries: Vec<&str> = report
        .lines()
        .filter(|line| line.starts_with("El Torito boot img :"))
        .collect();
    assert_eq!(boot_entries.len(), 2, "{report}");
    assert!(boot_entries[0].contains("BIOS  y   none"), "{report}");
    assert!(boot_entries[1].contains("UEFI  y   none"), "{report}");
    assert!(report.contains("Volume id    : 'TALOS_V1_9_6'"), "{report}");
    assert_eq!(
        tree(&iso),
        [
            "/boot.catalog",
            "/boot/grub/grub.cfg",
            "/boot/grub/i386-pc/eltorito.img",
            "/boot/initramfs.xz",
            "/boot/vmlinuz",
        ]
    );
    let (esp_first, esp_size) = gpt_extent(&report, 2);
    let esp = sectors(&iso, esp_first, esp_size, &work.path().join("esp.img"));
    let fsck = run(Command::new("fsck.fat").arg("-n").arg(&esp));
    assert!(fsck.contains("files,"), "{fsck}");
    let listing = run(Command::new("mdir")
        .arg("-i")
        .arg(&esp)
        .args(["-/", "-b", "::"]));
    assert!(listing.contains("::/EFI/BOOT/BOOTX64.EFI"), "{listing}");
    let loader = work.path().join("BOOTX64.EFI");
    run(Command::new("mcopy")
        .arg("-i")
        .arg(&esp)
        .arg("::/EFI/BOOT/BOOTX64.EFI")
        .arg(&loader));
    let loader = std::fs::read(&loader).unwrap();
    assert!(loader.starts_with(b"MZ"), "a PE application");
    assert!(
        loader
            .windows(b"()/boot/grub".len())
            .any(|window| window == b"()/boot/grub"),
        "GRUB's prefix is the boot drive's /boot/grub"
    );

    let bios = {
        let iso = iso.clone();
        std::thread::spawn(move || boot_bios_cdrom(&iso))
    };
    let uefi = boot_uefi_cdrom(&iso, work.path());
    for (how, log) in [("SeaBIOS CD", bios.join().unwrap()), ("OVMF CD", uefi)] {
        let lines = fixture_lines(&log);
        assert!(!lines.is_empty(), "{how}: no fixture output:\n{log}");
        expect_fixture_boot(&lines, version, &id, "talos.halt_if_installed=1", &[], &[]);
        assert!(
            lines.iter().any(|l| l.contains("BOOT_IMAGE=/boot/vmlinuz")),
            "{how} boots through GRUB:\n{}",
            lines.join("\n")
        );
    }

    // bootloader: grub asks for the same ISO on a current version.
    let grub = factory
        .create_schematic("customization:\n  bootloader: grub\n")
        .await;
    let iso = download_iso(&factory, &grub, "metal-amd64.iso", work.path()).await;
    let report = xorriso_report(&iso);
    assert!(
        report.contains("El Torito img path :   1  /boot/grub/i386-pc/eltorito.img"),
        "{report}"
    );
    assert!(
        !tree(&iso).iter().any(|path| path.starts_with("/EFI")),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn secure_boot_isos_need_keys() {
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic("customization: {}\n").await;
    let secureboot = factory
        .get(&format!("/image/{id}/{VERSION}/metal-amd64-secureboot.iso"))
        .await;
    assert_eq!(secureboot.status(), 400);
    let body = secureboot.text().await.unwrap();
    assert!(body.contains("secure boot is disabled"), "{body}");
    assert!(body.contains("secureBoot.file.signingKeyPath"), "{body}");
}
