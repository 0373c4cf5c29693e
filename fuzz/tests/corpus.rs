//! Every file of the committed seed corpus (`corpus/<target>/`) and of the crash
//! regressions (`regressions/<target>/`) goes through its target: a crash the fuzzer once
//! found fails this test until the parser is fixed.

use image_factory_fuzz::seeds;
use image_factory_fuzz::targets::TARGETS;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files directly under `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
                .path()
        })
        .filter(|path| path.is_file() && !path.ends_with("README.md"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_and_regression_passes_its_target() {
    let mut failures = Vec::new();
    for &(name, target) in TARGETS {
        let seeds = files(&root().join("corpus").join(name));
        assert!(
            seeds.len() >= 3,
            "target {name} has {} seeds, want at least 3",
            seeds.len()
        );
        for file in seeds
            .iter()
            .chain(&files(&root().join("regressions").join(name)))
        {
            let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "inputs that crash their target: {failures:#?}"
    );
}

#[test]
fn no_corpus_directory_lacks_a_target() {
    for dir in ["corpus", "regressions"] {
        for entry in files(&root().join(dir))
            .iter()
            .chain(&dirs(&root().join(dir)))
        {
            let name = entry
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            assert!(
                TARGETS.iter().any(|(target, _)| *target == name),
                "{dir}/{name} belongs to no target"
            );
        }
    }
}

fn dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect()
}

/// The binary seeds are the generator's bytes (`FUZZ_WRITE_SEEDS=1` rewrites them).
#[test]
fn binary_seeds_are_the_generated_ones() {
    let write = std::env::var_os("FUZZ_WRITE_SEEDS").is_some();
    for seed in seeds::binary() {
        let path = root().join("corpus").join(seed.target).join(seed.name);
        if write {
            std::fs::create_dir_all(path.parent().unwrap_or(&path))
                .and_then(|()| std::fs::write(&path, &seed.bytes))
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        }
        let committed =
            std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert!(
            committed == seed.bytes,
            "{} differs from its generator",
            path.display()
        );
    }
}

/// The targets are not vacuous: each seed of a binary format gets past its parser's
/// front door, so the fuzzer starts from inputs that reach the code under test.
#[test]
fn binary_seeds_parse() {
    use image_factory::engine::elf::{Elf, Expected};
    for seed in seeds::binary() {
        let ok = match seed.target {
            "elf" => Elf::parse(&seed.bytes, Expected::ANY).is_ok(),
            "pe" => image_factory::engine::boot::pe::authenticode_sha256(&seed.bytes).is_ok(),
            "cpio" => image_factory::engine::fs::cpio::read_newc(&seed.bytes).is_ok(),
            "squashfs" => {
                backhand::FilesystemReader::from_reader(std::io::Cursor::new(&seed.bytes)).is_ok()
            }
            "tar_layer" => image_factory::source::flatten::FileTree::default()
                .apply_layer("seed", "", &seed.bytes)
                .is_ok(),
            other => panic!("no check for {other}"),
        };
        assert!(ok, "seed {}/{} does not parse", seed.target, seed.name);
    }
}
