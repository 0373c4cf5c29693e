//! Crashes and full disks: `SIGKILL` during a disk-image build, during its cache write and
//! during schematic writes, then a restart: leftovers are gone, nothing partial is served, and
//! the next request builds the same bytes a fresh factory builds. A state directory on a
//! small tmpfs that fills up: 507 with the reason, no entry, cached assets still served, and
//! everything works again once space is freed.

use assets_tests::replica::{Replica, fixture_environment};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const VERSION: &str = "v1.12.0";
const DISK: &str = "metal-amd64.raw.zst";

fn boot_schematic() -> String {
    std::fs::read_to_string(assets_tests::workspace().join("fixtures/schematics/boot.yaml"))
        .expect("boot.yaml")
}

/// The SHA-256 of a whole download, and its length.
async fn download_digest(base: &str, path: &str) -> (String, u64) {
    let mut response = reqwest::get(format!("{base}{path}")).await.expect("GET");
    assert_eq!(response.status(), 200, "{path}");
    let mut hasher = Sha256::new();
    let mut length = 0;
    while let Some(chunk) = response.chunk().await.expect("body") {
        hasher.update(&chunk);
        length += chunk.len() as u64;
    }
    (image_factory::hex::encode(&hasher.finalize()), length)
}

/// Entries and temporaries of the asset cache.
fn cache_listing(state: &Path) -> (Vec<String>, Vec<String>) {
    let mut entries = Vec::new();
    let mut temporaries = Vec::new();
    if let Ok(listing) = std::fs::read_dir(state.join("assets")) {
        for entry in listing.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(".tmp-") {
                temporaries.push(name);
            } else {
                entries.push(name);
            }
        }
    }
    (entries, temporaries)
}

/// Temporary files of the schematic store, and the IDs stored.
fn schematic_listing(state: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let mut temporaries = Vec::new();
    let mut ids = Vec::new();
    for shard in std::fs::read_dir(state.join("schematics"))
        .expect("schematics")
        .flatten()
    {
        for file in std::fs::read_dir(shard.path()).expect("shard").flatten() {
            let name = file.file_name().to_string_lossy().to_string();
            match name.strip_suffix(".yaml") {
                Some(id) if !name.starts_with('.') => ids.push(id.to_string()),
                _ => temporaries.push(file.path()),
            }
        }
    }
    (temporaries, ids)
}

