//! Keyless (Sigstore) verification of source images against the fixture Sigstore: both
//! signature forms accepted, and every way a signature can be wrong refused with the failing
//! step named; then the same through Debian's `docker-registry` holding the fixture release.

use assets_tests::{
    LocalRegistry, TestFactory, fixture_release, layout_references, run, workspace,
};
use image_factory::config::ContainerSignatureConfig;
use image_factory::sign::sigstore::{
    Bundle, ClassicKeyless, IssuerMatch, KeylessPolicy, TrustRoot,
};
use image_factory::sign::{SimpleSigning, decode_signature};
use image_factory::source::layout::{LayoutWriter, OciLayout};
use image_factory::source::oci::{self, Digest, Manifest};
use image_factory::source::registry::Registry;
use image_factory::source::{CheckKind, ImageRef, Source, Verified, Verifier};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use xtask::sigstore::{Instance, SignOptions};

const RELEASE_IDENTITY: &str = "releasemgr-svc@talos-production.iam.gserviceaccount.com";
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn policy(instance: &Instance) -> KeylessPolicy {
    KeylessPolicy {
        trust_root: TrustRoot::from_json(&instance.trusted_root_json()).unwrap(),
        subject: regex::Regex::new(image_factory::config::DEFAULT_SUBJECT_REG_EXP).unwrap(),
        issuer: IssuerMatch::Exact("https://accounts.google.com".into()),
    }
}

fn payload() -> Vec<u8> {
    SimpleSigning::new("ghcr.io/siderolabs/imager", DIGEST).to_bytes()
}

/// Verifies against `instance`'s root a classic keyless signature `signer` made with
/// `options`, the payload tampered with when `tamper`.
fn classic(
    instance: &Instance,
    signer: &Instance,
    options: &SignOptions,
    tamper: bool,
) -> Result<(), String> {
    let payload = payload();
    let signed = signer.sign_classic(&payload, options);
    let mut checked = payload.clone();
    if tamper {
        checked[10] ^= 1;
    }
    let signature = decode_signature(&signed.signature).unwrap();
    policy(instance)
        .verify_classic(&ClassicKeyless {
            payload: &checked,
            signature: &signature,
            certificate_pem: &signed.certificate_pem,
            chain_pem: Some(&signed.chain_pem),
            rekor_bundle: Some(signed.rekor_bundle.as_bytes()),
        })
        .map(|identity| assert_eq!(identity.subject, options.identity))
        .map_err(|error| error.to_string())
}

fn bundle(instance: &Instance, signer: &Instance, options: &SignOptions) -> Result<(), String> {
    let json = signer.sign_image_bundle("ghcr.io/siderolabs/imager", DIGEST, options);
    let bundle = Bundle::parse(&json).map_err(|error| error.to_string())?;
    let statement = bundle.statement().map_err(|error| error.to_string())?;
    assert_eq!(
        statement.predicate_type,
        "https://sigstore.dev/cosign/sign/v1"
    );
    assert_eq!(
        statement.subjects[0].digest["sha256"],
        DIGEST.trim_start_matches("sha256:")
    );
    policy(instance)
        .verify_bundle(&bundle)
        .map(drop)
        .map_err(|error| error.to_string())
}

fn expect_refused(outcome: Result<(), String>, step: &str, case: &str) {
    let error = outcome.expect_err(case);
    assert!(
        error.to_lowercase().contains(step),
        "{case}: the error names {step:?}: {error}"
    );
}

#[test]
fn both_forms_verify_and_each_fault_names_its_step() {
    let instance = Instance::new("image-factory keyless tests");
    let other = Instance::new("an untrusted sigstore");
    let good = SignOptions::default();
    assert_eq!(good.identity, RELEASE_IDENTITY);
    classic(&instance, &instance, &good, false).expect("classic keyless signature verifies");
    bundle(&instance, &instance, &good).expect("bundle verifies");

    let wrong_identity = SignOptions {
        identity: "mallory@example.com".into(),
        ..SignOptions::default()
    };
    let wrong_issuer = SignOptions {
        issuer: "https://issuer.example".into(),
        ..SignOptions::default()
    };
    let expired = SignOptions {
        integrated_time: good.not_before + good.lifetime + 60,
        ..SignOptions::default()
    };
    let bad_sct = SignOptions {
        corrupt_sct: true,
        ..SignOptions::default()
    };
    for (options, step, case) in [
        (&wrong_identity, "identity", "a wrong identity"),
        (&wrong_issuer, "issuer", "a wrong issuer"),
        (
            &expired,
            "validity",
            "a Rekor time after the certificate expired",
        ),
        (&bad_sct, "sct", "a bad SCT"),
    ] {
        expect_refused(classic(&instance, &instance, options, false), step, case);
        expect_refused(bundle(&instance, &instance, options), step, case);
    }
    expect_refused(
        classic(&instance, &instance, &good, true),
        "signature",
        "a tampered payload",
    );
    expect_refused(
        bundle(&instance, &other, &good),
        "fulcio",
        "a certificate from an untrusted CA",
    );
    expect_refused(
        classic(&instance, &other, &good, false),
        "fulcio",
        "a classic signature from an untrusted CA",
    );
}

