//! Shared helpers of the integration tests: the generated fixture release, and a real
//! registry (Debian's CNCF `docker-registry`) filled by `skopeo`, so that our readers are
//! checked against data and servers we did not write.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("assets-tests lives in the workspace")
        .to_path_buf()
}

pub mod replica;
pub mod webdriver;

/// The `image-factory` binary of this workspace, built if it is not yet (a test of another
/// package does not get `CARGO_BIN_EXE_*`).
pub fn factory_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo).current_dir(workspace()).args([
        "build",
        "--quiet",
        "--locked",
        "--bin",
        "image-factory",
    ]));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    target.join("debug/image-factory")
}

/// `fixtures/release`, which `cargo xtask fixtures` (run by `make test`) generates.
pub fn fixture_release() -> PathBuf {
    let release = workspace().join("fixtures/release");
    assert!(
        release.join("index.json").is_file(),
        "{} is missing: run `cargo xtask fixtures` (make test does)",
        release.display()
    );
    release
}

pub fn fixture_public_key() -> PathBuf {
    workspace().join("fixtures/keys/cosign.pub")
}

pub fn other_public_key() -> PathBuf {
    workspace().join("fixtures/keys/other.pub")
}

/// Every reference name in a layout's index.
pub fn layout_references(layout: &Path) -> Vec<String> {
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("index.json")).expect("index.json readable"),
    )
    .expect("index.json is JSON");
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|entry| {
            entry["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

/// Runs a command and panics with its output if it fails.
pub fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// `127.0.0.1:<a port nobody listens on>`.
pub fn free_loopback_address() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    format!("127.0.0.1:{port}")
}

/// A throwaway `docker-registry` on a free loopback port.
#[derive(Debug)]
pub struct LocalRegistry {
    pub address: String,
    child: Child,
    _storage: tempfile::TempDir,
}

impl LocalRegistry {
    pub fn start() -> LocalRegistry {
        let storage = tempfile::tempdir().expect("temporary directory");
        let address = free_loopback_address();
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp: {{addr: {address}}}\n",
                storage.path().join("data").display()
            ),
        )
        .expect("registry config written");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry runs (apt-get install docker-registry; make deps does)");
        let started = Instant::now();
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "docker-registry did not start on {address}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        LocalRegistry {
            address,
            child,
            _storage: storage,
        }
    }

    /// Copies `references` (full names as in the layout, `ghcr.io/…:tag`) from `layout`
    /// into this registry under the same repository and tag, digests preserved.
    pub fn push_from_layout(&self, layout: &Path, references: &[String]) {
        for reference in references {
            let (_, path) = reference
                .split_once('/')
                .expect("references name a registry");
            if is_referrers_tag(path) {
                self.push_referrers_index(layout, reference, path);
                continue;
            }
            run(Command::new("skopeo").args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--all",
                "--preserve-digests",
                "--dest-tls-verify=false",
                &format!("oci:{}:{reference}", layout.display()),
                &format!("docker://{}/{path}", self.address),
            ]));
        }
    }
}

