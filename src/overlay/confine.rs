//! Running an overlay's installer program, the factory's one child process, confined: a
//! Landlock domain that lets it read its own tree and write only the paths it is given, no
//! TCP, no signals or abstract sockets outside; an empty network namespace and the `nobody`
//! user when the factory runs as root; a cleared environment, a scratch working directory,
//! a file size limit, a time limit and capped output.
//!
//! Landlock restricts the calling thread and what it starts, so every run gets a fresh
//! thread that restricts itself, starts the program and ends with it; no other thread of
//! the factory is touched.

use super::OverlayError;
use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The user an installer runs as when the factory is root.
const NOBODY: u32 = 65534;
/// Output kept of each stream; the rest is read and dropped.
const MAX_OUTPUT: usize = 1 << 20;
const MAX_OPEN_FILES: u64 = 256;
const MAX_PROCESSES: u64 = 64;

/// The Landlock ABI the rules are written for (the kernel's own may be newer).
const RULES_ABI: ABI = ABI::V7;

/// Whether this kernel enforces Landlock at all.
pub fn landlock_available() -> bool {
    Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V1))
        .and_then(|ruleset| ruleset.create())
        .is_ok()
}

/// How an installer program is confined.
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    /// The largest file it may write (the disk image is the largest).
    pub max_file_size: u64,
    /// Apply Landlock; off only where the kernel lacks it and the operator allowed it.
    pub landlock: bool,
}

/// One invocation: `<program> <command>` with `stdin`.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub program: PathBuf,
    pub command: &'static str,
    pub stdin: Vec<u8>,
    /// Working directory, `HOME` and `TMPDIR`; writable.
    pub work_dir: PathBuf,
    /// Trees it may read and execute from.
    pub readable: Vec<PathBuf>,
    /// Files and trees it may write.
    pub writable: Vec<PathBuf>,
}

/// What a successful run printed.
#[derive(Debug, Clone)]
pub struct Finished {
    pub stdout: Vec<u8>,
}

/// Runs `invocation` under `limits` and waits for it (on a thread of its own).
pub fn run(invocation: Invocation, limits: Limits) -> Result<Finished, OverlayError> {
    std::thread::Builder::new()
        .name("overlay-installer".into())
        .spawn(move || run_confined(&invocation, &limits))
        .map_err(|source| OverlayError::Io {
            what: "starting the installer thread".into(),
            source,
        })?
        .join()
        .map_err(|_| OverlayError::Confinement("the installer thread panicked".into()))?
}

fn program_name(invocation: &Invocation) -> String {
    invocation
        .program
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Restricts the current thread (and so the program it starts) to the invocation's paths.
fn restrict_thread(invocation: &Invocation) -> Result<(), OverlayError> {
    let failed = |error: landlock::RulesetError| OverlayError::Confinement(error.to_string());
    let read_execute = AccessFs::from_read(RULES_ABI);
    let read_write = AccessFs::from_all(RULES_ABI);
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(RULES_ABI))
        .map_err(failed)?
        .handle_access(AccessNet::from_all(RULES_ABI))
        .map_err(failed)?
        .scope(Scope::from_all(RULES_ABI))
        .map_err(failed)?
        .create()
        .map_err(failed)?
        .add_rules(path_beneath_rules(&invocation.readable, read_execute))
        .map_err(failed)?
        .add_rules(path_beneath_rules(
            invocation
                .writable
                .iter()
                .chain(std::iter::once(&invocation.work_dir)),
            read_write,
        ))
        .map_err(failed)?
        .add_rules(path_beneath_rules(["/dev/null"], read_write))
        .map_err(failed)?
        .restrict_self()
        .map_err(failed)?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err(OverlayError::Confinement(
            "the kernel did not enforce the Landlock ruleset".into(),
        ));
    }
    Ok(())
}

/// Moves the current thread into a new, empty network namespace (root only).
#[allow(unsafe_code)]
fn isolate_network() -> Result<(), OverlayError> {
    // SAFETY: only the network namespace is unshared; the file descriptor table, which the
    // function's safety contract is about, stays shared.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
        .map_err(|error| OverlayError::Confinement(format!("cannot isolate the network: {error}")))
}

/// Sets the child's resource limits between fork and exec.
#[allow(unsafe_code)]
fn limit_resources(command: &mut Command, max_file_size: u64, as_nobody: bool) {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let limit = |value: u64| Rlimit {
        current: Some(value),
        maximum: Some(value),
    };
    let hook = move || {
        setrlimit(Resource::Fsize, limit(max_file_size))?;
        setrlimit(Resource::Core, limit(0))?;
        setrlimit(Resource::Nofile, limit(MAX_OPEN_FILES))?;
        if as_nobody {
            setrlimit(Resource::Nproc, limit(MAX_PROCESSES))?;
        }
        Ok::<(), rustix::io::Errno>(())
    };
    // SAFETY: the hook runs in the forked child and only makes setrlimit system calls, which
    // are async-signal-safe; it allocates nothing and takes no locks.
    unsafe {
        command.pre_exec(move || hook().map_err(std::io::Error::from));
    }
}