fn keyless_config(root: PathBuf) -> ContainerSignatureConfig {
    ContainerSignatureConfig {
        trusted_root_file: root,
        ..ContainerSignatureConfig::default()
    }
}

fn fixture_trust_root() -> PathBuf {
    workspace().join("fixtures/sigstore/trusted_root.json")
}

#[tokio::test]
async fn an_unsigned_image_is_refused_as_unsigned() {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = LayoutWriter::create(dir.path()).unwrap();
    let config = layout.put_blob(oci::CONFIG, b"{}").unwrap();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::MANIFEST.into()),
        config,
        layers: Vec::new(),
        annotations: BTreeMap::new(),
    };
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let descriptor = layout.put_blob(oci::MANIFEST, &bytes).unwrap();
    layout.tag("ghcr.io/siderolabs/imager:v9.9.9", &descriptor);
    layout.finish().unwrap();
    let source = Source::Layout(OciLayout::open(dir.path()).unwrap());
    let verifier = Verifier::from_config(&keyless_config(fixture_trust_root())).unwrap();
    let error = verifier
        .verify(
            &source,
            &ImageRef::with_tag("ghcr.io", "siderolabs/imager", "v9.9.9"),
            &Digest::of(&bytes),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no signature"), "{error}");
    assert!(
        error.contains("ghcr.io/siderolabs/imager@sha256:"),
        "{error}"
    );
}

/// The fixture release, pushed into a real registry (no referrers API: the bundles are found
/// through the referrers tag), verified keyless only; the bundle wins where both forms exist,
/// and the classic tag alone suffices for an image copied without its bundle.
#[tokio::test]
async fn the_fixture_release_verifies_keyless_through_a_registry() {
    let release = fixture_release();
    let registry = LocalRegistry::start();
    let references: Vec<String> = layout_references(&release)
        .into_iter()
        .filter(|reference| {
            ["imager", "extensions", "overlays", "gvisor"]
                .iter()
                .any(|repo| reference.starts_with(&format!("ghcr.io/siderolabs/{repo}:")))
        })
        .collect();
    registry.push_from_layout(&release, &references);
    let source = Source::Registry(Registry::new(BTreeSet::from([registry.address.clone()])));
    let verifier = Verifier::from_config(&keyless_config(fixture_trust_root())).unwrap();
    let layout = OciLayout::open(&release).unwrap();
    let imager = layout
        .find("ghcr.io/siderolabs/imager:v1.12.0")
        .unwrap()
        .digest
        .clone();
    let image = ImageRef::with_tag(&registry.address, "siderolabs/imager", "v1.12.0");
    assert_eq!(
        verifier.check(&source, &image, &imager).await.unwrap(),
        Verified::Bundle(CheckKind::Keyless)
    );

    // The same image under another name, with its .sig tag but no referrers tag.
    let signature_tag = format!("sha256-{}.sig", imager.hex());
    for tag in ["v1.12.0", signature_tag.as_str()] {
        run(Command::new("skopeo").args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &format!("oci:{}:ghcr.io/siderolabs/imager:{tag}", release.display()),
            &format!("docker://{}/classic-only/imager:{tag}", registry.address),
        ]));
    }
    let copy = ImageRef::with_tag(&registry.address, "classic-only/imager", "v1.12.0");
    assert_eq!(
        verifier.check(&source, &copy, &imager).await.unwrap(),
        Verified::Classic(CheckKind::Keyless)
    );

    // Another Sigstore's root trusts none of it, and says why.
    let untrusted = workspace().join("fixtures/sigstore/untrusted_root.json");
    let refusing = Verifier::from_config(&keyless_config(untrusted)).unwrap();
    let error = refusing
        .verify(&source, &image, &imager)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("bundle (keyless)"), "{error}");
    assert!(error.contains(".sig (keyless)"), "{error}");
    assert!(error.to_lowercase().contains("fulcio"), "{error}");

    // A whole factory on the registry, keyless only, serves catalogs and builds.
    let address = registry.address.clone();
    let factory = TestFactory::start(move |config| {
        config.artifacts.oci_layout = PathBuf::new();
        config.artifacts.core.registry = address;
        config.container_signature = keyless_config(fixture_trust_root());
    })
    .await;
    let versions = factory.get("/versions").await;
    assert_eq!(versions.status(), 200);
    let extensions = factory.get("/version/v1.12.0/extensions/official").await;
    assert_eq!(extensions.status(), 200);
    let schematic = factory.create_schematic("customization: {}\n").await;
    let kernel = factory
        .get(&format!("/image/{schematic}/v1.12.0/kernel-amd64"))
        .await;
    assert_eq!(kernel.status(), 200, "{:?}", kernel.text().await);
}