/// `name:sha256-<hex>`: the referrers tag schema's index (not a `.sig` tag).
fn is_referrers_tag(path: &str) -> bool {
    path.rsplit_once(':').is_some_and(|(_, tag)| {
        tag.strip_prefix("sha256-")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

impl LocalRegistry {
    /// Pushes a referrers index and the artifact manifests it lists through the registry's
    /// HTTP API, byte for byte (Debian's skopeo rewrites an index whose entries carry
    /// `artifactType`, which `--preserve-digests` forbids).
    fn push_referrers_index(&self, layout: &Path, reference: &str, path: &str) {
        let (repository, tag) = path.rsplit_once(':').expect("a tag");
        let blob = |digest: &str| {
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:"))
        };
        let index_digest =
            layout_tag_digest(layout, reference).expect("the referrers tag is in the layout");
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(blob(&index_digest)).expect("index blob"))
                .expect("JSON");
        for entry in index["manifests"].as_array().expect("manifests") {
            let digest = entry["digest"].as_str().expect("a digest");
            let manifest: serde_json::Value =
                serde_json::from_slice(&std::fs::read(blob(digest)).expect("manifest blob"))
                    .expect("JSON");
            let mut blobs = vec![
                manifest["config"]["digest"]
                    .as_str()
                    .expect("config")
                    .to_string(),
            ];
            for layer in manifest["layers"].as_array().into_iter().flatten() {
                blobs.push(layer["digest"].as_str().expect("layer").to_string());
            }
            for digest in blobs {
                self.put_blob(repository, &digest, &blob(&digest));
            }
            self.put_manifest(
                repository,
                digest,
                entry["mediaType"].as_str().expect("type"),
                &blob(digest),
            );
        }
        let media_type = index["mediaType"].as_str().expect("type");
        self.put_manifest(repository, tag, media_type, &blob(&index_digest));
    }

    /// A two-step upload (distribution 2.8 does not finish a monolithic POST).
    fn put_blob(&self, repository: &str, digest: &str, file: &Path) {
        let started = Command::new("curl")
            .args([
                "-fsS",
                "-o",
                "/dev/null",
                "-X",
                "POST",
                "-w",
                "%header{location}",
                &format!("http://{}/v2/{repository}/blobs/uploads/", self.address),
            ])
            .output()
            .expect("curl runs");
        assert!(started.status.success(), "starting an upload of {digest}");
        let location = String::from_utf8(started.stdout).expect("a URL");
        let location = if location.starts_with('/') {
            format!("http://{}{location}", self.address)
        } else {
            location
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        run(Command::new("curl").args([
            "-fsS",
            "-o",
            "/dev/null",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("{location}{separator}digest={digest}"),
        ]));
    }

    fn put_manifest(&self, repository: &str, reference: &str, media_type: &str, file: &Path) {
        run(Command::new("curl").args([
            "-fsS",
            "-o",
            "/dev/null",
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {media_type}"),
            "--data-binary",
            &format!("@{}", file.display()),
            &format!(
                "http://{}/v2/{repository}/manifests/{reference}",
                self.address
            ),
        ]));
    }
}

/// The digest `reference` names in the layout's `index.json`.
fn layout_tag_digest(layout: &Path, reference: &str) -> Option<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).ok()?).ok()?;
    index["manifests"].as_array()?.iter().find_map(|entry| {
        (entry["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(reference))
            .then(|| entry["digest"].as_str().map(str::to_string))
            .flatten()
    })
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs QEMU (TCG only: KVM does not work here) until the guest powers off or `timeout`
/// passes, and returns everything it printed on the serial console.
pub fn qemu(args: &[&str], timeout: Duration) -> String {
    qemu_system("qemu-system-x86_64", args, timeout)
}

/// Boots `disk` (raw) on QEMU's arm64 `virt` board with `u_boot` as its firmware (TCG).
pub fn boot_arm64_u_boot(u_boot: &Path, disk: &Path) -> String {
    qemu_system(
        "qemu-system-aarch64",
        &[
            "-machine",
            "virt",
            "-cpu",
            "cortex-a57",
            "-m",
            "1024",
            "-bios",
            &u_boot.to_string_lossy(),
            "-drive",
            &format!("file={},format=raw,if=virtio", disk.display()),
        ],
        Duration::from_secs(420),
    )
}

fn qemu_system(program: &str, args: &[&str], timeout: Duration) -> String {
    let mut command = Command::new(program);
    command
        .args(["-m", "512", "-nographic", "-no-reboot", "-nic", "none"])
        .args(args)
        .stdin(Stdio::null());
    let output = Command::new("timeout")
        .arg(timeout.as_secs().to_string())
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("{program} runs (make deps installs it): {error}"));
    String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr)
}

/// Direct kernel boot under SeaBIOS.
pub fn boot_kernel(kernel: &Path, initrd: &Path, cmdline: &str) -> String {
    qemu(
        &[
            "-machine",
            "accel=tcg",
            "-kernel",
            &kernel.to_string_lossy(),
            "-initrd",
            &initrd.to_string_lossy(),
            "-append",
            cmdline,
        ],
        Duration::from_secs(180),
    )
}

/// Boots `disk` (raw) from its MBR under SeaBIOS.
pub fn boot_bios_disk(disk: &Path) -> String {
    qemu(
        &[
            "-machine",
            "accel=tcg",
            "-drive",
            &format!("file={},format=raw", disk.display()),
        ],
        Duration::from_secs(240),
    )
}

/// Boots `iso` as a CD under SeaBIOS (El Torito).
pub fn boot_bios_cdrom(iso: &Path) -> String {
    qemu(
        &[
            "-machine",
            "accel=tcg",
            "-drive",
            &format!("file={},media=cdrom,readonly=on", iso.display()),
        ],
        Duration::from_secs(240),
    )
}

/// Boots `iso` as a CD under OVMF with fresh EFI variables (El Torito).
pub fn boot_uefi_cdrom(iso: &Path, work: &Path) -> String {
    ovmf(
        work,
        &[
            "-drive",
            &format!("file={},media=cdrom,readonly=on", iso.display()),
        ],
    )
}

/// Runs OVMF (q35, TCG) with fresh EFI variables in `work` and the given drives.
fn ovmf(work: &Path, drives: &[&str]) -> String {
    let vars = tempfile::NamedTempFile::new_in(work).expect("a file for the EFI variables");
    std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", vars.path())
        .expect("OVMF installed (make deps)");
    let mut args = vec![
        "-machine".to_string(),
        "q35,accel=tcg".to_string(),
        "-drive".to_string(),
        "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd".to_string(),
        "-drive".to_string(),
        format!("if=pflash,format=raw,unit=1,file={}", vars.path().display()),
    ];
    args.extend(drives.iter().map(|arg| arg.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    qemu(&args, Duration::from_secs(240))
}

/// Runs OVMF built to enforce Secure Boot (q35 with SMM, as that firmware requires) on the
/// EFI variables in `vars`, which it keeps, until the guest powers off, `timeout` passes or a
/// line of the serial log satisfies `stop`. Resets are allowed: systemd-boot reboots after
/// enrolling keys. Returns the serial log.
pub fn boot_secure_boot(
    vars: &Path,
    drives: &[&str],
    timeout: Duration,
    stop: impl Fn(&str) -> bool,
) -> String {
    use std::io::{BufRead, BufReader};
    let mut args = vec![
        "-m".to_string(),
        "512".into(),
        "-nographic".into(),
        "-nic".into(),
        "none".into(),
        "-machine".into(),
        "q35,smm=on,accel=tcg".into(),
        "-global".into(),
        "driver=cfi.pflash01,property=secure,value=on".into(),
        "-drive".into(),
        "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
            .into(),
        "-drive".into(),
        format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
    ];
    args.extend(drives.iter().map(|arg| arg.to_string()));
    let mut child = Command::new("timeout")
        .arg(timeout.as_secs().to_string())
        .arg("qemu-system-x86_64")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("qemu-system-x86_64 runs (make deps installs it)");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut log = String::new();
    // The firmware's console is not line-oriented (escape sequences, carriage returns):
    // split on either line end.
    for line in BufReader::new(stdout).split(b'\n') {
        let Ok(line) = line else { break };
        let text = String::from_utf8_lossy(&line).to_string();
        log.push_str(&text);
        log.push('\n');
        if stop(&text) {
            break;
        }
    }
    let _ = child.kill();
    let _ = Command::new("pkill")
        .args(["-f", &format!("file={}", vars.display())])
        .status();
    let _ = child.wait();
    log
}

/// A fresh copy of OVMF's empty variable store: Secure Boot in setup mode, no keys.
pub fn setup_mode_vars(work: &Path, name: &str) -> PathBuf {
    let vars = work.join(name);
    std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).expect("OVMF installed (make deps)");
    vars
}

/// Boots `disk` (raw) under OVMF with fresh EFI variables.
pub fn boot_uefi_disk(disk: &Path, work: &Path) -> String {
    boot_uefi_disk_with_sectors(disk, work, 512)
}

/// Boots `disk` (raw) under OVMF from a virtio disk with `sector`-byte logical blocks.
pub fn boot_uefi_disk_with_sectors(disk: &Path, work: &Path, sector: u32) -> String {
    ovmf(
        work,
        &[
            "-drive",
            &format!("file={},format=raw,if=none,id=disk", disk.display()),
            "-device",
            &format!(
                "virtio-blk-pci,drive=disk,logical_block_size={sector},physical_block_size={sector}"
            ),
        ],
    )
}

/// A FAT32 ESP image with `efi` as the removable-media boot loader, made with dosfstools
/// and mtools.
pub fn esp_with_loader(efi: &Path, work: &Path) -> PathBuf {
    let esp = work.join("esp.img");
    run(Command::new("truncate").args(["-s", "64M"]).arg(&esp));
    run(Command::new("mkfs.fat")
        .args(["-F", "32", "-n", "ESP"])
        .arg(&esp));
    run(Command::new("mmd")
        .arg("-i")
        .arg(&esp)
        .args(["::/EFI", "::/EFI/BOOT"]));
    run(Command::new("mcopy")
        .arg("-i")
        .arg(&esp)
        .arg(efi)
        .arg("::/EFI/BOOT/BOOTX64.EFI"));
    esp
}

/// The `FIXTURE-*` lines of a serial log, in order, without the marker noise around them.
pub fn fixture_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| {
            line.find("FIXTURE-")
                .map(|at| line[at..].trim_end().to_string())
        })
        .collect()
}

