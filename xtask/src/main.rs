//! Developer tasks for the image-factory workspace (`cargo xtask <task>`); never shipped.

mod bench;
mod fixtures;
mod fuzz;
mod panic_audit;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  lint               cargo fmt --check, cargo clippy -D warnings over the whole workspace, and
                     a check that the library still denies panicking on input (src/lib.rs)
                     with every indexing opt-out explained
  bench-compare      time our CLI and the standard-tools pipeline on the same inputs
  fixtures [--force] generate fixtures/release/ (the Talos-shaped OCI release the tests and
                     `make run` use) from Debian packages; skipped when already up to date
  fuzz [--seconds N] [--target T]... [--jobs J]
                     build the AFL targets of fuzz/ with cargo-afl and run each N seconds
                     (default 60); crashing inputs are copied to fuzz/regressions/
";

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    let result = match task.as_deref() {
        Some("lint") => lint(),
        Some("bench-compare") => bench::compare(&workspace()),
        Some("fixtures") => {
            let force = std::env::args().any(|arg| arg == "--force");
            fixtures::generate(&workspace(), force)
        }
        Some("fuzz") => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            fuzz::run(&workspace(), &args)
        }
        Some("help" | "--help" | "-h") => {
            eprint!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown task {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
fn workspace() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

fn lint() -> Result<(), String> {
    let problems = panic_audit::check(&workspace().join("src"))?;
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("{problem}");
        }
        return Err(format!(
            "{} panic-lint problem(s) in src/ (see xtask/src/panic_audit.rs)",
            problems.len()
        ));
    }
    run(Command::new("cargo").args(["fmt", "--all", "--", "--check"]))?;
    run(Command::new("cargo").args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}

fn run(command: &mut Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|error| format!("cannot run {command:?}: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed with {status}"))
    }
}
