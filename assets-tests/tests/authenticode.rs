//! The PE module's Authenticode hash against osslsigncode's: each UKI of the fixture release
//! and GRUB's EFI application are signed with a throw-away key by osslsigncode, whose
//! `verify` prints the digest the signature carries and the digest it computes itself; both
//! must be ours.

use assets_tests::{TestFactory, run};
use image_factory::engine::boot::pe::authenticode_sha256;
use std::path::Path;
use std::process::Command;

const VERSION: &str = "v1.12.0";

/// A self-signed RSA key and certificate made by openssl in `dir`.
fn signing_pair(dir: &Path) -> (String, String) {
    let key = dir.join("key.pem").display().to_string();
    let cert = dir.join("cert.pem").display().to_string();
    run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=authenticode test",
        "-days",
        "1",
        "-keyout",
        &key,
        "-out",
        &cert,
    ]));
    (key, cert)
}

/// The "Current" (signed) and "Calculated" message digests of osslsigncode's `verify`.
fn reported_digests(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|line| {
            line.starts_with("Current message digest")
                || line.starts_with("Calculated message digest")
        })
        .filter_map(|line| line.rsplit(':').next())
        .map(|value| value.trim().to_lowercase())
        .filter(|value| value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

fn check(name: &str, image: &[u8], dir: &Path, pair: &(String, String)) {
    let ours = image_factory::hex::encode(&authenticode_sha256(image).expect(name));
    let unsigned = dir.join(format!("{name}.efi"));
    let signed = dir.join(format!("{name}-signed.efi"));
    std::fs::write(&unsigned, image).unwrap();
    run(Command::new("osslsigncode").args([
        "sign",
        "-certs",
        &pair.1,
        "-key",
        &pair.0,
        "-h",
        "sha256",
        "-in",
        &unsigned.display().to_string(),
        "-out",
        &signed.display().to_string(),
    ]));
    // The chain is self-signed, so verification fails; the digests are printed regardless.
    let output = Command::new("osslsigncode")
        .args(["verify", "-in", &signed.display().to_string()])
        .output()
        .expect("osslsigncode runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let digests = reported_digests(&text);
    assert_eq!(digests.len(), 2, "{name}: {text}");
    for digest in &digests {
        assert_eq!(
            digest, &ours,
            "{name}: ours differs from osslsigncode's\n{text}"
        );
    }
    // Signing only appends the certificate table: our hash of the signed file is the same.
    let signed_bytes = std::fs::read(&signed).unwrap();
    assert_eq!(
        authenticode_sha256(&signed_bytes).map(|digest| image_factory::hex::encode(&digest)),
        Ok(ours),
        "{name}: the signed file hashes as the unsigned one"
    );
}

#[tokio::test]
async fn authenticode_hash_matches_osslsigncode() {
    let factory = TestFactory::start(|_| {}).await;
    let work = tempfile::tempdir().unwrap();
    let pair = signing_pair(work.path());
    for (name, image) in factory.pe_images(VERSION).await {
        check(&name, &image, work.path(), &pair);
    }
}
