//! The README's shell examples, run as written against a factory started the way `make run`
//! starts it: every `curl`, `skopeo` and `sbverify` line that talks to the local factory must
//! succeed (curl with `--fail-with-body`, so a 400 fails the test), in the README's order.

use std::path::Path;
use std::process::Command;

/// The README's address; the test's factory listens elsewhere, and the commands are rewritten
/// to it.
const README_ADDRESS: &str = "127.0.0.1:8080";

/// One command of a `sh` block: its line(s), with continuation lines and heredoc bodies.
fn commands(readme: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if !in_block {
            in_block = line.trim_start() == "```sh";
            continue;
        }
        if line.trim_start().starts_with("```") {
            in_block = false;
            continue;
        }
        let mut command = line.to_string();
        while command.ends_with('\\') {
            match lines.next() {
                Some(next) => {
                    command.push('\n');
                    command.push_str(next);
                }
                None => break,
            }
        }
        if let Some(marker) = heredoc_marker(&command) {
            for body in lines.by_ref() {
                command.push('\n');
                command.push_str(body);
                if body.trim() == marker {
                    break;
                }
            }
        }
        commands.push(command);
    }
    commands
}

/// `EOF` of `cat > x <<'EOF'`.
fn heredoc_marker(command: &str) -> Option<String> {
    let (_, rest) = command.split_once("<<")?;
    let marker = rest.trim().trim_matches('\'').trim_matches('"');
    let marker = marker.split_whitespace().next()?;
    Some(marker.to_string())
}

/// Whether a command is for this test: it talks to the local factory or works on what an
/// earlier one downloaded. Starting servers (`make`), upstream-flag and mirror examples,
/// talosctl (not packaged), the second replica of `make run-cluster` and remote registries
/// are left to the tests of their own.
fn runs_here(command: &str) -> bool {
    let first = command.trim_start();
    if first.is_empty() || first.starts_with('#') {
        return false;
    }
    let skipped_programs = ["make ", "image-factory", "talosctl "];
    if skipped_programs
        .iter()
        .any(|program| first.starts_with(program))
    {
        return false;
    }
    if command.contains("registry.example") || command.contains("127.0.0.1:8081") {
        return false;
    }
    ["curl ", "ID=", "cat >", "skopeo ", "sbverify "]
        .iter()
        .any(|start| first.starts_with(start))
}

/// Downloads larger than this (MiB) are removed after the command that made them.
const BULKY_MIB: u64 = 64;

#[test]
fn readme_commands_run_as_written() {
    let workspace = assets_tests::workspace();
    let readme = std::fs::read_to_string(workspace.join("README.md")).expect("README.md");
    let all = commands(&readme);
    let selected: Vec<&String> = all.iter().filter(|command| runs_here(command)).collect();
    assert!(
        selected.len() >= 40,
        "only {} of the README's {} commands were found to run: the parser lost some",
        selected.len(),
        all.len()
    );

    let state = tempfile::tempdir().expect("state directory");
    let work = tempfile::tempdir().expect("work directory");
    let address = assets_tests::free_loopback_address();
    // As `make run`: the fixture configuration, the external URL on the listen address.
    let mut server = Command::new(assets_tests::factory_binary())
        .arg("-external-url")
        .arg(format!("http://{address}/"))
        .arg("--config")
        .arg(workspace.join("fixtures/factory.yaml"))
        .arg("--listen")
        .arg(&address)
        .arg("--state-dir")
        .arg(state.path())
        .current_dir(&workspace)
        .env("IMAGE_FACTORY_LOG", "warn")
        .spawn()
        .expect("image-factory starts");
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the factory did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::os::unix::fs::symlink(workspace.join("fixtures"), work.path().join("fixtures"))
        .expect("fixtures link");

    let mut script = String::from(
        "set -euo pipefail\n\
         curl() { command curl --fail-with-body -sS \"$@\"; }\n",
    );
    for command in &selected {
        let command = command.replace(README_ADDRESS, &address);
        // A fixed VHD downloads at its full disk size; the harness drops such files once
        // their command has passed, so the suite's peak disk use stays small.
        script.push_str(&format!(
            "echo {quoted} >&2\n{command}\necho >&2\n\
             find . -maxdepth 1 -type f -size +{BULKY_MIB}M -delete\n",
            quoted = shell_quote(&format!("$ {}", command.lines().next().unwrap_or_default()))
        ));
    }
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .output()
        .expect("bash runs");
    let _ = server.kill();
    let _ = server.wait();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "a README command failed ({}):\n{}",
        output.status,
        log.lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    for download in [
        "kernel-amd64",
        "metal-amd64.iso",
        "metal-amd64-secureboot-uki.efi",
    ] {
        let size = std::fs::metadata(work.path().join(download)).map_or(0, |meta| meta.len());
        assert!(size > 0, "{download} was not downloaded");
    }
    assert!(
        Path::new(&work.path().join("installer")).exists(),
        "skopeo copied the installer"
    );
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[test]
fn the_parser_keeps_heredocs_and_continuations_whole() {
    let readme = "text\n```sh\ncurl -X POST --data-binary @- http://x <<'EOF'\na: b\nEOF\nimage-factory \\\n  -flag v\n# note\n```\n";
    let found = commands(readme);
    assert_eq!(
        found,
        [
            "curl -X POST --data-binary @- http://x <<'EOF'\na: b\nEOF",
            "image-factory \\\n  -flag v",
            "# note"
        ]
    );
    assert!(runs_here(&found[0]));
    assert!(!runs_here(&found[1]));
    assert!(!runs_here(&found[2]));
}
