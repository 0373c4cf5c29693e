//! `image-factory mirror`: fills an OCI layout (or another registry) with what a factory
//! needs for some Talos versions, from the source the configuration names, with a progress
//! bar and a summary.

use crate::config::Config;
use crate::service::Factory;
use crate::service::mirror::{MirrorEvent, MirrorOptions, MirrorTarget};
use crate::store::FsSchematicStore;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["to", "to_registry"]))]
pub struct MirrorArgs {
    /// The OCI layout directory to fill (created, or continued when it exists).
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// Or a registry (`host[:port]`) to push to, the repositories kept.
    #[arg(long, value_name = "HOST")]
    pub to_registry: Option<String>,
    /// Reach --to-registry over plain HTTP (implied for a loopback address).
    #[arg(long)]
    pub insecure: bool,
    /// A Talos version to mirror (`v1.12.0`); may be repeated or comma-separated. Default:
    /// every version the source offers.
    #[arg(long = "version", value_name = "VERSION", value_delimiter = ',')]
    pub versions: Vec<String>,
    /// Configuration file naming the source (artifacts.core.*, containerSignature.*); may
    /// be given several times.
    #[arg(long = "config", value_name = "FILE")]
    pub configs: Vec<PathBuf>,
    /// The registry name the images get in the layout: the artifacts.core.registry of the
    /// factory that will serve it.
    #[arg(long, default_value = "ghcr.io", value_name = "HOST")]
    pub name_registry: String,
}

pub fn run(args: MirrorArgs) -> Result<(), String> {
    let mut config = Config::load(std::env::vars(), &args.configs).map_err(|e| e.to_string())?;
    // The mirror stores nothing of its own; a scratch state directory keeps it that way.
    let state = std::env::temp_dir().join(format!("image-factory-mirror-{}", std::process::id()));
    config.storage.dir = state.clone();
    let store = FsSchematicStore::open(&state).map_err(|error| error.to_string())?;
    let factory = Factory::from_config(config, Arc::new(store))?;
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed}] {bytes} copied  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    } else {
        ProgressBar::hidden()
    };
    let terminal = std::io::stderr().is_terminal();
    let progress = |event: MirrorEvent<'_>| match event {
        MirrorEvent::Image(reference) => {
            if terminal {
                bar.set_message(reference.to_string());
            } else {
                eprintln!("mirror: {reference}");
            }
        }
        MirrorEvent::Blob { size, copied: true } => bar.inc(size),
        MirrorEvent::Blob { .. } => {}
    };
    let (target, shown) = match (args.to, args.to_registry) {
        (Some(dir), _) => {
            let shown = dir.display().to_string();
            let target = MirrorTarget::Layout {
                dir,
                name_registry: args.name_registry,
            };
            (target, shown)
        }
        (None, Some(host)) => {
            let insecure = args.insecure || crate::service::is_loopback(&host);
            (
                MirrorTarget::Registry {
                    host: host.clone(),
                    insecure,
                },
                host,
            )
        }
        (None, None) => return Err("name a target: --to DIR or --to-registry HOST".into()),
    };
    let options = MirrorOptions {
        versions: args.versions,
        target,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    let result = runtime.block_on(factory.mirror(&options, &progress));
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(&state);
    let report = result.map_err(|error| error.to_string())?;
    eprintln!(
        "mirrored {} images and {} signatures into {}: {} blobs copied ({:.1} MiB), {} already present",
        report.images,
        report.signatures,
        shown,
        report.blobs_copied,
        report.bytes_copied as f64 / (1024.0 * 1024.0),
        report.blobs_present
    );
    Ok(())
}
