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
    let binary = workspace.join("target/release/image-factory");
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
    let objcopy = format!(
        "objcopy --add-section .osrel=osrel.txt --change-section-vma .osrel=0x20000 \
         --add-section .cmdline=cmdline.txt --change-section-vma .cmdline=0x30000 \
         --add-section .linux={install}/vmlinuz --change-section-vma .linux=0x2000000 \
         --add-section .initrd=tools-initramfs.xz --change-section-vma .initrd=0x3000000 \
         {install}/systemd-stub.efi tools-uki.efi",
        install = install.display()
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
         aws: assembly {:.2} s, xz {:.2} s; iso: mkfs.vfat + mcopy + grub-mkrescue/xorriso)",
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
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}
