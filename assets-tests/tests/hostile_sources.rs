//! Hostile sources: OCI layouts and a registry that serve escaping tar entries, device
//! nodes, decompression bombs, blobs longer than their descriptors or not matching their
//! digests, manifests and indexes of 100 MB, and nested indexes. Each must be refused with
//! a message naming the image, within bounded memory (the process's peak RSS), writing
//! nothing outside the state directory.

use image_factory::overlay::scratch::Scratch;
use image_factory::source::layout::{LayoutWriter, OciLayout};
use image_factory::source::oci::{self, Descriptor, Digest, Index, Manifest, Platform};
use image_factory::source::registry::Registry;
use image_factory::source::{ImageRef, Images, Pulled, Source, SourceError, Verifier};
use sha2::Digest as _;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IMAGE: &str = "ghcr.io/siderolabs/hostile:v1.0.0";
/// What the process may reach at its peak while refusing 100 MB documents and 10 GiB bombs
/// (the test binary itself takes some 30 MB).
const PEAK_RSS: u64 = 256 << 20;
const GIB: u64 = 1 << 30;

/// The process's peak resident set so far (`VmHWM`). nextest runs each test in its own
/// process; under `cargo test` the tests share one, and the bound holds for all together.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

fn assert_memory_bounded(case: &str) {
    let peak = peak_rss();
    assert!(
        peak < PEAK_RSS,
        "{case}: peak RSS {} MiB over {} MiB",
        peak >> 20,
        PEAK_RSS >> 20
    );
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: Digest::of(bytes),
        size: bytes.len() as u64,
        platform: None,
        artifact_type: None,
        annotations: BTreeMap::new(),
    }
}

fn manifest_of(layers: Vec<Descriptor>) -> Vec<u8> {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: Some(oci::MANIFEST.into()),
        config: descriptor(oci::CONFIG, config),
        layers,
        annotations: BTreeMap::new(),
    })
    .unwrap()
}

/// A layout in `dir` holding [`IMAGE`] with `layers` (media type, blob), each described
/// by `describe` (which may lie about it).
fn layout_with(
    dir: &Path,
    layers: &[(&str, Vec<u8>)],
    describe: impl Fn(Descriptor) -> Descriptor,
) -> PathBuf {
    let root = dir.join("layout");
    let mut writer = LayoutWriter::create(&root).unwrap();
    writer
        .put_blob(oci::CONFIG, br#"{"architecture":"amd64","os":"linux"}"#)
        .unwrap();
    let mut descriptors = Vec::new();
    for (media_type, blob) in layers {
        descriptors.push(describe(writer.put_blob(media_type, blob).unwrap()));
    }
    let manifest = writer
        .put_blob(oci::MANIFEST, &manifest_of(descriptors))
        .unwrap();
    writer.tag(IMAGE, &manifest);
    writer.finish().unwrap()
}

async fn pull_from(source: Source, image: &str) -> Result<Pulled, SourceError> {
    let images = Images::new(source, Verifier::Disabled);
    images.pull(&ImageRef::parse(image).unwrap(), "amd64").await
}

async fn pull_layout(root: &Path) -> Result<Pulled, SourceError> {
    pull_from(Source::Layout(OciLayout::open(root).unwrap()), IMAGE).await
}

/// One tar member, written field by field so that hostile names reach the reader as they
/// are (the `tar` crate's builder refuses them).
fn member(kind: tar::EntryType, name: &str, link: &str, size: u64, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(size);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

fn tar_of(members: &[Vec<u8>]) -> Vec<u8> {
    let mut out = members.concat();
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn file(name: &str, data: &[u8]) -> Vec<u8> {
    member(tar::EntryType::Regular, name, "", data.len() as u64, data)
}

fn link(kind: tar::EntryType, name: &str, target: &str) -> Vec<u8> {
    member(kind, name, target, 0, &[])
}

/// Every path under `dir`, recursively (symlinks not followed).
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(listing(&path));
        }
        out.push(path);
    }
    out
}

/// Where `link` (a symlink) points, resolved by its text from its directory.
fn lexical_target(link: &Path) -> PathBuf {
    let target = std::fs::read_link(link).unwrap();
    let mut resolved = PathBuf::new();
    for component in link.parent().unwrap().join(target).components() {
        match component {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::CurDir => {}
            other => resolved.push(other),
        }
    }
    resolved
}

