//! `cargo xtask fuzz`: builds the AFL binaries of `fuzz/` with cargo-afl (coverage-guided,
//! on the stable toolchain) into `target/afl/`, runs each target for a set time starting
//! from its committed seed corpus, prints executions, coverage, crashes and hangs per
//! target, and copies every crashing input to `fuzz/regressions/<target>/`, where the
//! corpus replay test of the normal suite keeps failing until the parser is fixed.

use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What one run asks for.
#[derive(Debug)]
struct Options {
    seconds: u64,
    targets: Vec<String>,
    jobs: usize,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        seconds: 60,
        targets: Vec::new(),
        // Two fuzzers at once: the machines this runs on have few cores, shared with builds.
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get().min(2)),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--seconds" => {
                let text = value("--seconds")?;
                options.seconds = text
                    .parse()
                    .map_err(|_| format!("--seconds {text:?}: not a number of seconds"))?;
            }
            "--target" => options.targets.push(value("--target")?),
            "--jobs" => {
                let text = value("--jobs")?;
                options.jobs = text
                    .parse()
                    .ok()
                    .filter(|&jobs| jobs > 0)
                    .ok_or_else(|| format!("--jobs {text:?}: not a positive number"))?;
            }
            other => return Err(format!("fuzz: unknown argument {other:?}")),
        }
    }
    Ok(options)
}

