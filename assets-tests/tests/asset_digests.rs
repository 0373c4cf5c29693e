//! Every asset kind of the fixture release, built through the HTTP frontend and hashed, against
//! the digests recorded in `assets-tests/digests/fixture-release.txt`: a restructuring of the
//! service or the engine must keep every byte.
//!
//! The record starts with the fixture release's identity (the digests of its image manifests,
//! signatures left out because they differ per generation). The fixture release is made of
//! Debian packages, so a Debian update changes it, and with it every asset; the comparison then
//! has nothing to compare with and says so. Re-record on an unchanged main with
//! `IMAGE_FACTORY_RECORD_DIGESTS=1 cargo test -p assets-tests --test asset_digests`.

use assets_tests::{TestFactory, fixture_release, layout_references, workspace};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Extensions, META, kernel arguments: everything a non-Secure-Boot asset depends on.
const CUSTOM: &str = "customization:
  extraKernelArgs:
    - vga=791
    - talos.digest=check
  meta:
    - key: 0xa
      value: '{\"digest\": true}'
  systemExtensions:
    officialExtensions:
      - siderolabs/gvisor
      - siderolabs/amd-ucode
";

/// `(version, schematic, path)`: one of every asset kind, both architectures, every
/// bootloader era of the fixture release.
const ASSETS: &[(&str, &str, &str)] = &[
    ("v1.12.0", "custom", "kernel-amd64"),
    ("v1.12.0", "custom", "kernel-arm64"),
    ("v1.12.0", "custom", "cmdline-metal-amd64"),
    ("v1.12.0", "custom", "cmdline-aws-arm64"),
    ("v1.12.0", "custom", "initramfs-amd64.xz"),
    ("v1.12.0", "custom", "initramfs-arm64.xz"),
    ("v1.12.0", "custom", "metal-amd64-uki.efi"),
    ("v1.12.0", "custom", "metal-arm64-uki.efi"),
    ("v1.12.0", "custom", "metal-amd64.iso"),
    ("v1.12.0", "custom", "metal-arm64.iso"),
    ("v1.12.0", "custom", "metal-amd64.raw"),
    ("v1.12.0", "custom", "metal-amd64.raw.zst"),
    ("v1.12.0", "custom", "metal-amd64.raw.xz"),
    ("v1.12.0", "custom", "metal-arm64.raw.xz"),
    ("v1.12.0", "custom", "metal-amd64.qcow2"),
    ("v1.12.0", "custom", "exoscale-amd64.qcow2"),
    ("v1.12.0", "custom", "aws-amd64.raw.xz"),
    ("v1.12.0", "custom", "azure-amd64.vhd.xz"),
    ("v1.12.0", "custom", "vmware-amd64.ova"),
    ("v1.12.0", "custom", "gcp-amd64.raw.tar.gz"),
    ("v1.12.0", "custom", "digital-ocean-amd64.raw.gz"),
    ("v1.12.0", "custom", "installer-amd64.tar"),
    ("v1.12.0", "custom", "installer-arm64.tar"),
    ("v1.12.0", "custom", "metal-amd64.iso.sha256"),
    ("v1.12.0", "vanilla", "metal-amd64.raw.zst"),
    ("v1.12.0", "vanilla", "metal-amd64-uki.efi"),
    ("v1.13.0-beta.0", "custom", "metal-amd64.raw.zst"),
    ("v1.13.0-beta.0", "custom", "metal-amd64-uki.efi"),
    ("v1.11.5", "custom", "metal-amd64.raw.zst"),
    ("v1.11.5", "custom", "metal-amd64.iso"),
    ("v1.9.6", "custom", "initramfs-amd64.xz"),
    ("v1.9.6", "custom", "cmdline-metal-amd64"),
    ("v1.9.6", "custom", "metal-amd64.raw.zst"),
    ("v1.9.6", "custom", "metal-arm64.raw.zst"),
    ("v1.9.6", "custom", "metal-amd64.iso"),
    ("v1.9.6", "custom", "metal-amd64.qcow2"),
    ("v1.9.6", "custom", "installer-amd64.tar"),
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

/// The digests of the fixture release's image manifests, signatures left out.
fn fixture_identity() -> String {
    let release = fixture_release();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(release.join("index.json")).unwrap()).unwrap();
    let mut images: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| {
            let name = entry["annotations"]["org.opencontainers.image.ref.name"].as_str()?;
            let digest = entry["digest"].as_str()?;
            (!name.ends_with(".sig")).then(|| format!("{name}@{digest}"))
        })
        .collect();
    images.sort();
    assert_eq!(
        images.len(),
        layout_references(&release)
            .iter()
            .filter(|name| !name.ends_with(".sig"))
            .count()
    );
    hex(&Sha256::digest(images.join("\n")))
}