#[tokio::test]
async fn escaping_entries_and_devices_are_refused_and_nothing_lands_outside() {
    let temp = tempfile::tempdir().unwrap();
    let sentinel = temp.path().join("sentinel");
    let state = temp.path().join("state");
    std::fs::create_dir_all(&sentinel).unwrap();
    let up = "../".repeat(12);
    let escape = format!(
        "{up}{}/owned",
        sentinel.display().to_string().trim_start_matches('/')
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("..", file("../evil", b"x"), "../evil"),
        ("absolute path", file("/etc/evil", b"x"), "/etc/evil"),
        (
            "symlink escape",
            link(tar::EntryType::Symlink, "usr/lib/evil", &escape),
            "usr/lib/evil",
        ),
        (
            "hard-link escape",
            link(tar::EntryType::Link, "usr/evil", "../../etc/passwd"),
            "../../etc/passwd",
        ),
        (
            "device node",
            member(tar::EntryType::Char, "dev/kmsg", "", 0, &[]),
            "dev/kmsg",
        ),
        (
            "block device",
            member(tar::EntryType::Block, "dev/sda", "", 0, &[]),
            "dev/sda",
        ),
        (
            "fifo",
            member(tar::EntryType::Fifo, "run/fifo", "", 0, &[]),
            "run/fifo",
        ),
    ];
    for (case, entry, offending) in cases {
        let dir = tempfile::tempdir().unwrap();
        let layer = tar_of(&[file("usr/lib/libfoo.so.1", b"elf"), entry]);
        let root = layout_with(dir.path(), &[(oci::LAYER_TAR, layer)], |d| d);
        let error = pull_layout(&root).await.err().unwrap_or_else(|| {
            panic!("{case}: accepted");
        });
        let message = error.to_string();
        assert!(
            matches!(error, SourceError::UnsafePath { .. }),
            "{case}: {message}"
        );
        assert!(message.contains(IMAGE), "{case}: {message}");
        assert!(message.contains(offending), "{case}: {message}");
    }

    // What extension and overlay layers hold stays accepted: symlinks within the image,
    // relative or absolute. An absolute one is written into the scratch tree relative to the
    // link, so it names a path of the tree, not of the host.
    let dir = tempfile::tempdir().unwrap();
    let absolute = format!("{}/owned", sentinel.display());
    let layer = tar_of(&[
        file("rootfs/usr/lib/libfoo.so.1", b"elf"),
        link(
            tar::EntryType::Symlink,
            "rootfs/usr/lib/libfoo.so",
            "libfoo.so.1",
        ),
        link(tar::EntryType::Symlink, "rootfs/lib", "/usr/lib"),
        link(
            tar::EntryType::Symlink,
            "rootfs/usr/share/up",
            "../../../manifest",
        ),
        file("artifacts/u-boot.bin", b"boot"),
        link(tar::EntryType::Symlink, "artifacts/evil", &absolute),
    ]);
    let root = layout_with(dir.path(), &[(oci::LAYER_TAR, layer)], |d| d);
    let tree = pull_layout(&root).await.unwrap().tree;
    let scratch = Scratch::create(&state, &tree, 1 << 20).unwrap();
    let written = scratch.overlay().join("artifacts/evil");
    let target = lexical_target(&written);
    assert!(
        target.starts_with(&state),
        "the symlink points at {}, outside the state directory",
        target.display()
    );
    for path in listing(&state) {
        if path.is_symlink() {
            assert!(
                lexical_target(&path).starts_with(&state),
                "{}",
                path.display()
            );
        }
    }
    drop(scratch);
    assert_eq!(listing(&sentinel), Vec::<PathBuf>::new(), "written outside");
    assert_memory_bounded("escapes");
}

/// A tar member of 1 MiB of zeros, always named the same (each replaces the last in the
/// tree, so only the decompression budget can stop the stream).
fn zero_member() -> Vec<u8> {
    member(
        tar::EntryType::Regular,
        "zeros",
        "",
        1 << 20,
        &vec![0u8; 1 << 20],
    )
}

