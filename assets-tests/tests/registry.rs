//! The `/v2` registry frontend pulled by skopeo as a node's container runtime would: the
//! installer index of both architectures, every blob checked against its digest on the way
//! into an OCI layout, the artifacts layer holding the schematic's UKI, and the registry
//! errors for unknown schematics, bad image names and unknown digests.

use assets_tests::{TestFactory, run, verify_cosign_signature};
use sha2::{Digest, Sha256};
use std::process::Command;

const SCHEMATIC: &str = "customization:
  extraKernelArgs:
    - fixture.marker=registry
";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_pulls_the_installer_of_both_architectures() {
    let work = tempfile::tempdir().unwrap();
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(SCHEMATIC).await;
    let host = factory.base.trim_start_matches("http://").to_string();
    let reference = format!("docker://{host}/installer/{id}:v1.12.0");

    let raw = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(&reference));
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"]);

    // skopeo verifies every manifest and blob digest while copying.
    let layout = work.path().join("layout");
    run(Command::new("skopeo")
        .args(["copy", "-q", "--all", "--src-tls-verify=false"])
        .arg(&reference)
        .arg(format!("oci:{}:installer", layout.display())));

    // The arm64 image: the base layer, then the artifacts with the arm64 UKI.
    let arm64 = &index["manifests"][1]["digest"];
    let manifest = factory
        .get(&format!(
            "/v2/installer/{id}/manifests/{}",
            arm64.as_str().unwrap()
        ))
        .await;
    assert_eq!(manifest.status(), 200);
    assert_eq!(
        manifest.headers()["content-type"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest.headers()["docker-content-digest"],
        arm64.as_str().unwrap()
    );
    let manifest_bytes = manifest.bytes().await.unwrap();
    assert_eq!(sha256(&manifest_bytes), arm64.as_str().unwrap());
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    let artifacts = layers[1]["digest"].as_str().unwrap();
    let blob = factory
        .get(&format!("/v2/installer/{id}/blobs/{artifacts}"))
        .await;
    assert_eq!(blob.status(), 200);
    assert_eq!(blob.headers()["docker-content-digest"], artifacts);
    let blob = blob.bytes().await.unwrap();
    assert_eq!(sha256(&blob), artifacts);
    let layer = work.path().join("artifacts.tar.gz");
    std::fs::write(&layer, &blob).unwrap();
    let listing = run(Command::new("tar").arg("-tzf").arg(&layer));
    assert_eq!(
        listing.lines().collect::<Vec<_>>(),
        [
            "usr/install/arm64/systemd-boot.efi",
            "usr/install/arm64/vmlinuz.efi"
        ]
    );
    let unpacked = work.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&layer)
        .arg("-C")
        .arg(&unpacked));
    let uki = std::fs::read(unpacked.join("usr/install/arm64/vmlinuz.efi")).unwrap();
    assert!(
        uki.windows(b"fixture.marker=registry".len())
            .any(|window| window == b"fixture.marker=registry"),
        "the schematic's command line in the UKI"
    );

    // HEAD gives the index digest without a body; the tag is stable across pulls.
    let client = reqwest::Client::new();
    let head = client
        .head(format!(
            "{}/v2/installer/{id}/manifests/v1.12.0",
            factory.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["docker-content-digest"],
        sha256(raw.trim_end().as_bytes())
    );
    assert_eq!(
        head.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );

    let referrers = factory
        .get(&format!(
            "/v2/installer/{id}/referrers/{}",
            arm64.as_str().unwrap()
        ))
        .await;
    assert_eq!(referrers.status(), 200);
    let referrers: serde_json::Value = referrers.json().await.unwrap();
    assert_eq!(referrers["manifests"], serde_json::json!([]));

    // The index is cosign-signed with the factory's key: checked here with openssl.
    let index_digest = sha256(raw.trim_end().as_bytes());
    verify_cosign_signature(
        &factory,
        &format!("installer/{id}"),
        &index_digest,
        work.path(),
    )
    .await;
    let unsigned = factory
        .get(&format!(
            "/v2/installer/{id}/manifests/sha256-{}.sig",
            "0".repeat(64)
        ))
        .await;
    assert_eq!(unsigned.status(), 404);

    // A platform installer is another repository with its own command line.
    let aws = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{host}/aws-installer/{id}:v1.12.0")));
    assert_ne!(aws, raw);
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_errors() {
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(SCHEMATIC).await;
    let status = |path: String| {
        let factory = &factory;
        async move { factory.get(&path).await.status().as_u16() }
    };
    assert_eq!(status("/v2/".into()).await, 200);
    assert_eq!(
        status(format!("/v2/imager/{id}/manifests/v1.12.0")).await,
        400
    );
    assert_eq!(
        status(format!(
            "/v2/installer/{}/manifests/v1.12.0",
            "0".repeat(64)
        ))
        .await,
        404
    );
    assert_eq!(
        status(format!(
            "/v2/installer/{id}/blobs/sha256:{}",
            "0".repeat(64)
        ))
        .await,
        404
    );
    assert_eq!(
        status(format!("/v2/installer/{id}/blobs/nonsense")).await,
        404
    );
    assert_eq!(status(format!("/v2/installer/{id}/tags/list")).await, 404);
    assert_eq!(
        status(format!("/v2/a/b/installer/{id}/manifests/v1.12.0")).await,
        404
    );
    assert_eq!(
        status(format!("/v2/installer/{id}/referrers/sha256:abc")).await,
        404
    );
    assert_eq!(
        status(format!("/v2/installer/{id}/manifests/v1.99.0")).await,
        404
    );
    let body = factory
        .get(&format!("/v2/imager/{id}/manifests/v1.12.0"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(body, "invalid image: imager\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn source_images_are_served_from_the_configured_source() {
    let work = tempfile::tempdir().unwrap();
    let factory = TestFactory::start(|_| {}).await;
    let host = factory.base.trim_start_matches("http://").to_string();
    let reference = format!("docker://{host}/siderolabs/installer-base:v1.12.0");
    let ours = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(&reference));
    let fixture = run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!(
            "oci:{}:ghcr.io/siderolabs/installer-base:v1.12.0",
            assets_tests::fixture_release().display()
        )));
    assert_eq!(ours, fixture, "the manifest as stored");
    run(Command::new("skopeo")
        .args(["copy", "-q", "--all", "--src-tls-verify=false"])
        .arg(&reference)
        .arg(format!("oci:{}:base", work.path().join("layout").display())));

    let tags: serde_json::Value = factory
        .get("/v2/siderolabs/installer-base/tags/list")
        .await
        .json()
        .await
        .unwrap();
    let tags: Vec<&str> = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tag| tag.as_str().unwrap())
        .collect();
    assert!(tags.contains(&"v1.12.0"), "{tags:?}");
    // Cosign signature tags pass through unchanged.
    let index_digest = sha256(ours.trim_end().as_bytes());
    let signature_tag = format!("sha256-{}.sig", index_digest.trim_start_matches("sha256:"));
    assert!(tags.contains(&signature_tag.as_str()), "{tags:?}");
    let signature = factory
        .get(&format!(
            "/v2/siderolabs/installer-base/manifests/{signature_tag}"
        ))
        .await;
    assert_eq!(signature.status(), 200);

    let unknown = factory.get("/v2/siderolabs/nope/manifests/v1.12.0").await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.text().await.unwrap(), "unknown image: nope\n");
    let missing = factory.get("/v2/siderolabs/imager/manifests/v9.9.9").await;
    assert_eq!(missing.status(), 404);
}
