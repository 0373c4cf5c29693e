//! `cargo xtask bench-compare`: our CLI against the standard-tools pipeline the upstream
//! imager runs, on the same fixture inputs, in one run; prints wall time, output size and
//! the ratio. (Per-stage engine throughput is `cargo bench`.)

use crate::fixtures::{Result, run};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const VERSION: &str = "v1.12.0";
const EXTENSIONS: &[(&str, &str)] = &[
    ("amd-ucode", "20250509"),
    ("gvisor", "20250505.0"),
    ("realtek-firmware", "20250509"),
];

fn timed(command: &mut Command) -> Result<Duration> {
    let started = Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if !status.success() {
        return Err(format!("{command:?} failed ({status})"));
    }
    Ok(started.elapsed())
}

fn sh(script: &str, dir: &Path) -> Result<Duration> {
    timed(Command::new("sh").args(["-ec", script]).current_dir(dir))
}

/// What GNU time reports for one command.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    wall: Duration,
    cpu: Duration,
    /// Peak resident set, KiB.
    rss: u64,
}

impl Usage {
    /// Two commands run one after the other.
    fn then(self, next: Usage) -> Usage {
        Usage {
            wall: self.wall + next.wall,
            cpu: self.cpu + next.cpu,
            rss: self.rss.max(next.rss),
        }
    }
}

/// Runs `command` under GNU time.
fn measured(command: &mut Command, report: &Path) -> Result<Usage> {
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .args(["-f", "%U %S %M", "-o"])
        .arg(report)
        .arg(command.get_program())
        .args(command.get_args());
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    let wall = timed(&mut wrapped)?;
    let text = fs::read_to_string(report).map_err(|e| e.to_string())?;
    let fields: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|field| field.parse().ok())
        .collect();
    match fields[..] {
        [user, system, rss] => Ok(Usage {
            wall,
            cpu: Duration::from_secs_f64(user + system),
            rss: rss as u64,
        }),
        _ => Err(format!("unexpected GNU time report {text:?}")),
    }
}

fn size_of(path: &Path) -> Result<u64> {
    Ok(fs::metadata(path).map_err(|e| e.to_string())?.len())
}

/// Copies `reference` out of the fixture layout and unpacks its layers into `into`.
fn unpack(workspace: &Path, reference: &str, into: &Path) -> Result<()> {
    let dir = into.with_extension("image");
    let _ = fs::remove_dir_all(&dir);
    run(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!(
                "oci:{}:{reference}",
                workspace.join("fixtures/release").display()
            ),
            &format!("dir:{}", dir.display()),
        ],
    )?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("manifest.json")).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    fs::create_dir_all(into).map_err(|e| e.to_string())?;
    for layer in manifest["layers"].as_array().ok_or("no layers")? {
        let digest = layer["digest"].as_str().ok_or("no digest")?;
        let blob = dir.join(digest.trim_start_matches("sha256:"));
        run(
            "tar",
            &[
                "-xzf",
                &blob.to_string_lossy(),
                "-C",
                &into.to_string_lossy(),
            ],
        )?;
    }
    Ok(())
}

