//! Factory replicas as separate processes (the `image-factory` binary with its own state
//! directory and configuration), for the tests of a deployment on shared registries: what
//! one process stores, another must find, and a process can be killed mid-work.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `image-factory serve`.
#[derive(Debug)]
pub struct Replica {
    pub base: String,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    _state: tempfile::TempDir,
}

/// The fixture release as the source, verified with the fixture key: the configuration
/// every replica starts from (as environment variables, so flags and files add the rest).
pub fn fixture_environment() -> Vec<(String, String)> {
    vec![
        (
            "IF_ARTIFACTS_OCILAYOUT".into(),
            super::fixture_release().display().to_string(),
        ),
        (
            "IF_CONTAINERSIGNATURE_PUBLICKEYFILE".into(),
            super::fixture_public_key().display().to_string(),
        ),
    ]
}

impl Replica {
    /// Starts `image-factory <args>` on a free loopback port with an empty state directory
    /// and `environment`, and waits until it answers.
    pub fn start(args: &[&str], environment: &[(String, String)]) -> Replica {
        let state = tempfile::tempdir().expect("state directory");
        let address = super::free_loopback_address();
        let mut command = Command::new(super::factory_binary());
        command
            .args(args)
            .arg("--listen")
            .arg(&address)
            .arg("--state-dir")
            .arg(state.path())
            .env("IMAGE_FACTORY_LOG", "info")
            .envs(environment.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("image-factory starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr piped");
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().expect("log lock").push(line);
            }
        });
        let started = Instant::now();
        while std::net::TcpStream::connect(&address).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "image-factory exited with {status}:\n{}",
                    log.lock().expect("log lock").join("\n")
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "image-factory did not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Replica {
            base: format!("http://{address}"),
            child,
            log,
            _state: state,
        }
    }

    /// Stores a schematic through this replica and returns its ID.
    pub async fn create_schematic(&self, body: &str) -> String {
        let response = reqwest::Client::new()
            .post(format!("{}/schematics", self.base))
            .body(body.to_string())
            .send()
            .await
            .expect("POST /schematics");
        assert!(response.status().is_success(), "{}", response.status());
        let created: serde_json::Value = response.json().await.expect("JSON answer");
        created["id"].as_str().expect("an id").to_string()
    }

    /// The log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// Waits until a log line contains `text`; panics with the log after `timeout`.
    pub fn wait_for_log(&self, text: &str, timeout: Duration) {
        let started = Instant::now();
        loop {
            if self.log().iter().any(|line| line.contains(text)) {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "no log line with {text:?}:\n{}",
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Log lines containing `text`.
    pub fn count_log(&self, text: &str) -> usize {
        self.log().iter().filter(|line| line.contains(text)).count()
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn state_dir(&self) -> &Path {
        self._state.path()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A configuration file in `dir` with `yaml`, for `--config`.
pub fn config_file(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("configuration written");
    path
}
