//! The binary part of the committed seed corpus, made here rather than downloaded: tar
//! layers with whiteouts and xattrs, newc archives, a squashfs module tree, kernel modules
//! (ELF64 relocatables) and PE32+ stubs. A test checks that `fuzz/corpus/` holds exactly
//! these bytes (and writes them with `FUZZ_WRITE_SEEDS=1`).

use image_factory::engine::boot::pe::{
    self, COFF_HEADER_SIZE, MACHINE_X86_64, PE32_PLUS, SCN_CODE, SCN_EXECUTE, SCN_READ, SIGNATURE,
    SUBSYSTEM_EFI_APPLICATION, SectionHeader, coff, optional, put_u16, put_u32, put_u64,
};
use image_factory::engine::fs::cpio::{Member, write_newc};
use std::io::Cursor;

/// One generated seed: its target and file name.
#[derive(Debug)]
pub struct Seed {
    pub target: &'static str,
    pub name: &'static str,
    pub bytes: Vec<u8>,
}

/// Every generated seed. Failures are panics: this runs in a test.
pub fn binary() -> Vec<Seed> {
    let seed = |target, name, bytes| Seed {
        target,
        name,
        bytes,
    };
    let exporter = module("fuzz_a", &[b"__crc_fuzz_a", b"fuzz_a"], &[]);
    let importer = module("fuzz_b", &[], &[b"fuzz_a"]);
    vec![
        seed("tar_layer", "extension.tar", extension_layer()),
        seed("tar_layer", "whiteouts.tar", whiteout_layer()),
        seed("tar_layer", "whiteouts.tar.gz", gzip(&whiteout_layer())),
        seed("cpio", "initramfs.cpio", initramfs_cpio()),
        seed("cpio", "empty.cpio", cpio(&[])),
        seed(
            "cpio",
            "concatenated.cpio",
            [cpio(&[]), initramfs_cpio()].concat(),
        ),
        seed(
            "squashfs",
            "modules.sqsh",
            modules_squashfs(&exporter, &importer),
        ),
        seed(
            "squashfs",
            "one-module.sqsh",
            modules_squashfs(&exporter, &[]),
        ),
        seed("squashfs", "two-releases.sqsh", two_releases_squashfs()),
        seed("elf", "exporter.ko", exporter),
        seed("elf", "importer.ko", importer),
        seed("elf", "bare.ko", module("bare", &[], &[])),
        seed("pe", "stub.efi", pe_stub(1)),
        seed("pe", "two-sections.efi", pe_stub(2)),
        seed("pe", "three-sections.efi", pe_stub(3)),
    ]
}

fn tar_builder() -> tar::Builder<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    builder
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(0);
    header
}

fn add_file(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut file = header(tar::EntryType::Regular, data.len() as u64, 0o644);
    builder
        .append_data(&mut file, path, data)
        .unwrap_or_else(|error| panic!("tar {path}: {error}"));
}

fn add_dir(builder: &mut tar::Builder<Vec<u8>>, path: &str) {
    let mut dir = header(tar::EntryType::Directory, 0, 0o755);
    builder
        .append_data(&mut dir, path, std::io::empty())
        .unwrap_or_else(|error| panic!("tar {path}: {error}"));
}

fn finish(builder: tar::Builder<Vec<u8>>) -> Vec<u8> {
    builder
        .into_inner()
        .unwrap_or_else(|error| panic!("tar: {error}"))
}