/// Every target: the binaries under `fuzz/src/bin/`, by name.
fn all_targets(workspace: &Path) -> Result<Vec<String>, String> {
    let dir = workspace.join("fuzz/src/bin");
    let entries = std::fs::read_dir(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    names.sort();
    Ok(names)
}

pub fn run(workspace: &Path, args: &[String]) -> Result<(), String> {
    let mut options = parse_options(args)?;
    let known = all_targets(workspace)?;
    if options.targets.is_empty() {
        options.targets = known.clone();
    }
    if let Some(unknown) = options
        .targets
        .iter()
        .find(|target| !known.contains(target))
    {
        return Err(format!(
            "no fuzz target {unknown:?}; targets: {}",
            known.join(", ")
        ));
    }
    let started = Instant::now();
    ensure_cargo_afl()?;
    let afl_dir = workspace.join("target/afl");
    build(workspace, &afl_dir)?;
    let built = started.elapsed();

    let mut results = Vec::new();
    let mut pending: Vec<&String> = options.targets.iter().collect();
    let mut running: Vec<(String, Child)> = Vec::new();
    while !pending.is_empty() || !running.is_empty() {
        while running.len() < options.jobs
            && let Some(target) = pending.first().copied()
        {
            pending.remove(0);
            running.push((
                target.clone(),
                start(workspace, &afl_dir, target, options.seconds)?,
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut index = 0;
        while index < running.len() {
            let finished = running[index]
                .1
                .try_wait()
                .map_err(|error| format!("waiting for afl-fuzz: {error}"))?;
            match finished {
                None => index += 1,
                Some(status) => {
                    let (target, _) = running.remove(index);
                    results.push(collect(workspace, &afl_dir, &target, status.success())?);
                }
            }
        }
    }
    results.sort_by(|a, b| a.target.cmp(&b.target));
    let table = table(&results);
    eprint!("{table}");
    let summary = afl_dir.join("summary.txt");
    std::fs::write(&summary, &table).map_err(|error| format!("{}: {error}", summary.display()))?;
    eprintln!(
        "fuzz: build {:.0} s, total {:.0} s; summary in {}",
        built.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        summary.display()
    );
    let crashed: Vec<&Outcome> = results.iter().filter(|r| r.crashes > 0).collect();
    if let Some(failed) = results.iter().find(|r| !r.ran) {
        return Err(format!(
            "afl-fuzz did not run {}: see {}",
            failed.target,
            afl_dir
                .join("out")
                .join(format!("{}.log", failed.target))
                .display()
        ));
    }
    if crashed.is_empty() {
        Ok(())
    } else {
        let mut message = String::from("crashes found; inputs copied for commit:\n");
        for outcome in crashed {
            for file in &outcome.saved {
                let _ = writeln!(message, "  {}", file.display());
            }
        }
        Err(message)
    }
}

/// cargo-afl from crates.io when it is missing: it builds its own AFL++ (afl-fuzz and the
/// runtime the binaries link) for this rustc when installed.
fn ensure_cargo_afl() -> Result<(), String> {
    let installed = Command::new("cargo")
        .args(["afl", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if installed {
        return Ok(());
    }
    eprintln!("fuzz: installing cargo-afl");
    super::run(Command::new("cargo").args(["install", "--locked", "cargo-afl"]))
}

/// The instrumented binaries, in their own target directory (their RUSTFLAGS differ, so
/// sharing `target/` would rebuild everything both ways).
fn build(workspace: &Path, afl_dir: &Path) -> Result<(), String> {
    eprintln!(
        "fuzz: building the instrumented targets in {}",
        afl_dir.display()
    );
    super::run(
        Command::new("cargo")
            .current_dir(workspace)
            .args(["afl", "build", "--locked", "--release", "--bins"])
            .args(["--package", "image-factory-fuzz", "--features", "afl"])
            .arg("--target-dir")
            .arg(afl_dir)
            // Optimised code finds more per second than it costs to build: level 2 over
            // cargo-afl's 3 saves build minutes for little speed.
            .env("AFL_OPT_LEVEL", "2"),
    )
}

fn out_dir(afl_dir: &Path, target: &str) -> PathBuf {
    afl_dir.join("out").join(target)
}

/// Starts `afl-fuzz` on `target` for `seconds`, from a fresh output directory.
fn start(workspace: &Path, afl_dir: &Path, target: &str, seconds: u64) -> Result<Child, String> {
    let out = out_dir(afl_dir, target);
    let scratch = afl_dir.join("scratch").join(target);
    for dir in [&out, &scratch] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(&out).map_err(|error| format!("{}: {error}", out.display()))?;
    let log_path = afl_dir.join("out").join(format!("{target}.log"));
    let log = std::fs::File::create(&log_path)
        .map_err(|error| format!("{}: {error}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|error| format!("{}: {error}", log_path.display()))?;
    eprintln!("fuzz: {target} for {seconds} s");
    Command::new("cargo")
        .current_dir(workspace)
        .args(["afl", "fuzz", "-V", &seconds.to_string()])
        // A millisecond budget per input: enough on a loaded machine for inputs of the
        // sizes the seeds have, short enough that a real hang is caught.
        .args(["-t", "2000", "-m", "2048"])
        .arg("-i")
        .arg(workspace.join("fuzz/corpus").join(target))
        .arg("-o")
        .arg(&out)
        .arg(afl_dir.join("release").join(target))
        // No terminal UI, no CPU-governor or core-dump-pattern checks (the machine is not
        // ours to tune), no pinning to a core other builds share.
        .env("AFL_NO_UI", "1")
        .env("AFL_SKIP_CPUFREQ", "1")
        .env("AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES", "1")
        .env("AFL_NO_AFFINITY", "1")
        .env("AFL_FAST_CAL", "1")
        .env("IMAGE_FACTORY_FUZZ_SCRATCH", &scratch)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|error| format!("cannot start cargo afl fuzz: {error}"))
}

/// One target's run, as `fuzzer_stats` records it.
#[derive(Debug)]
struct Outcome {
    target: String,
    ran: bool,
    execs: u64,
    corpus: u64,
    edges: u64,
    total_edges: u64,
    crashes: u64,
    hangs: u64,
    saved: Vec<PathBuf>,
}

fn collect(workspace: &Path, afl_dir: &Path, target: &str, ok: bool) -> Result<Outcome, String> {
    let default = out_dir(afl_dir, target).join("default");
    let stats = std::fs::read_to_string(default.join("fuzzer_stats")).unwrap_or_default();
    let field = |name: &str| {
        stats
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(key, _)| key.trim() == name)
            .and_then(|(_, value)| value.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut saved = Vec::new();
    let crashes_dir = default.join("crashes");
    if let Ok(entries) = std::fs::read_dir(&crashes_dir) {
        let regressions = workspace.join("fuzz/regressions").join(target);
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            // AFL's crash directory holds a README beside the inputs.
            if !entry.file_name().to_string_lossy().starts_with("id:") {
                continue;
            }
            let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let hash = Sha256::digest(&data);
            let name: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
            std::fs::create_dir_all(&regressions)
                .map_err(|error| format!("{}: {error}", regressions.display()))?;
            let copy = regressions.join(format!("crash-{name}"));
            std::fs::write(&copy, &data).map_err(|e| format!("{}: {e}", copy.display()))?;
            saved.push(copy);
        }
    }
    Ok(Outcome {
        target: target.to_string(),
        ran: ok && !stats.is_empty(),
        execs: field("execs_done"),
        corpus: field("corpus_count"),
        edges: field("edges_found"),
        total_edges: field("total_edges"),
        crashes: field("saved_crashes"),
        hangs: field("saved_hangs"),
        saved,
    })
}

fn table(results: &[Outcome]) -> String {
    let mut out = format!(
        "{:<14} {:>12} {:>8} {:>15} {:>8} {:>6}\n",
        "target", "executions", "corpus", "edges", "crashes", "hangs"
    );
    for r in results {
        let edges = format!("{}/{}", r.edges, r.total_edges);
        let _ = writeln!(
            out,
            "{:<14} {:>12} {:>8} {:>15} {:>8} {:>6}",
            r.target, r.execs, r.corpus, edges, r.crashes, r.hangs
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let args: Vec<String> = ["--seconds", "15", "--target", "cpio", "--jobs", "1"]
            .map(String::from)
            .to_vec();
        let options = parse_options(&args).unwrap();
        assert_eq!((options.seconds, options.jobs), (15, 1));
        assert_eq!(options.targets, ["cpio"]);
        assert!(parse_options(&["--seconds".into(), "x".into()]).is_err());
        assert!(parse_options(&["--jobs".into(), "0".into()]).is_err());
        assert!(parse_options(&["--what".into()]).is_err());
    }

    #[test]
    fn every_target_has_a_corpus() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let targets = all_targets(&workspace).unwrap();
        assert!(targets.len() >= 11, "{targets:?}");
        for target in targets {
            assert!(
                workspace.join("fuzz/corpus").join(&target).is_dir(),
                "{target}"
            );
        }
    }
}
