//! Authenticode signing checked by the tools firmware people use: the fixture release's UKIs
//! and GRUB's EFI application signed by the engine with an openssl-made key pass `sbverify
//! --cert` and `osslsigncode verify`, `sbverify --list` sees one signature, a byte changed
//! after signing fails both, and keys that cannot sign are refused with a reason.

use assets_tests::{TestFactory, run};
use image_factory::engine::boot::authenticode;
use image_factory::sign::secureboot::{PemSigner, SecureBootKeyError};
use std::path::Path;
use std::process::{Command, Output};

const VERSION: &str = "v1.12.0";

/// A self-signed RSA certificate and its key in PKCS#8 (`key.pem`) and PKCS#1 (`key1.pem`).
fn key_pair(dir: &Path, name: &str) -> (String, String, String) {
    let key = dir.join(format!("{name}.key.pem"));
    let key1 = dir.join(format!("{name}.key1.pem"));
    let cert = dir.join(format!("{name}.cert.pem"));
    run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        &format!("/CN={name}"),
        "-keyout",
        &key.display().to_string(),
        "-out",
        &cert.display().to_string(),
    ]));
    run(Command::new("openssl").args([
        "rsa",
        "-traditional",
        "-in",
        &key.display().to_string(),
        "-out",
        &key1.display().to_string(),
    ]));
    let read = |path: &Path| std::fs::read_to_string(path).unwrap();
    (read(&key), read(&key1), read(&cert))
}

fn tool(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{program}: {error}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Signs `image`, checks it with sbverify and osslsigncode, then checks a damaged copy fails.
fn check(name: &str, image: &[u8], signer: &PemSigner, cert: &Path, dir: &Path) {
    let signed = authenticode::sign(image, signer).expect(name);
    assert_eq!(
        authenticode::sign(image, signer).unwrap(),
        signed,
        "{name}: same inputs, same bytes"
    );
    assert!(
        authenticode::sign(&signed, signer).is_err(),
        "{name}: signing twice is refused"
    );
    let path = dir.join(format!("{name}.signed.efi"));
    std::fs::write(&path, &signed).unwrap();
    let path_text = path.display().to_string();
    let cert_text = cert.display().to_string();

    let verify = tool("sbverify", &["--cert", &cert_text, &path_text]);
    assert!(
        verify.status.success(),
        "{name}: sbverify: {}",
        text(&verify)
    );
    let list = text(&tool("sbverify", &["--list", &path_text]));
    let signatures = list
        .lines()
        .filter(|line| line.starts_with("signature "))
        .count();
    assert_eq!(signatures, 1, "{name}: {list}");
    let ossl = tool(
        "osslsigncode",
        &["verify", "-CAfile", &cert_text, "-in", &path_text],
    );
    assert!(
        ossl.status.success(),
        "{name}: osslsigncode: {}",
        text(&ossl)
    );

    // One byte of code changed after signing.
    let mut damaged = signed.clone();
    let at = image.len() / 2;
    damaged[at] ^= 0xFF;
    let damaged_path = dir.join(format!("{name}.damaged.efi"));
    std::fs::write(&damaged_path, &damaged).unwrap();
    let damaged_text = damaged_path.display().to_string();
    let verify = tool("sbverify", &["--cert", &cert_text, &damaged_text]);
    assert!(
        !verify.status.success(),
        "{name}: sbverify accepts a damaged copy"
    );
    let ossl = tool(
        "osslsigncode",
        &["verify", "-CAfile", &cert_text, "-in", &damaged_text],
    );
    assert!(
        !ossl.status.success(),
        "{name}: osslsigncode accepts a damaged copy"
    );
}

#[tokio::test]
async fn signed_images_verify_with_sbverify_and_osslsigncode() {
    let factory = TestFactory::start(|_| {}).await;
    let work = tempfile::tempdir().unwrap();
    let (pkcs8, pkcs1, cert) = key_pair(work.path(), "signing");
    let cert_path = work.path().join("signing.cert.pem");
    let signer = PemSigner::from_pem(&pkcs8, &cert).expect("PKCS#8 key");
    let pkcs1_signer = PemSigner::from_pem(&pkcs1, &cert).expect("PKCS#1 key");

    for (index, (name, image)) in factory.pe_images(VERSION).await.iter().enumerate() {
        // Both key encodings sign.
        let signer = if index % 2 == 0 {
            &signer
        } else {
            &pkcs1_signer
        };
        check(name, image, signer, &cert_path, work.path());
    }
}

#[test]
fn keys_that_cannot_sign_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let (key, _, cert) = key_pair(work.path(), "one");
    let (_, _, other_cert) = key_pair(work.path(), "two");
    assert_eq!(
        PemSigner::from_pem(&key, &other_cert).unwrap_err(),
        SecureBootKeyError::Mismatch
    );
    let p256 = work.path().join("p256.pem");
    run(Command::new("openssl").args([
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &p256.display().to_string(),
    ]));
    let ec = std::fs::read_to_string(&p256).unwrap();
    assert!(matches!(
        PemSigner::from_pem(&ec, &cert),
        Err(SecureBootKeyError::NotRsa(_))
    ));
    assert!(matches!(
        PemSigner::from_pem(&key, "not a certificate"),
        Err(SecureBootKeyError::Certificate(_))
    ));
}