/// A ceiling for the fixture's blobs, which the tests read whole.
const AT_MOST: image_factory::source::limits::Expected =
    image_factory::source::limits::Expected::AtMost(1 << 30);

/// The blob of the Sigstore bundle the referrers tag of `name@digest` lists first.
fn attached_bundle(layout: &OciLayout, name: &str, digest: &Digest) -> Digest {
    let json = |digest: &Digest| -> serde_json::Value {
        serde_json::from_slice(&layout.blob(name, digest, AT_MOST).unwrap()).unwrap()
    };
    let first = |value: serde_json::Value, list: &str| -> Digest {
        Digest::parse(value[list][0]["digest"].as_str().unwrap()).unwrap()
    };
    let referrers = &layout
        .find(&format!("{name}:sha256-{}", digest.hex()))
        .unwrap()
        .digest;
    first(json(&first(json(referrers), "manifests")), "layers")
}

/// Sigstore's own Python client (PyPI `sigstore` 4.5.1, installed by `cargo xtask fixtures`)
/// verifies the fixture bundles offline against the fixture trust root (the in-toto subject
/// against the manifest's bytes), and refuses another identity or another manifest.
#[test]
fn sigstore_python_accepts_the_fixture_signatures() {
    let client = workspace().join("fixtures/.cache/sigstore-python/bin/sigstore");
    assert!(
        client.is_file(),
        "{} is missing: run `cargo xtask fixtures`",
        client.display()
    );
    let release = fixture_release();
    let layout = OciLayout::open(&release).unwrap();
    let blob = |digest: &Digest| layout.blob("fixture release", digest, AT_MOST).unwrap();
    let work = tempfile::tempdir().unwrap();
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture_trust_root()).unwrap()).unwrap();
    let service = |url: &str| {
        serde_json::json!([{"url": url, "majorApiVersion": 1,
            "validFor": {"start": "2020-01-01T00:00:00Z"}, "operator": "fixture"}])
    };
    let trust = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": root,
        "signingConfig": {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": service("https://fulcio.fixture.invalid"),
            "oidcUrls": [],
            "rekorTlogUrls": service("https://rekor.fixture.invalid"),
            "tsaUrls": [],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaConfig": {"selector": "ANY"},
        },
    });
    let trust_path = work.path().join("trust.json");
    std::fs::write(&trust_path, serde_json::to_vec(&trust).unwrap()).unwrap();
    let verify = |name: &str, bundle: &[u8], artifact: &[u8], identity: &str| -> (bool, String) {
        let bundle_path = work.path().join(format!("{name}.sigstore.json"));
        let artifact_path = work.path().join(name);
        std::fs::write(&bundle_path, bundle).unwrap();
        std::fs::write(&artifact_path, artifact).unwrap();
        let output = Command::new(&client)
            .arg("--trust-config")
            .arg(&trust_path)
            .args(["verify", "identity", "--offline", "--bundle"])
            .arg(&bundle_path)
            .args([
                "--cert-identity",
                identity,
                "--cert-oidc-issuer",
                "https://accounts.google.com",
            ])
            .arg(&artifact_path)
            .output()
            .expect("the sigstore client runs");
        let text = String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout);
        (output.status.success(), text)
    };

    let imager = layout
        .find("ghcr.io/siderolabs/imager:v1.12.0")
        .unwrap()
        .digest
        .clone();
    let manifest = blob(&imager);
    let bundle_digest = attached_bundle(&layout, "ghcr.io/siderolabs/imager", &imager);
    let bundle = blob(&bundle_digest);
    let (ok, text) = verify("manifest.json", &bundle, &manifest, RELEASE_IDENTITY);
    assert!(ok, "the bundle verifies: {text}");
    let (ok, text) = verify("manifest.json", &bundle, &manifest, "mallory@example.com");
    assert!(!ok, "another identity is refused: {text}");

    // The classic form's Rekor bundle carries a SET but no inclusion proof, which this
    // client insists on: it is checked by our verifier only.
    let extension = layout
        .find("ghcr.io/siderolabs/gvisor:20250505.0-v1.12.0")
        .unwrap()
        .digest
        .clone();
    let bundle_digest = attached_bundle(&layout, "ghcr.io/siderolabs/gvisor", &extension);
    let (ok, text) = verify(
        "gvisor.json",
        &blob(&bundle_digest),
        &blob(&extension),
        RELEASE_IDENTITY,
    );
    assert!(ok, "an extension's bundle verifies: {text}");
    let (ok, text) = verify(
        "gvisor.json",
        &blob(&bundle_digest),
        &manifest,
        RELEASE_IDENTITY,
    );
    assert!(!ok, "a bundle does not verify another manifest: {text}");
}
