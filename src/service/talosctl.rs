//! talosctl downloads: the binaries of a release's `talosctl-all` image, listed and served
//! as upstream's `/talosctl/:version` routes do. The image is pulled (signature checked)
//! once per version and its binaries kept in the state directory, written atomically.

use super::{Factory, ServiceError, refused};
use crate::error::ErrorKind;
use crate::source::SourceError;
use crate::source::flatten::Entry;
use crate::version::{parse_strict, tag_of};
use semver::Version;
use std::path::{Path, PathBuf};

/// The first release that publishes `talosctl-all`.
const FIRST_VERSION: &str = "1.11.0-alpha.3";

/// Whether `version` publishes `talosctl-all`. [`FIRST_VERSION`] parses (a unit test pins
/// it); were it ever not to, no release would offer talosctl rather than the service panic.
fn publishes_talosctl(version: &Version) -> bool {
    Version::parse(FIRST_VERSION).is_ok_and(|first| *version >= first)
}

/// `talosctl-<os>-<arch>[.exe]`, the only names served.
pub fn is_binary_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("talosctl-") else {
        return false;
    };
    let rest = rest.strip_suffix(".exe").unwrap_or(rest);
    let parts: Vec<&str> = rest.split('-').collect();
    parts.len() == 2
        && parts.iter().all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
        })
}

/// A binary ready to be served.
#[derive(Debug, Clone)]
pub struct TalosctlBinary {
    pub path: PathBuf,
    pub size: u64,
}

impl Factory {
    /// The download URLs of `version`'s talosctl binaries, sorted; none before 1.11.
    pub async fn talosctl_urls(&self, version: &str) -> Result<Vec<String>, ServiceError> {
        let version = parse_strict(version).map_err(ServiceError::MalformedVersion)?;
        self.catalogs.require_available(&version).await?;
        if !publishes_talosctl(&version) {
            return Ok(Vec::new());
        }
        let dir = self.talosctl_dir(&version).await?;
        let base = self.config.http.external_url.trim_end_matches('/');
        let tag = tag_of(&version);
        Ok(binaries_in(&dir)
            .await?
            .into_iter()
            .map(|name| format!("{base}/talosctl/{tag}/{name}"))
            .collect())
    }

    /// One binary of `version`; a name that is not one of its binaries is not found.
    pub async fn talosctl_binary(
        &self,
        version: &str,
        name: &str,
    ) -> Result<TalosctlBinary, ServiceError> {
        let version = parse_strict(version).map_err(ServiceError::MalformedVersion)?;
        self.catalogs.require_available(&version).await?;
        if !publishes_talosctl(&version) {
            return Err(not_available(&version));
        }
        let dir = self.talosctl_dir(&version).await?;
        let not_found = || refused(ErrorKind::NotFound, format!("talosctl {name} not found"));
        if !is_binary_name(name) {
            return Err(not_found());
        }
        let path = dir.join(name);
        match tokio::fs::metadata(&path).await {
            Ok(metadata) if metadata.is_file() => Ok(TalosctlBinary {
                path,
                size: metadata.len(),
            }),
            _ => Err(not_found()),
        }
    }

    /// The directory holding `version`'s binaries, extracted on first use (one extraction
    /// at a time).
    async fn talosctl_dir(&self, version: &Version) -> Result<PathBuf, ServiceError> {
        let root = self.config.storage.dir.join("talosctl");
        let dir = root.join(tag_of(version));
        if tokio::fs::metadata(&dir).await.is_ok() {
            return Ok(dir);
        }
        let _extracting = self.talosctl_extraction.lock().await;
        if tokio::fs::metadata(&dir).await.is_ok() {
            return Ok(dir);
        }
        let image = self.catalogs.core_image(
            &self.config.artifacts.core.components.talosctl,
            &tag_of(version),
        );
        let pulled = match self.images.pull(&image, "amd64").await {
            Ok(pulled) => pulled,
            Err(SourceError::NotFound(_)) => return Err(not_available(version)),
            Err(error) => return Err(error.into()),
        };
        let files: Vec<(String, Vec<u8>)> = pulled
            .tree
            .entries()
            .iter()
            .filter(|(path, _)| is_binary_name(path))
            .filter_map(|(path, entry)| match entry {
                Entry::File { data, .. } => Some((path.clone(), data.clone())),
                _ => None,
            })
            .collect();
        let target = dir.clone();
        tokio::task::spawn_blocking(move || write_atomically(&root, &target, &files)).await??;
        Ok(dir)
    }
}

fn not_available(version: &Version) -> ServiceError {
    refused(
        ErrorKind::NotFound,
        format!("version {version} is not available"),
    )
}

/// Writes the files into a scratch directory beside `dir`, then renames it into place.
fn write_atomically(
    root: &Path,
    dir: &Path,
    files: &[(String, Vec<u8>)],
) -> Result<(), ServiceError> {
    let unreadable = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ServiceError::Unreadable { path, source }
    };
    std::fs::create_dir_all(root).map_err(unreadable(root))?;
    let scratch = root.join(format!(".extract-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&scratch).map_err(unreadable(&scratch))?;
    let written = files.iter().try_for_each(|(name, data)| {
        let path = scratch.join(name);
        std::fs::write(&path, data).map_err(unreadable(&path))
    });
    let renamed = written.and_then(|()| std::fs::rename(&scratch, dir).map_err(unreadable(dir)));
    if renamed.is_err() {
        let _ = std::fs::remove_dir_all(&scratch);
        // Another replica of this process may have won the race with the same content.
        if dir.is_dir() {
            return Ok(());
        }
    }
    renamed
}

async fn binaries_in(dir: &Path) -> Result<Vec<String>, ServiceError> {
    let unreadable = |source| ServiceError::Unreadable {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = tokio::fs::read_dir(dir).await.map_err(unreadable)?;
    let mut names = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(unreadable)? {
        if let Some(name) = entry.file_name().to_str()
            && is_binary_name(name)
        {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::{FIRST_VERSION, Version, is_binary_name, publishes_talosctl};

    #[test]
    fn talosctl_from_the_first_publishing_release() {
        assert!(Version::parse(FIRST_VERSION).is_ok());
        for (version, publishes) in [
            ("1.10.5", false),
            ("1.11.0-alpha.2", false),
            ("1.11.0-alpha.3", true),
            ("1.11.0", true),
            ("1.12.1", true),
        ] {
            let version = Version::parse(version).unwrap();
            assert_eq!(publishes_talosctl(&version), publishes, "{version}");
        }
    }

    #[test]
    fn only_talosctl_binary_names() {
        for name in [
            "talosctl-linux-amd64",
            "talosctl-linux-armv7",
            "talosctl-windows-arm64.exe",
        ] {
            assert!(is_binary_name(name), "{name}");
        }
        for name in [
            "LICENSE",
            "talosctl",
            "talosctl-linux",
            "talosctl-linux-amd64-extra",
            "talosctl-../etc-passwd",
            "talosctl-linux-amd64/",
            "talosctl-Linux-amd64",
            "talosctl--amd64",
        ] {
            assert!(!is_binary_name(name), "{name}");
        }
    }
}
