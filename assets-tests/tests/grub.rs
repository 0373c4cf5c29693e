//! GRUB for legacy BIOS assembled natively: our `core.img` compared field by field with the
//! one `grub-mkimage` makes from the same release files, and a GPT disk carrying our boot
//! code, our `core.img` and our `grub.cfg` booted by SeaBIOS through GRUB.

use assets_tests::{TestFactory, boot_bios_disk, fat_image, fixture_lines, run};
use image_factory::engine::boot::grub;
use image_factory::engine::fs::gpt::{self, Partition};
use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::process::{Command, Stdio};

const VERSION: &str = "v1.12.0";
const GRUB_DIR: &str = "usr/lib/grub/i386-pc";

/// The release's `/usr/lib/grub/i386-pc` by file name, from the fixture imager.
async fn grub_files(factory: &TestFactory) -> BTreeMap<String, Vec<u8>> {
    let files = factory.imager_dir(VERSION, GRUB_DIR).await;
    assert!(files.contains_key("kernel.img"), "imager has GRUB i386-pc");
    files
}

fn core_image(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    grub::bios_core_image(
        &|name| files.get(name).cloned(),
        grub::PREFIX,
        grub::BIOS_MODULES,
    )
    .expect("core.img builds")
}

fn u32_at(bytes: &[u8], at: usize) -> usize {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
}

