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
    Ok(())
}
