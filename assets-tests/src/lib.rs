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
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let address = format!("127.0.0.1:{port}");
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

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
