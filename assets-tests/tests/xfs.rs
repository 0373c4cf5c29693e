//! The native XFS writer checked by tools we did not write: `xfs_repair -n` and `xfs_db`
//! from xfsprogs, GRUB's own XFS driver through `grub-fstest`, and the Linux driver
//! mounting the volume through a loop device and writing to it.

use assets_tests::run;
use image_factory::engine::fs::gpt::guid_from_label;
use image_factory::engine::fs::xfs::{self, XfsDir, XfsFile, XfsOptions};
use image_factory::format::{Segment, SparseImage};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1024 * 1024;
const BOOT_UUID: &str = "24c73076-4092-85dd-9d98-686a2dbf6d81";
const GRUB_CFG: &[u8] = b"set default=\"A - Talos v1.11.0\"\n\nset timeout=3\n";
const MANY: usize = 70;

/// Content whose every 4-byte word is its own index, so a block in the wrong place shows.
fn numbered(len: usize, salt: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 4);
    let mut word = 0u32;
    while out.len() < len {
        out.extend_from_slice(&(word ^ salt).to_le_bytes());
        word += 1;
    }
    out.truncate(len);
    out
}

/// The Talos BOOT tree, plus a directory too big for the inode so it takes a block.
fn talos_tree(kernel_len: usize) -> (Vec<XfsDir>, Vec<XfsFile>) {
    let mut files = vec![
        XfsFile {
            path: "A/vmlinuz".into(),
            bytes: numbered(kernel_len, 0x1234_5678).into(),
            mode: 0o644,
            packed: true,
        },
        XfsFile {
            path: "A/initramfs.xz".into(),
            bytes: numbered(3 * 1024 * 1024 + 5, 0x9abc_def0).into(),
            mode: 0o644,
            packed: true,
        },
        XfsFile {
            path: "grub/grub.cfg".into(),
            bytes: GRUB_CFG.to_vec().into(),
            mode: 0o600,
            packed: false,
        },
    ];
    for index in 0..MANY {
        files.push(XfsFile {
            path: format!("many/entry-{index:02}"),
            bytes: numbered(100 + index, index as u32).into(),
            mode: 0o644,
            packed: false,
        });
    }
    let dirs = vec![XfsDir {
        path: "grub".into(),
        mode: 0o700,
    }];
    (dirs, files)
}

fn options(size: u64, sector_size: u64) -> XfsOptions {
    XfsOptions {
        size,
        sector_size,
        label: "BOOT".into(),
        uuid: guid_from_label("BOOT"),
        mtime: 1_700_000_000,
    }
}

/// Writes the image as a sparse file: holes stay holes.
fn write_sparse(image: &SparseImage, path: &Path) {
    let mut file = std::fs::File::create(path).expect("create image");
    file.set_len(image.size()).expect("size image");
    let mut position = 0u64;
    for segment in image.segments() {
        match segment {
            Segment::Data { bytes, .. } => {
                file.seek(SeekFrom::Start(position)).expect("seek");
                file.write_all(bytes).expect("write");
                position += bytes.len() as u64;
            }
            Segment::Zero(len) => position += len,
        }
    }
}

struct Built {
    _dir: tempfile::TempDir,
    image: PathBuf,
    files: Vec<XfsFile>,
    host: PathBuf,
}