/// A gzip stream of `count` zero members (10 GiB for 10240), a few MB: one member deflated
/// by a fresh compressor and ended with a full flush (byte-aligned, no final block, no
/// reference to anything before it), so that its bytes repeated decode to the member
/// repeated. Left unfinished (no final block, no trailer): only an unbounded reader ever
/// gets there.
fn gzip_bomb(count: usize) -> Vec<u8> {
    let unit = zero_member();
    let mut compress = flate2::Compress::new(flate2::Compression::best(), false);
    let mut member = Vec::with_capacity(1 << 20);
    compress
        .compress_vec(&unit, &mut member, flate2::FlushCompress::Full)
        .unwrap();
    assert_eq!(
        compress.total_in(),
        unit.len() as u64,
        "the whole member went in"
    );
    let twice = member.repeat(2);
    let mut decoded = vec![0u8; 2 * unit.len()];
    std::io::Read::read_exact(
        &mut flate2::read::DeflateDecoder::new(&twice[..]),
        &mut decoded,
    )
    .unwrap();
    assert_eq!(
        decoded,
        unit.repeat(2),
        "repeated bytes decode to repeated members"
    );
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend_from_slice(&member.repeat(count));
    out
}

/// Concatenated zstd frames (which a zstd reader decodes as one stream), one per member.
fn zstd_bomb(count: usize) -> Vec<u8> {
    let frame = zstd::bulk::compress(&zero_member(), 19).unwrap();
    frame.repeat(count)
}

#[tokio::test]
async fn decompression_bombs_are_refused_within_their_budget() {
    let gzip = gzip_bomb(10240);
    let zstd = zstd_bomb(10240);
    // One member that says it is 16 GiB (the header alone decides), with a little data.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let header = member(tar::EntryType::Regular, "huge", "", 16 * GIB, &[]);
    encoder.write_all(&header).unwrap();
    encoder.write_all(&vec![0u8; 8 << 20]).unwrap();
    let huge = encoder.finish().unwrap();
    for (case, layer, media_type) in [
        ("gzip", gzip, oci::LAYER_GZIP),
        ("zstd", zstd, oci::LAYER_ZSTD),
        ("16 GiB member", huge, oci::LAYER_GZIP),
    ] {
        assert!(layer.len() < 16 << 20, "{case}: {} bytes", layer.len());
        let dir = tempfile::tempdir().unwrap();
        let root = layout_with(dir.path(), &[(media_type, layer)], |d| d);
        let started = std::time::Instant::now();
        let error = pull_layout(&root).await.err().unwrap_or_else(|| {
            panic!("{case}: accepted");
        });
        let message = error.to_string();
        assert!(
            matches!(error, SourceError::Expands { .. }),
            "{case}: {message}"
        );
        assert!(message.contains(IMAGE), "{case}: {message}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{case}: {:?}",
            started.elapsed()
        );
        assert_memory_bounded(case);
    }
}