/// An extension image's one layer: `manifest.yaml`, a rootfs with a file carrying an
/// SELinux label (a PAX xattr record) and a symlink.
fn extension_layer() -> Vec<u8> {
    let mut builder = tar_builder();
    add_file(
        &mut builder,
        "manifest.yaml",
        b"version: v1alpha1\nmetadata:\n  name: fuzz\n  version: v1.0.0\n  author: fuzz\n  \
          description: seed\n  compatibility:\n    talos:\n      version: '>= v1.9.0'\n",
    );
    add_dir(&mut builder, "rootfs/");
    add_dir(&mut builder, "rootfs/usr/");
    builder
        .append_pax_extensions([(
            "SCHILY.xattr.security.selinux",
            b"system_u:object_r:bin_t:s0".as_slice(),
        )])
        .unwrap_or_else(|error| panic!("tar pax: {error}"));
    add_file(&mut builder, "rootfs/usr/fuzz", b"#!/bin/sh\n");
    let mut link = header(tar::EntryType::Symlink, 0, 0o777);
    builder
        .append_link(&mut link, "rootfs/usr/link", "fuzz")
        .unwrap_or_else(|error| panic!("tar link: {error}"));
    finish(builder)
}

/// A layer over another: files, a whiteout and an opaque directory.
fn whiteout_layer() -> Vec<u8> {
    let mut builder = tar_builder();
    add_dir(&mut builder, "etc/");
    add_file(&mut builder, "etc/kept", b"kept\n");
    add_file(&mut builder, "etc/.wh.removed", b"");
    add_dir(&mut builder, "opt/");
    add_file(&mut builder, "opt/.wh..wh..opq", b"");
    add_file(&mut builder, "./opt/new", b"new\n");
    finish(builder)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .unwrap_or_else(|error| panic!("gzip: {error}"))
}

fn cpio(members: &[(String, Member)]) -> Vec<u8> {
    let mut out = Vec::new();
    write_newc(&mut out, members, 0).unwrap_or_else(|error| panic!("cpio: {error}"));
    out
}

/// What a Talos base initramfs holds at its top: `init` and `rootfs.sqsh`.
fn initramfs_cpio() -> Vec<u8> {
    cpio(&[
        (".".into(), Member::Dir { mode: 0o755 }),
        (
            "init".into(),
            Member::File {
                data: b"\x7fELF init".to_vec(),
                mode: 0o755,
            },
        ),
        (
            "rootfs.sqsh".into(),
            Member::File {
                data: b"hsqs".to_vec(),
                mode: 0o644,
            },
        ),
        (
            "lib".into(),
            Member::Symlink {
                target: "usr/lib".into(),
            },
        ),
    ])
}

/// A release's `rootfs.sqsh` with a two-module tree (xz, as Talos before 1.8 squashes).
fn modules_squashfs(exporter: &[u8], importer: &[u8]) -> Vec<u8> {
    let mut writer = backhand::FilesystemWriter::default();
    writer.set_time(0);
    writer.set_only_root_id();
    let node = |mode| backhand::NodeHeader::new(mode, 0, 0, 0);
    let mut dir = String::new();
    for part in ["usr", "lib", "modules", "6.12.0-talos", "kernel"] {
        dir = format!("{dir}/{part}");
        writer
            .push_dir(&dir, node(0o755))
            .unwrap_or_else(squash_failed);
    }
    for (name, data) in [("fuzz_a.ko", exporter), ("fuzz_b.ko", importer)] {
        writer
            .push_file(
                Cursor::new(data.to_vec()),
                format!("{dir}/{name}"),
                node(0o644),
            )
            .unwrap_or_else(squash_failed);
    }
    writer
        .push_file(
            Cursor::new(b"/etc".to_vec()),
            "/usr/lib/os-release",
            node(0o644),
        )
        .unwrap_or_else(squash_failed);
    let mut out = Cursor::new(Vec::new());
    writer.write(&mut out).unwrap_or_else(squash_failed);
    out.into_inner()
}

fn squash_failed<T>(error: backhand::BackhandError) -> T {
    panic!("squashfs: {error}")
}