/// Decompresses a core.img payload with xz's `.lzma` decoder: the raw stream behind a
/// header carrying the decoder's fixed properties (lc=3 lp=0 pb=2 = 0x5D), a dictionary
/// size, and the size (`None`: unknown, the stream then ends with an end marker).
fn unlzma(raw: &[u8], size: Option<u64>) -> Vec<u8> {
    let mut input = vec![0x5D];
    input.extend_from_slice(&(1u32 << 20).to_le_bytes());
    input.extend_from_slice(&size.unwrap_or(u64::MAX).to_le_bytes());
    input.extend_from_slice(raw);
    let mut child = Command::new("xz")
        .args(["--format=lzma", "--decompress", "--stdout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xz runs");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "xz: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The parts of a core.img: diskboot sector, decompressor, payload (uncompressed).
#[derive(Debug)]
struct Parts {
    diskboot: Vec<u8>,
    decompressor: Vec<u8>,
    payload: Vec<u8>,
}

fn split(core: &[u8], decompressor_size: usize, end_marker: bool) -> Parts {
    let decompressor = &core[512..512 + decompressor_size];
    let compressed = u32_at(decompressor, 0x08);
    let uncompressed = u32_at(decompressor, 0x0C);
    assert_eq!(512 + decompressor_size + compressed, core.len());
    let sectors = u16::from_le_bytes([core[0x1FC], core[0x1FD]]) as usize;
    assert_eq!(
        sectors,
        (core.len() - 512).div_ceil(512),
        "blocklist length"
    );
    let raw = &core[512 + decompressor_size..];
    let payload = unlzma(raw, (!end_marker).then_some(uncompressed as u64));
    assert_eq!(payload.len(), uncompressed, "uncompressed size field");
    Parts {
        diskboot: core[..512].to_vec(),
        decompressor: decompressor.to_vec(),
        payload,
    }
}

/// Our image against `grub-mkimage -O <format>` from the same files: identical but for the
/// compressed stream (a different LZMA encoder) and the sizes that follow from it.
fn compare_with_grub_mkimage(
    files: &BTreeMap<String, Vec<u8>>,
    format: &str,
    prefix: &str,
    modules: &[&str],
    config: Option<&str>,
    ours: &[u8],
) -> Parts {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("i386-pc");
    std::fs::create_dir(&dir).unwrap();
    for (name, data) in files {
        std::fs::write(dir.join(name), data).unwrap();
    }
    let theirs_path = work.path().join("core.img");
    let mut command = Command::new("grub-mkimage");
    command
        .args(["-O", format, "-p", prefix, "-o"])
        .arg(&theirs_path)
        .arg("-d")
        .arg(&dir);
    if let Some(config) = config {
        let path = work.path().join("early.cfg");
        std::fs::write(&path, config).unwrap();
        command.arg("-c").arg(path);
    }
    run(command.args(modules));
    let theirs = std::fs::read(&theirs_path).unwrap();

    // The El Torito image is cdboot.img, then a core.img.
    let skip = if format == "i386-pc-eltorito" {
        assert_eq!(ours[..2048], theirs[..2048], "cdboot.img");
        assert_eq!(ours[..2048], files["cdboot.img"][..]);
        2048
    } else {
        0
    };
    let decompressor_size = files["lzma_decompress.img"].len();
    let theirs = split(&theirs[skip..], decompressor_size, false);
    let ours = split(&ours[skip..], decompressor_size, true);

    // Everything but the size-dependent fields is the same.
    let masked = |bytes: &[u8], field: std::ops::Range<usize>| {
        let mut bytes = bytes.to_vec();
        bytes[field].fill(0);
        bytes
    };
    assert_eq!(
        masked(&ours.diskboot, 0x1FC..0x1FE),
        masked(&theirs.diskboot, 0x1FC..0x1FE)
    );
    assert_eq!(
        masked(&ours.decompressor, 0x08..0x0C),
        masked(&theirs.decompressor, 0x08..0x0C)
    );
    assert_eq!(
        ours.decompressor[0x0C..0x10],
        theirs.decompressor[0x0C..0x10]
    );
    assert_eq!(ours.payload.len(), theirs.payload.len());
    if let Some(at) = (0..ours.payload.len()).find(|&i| ours.payload[i] != theirs.payload[i]) {
        panic!(
            "payloads differ from byte {at:#x}: ours {:02x?}, theirs {:02x?}",
            &ours.payload[at..(at + 16).min(ours.payload.len())],
            &theirs.payload[at..(at + 16).min(theirs.payload.len())]
        );
    }
    ours
}

#[tokio::test(flavor = "multi_thread")]
async fn core_img_matches_grub_mkimage() {
    let factory = TestFactory::start(|_| {}).await;
    let files = grub_files(&factory).await;
    let ours = core_image(&files);
    let ours = compare_with_grub_mkimage(
        &files,
        "i386-pc",
        grub::PREFIX,
        grub::BIOS_MODULES,
        None,
        &ours,
    );
    // The prefix closes the module area, behind its {type 3, size} header.
    let mut prefix = 3u32.to_le_bytes().to_vec();
    prefix.extend_from_slice(&24u32.to_le_bytes());
    prefix.extend_from_slice(b"(hd0,gpt3)/grub\0");
    assert!(ours.payload.ends_with(&prefix), "prefix module at the end");
}

#[tokio::test(flavor = "multi_thread")]
async fn eltorito_image_with_config_matches_grub_mkimage() {
    let factory = TestFactory::start(|_| {}).await;
    let files = grub_files(&factory).await;
    // Odd length, so the NUL padding of the config entry is exercised.
    let config = "insmod part_gpt\ninsmod part_msdos\necho early\n";
    let ours = grub::eltorito_image(
        &|name| files.get(name).cloned(),
        grub::ISO_PREFIX,
        &[grub::BIOS_MODULES, grub::ISO_MODULES].concat(),
        Some(config),
    )
    .expect("El Torito image builds");
    let ours = compare_with_grub_mkimage(
        &files,
        "i386-pc-eltorito",
        grub::ISO_PREFIX,
        &[grub::BIOS_MODULES, grub::ISO_MODULES].concat(),
        Some(config),
        &ours,
    );
    let mut tail = 2u32.to_le_bytes().to_vec();
    tail.extend_from_slice(
        &(config.len() as u32 + 1 + 8)
            .next_multiple_of(4)
            .to_le_bytes(),
    );
    assert!(
        ours.payload
            .windows(tail.len())
            .any(|window| window == tail.as_slice()),
        "config module header"
    );
}

const MIB: u64 = 1024 * 1024;
const SECTOR: u64 = 512;

#[tokio::test(flavor = "multi_thread")]
async fn seabios_boots_through_our_grub() {
    let factory = TestFactory::start(|_| {}).await;
    let files = grub_files(&factory).await;
    let work = tempfile::tempdir().unwrap();
    let (kernel, initramfs) = factory.vanilla_boot_files(VERSION, work.path()).await;

    // BOOT as FAT (GRUB's module list has `fat`; the XFS writer has its own tests).
    let boot_size = 64 * MIB;
    let boot = work.path().join("boot.img");
    let cmdline = "talos.platform=metal console=ttyS0 fixture.marker=grub-bios";
    let cfg = work.path().join("grub.cfg");
    std::fs::write(&cfg, grub::grub_cfg(VERSION, cmdline, true)).unwrap();
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
    let partitions = [
        Partition {
            name: "EFI",
            type_guid: gpt::ESP_TYPE,
            first_lba: mib,
            last_lba: 2 * mib - 1,
            attributes: 0,
        },
        Partition {
            name: "BIOS",
            type_guid: gpt::BIOS_BOOT_TYPE,
            first_lba: 2 * mib,
            last_lba: 3 * mib - 1,
            attributes: 1 << 2,
        },
        Partition {
            name: "BOOT",
            type_guid: gpt::LINUX_DATA_TYPE,
            first_lba: 3 * mib,
            last_lba: 3 * mib + boot_size / SECTOR - 1,
            attributes: 0,
        },
    ];
    let disk_size = 3 * MIB + boot_size + MIB;
    let (mbr_code, core) = grub::install_bios(
        &files["boot.img"],
        &core_image(&files),
        partitions[1].first_lba,
        SECTOR,
    )
    .expect("install patches");
    assert_eq!(mbr_code.len(), 446);

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
    put(0, &mbr_code);
    put(partitions[1].first_lba * SECTOR, &core);
    put(
        partitions[2].first_lba * SECTOR,
        &std::fs::read(&boot).unwrap(),
    );
    drop(file);
    let verify = run(Command::new("sgdisk").arg("-v").arg(&disk));
    assert!(verify.contains("No problems found"), "{verify}");

    let log = boot_bios_disk(&disk);
    // SeaBIOS mirrors the text screen on the serial port: boot.img's message, then GRUB's
    // menu drawn from our grub.cfg.
    assert!(log.contains("GRUB loading"), "{log}");
    assert!(log.contains(&format!("A - Talos {VERSION}")), "{log}");
    let lines = fixture_lines(&log);
    let text = lines.join("\n");
    assert!(
        lines
            .first()
            .is_some_and(|l| l == &format!("FIXTURE-BOOT version={VERSION} arch=amd64")),
        "no fixture boot through GRUB:\n{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("FIXTURE-CMDLINE ") && l.contains("fixture.marker=grub-bios")),
        "{text}"
    );
    assert!(!text.contains("FIXTURE-ERROR"), "{text}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("FIXTURE-DONE"),
        "{text}"
    );
}
