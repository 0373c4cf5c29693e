//! The command line: `serve` runs the factory, `build` builds one asset, `mirror` fills an
//! OCI layout for an air-gapped site; `schematic id|canonical` compute a schematic's ID
//! and canonical form offline.

mod build;
mod go_flags;
mod mirror;

use crate::config::{self, Config};
use crate::frontend;
use crate::schematic::Schematic;
use crate::service::Factory;
use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "image-factory",
    version,
    about = "A native, self-hostable Talos Linux Image Factory"
)]
struct Cli {
    /// Log level: error, warn, info, debug or trace (or a tracing filter directive).
    #[arg(long, global = true, default_value = "info", env = "IMAGE_FACTORY_LOG")]
    log_level: String,
    /// Log lines as text, or as JSON objects (one per line, with the request's ID in every
    /// line logged while serving it).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "IMAGE_FACTORY_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API.
    #[command(after_long_help = serve_help())]
    Serve {
        /// Configuration file (YAML or JSON); may be given several times, later files win.
        #[arg(long = "config", value_name = "FILE")]
        configs: Vec<PathBuf>,
        /// Listen address (`host:port` or `:port`), overriding http.httpListenAddr.
        #[arg(long, value_name = "ADDR", env = "IMAGE_FACTORY_LISTEN")]
        listen: Option<String>,
        /// State directory of the embedded storage, overriding storage.dir.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Build one asset without a server, as `GET /image/<schematic>/<version>/<PATH>` would.
    Build(build::BuildArgs),
    /// Copy the images some Talos versions need (signatures included) into an OCI layout,
    /// for an air-gapped factory's artifacts.ociLayout.
    Mirror(mirror::MirrorArgs),
    /// Work with schematic documents offline.
    Schematic {
        #[command(subcommand)]
        command: SchematicCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SchematicCommand {
    /// Print the schematic's ID (SHA-256 of its canonical form).
    Id {
        /// Schematic file, or `-` for standard input.
        #[arg(default_value = "-")]
        file: PathBuf,
    },
    /// Print the schematic's canonical YAML, exactly the bytes the ID is computed from.
    Canonical {
        /// Schematic file, or `-` for standard input.
        #[arg(default_value = "-")]
        file: PathBuf,
    },
}

fn serve_help() -> String {
    format!(
        "Configuration is read from defaults, then {prefix}* environment variables, then the \
         --config files in order, then the flags above. Keys are case-insensitive; an \
         environment variable names a key with its dots as underscores (values starting with \
         [ or {{ are JSON).\n\nKeys (file key, environment variable, default):\n{keys}",
        prefix = config::ENV_PREFIX,
        keys = config::describe_keys()
    )
}

/// Runs the command line and returns the process exit status.
pub fn main() -> ExitCode {
    let (args, go_flags) = match go_flags::extract(std::env::args().collect()) {
        Ok(extracted) => extracted,
        Err(error) => {
            eprintln!("image-factory: {error}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    init_logging(&cli.log_level, cli.log_format);
    if !go_flags.is_empty() && !matches!(cli.command, Command::Serve { .. }) {
        eprintln!("image-factory: upstream's single-dash flags configure `serve` only");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Serve {
            configs,
            listen,
            state_dir,
        } => serve(configs, listen, state_dir, &go_flags),
        Command::Schematic { command } => schematic(command),
        Command::Build(args) => build::run(args),
        Command::Mirror(args) => mirror::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("image-factory: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        // The request span's fields (its ID among them) go into every line logged inside it.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

fn read_input(file: &PathBuf) -> Result<Vec<u8>, String> {
    if file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|error| format!("cannot read standard input: {error}"))?;
        Ok(bytes)
    } else {
        std::fs::read(file).map_err(|error| format!("cannot read {}: {error}", file.display()))
    }
}

fn schematic(command: SchematicCommand) -> Result<(), String> {
    let (file, print_id) = match &command {
        SchematicCommand::Id { file } => (file, true),
        SchematicCommand::Canonical { file } => (file, false),
    };
    let bytes = read_input(file)?;
    let schematic = Schematic::parse_valid(&bytes).map_err(|error| error.to_string())?;
    let output = if print_id {
        format!("{}\n", schematic.id())
    } else {
        schematic.canonical()
    };
    std::io::stdout()
        .write_all(output.as_bytes())
        .map_err(|error| format!("cannot write standard output: {error}"))
}

fn serve(
    configs: Vec<PathBuf>,
    listen: Option<String>,
    state_dir: Option<PathBuf>,
    go_flags: &go_flags::GoFlags,
) -> Result<(), String> {
    let mut config = Config::load(std::env::vars(), &configs).map_err(|error| error.to_string())?;
    go_flags
        .apply(&mut config)
        .map_err(|error| error.to_string())?;
    if let Some(listen) = listen {
        config.http.http_listen_addr = listen;
    }
    if let Some(dir) = state_dir {
        config.storage.dir = dir;
    }
    let address = config.listen_addr().map_err(|error| error.to_string())?;
    let options =
        frontend::ServerOptions::from_config(&config.http).map_err(|error| error.to_string())?;
    raise_descriptor_limit(config.http.max_connections);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    let store = crate::store::open_schematic_store(&config, runtime.handle().clone())?;
    let factory = Factory::from_config(config, store)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|error| format!("cannot listen on {address}: {error}"))?;
        let bound = listener
            .local_addr()
            .map_err(|error| format!("cannot read the bound address: {error}"))?;
        check_release_source(&factory).await?;
        tracing::info!(
            state_dir = %factory.config.storage.dir.display(),
            "listening on {}://{bound}",
            options.scheme()
        );
        if !factory.config.metrics.addr.is_empty() {
            let address = config::parse_listen_addr(&factory.config.metrics.addr)
                .map_err(|error| format!("metrics.addr: {error}"))?;
            let metrics = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|error| format!("cannot listen on {address} (metrics.addr): {error}"))?;
            tracing::info!("metrics on http://{address}/metrics");
            let router = frontend::metrics_router(factory.clone());
            tokio::spawn(async move { axum::serve(metrics, router).await });
        }
        frontend::serve_with(listener, factory, options, shutdown_signal())
            .await
            .map_err(|error| format!("server failed: {error}"))?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// How long start-up waits for the release source to list its Talos versions.
const SOURCE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Fails the start when the release source cannot list versions: a factory that cannot reach
/// its images would only answer 500s.
async fn check_release_source(factory: &Factory) -> Result<(), String> {
    match tokio::time::timeout(SOURCE_CHECK_TIMEOUT, factory.versions(false)).await {
        Ok(Ok(versions)) => {
            tracing::info!(versions = versions.len(), "release source answers");
            Ok(())
        }
        Ok(Err(error)) => Err(format!(
            "the release source cannot list Talos versions: {error}"
        )),
        Err(_) => Err(format!(
            "the release source did not list Talos versions within {}s",
            SOURCE_CHECK_TIMEOUT.as_secs()
        )),
    }
}

/// Lifts the soft limit on open files to the hard one (as Go's runtime does), so
/// `http.maxConnections` connections plus cache files fit; says so when they still do not.
fn raise_descriptor_limit(max_connections: usize) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!("cannot raise the open-file limit: {error}");
        }
    }
    let current = getrlimit(Resource::Nofile).current;
    let needed = max_connections as u64 + 256;
    if current.is_some_and(|current| current < needed) {
        tracing::warn!(
            "the open-file limit ({}) is below http.maxConnections + 256 ({needed}): accepting \
             will fail before the connection limit is reached",
            current.unwrap_or_default()
        );
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
