//! Secure Boot assets served by a factory holding the fixture keys, checked by tools we did
//! not write: sbverify and osslsigncode accept the signed UKI and systemd-boot and refuse a
//! damaged copy, an independent Python/openssl computation agrees with every `.pcrsig`,
//! efitools reads the enrollment databases on the ESP, and firmware that enforces Secure Boot
//! (OVMF's secboot build, starting in setup mode) enrolls the keys from the ISO and from the
//! disk image, then boots the signed UKI and refuses an unsigned one.

use assets_tests::{
    TestFactory, boot_secure_boot, esp_with_loader, expect_fixture_boot, fixture_lines, run,
    setup_mode_vars, use_fixture_secure_boot_keys, verify_cosign_signature, workspace,
};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const VERSION: &str = "v1.12.0";

const ENROLL: &str = "customization:
  extraKernelArgs:
    - console=ttyS0
  meta:
    - key: 12
      value: secure
  secureboot:
    enrollKeys: force
";

async fn secure_factory() -> TestFactory {
    TestFactory::start(use_fixture_secure_boot_keys).await
}

async fn download(factory: &TestFactory, path: &str, work: &Path) -> PathBuf {
    let file = work.join(path.rsplit('/').next().unwrap());
    factory.download_to(path, &file).await;
    file
}

/// The served signing certificate, written to `work`.
async fn served_certificate(factory: &TestFactory, work: &Path) -> PathBuf {
    let response = factory.get("/secureboot/signing-cert.pem").await;
    assert_eq!(response.status(), 200);
    let cert = work.join("signing-cert.pem");
    std::fs::write(&cert, response.bytes().await.unwrap()).unwrap();
    cert
}

fn succeeds(command: &mut Command) -> (bool, String) {
    let output = command.output().expect("tool runs");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// sbverify and osslsigncode accept `image` with `cert`, sbverify lists one signature, and
/// both refuse a copy with one byte of code changed.
fn expect_signed(image: &Path, cert: &Path) {
    let verify = |path: &Path| {
        let sbverify = succeeds(Command::new("sbverify").arg("--cert").arg(cert).arg(path));
        let ossl = succeeds(
            Command::new("osslsigncode")
                .args(["verify", "-CAfile"])
                .arg(cert)
                .arg("-in")
                .arg(path),
        );
        (sbverify, ossl)
    };
    let ((sb_ok, sb_text), (ossl_ok, ossl_text)) = verify(image);
    assert!(sb_ok, "sbverify {}: {sb_text}", image.display());
    assert!(ossl_ok, "osslsigncode {}: {ossl_text}", image.display());
    let list = run(Command::new("sbverify").arg("--list").arg(image));
    assert_eq!(
        list.lines().filter(|l| l.starts_with("signature ")).count(),
        1,
        "{list}"
    );
    let mut damaged = std::fs::read(image).unwrap();
    let at = damaged.len() / 3;
    damaged[at] ^= 0x55;
    let damaged_path = image.with_extension("damaged");
    std::fs::write(&damaged_path, damaged).unwrap();
    let ((sb_ok, _), (ossl_ok, _)) = verify(&damaged_path);
    assert!(!sb_ok && !ossl_ok, "a damaged copy of {}", image.display());
}

/// The section names of a PE file, in table order, read by pefile.
fn sections(image: &Path) -> Vec<String> {
    run(Command::new("/usr/bin/python3").args([
        "-c",
        "import pefile,sys; pe=pefile.PE(sys.argv[1]); print('\\n'.join(s.Name.rstrip(b'\\0').decode() for s in pe.sections))",
        &image.display().to_string(),
    ]))
    .lines()
    .map(String::from)
    .collect()
}

/// The policies of every profile, recomputed by `support/pcr_policy.py` (which checks the
/// `.pcrsig` values and their signatures against the `.pcrpkey` key).
fn pcr_policies(uki: &Path, work: &Path) -> serde_json::Value {
    let key = work.join("pcrpkey.pem");
    run(Command::new("/usr/bin/python3").args([
        "-c",
        "import pefile,sys; pe=pefile.PE(sys.argv[1]); s=[s for s in pe.sections if s.Name.rstrip(b'\\0')==b'.pcrpkey'][0]; open(sys.argv[2],'wb').write(s.get_data()[:s.Misc_VirtualSize])",
        &uki.display().to_string(),
        &key.display().to_string(),
    ]));
    let fixture_public = run(Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(workspace().join("fixtures/secureboot/pcr-signing-key.pem")));
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        fixture_public,
        ".pcrpkey is the PCR key's public half"
    );
    let script = workspace().join("assets-tests/support/pcr_policy.py");
    let out = run(Command::new("/usr/bin/python3")
        .arg(script)
        .arg(uki)
        .arg(&key));
    serde_json::from_str(&out).unwrap()
}