fn config_with_keys(key: &Path, cert: &Path, pcr: &Path) -> image_factory::config::Config {
    let mut config = image_factory::config::Config::default();
    config.secure_boot.enabled = true;
    config.secure_boot.file.signing_key_path = key.to_path_buf();
    config.secure_boot.file.signing_cert_path = cert.to_path_buf();
    config.secure_boot.file.pcr_key_path = pcr.to_path_buf();
    config
}

fn start_error(config: image_factory::config::Config) -> String {
    let state = tempfile::tempdir().unwrap();
    let mut config = config;
    config.storage.dir = state.path().to_path_buf();
    config.artifacts.oci_layout = assets_tests::fixture_release();
    config.container_signature.public_key_file = assets_tests::fixture_public_key();
    let store = image_factory::store::FsSchematicStore::open(&config.storage.dir).unwrap();
    match image_factory::service::Factory::from_config(config, std::sync::Arc::new(store)) {
        Ok(_) => panic!("the factory starts with keys it cannot use"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn keys_are_loaded_at_start_and_the_certificate_is_served() {
    let work = tempfile::tempdir().unwrap();
    key_pair(work.path(), "uki");
    key_pair(work.path(), "pcr");
    let (_, _, other) = key_pair(work.path(), "other");
    let file = |name: &str| work.path().join(name);
    let (key, cert, pcr) = (
        file("uki.key.pem"),
        file("uki.cert.pem"),
        file("pcr.key1.pem"),
    );

    // Start-up refuses, naming the key: unset, unreadable, not RSA, certificate of another key.
    let error = start_error(config_with_keys(&key, &cert, Path::new("")));
    assert!(
        error.contains("secureBoot.file.pcrKeyPath is not set"),
        "{error}"
    );
    let error = start_error(config_with_keys(&file("absent.pem"), &cert, &pcr));
    assert!(
        error.contains("secureBoot.file.signingKeyPath: cannot read"),
        "{error}"
    );
    let error = start_error(config_with_keys(&cert, &cert, &pcr));
    assert!(
        error.contains("secureBoot.file.signingKeyPath: not an RSA"),
        "{error}"
    );
    std::fs::write(file("other.pem"), &other).unwrap();
    let error = start_error(config_with_keys(&key, &file("other.pem"), &pcr));
    assert!(
        error.contains("secureBoot.file.signingCertPath: the certificate"),
        "{error}"
    );

    let factory = TestFactory::start(|config| {
        config.secure_boot = config_with_keys(&key, &cert, &pcr).secure_boot;
    })
    .await;
    let response = factory.get("/secureboot/signing-cert.pem").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-pem-file");
    assert_eq!(
        response.text().await.unwrap(),
        std::fs::read_to_string(&cert).unwrap()
    );

    // Without keys: the certificate is a 500 (as upstream) and SecureBoot assets a 400 that
    // says which keys are missing.
    let plain = TestFactory::start(|_| {}).await;
    assert_eq!(
        plain.get("/secureboot/signing-cert.pem").await.status(),
        500
    );
    let vanilla = plain.create_schematic("customization: {}\n").await;
    let response = plain
        .get(&format!(
            "/image/{vanilla}/{VERSION}/metal-amd64-secureboot-uki.efi"
        ))
        .await;
    assert_eq!(response.status(), 400);
    let body = response.text().await.unwrap();
    assert!(body.contains("secureBoot.file.signingKeyPath"), "{body}");
}
