//! `image-factory build`: one asset, built by the same pipeline the server uses, with
//! progress on standard error.

use crate::config::Config;
use crate::schematic::{Schematic, SchematicId};
use crate::service::Factory;
use crate::store::{FsSchematicStore, SchematicStore};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Schematic file (YAML/JSON), `-` for standard input, or the ID of a stored schematic.
    #[arg(long, value_name = "FILE|ID")]
    pub schematic: String,
    /// Talos version, e.g. v1.12.0.
    #[arg(long, value_name = "VERSION")]
    pub version: String,
    /// Where to write the asset (`-` for standard output).
    #[arg(long, short, value_name = "OUT")]
    pub output: PathBuf,
    /// Configuration file (YAML or JSON); may be given several times.
    #[arg(long = "config", value_name = "FILE")]
    pub configs: Vec<PathBuf>,
    /// State directory (schematic store, asset cache), overriding storage.dir.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Progress on standard error: `auto` (a spinner on a terminal, lines otherwise),
    /// `json` (JSON lines, `{"v":1,...}`) or `none`.
    #[arg(long, default_value = "auto", value_name = "MODE")]
    pub progress: String,
    /// The asset path, as in the URL: `kernel-amd64`, `initramfs-amd64.xz`,
    /// `cmdline-metal-amd64`, `metal-amd64-uki.efi`, …
    pub path: String,
}

/// Reports the stages of a build in the chosen form.
enum Progress {
    Spinner(ProgressBar),
    Lines(Instant),
    Json(Instant),
    Silent,
}

impl Progress {
    fn new(mode: &str) -> Result<Progress, String> {
        let now = Instant::now();
        Ok(match mode {
            "auto" if std::io::stderr().is_terminal() => {
                let bar = ProgressBar::new_spinner();
                bar.set_style(
                    ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_millis(100));
                Progress::Spinner(bar)
            }
            "auto" => Progress::Lines(now),
            "json" => Progress::Json(now),
            "none" => Progress::Silent,
            other => {
                return Err(format!(
                    "unknown --progress mode {other:?} (auto, json, none)"
                ));
            }
        })
    }

    fn stage(&self, stage: &str, detail: &str) {
        match self {
            Progress::Spinner(bar) => bar.set_message(format!("{stage}: {detail}")),
            Progress::Lines(start) => eprintln!(
                "[{:>6.1}s] {stage}: {detail}",
                start.elapsed().as_secs_f64()
            ),
            Progress::Json(start) => eprintln!(
                "{}",
                serde_json::json!({
                    "v": 1,
                    "stage": stage,
                    "detail": detail,
                    "elapsed_ms": start.elapsed().as_millis() as u64,
                })
            ),
            Progress::Silent => {}
        }
    }

    fn finish(&self) {
        if let Progress::Spinner(bar) = self {
            bar.finish_and_clear();
        }
    }
}

pub fn run(args: BuildArgs) -> Result<(), String> {
    let progress = Progress::new(&args.progress)?;
    let mut config = Config::load(std::env::vars(), &args.configs).map_err(|e| e.to_string())?;
    if let Some(dir) = args.state_dir {
        config.storage.dir = dir;
    }
    let store = Arc::new(FsSchematicStore::open(&config.storage.dir).map_err(|e| e.to_string())?);
    // A schematic given as a document is stored, so the pipeline finds it by ID like a
    // served one.
    let id = match args.schematic.parse::<SchematicId>() {
        Ok(id) if !std::path::Path::new(&args.schematic).exists() => id,
        _ => {
            let bytes = if args.schematic == "-" {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                    .map_err(|e| format!("cannot read standard input: {e}"))?;
                bytes
            } else {
                std::fs::read(&args.schematic)
                    .map_err(|e| format!("cannot read {}: {e}", args.schematic))?
            };
            let schematic = Schematic::parse_valid(&bytes).map_err(|e| e.to_string())?;
            let canonical = schematic.canonical();
            let id = schematic.id();
            store
                .put(&id, canonical.as_bytes())
                .map_err(|e| e.to_string())?;
            id
        }
    };
    let factory = Factory::from_config(config, store)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let asset = runtime.block_on(async {
        progress.stage(
            "resolve",
            &format!("{} for Talos {} (schematic {id})", args.path, args.version),
        );
        let plan = factory
            .resolve(&id.to_string(), &args.version, &args.path)
            .await
            .map_err(|e| e.to_string())?;
        progress.stage(
            "build",
            &format!(
                "{} input image(s), cache key {}",
                plan.extensions.len() + 1,
                &plan.key[..16]
            ),
        );
        factory.asset(plan).await.map_err(|e| e.to_string())
    })?;
    progress.stage(
        "write",
        &format!("{} bytes to {}", asset.size, args.output.display()),
    );
    if args.output.as_os_str() == "-" {
        let mut file = std::fs::File::open(&asset.path)
            .map_err(|e| format!("reading the built asset: {e}"))?;
        let mut stdout = std::io::stdout().lock();
        std::io::copy(&mut file, &mut stdout)
            .and_then(|_| stdout.flush())
            .map_err(|e| format!("cannot write standard output: {e}"))?;
    } else {
        let temporary = args.output.with_extension("partial");
        crate::format::holes::copy_sparse(&asset.path, &temporary)
            .and_then(|()| std::fs::rename(&temporary, &args.output))
            .map_err(|e| {
                let _ = std::fs::remove_file(&temporary);
                format!("cannot write {}: {e}", args.output.display())
            })?;
    }
    progress.stage(
        "done",
        &format!("{} bytes, digest {}", asset.size, &asset.digest[..16]),
    );
    progress.finish();
    Ok(())
}