/// Module trees for two kernel releases, which the factory refuses.
fn two_releases_squashfs() -> Vec<u8> {
    let mut writer = backhand::FilesystemWriter::default();
    writer.set_time(0);
    let node = |mode| backhand::NodeHeader::new(mode, 0, 0, 0);
    for dir in [
        "/usr",
        "/usr/lib",
        "/usr/lib/modules",
        "/usr/lib/modules/a",
        "/usr/lib/modules/b",
    ] {
        writer
            .push_dir(dir, node(0o755))
            .unwrap_or_else(squash_failed);
    }
    for file in ["/usr/lib/modules/a/x.ko", "/usr/lib/modules/b/x.ko"] {
        writer
            .push_file(Cursor::new(b"x".to_vec()), file, node(0o644))
            .unwrap_or_else(squash_failed);
    }
    let mut out = Cursor::new(Vec::new());
    writer.write(&mut out).unwrap_or_else(squash_failed);
    out.into_inner()
}

/// One ELF64 section to lay out: name, type, link, entry size, contents.
struct ElfSection<'a> {
    name: &'a str,
    kind: u32,
    link: u32,
    entsize: u64,
    data: Vec<u8>,
}

/// A relocatable x86-64 kernel module: `.modinfo`, a symbol table whose undefined symbols
/// are `imports`, `__ksymtab_strings` and `__crc_*` symbols for `exports`, and one RELA.
fn module(name: &str, exports: &[&[u8]], imports: &[&[u8]]) -> Vec<u8> {
    let modinfo = format!("license=GPL\0name={name}\0alias=fuzz:{name}*\0depends=\0");
    let mut strtab = vec![0u8];
    let mut symtab = vec![0u8; 24];
    for (symbol, defined) in exports
        .iter()
        .map(|s| (s, true))
        .chain(imports.iter().map(|s| (s, false)))
    {
        let mut entry = [0u8; 24];
        put_u32(&mut entry, 0, strtab.len() as u32);
        entry[4] = 0x12; // STB_GLOBAL, STT_FUNC
        put_u16(&mut entry, 6, if defined { 1 } else { 0 });
        symtab.extend_from_slice(&entry);
        strtab.extend_from_slice(symbol);
        strtab.push(0);
    }
    let mut ksymtab = Vec::new();
    for symbol in exports.iter().filter(|s| !s.starts_with(b"__crc_")) {
        ksymtab.extend_from_slice(symbol);
        ksymtab.push(0);
    }
    let mut rela = [0u8; 24];
    put_u64(&mut rela, 8, (1 << 32) | 2); // symbol 1, R_X86_64_PC32
    let sections = [
        ElfSection {
            name: ".text",
            kind: 1,
            link: 0,
            entsize: 0,
            data: vec![0xC3; 16],
        },
        ElfSection {
            name: ".modinfo",
            kind: 1,
            link: 0,
            entsize: 0,
            data: modinfo.into_bytes(),
        },
        ElfSection {
            name: "__ksymtab_strings",
            kind: 1,
            link: 0,
            entsize: 0,
            data: ksymtab,
        },
        ElfSection {
            name: ".symtab",
            kind: 2,
            link: 5,
            entsize: 24,
            data: symtab,
        },
        ElfSection {
            name: ".rela.text",
            kind: 4,
            link: 4,
            entsize: 24,
            data: rela.to_vec(),
        },
        ElfSection {
            name: ".strtab",
            kind: 3,
            link: 0,
            entsize: 0,
            data: strtab,
        },
    ];
    elf64(&sections)
}

