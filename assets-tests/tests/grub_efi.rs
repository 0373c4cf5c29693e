//! GRUB's EFI application linked natively: our `BOOTX64.efi`/`BOOTAA64.efi` compared byte for
//! byte with what `grub-mkimage` makes from the same release files, read back by pefile and
//! checked against readelf's count of absolute relocations, and a GPT disk with our image on
//! the ESP and our `grub.cfg` on BOOT booted by OVMF through GRUB.

use assets_tests::{TestFactory, boot_uefi_disk, fat_image, fixture_lines, run};
use image_factory::engine::boot::grub::{self, EfiArch};
use image_factory::engine::fs::gpt::{self, Partition};
use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

const VERSION: &str = "v1.12.0";

/// The release's `/usr/lib/grub/<platform>` by file name, from the fixture imager (its
/// shared layer carries every GRUB platform).
async fn grub_files(factory: &TestFactory, arch: EfiArch) -> BTreeMap<String, Vec<u8>> {
    let dir = format!("usr/lib/grub/{}", arch.platform());
    let files = factory.imager_dir(VERSION, &dir).await;
    assert!(files.contains_key("kernel.img"), "imager has GRUB {dir}");
    files
}

fn our_image(arch: EfiArch, files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    grub::efi_image(
        arch,
        &|name| files.get(name).cloned(),
        grub::PREFIX,
        grub::COMMON_MODULES,
    )
    .expect("EFI image builds")
}

/// `grub-mkimage -O <platform> -p (hd0,gpt3)/grub [extra] <COMMON_MODULES>`.
fn grub_mkimage(arch: EfiArch, dir: &Path, output: &Path, extra: &[&str]) -> Vec<u8> {
    run(Command::new("grub-mkimage")
        .args(["-O", arch.platform(), "-p", grub::PREFIX, "-o"])
        .arg(output)
        .arg("-d")
        .arg(dir)
        .args(extra)
        .args(grub::COMMON_MODULES));
    std::fs::read(output).unwrap()
}

/// What pefile reads from a PE file, as JSON.
const PEFILE_SUMMARY: &str = r#"
import json, sys, pefile
pe = pefile.PE(sys.argv[1])
sections = [
    {"name": s.Name.rstrip(b"\0").decode(), "rva": s.VirtualAddress,
     "vsize": s.Misc_VirtualSize, "raw": s.PointerToRawData, "rawsize": s.SizeOfRawData}
    for s in pe.sections
]
types = {}
for block in getattr(pe, "DIRECTORY_ENTRY_BASERELOC", []):
    for entry in block.entries:
        types[entry.type] = types.get(entry.type, 0) + 1
mods = [s for s in pe.sections if s.Name.rstrip(b"\0") == b"mods"][0].get_data()
print(json.dumps({
    "machine": pe.FILE_HEADER.Machine,
    "subsystem": pe.OPTIONAL_HEADER.Subsystem,
    "entry": pe.OPTIONAL_HEADER.AddressOfEntryPoint,
    "image_size": pe.OPTIONAL_HEADER.SizeOfImage,
    "sections": sections,
    "reloc_types": {str(k): v for k, v in types.items()},
    "mods_head": mods[:4].decode("latin-1"),
    "mods": mods.hex(),
}))
"#;

fn pefile_summary(path: &Path) -> serde_json::Value {
    let output = run(Command::new("/usr/bin/python3")
        .args(["-c", PEFILE_SUMMARY])
        .arg(path));
    serde_json::from_str(&output).expect("pefile summary is JSON")
}

/// Where two images first differ, with `objdump -h -p` of both for the section picture.
fn explain_difference(ours: &Path, theirs: &Path, a: &[u8], b: &[u8]) -> String {
    let at = (0..a.len().min(b.len()))
        .find(|&i| a[i] != b[i])
        .unwrap_or(a.len().min(b.len()));
    let dump = |path: &Path| run(Command::new("objdump").args(["-h", "-p"]).arg(path));
    format!(
        "sizes {} vs {}, first difference at {at:#x}\n--- ours\n{}\n--- grub-mkimage\n{}",
        a.len(),
        b.len(),
        dump(ours),
        dump(theirs)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn efi_images_match_grub_mkimage() {
    let factory = TestFactory::start(|_| {}).await;
    let work = tempfile::tempdir().unwrap();
    for (arch, machine, absolute) in [
        (EfiArch::X86_64, 0x8664, "R_X86_64_64"),
        (EfiArch::Arm64, 0xAA64, "R_AARCH64_ABS64"),
    ] {
        let files = grub_files(&factory, arch).await;
        let dir = work.path().join(arch.platform());
        std::fs::create_dir(&dir).unwrap();
        for (name, data) in &files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, data).unwrap();
        }
        // imager.md §5.3 passes `--compression xz`; grub-mkimage 2.06 only compresses for
        // platforms with a decompressor stage, so EFI images are the same either way.
        let theirs_path = work.path().join(format!("{}-theirs.efi", arch.platform()));
        let theirs = grub_mkimage(arch, &dir, &theirs_path, &["--compression", "xz"]);
        let plain = grub_mkimage(
            arch,
            &dir,
            &work.path().join(format!("{}-plain.efi", arch.platform())),
            &[],
        );
        assert!(theirs == plain, "--compression xz changed the EFI image");

        let ours = our_image(arch, &files);
        let ours_path = work.path().join(format!("{}-ours.efi", arch.platform()));
        std::fs::write(&ours_path, &ours).unwrap();
        assert!(
            ours == theirs,
            "{}: {}",
            arch.platform(),
            explain_difference(&ours_path, &theirs_path, &ours, &theirs)
        );

        // An independent reader: the layout, and one DIR64 fixup per absolute relocation
        // readelf lists in kernel.img (zero entries only pad the blocks).
        let summary = pefile_summary(&ours_path);
        assert_eq!(summary["machine"], machine, "{summary}");
        assert_eq!(summary["subsystem"], 10, "{summary}");
        assert_eq!(summary["image_size"], ours.len(), "{summary}");
        let sections = summary["sections"].as_array().unwrap();
        let names: Vec<&str> = sections
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [".text", ".data", "mods", ".reloc"], "{summary}");
        let text = &sections[0];
        let entry = summary["entry"].as_u64().unwrap();
        let text_rva = text["rva"].as_u64().unwrap();
        assert!(
            (text_rva..text_rva + text["vsize"].as_u64().unwrap()).contains(&entry),
            "{summary}"
        );
        let relocations = run(Command::new("readelf")
            .args(["-r", "-W"])
            .arg(dir.join("kernel.img")));
        let expected = relocations
            .lines()
            .filter(|line| line.split_whitespace().nth(2) == Some(absolute))
            .count();
        assert!(expected > 100, "{relocations}");
        let types = summary["reloc_types"].as_object().unwrap();
        assert_eq!(types["10"], expected, "{summary}");
        assert!(types.keys().all(|k| k == "0" || k == "10"), "{summary}");
        // The module area: grub_module_info64 first, the prefix last.
        assert_eq!(summary["mods_head"], "mimg", "{summary}");
        let mods = summary["mods"].as_str().unwrap();
        let mut prefix = String::from("0300000018000000");
        for byte in b"(hd0,gpt3)/grub\0" {
            prefix.push_str(&format!("{byte:02x}"));
        }
        assert!(mods.contains(&prefix), "prefix in the module area");
    }
}

