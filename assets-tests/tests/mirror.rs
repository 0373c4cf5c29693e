//! `image-factory mirror` from Debian's `docker-registry` holding one version of the fixture
//! release into a fresh OCI layout and into a second registry; factories serving each,
//! keyless verification on, answer the same catalogs and build the same bytes as one serving
//! the first registry; a second run copies nothing.

use assets_tests::{
    LocalRegistry, TestFactory, factory_binary, fixture_release, layout_references, workspace,
};
use image_factory::config::ContainerSignatureConfig;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = "v1.12.0";

/// The digests of `digest` and, for an index, of its manifests.
fn manifest_closure(layout: &Path, digest: &str, into: &mut BTreeSet<String>) {
    into.insert(digest.trim_start_matches("sha256:").to_string());
    let bytes = std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .expect("manifest blob");
    let value: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    for entry in value["manifests"].as_array().into_iter().flatten() {
        manifest_closure(layout, entry["digest"].as_str().expect("digest"), into);
    }
}

/// The references of one version of the release, with the signatures of their manifests.
fn one_version(release: &Path) -> Vec<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(release.join("index.json")).unwrap()).unwrap();
    let mut wanted = Vec::new();
    let mut digests = BTreeSet::new();
    for entry in index["manifests"].as_array().unwrap() {
        let name = entry["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .unwrap();
        let tag = name.rsplit_once(':').unwrap().1;
        if tag.ends_with(VERSION) || name.contains("/sbc-") {
            wanted.push(name.to_string());
            manifest_closure(release, entry["digest"].as_str().unwrap(), &mut digests);
        }
    }
    for name in layout_references(release) {
        let tag = name.rsplit_once(':').unwrap().1;
        let subject = tag.trim_start_matches("sha256-").trim_end_matches(".sig");
        if tag.starts_with("sha256-") && digests.contains(subject) {
            wanted.push(name);
        }
    }
    wanted
}

fn keyless() -> ContainerSignatureConfig {
    ContainerSignatureConfig {
        trusted_root_file: workspace().join("fixtures/sigstore/trusted_root.json"),
        ..ContainerSignatureConfig::default()
    }
}

fn mirror(config: &Path, target: &[&str]) -> String {
    let output = Command::new(factory_binary())
        .args(["mirror", "--config"])
        .arg(config)
        .args(["--version", VERSION])
        .args(target)
        .output()
        .expect("image-factory runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "mirror failed: {stderr}");
    stderr
}

#[tokio::test]
async fn a_mirrored_layout_serves_what_the_registry_serves() {
    let release = fixture_release();
    let registry = LocalRegistry::start();
    registry.push_from_layout(&release, &one_version(&release));

    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("mirror.yaml");
    std::fs::write(
        &config,
        format!(
            "artifacts:\n  core:\n    registry: {}\ncontainerSignature:\n  trustedRootFile: {}\n",
            registry.address,
            workspace()
                .join("fixtures/sigstore/trusted_root.json")
                .display()
        ),
    )
    .unwrap();
    let layout = work.path().join("layout");
    let second_registry = LocalRegistry::start();
    let layout_text = layout.display().to_string();
    for target in [
        ["--to", layout_text.as_str()],
        ["--to-registry", second_registry.address.as_str()],
    ] {
        let first = mirror(&config, &target);
        assert!(first.contains("mirrored "), "{first}");
        assert!(!first.contains(" 0 blobs copied"), "{first}");
        let second = mirror(&config, &target);
        assert!(
            second.contains(": 0 blobs copied (0.0 MiB)"),
            "a second run copies nothing: {second}"
        );
    }

    let address = registry.address.clone();
    let from_registry = TestFactory::start(move |config| {
        config.artifacts.oci_layout = PathBuf::new();
        config.artifacts.core.registry = address;
        config.container_signature = keyless();
    })
    .await;
    let mirrored = layout.clone();
    let from_layout = TestFactory::start(move |config| {
        config.artifacts.oci_layout = mirrored;
        config.container_signature = keyless();
    })
    .await;

    let address = second_registry.address.clone();
    let from_second_registry = TestFactory::start(move |config| {
        config.artifacts.oci_layout = PathBuf::new();
        config.artifacts.core.registry = address;
        config.container_signature = keyless();
    })
    .await;
    let normalise = |text: String| text.replace(&registry.address, "ghcr.io");
    let normalise_second = |text: String| text.replace(&second_registry.address, "ghcr.io");
    for path in [
        "/versions".to_string(),
        format!("/version/{VERSION}/extensions/official"),
        format!("/version/{VERSION}/overlays/official"),
        format!("/talosctl/{VERSION}"),
    ] {
        let expected = from_registry.get(&path).await;
        assert_eq!(expected.status(), 200, "{path} from the registry");
        let served = from_layout.get(&path).await;
        assert_eq!(served.status(), 200, "{path} from the layout");
        let expected = normalise(expected.text().await.unwrap());
        assert_eq!(expected, served.text().await.unwrap(), "{path}");
        let pushed = from_second_registry.get(&path).await;
        assert_eq!(pushed.status(), 200, "{path} from the second registry");
        assert_eq!(
            expected,
            normalise_second(pushed.text().await.unwrap()),
            "{path}"
        );
    }

    let schematic =
        "customization:\n  systemExtensions:\n    officialExtensions:\n      - siderolabs/gvisor\n";
    let id = from_registry.create_schematic(schematic).await;
    assert_eq!(from_layout.create_schematic(schematic).await, id);
    assert_eq!(from_second_registry.create_schematic(schematic).await, id);
    for asset in ["kernel-amd64", "initramfs-amd64.xz"] {
        let path = format!("/image/{id}/{VERSION}/{asset}");
        let expected = from_registry.get(&path).await;
        assert_eq!(expected.status(), 200, "{path} from the registry");
        let served = from_layout.get(&path).await;
        assert_eq!(served.status(), 200, "{path} from the layout");
        let expected = expected.bytes().await.unwrap();
        assert!(
            expected == served.bytes().await.unwrap(),
            "{asset}: the same bytes"
        );
        let pushed = from_second_registry.get(&path).await;
        assert_eq!(pushed.status(), 200, "{path} from the second registry");
        assert!(
            expected == pushed.bytes().await.unwrap(),
            "{asset}: the same bytes"
        );
    }
}