/// Lays out an ELF64 little-endian relocatable: header, section contents, the section
/// names, the section header table (null entry first, `.shstrtab` last).
fn elf64(sections: &[ElfSection]) -> Vec<u8> {
    // The names table names itself, so it is complete before anything is laid out.
    let mut names = vec![0u8];
    let mut name_offsets = Vec::new();
    for name in sections.iter().map(|s| s.name).chain([".shstrtab"]) {
        name_offsets.push(names.len() as u32);
        names.extend_from_slice(name.as_bytes());
        names.push(0);
    }
    let shstrtab = ElfSection {
        name: ".shstrtab",
        kind: 3,
        link: 0,
        entsize: 0,
        data: names,
    };
    let mut out = vec![0u8; 64];
    let mut headers = vec![[0u8; 64]];
    for (section, name) in sections.iter().chain([&shstrtab]).zip(name_offsets) {
        out.resize(out.len().div_ceil(8) * 8, 0);
        let mut header = [0u8; 64];
        put_u32(&mut header, 0, name);
        put_u32(&mut header, 4, section.kind);
        put_u64(&mut header, 24, out.len() as u64);
        put_u64(&mut header, 32, section.data.len() as u64);
        put_u32(&mut header, 40, section.link);
        put_u64(&mut header, 48, 8);
        put_u64(&mut header, 56, section.entsize);
        out.extend_from_slice(&section.data);
        headers.push(header);
    }
    out.resize(out.len().div_ceil(8) * 8, 0);
    let table = out.len();
    for header in &headers {
        out.extend_from_slice(header);
    }
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // ELFCLASS64
    out[5] = 1; // little-endian
    out[6] = 1; // EV_CURRENT
    put_u16(&mut out, 16, 1); // ET_REL
    put_u16(&mut out, 18, image_factory::engine::elf::EM_X86_64);
    put_u32(&mut out, 20, 1);
    put_u64(&mut out, 40, table as u64);
    put_u16(&mut out, 52, 64);
    put_u16(&mut out, 58, 64);
    put_u16(&mut out, 60, headers.len() as u16);
    put_u16(&mut out, 62, (headers.len() - 1) as u16);
    out
}

/// A PE32+ EFI application of `count` 512-byte sections, as small as a UKI stub can be.
fn pe_stub(count: u16) -> Vec<u8> {
    let headers_size = 0x200usize;
    let mut image = vec![0u8; headers_size + 0x200 * usize::from(count)];
    image[..0x80].copy_from_slice(&pe::dos_stub());
    image[0x80..0x84].copy_from_slice(SIGNATURE);
    let coff_at = 0x84;
    put_u16(&mut image, coff_at + coff::MACHINE, MACHINE_X86_64);
    put_u16(&mut image, coff_at + coff::NUMBER_OF_SECTIONS, count);
    put_u16(&mut image, coff_at + coff::SIZE_OF_OPTIONAL_HEADER, 240);
    put_u16(&mut image, coff_at + coff::CHARACTERISTICS, 0x22);
    let o = coff_at + COFF_HEADER_SIZE;
    put_u16(&mut image, o + optional::MAGIC, PE32_PLUS);
    put_u32(&mut image, o + optional::ADDRESS_OF_ENTRY_POINT, 0x1000);
    put_u32(&mut image, o + optional::SECTION_ALIGNMENT, 0x1000);
    put_u32(&mut image, o + optional::FILE_ALIGNMENT, 0x200);
    put_u32(
        &mut image,
        o + optional::SIZE_OF_IMAGE,
        0x1000 * (u32::from(count) + 1),
    );
    put_u32(
        &mut image,
        o + optional::SIZE_OF_HEADERS,
        headers_size as u32,
    );
    put_u16(
        &mut image,
        o + optional::SUBSYSTEM,
        SUBSYSTEM_EFI_APPLICATION,
    );
    put_u32(&mut image, o + optional::NUMBER_OF_RVA_AND_SIZES, 16);
    for index in 0..usize::from(count) {
        let name = if index == 0 { ".text" } else { ".data" };
        SectionHeader {
            name: SectionHeader::name_bytes(name),
            virtual_size: 0x200,
            virtual_address: 0x1000 * (index as u32 + 1),
            raw_size: 0x200,
            raw_offset: (headers_size + 0x200 * index) as u32,
            characteristics: SCN_CODE | SCN_EXECUTE | SCN_READ,
        }
        .write(&mut image, o + 240 + 40 * index);
        let start = headers_size + 0x200 * index;
        image[start..start + 0x200].fill(0xC3);
    }
    image
}