/// Reads a stream to its end on its own thread, keeping the first [`MAX_OUTPUT`] bytes.
fn drain(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buffer = [0u8; 8192];
        while let Ok(read) = stream.read(&mut buffer) {
            if read == 0 {
                break;
            }
            let room = MAX_OUTPUT.saturating_sub(kept.len());
            kept.extend(buffer.iter().take(read.min(room)));
        }
        kept
    })
}

fn run_confined(invocation: &Invocation, limits: &Limits) -> Result<Finished, OverlayError> {
    let program = program_name(invocation);
    let as_root = rustix::process::geteuid().is_root();
    if as_root {
        isolate_network()?;
    }
    if limits.landlock {
        restrict_thread(invocation)?;
    }
    let work_dir = &invocation.work_dir;
    let mut command = Command::new(&invocation.program);
    command
        .arg(invocation.command)
        .env_clear()
        .env("PATH", "/nonexistent")
        .env("HOME", work_dir)
        .env("TMPDIR", work_dir)
        .env("LANG", "C.UTF-8")
        .current_dir(work_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if as_root {
        command.uid(NOBODY).gid(NOBODY);
    }
    limit_resources(&mut command, limits.max_file_size, as_root);
    let mut child = command.spawn().map_err(|source| OverlayError::Io {
        what: format!("starting the overlay installer {program}"),
        source,
    })?;
    let group = rustix::process::Pid::from_child(&child);
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    if let Some(mut stdin) = child.stdin.take() {
        // A program that does not read its input is its own business.
        let _ = stdin.write_all(&invocation.stdin);
    }
    let deadline = Instant::now() + limits.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(source) => {
                return Err(OverlayError::Io {
                    what: format!("waiting for the overlay installer {program}"),
                    source,
                });
            }
        }
    };
    // Whatever it left running goes with it; that also closes the pipes the readers wait on.
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    let _ = child.wait();
    let stdout = stdout
        .and_then(|reader| reader.join().ok())
        .unwrap_or_default();
    let stderr = stderr
        .and_then(|reader| reader.join().ok())
        .unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr).trim().to_string();
    match status {
        None => Err(OverlayError::TimedOut {
            program,
            command: invocation.command,
            limit: limits.timeout,
            stderr,
        }),
        Some(status) if !status.success() => Err(OverlayError::Failed {
            program,
            command: invocation.command,
            status: status.to_string(),
            stderr,
        }),
        Some(_) => Ok(Finished { stdout }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::scratch::Scratch;
    use crate::source::flatten::FileTree;

    /// A shell script run as `/bin/sh <command>` from the scratch working directory.
    fn run_script(script: &str, timeout: Duration) -> (Result<Finished, OverlayError>, Scratch) {
        let base = std::env::temp_dir().join("image-factory-confine-tests");
        let scratch = Scratch::create(&base, &FileTree::default(), 4096).unwrap();
        std::fs::write(scratch.work_dir().join("install"), script).unwrap();
        let system: Vec<PathBuf> = ["/usr", "/bin", "/lib", "/lib64"]
            .iter()
            .map(PathBuf::from)
            .filter(|path| path.exists())
            .collect();
        let result = run(
            Invocation {
                program: "/bin/sh".into(),
                command: "install",
                stdin: b"hello from the factory\n".to_vec(),
                work_dir: scratch.work_dir(),
                readable: system,
                writable: vec![scratch.disk(), scratch.mount_prefix()],
            },
            Limits {
                timeout,
                max_file_size: 1 << 20,
                landlock: true,
            },
        );
        (result, scratch)
    }

    #[test]
    fn a_confined_program_writes_only_where_it_may() {
        assert!(landlock_available(), "this kernel has no Landlock");
        let outside = std::env::temp_dir().join(format!(
            "image-factory-escape-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let script = format!(
            "read line\necho \"$line\"\necho inside > \"$HOME/inside\" || exit 3\n\
             echo image > ../image/file || exit 5\n\
             if echo escaped > {}; then exit 4; fi\n\
             if [ -n \"$CARGO\" ]; then exit 6; fi\n",
            outside.display()
        );
        let (result, scratch) = run_script(&script, Duration::from_secs(30));
        let finished = result.unwrap();
        assert_eq!(finished.stdout, b"hello from the factory\n");
        assert!(scratch.work_dir().join("inside").exists());
        assert!(scratch.mount_prefix().join("file").exists());
        assert!(!outside.exists(), "the program wrote {}", outside.display());
    }

    #[test]
    fn failures_and_overruns_carry_the_program_s_words() {
        let (result, _scratch) = run_script(
            "echo 'the board is on fire' >&2\nexit 1\n",
            Duration::from_secs(30),
        );
        let error = result.unwrap_err().to_string();
        assert!(
            error.contains("overlay installer sh install failed")
                && error.contains("the board is on fire"),
            "{error}"
        );
        let started = Instant::now();
        let (result, _scratch) = run_script(
            "echo 'going to sleep' >&2\n/bin/sleep 30\n",
            Duration::from_millis(500),
        );
        let error = result.unwrap_err().to_string();
        assert!(
            error.contains("did not finish within 500ms") && error.contains("going to sleep"),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_secs(20));
        let (result, _scratch) = run_script(
            "/usr/bin/head -c 2000000 /dev/zero > big || exit 7\n",
            Duration::from_secs(30),
        );
        let error = result.unwrap_err().to_string();
        assert!(error.contains("failed"), "{error}");
    }
}