#[tokio::test]
async fn blobs_must_be_their_declared_size_and_digest() {
    let layer = tar_of(&[file("usr/bin/tool", &[7u8; 4096])]);

    let dir = tempfile::tempdir().unwrap();
    let root = layout_with(dir.path(), &[(oci::LAYER_TAR, layer.clone())], |d| {
        Descriptor { size: 1024, ..d }
    });
    let error = pull_layout(&root).await.unwrap_err();
    assert!(
        matches!(&error, SourceError::SizeMismatch { declared: 1024, .. }),
        "{error}"
    );
    assert!(error.to_string().contains(IMAGE), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let root = layout_with(dir.path(), &[(oci::LAYER_TAR, layer.clone())], |d| {
        Descriptor {
            size: 100 * GIB,
            ..d
        }
    });
    let error = pull_layout(&root).await.unwrap_err();
    assert!(matches!(&error, SourceError::TooLarge { .. }), "{error}");
    assert!(error.to_string().contains(IMAGE), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let root = layout_with(dir.path(), &[(oci::LAYER_TAR, layer.clone())], |d| d);
    let mut tampered = layer.clone();
    tampered[600] ^= 1;
    let path = root.join("blobs/sha256").join(Digest::of(&layer).hex());
    std::fs::write(&path, &tampered).unwrap();
    let error = pull_layout(&root).await.unwrap_err();
    assert!(
        matches!(&error, SourceError::DigestMismatch { .. }),
        "{error}"
    );
    assert!(error.to_string().contains(IMAGE), "{error}");
    assert_memory_bounded("blobs");
}

/// A JSON manifest of about `size` bytes (a list of layers), streamed to `out` and hashed
/// as it goes, never held whole.
fn write_big_manifest(out: &mut impl Write, size: u64) -> (Digest, u64) {
    let mut hasher = sha2::Sha256::new();
    let mut written = 0u64;
    let mut put = |bytes: &[u8]| {
        hasher.update(bytes);
        out.write_all(bytes).unwrap();
        written += bytes.len() as u64;
        written
    };
    let layer = serde_json::to_vec(&descriptor(oci::LAYER_TAR, b"")).unwrap();
    put(
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":"#,
    );
    put(&serde_json::to_vec(&descriptor(oci::CONFIG, b"{}")).unwrap());
    put(br#","layers":["#);
    put(&layer);
    let mut batch = Vec::new();
    for _ in 0..1000 {
        batch.push(b',');
        batch.extend_from_slice(&layer);
    }
    while put(&batch) < size {}
    let total = put(b"]}");
    (Digest::from_sha256(hasher.finalize().into()), total)
}

#[tokio::test]
async fn huge_manifests_and_nested_indexes_are_refused_from_a_layout() {
    // A 100 MB manifest.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layout");
    let mut writer = LayoutWriter::create(&root).unwrap();
    let spool = root.join("blobs/sha256/spool");
    let (digest, size) = write_big_manifest(
        &mut std::io::BufWriter::new(std::fs::File::create(&spool).unwrap()),
        100 << 20,
    );
    std::fs::rename(&spool, root.join("blobs/sha256").join(digest.hex())).unwrap();
    let manifest = Descriptor {
        media_type: oci::MANIFEST.into(),
        digest,
        size,
        platform: None,
        artifact_type: None,
        annotations: BTreeMap::new(),
    };
    writer.tag(IMAGE, &manifest);
    writer.finish().unwrap();
    let error = pull_layout(&root).await.unwrap_err();
    assert!(matches!(&error, SourceError::TooLarge { .. }), "{error}");
    assert!(error.to_string().contains(IMAGE), "{error}");
    assert_memory_bounded("100 MB manifest");

    // A layout whose own index.json is 100 MB.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layout");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut index =
        std::io::BufWriter::new(std::fs::File::create(root.join("index.json")).unwrap());
    write_big_manifest(&mut index, 100 << 20);
    drop(index);
    let error = OciLayout::open(&root).unwrap_err();
    assert!(matches!(&error, SourceError::TooLarge { .. }), "{error}");
    assert!(error.to_string().contains("index"), "{error}");
    assert_memory_bounded("100 MB index.json");

    // An index whose linux/amd64 entry is another index (the start of a chain or loop).
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layout");
    let mut writer = LayoutWriter::create(&root).unwrap();
    let image = writer
        .put_blob(oci::MANIFEST, &manifest_of(Vec::new()))
        .unwrap();
    let index_of = |entry: &Descriptor| {
        serde_json::to_vec(&Index {
            schema_version: 2,
            media_type: Some(oci::INDEX.into()),
            manifests: vec![Descriptor {
                platform: Some(Platform::linux("amd64")),
                ..entry.clone()
            }],
            annotations: BTreeMap::new(),
        })
        .unwrap()
    };
    let inner = writer.put_blob(oci::INDEX, &index_of(&image)).unwrap();
    let outer = writer.put_blob(oci::INDEX, &index_of(&inner)).unwrap();
    writer.tag(IMAGE, &outer);
    writer.finish().unwrap();
    let error = pull_layout(&root).await.unwrap_err();
    assert!(
        matches!(&error, SourceError::NestedIndex { digest, .. } if *digest == inner.digest),
        "{error}"
    );
    assert!(error.to_string().contains(IMAGE), "{error}");
}

/// What the hostile registry answers for one path.
#[derive(Clone)]
enum Answer {
    Bytes(Vec<u8>),
    /// This many zeros, streamed without a length.
    Zeros(u64),
    /// A manifest of about this many bytes, streamed without a length.
    BigManifest(u64),
}

/// A registry that answers `GET` by path from `answers` (anything else 404), over plain
/// HTTP with no authentication; bodies are streamed, never held.
async fn hostile_registry(answers: BTreeMap<String, Answer>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let answers = answers.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut byte = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    let read = socket.read(&mut byte).await.unwrap_or(0);
                    if read == 0 {
                        return;
                    }
                    request.extend_from_slice(&byte[..read]);
                }
                let text = String::from_utf8_lossy(&request).to_string();
                let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
                let answer = if path == "/v2/" {
                    Some(Answer::Bytes(b"{}".to_vec()))
                } else {
                    answers.get(&path).cloned()
                };
                let Some(answer) = answer else {
                    let _ = socket
                        .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    return;
                };
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n";
                let result = match answer {
                    Answer::Bytes(bytes) => {
                        let head = format!("{head}Content-Length: {}\r\n\r\n", bytes.len());
                        socket.write_all(head.as_bytes()).await.ok();
                        socket.write_all(&bytes).await
                    }
                    Answer::Zeros(count) => {
                        socket
                            .write_all(format!("{head}\r\n").as_bytes())
                            .await
                            .ok();
                        let zeros = vec![0u8; 1 << 20];
                        let mut sent = 0;
                        let mut result = Ok(());
                        while sent < count && result.is_ok() {
                            result = socket.write_all(&zeros).await;
                            sent += zeros.len() as u64;
                        }
                        result
                    }
                    Answer::BigManifest(size) => {
                        socket
                            .write_all(format!("{head}\r\n").as_bytes())
                            .await
                            .ok();
                        let mut body = Vec::new();
                        write_big_manifest(&mut body, 4 << 20);
                        let mut sent = 0;
                        let mut result = Ok(());
                        // Repeating the start makes no valid JSON, but a reader that stops at
                        // its ceiling never learns that; one that reads on holds it all.
                        while sent < size && result.is_ok() {
                            result = socket.write_all(&body).await;
                            sent += body.len() as u64;
                        }
                        result
                    }
                };
                let _ = result;
                let _ = socket.shutdown().await;
            });
        }
    });
    address
}

