//! Board overlays through the overlay protocol: the fixture `qemu_arm64` board's image
//! checked with sgdisk and mtools and booted by the U-Boot its installer wrote into it
//! (`qemu-system-aarch64 -M virt`, TCG) to the full FIXTURE sequence; misbehaving
//! installers (exit 1, past the time limit, writing outside their tree and dialling out)
//! failing their build with their own words and no cache entry; refused requests; the
//! arm64 installer's overlay layer pulled with skopeo.

use assets_tests::{
    TestFactory, boot_arm64_u_boot, expect_fixture_boot_of, fixture_lines, run, workspace,
};
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = "v1.12.0";
const MIB: u64 = 1 << 20;
/// Where the fixture installer writes U-Boot, and the gap it asks for (in LBAs).
const UBOOT_OFFSET: u64 = 32768;
const GAP_LBAS: u64 = 20480;

const QEMU_BOARD: &str = "overlay:
  image: siderolabs/sbc-fixture
  name: qemu_arm64
  options:
    configTxtAppend: dtparam=fixture=on
customization:
  extraKernelArgs:
    - fixture.schematic=1
";

fn sh(script: &str) -> String {
    run(Command::new("sh").args(["-ec", script]))
}

/// Debian's U-Boot for `qemu_arm64`, as `cargo xtask fixtures` unpacked it.
fn fixture_u_boot() -> Vec<u8> {
    let path = workspace().join("fixtures/.cache/root-u-boot/usr/lib/u-boot/qemu_arm64/u-boot.bin");
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (cargo xtask fixtures)", path.display()))
}

fn board(name: &str, options: &str) -> String {
    format!("overlay:\n  image: siderolabs/sbc-fixture\n  name: {name}\n{options}")
}

/// Entries of the asset cache (directories other than in-flight temporaries).
fn cache_entries(factory: &TestFactory) -> usize {
    let dir = factory.factory.config.storage.dir.join("assets");
    std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
                .filter(|entry| entry.path().is_dir())
                .count()
        })
        .unwrap_or(0)
}

async fn download(factory: &TestFactory, path: &str, file: &Path) -> Vec<u8> {
    factory.download_to(path, file).await;
    std::fs::read(file).unwrap()
}