/// Checks a fixture boot log: the boot line, `cmdline` in the command line, every extension,
/// the schematic, each `meta` line, no error, and the final line.
pub fn expect_fixture_boot(
    lines: &[String],
    version: &str,
    id: &str,
    cmdline: &str,
    extensions: &[&str],
    meta: &[&str],
) {
    expect_fixture_boot_of("amd64", lines, version, id, cmdline, extensions, meta);
}

/// [`expect_fixture_boot`] for a system of architecture `arch`.
pub fn expect_fixture_boot_of(
    arch: &str,
    lines: &[String],
    version: &str,
    id: &str,
    cmdline: &str,
    extensions: &[&str],
    meta: &[&str],
) {
    let text = lines.join("\n");
    assert!(
        lines
            .first()
            .is_some_and(|l| l == &format!("FIXTURE-BOOT version={version} arch={arch}")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("FIXTURE-CMDLINE ") && l.contains(cmdline)),
        "{cmdline:?} in:\n{text}"
    );
    for extension in extensions {
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with(&format!("FIXTURE-EXTENSION {extension} "))),
            "extension {extension} in:\n{text}"
        );
    }
    assert!(
        lines.contains(&format!("FIXTURE-EXTENSION schematic {id}")),
        "{text}"
    );
    assert!(lines.contains(&format!("FIXTURE-SCHEMATIC {id}")), "{text}");
    for line in meta {
        assert!(lines.iter().any(|l| l == line), "{line} in:\n{text}");
    }
    assert!(!text.contains("FIXTURE-ERROR"), "{text}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("FIXTURE-DONE"),
        "{text}"
    );
}

