//! Overlays in the service: the catalog entry of a schematic's overlay, pinned by digest;
//! its image pulled for this machine's architecture (to run the installer) and for the
//! target's (the installer image's payload); the board options `get-options` answers, kept
//! per image, board and options; and the `install` run a disk image is built around.

use super::plan::Plan;
use super::{Factory, ServiceError, refused};
use crate::config::Config;
use crate::engine::layout::disk::DiskOverlay;
use crate::error::ErrorKind;
use crate::overlay::OverlayError;
use crate::overlay::confine::{self, Invocation, Limits};
use crate::overlay::profile::{self, BoardProfile};
use crate::overlay::protocol::{self, BoardOptions};
use crate::overlay::scratch::Scratch;
use crate::profile::{Arch, TalosVersion};
use crate::schematic::Schematic;
use crate::source::ImageRef;
use crate::source::flatten::{Entry, FileTree};
use crate::source::oci::Digest;
use bytes::Bytes;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// `get-options` answers kept; past this many (distinct options from many schematics) the
/// memory starts over rather than grow without bound.
const KEPT_ANSWERS: usize = 1024;

/// The largest file `get-options` may write; it has no reason to write any.
const GET_OPTIONS_MAX_FILE: u64 = 16 << 20;

/// A schematic's overlay, resolved for one request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OverlayPlan {
    /// The board: the installer's and the profile's name.
    pub name: String,
    /// The overlay image, pinned by digest.
    pub image: ImageRef,
    /// The schematic's `overlay.options` as YAML (the installer image's `extra-options`).
    pub options_yaml: String,
    pub board: BoardOptions,
    pub profile: BoardProfile,
}

/// An overlay image, a board and its options' YAML: what a `get-options` answer depends on.
type AnswerKey = (String, String, String);

/// How overlay installers run on this factory, and the board options already asked for.
#[derive(Debug)]
pub struct Overlays {
    landlock: bool,
    allow_unconfined: bool,
    timeout: Duration,
    max_write: u64,
    scratch: PathBuf,
    answers: Mutex<HashMap<AnswerKey, (BoardOptions, BoardProfile)>>,
}

/// This machine's architecture, the one whose installer program can run here.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}

impl Overlays {
    /// Probes the kernel for Landlock and says at start-up what that means for overlays.
    pub fn from_config(config: &Config) -> Result<Overlays, String> {
        let build = &config.build;
        let landlock = confine::landlock_available();
        if !landlock && build.allow_unconfined_overlays {
            tracing::warn!(
                "this kernel has no Landlock: overlay installers will run unconfined \
                 (build.allowUnconfinedOverlays)"
            );
        } else if !landlock {
            tracing::warn!(
                "this kernel has no Landlock: schematics with an overlay are refused \
                 (set build.allowUnconfinedOverlays to run overlay installers unconfined)"
            );
        }
        Ok(Overlays {
            landlock,
            allow_unconfined: build.allow_unconfined_overlays,
            timeout: build.overlay_timeout().map_err(|error| error.0)?,
            max_write: build.overlay_installer_max_write,
            scratch: std::env::temp_dir().join("image-factory-overlays"),
            answers: Mutex::new(HashMap::new()),
        })
    }

    fn limits(&self, max_file_size: u64) -> Result<Limits, OverlayError> {
        if !self.landlock && !self.allow_unconfined {
            return Err(OverlayError::Unconfined);
        }
        Ok(Limits {
            timeout: self.timeout,
            max_file_size,
            landlock: self.landlock,
        })
    }
}

fn image_problem(image: &ImageRef, reason: String) -> ServiceError {
    OverlayError::Image {
        image: image.to_string(),
        reason,
    }
    .into()
}