#[tokio::test]
async fn a_hostile_registry_is_refused_within_bounded_memory() {
    let layer = tar_of(&[file("usr/bin/tool", &[7u8; 4096])]);
    let layer_digest = Digest::of(&layer);
    let good = manifest_of(vec![descriptor(oci::LAYER_TAR, &layer)]);
    let mut answers = BTreeMap::new();
    answers.insert(
        "/v2/hostile/big/manifests/v1".to_string(),
        Answer::BigManifest(100 << 20),
    );
    answers.insert(
        "/v2/hostile/long/manifests/v1".into(),
        Answer::Bytes(good.clone()),
    );
    answers.insert(
        format!("/v2/hostile/long/blobs/{layer_digest}"),
        Answer::Zeros(2 * GIB),
    );
    answers.insert("/v2/hostile/wrong/manifests/v1".into(), Answer::Bytes(good));
    let mut wrong = layer.clone();
    wrong[600] ^= 1;
    answers.insert(
        format!("/v2/hostile/wrong/blobs/{layer_digest}"),
        Answer::Bytes(wrong),
    );
    let address = hostile_registry(answers).await;
    let registry = || Source::Registry(Registry::new(BTreeSet::from([address.clone()])));

    let image = format!("{address}/hostile/big:v1");
    let error = pull_from(registry(), &image).await.unwrap_err();
    assert!(matches!(&error, SourceError::TooLarge { .. }), "{error}");
    assert!(error.to_string().contains(&image), "{error}");
    assert_memory_bounded("100 MB manifest from a registry");

    let image = format!("{address}/hostile/long:v1");
    let error = pull_from(registry(), &image).await.unwrap_err();
    assert!(
        matches!(&error, SourceError::SizeMismatch { declared, .. } if *declared == layer.len() as u64),
        "{error}"
    );
    assert!(error.to_string().contains(&image), "{error}");
    assert_memory_bounded("endless blob from a registry");

    let image = format!("{address}/hostile/wrong:v1");
    let error = pull_from(registry(), &image).await.unwrap_err();
    assert!(
        matches!(&error, SourceError::DigestMismatch { .. }),
        "{error}"
    );
    assert!(error.to_string().contains(&image), "{error}");
}
