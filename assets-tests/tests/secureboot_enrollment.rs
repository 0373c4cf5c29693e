//! Secure Boot enrollment databases checked by tools we did not write: for PK, KEK and db made
//! with the fixture signing key, efitools' `sig-list-to-certs` gets back from each signature
//! list the certificate openssl converts from the PEM (and, with the well-known certificates,
//! the committed Microsoft ones); `openssl cms -verify` accepts the header's PKCS#7 over the
//! bytes the firmware hashes (assembled here from the UEFI specification, not by the engine)
//! and refuses it when one byte of the list changes; two generations are the same bytes; and
//! pre-built `.auth` files are loaded at start-up, all three or none, the error naming the
//! key that is missing, unreadable or not an authenticated write.

use assets_tests::{run, workspace};
use image_factory::engine::boot::enrollment::{self, EnrollmentDatabases};
use image_factory::sign::secureboot::{KeyFiles, PemSigner, SecureBootKeyError, SecureBootKeys};
use std::path::{Path, PathBuf};
use std::process::Command;

const NAMES: [&str; 3] = ["PK", "KEK", "db"];
/// EFI_GLOBAL_VARIABLE and EFI_IMAGE_SECURITY_DATABASE in EFI byte order.
const GLOBAL: [u8; 16] = [
    0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c,
];
const SECURITY_DATABASE: [u8; 16] = [
    0xcb, 0xb2, 0x19, 0xd7, 0x3a, 0x3d, 0x96, 0x45, 0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f,
];

fn secureboot(name: &str) -> PathBuf {
    workspace().join("fixtures/secureboot").join(name)
}

fn microsoft(name: &str) -> Vec<u8> {
    std::fs::read(
        workspace()
            .join("src/engine/boot/certs")
            .join(format!("{name}.der")),
    )
    .unwrap()
}

fn generate(include_well_known: bool) -> EnrollmentDatabases {
    let key = std::fs::read_to_string(secureboot("uki-signing-key.pem")).unwrap();
    let cert = std::fs::read_to_string(secureboot("uki-signing-cert.pem")).unwrap();
    let signer = PemSigner::from_pem(&key, &cert).unwrap();
    enrollment::generate(&signer, &cert, include_well_known).unwrap()
}

fn parts(auth: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let length = u32::from_le_bytes(auth[16..20].try_into().unwrap()) as usize;
    (&auth[..16], &auth[40..16 + length], &auth[16 + length..])
}

