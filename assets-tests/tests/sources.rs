//! Reading the fixture release through both source kinds (OCI layout, and a real registry
//! filled by skopeo), signature checks against tampering and wrong keys, unsafe layers, and
//! skopeo's own reading of the generated layout.

use assets_tests::{
    LocalRegistry, fixture_public_key, fixture_release, layout_references, other_public_key, run,
};
use image_factory::source::catalog::{CatalogConfig, Catalogs};
use image_factory::source::layout::{LayoutWriter, OciLayout};
use image_factory::source::oci::{self, Digest, Manifest, ManifestKind};
use image_factory::source::registry::Registry;
use image_factory::source::{ImageRef, Images, Source, SourceError, Verifier};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn layout_images(layout: &Path, key: &Path) -> Images {
    Images::new(
        Source::Layout(OciLayout::open(layout).unwrap()),
        Verifier::from_pem_file(key).unwrap(),
    )
}

fn catalog_config(registry: &str) -> CatalogConfig {
    CatalogConfig {
        registry: registry.to_string(),
        namespace: String::new(),
        imager: "siderolabs/imager".into(),
        extension_manifest: "siderolabs/extensions".into(),
        overlay_manifest: "siderolabs/overlays".into(),
        min_version: semver::Version::new(1, 2, 0),
        broken: Vec::new(),
        recheck: Duration::from_secs(900),
    }
}

fn copy_layout(into: &Path) -> std::path::PathBuf {
    let copy = into.join("release");
    run(Command::new("cp")
        .arg("-a")
        .arg(fixture_release())
        .arg(&copy));
    copy
}

#[tokio::test]
async fn registry_and_layout_give_identical_images_and_catalogs() {
    let release = fixture_release();
    let registry = LocalRegistry::start();
    let repositories = ["imager", "extensions", "overlays", "gvisor", "dummy-driver"];
    let references: Vec<String> = layout_references(&release)
        .into_iter()
        .filter(|reference| {
            repositories
                .iter()
                .any(|repo| reference.starts_with(&format!("ghcr.io/siderolabs/{repo}:")))
        })
        .collect();
    registry.push_from_layout(&release, &references);

    let from_layout = Arc::new(layout_images(&release, &fixture_public_key()));
    let from_registry = Arc::new(Images::new(
        Source::Registry(Registry::new(BTreeSet::from([registry.address.clone()]))),
        Verifier::from_pem_file(&fixture_public_key()).unwrap(),
    ));
    let layout_catalogs = Catalogs::new(from_layout.clone(), catalog_config("ghcr.io"));
    let registry_catalogs = Catalogs::new(from_registry.clone(), catalog_config(&registry.address));

    let versions = layout_catalogs.versions().await.unwrap();
    assert_eq!(versions, registry_catalogs.versions().await.unwrap());
    let v1_12 = semver::Version::new(1, 12, 0);
    let layout_extensions = layout_catalogs.extensions(&v1_12).await.unwrap();
    let registry_extensions = registry_catalogs.extensions(&v1_12).await.unwrap();
    assert_eq!(layout_extensions.len(), registry_extensions.len());
    for (a, b) in layout_extensions.iter().zip(registry_extensions.iter()) {
        assert_eq!((&a.name, &a.digest), (&b.name, &b.digest));
        assert_eq!(
            b.reference,
            a.reference.replacen("ghcr.io", &registry.address, 1)
        );
    }

    let gvisor = layout_extensions
        .iter()
        .find(|extension| extension.name == "siderolabs/gvisor")
        .unwrap();
    let cases = [
        ("siderolabs/imager", "v1.12.0", None, "amd64"),
        ("siderolabs/imager", "v1.12.0", None, "arm64"),
        ("siderolabs/extensions", "v1.12.0", None, "amd64"),
        (
            "siderolabs/gvisor",
            "",
            Some(gvisor.digest.as_str()),
            "arm64",
        ),
    ];
    for (repository, tag, digest, arch) in cases {
        let image = |registry: &str| {
            let base =
                ImageRef::with_tag(registry, repository, if tag.is_empty() { "x" } else { tag });
            match digest {
                Some(digest) => base.with_digest(Digest::parse(digest).unwrap()),
                None => base,
            }
        };
        let a = from_layout.pull(&image("ghcr.io"), arch).await.unwrap();
        let b = from_registry
            .pull(&image(&registry.address), arch)
            .await
            .unwrap();
        assert_eq!(a.digest, b.digest, "{repository} {arch}");
        assert_eq!(a.tree, b.tree, "{repository} {arch}: identical files");
        assert!(!a.tree.entries().is_empty());
    }
    let imager = from_layout
        .pull(
            &ImageRef::with_tag("ghcr.io", "siderolabs/imager", "v1.12.0"),
            "amd64",
        )
        .await
        .unwrap();
    for file in [
        "usr/install/amd64/vmlinuz",
        "usr/install/amd64/initramfs.xz",
        "usr/install/amd64/systemd-boot.efi",
        "usr/install/amd64/systemd-stub.efi",
        "usr/install/arm64/vmlinuz",
        "usr/install/arm64/initramfs.xz",
        "usr/lib/grub/i386-pc/boot.img",
        "usr/lib/grub/x86_64-efi/normal.mod",
        "usr/lib/grub/arm64-efi/normal.mod",
    ] {
        assert!(imager.tree.file(file).is_some(), "imager has {file}");
    }
}

