//! Whole-volume checks of the writer that need no external tool: refusals of bad input,
//! determinism, and where the pieces land (the integration tests read the result with
//! xfs_repair, xfs_db and GRUB).

use super::*;

use crate::size::MIB;

fn options() -> XfsOptions {
    XfsOptions {
        size: 1000 * MIB,
        sector_size: 512,
        label: "BOOT".into(),
        uuid: crate::engine::fs::gpt::guid_from_label("BOOT"),
        mtime: 1_700_000_000,
    }
}

fn file(path: &str, bytes: Vec<u8>) -> XfsFile {
    XfsFile {
        path: path.into(),
        bytes: Bytes::from(bytes),
        mode: 0o644,
        packed: false,
    }
}

fn talos_tree() -> (Vec<XfsDir>, Vec<XfsFile>) {
    (
        vec![XfsDir {
            path: "grub".into(),
            mode: 0o700,
        }],
        vec![
            file("A/vmlinuz", vec![0x5a; 3 * 4096 + 17]),
            file("A/initramfs.xz", vec![0xa5; 5000]),
            file("grub/grub.cfg", b"set timeout=3\n".to_vec()),
        ],
    )
}

fn refusal(options: &XfsOptions, dirs: &[XfsDir], files: &[XfsFile]) -> String {
    match build(options, dirs, files) {
        Err(EngineError::InvalidInput(message)) => message,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

fn read_u64(image: &SparseImage, offset: u64) -> u64 {
    u64::from_be_bytes(image.read_at(offset, 8).try_into().unwrap())
}

#[test]
fn refuses_bad_options_naming_the_value() {
    let (dirs, files) = talos_tree();
    let small = XfsOptions {
        size: 200 * MIB,
        ..options()
    };
    assert!(refusal(&small, &dirs, &files).contains(&(200 * MIB).to_string()));
    let sector = XfsOptions {
        sector_size: 2048,
        ..options()
    };
    assert!(refusal(&sector, &dirs, &files).contains("2048"));
    let label = XfsOptions {
        label: "THIRTEEN-LONG".into(),
        ..options()
    };
    assert!(refusal(&label, &dirs, &files).contains("THIRTEEN-LONG"));
    let nil = XfsOptions {
        uuid: [0; 16],
        ..options()
    };
    assert!(refusal(&nil, &dirs, &files).contains("00000000-0000"));
    let late = XfsOptions {
        mtime: 1 << 31,
        ..options()
    };
    assert!(refusal(&late, &dirs, &files).contains(&(1u64 << 31).to_string()));
}

#[test]
fn refuses_bad_trees_naming_the_path() {
    let message = refusal(&options(), &[], &[file("A/../x", vec![1])]);
    assert!(message.contains("A/../x"), "{message}");
    let message = refusal(&options(), &[], &[file("a", vec![1]), file("a/b", vec![1])]);
    assert!(
        message.contains("a/b") && message.contains("collides"),
        "{message}"
    );
    let crowded: Vec<XfsFile> = (0..200)
        .map(|i| file(&format!("many/file-with-a-long-name-{i:03}"), Vec::new()))
        .collect();
    let message = refusal(&options(), &[], &crowded);
    assert!(
        message.contains("\"many\"") && message.contains("200"),
        "{message}"
    );
}

#[test]
fn refuses_files_larger_than_the_volume() {
    let big = vec![file("big", vec![0; 400 * MIB as usize])];
    let options = XfsOptions {
        size: 300 * MIB,
        ..options()
    };
    let message = refusal(&options, &[], &big);
    assert!(message.contains(&(300 * MIB).to_string()), "{message}");
}

#[test]
fn same_input_same_bytes_whatever_the_listing_order() {
    let (dirs, mut files) = talos_tree();
    let first = build(&options(), &dirs, &files).unwrap();
    files.reverse();
    let second = build(&options(), &dirs, &files).unwrap();
    let segments = |image: &SparseImage| -> Vec<(Vec<u8>, u64)> {
        image
            .segments()
            .map(|segment| match segment {
                crate::format::Segment::Data { bytes, .. } => (bytes.to_vec(), 0),
                crate::format::Segment::Zero(len) => (Vec::new(), len),
            })
            .collect()
    };
    assert_eq!(segments(&first), segments(&second));
}

#[test]
fn layout_of_the_talos_tree() {
    let (dirs, files) = talos_tree();
    let image = build(&options(), &dirs, &files).unwrap();
    assert_eq!(image.size(), 1000 * MIB);
    assert_eq!(image.read_at(0, 4), b"XFSB");
    // Secondary superblocks copy the primary.
    let primary = image.read_at(0, 512);
    for agno in 1..4 {
        assert_eq!(image.read_at(agno * 64_000 * 4096, 512), primary);
    }
    assert_eq!(read_u64(&image, 56), 96, "root inode where mkfs puts it");
    // Inode 99 is the first entry in depth-first name order: directory "A".
    let inode = |ino: u64| image.read_at(12 * 4096 + (ino - 96) * 512, 512);
    assert_eq!(
        &inode(99)[2..6],
        &[0x41, 0xed, 3, 1],
        "0o40755, v3, short-form"
    );
    // A/initramfs.xz (inode 100) lands in the free blocks before the inode chunk, right
    // after the free list, and A/vmlinuz (inode 101) after the chunk.
    let extent = |ino: u64| {
        let record = &inode(ino)[176..192];
        let low = u64::from_be_bytes(record[8..].try_into().unwrap());
        (low >> 21, low & ((1 << 21) - 1))
    };
    assert_eq!(extent(100), (9, 2));
    assert_eq!(image.read_at(9 * 4096, 5000), vec![0xa5; 5000]);
    assert_eq!(extent(101), (20, 4));
    assert_eq!(
        image.read_at(20 * 4096, 3 * 4096 + 17),
        vec![0x5a; 3 * 4096 + 17]
    );
    assert_eq!(image.read_at(20 * 4096 + 3 * 4096 + 17, 8), vec![0; 8]);
    // Metadata stays small: the files plus headers, btree roots, one inode chunk, the log.
    let files_bytes: u64 = files.iter().map(|f| f.bytes.len() as u64).sum();
    assert!(
        image.payload() < files_bytes + 128 * 1024,
        "{}",
        image.payload()
    );
}

#[test]
fn large_directories_use_a_block() {
    let files: Vec<XfsFile> = (0..60)
        .map(|i| file(&format!("dir/entry-{i:02}"), vec![i as u8; 10]))
        .collect();
    let image = build(&options(), &[], &files).unwrap();
    // Inode 99 is "dir": extent format, one 4 KiB block that starts with "XDB3".
    let dir_inode = image.read_at(12 * 4096 + 3 * 512, 512);
    assert_eq!(dir_inode[5], 2);
    assert_eq!(
        u64::from_be_bytes(dir_inode[56..64].try_into().unwrap()),
        4096
    );
    let low = u64::from_be_bytes(dir_inode[184..192].try_into().unwrap());
    let block = low >> 21;
    assert_eq!(image.read_at(block * 4096, 4), b"XDB3");
    // Root, two realtime inodes, "dir" and 60 files fill exactly one chunk.
    assert_eq!(read_u64(&image, 128), 64);
    assert_eq!(read_u64(&image, 136), 0);
}

#[test]
fn more_inodes_take_more_chunks() {
    let files: Vec<XfsFile> = (0..90)
        .map(|i| file(&format!("d{}/f{i}", i / 30), vec![1]))
        .collect();
    let image = build(&options(), &[], &files).unwrap();
    // 1 root + 2 realtime + 3 directories + 90 files = 96 inodes in two chunks.
    assert_eq!(read_u64(&image, 128), 128);
    assert_eq!(read_u64(&image, 136), 32);
}
