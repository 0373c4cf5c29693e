//! The part of `cargo xtask lint` that clippy cannot do: keeping the library's panic lints
//! switched on. Clippy checks the code against the lints `src/lib.rs` denies, but it does not
//! notice when the deny goes away, when a module opts out of `indexing_slicing` without saying
//! why, or when an `allow` silences `unwrap_used` and its kin.

use std::path::{Path, PathBuf};

/// The lints `src/lib.rs` must deny for the whole library.
pub const DENIED: [&str; 5] = [
    "clippy::unwrap_used",
    "clippy::expect_used",
    "clippy::panic",
    "clippy::unreachable",
    "clippy::indexing_slicing",
];

/// Lints no library module may allow: the tests get their leeway from `clippy.toml`.
const NEVER_ALLOWED: [&str; 4] = [
    "clippy::unwrap_used",
    "clippy::expect_used",
    "clippy::panic",
    "clippy::unreachable",
];

/// Every violation in the library sources under `src`, one line each (`path:line: what`).
pub fn check(src: &Path) -> Result<Vec<String>, String> {
    let mut files = Vec::new();
    collect(src, &mut files)?;
    files.sort();
    let mut problems = Vec::new();
    let lib = src.join("lib.rs");
    for path in files {
        let text = std::fs::read_to_string(&path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let shown = path
            .strip_prefix(src.parent().unwrap_or(src))
            .unwrap_or(&path);
        if path == lib {
            problems.extend(
                missing_denies(&text).map(|lint| {
                    format!("{}: the library no longer denies {lint}", shown.display())
                }),
            );
        }
        problems.extend(
            file_problems(&text)
                .into_iter()
                .map(|(line, what)| format!("{}:{line}: {what}", shown.display())),
        );
    }
    Ok(problems)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|error| format!("cannot list {}: {error}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|error| format!("cannot list {}: {error}", dir.display()))?
            .path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// The lints of [`DENIED`] that no `#![deny(...)]` of the crate root names.
fn missing_denies(lib: &str) -> impl Iterator<Item = &'static str> + '_ {
    let denied: String = lib
        .split("#![deny(")
        .skip(1)
        .filter_map(|rest| rest.split(")]").next())
        .collect();
    DENIED
        .into_iter()
        .filter(move |lint| !denied.split([',', ' ', '\n']).any(|name| name == *lint))
}

/// `(line number, what is wrong)` for each opt-out in one file that is forbidden or
/// carries no reason.
fn file_problems(text: &str) -> Vec<(usize, String)> {
    let mut problems = Vec::new();
    let mut previous = "";
    for (index, line) in text.lines().enumerate() {
        let code = line.trim();
        if let Some(lints) = allowed_lints(code) {
            for lint in NEVER_ALLOWED {
                if lints.split([',', ' ']).any(|name| name == lint) {
                    problems.push((index + 1, format!("allows {lint}")));
                }
            }
            let indexing = lints
                .split([',', ' '])
                .any(|name| name == "clippy::indexing_slicing");
            if indexing && !previous.starts_with("//") {
                problems.push((
                    index + 1,
                    "allows clippy::indexing_slicing without a `//` comment above saying why"
                        .to_string(),
                ));
            }
        }
        if !code.is_empty() {
            previous = code;
        }
    }
    problems
}

/// The lint list of an `#[allow(...)]` or `#![allow(...)]` line.
fn allowed_lints(code: &str) -> Option<&str> {
    let rest = code
        .strip_prefix("#![allow(")
        .or_else(|| code.strip_prefix("#[allow("))?;
    Some(rest.split(")]").next().unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crate_root_must_deny_every_lint() {
        let all = "//! Docs.\n#![deny(\n    clippy::unwrap_used,\n    clippy::expect_used,\n    \
                   clippy::panic,\n    clippy::unreachable,\n    clippy::indexing_slicing\n)]\n";
        assert_eq!(missing_denies(all).count(), 0);
        let partial = "#![deny(clippy::unwrap_used, clippy::panic)]\n";
        assert_eq!(
            missing_denies(partial).collect::<Vec<_>>(),
            [
                "clippy::expect_used",
                "clippy::unreachable",
                "clippy::indexing_slicing"
            ]
        );
    }

    #[test]
    fn opt_outs_need_a_reason_and_some_are_never_allowed() {
        let text = "//! A writer.\n// Indices come from its own layout.\n\
                    #![allow(clippy::indexing_slicing)]\n\nfn a() {}\n\n\
                    #[allow(clippy::indexing_slicing)]\nfn b() {}\n\
                    // Reason.\n#[allow(clippy::unwrap_used)]\nfn c() {}\n";
        assert_eq!(
            file_problems(text),
            [
                (
                    7,
                    "allows clippy::indexing_slicing without a `//` comment above saying why"
                        .to_string()
                ),
                (10, "allows clippy::unwrap_used".to_string()),
            ]
        );
    }
}