/// A factory serving the fixture release on a loopback port, with its own state directory.
pub struct TestFactory {
    pub base: String,
    pub factory: image_factory::service::Factory,
    _state: tempfile::TempDir,
}

impl std::fmt::Debug for TestFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestFactory({})", self.base)
    }
}

impl TestFactory {
    /// Starts a server; `adjust` may change the configuration first.
    pub async fn start(adjust: impl FnOnce(&mut image_factory::config::Config)) -> TestFactory {
        let state = tempfile::tempdir().expect("temporary directory");
        let mut config = image_factory::config::Config::default();
        config.storage.dir = state.path().to_path_buf();
        config.artifacts.oci_layout = fixture_release();
        config.container_signature.public_key_file = fixture_public_key();
        config.http.external_url = "http://factory.test/".into();
        adjust(&mut config);
        let store =
            image_factory::store::open_schematic_store(&config, tokio::runtime::Handle::current())
                .expect("schematic store");
        let factory =
            image_factory::service::Factory::from_config(config, store).expect("factory starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback port");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(image_factory::frontend::serve(
            listener,
            factory.clone(),
            std::future::pending(),
        ));
        TestFactory {
            base,
            factory,
            _state: state,
        }
    }
}

impl TestFactory {
    /// Creates a schematic and returns its ID.
    pub async fn create_schematic(&self, body: &str) -> String {
        let response = reqwest::Client::new()
            .post(format!("{}/schematics", self.base))
            .body(body.to_string())
            .send()
            .await
            .expect("POST /schematics");
        assert_eq!(response.status(), 201);
        let created: serde_json::Value = response.json().await.expect("JSON answer");
        created["id"].as_str().expect("an id").to_string()
    }