// The table on standard output is what this task is for.
#[allow(clippy::print_stdout)]
pub fn compare(workspace: &Path) -> Result<()> {
    run(
        "cargo",
        &["build", "--release", "--quiet", "--bin", "image-factory"],
    )?;
    crate::fixtures::generate(workspace, false)?;
    let work = workspace.join("target/bench-compare");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    // Our own copy, so that a build from another worktree sharing CARGO_TARGET_DIR cannot
    // swap the binary in the middle of the run.
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => std::env::current_dir()
            .map_err(|e| e.to_string())?
            .join(dir),
        None => workspace.join("target"),
    };
    let binary = work.join("image-factory");
    fs::copy(target.join("release/image-factory"), &binary).map_err(|e| e.to_string())?;
    let schematic = work.join("schematic.yaml");
    fs::write(
        &schematic,
        format!(
            "customization:\n  systemExtensions:\n    officialExtensions: [{}]\n",
            EXTENSIONS
                .iter()
                .map(|(name, _)| format!("siderolabs/{name}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .map_err(|e| e.to_string())?;

    // Inputs for the standard tools, unpacked beforehand (not timed).
    let imager = work.join("imager");
    unpack(
        workspace,
        &format!("ghcr.io/siderolabs/imager:{VERSION}"),
        &imager,
    )?;
    for (name, tag) in EXTENSIONS {
        unpack(
            workspace,
            &format!("ghcr.io/siderolabs/{name}:{tag}-{VERSION}"),
            &work.join(format!("ext-{name}")),
        )?;
    }
    let install = imager.join("usr/install/amd64");

    let mut rows = Vec::new();
    for asset in ["initramfs-amd64.xz", "metal-amd64-uki.efi"] {
        let output = work.join(format!("ours-{asset}"));
        let state = work.join(format!("state-{asset}"));
        let ours = timed(
            Command::new(&binary)
                .args([
                    "--log-level",
                    "warn",
                    "build",
                    "--progress",
                    "none",
                    "--version",
                    VERSION,
                ])
                .arg("--config")
                .arg(workspace.join("fixtures/factory.yaml"))
                .arg("--schematic")
                .arg(&schematic)
                .arg("--state-dir")
                .arg(&state)
                .arg("--output")
                .arg(&output)
                .arg(asset)
                .current_dir(workspace),
        )?;
        let ours_size = fs::metadata(&output).map_err(|e| e.to_string())?.len();
        rows.push((format!("{asset} (ours, end to end)"), ours, ours_size));
    }

    // The imager's pipeline: mksquashfs per extension, cpio, zstd -18, cat; then objcopy.
    let stage = work.join("stage");
    fs::create_dir_all(&stage).map_err(|e| e.to_string())?;
    let mut script = String::new();
    for (index, (name, _)) in EXTENSIONS.iter().enumerate() {
        script.push_str(&format!(
            "mksquashfs ../ext-{name}/rootfs {index}.sqsh -all-root -noappend -no-progress -quiet -comp zstd -Xcompression-level 18 >/dev/null\n"
        ));
    }
    script.push_str("printf 'layers: []\\n' > extensions.yaml\n");
    script.push_str("ls | cpio -o -H newc --reproducible -R +0:+0 --quiet > ../ext.cpio\n");
    script.push_str("zstd -T0 -18 -q -f -c ../ext.cpio > ../ext.cpio.zst\n");
    script.push_str(&format!(
        "cat {}/initramfs.xz ../ext.cpio.zst > ../tools-initramfs.xz\n",
        install.display()
    ));
    let tools = sh(&script, &stage)?;
    let size = fs::metadata(work.join("tools-initramfs.xz"))
        .map_err(|e| e.to_string())?
        .len();
    rows.push((
        "initramfs-amd64.xz (mksquashfs + cpio + zstd)".into(),
        tools,
        size,
    ));

    fs::write(
        work.join("cmdline.txt"),
        "talos.platform=metal console=tty0",
    )
    .map_err(|e| e.to_string())?;
    fs::write(
        work.join("osrel.txt"),
        format!("NAME=\"Talos\"\nVERSION_ID={VERSION}\n"),
    )
    .map_err(|e| e.to_string())?;
    let kernel = format!("{}/vmlinuz", install.display());
    let objcopy = objcopy_uki(
        &install,
        &[
            (".osrel", "osrel.txt", "0x20000"),
            (".cmdline", "cmdline.txt", "0x30000"),
            (".linux", &kernel, "0x2000000"),
            (".initrd", "tools-initramfs.xz", "0x3000000"),
        ],
        "tools-uki.efi",
    );
    let tools = sh(&objcopy, &work)?;
    let size = fs::metadata(work.join("tools-uki.efi"))
        .map_err(|e| e.to_string())?
        .len();
    rows.push(("metal-amd64-uki.efi (objcopy)".into(), tools, size));

    println!("{:<50} {:>10} {:>12}", "asset", "wall (s)", "size (B)");
    for (name, time, size) in &rows {
        println!("{name:<50} {:>10.3} {size:>12}", time.as_secs_f64());
    }
    println!(
        "\nratios (tools / ours): initramfs {:.2}, uki {:.2}  (ours includes reading and verifying the release)",
        rows[2].1.as_secs_f64() / rows[0].1.as_secs_f64(),
        rows[3].1.as_secs_f64() / rows[1].1.as_secs_f64()
    );
    disk_images(workspace, &work, &binary, &schematic, &imager)
}

/// The UKI as ukify (before its native PE writer) and the old imager build it: the release's
/// systemd-stub with each `(name, file, VMA)` appended by `objcopy --add-section`.
fn objcopy_uki(install: &Path, sections: &[(&str, &str, &str)], output: &str) -> String {
    let mut command = String::from("objcopy");
    for (name, file, vma) in sections {
        command.push_str(&format!(
            " --add-section {name}={file} --change-section-vma {name}={vma}"
        ));
    }
    command.push_str(&format!(" {}/systemd-stub.efi {output}", install.display()));
    command
}

/// The imager's pipeline for a dual-boot disk of `size` bytes: mkfs.fat + mcopy, mkfs.xfs
/// -p, grub-mkimage, sgdisk, dd; leaves `disk.raw` in `dir`.
fn tools_assembly(dir: &Path, work: &Path, imager: &Path, size: u64) -> Result<Usage> {
    let install = imager.join("usr/install/amd64");
    let grub = imager.join("usr/lib/grub/i386-pc");
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    fs::write(
        dir.join("proto"),
        format!(
            "/dev/null\n0 0\nd--755 0 0\nA d--755 0 0\nvmlinuz ---644 0 0 {install}/vmlinuz\n\
             initramfs.xz ---644 0 0 {work}/tools-initramfs.xz\n$\ngrub d--700 0 0\n\
             grub.cfg ---600 0 0 {work}/cmdline.txt\n$\n$\n",
            install = install.display(),
            work = work.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let modules = "part_gpt ext2 fat xfs normal configfile linux boot search search_fs_uuid \
                   search_fs_file ls cat echo test help reboot halt all_video biosdisk part_msdos";
    let script = format!(
        "truncate -s {size} disk.raw
sgdisk -q -n 1:2048:+2101M -t 1:EF00 -c 1:EFI -n 2:0:+1M -t 2:EF02 -c 2:BIOS \
  -n 3:0:+2000M -c 3:BOOT -n 4:0:+1M -c 4:META disk.raw
truncate -s 2101M esp.img
mkfs.fat -F 32 -n EFI --invariant esp.img >/dev/null
mmd -i esp.img ::/EFI ::/EFI/boot ::/EFI/Linux ::/loader
mcopy -i esp.img {install}/systemd-boot.efi ::/EFI/boot/BOOTX64.efi
mcopy -i esp.img ../tools-uki.efi ::/EFI/Linux/Talos-{VERSION}.efi
mcopy -i esp.img ../cmdline.txt ::/loader/loader.conf
truncate -s 2000M boot.img
mkfs.xfs -q -f -L BOOT -p proto boot.img
grub-mkimage -O i386-pc -d {grub} -p '(hd0,gpt3)/grub' -o core.img {modules}
dd if=esp.img of=disk.raw bs=1M seek=1 conv=notrunc,sparse status=none
dd if=core.img of=disk.raw bs=512 seek=4304896 conv=notrunc status=none
dd if=boot.img of=disk.raw bs=512 seek=4306944 conv=notrunc,sparse status=none
dd if={grub}/boot.img of=disk.raw bs=446 count=1 conv=notrunc status=none
rm esp.img boot.img
",
        install = install.display(),
        grub = grub.display(),
    );
    measured(
        Command::new("sh").args(["-ec", &script]).current_dir(dir),
        &work.join("time.txt"),
    )
}

/// The imager's hybrid ISO pipeline (imager.md §6.3): the scratch tree, `efiboot.img` with
/// mkfs.vfat + mcopy, then grub-mkrescue driving xorriso. Leaves `tools.iso` in `dir`.
fn tools_iso(dir: &Path, work: &Path, imager: &Path) -> Result<Usage> {
    let install = imager.join("usr/install/amd64");
    let grub = imager.join("usr/lib/grub/i386-pc");
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    fs::write(
        dir.join("grub.cfg"),
        "set default=0\nset timeout=3\nmenuentry \"Talos ISO\" {\n\tlinux /boot/vmlinuz talos.platform=metal\n\tinitrd /boot/initramfs.xz\n}\n",
    )
    .map_err(|e| e.to_string())?;
    let script = format!(
        "mkdir -p s/boot/grub s/EFI/BOOT s/EFI/Linux s/loader
cp {install}/vmlinuz s/boot/vmlinuz
cp {work}/tools-initramfs.xz s/boot/initramfs.xz
cp grub.cfg s/boot/grub/grub.cfg
cp {install}/systemd-boot.efi s/EFI/BOOT/BOOTX64.EFI
cp {work}/tools-uki.efi s/EFI/Linux/Talos-{VERSION}.efi
printf '# systemd-boot configuration\n\ntimeout 10\n\nsecure-boot-enroll off\n' > s/loader/loader.conf
head -c 32 /dev/zero > s/loader/random-seed
# 10 MiB + sd-boot + UKI, at least the 34 MiB mtools needs for FAT32 (as ours).
size=$(( 10 + ($(stat -c%s s/EFI/BOOT/BOOTX64.EFI) + 1048575) / 1048576 + ($(stat -c%s s/EFI/Linux/Talos-{VERSION}.efi) + 1048575) / 1048576 ))
[ $size -ge 34 ] || size=34
truncate -s ${{size}}M s/efiboot.img
mkfs.vfat -F 32 -n EFI --invariant -s 1 s/efiboot.img >/dev/null 2>&1
mcopy -s -p -Q -m -i s/efiboot.img s/EFI s/loader ::
mattrib -i s/efiboot.img +r ::/loader/random-seed
grub-mkrescue --compress=xz --output=tools.iso --directory={grub} -m efiboot.img -iso-level 3 s \
  -eltorito-alt-boot -e --interval:appended_partition_2:all:: -append_partition 2 0xef s/efiboot.img \
  -appended_part_as_gpt -partition_cyl_align all -partition_offset 16 -iso_mbr_part_type 0x83 \
  -no-emul-boot -- -volid TALOS_V1_12_0 -volset-id Talos-{VERSION} >/dev/null 2>&1
",
        install = install.display(),
        grub = grub.display(),
        work = work.display(),
    );
    measured(
        Command::new("sh").args(["-ec", &script]).current_dir(dir),
        &work.join("time.txt"),
    )
}

/// The imager's SecureBoot ISO pipeline (imager.md §6.4, §6.5, §7), run by
/// [`tools_secureboot_iso`] as `sh -ec SCRIPT sh INSTALL KEYS OWNER WORK VERSION VOLID`.
///
/// The UKI is ukify's: `objcopy --add-section` of `.osrel`, `.cmdline`, `.splash`, `.pcrpkey`,
/// `.linux`, `.initrd` and `.pcrsig` onto the stub (one boot profile). `.pcrsig` stands in for
/// `systemd-measure sign`, which is not packaged here, with the same work done by openssl:
/// per bank (SHA-256, SHA-384, SHA-512) PCR 11 is extended with every measured section's name
/// and content and the three boot phases, the TPM2_PolicyPCR digest is built over it and
/// signed (RSA PKCS#1 v1.5) with the PCR key, and the three go into the JSON. Then sbsign
/// signs systemd-boot and the UKI, efitools make PK/KEK/db.auth, mkfs.vfat + mcopy + mattrib
/// the ESP and xorriso the ISO with the imager's flags. Leaves `tools.iso`.
const SECUREBOOT_ISO: &str = r#"install=$1 keys=$2 owner=$3 work=$4 version=$5 volid=$6
mkdir -p u s/EFI/BOOT s/EFI/Linux s/EFI/keys s/loader/keys/auto
cp "$work/osrel.txt" u/osrel
cp "$work/cmdline.txt" u/cmdline
cp "$work/splash.bmp" u/splash
cp "$install/vmlinuz" u/linux
cp "$work/tools-initramfs.xz" u/initrd
objcopy -O binary --only-section=.sbat "$install/systemd-stub.efi" u/sbat
openssl rsa -in "$keys/pcr-signing-key.pem" -pubout -out u/pcrpkey 2>/dev/null
pkfp=$(openssl rsa -in "$keys/pcr-signing-key.pem" -RSAPublicKey_out -outform DER 2>/dev/null \
  | openssl dgst -sha256 -r | cut -d' ' -f1)
json='{'
for bank in sha256:013 sha384:014 sha512:015; do
  hash=${bank%:*} alg=${bank#*:}
  head -c $(openssl dgst -$hash -binary /dev/null | wc -c) /dev/zero > pcr
  extend() { { cat pcr; openssl dgst -$hash -binary "$1"; } | openssl dgst -$hash -binary > pcr.new; mv pcr.new pcr; }
  for section in linux osrel cmdline initrd splash sbat pcrpkey; do
    printf ".$section\000" > name; extend name; extend u/$section
  done
  for phase in enter-initrd leave-initrd enter-machined; do printf $phase > name; extend name; done
  # 0^32, TPM_CC_PolicyPCR, TPML_PCR_SELECTION {1, bank, 3, 00 08 00}, SHA-256(PCR 11).
  { head -c 32 /dev/zero; printf "\000\000\001\177\000\000\000\001\000\\$alg\003\000\010\000"
    openssl dgst -sha256 -binary pcr; } | openssl dgst -sha256 -binary > pol
  sig=$(openssl dgst -$hash -sign "$keys/pcr-signing-key.pem" pol | base64 -w0)
  [ "$json" = '{' ] || json="$json,"
  json="$json\"$hash\":[{\"pcrs\":[11],\"pkfp\":\"$pkfp\",\"pol\":\"$(xxd -p -c 64 pol)\",\"sig\":\"$sig\"}]"
done
printf '%s}' "$json" > u/pcrsig
pcrsig=$(printf '0x%x' $(( (0x3000000 + $(stat -c%s u/initrd) + 0xffff) / 0x10000 * 0x10000 )))
@OBJCOPY@
sbsign --key "$keys/uki-signing-key.pem" --cert "$keys/uki-signing-cert.pem" \
  --output "s/EFI/Linux/Talos-$version.efi" uki.efi 2>/dev/null
sbsign --key "$keys/uki-signing-key.pem" --cert "$keys/uki-signing-cert.pem" \
  --output s/EFI/BOOT/BOOTX64.EFI "$install/systemd-boot.efi" 2>/dev/null
openssl x509 -in "$keys/uki-signing-cert.pem" -outform DER -out s/EFI/keys/uki-signing-cert.der
cert-to-efi-sig-list -g $owner "$keys/uki-signing-cert.pem" db.esl
for var in PK KEK db; do
  sign-efi-sig-list -g $owner -k "$keys/uki-signing-key.pem" -c "$keys/uki-signing-cert.pem" \
    $var db.esl s/loader/keys/auto/$var.auth >/dev/null
done
printf '# systemd-boot configuration\n\ntimeout 10\n\nsecure-boot-enroll if-safe\n' > s/loader/loader.conf
head -c 32 /dev/zero > s/loader/random-seed
# 10 MiB + sd-boot + UKI, at least the 34 MiB mtools needs for FAT32 (as ours).
size=$(( 10 + ($(stat -c%s s/EFI/BOOT/BOOTX64.EFI) + 1048575) / 1048576 \
  + ($(stat -c%s "s/EFI/Linux/Talos-$version.efi") + 1048575) / 1048576 ))
[ $size -ge 34 ] || size=34
truncate -s ${size}M s/efiboot.img
mkfs.vfat -F 32 -n EFI --invariant -s 1 s/efiboot.img >/dev/null 2>&1
mcopy -s -p -Q -m -i s/efiboot.img s/EFI s/loader ::
mattrib -i s/efiboot.img +r ::/loader/random-seed
xorriso -as mkisofs -e --interval:appended_partition_2:all:: -append_partition 2 0xef s/efiboot.img \
  -partition_cyl_align all -partition_offset 16 -iso_mbr_part_type 0x83 -no-emul-boot -m efiboot.img \
  -iso-level 3 -o tools.iso s -- -volid $volid -volset-id Talos-$version >/dev/null 2>&1
"#;

/// The owner GUID the imager gives the Talos certificate in PK/KEK/db (imager.md §6.5): a
/// name-based UUID, SHA-256 over the X.500 namespace and the certificate's PEM text, version 4.
fn certificate_owner(pem: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    const X500: [u8; 16] = [
        0x6b, 0xa7, 0xb8, 0x14, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30,
        0xc8,
    ];
    let mut hasher = Sha256::new();
    hasher.update(X500);
    hasher.update(pem);
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&hasher.finalize()[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    let hex = image_factory::hex::encode(&uuid);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The imager's SecureBoot ISO pipeline ([`SECUREBOOT_ISO`]) with the Secure Boot keys in
/// `keys`; inputs unpacked beforehand as for [`tools_iso`]. Leaves `tools.iso` in `dir`.
fn tools_secureboot_iso(dir: &Path, work: &Path, imager: &Path, keys: &Path) -> Result<Usage> {
    let install = imager.join("usr/install/amd64");
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    // The imager's image carries its splash (sidero.bmp); the fixture's has none, so the
    // pipeline gets the one we append.
    fs::write(
        work.join("splash.bmp"),
        image_factory::engine::boot::uki::splash(),
    )
    .map_err(|e| e.to_string())?;
    let cert = fs::read(keys.join("uki-signing-cert.pem")).map_err(|e| e.to_string())?;
    let objcopy = objcopy_uki(
        &install,
        &[
            (".osrel", "u/osrel", "0x20000"),
            (".cmdline", "u/cmdline", "0x30000"),
            (".splash", "u/splash", "0x40000"),
            (".pcrpkey", "u/pcrpkey", "0x50000"),
            (".linux", "u/linux", "0x2000000"),
            (".initrd", "u/initrd", "0x3000000"),
            (".pcrsig", "u/pcrsig", "$pcrsig"),
        ],
        "uki.efi",
    );
    let script = SECUREBOOT_ISO.replace("@OBJCOPY@", &objcopy);
    let volid = format!("TALOS_{}", VERSION.to_uppercase().replace('.', "_"));
    measured(
        Command::new("sh")
            .args(["-ec", &script, "sh"])
            .arg(&install)
            .arg(keys)
            .arg(certificate_owner(&cert))
            .arg(work)
            .args([VERSION, &volid])
            .current_dir(dir),
        &work.join("time.txt"),
    )
}

const METAL_SIZE: u64 = 4_453_302_272;
const AWS_SIZE: u64 = 11_736_711_168;

/// Dual-boot disk images (the amd64 default) from our CLI against the imager's pipeline
/// (then zstd -T0 -18, xz -T0 -0, qemu-img convert), plus time to first byte and peak RSS
/// of the server for an uncached image.
#[allow(clippy::print_stdout)]
fn disk_images(
    workspace: &Path,
    work: &Path,
    binary: &Path,
    schematic: &Path,
    imager: &Path,
) -> Result<()> {
    let report = work.join("time.txt");
    let build = |asset: &str| -> Result<(Usage, u64)> {
        let output = work.join(format!("ours-{asset}"));
        let usage = measured(
            Command::new(binary)
                .args(["--log-level", "warn", "build", "--progress", "none"])
                .args(["--version", VERSION])
                .arg("--config")
                .arg(workspace.join("fixtures/factory.yaml"))
                .arg("--schematic")
                .arg(schematic)
                .arg("--state-dir")
                .arg(work.join(format!("state-{asset}")))
                .arg("--output")
                .arg(&output)
                .arg(asset)
                .current_dir(workspace),
            &report,
        )?;
        let size = size_of(&output)?;
        let _ = fs::remove_file(&output);
        let _ = fs::remove_dir_all(work.join(format!("state-{asset}")));
        Ok((usage, size))
    };

    let metal = work.join("metal");
    let assembly = tools_assembly(&metal, work, imager, METAL_SIZE)?;
    let compress = |program: &str, args: &[&str], dir: &Path| -> Result<Usage> {
        measured(Command::new(program).args(args).current_dir(dir), &report)
    };
    let raw_size = size_of(&metal.join("disk.raw"))?;
    let zstd = compress(
        "zstd",
        &[
            "-T0",
            "-18",
            "-q",
            "-f",
            "-k",
            "disk.raw",
            "-o",
            "disk.raw.zst",
        ],
        &metal,
    )?;
    let zstd_size = size_of(&metal.join("disk.raw.zst"))?;
    let xz = compress("xz", &["-T0", "-0", "-f", "-k", "disk.raw"], &metal)?;
    let xz_size = size_of(&metal.join("disk.raw.xz"))?;
    let qcow2 = compress(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            "-o",
            "cluster_size=8k",
            "disk.raw",
            "disk.qcow2",
        ],
        &metal,
    )?;
    let qcow2_size = size_of(&metal.join("disk.qcow2"))?;
    let _ = fs::remove_dir_all(&metal);
    let aws = work.join("aws");
    let aws_assembly = tools_assembly(&aws, work, imager, AWS_SIZE)?;
    let aws_xz = compress("xz", &["-T0", "-0", "-f", "disk.raw"], &aws)?;
    let aws_size = size_of(&aws.join("disk.raw.xz"))?;
    let _ = fs::remove_dir_all(&aws);
    let iso_dir = work.join("iso");
    let iso_tools = tools_iso(&iso_dir, work, imager)?;
    let iso_size = size_of(&iso_dir.join("tools.iso"))?;
    let _ = fs::remove_dir_all(&iso_dir);
    let secureboot_dir = work.join("iso-secureboot");
    let secureboot_tools = tools_secureboot_iso(
        &secureboot_dir,
        work,
        imager,
        &workspace.join("fixtures/secureboot"),
    )?;
    let secureboot_size = size_of(&secureboot_dir.join("tools.iso"))?;
    let _ = fs::remove_dir_all(&secureboot_dir);

    let rows = [
        (
            "metal-amd64.raw",
            build("metal-amd64.raw")?,
            assembly,
            raw_size,
        ),
        (
            "metal-amd64.raw.zst",
            build("metal-amd64.raw.zst")?,
            assembly.then(zstd),
            zstd_size,
        ),
        (
            "metal-amd64.raw.xz",
            build("metal-amd64.raw.xz")?,
            assembly.then(xz),
            xz_size,
        ),
        (
            "metal-amd64.qcow2",
            build("metal-amd64.qcow2")?,
            assembly.then(qcow2),
            qcow2_size,
        ),
        (
            "aws-amd64.raw.xz (8 GiB base)",
            build("aws-amd64.raw.xz")?,
            aws_assembly.then(aws_xz),
            aws_size,
        ),
        (
            "metal-amd64.iso (hybrid)",
            build("metal-amd64.iso")?,
            iso_tools,
            iso_size,
        ),
        (
            "metal-amd64-secureboot.iso",
            build("metal-amd64-secureboot.iso")?,
            secureboot_tools,
            secureboot_size,
        ),
    ];
    println!(
        "\n{:<30} {:>8} {:>8} {:>8} {:>12} | {:>8} {:>8} {:>8} {:>12} | {:>7} {:>7}",
        "asset (dual-boot / hybrid)",
        "wall s",
        "cpu s",
        "RSS MiB",
        "size B",
        "wall s",
        "cpu s",
        "RSS MiB",
        "size B",
        "speedup",
        "size %"
    );
    println!(
        "{:<30} {:^41} | {:^41} |",
        "", "ours (CLI, cold state)", "standard tools"
    );
    for (name, (ours, size), tools, tools_size) in &rows {
        println!(
            "{name:<30} {:>8.2} {:>8.2} {:>8.1} {size:>12} | {:>8.2} {:>8.2} {:>8.1} {tools_size:>12} | {:>7.1} {:>+7.2}",
            ours.wall.as_secs_f64(),
            ours.cpu.as_secs_f64(),
            ours.rss as f64 / 1024.0,
            tools.wall.as_secs_f64(),
            tools.cpu.as_secs_f64(),
            tools.rss as f64 / 1024.0,
            tools.wall.as_secs_f64() / ours.wall.as_secs_f64(),
            (*size as f64 / *tools_size as f64 - 1.0) * 100.0
        );
    }
    println!(
        "(tools: assembly {:.2} s, zstd -T0 -18 {:.2} s, xz -T0 -0 {:.2} s, qemu-img {:.2} s; \
         aws: assembly {:.2} s, xz {:.2} s; iso: mkfs.vfat + mcopy + grub-mkrescue/xorriso; \
         secureboot iso: objcopy + openssl + sbsign + efitools + mkfs.vfat + mcopy + xorriso)",
        assembly.wall.as_secs_f64(),
        zstd.wall.as_secs_f64(),
        xz.wall.as_secs_f64(),
        qcow2.wall.as_secs_f64(),
        aws_assembly.wall.as_secs_f64(),
        aws_xz.wall.as_secs_f64()
    );
    let aws_ratio = rows[4].1.0.wall.as_secs_f64() / rows[2].1.0.wall.as_secs_f64();
    println!("aws-amd64.raw.xz (11.7 GB) costs {aws_ratio:.2}× metal-amd64.raw.xz (4.4 GB)");
    first_byte(workspace, work, binary, schematic)
}

/// Time to first byte of an uncached metal-amd64.raw.zst over HTTP from a warm server
/// (the release already read once), and the server's peak RSS during that build.
#[allow(clippy::print_stdout)]
fn first_byte(workspace: &Path, work: &Path, binary: &Path, schematic: &Path) -> Result<()> {
    let listen = "127.0.0.1:18089";
    let mut server = Command::new(binary)
        .args(["--log-level", "warn", "serve", "--listen", listen])
        .arg("--config")
        .arg(workspace.join("fixtures/factory.yaml"))
        .arg("--state-dir")
        .arg(work.join("state-server"))
        .current_dir(workspace)
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let result = (|| -> Result<()> {
        let base = format!("http://{listen}");
        let mut ready = false;
        for _ in 0..100 {
            let probe = Command::new("curl")
                .args(["-sf", "-o", "/dev/null", &format!("{base}/healthz")])
                .status();
            if probe.is_ok_and(|status| status.success()) {
                ready = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !ready {
            return Err("the server did not become healthy".into());
        }
        let created = Command::new("curl")
            .args(["-sf", "-X", "POST", "--data-binary"])
            .arg(format!("@{}", schematic.display()))
            .arg(format!("{base}/schematics"))
            .output()
            .map_err(|e| e.to_string())?;
        let created: serde_json::Value =
            serde_json::from_slice(&created.stdout).map_err(|e| e.to_string())?;
        let id = created["id"].as_str().ok_or("no schematic id")?;
        // Warm: the release's imager is read and verified once per server.
        run(
            "curl",
            &[
                "-sf",
                "-o",
                "/dev/null",
                &format!("{base}/image/{id}/{VERSION}/kernel-amd64"),
            ],
        )?;
        let timing = Command::new("curl")
            .args([
                "-sf",
                "-o",
                "/dev/null",
                "-w",
                "%{time_starttransfer} %{time_total}",
            ])
            .arg(format!("{base}/image/{id}/{VERSION}/metal-amd64.raw.zst"))
            .output()
            .map_err(|e| e.to_string())?;
        let timing = String::from_utf8_lossy(&timing.stdout).to_string();
        let status = fs::read_to_string(format!("/proc/{}/status", server.id()))
            .map_err(|e| e.to_string())?;
        let peak = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .map(|value| value.trim().to_string())
            .unwrap_or_default();
        let mut fields = timing.split_whitespace();
        println!(
            "\nuncached metal-amd64.raw.zst over HTTP: first byte {} s, complete {} s; server peak RSS {peak}",
            fields.next().unwrap_or("?"),
            fields.next().unwrap_or("?")
        );
        // Cached delivery: the 4.4 GB sparse raw image, built once, then read back whole.
        let raw = format!("{base}/image/{id}/{VERSION}/metal-amd64.raw");
        run("curl", &["-sf", "-o", "/dev/null", &raw])?;
        let mut speeds = Vec::new();
        for _ in 0..3 {
            let speed = Command::new("curl")
                .args([
                    "-sf",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{size_download} %{speed_download}",
                ])
                .arg(&raw)
                .output()
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&speed.stdout).to_string();
            let mut fields = text.split_whitespace();
            let size: f64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let rate: f64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            speeds.push((size, rate));
        }
        let best = speeds.iter().map(|(_, rate)| *rate).fold(0.0, f64::max);
        println!(
            "cached metal-amd64.raw ({:.2} GB) over loopback: best of 3 {:.2} GB/s",
            speeds.first().map_or(0.0, |(size, _)| *size) / 1e9,
            best / 1e9
        );
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}