fn imager_ref() -> ImageRef {
    ImageRef::with_tag("ghcr.io", "siderolabs/imager", "v1.12.0")
}

fn extensions_ref() -> ImageRef {
    ImageRef::with_tag("ghcr.io", "siderolabs/extensions", "v1.12.0")
}

async fn resolve(images: &Images, image: &ImageRef) -> (Digest, Manifest) {
    let (bytes, digest) = images.source.manifest(image).await.unwrap();
    let ManifestKind::Index(index) = ManifestKind::parse(&bytes).unwrap() else {
        panic!("fixture images are indexes")
    };
    let (bytes, _) = images
        .source
        .manifest(&image.with_digest(index.manifests[0].digest.clone()))
        .await
        .unwrap();
    let ManifestKind::Image(manifest) = ManifestKind::parse(&bytes).unwrap() else {
        panic!("platform manifests are images")
    };
    (digest, manifest)
}

#[tokio::test]
async fn a_wrong_key_is_refused_naming_the_image() {
    let images = layout_images(&fixture_release(), &other_public_key());
    let error = images.pull(&imager_ref(), "amd64").await.unwrap_err();
    let SourceError::Signature { image, reason } = &error else {
        panic!("expected a signature error, got {error}")
    };
    assert!(
        image.starts_with("ghcr.io/siderolabs/imager@sha256:"),
        "{image}"
    );
    assert!(
        reason.contains("does not match any configured public key"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_tampered_blob_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let layout = copy_layout(dir.path());
    let images = layout_images(&layout, &fixture_public_key());
    let (_, manifest) = resolve(&images, &extensions_ref()).await;
    let layer = &manifest.layers[0].digest;
    let path = layout.join("blobs/sha256").join(layer.hex());
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let error = images.pull(&extensions_ref(), "amd64").await.unwrap_err();
    assert!(
        matches!(&error, SourceError::DigestMismatch { expected, .. } if expected == layer),
        "{error}"
    );
    assert!(error.to_string().contains(layer.hex()), "{error}");
}

/// Points the layout's index entry `name` at `manifest` (written as a new blob).
fn retag(layout: &Path, name: &str, manifest: Option<&Manifest>) {
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let entries = index["manifests"].as_array_mut().unwrap();
    let position = entries
        .iter()
        .position(|entry| entry["annotations"][oci::REF_NAME] == name)
        .unwrap_or_else(|| panic!("{name} is in the layout"));
    match manifest {
        Some(manifest) => {
            let bytes = serde_json::to_vec(manifest).unwrap();
            let digest = Digest::of(&bytes);
            std::fs::write(layout.join("blobs/sha256").join(digest.hex()), &bytes).unwrap();
            entries[position]["digest"] = digest.to_string().into();
            entries[position]["size"] = bytes.len().into();
        }
        None => {
            entries.remove(position);
        }
    }
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

#[tokio::test]
async fn a_tampered_signature_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let layout = copy_layout(dir.path());
    let images = layout_images(&layout, &fixture_public_key());
    let (digest, _) = resolve(&images, &extensions_ref()).await;
    let signature_name = format!("ghcr.io/siderolabs/extensions:sha256-{}.sig", digest.hex());
    let (bytes, _) = images
        .source
        .manifest(&ImageRef::parse(&signature_name).unwrap())
        .await
        .unwrap();
    let ManifestKind::Image(mut manifest) = ManifestKind::parse(&bytes).unwrap() else {
        panic!("signature manifests are images")
    };
    // A valid signature by the right key, but over other bytes.
    let key = image_factory::sign::SigningKey::from_pem(
        &std::fs::read_to_string(assets_tests::workspace().join("fixtures/keys/cosign.key"))
            .unwrap(),
    )
    .unwrap();
    let forged = image_factory::sign::encode_signature(&key.sign(b"something else"));
    manifest.layers[0]
        .annotations
        .insert(image_factory::sign::SIGNATURE_ANNOTATION.into(), forged);
    retag(&layout, &signature_name, Some(&manifest));
    let images = layout_images(&layout, &fixture_public_key());
    let error = images.pull(&extensions_ref(), "amd64").await.unwrap_err();
    assert!(
        matches!(&error, SourceError::Signature { reason, .. } if reason.contains("does not match")),
        "{error}"
    );

    // And with the signatures gone altogether (the classic tag and the keyless bundle).
    retag(&layout, &signature_name, None);
    retag(
        &layout,
        &format!("ghcr.io/siderolabs/extensions:sha256-{}", digest.hex()),
        None,
    );
    let images = layout_images(&layout, &fixture_public_key());
    let error = images.pull(&extensions_ref(), "amd64").await.unwrap_err();
    assert!(error.to_string().contains("no signature"), "{error}");
    assert!(
        error.to_string().contains("ghcr.io/siderolabs/extensions"),
        "{error}"
    );
}

#[tokio::test]
async fn a_layer_escaping_the_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = LayoutWriter::create(dir.path()).unwrap();
    let mut header = tar::Header::new_gnu();
    let name = b"../../etc/cron.d/evil";
    header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    header.set_size(4);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, &b"evil"[..]).unwrap();
    let tar = builder.into_inner().unwrap();
    let layer = writer.put_blob(oci::LAYER_TAR, &tar).unwrap();
    let config = writer.put_blob(oci::CONFIG, b"{}").unwrap();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::MANIFEST.into()),
        config,
        layers: vec![layer],
        annotations: BTreeMap::new(),
    };
    let manifest = writer
        .put_blob(oci::MANIFEST, &serde_json::to_vec(&manifest).unwrap())
        .unwrap();
    writer.tag("ghcr.io/example/evil:v1", &manifest);
    writer.finish().unwrap();
    let images = Images::new(
        Source::Layout(OciLayout::open(dir.path()).unwrap()),
        Verifier::Disabled,
    );
    let error = images
        .pull(
            &ImageRef::parse("ghcr.io/example/evil:v1").unwrap(),
            "amd64",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SourceError::UnsafePath { path, .. } if path == "../../etc/cron.d/evil"),
        "{error}"
    );
    assert!(
        error.to_string().contains("ghcr.io/example/evil:v1"),
        "{error}"
    );
}

#[test]
fn skopeo_reads_every_image_of_the_layout() {
    let release = fixture_release();
    let references = layout_references(&release);
    assert!(references.len() > 30, "{} references", references.len());
    for reference in references {
        let raw = run(Command::new("skopeo").args([
            "inspect",
            "--raw",
            &format!("oci:{}:{reference}", release.display()),
        ]));
        assert!(ManifestKind::parse(raw.as_bytes()).is_ok(), "{reference}");
        // Signature manifests and referrers indexes are artifacts, not images.
        let tag = reference.rsplit_once(':').map_or("", |(_, tag)| tag);
        if !tag.starts_with("sha256-") {
            let inspected = run(Command::new("skopeo")
                .args(["inspect", &format!("oci:{}:{reference}", release.display())]));
            let inspected: serde_json::Value = serde_json::from_str(&inspected).unwrap();
            assert_eq!(inspected["Os"], "linux", "{reference}");
        }
    }
}