    /// `GET {base}{path}`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(format!("{}{path}", self.base))
            .await
            .expect("GET answers")
    }

    /// Streams `GET {base}{path}` into `file`, expecting 200; returns the byte count.
    pub async fn download_to(&self, path: &str, file: &Path) -> u64 {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        let response = self.get(path).await;
        let status = response.status();
        if status != 200 {
            let body = response.text().await.unwrap_or_default();
            panic!("{path}: {status}: {body}");
        }
        let mut out = tokio::fs::File::create(file)
            .await
            .expect("create download");
        let mut stream = response.bytes_stream();
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.expect("body chunk");
            total += chunk.len() as u64;
            out.write_all(&chunk).await.expect("write download");
        }
        out.flush().await.expect("flush download");
        total
    }
}

/// A FAT32 image of `size` bytes holding `files` (`(source, "::/path")`), made with
/// dosfstools and mtools; `dirs` are created first.
pub fn fat_image(path: &Path, size: u64, label: &str, dirs: &[&str], files: &[(&Path, &str)]) {
    run(Command::new("truncate")
        .args(["-s", &size.to_string()])
        .arg(path));
    run(Command::new("mkfs.fat")
        .args(["-F", "32", "-n", label])
        .arg(path));
    if !dirs.is_empty() {
        run(Command::new("mmd").arg("-i").arg(path).args(dirs));
    }
    for (file, target) in files {
        run(Command::new("mcopy")
            .arg("-i")
            .arg(path)
            .arg(file)
            .arg(target));
    }
}

impl TestFactory {
    /// The fixture release's imager of `version`, flattened.
    pub async fn imager(&self, version: &str) -> image_factory::source::FileTree {
        self.factory
            .images
            .pull(
                &image_factory::source::ImageRef::with_tag("ghcr.io", "siderolabs/imager", version),
                "amd64",
            )
            .await
            .expect("fixture imager")
            .tree
    }

    /// The files directly under `dir` of the imager of `version`, by name.
    pub async fn imager_dir(
        &self,
        version: &str,
        dir: &str,
    ) -> std::collections::BTreeMap<String, Vec<u8>> {
        use image_factory::source::flatten::Entry;
        let tree = self.imager(version).await;
        let files: std::collections::BTreeMap<String, Vec<u8>> = tree
            .under(dir)
            .filter_map(|(path, entry)| match entry {
                Entry::File { data, .. } => Some((
                    path.trim_start_matches(&format!("{dir}/")).to_string(),
                    data.clone(),
                )),
                _ => None,
            })
            .collect();
        assert!(!files.is_empty(), "the fixture imager has {dir}");
        files
    }

    /// PE images of `version` to sign and hash, by name: the vanilla UKI of each architecture
    /// (served over HTTP) and GRUB's x86_64 EFI application built from the imager's files.
    pub async fn pe_images(&self, version: &str) -> Vec<(String, Vec<u8>)> {
        use image_factory::engine::boot::grub;
        let vanilla = self.create_schematic("customization: {}\n").await;
        let mut images = Vec::new();
        for arch in ["amd64", "arm64"] {
            let path = format!("/image/{vanilla}/{version}/metal-{arch}-uki.efi");
            let response = self.get(&path).await;
            assert_eq!(response.status(), 200, "{path}");
            let uki = response.bytes().await.expect("UKI body").to_vec();
            images.push((format!("uki-{arch}"), uki));
        }
        let files = self.imager_dir(version, "usr/lib/grub/x86_64-efi").await;
        let efi = grub::efi_image(
            grub::EfiArch::X86_64,
            &|name: &str| files.get(name).cloned(),
            grub::PREFIX,
            grub::COMMON_MODULES,
        )
        .expect("GRUB EFI image");
        images.push(("grub-x86_64".to_string(), efi));
        images
    }

