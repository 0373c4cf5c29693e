//! Installer images as `docker save` tarballs, read by skopeo (inspect, and a copy into an OCI
//! layout, which checks every blob digest), tar and gzip; the layer diff ids are recomputed
//! with sha256sum, and the UKI the installer carries boots under OVMF.

use assets_tests::{
    TestFactory, boot_uefi_disk, esp_with_loader, expect_fixture_boot, fixture_lines, run,
};
use std::path::Path;
use std::process::Command;

const SCHEMATIC: &str = "customization:
  extraKernelArgs:
    - console=ttyS0
  systemExtensions:
    officialExtensions:
      - siderolabs/gvisor
";

fn sh(script: &str) -> String {
    run(Command::new("sh").args(["-ec", script]))
}

async fn download(factory: &TestFactory, path: &str, into: &Path) -> std::path::PathBuf {
    let response = factory.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    let file = into.join(path.rsplit('/').next().unwrap());
    std::fs::write(&file, response.bytes().await.unwrap()).unwrap();
    file
}

/// Unpacks the tarball into `dir` and returns `manifest.json`'s entry and the config.
fn unpack(tarball: &Path, dir: &Path) -> (serde_json::Value, serde_json::Value) {
    std::fs::create_dir_all(dir).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(tarball)
        .arg("-C")
        .arg(dir));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let entry = manifest[0].clone();
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join(entry["Config"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    (entry, config)
}

/// `tar -tv` of a gzip layer, and the sha256 of the layer uncompressed.
fn layer(dir: &Path, name: &str) -> (String, String) {
    let path = dir.join(name);
    let listing = run(Command::new("tar").arg("-tvzf").arg(&path));
    let digest = sh(&format!("gzip -dc '{}' | sha256sum", path.display()));
    (
        listing,
        format!("sha256:{}", digest.split_whitespace().next().unwrap()),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn installer_tarball_extends_the_base_with_the_uki_and_boots() {
    let work = tempfile::tempdir().unwrap();
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(SCHEMATIC).await;
    let tarball = download(
        &factory,
        &format!("/image/{id}/v1.12.0/installer-amd64.tar"),
        work.path(),
    )
    .await;

    let inspect = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("docker-archive:{}", tarball.display())));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2, "{inspect}");
    // skopeo checks every blob against its digest on the way into a layout.
    run(Command::new("skopeo")
        .arg("copy")
        .arg("-q")
        .arg(format!("docker-archive:{}", tarball.display()))
        .arg(format!(
            "oci:{}:installer",
            work.path().join("layout").display()
        )));

    let dir = work.path().join("unpacked");
    let (entry, config) = unpack(&tarball, &dir);
    assert_eq!(
        entry["RepoTags"][0],
        "ghcr.io/siderolabs/installer-base:v1.12.0"
    );
    let base = run(Command::new("skopeo")
        .arg("inspect")
        .arg("--config")
        .arg(format!(
            "oci:{}:ghcr.io/siderolabs/installer-base:v1.12.0",
            assets_tests::fixture_release().display()
        )));
    let base: serde_json::Value = serde_json::from_str(&base).unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids[0], base["rootfs"]["diff_ids"][0]);
    assert_eq!(config["architecture"], "amd64");

    let layers = entry["Layers"].as_array().unwrap();
    let (base_listing, base_diff) = layer(&dir, layers[0].as_str().unwrap());
    assert_eq!(diff_ids[0], base_diff.as_str(), "{base_listing}");
    let (listing, diff) = layer(&dir, layers[1].as_str().unwrap());
    assert_eq!(diff_ids[1], diff.as_str());
    let rows: Vec<&str> = listing.lines().collect();
    assert_eq!(rows.len(), 2, "{listing}");
    for (row, name) in rows.iter().zip([
        "usr/install/amd64/systemd-boot.efi",
        "usr/install/amd64/vmlinuz.efi",
    ]) {
        assert!(row.starts_with("---------- 0/0"), "mode 0, root: {row}");
        assert!(
            row.contains("1970-01-01 00:00") && row.ends_with(name),
            "{row}"
        );
    }

    let artifacts = work.path().join("artifacts");
    std::fs::create_dir(&artifacts).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(dir.join(layers[1].as_str().unwrap()))
        .arg("-C")
        .arg(&artifacts));
    let uki = artifacts.join("usr/install/amd64/vmlinuz.efi");
    let sections = run(Command::new("objdump").arg("-h").arg(&uki));
    assert!(
        sections.contains(".profile") && sections.contains(".cmdline"),
        "{sections}"
    );
    let imager = factory.imager("v1.12.0").await;
    assert!(
        std::fs::read(artifacts.join("usr/install/amd64/systemd-boot.efi")).unwrap()
            == imager.file("usr/install/amd64/systemd-boot.efi").unwrap(),
        "systemd-boot from the release"
    );

    let esp = esp_with_loader(&uki, work.path());
    let lines = fixture_lines(&boot_uefi_disk(&esp, work.path()));
    expect_fixture_boot(
        &lines,
        "v1.12.0",
        &id,
        "talos.platform=metal",
        &["gvisor"],
        &[],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn installers_by_version_and_platform() {
    let work = tempfile::tempdir().unwrap();
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(SCHEMATIC).await;

    // Before 1.10: the full installer's first layer, then kernel and initramfs.
    let old = download(
        &factory,
        &format!("/image/{id}/v1.9.6/installer-amd64.tar"),
        work.path(),
    )
    .await;
    let dir = work.path().join("old");
    let (entry, _) = unpack(&old, &dir);
    assert_eq!(entry["RepoTags"][0], "ghcr.io/siderolabs/installer:v1.9.6");
    let layers = entry["Layers"].as_array().unwrap();
    let (listing, _) = layer(&dir, layers.last().unwrap().as_str().unwrap());
    assert!(
        listing.contains("usr/install/amd64/initramfs.xz")
            && listing.contains("usr/install/amd64/vmlinuz")
            && !listing.contains("vmlinuz.efi"),
        "{listing}"
    );

    // A platform installer differs in the UKI's command line.
    let aws = download(
        &factory,
        &format!("/image/{id}/v1.12.0/aws-installer-arm64.tar"),
        work.path(),
    )
    .await;
    let dir = work.path().join("aws");
    let (entry, config) = unpack(&aws, &dir);
    assert_eq!(config["architecture"], "arm64");
    let layers = entry["Layers"].as_array().unwrap();
    let artifacts = work.path().join("aws-artifacts");
    std::fs::create_dir(&artifacts).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(dir.join(layers.last().unwrap().as_str().unwrap()))
        .arg("-C")
        .arg(&artifacts));
    let uki = std::fs::read(artifacts.join("usr/install/arm64/vmlinuz.efi")).unwrap();
    assert!(
        uki.windows(b"talos.platform=aws".len())
            .any(|window| window == b"talos.platform=aws"),
        "the aws command line in the UKI"
    );

    let secureboot = factory
        .get(&format!(
            "/image/{id}/v1.12.0/installer-amd64-secureboot.tar"
        ))
        .await;
    assert_eq!(secureboot.status(), 400);
}