/// Waits until `done` holds, polling every 2 ms, for at most `timeout`.
fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_builds_cache_writes_and_schematic_writes_loses_nothing() {
    let environment = fixture_environment();
    let reference = Replica::start(&["serve"], &environment);
    let mut factory = Replica::start(&["serve"], &environment);
    let boot = factory.create_schematic(&boot_schematic()).await;
    let vanilla = factory.create_schematic("{}").await;
    assert_eq!(reference.create_schematic(&boot_schematic()).await, boot);
    assert_eq!(reference.create_schematic("{}").await, vanilla);
    let boot_disk = format!("/image/{boot}/{VERSION}/{DISK}");
    let vanilla_disk = format!("/image/{vanilla}/{VERSION}/{DISK}");
    let expected_boot = download_digest(&reference.base, &boot_disk).await;
    let expected_vanilla = download_digest(&reference.base, &vanilla_disk).await;
    let state = factory.state_dir().to_path_buf();

    // 1. Killed while the build prepares its inputs, before any cache file exists.
    let request = tokio::spawn(reqwest::get(format!("{}{boot_disk}", factory.base)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    factory.restart();
    let _ = request.await;
    let (entries, temporaries) = cache_listing(&state);
    assert!(
        entries.is_empty() && temporaries.is_empty(),
        "{entries:?} {temporaries:?}"
    );
    assert_eq!(
        download_digest(&factory.base, &boot_disk).await,
        expected_boot
    );

    // 2. Killed while the encoder writes the cache entry and a client streams it.
    let base = factory.base.clone();
    let path = vanilla_disk.clone();
    let streaming = tokio::spawn(async move {
        let response = reqwest::get(format!("{base}{path}")).await?;
        response.bytes().await.map(|bytes| bytes.len())
    });
    wait_until(Duration::from_secs(60), "the cache write to begin", || {
        let (_, temporaries) = cache_listing(&state);
        temporaries.iter().any(|name| {
            std::fs::metadata(state.join("assets").join(name).join("data"))
                .is_ok_and(|data| data.len() > 0)
        })
    });
    factory.kill();
    let (entries, temporaries) = cache_listing(&state);
    assert_eq!(
        temporaries.len(),
        1,
        "the interrupted write is on disk: {temporaries:?}"
    );
    assert_eq!(
        entries.len(),
        1,
        "only the earlier entry is whole: {entries:?}"
    );
    let streamed = streaming.await.expect("task");
    assert!(
        streamed.is_err(),
        "a client got a complete-looking body from a killed build: {streamed:?}"
    );
    factory.restart();
    let (entries, temporaries) = cache_listing(&state);
    assert!(
        temporaries.is_empty(),
        "leftovers after the restart: {temporaries:?}"
    );
    assert_eq!(entries.len(), 1);
    assert_eq!(
        download_digest(&factory.base, &vanilla_disk).await,
        expected_vanilla
    );
    assert_eq!(
        download_digest(&factory.base, &boot_disk).await,
        expected_boot
    );

    // 3. Killed amid concurrent schematic writes: every acknowledged one survives, every
    // stored one reads back, no temporary file remains.
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let base = factory.base.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for index in 0.. {
                let body = format!(
                    "customization:\n  extraKernelArgs:\n    - crash.test={writer}.{index}\n"
                );
                let Ok(response) = client
                    .post(format!("{base}/schematics"))
                    .body(body)
                    .send()
                    .await
                else {
                    return;
                };
                let Ok(created) = response.json::<serde_json::Value>().await else {
                    return;
                };
                if let Some(id) = created["id"].as_str() {
                    acknowledged.lock().expect("lock").push(id.to_string());
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    factory.kill();
    for writer in writers {
        let _ = writer.await;
    }
    factory.restart();
    let (temporaries, stored) = schematic_listing(&state);
    assert!(temporaries.is_empty(), "leftovers: {temporaries:?}");
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > 10,
        "only {} writes acknowledged",
        acknowledged.len()
    );
    for id in &acknowledged {
        assert!(stored.contains(id), "acknowledged schematic {id} was lost");
    }
    let client = reqwest::Client::new();
    for id in &stored {
        let response = client
            .get(format!("{}/schematics/{id}", factory.base))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 200, "stored schematic {id}");
    }
    eprintln!(
        "{} schematic writes acknowledged before the kill, {} stored",
        acknowledged.len(),
        stored.len()
    );
}

/// A tmpfs of `size` mounted on a new directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (make test runs as root): {status}"
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes `path` until the file system is full.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("filler");
    let block = vec![0x5au8; 64 << 10];
    let mut written = 0u64;
    loop {
        match file.write(&block) {
            Ok(0) | Err(_) => break,
            Ok(count) => written += count as u64,
        }
    }
    let _ = file.sync_all();
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_state_directory_answers_507_keeps_serving_the_cache_and_recovers() {
    let tmpfs = Tmpfs::mount("160m");
    let state = tempfile::tempdir_in(tmpfs.path()).expect("state directory");
    let state_path = state.path().to_path_buf();
    let factory = Replica::start_in(state, &["serve"], &fixture_environment());
    let id = factory.create_schematic(&boot_schematic()).await;
    let kernel = format!("/image/{id}/{VERSION}/kernel-amd64");
    let cached = download_digest(&factory.base, &kernel).await;

    let filler = tmpfs.path().join("filler");
    let filled = fill(&filler);
    eprintln!("tmpfs filled with {} MiB", filled >> 20);
    let client = reqwest::Client::new();
    let (entries_before, _) = cache_listing(&state_path);

    let iso = format!("/image/{id}/{VERSION}/metal-amd64.iso");
    let response = client
        .get(format!("{}{iso}", factory.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 507);
    let message = response.text().await.expect("body");
    assert!(message.contains("No space left on device"), "{message}");
    let created = client
        .post(format!("{}/schematics", factory.base))
        .body("customization:\n  extraKernelArgs:\n    - full=1\n")
        .send()
        .await
        .expect("POST");
    assert_eq!(created.status(), 507, "{:?}", created.text().await);
    let (entries, temporaries) = cache_listing(&state_path);
    assert_eq!(entries, entries_before, "no entry appears");
    assert!(
        temporaries.is_empty(),
        "no temporary is left: {temporaries:?}"
    );
    assert!(schematic_listing(&state_path).0.is_empty());

    // The cache still serves, and the health check stays green.
    assert_eq!(download_digest(&factory.base, &kernel).await, cached);
    let health = client
        .get(format!("{}/healthz", factory.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(health.status(), 200);

    std::fs::remove_file(&filler).expect("free space");
    let (_, length) = download_digest(&factory.base, &iso).await;
    assert!(length > 1 << 20);
    let created = client
        .post(format!("{}/schematics", factory.base))
        .body("customization:\n  extraKernelArgs:\n    - full=1\n")
        .send()
        .await
        .expect("POST");
    assert_eq!(created.status(), 201);
    drop(factory);
}