impl Built {
    fn new(size: u64, sector: u64, kernel_len: usize) -> Built {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (dirs, files) = talos_tree(kernel_len);
        let built = xfs::build(&options(size, sector), &dirs, &files).expect("volume builds");
        let image = dir.path().join("boot.xfs");
        write_sparse(&built, &image);
        let host = dir.path().join("host");
        for file in &files {
            let path = host.join(&file.path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("host dirs");
            std::fs::write(&path, &file.bytes).expect("host copy");
        }
        Built {
            _dir: dir,
            image,
            files,
            host,
        }
    }

    fn grub(&self, args: &[&str]) -> String {
        run(Command::new("grub-fstest").arg(&self.image).args(args))
    }

    /// GRUB reads `path` byte for byte like the host copy.
    fn grub_cmp(&self, path: &str) {
        let host = self.host.join(path);
        // grub-fstest cmp exits non-zero and names the offset on any difference.
        self.grub(&["cmp", &format!("/{path}"), &host.to_string_lossy()]);
    }

    fn xfs_db(&self, commands: &[&str]) -> String {
        let mut command = Command::new("xfs_db");
        command.arg("-r");
        for each in commands {
            command.args(["-c", each]);
        }
        run(command.arg(&self.image))
    }
}

/// `xfs_repair -n` exits 0 (it exits 1 when it would change anything) and says nothing
/// beyond its phase banners.
fn assert_repair_clean(image: &Path) {
    let output = Command::new("xfs_repair")
        .args(["-n", "-f"])
        .arg(image)
        .output()
        .expect("xfs_repair runs (apt-get install xfsprogs)");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "xfs_repair -n failed:\n{text}");
    for line in text.lines() {
        let expected = line.starts_with("Phase ")
            || line.starts_with("        - ")
            || line.starts_with("No modify flag set")
            || line.contains("host filesystem geometry")
            || line.starts_with("Repair may fail if there is a sector size mismatch")
            || line.starts_with("the image and the host filesystem");
        assert!(
            expected,
            "unexpected xfs_repair output {line:?} in:\n{text}"
        );
    }
    for word in ["would", "bad", "corrupt", "error", "LSN"] {
        assert!(
            !text.contains(word),
            "{word:?} in xfs_repair output:\n{text}"
        );
    }
}

fn words(listing: &str) -> Vec<String> {
    listing.split_whitespace().map(str::to_string).collect()
}