impl Factory {
    /// The overlay of a request's schematic, checked against the version's catalog and the
    /// overlay image, with the board options its installer answers for the schematic's
    /// options. `None` without an overlay.
    pub(super) async fn overlay_plan(
        &self,
        schematic: &Schematic,
        version: &TalosVersion,
    ) -> Result<Option<OverlayPlan>, ServiceError> {
        let overlay = &schematic.overlay;
        if overlay.name.is_empty() {
            return Ok(None);
        }
        let catalog = self.catalogs.overlays(&version.version).await?;
        let entry = catalog
            .iter()
            .find(|entry| entry.name == overlay.name)
            .ok_or_else(|| {
                refused(
                    ErrorKind::InvalidInput,
                    format!(
                        "overlay {:?} is not available for Talos version {}",
                        overlay.name,
                        version.tag()
                    ),
                )
            })?;
        let digest = Digest::parse(&entry.digest).map_err(|reason| ServiceError::BrokenImage {
            image: format!("overlays catalog entry {}", entry.name),
            reason,
        })?;
        let image = self
            .catalogs
            .core_image(&entry.image, "pinned")
            .with_digest(digest);
        let options_yaml = protocol::options_yaml(&overlay.options);
        let key = (
            image.to_string(),
            overlay.name.clone(),
            options_yaml.clone(),
        );
        let known = self
            .overlays
            .answers
            .lock()
            .ok()
            .and_then(|answers| answers.get(&key).cloned());
        let (board, profile) = match known {
            Some(answer) => answer,
            None => {
                let answer = self
                    .ask_board_options(&image, &overlay.name, &options_yaml)
                    .await?;
                if let Ok(mut answers) = self.overlays.answers.lock() {
                    if answers.len() >= KEPT_ANSWERS {
                        answers.clear();
                    }
                    answers.insert(key, answer.clone());
                }
                answer
            }
        };
        Ok(Some(OverlayPlan {
            name: overlay.name.clone(),
            image,
            options_yaml,
            board,
            profile,
        }))
    }

    /// Pulls the overlay for this machine and checks it has the board's installer and
    /// profile.
    async fn host_overlay(&self, image: &ImageRef, name: &str) -> Result<FileTree, ServiceError> {
        let tree = self.images.pull(image, host_arch()).await?.tree;
        if !matches!(
            tree.get(&format!("installers/{name}")),
            Some(Entry::File { .. })
        ) {
            return Err(image_problem(
                image,
                format!("no installer {name:?} (installers/{name})"),
            ));
        }
        if tree.file(&format!("profiles/{name}.yaml")).is_none() {
            return Err(image_problem(
                image,
                format!("no profile for {name:?} (profiles/{name}.yaml)"),
            ));
        }
        Ok(tree)
    }

    async fn ask_board_options(
        &self,
        image: &ImageRef,
        name: &str,
        options_yaml: &str,
    ) -> Result<(BoardOptions, BoardProfile), ServiceError> {
        let tree = self.host_overlay(image, name).await?;
        let profile = profile::parse(
            &image.to_string(),
            name,
            tree.file(&format!("profiles/{name}.yaml"))
                .unwrap_or_default(),
        )?;
        let limits = self.overlays.limits(GET_OPTIONS_MAX_FILE)?;
        let base = self.overlays.scratch.clone();
        let name = name.to_string();
        let stdin = options_yaml.as_bytes().to_vec();
        let board = tokio::task::spawn_blocking(move || {
            let scratch = Scratch::create(&base, &tree, 0)?;
            let finished = confine::run(
                Invocation {
                    program: scratch.installer(&name),
                    command: protocol::GET_OPTIONS,
                    stdin,
                    work_dir: scratch.work_dir(),
                    readable: vec![scratch.overlay()],
                    writable: Vec::new(),
                },
                limits,
            )?;
            protocol::parse_board_options(&name, &finished.stdout)
        })
        .await??;
        Ok((board, profile))
    }