fn mcopy(image: &Path, from: &str, to: &Path) -> Vec<u8> {
    run(Command::new("mcopy")
        .args(["-n", "-i"])
        .arg(image)
        .arg(format!("::{from}"))
        .arg(to));
    std::fs::read(to).unwrap()
}

/// The signature list after an `EFI_VARIABLE_AUTHENTICATION_2` header, given to efitools:
/// the certificates it holds, DER.
fn certificates_in(auth: &[u8], work: &Path, name: &str) -> Vec<Vec<u8>> {
    let length = u32::from_le_bytes(auth[16..20].try_into().unwrap()) as usize;
    let list = work.join(format!("{name}.esl"));
    std::fs::write(&list, &auth[16 + length..]).unwrap();
    let prefix = work.join(format!("{name}-cert"));
    run(Command::new("sig-list-to-certs").arg(&list).arg(&prefix));
    (0..)
        .map(|index| PathBuf::from(format!("{}-{index}.der", prefix.display())))
        .take_while(|path| path.exists())
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

fn der_of(cert: &Path) -> Vec<u8> {
    let out = cert.with_extension("der");
    run(Command::new("openssl")
        .args(["x509", "-outform", "der", "-in"])
        .arg(cert)
        .arg("-out")
        .arg(&out));
    std::fs::read(out).unwrap()
}

/// Checks the enrollment files of an ESP: loader.conf's mode, and the factory's certificate
/// in PK, KEK and db.
fn expect_enrollment(esp: &Path, cert: &Path, work: &Path, mode: &str) {
    let conf = mcopy(esp, "/loader/loader.conf", &work.join("loader.conf"));
    assert!(
        String::from_utf8_lossy(&conf).ends_with(&format!("\nsecure-boot-enroll {mode}\n")),
        "{}",
        String::from_utf8_lossy(&conf)
    );
    let der = der_of(cert);
    for name in ["PK", "KEK", "db"] {
        let auth = mcopy(
            esp,
            &format!("/loader/keys/auto/{name}.auth"),
            &work.join(format!("{name}.auth")),
        );
        assert_eq!(
            certificates_in(&auth, work, name),
            vec![der.clone()],
            "{name}"
        );
    }
}

/// `count` sectors of `image` from `start`, as a sparse file.
fn extract(image: &Path, start: u64, count: u64, out: &Path) -> PathBuf {
    run(Command::new("dd")
        .arg(format!("if={}", image.display()))
        .arg(format!("of={}", out.display()))
        .args(["bs=512", "status=none", "conv=sparse"])
        .arg(format!("skip={start}"))
        .arg(format!("count={count}")));
    out.to_path_buf()
}

/// Start and size (sectors) of MBR or GPT partition `number`, from sfdisk.
fn partition(image: &Path, number: usize) -> (u64, u64) {
    let dump = run(Command::new("sfdisk").arg("--dump").arg(image));
    let line = dump
        .lines()
        .filter(|line| line.contains("start="))
        .nth(number - 1)
        .unwrap_or_else(|| panic!("partition {number}:\n{dump}"));
    let field = |key: &str| -> u64 {
        line.split(key)
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .map(|value| value.trim().parse().unwrap())
            .unwrap()
    };
    (field("start="), field("size="))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_of(path: &Path) -> String {
    hex(&Sha256::digest(std::fs::read(path).unwrap()))
}

/// Enrolls the keys from `drive` under enforcing firmware in setup mode, then boots it to
/// the fixture's last line, with Secure Boot on; the firmware's variables stay in `vars`.
fn enroll_and_boot(vars: &Path, drive: &[&str], id: &str, meta: &[&str]) {
    let log = boot_secure_boot(vars, drive, Duration::from_secs(900), |line| {
        line.contains("FIXTURE-DONE")
    });
    assert!(log.contains("Enrolling secure boot keys"), "{log}");
    assert!(log.contains("secureboot: Secure boot enabled"), "{log}");
    expect_fixture_boot(
        &fixture_lines(&log),
        VERSION,
        id,
        "lockdown=confidentiality",
        &[],
        meta,
    );
}

/// A factory with the fixture keys, its served certificate, the `ENROLL` schematic and
/// `asset` of it downloaded, after checking that a second factory with its own empty state
/// makes the same bytes.
async fn reproducible(asset: &str, work: &Path) -> (TestFactory, PathBuf, String, PathBuf) {
    let factory = secure_factory().await;
    let cert = served_certificate(&factory, work).await;
    let id = factory.create_schematic(ENROLL).await;
    let path = format!("/image/{id}/{VERSION}/{asset}");
    let file = download(&factory, &path, work).await;
    let again = secure_factory().await;
    assert_eq!(again.create_schematic(ENROLL).await, id);
    let second = work.join("again");
    std::fs::create_dir(&second).unwrap();
    assert_eq!(
        sha256_of(&download(&again, &path, &second).await),
        sha256_of(&file),
        "{asset}: same inputs, same bytes"
    );
    (factory, cert, id, file)
}

#[tokio::test(flavor = "multi_thread")]
async fn secure_boot_uki_is_signed_and_its_pcr_policies_verify() {
    let work = tempfile::tempdir().unwrap();
    let factory = secure_factory().await;
    let cert = served_certificate(&factory, work.path()).await;
    let id = factory.create_schematic(ENROLL).await;
    let uki = download(
        &factory,
        &format!("/image/{id}/{VERSION}/metal-amd64-secureboot-uki.efi"),
        work.path(),
    )
    .await;
    expect_signed(&uki, &cert);
    let names = sections(&uki);
    let appended: Vec<&str> = names
        .iter()
        .skip_while(|name| *name != ".osrel")
        .map(String::as_str)
        .collect();
    assert_eq!(
        appended,
        [
            ".osrel", ".cmdline", ".uname", ".splash", ".pcrpkey", ".linux", ".initrd", ".profile",
            ".pcrsig"
        ],
        "{names:?}"
    );
    assert!(names.contains(&".sbat".to_string()), "{names:?}");
    let policies = pcr_policies(&uki, work.path());
    assert_eq!(policies["profiles"], 1, "{policies}");

    // Another command line, another policy.
    let other = factory
        .create_schematic(&ENROLL.replace("console=ttyS0", "console=ttyS1"))
        .await;
    let other_uki = work.path().join("other");
    std::fs::create_dir(&other_uki).unwrap();
    let other_uki = download(
        &factory,
        &format!("/image/{other}/{VERSION}/metal-amd64-secureboot-uki.efi"),
        &other_uki,
    )
    .await;
    let other_policies = pcr_policies(&other_uki, work.path());
    assert_ne!(policies["pol"], other_policies["pol"]);

    // The command line: lockdown before 1.14, and the PXE script boots the signed UKI.
    let cmdline = factory
        .get(&format!(
            "/image/{id}/{VERSION}/cmdline-metal-amd64-secureboot"
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(cmdline.contains(" lockdown=confidentiality"), "{cmdline}");
    let pxe = factory
        .get(&format!("/pxe/{id}/{VERSION}/metal-amd64-secureboot"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        pxe,
        format!(
            "#!ipxe\n\nimgfree\nkernel http://factory.test/image/{id}/{VERSION}/metal-amd64-secureboot-uki.efi {cmdline}\nboot\n"
        )
    );
    let checksum = factory
        .get(&format!(
            "/image/{id}/{VERSION}/metal-amd64-secureboot-uki.efi.sha256"
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(checksum.starts_with(&sha256_of(&uki)), "{checksum}");

    // An invalid mode is refused for Secure Boot assets and ignored for the others.
    let bogus = factory
        .create_schematic("customization:\n  secureboot:\n    enrollKeys: always\n")
        .await;
    let refused = factory
        .get(&format!(
            "/image/{bogus}/{VERSION}/metal-amd64-secureboot.iso"
        ))
        .await;
    assert_eq!(refused.status(), 400);
    let body = refused.text().await.unwrap();
    assert!(body.contains("enrollKeys \"always\""), "{body}");
    let plain = factory
        .get(&format!("/image/{bogus}/{VERSION}/metal-amd64-uki.efi"))
        .await;
    assert_eq!(plain.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn secure_boot_iso_enrolls_the_keys_and_boots_only_signed_images() {
    let work = tempfile::tempdir().unwrap();
    let (factory, cert, id, iso) = reproducible("metal-amd64-secureboot.iso", work.path()).await;

    // UEFI only: one El Torito entry, the ESP appended as MBR partition 2.
    let report = run(Command::new("sh").arg("-c").arg(format!(
        "xorriso -indev '{}' -report_el_torito plain 2>&1",
        iso.display()
    )));
    let entries: Vec<&str> = report
        .lines()
        .filter(|line| line.starts_with("El Torito boot img :"))
        .collect();
    assert_eq!(entries.len(), 1, "{report}");
    assert!(entries[0].contains("UEFI"), "{report}");
    let (start, size) = partition(&iso, 2);
    let esp = extract(&iso, start, size, &work.path().join("esp.img"));
    run(Command::new("fsck.fat").arg("-n").arg(&esp));
    expect_enrollment(&esp, &cert, work.path(), "force");
    let der = mcopy(
        &esp,
        "/EFI/keys/uki-signing-cert.der",
        &work.path().join("cert.der"),
    );
    assert_eq!(der, der_of(&cert));
    let sd_boot = work.path().join("BOOTX64.EFI");
    mcopy(&esp, "/EFI/BOOT/BOOTX64.EFI", &sd_boot);
    expect_signed(&sd_boot, &cert);
    let uki = work.path().join("Talos.efi");
    mcopy(&esp, &format!("/EFI/Linux/Talos-{VERSION}.efi"), &uki);
    expect_signed(&uki, &cert);
    // The ISO's UKI has the reset profile too, each profile with its own policy.
    assert_eq!(pcr_policies(&uki, work.path())["profiles"], 2);

    let vars = setup_mode_vars(work.path(), "vars.fd");
    let cdrom = format!("file={},media=cdrom,readonly=on", iso.display());
    enroll_and_boot(&vars, &["-drive", &cdrom], &id, &[]);

    // The firmware now holds the factory's keys: an unsigned UKI is refused.
    let unsigned = download(
        &factory,
        &format!("/image/{id}/{VERSION}/metal-amd64-uki.efi"),
        work.path(),
    )
    .await;
    let refusal_dir = work.path().join("unsigned");
    std::fs::create_dir(&refusal_dir).unwrap();
    let esp = esp_with_loader(&unsigned, &refusal_dir);
    let drive = format!("file={},format=raw", esp.display());
    let log = boot_secure_boot(
        &vars,
        &["-drive", &drive],
        Duration::from_secs(240),
        |line| line.contains("Access Denied") || line.contains("FIXTURE-BOOT"),
    );
    assert!(
        log.lines()
            .any(|line| line.contains("failed to load") && line.contains("Access Denied")),
        "{log}"
    );
    assert!(!log.contains("FIXTURE-BOOT"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn secure_boot_disk_image_enrolls_the_keys_and_boots() {
    let work = tempfile::tempdir().unwrap();
    let (_factory, cert, id, compressed) =
        reproducible("metal-amd64-secureboot.raw.zst", work.path()).await;

    let disk = work.path().join("disk.raw");
    run(Command::new("zstd")
        .args(["-d", "-q", "-o"])
        .arg(&disk)
        .arg(&compressed));
    // sd-boot only: the ESP first, no BIOS boot partition.
    let gpt = run(Command::new("sgdisk").arg("-p").arg(&disk));
    assert!(gpt.contains("EF00  EFI"), "{gpt}");
    assert!(!gpt.contains("EF02"), "{gpt}");
    let (start, size) = partition(&disk, 1);
    let esp = extract(&disk, start, size, &work.path().join("esp.img"));
    expect_enrollment(&esp, &cert, work.path(), "force");
    let sd_boot = work.path().join("BOOTX64.efi");
    mcopy(&esp, "/EFI/boot/BOOTX64.efi", &sd_boot);
    expect_signed(&sd_boot, &cert);

    let vars = setup_mode_vars(work.path(), "vars.fd");
    let drive = format!("file={},format=raw", disk.display());
    enroll_and_boot(
        &vars,
        &["-drive", &drive],
        &id,
        &["FIXTURE-META 0xc=secure"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn secure_boot_installer_carries_the_signed_uki_and_is_cosign_signed() {
    let work = tempfile::tempdir().unwrap();
    let factory = secure_factory().await;
    let cert = served_certificate(&factory, work.path()).await;
    let id = factory.create_schematic(ENROLL).await;
    let host = factory.base.trim_start_matches("http://").to_string();
    let reference = format!("docker://{host}/installer-secureboot/{id}:{VERSION}");
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(&reference));
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let layout = work.path().join("layout");
    run(Command::new("skopeo")
        .args(["copy", "-q", "--all", "--src-tls-verify=false"])
        .arg(&reference)
        .arg(format!("oci:{}:installer", layout.display())));
    let amd64 = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&amd64)).unwrap()).unwrap();
    let artifacts = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let unpacked = work.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(blob(&artifacts))
        .arg("-C")
        .arg(&unpacked));
    let install = unpacked.join("usr/install/amd64");
    expect_signed(&install.join("vmlinuz.efi"), &cert);
    expect_signed(&install.join("systemd-boot.efi"), &cert);
    let index_digest = format!("sha256:{}", hex(&Sha256::digest(raw.trim_end().as_bytes())));
    verify_cosign_signature(
        &factory,
        &format!("installer-secureboot/{id}"),
        &index_digest,
        work.path(),
    )
    .await;

    // The same installer as a download.
    let tarball = download(
        &factory,
        &format!("/image/{id}/{VERSION}/installer-amd64-secureboot.tar"),
        work.path(),
    )
    .await;
    let listing = run(Command::new("tar").arg("-tf").arg(&tarball));
    assert!(listing.contains("manifest.json"), "{listing}");
}