#[test]
fn talos_boot_volume_is_clean_and_grub_reads_it() {
    let built = Built::new(2000 * MIB, 512, 50 * 1000 * 1000 + 123);
    assert_repair_clean(&built.image);

    let sb = built.xfs_db(&["sb 0", "p fname uuid dblocks agcount sectsize logblocks"]);
    assert!(
        sb.contains(r#"fname = "BOOT\000\000\000\000\000\000\000\000""#),
        "{sb}"
    );
    assert!(sb.contains(&format!("uuid = {BOOT_UUID}")), "{sb}");
    assert!(
        sb.contains("dblocks = 512000") && sb.contains("agcount = 4"),
        "{sb}"
    );
    assert!(
        sb.contains("sectsize = 512") && sb.contains("logblocks = 16384"),
        "{sb}"
    );
    let version = built.xfs_db(&["version"]);
    for feature in ["V5", "CRC", "FTYPE", "FINOBT", "LAZYSBCOUNT"] {
        assert!(version.contains(feature), "{feature} in {version}");
    }
    for feature in [
        "REFLINK", "RMAPBT", "BIGTIME", "NREXT64", "SPARSE", "INOBTCNT",
    ] {
        assert!(!version.contains(feature), "{feature} in {version}");
    }
    let modes = built.xfs_db(&[
        "path /grub",
        "p core.mode core.uid core.gid",
        "path /grub/grub.cfg",
        "p core.mode core.uid core.gid core.size",
        "path /A/vmlinuz",
        "p core.mode core.nextents",
    ]);
    let modes: Vec<&str> = modes.lines().collect();
    assert_eq!(
        modes,
        [
            "core.mode = 040700",
            "core.uid = 0",
            "core.gid = 0",
            "core.mode = 0100600",
            "core.uid = 0",
            "core.gid = 0",
            &format!("core.size = {}", GRUB_CFG.len()),
            "core.mode = 0100644",
            "core.nextents = 1",
        ]
    );

    assert_eq!(words(&built.grub(&["ls", "/"])), ["A/", "grub/", "many/"]);
    assert_eq!(
        words(&built.grub(&["ls", "/A"])),
        ["initramfs.xz", "vmlinuz"]
    );
    let many = words(&built.grub(&["ls", "/many"]));
    assert_eq!(many.len(), MANY, "{many:?}");
    assert!(many.contains(&"entry-42".to_string()), "{many:?}");
    assert_eq!(built.grub(&["cat", "/grub/grub.cfg"]).as_bytes(), GRUB_CFG);
    for path in [
        "A/vmlinuz",
        "A/initramfs.xz",
        "grub/grub.cfg",
        "many/entry-69",
    ] {
        built.grub_cmp(path);
    }
}

#[test]
fn four_kib_sectors() {
    let built = Built::new(2000 * MIB, 4096, 5 * 1000 * 1000);
    assert_repair_clean(&built.image);
    let sb = built.xfs_db(&["sb 0", "p sectsize logsectsize"]);
    assert_eq!(
        words(&sb),
        ["sectsize", "=", "4096", "logsectsize", "=", "4096"]
    );
    assert_eq!(words(&built.grub(&["ls", "/"])), ["A/", "grub/", "many/"]);
    for path in ["A/vmlinuz", "A/initramfs.xz", "grub/grub.cfg"] {
        built.grub_cmp(path);
    }
}

#[test]
fn talos_1_10_size_with_a_kernel_larger_than_a_group() {
    // 1000 MiB has 250 MiB groups: a 280 MB file needs two extents in two groups.
    let built = Built::new(1000 * MIB, 512, 280 * 1000 * 1000);
    assert_repair_clean(&built.image);
    let sb = built.xfs_db(&["sb 0", "p dblocks agblocks"]);
    assert_eq!(
        words(&sb),
        ["dblocks", "=", "256000", "agblocks", "=", "64000"]
    );
    let extents = built.xfs_db(&["path /A/vmlinuz", "p core.nextents"]);
    assert_eq!(extents.trim(), "core.nextents = 2");
    for path in ["A/vmlinuz", "A/initramfs.xz", "grub/grub.cfg"] {
        built.grub_cmp(path);
    }
}

/// A loop device holding an image, detached (and unmounted) on drop.
struct Loop {
    device: String,
    mount: Option<PathBuf>,
}

impl Drop for Loop {
    fn drop(&mut self) {
        if let Some(mount) = &self.mount {
            let _ = Command::new("umount").arg(mount).status();
        }
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

#[test]
fn linux_mounts_reads_and_writes_it() {
    let built = Built::new(1000 * MIB, 512, 2 * 1000 * 1000);
    let attach = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&built.image)
        .output();
    // Root with loop devices is part of the test machine's contract (see the README).
    let device = match attach {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).trim().to_string()
        }
        other => panic!("losetup could not attach the image: {other:?}"),
    };
    let mount = built.image.with_file_name("mnt");
    std::fs::create_dir(&mount).expect("mount point");
    let mut guard = Loop {
        device,
        mount: None,
    };
    run(Command::new("mount").arg(&guard.device).arg(&mount));
    guard.mount = Some(mount.clone());
    for file in &built.files {
        let read = std::fs::read(mount.join(&file.path)).expect("read through Linux");
        assert!(read == file.bytes, "{} differs through Linux", file.path);
    }
    let metadata = std::fs::metadata(mount.join("grub")).expect("grub dir");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(metadata.permissions().mode() & 0o7777, 0o700);
    assert_eq!((metadata.uid(), metadata.gid()), (0, 0));
    assert_eq!(metadata.mtime(), 1_700_000_000);
    // Allocation, directory growth and removal exercise the free-space and inode btrees.
    std::fs::write(mount.join("A/second"), vec![7u8; 3 * 1024 * 1024]).expect("write");
    std::fs::create_dir(mount.join("new")).expect("mkdir");
    for index in 0..10 {
        std::fs::remove_file(mount.join(format!("many/entry-{index:02}"))).expect("rm");
    }
    run(Command::new("umount").arg(&mount));
    guard.mount = None;
    drop(guard);
    assert_repair_clean(&built.image);
}

#[test]
fn invalid_input_names_the_offending_value() {
    let (dirs, files) = talos_tree(10);
    let mut bad = files.clone();
    bad.push(XfsFile {
        path: "A/vmlinuz/inside".into(),
        bytes: Vec::new().into(),
        mode: 0o644,
        packed: false,
    });
    let error = xfs::build(&options(2000 * MIB, 512), &dirs, &bad).unwrap_err();
    assert!(error.to_string().contains("A/vmlinuz/inside"), "{error}");
    let error = xfs::build(&options(100 * MIB, 512), &dirs, &files).unwrap_err();
    assert!(
        error.to_string().contains(&(100 * MIB).to_string()),
        "{error}"
    );
}