/// Streams `GET path` through SHA-256; returns the digest and the length.
async fn digest_of(factory: &TestFactory, path: &str) -> (String, u64) {
    let response = factory.get(path).await;
    let status = response.status();
    if status != 200 {
        let body = response.text().await.unwrap_or_default();
        panic!("{path}: {status}: {body}");
    }
    let mut hasher = Sha256::new();
    let mut length = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("body chunk");
        length += chunk.len() as u64;
        hasher.update(&chunk);
    }
    (hex(&hasher.finalize()), length)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_asset_keeps_its_bytes() {
    let factory = TestFactory::start(|_| {}).await;
    let custom = factory.create_schematic(CUSTOM).await;
    let vanilla = factory.create_schematic("customization: {}\n").await;

    let mut computed = BTreeMap::new();
    for (version, schematic, path) in ASSETS {
        let id = if *schematic == "custom" {
            &custom
        } else {
            &vanilla
        };
        let digest = digest_of(&factory, &format!("/image/{id}/{version}/{path}")).await;
        computed.insert(format!("image {schematic} {version} {path}"), digest);
    }
    for (version, path) in [("v1.12.0", "metal-amd64"), ("v1.9.6", "metal-amd64")] {
        let digest = digest_of(&factory, &format!("/pxe/{custom}/{version}/{path}")).await;
        computed.insert(format!("pxe custom {version} {path}"), digest);
    }
    let digest = digest_of(
        &factory,
        &format!("/v2/installer/{custom}/manifests/v1.12.0"),
    )
    .await;
    computed.insert("registry custom v1.12.0 installer-index".into(), digest);

    let identity = fixture_identity();
    let mut record = format!("fixture-release {identity}\n");
    for (name, (digest, length)) in &computed {
        let _ = writeln!(record, "{name} {digest} {length}");
    }
    let file = workspace().join("assets-tests/digests/fixture-release.txt");
    if std::env::var_os("IMAGE_FACTORY_RECORD_DIGESTS").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &record).unwrap();
        eprintln!("recorded {} digests in {}", computed.len(), file.display());
        return;
    }
    let recorded = std::fs::read_to_string(&file)
        .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
    let recorded_identity = recorded
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("fixture-release "))
        .expect("the record starts with the fixture release's identity");
    if recorded_identity != identity {
        eprintln!(
            "NOTE: the fixture release is not the one the digests were recorded from \
             ({identity} here, {recorded_identity} recorded): Debian's packages changed. \
             Re-record on an unchanged main with IMAGE_FACTORY_RECORD_DIGESTS=1."
        );
        return;
    }
    let mismatches: Vec<String> = record
        .lines()
        .zip(recorded.lines())
        .filter(|(ours, theirs)| ours != theirs)
        .map(|(ours, theirs)| format!("  built    {ours}\n  recorded {theirs}"))
        .collect();
    assert!(
        mismatches.is_empty() && record.lines().count() == recorded.lines().count(),
        "assets changed:\n{}",
        mismatches.join("\n")
    );
}