/// The certificates efitools finds in a signature list, in order.
fn listed_certificates(esl: &[u8], dir: &Path, name: &str) -> Vec<Vec<u8>> {
    let esl_path = dir.join(format!("{name}.esl"));
    std::fs::write(&esl_path, esl).unwrap();
    let prefix = dir.join(name).display().to_string();
    run(Command::new("sig-list-to-certs").args([&esl_path.display().to_string(), &prefix]));
    (0..)
        .map(|index| PathBuf::from(format!("{prefix}-{index}.der")))
        .take_while(|path| path.exists())
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

/// A ContentInfo around the bare SignedData, for openssl.
fn content_info(signed_data: &[u8]) -> Vec<u8> {
    let length = |len: usize| [0x82, (len >> 8) as u8, len as u8];
    let mut inner = vec![0xA0];
    inner.extend_from_slice(&length(signed_data.len()));
    inner.extend_from_slice(signed_data);
    let oid = [
        0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02,
    ];
    let mut out = vec![0x30];
    out.extend_from_slice(&length(oid.len() + inner.len()));
    out.extend_from_slice(&oid);
    out.extend_from_slice(&inner);
    out
}

/// Whether `openssl cms -verify` accepts `signed_data` over `content`, trusting the signing
/// certificate.
fn openssl_verifies(signed_data: &[u8], content: &[u8], dir: &Path, name: &str) -> bool {
    let sig = dir.join(format!("{name}.p7"));
    let data = dir.join(format!("{name}.signed"));
    std::fs::write(&sig, content_info(signed_data)).unwrap();
    std::fs::write(&data, content).unwrap();
    let cert = secureboot("uki-signing-cert.pem");
    let output = Command::new("openssl")
        .args([
            "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
        ])
        .arg("-in")
        .arg(&sig)
        .arg("-content")
        .arg(&data)
        .arg("-CAfile")
        .arg(&cert)
        .args(["-out", "/dev/null"])
        .output()
        .unwrap();
    output.status.success()
}

#[test]
fn lists_hold_the_certificates_and_signatures_verify() {
    let work = tempfile::tempdir().unwrap();
    run(Command::new("openssl")
        .args(["x509", "-outform", "der", "-in"])
        .arg(secureboot("uki-signing-cert.pem"))
        .arg("-out")
        .arg(work.path().join("ours.der")));
    let ours = std::fs::read(work.path().join("ours.der")).unwrap();

    for include_well_known in [false, true] {
        let databases = generate(include_well_known);
        assert_eq!(
            databases,
            generate(include_well_known),
            "same inputs, same bytes"
        );
        let mut kek = vec![ours.clone()];
        let mut db = vec![ours.clone()];
        if include_well_known {
            kek.extend(["ms-kek-2011", "ms-kek-2023"].map(microsoft));
            db.extend(["ms-uefi-2011", "ms-uefi-2023", "ms-uefi-rom-2023"].map(microsoft));
        }
        let expected = [vec![ours.clone()], kek, db];
        let auths = [&databases.pk, &databases.kek, &databases.db];
        let vendors = [GLOBAL, GLOBAL, SECURITY_DATABASE];
        for (((name, auth), vendor), certificates) in
            NAMES.iter().zip(auths).zip(vendors).zip(expected)
        {
            let label = format!("{name}-{include_well_known}");
            let (time, signed_data, esl) = parts(auth);
            assert_eq!(
                listed_certificates(esl, work.path(), &label),
                certificates,
                "{label}: the signature lists"
            );
            // Name (UTF-16LE, no terminator) ‖ vendor GUID ‖ attributes (NV|BS|RT|time-based
            // authenticated write) ‖ EFI_TIME ‖ data, as the UEFI specification's SetVariable
            // lists them.
            let mut signed: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
            signed.extend_from_slice(&vendor);
            signed.extend_from_slice(&0x27u32.to_le_bytes());
            signed.extend_from_slice(time);
            signed.extend_from_slice(esl);
            assert!(
                openssl_verifies(signed_data, &signed, work.path(), &label),
                "{label}: openssl cms -verify"
            );
            let last = signed.len() - 1;
            signed[last] ^= 1;
            assert!(
                !openssl_verifies(signed_data, &signed, work.path(), &format!("{label}-bad")),
                "{label}: a changed list must not verify"
            );
        }
    }
}

/// The fixture keys with `auth` as the three databases' paths.
fn load(auth: [&Path; 3]) -> Result<SecureBootKeys, SecureBootKeyError> {
    let keys = [
        "uki-signing-key.pem",
        "uki-signing-cert.pem",
        "pcr-signing-key.pem",
    ]
    .map(secureboot);
    SecureBootKeys::load(&KeyFiles {
        signing_key: &keys[0],
        signing_cert: &keys[1],
        pcr_key: &keys[2],
        pk_auth: auth[0],
        kek_auth: auth[1],
        db_auth: auth[2],
    })
}

#[test]
fn prebuilt_databases_are_all_three_or_none() {
    let work = tempfile::tempdir().unwrap();
    let generated = generate(true);
    let path = |name: &str| work.path().join(format!("{name}.auth"));
    std::fs::write(path("PK"), &generated.pk).unwrap();
    std::fs::write(path("KEK"), &generated.kek).unwrap();
    std::fs::write(path("db"), &generated.db).unwrap();
    let (pk, kek, db) = (path("PK"), path("KEK"), path("db"));
    let none = Path::new("");

    let keys = load([none, none, none]).unwrap();
    assert!(keys.prebuilt.is_none());
    assert_eq!(
        enrollment::databases(&keys, false).unwrap(),
        generate(false),
        "generated when none are configured"
    );

    // Prebuilt ones win, whatever the schematic asks for.
    let keys = load([&pk, &kek, &db]).unwrap();
    assert_eq!(enrollment::databases(&keys, false).unwrap(), generated);

    let error = load([&pk, none, none]).unwrap_err().to_string();
    assert!(
        error.contains("secureBoot.file.kekAuthPath, secureBoot.file.dbAuthPath are not set")
            && error.contains("secureBoot.file.pkAuthPath is"),
        "{error}"
    );
    let absent = work.path().join("absent.auth");
    let error = load([&pk, &absent, &db]).unwrap_err();
    assert!(
        matches!(
            error,
            SecureBootKeyError::Unreadable {
                key: "secureBoot.file.kekAuthPath",
                ..
            }
        ),
        "{error}"
    );
    // An .esl where an .auth belongs, and a truncated .auth.
    std::fs::write(work.path().join("db.esl"), parts(&generated.db).2).unwrap();
    let error = load([&pk, &kek, &work.path().join("db.esl")])
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("secureBoot.file.dbAuthPath: not an authenticated"),
        "{error}"
    );
    std::fs::write(
        work.path().join("short.auth"),
        &generated.pk[..generated.pk.len() - 1],
    )
    .unwrap();
    let error = load([&work.path().join("short.auth"), &kek, &db])
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("secureBoot.file.pkAuthPath: "), "{error}");
}

#[test]
fn start_up_names_the_missing_database() {
    let state = tempfile::tempdir().unwrap();
    let mut config = image_factory::config::Config::default();
    config.storage.dir = state.path().to_path_buf();
    config.artifacts.oci_layout = assets_tests::fixture_release();
    config.container_signature.public_key_file = assets_tests::fixture_public_key();
    config.secure_boot.enabled = true;
    let file = &mut config.secure_boot.file;
    file.signing_key_path = secureboot("uki-signing-key.pem");
    file.signing_cert_path = secureboot("uki-signing-cert.pem");
    file.pcr_key_path = secureboot("pcr-signing-key.pem");
    file.pk_auth_path = state.path().join("PK.auth");
    file.kek_auth_path = state.path().join("KEK.auth");
    let store = image_factory::store::FsSchematicStore::open(&config.storage.dir).unwrap();
    let error =
        match image_factory::service::Factory::from_config(config, std::sync::Arc::new(store)) {
            Ok(_) => panic!("the factory starts with two of three databases"),
            Err(error) => error,
        };
    assert!(
        error.contains(
            "secureBoot.file.dbAuthPath is not set, but \
             secureBoot.file.pkAuthPath, secureBoot.file.kekAuthPath are"
        ),
        "{error}"
    );
}