    /// Runs the overlay's `install` against a sparse image file of `disk_size` bytes and
    /// reads back what it wrote into the image and into the ESP.
    pub(super) async fn overlay_install(
        &self,
        overlay: &OverlayPlan,
        schematic: &Schematic,
        disk_size: u64,
    ) -> Result<DiskOverlay, ServiceError> {
        let tree = self.host_overlay(&overlay.image, &overlay.name).await?;
        let limits = self.overlays.limits(disk_size)?;
        let max_write = self.overlays.max_write;
        let base = self.overlays.scratch.clone();
        let name = overlay.name.clone();
        let options = schematic.overlay.options.clone();
        let gap_lbas = overlay.board.partition_offset;
        Ok(tokio::task::spawn_blocking(move || {
            let scratch = Scratch::create(&base, &tree, disk_size)?;
            let text = |path: PathBuf| path.display().to_string();
            let stdin = protocol::install_yaml(
                &text(scratch.disk()),
                &text(scratch.mount_prefix()),
                &text(scratch.artifacts()),
                &options,
            );
            confine::run(
                Invocation {
                    program: scratch.installer(&name),
                    command: protocol::INSTALL,
                    stdin: stdin.into_bytes(),
                    work_dir: scratch.work_dir(),
                    readable: vec![scratch.overlay()],
                    writable: vec![scratch.disk(), scratch.mount_prefix()],
                },
                limits,
            )?;
            let written = scratch.written()?;
            if written > max_write {
                return Err(OverlayError::WroteTooMuch {
                    program: name,
                    written,
                    limit: max_write,
                });
            }
            Ok::<_, OverlayError>(DiskOverlay {
                gap_lbas,
                raw: scratch
                    .disk_extents()?
                    .into_iter()
                    .map(|(offset, bytes)| (offset, Bytes::from(bytes)))
                    .collect(),
                esp_files: scratch
                    .esp_files()?
                    .into_iter()
                    .map(|(path, bytes)| (path, Bytes::from(bytes)))
                    .collect(),
            })
        })
        .await??)
    }

    /// The installer image's overlay layer: the target-arch overlay's artifacts, the
    /// board's installer as `default`, and the options (imager.md §8).
    pub(super) async fn overlay_layer(
        &self,
        plan: &Plan,
        arch: Arch,
    ) -> Result<Vec<(String, Bytes, u32)>, ServiceError> {
        let Some(overlay) = &plan.overlay else {
            return Ok(Vec::new());
        };
        let tree = self.images.pull(&overlay.image, arch.as_str()).await?.tree;
        let installer = format!("installers/{}", overlay.name);
        let Some(Entry::File { data, mode }) = tree.get(&installer) else {
            return Err(image_problem(
                &overlay.image,
                format!("no installer {:?} for {arch} ({installer})", overlay.name),
            ));
        };
        let mut files = vec![
            (
                "overlay/installers/default".to_string(),
                Bytes::from(data.clone()),
                *mode & 0o7777,
            ),
            (
                "overlay/extra-options".to_string(),
                Bytes::from(overlay.options_yaml.clone().into_bytes()),
                0o644,
            ),
        ];
        for (path, entry) in tree.under("artifacts") {
            if let Entry::File { data, mode } = entry {
                files.push((
                    format!("overlay/{path}"),
                    Bytes::from(data.clone()),
                    *mode & 0o7777,
                ));
            }
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlays(landlock: bool, allow_unconfined: bool) -> Overlays {
        Overlays {
            landlock,
            allow_unconfined,
            timeout: Duration::from_secs(1),
            max_write: 1,
            scratch: std::env::temp_dir(),
            answers: Mutex::new(HashMap::new()),
        }
    }

    #[test]
    fn without_landlock_overlays_run_only_when_the_operator_allows_it() {
        let refused = overlays(false, false).limits(1).unwrap_err();
        assert!(matches!(refused, OverlayError::Unconfined));
        assert!(
            refused
                .to_string()
                .contains("build.allowUnconfinedOverlays")
        );
        assert!(!overlays(false, true).limits(1).unwrap().landlock);
        assert!(overlays(true, false).limits(1).unwrap().landlock);
    }
}
