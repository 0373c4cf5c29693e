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

/// Wall time and peak RSS (KiB, from GNU time) of `command`.
fn timed_rss(command: &mut Command, report: &Path) -> Result<(Duration, u64)> {
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .args(["-f", "%M", "-o"])
        .arg(report)
        .arg(command.get_program())
        .args(command.get_args());
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    let elapsed = timed(&mut wrapped)?;
    let text = fs::read_to_string(report).map_err(|e| e.to_string())?;
    let rss = text
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .ok_or_else(|| format!("no peak RSS in {}", report.display()))?;
    Ok((elapsed, rss))
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

/// The default amd64 disk image (dual-boot) compressed with zstd and xz: our CLI against the
/// imager's pipeline (objcopy, mkfs.fat + mcopy, mkfs.xfs -p, grub-mkimage, sgdisk, dd, then
/// zstd -T0 -18 / xz -T0 -0 of the whole raw file).
#[allow(clippy::print_stdout)]
fn disk_images(
    workspace: &Path,
    work: &Path,
    binary: &Path,
    schematic: &Path,
    imager: &Path,
) -> Result<()> {
    let mut ours = Vec::new();
    for asset in ["metal-amd64.raw.zst", "metal-amd64.raw.xz"] {
        let output = work.join(format!("ours-{asset}"));
        let (time, rss) = timed_rss(
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
            &work.join("rss.txt"),
        )?;
        ours.push((asset, time, rss, size_of(&output)?));
    }

    let install = imager.join("usr/install/amd64");
    let grub = imager.join("usr/lib/grub/i386-pc");
    let disk = work.join("disk");
    fs::create_dir_all(&disk).map_err(|e| e.to_string())?;
    fs::write(
        disk.join("proto"),
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
    let assemble = format!(
        "truncate -s 4453302272 disk.raw
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
",
        install = install.display(),
        grub = grub.display(),
    );
    let (assembly, assembly_rss) = timed_rss(
        Command::new("sh")
            .args(["-ec", &assemble])
            .current_dir(&disk),
        &work.join("rss.txt"),
    )?;
    let (zstd, zstd_rss) = timed_rss(
        Command::new("zstd")
            .args([
                "-T0",
                "-18",
                "-q",
                "-f",
                "-k",
                "disk.raw",
                "-o",
                "disk.raw.zst",
            ])
            .current_dir(&disk),
        &work.join("rss.txt"),
    )?;
    let (xz, xz_rss) = timed_rss(
        Command::new("xz")
            .args(["-T0", "-0", "-f", "-k", "disk.raw"])
            .current_dir(&disk),
        &work.join("rss.txt"),
    )?;
    let tools = [
        (
            "metal-amd64.raw.zst",
            assembly + zstd,
            assembly_rss.max(zstd_rss),
            size_of(&disk.join("disk.raw.zst"))?,
        ),
        (
            "metal-amd64.raw.xz",
            assembly + xz,
            assembly_rss.max(xz_rss),
            size_of(&disk.join("disk.raw.xz"))?,
        ),
    ];
    println!(
        "\n{:<34} {:>10} {:>10} {:>12} {:>10} {:>10} {:>12} {:>8} {:>8}",
        "disk image (dual-boot, 4.4 GB)",
        "ours (s)",
        "RSS (MiB)",
        "size (B)",
        "tools (s)",
        "RSS (MiB)",
        "size (B)",
        "speedup",
        "size ±%"
    );
    for ((asset, time, rss, size), (_, tools_time, tools_rss, tools_size)) in
        ours.iter().zip(&tools)
    {
        println!(
            "{asset:<34} {:>10.2} {:>10.1} {size:>12} {:>10.2} {:>10.1} {tools_size:>12} {:>8.1} {:>8.2}",
            time.as_secs_f64(),
            *rss as f64 / 1024.0,
            tools_time.as_secs_f64(),
            *tools_rss as f64 / 1024.0,
            tools_time.as_secs_f64() / time.as_secs_f64(),
            (*size as f64 / *tools_size as f64 - 1.0) * 100.0
        );
    }
    println!(
        "(tools: assembly {:.2} s, zstd -T0 -18 {:.2} s, xz -T0 -0 {:.2} s; ours end to end from a cold state directory)",
        assembly.as_secs_f64(),
        zstd.as_secs_f64(),
        xz.as_secs_f64()
    );
    let _ = fs::remove_dir_all(&disk);
    Ok(())
}