const MIB: u64 = 1024 * 1024;
const SECTOR: u64 = 512;

#[tokio::test(flavor = "multi_thread")]
async fn ovmf_boots_through_our_grub_efi() {
    let factory = TestFactory::start(|_| {}).await;
    let files = grub_files(&factory, EfiArch::X86_64).await;
    let work = tempfile::tempdir().unwrap();
    let (kernel, initramfs) = factory.vanilla_boot_files(VERSION, work.path()).await;

    let loader = work.path().join("BOOTX64.efi");
    std::fs::write(&loader, our_image(EfiArch::X86_64, &files)).unwrap();
    let esp_size = 64 * MIB;
    let esp = work.path().join("esp.img");
    fat_image(
        &esp,
        esp_size,
        "EFI",
        &["::/EFI", "::/EFI/boot"],
        &[(&loader, &format!("::/{}", EfiArch::X86_64.esp_path()))],
    );

    // BOOT as FAT (GRUB's module list has `fat`), partition 3 as the prefix expects.
    let cmdline = "talos.platform=metal console=ttyS0 fixture.marker=grub-efi";
    let cfg = work.path().join("grub.cfg");
    std::fs::write(&cfg, grub::grub_cfg(VERSION, cmdline, true)).unwrap();
    let boot_size = 64 * MIB;
    let boot = work.path().join("boot.img");
    fat_image(
        &boot,
        boot_size,
        "BOOT",
        &["::/A", "::/grub"],
        &[
            (&kernel, "::/A/vmlinuz"),
            (&initramfs, "::/A/initramfs.xz"),
            (&cfg, "::/grub/grub.cfg"),
        ],
    );

    let mib = MIB / SECTOR;
    let esp_first = mib;
    let bios_first = esp_first + esp_size / SECTOR;
    let boot_first = bios_first + mib;
    let partitions = [
        Partition {
            name: "EFI",
            type_guid: gpt::ESP_TYPE,
            first_lba: esp_first,
            last_lba: bios_first - 1,
            attributes: 0,
        },
        Partition {
            name: "BIOS",
            type_guid: gpt::BIOS_BOOT_TYPE,
            first_lba: bios_first,
            last_lba: boot_first - 1,
            attributes: 1 << 2,
        },
        Partition {
            name: "BOOT",
            type_guid: gpt::LINUX_DATA_TYPE,
            first_lba: boot_first,
            last_lba: boot_first + boot_size / SECTOR - 1,
            attributes: 0,
        },
    ];
    let disk_size = (boot_first * SECTOR) + boot_size + MIB;
    let disk = work.path().join("disk.raw");
    let mut file = std::fs::File::create(&disk).unwrap();
    file.set_len(disk_size).unwrap();
    let mut put = |offset: u64, bytes: &[u8]| {
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.write_all(bytes).unwrap();
    };
    for (offset, bytes) in gpt::write(SECTOR, disk_size, &partitions) {
        put(offset, &bytes);
    }
    put(esp_first * SECTOR, &std::fs::read(&esp).unwrap());
    put(boot_first * SECTOR, &std::fs::read(&boot).unwrap());
    drop(file);
    let verify = run(Command::new("sgdisk").arg("-v").arg(&disk));
    assert!(verify.contains("No problems found"), "{verify}");

    let log = boot_uefi_disk(&disk, work.path());
    let lines = fixture_lines(&log);
    let text = lines.join("\n");
    assert!(
        lines
            .first()
            .is_some_and(|l| l == &format!("FIXTURE-BOOT version={VERSION} arch=amd64")),
        "no fixture boot through GRUB EFI:\n{log}"
    );
    // GRUB's `linux` command puts BOOT_IMAGE first: the kernel came through our grub.cfg.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("FIXTURE-CMDLINE BOOT_IMAGE=/A/vmlinuz ")
                && l.contains("fixture.marker=grub-efi")),
        "{text}"
    );
    assert!(!text.contains("FIXTURE-ERROR"), "{text}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("FIXTURE-DONE"),
        "{text}"
    );
}