    /// Downloads the vanilla schematic's amd64 kernel and initramfs of `version` into `dir`.
    pub async fn vanilla_boot_files(&self, version: &str, dir: &Path) -> (PathBuf, PathBuf) {
        let id = self.create_schematic("{}").await;
        assert_eq!(id, image_factory::schematic::VANILLA_ID);
        let kernel = dir.join("vmlinuz");
        let initramfs = dir.join("initramfs.xz");
        self.download_to(&format!("/image/{id}/{version}/kernel-amd64"), &kernel)
            .await;
        self.download_to(
            &format!("/image/{id}/{version}/initramfs-amd64.xz"),
            &initramfs,
        )
        .await;
        (kernel, initramfs)
    }
}

/// Checks the cosign signature of `digest` in `repository` (`installer/<id>`): skopeo pulls
/// the `sha256-<hex>.sig` tag, its simple-signing payload names `digest`, and openssl
/// verifies the signature with the factory's public key.
pub async fn verify_cosign_signature(
    factory: &TestFactory,
    repository: &str,
    digest: &str,
    work: &Path,
) {
    let host = factory.base.trim_start_matches("http://");
    let signature_tag = format!("sha256-{}.sig", digest.trim_start_matches("sha256:"));
    let layout = work.join("signature-layout");
    run(Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false"])
        .arg(format!("docker://{host}/{repository}:{signature_tag}"))
        .arg(format!("oci:{}:signature", layout.display())));
    let signature: serde_json::Value = factory
        .get(&format!("/v2/{repository}/manifests/{signature_tag}"))
        .await
        .json()
        .await
        .expect("signature manifest");
    let layer = &signature["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let payload = factory
        .get(&format!(
            "/v2/{repository}/blobs/{}",
            layer["digest"].as_str().expect("payload digest")
        ))
        .await
        .bytes()
        .await
        .expect("payload");
    let parsed: serde_json::Value = serde_json::from_slice(&payload).expect("payload JSON");
    assert_eq!(
        parsed["critical"]["image"]["docker-manifest-digest"],
        digest
    );
    assert_eq!(
        parsed["critical"]["type"],
        "cosign container image signature"
    );
    let key = factory.get("/oci/cosign/signing-key.pub").await;
    assert_eq!(key.headers()["content-type"], "application/x-pem-file");
    let key = key.text().await.expect("public key");
    assert!(key.starts_with("-----BEGIN PUBLIC KEY-----"), "{key}");
    std::fs::write(work.join("key.pem"), key).expect("write key");
    std::fs::write(work.join("payload.json"), &payload).expect("write payload");
    std::fs::write(
        work.join("signature.b64"),
        layer["annotations"]["dev.cosignproject.cosign/signature"]
            .as_str()
            .expect("signature annotation"),
    )
    .expect("write signature");
    run(Command::new("sh")
        .args(["-c", "base64 -d signature.b64 > signature.der"])
        .current_dir(work));
    let verified = run(Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "key.pem",
            "-signature",
            "signature.der",
            "payload.json",
        ])
        .current_dir(work));
    assert!(verified.contains("Verified OK"), "{verified}");
}

/// The fixture Secure Boot keys (`cargo xtask fixtures` makes them) in `config`.
pub fn use_fixture_secure_boot_keys(config: &mut image_factory::config::Config) {
    let keys = workspace().join("fixtures/secureboot");
    config.secure_boot.enabled = true;
    config.secure_boot.file.signing_key_path = keys.join("uki-signing-key.pem");
    config.secure_boot.file.signing_cert_path = keys.join("uki-signing-cert.pem");
    config.secure_boot.file.pcr_key_path = keys.join("pcr-signing-key.pem");
}
