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
    address: String,
    args: Vec<String>,
    environment: Vec<(String, String)>,
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
        Replica::start_in(
            tempfile::tempdir().expect("state directory"),
            args,
            environment,
        )
    }

    /// [`Replica::start`] with `state` as the state directory.
    pub fn start_in(
        state: tempfile::TempDir,
        args: &[&str],
        environment: &[(String, String)],
    ) -> Replica {
        let address = super::free_loopback_address();
        let (child, log) = spawn(&address, state.path(), args, environment);
        let mut replica = Replica {
            base: format!("http://{address}"),
            address,
            args: args.iter().map(|arg| arg.to_string()).collect(),
            environment: environment.to_vec(),
            child,
            log,
            _state: state,
        };
        replica.wait_until_listening();
        replica
    }

    /// SIGKILLs the process and starts it again on the same address and state directory,
    /// with a fresh log.
    pub fn restart(&mut self) {
        self.kill();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let (child, log) = spawn(&self.address, self._state.path(), &args, &self.environment);
        self.child = child;
        self.log = log;
        self.wait_until_listening();
    }

    fn wait_until_listening(&mut self) {
        let started = Instant::now();
        while std::net::TcpStream::connect(&self.address).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "image-factory exited with {status}:\n{}",
                    self.log().join("\n")
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "image-factory did not listen on {}:\n{}",
                self.address,
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now and at its peak (`VmRSS`, `VmHWM`), in bytes.
    pub fn resident_bytes(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("/proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches(" kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .map(|kib| kib * 1024)
                .unwrap_or_else(|| panic!("no {name} in /proc status"))
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Open file descriptors of the process.
    pub fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|entries| entries.count())
            .unwrap_or(0)
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

/// Spawns `image-factory <args>` on `address` with `state`, its standard error collected.
fn spawn(
    address: &str,
    state: &Path,
    args: &[&str],
    environment: &[(String, String)],
) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut command = Command::new(super::factory_binary());
    command
        .args(args)
        .arg("--listen")
        .arg(address)
        .arg("--state-dir")
        .arg(state)
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
    (child, log)
}

/// A configuration file in `dir` with `yaml`, for `--config`.
pub fn config_file(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("configuration written");
    path
}