fn extract(disk: &Path, offset: u64, size: u64, out: &Path) -> PathBuf {
    sh(&format!(
        "dd if='{}' of='{}' bs=1M skip={} count={} iflag=skip_bytes,count_bytes status=none",
        disk.display(),
        out.display(),
        offset,
        size
    ));
    out.to_path_buf()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_qemu_board_image_boots_through_its_u_boot() {
    let work = tempfile::tempdir().unwrap();
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(QEMU_BOARD).await;

    // The board's kernel arguments come after the platform's and before Talos's own.
    let cmdline = factory
        .get(&format!("/image/{id}/{VERSION}/cmdline-metal-arm64"))
        .await
        .text()
        .await
        .unwrap();
    let board_at = cmdline.find("fixture.overlay=qemu_arm64").expect(&cmdline);
    assert!(cmdline.starts_with("talos.platform=metal "), "{cmdline}");
    assert!(cmdline.contains("console=ttyAMA0,115200"), "{cmdline}");
    assert!(
        board_at < cmdline.find("slab_nomerge").expect(&cmdline),
        "{cmdline}"
    );
    assert!(cmdline.ends_with("fixture.schematic=1"), "{cmdline}");
    let pxe = factory
        .get(&format!("/pxe/{id}/{VERSION}/metal-arm64"))
        .await
        .text()
        .await
        .unwrap();
    assert!(pxe.contains("fixture.overlay=qemu_arm64"), "{pxe}");
    // The kernel is the release's, as upstream builds it without the overlay.
    let kernel = factory
        .get(&format!("/image/{id}/{VERSION}/kernel-arm64"))
        .await
        .bytes()
        .await
        .unwrap();
    let vanilla = factory.create_schematic("{}").await;
    let vanilla_kernel = factory
        .get(&format!("/image/{vanilla}/{VERSION}/kernel-arm64"))
        .await
        .bytes()
        .await
        .unwrap();
    assert!(kernel == vanilla_kernel);

    let path = format!("/image/{id}/{VERSION}/metal-arm64.raw.xz");
    let compressed = work.path().join("board.raw.xz");
    let first = download(&factory, &path, &compressed).await;
    let disk = work.path().join("board.raw");
    sh(&format!(
        "xz -dc '{}' | cp --sparse=always /dev/stdin '{}'",
        compressed.display(),
        disk.display()
    ));

    let verify = run(Command::new("sgdisk").arg("-v").arg(&disk));
    assert!(verify.contains("No problems found"), "{verify}");
    let info = run(Command::new("sgdisk").args(["-i", "1"]).arg(&disk));
    // Entries after the gap, the first partition rounded up to 1 MiB: 11 MiB.
    let first_sector = (GAP_LBAS + 2 + 32).div_ceil(2048) * 2048;
    assert_eq!(first_sector, 22528);
    assert!(
        info.contains(&format!("First sector: {first_sector} ")),
        "{info}"
    );
    let table = run(Command::new("sgdisk").arg("-p").arg(&disk));
    assert!(
        table.contains("EFI") && table.contains("BOOT") && table.contains("META"),
        "{table}"
    );

    let u_boot = fixture_u_boot();
    let written = extract(
        &disk,
        UBOOT_OFFSET,
        u_boot.len() as u64,
        &work.path().join("u-boot.bin"),
    );
    assert!(
        std::fs::read(&written).unwrap() == u_boot,
        "U-Boot is not at byte {UBOOT_OFFSET}"
    );

    let esp = extract(
        &disk,
        first_sector * 512,
        100 * MIB,
        &work.path().join("esp.img"),
    );
    run(Command::new("fsck.fat").arg("-n").arg(&esp));
    let listing = run(Command::new("mdir")
        .arg("-i")
        .arg(&esp)
        .args(["-/", "-b", "::"]));
    for file in [
        "::/EFI/boot/BOOTAA64.efi",
        "::/u-boot.bin",
        "::/config.txt",
        "::/bootcode.bin",
        "::/fixup.dat",
        "::/start.elf",
    ] {
        assert!(
            listing.lines().any(|line| line == file),
            "{file} in:\n{listing}"
        );
    }
    let config = run(Command::new("mtype")
        .arg("-i")
        .arg(&esp)
        .arg("::/config.txt"));
    assert!(config.ends_with("dtparam=fixture=on\n"), "{config}");

    // A real U-Boot (the one in the image) boots GRUB, the kernel and the fixture init.
    let log = boot_arm64_u_boot(&written, &disk);
    assert!(log.contains("U-Boot"), "{log}");
    let lines = fixture_lines(&log);
    expect_fixture_boot_of(
        "arm64",
        &lines,
        VERSION,
        &id,
        "fixture.overlay=qemu_arm64",
        &[],
        &[],
    );

    // Same inputs, same bytes: a second cold build.
    factory.factory.builds.cache.clear().unwrap();
    let second = download(&factory, &path, &work.path().join("again.raw.xz")).await;
    assert!(first == second, "two cold builds of the board image differ");
}

#[tokio::test(flavor = "multi_thread")]
async fn misbehaving_installers_fail_their_build_and_leave_nothing() {
    let factory = TestFactory::start(|config| {
        config.build.overlay_installer_timeout = "3s".into();
    })
    .await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    let outside = std::env::temp_dir().join(format!("image-factory-escape-{}", std::process::id()));
    let _ = std::fs::remove_file(&outside);
    let escapes = format!(
        "  options:\n    connectTo: {address}\n    writeTo: {}\n",
        outside.display()
    );
    for (name, options, message) in [
        ("fails", "", "the board refuses to install"),
        ("sleeps", "", "did not finish within 3s"),
        ("escapes", escapes.as_str(), "Permission denied"),
    ] {
        let id = factory.create_schematic(&board(name, options)).await;
        let response = factory
            .get(&format!("/image/{id}/{VERSION}/metal-arm64.raw.xz"))
            .await;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, 400, "{name}: {body}");
        assert!(
            body.contains(&format!("overlay installer {name} install")) && body.contains(message),
            "{name}: {body}"
        );
        assert_eq!(cache_entries(&factory), 0, "{name} left a cache entry");
    }
    assert!(
        !outside.exists(),
        "the escapes installer wrote {}",
        outside.display()
    );
    assert!(
        listener.accept().is_err(),
        "the escapes installer reached {address}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_overlay_requests_are_refused_with_the_value() {
    let factory = TestFactory::start(|_| {}).await;
    let bogus = factory
        .create_schematic(&board("qemu_arm64", "  options:\n    bogus: 1\n"))
        .await;
    let unknown = factory.create_schematic(&board("nonesuch", "")).await;
    let no_installer = factory.create_schematic(&board("no-installer", "")).await;
    let good = factory.create_schematic(QEMU_BOARD).await;
    for (id, version, path, message) in [
        (
            &bogus,
            VERSION,
            "metal-arm64.raw.xz",
            "unknown option \"bogus\"",
        ),
        (
            &unknown,
            VERSION,
            "metal-arm64.raw.xz",
            "overlay \"nonesuch\" is not available for Talos version v1.12.0",
        ),
        (
            &no_installer,
            VERSION,
            "metal-arm64.raw.xz",
            "no installer \"no-installer\"",
        ),
        (
            &good,
            VERSION,
            "metal-amd64.raw.zst",
            "overlay \"qemu_arm64\" is for arm64 boards",
        ),
        (
            &good,
            "v1.6.0",
            "metal-arm64.raw.xz",
            "overlay is not supported for Talos version v1.6.0",
        ),
    ] {
        let response = factory.get(&format!("/image/{id}/{version}/{path}")).await;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(message), "{message:?} in {body}");
    }
    assert_eq!(cache_entries(&factory), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_arm64_installer_carries_the_overlay_layer() {
    let work = tempfile::tempdir().unwrap();
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(QEMU_BOARD).await;
    let host = factory.base.trim_start_matches("http://").to_string();
    let layout = work.path().join("layout");
    // skopeo checks every manifest and blob digest on the way.
    run(Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--override-arch",
            "arm64",
        ])
        .arg(format!("docker://{host}/metal-installer/{id}:{VERSION}"))
        .arg(format!("oci:{}:installer", layout.display())));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{manifest}");
    let overlay = blob(layers[2]["digest"].as_str().unwrap());
    let listing = run(Command::new("tar").arg("-tvzf").arg(&overlay));
    let installer_line = listing
        .lines()
        .find(|line| line.ends_with(" overlay/installers/default"))
        .expect(&listing);
    assert!(installer_line.starts_with("-rwxr-xr-x"), "{listing}");
    for file in [
        "overlay/extra-options",
        "overlay/artifacts/arm64/u-boot/qemu_arm64/u-boot.bin",
        "overlay/artifacts/arm64/firmware/boot/config.txt",
    ] {
        assert!(
            listing
                .lines()
                .any(|line| line.ends_with(&format!(" {file}"))),
            "{file} in {listing}"
        );
    }
    let unpacked = work.path().join("overlay");
    std::fs::create_dir_all(&unpacked).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&overlay)
        .arg("-C")
        .arg(&unpacked));
    let options = std::fs::read_to_string(unpacked.join("overlay/extra-options")).unwrap();
    assert_eq!(options, "configTxtAppend: dtparam=fixture=on\n");
    // The payload is the arm64 image's, not the one the factory ran.
    let arch =
        std::fs::read_to_string(unpacked.join("overlay/artifacts/arm64/image-arch")).unwrap();
    assert_eq!(arch, "arm64\n");
    // The program speaks the protocol.
    let answer = run(Command::new(unpacked.join("overlay/installers/default"))
        .arg("get-options")
        .stdin(std::fs::File::open(unpacked.join("overlay/extra-options")).unwrap()));
    assert!(answer.contains("offset: 20480"), "{answer}");
}
