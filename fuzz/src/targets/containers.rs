//! Targets over the containers a registry or a release hands the factory: OCI manifests,
//! indexes and layout `index.json`, tar layers with whiteouts, and the base initramfs (newc
//! cpio holding `rootfs.sqsh`).

use image_factory::engine::fs::cpio::{Member, read_newc, write_newc};
use image_factory::engine::initramfs::extension::{Extension, Manifest, checkout};
use image_factory::engine::initramfs::modules::modules_dep_extension;
use image_factory::source::Entry;
use image_factory::source::flatten::FileTree;
use image_factory::source::layout::OciLayout;
use image_factory::source::oci::{self, Index, ManifestKind, REF_NAME};
use image_factory::source::reference::ImageRef;
use image_factory::version::TalosVersion;
use std::collections::BTreeMap;
use std::io::Read;

/// Manifests and indexes from a registry, and the same bytes as an OCI layout's
/// `index.json`. A document that parses serialises to one that parses to the same value; a
/// layout that opens finds every entry its index names, and its blobs stay inside it.
pub fn oci_manifest(data: &[u8]) {
    if let Ok(kind) = ManifestKind::parse(data) {
        let bytes = match &kind {
            ManifestKind::Image(manifest) => serde_json::to_vec(manifest),
            ManifestKind::Index(index) => serde_json::to_vec(index),
        }
        .unwrap_or_else(|error| panic!("a parsed manifest does not serialise: {error}"));
        assert_eq!(
            ManifestKind::parse(&bytes).as_ref(),
            Ok(&kind),
            "a manifest changes through its serialised form"
        );
    }
    let dir = super::scratch("layout");
    super::text::write(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    );
    super::text::write(&dir.join("index.json"), data);
    let Ok(layout) = OciLayout::open(&dir) else {
        return;
    };
    let index: Index = serde_json::from_slice(data)
        .unwrap_or_else(|error| panic!("a layout opened on an index that does not parse: {error}"));
    for descriptor in &index.manifests {
        assert!(layout.blob_path(&descriptor.digest).starts_with(&dir));
        let Some(name) = descriptor.annotations.get(REF_NAME) else {
            continue;
        };
        assert!(
            layout.find(name).is_some(),
            "layout lost the entry {name:?}"
        );
        if let Some((repository, tag)) = name.rsplit_once(':') {
            assert!(
                layout.tags(repository).iter().any(|listed| listed == tag),
                "layout does not list the tag of {name:?}"
            );
        }
        let _ = ImageRef::parse(name);
    }
}

/// One image layer (plain, gzip or zstd tar), flattened onto an empty tree, then checked
/// out as an extension. Flattened paths are normalised and no whiteout survives.
pub fn tar_layer(data: &[u8]) {
    let mut tree = FileTree::default();
    if tree.apply_layer("fuzz", oci::LAYER_TAR, data).is_err() {
        return;
    }
    for path in tree.entries().keys() {
        assert!(!path.is_empty(), "an empty path in the tree");
        for component in path.split('/') {
            assert!(
                !matches!(component, "" | "." | ".."),
                "unnormalised path {path:?} in the tree"
            );
            assert!(!component.starts_with(".wh."), "whiteout {path:?} kept");
        }
    }
    let _ = checkout("fuzz", &tree);
}

/// The base initramfs's newc reader: what it reads, the writer writes back to the same
/// members.
pub fn cpio(data: &[u8]) {
    let Ok(members) = read_newc(data) else {
        return;
    };
    let as_files: Vec<(String, Member)> = members
        .iter()
        .map(|(name, data)| {
            let member = Member::File {
                data: data.clone(),
                mode: 0o644,
            };
            (name.clone(), member)
        })
        .collect();
    let mut archive = Vec::new();
    write_newc(&mut archive, &as_files, 0)
        .unwrap_or_else(|error| panic!("cannot write back what was read: {error}"));
    let again = read_newc(&archive)
        .unwrap_or_else(|error| panic!("the written archive does not read: {error}"));
    assert_eq!(again, members, "members change through the writer");
}

/// Reading every file of a squashfs this large at most: a claimed size is not a reason to
/// spend the fuzzer's memory.
const SQUASHFS_READ_LIMIT: u64 = 16 << 20;

/// A release's `rootfs.sqsh`: read file by file as a squashfs, then as the base initramfs
/// (zstd cpio holding it) whose module tree the `modules.dep` extension indexes.
pub fn squashfs(data: &[u8]) {
    if let Ok(reader) = backhand::FilesystemReader::from_reader(std::io::Cursor::new(data)) {
        let mut budget = SQUASHFS_READ_LIMIT;
        for node in reader.files() {
            if let backhand::InnerNode::File(file) = &node.inner {
                let mut sink = Vec::new();
                let read = reader
                    .file(file)
                    .reader()
                    .take(budget)
                    .read_to_end(&mut sink)
                    .unwrap_or(0);
                budget = budget.saturating_sub(read as u64);
            }
        }
    }
    let rootfs = vec![(
        "rootfs.sqsh".to_string(),
        Member::File {
            data: data.to_vec(),
            mode: 0o644,
        },
    )];
    let mut archive = Vec::new();
    write_newc(&mut archive, &rootfs, 0)
        .unwrap_or_else(|error| panic!("cannot pack rootfs.sqsh: {error}"));
    let base = zstd::bulk::compress(&archive, 1)
        .unwrap_or_else(|error| panic!("cannot compress the initramfs: {error}"));
    let version = TalosVersion::parse("v1.10.0")
        .unwrap_or_else(|error| panic!("the fuzz version does not parse: {error}"));
    // An extension that only holds the modules directory: enough to make the factory read
    // the release's module tree, and nothing of its own to index.
    let extension = Extension {
        manifest: Manifest {
            name: "fuzz".into(),
            version: "v0".into(),
            author: String::new(),
            description: String::new(),
            compatibility: None,
            extra_info: None,
        },
        rootfs: BTreeMap::from([(
            format!("{}/fuzz", version.modules_dir()),
            Entry::Dir { mode: 0o755 },
        )]),
        selinux: BTreeMap::new(),
    };
    let _ = modules_dep_extension(&base, &version, &[extension]);
}
