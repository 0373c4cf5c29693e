//! The single-dash flags of upstream's documentation (`-image-registry ghcr.io
//! -cache-repository …`), Go style: `-flag value`, `-flag=value`, `--flag value`, and bare
//! `-flag` for the booleans. They are aliases of configuration keys, applied after the
//! configuration files; without a subcommand they mean `serve`.

use crate::config::{Config, ConfigError, RepositoryConfig};

/// What a flag sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    CoreRegistry,
    ExternalUrl,
    ListenAddr,
    SchematicRepository,
    InstallerInternal,
    InstallerExternal,
    CacheRepository,
    CacheSigningKey,
    InsecureCore,
    InsecureSchematic,
    InsecureInstallerInternal,
    InsecureCache,
}

const FLAGS: [(&str, Target); 12] = [
    ("image-registry", Target::CoreRegistry),
    ("external-url", Target::ExternalUrl),
    ("http-port", Target::ListenAddr),
    ("schematic-service-repository", Target::SchematicRepository),
    ("installer-internal-repository", Target::InstallerInternal),
    ("installer-external-repository", Target::InstallerExternal),
    ("cache-repository", Target::CacheRepository),
    ("cache-signing-key-path", Target::CacheSigningKey),
    ("insecure-image-registry", Target::InsecureCore),
    (
        "insecure-schematic-service-repository",
        Target::InsecureSchematic,
    ),
    (
        "insecure-installer-internal-repository",
        Target::InsecureInstallerInternal,
    ),
    ("insecure-cache-repository", Target::InsecureCache),
];

fn is_bool(target: Target) -> bool {
    matches!(
        target,
        Target::InsecureCore
            | Target::InsecureSchematic
            | Target::InsecureInstallerInternal
            | Target::InsecureCache
    )
}

/// The upstream flags found on a command line, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoFlags(Vec<(Target, String)>);

fn lookup(arg: &str) -> Option<(Target, Option<String>)> {
    let name = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    let (name, value) = match name.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (name, None),
    };
    FLAGS
        .iter()
        .find(|(flag, _)| *flag == name)
        .map(|(_, target)| (*target, value))
}

/// Takes the upstream flags out of `args` (the program name first); the rest is for clap,
/// with `serve` put in when the flags came without a subcommand.
pub fn extract(args: Vec<String>) -> Result<(Vec<String>, GoFlags), ConfigError> {
    let mut rest = Vec::with_capacity(args.len());
    let mut flags = Vec::new();
    let mut iter = args.into_iter();
    rest.extend(iter.next());
    while let Some(arg) = iter.next() {
        let Some((target, inline)) = lookup(&arg) else {
            rest.push(arg);
            continue;
        };
        let value = match inline {
            Some(value) => value,
            None if is_bool(target) => "true".into(),
            None => iter
                .next()
                .ok_or_else(|| ConfigError(format!("flag {arg} needs a value")))?,
        };
        flags.push((target, value));
    }
    const SUBCOMMANDS: [&str; 5] = ["serve", "build", "mirror", "schematic", "help"];
    let has_subcommand = rest
        .iter()
        .skip(1)
        .any(|arg| SUBCOMMANDS.contains(&arg.as_str()));
    if !flags.is_empty() && !has_subcommand {
        rest.insert(1.min(rest.len()), "serve".into());
    }
    Ok((rest, GoFlags(flags)))
}

fn parse_bool(flag: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "true" | "1" | "t" | "T" | "TRUE" | "True" => Ok(true),
        "false" | "0" | "f" | "F" | "FALSE" | "False" => Ok(false),
        _ => Err(ConfigError(format!(
            "flag -{flag}: expected true or false, got {value:?}"
        ))),
    }
}

fn repository(flag: &str, value: &str, insecure: bool) -> Result<RepositoryConfig, ConfigError> {
    let mut parsed = RepositoryConfig::parse(value)
        .map_err(|error| ConfigError(format!("flag -{flag}: {}", error.0)))?;
    parsed.insecure = insecure;
    Ok(parsed)
}

impl GoFlags {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets the keys the flags stand for.
    pub fn apply(&self, config: &mut Config) -> Result<(), ConfigError> {
        // The insecure switches first, so they hold whatever the order on the line.
        for (target, value) in &self.0 {
            let flag = FLAGS
                .iter()
                .find(|(_, t)| t == target)
                .map_or("", |(name, _)| *name);
            if !is_bool(*target) {
                continue;
            }
            let on = parse_bool(flag, value)?;
            match target {
                Target::InsecureCore => config.artifacts.core.insecure = on,
                Target::InsecureSchematic => config.artifacts.schematic.insecure = on,
                Target::InsecureInstallerInternal => {
                    config.artifacts.installer.internal.insecure = on;
                }
                Target::InsecureCache => config.cache.oci.insecure = on,
                _ => {}
            }
        }
        for (target, value) in &self.0 {
            let flag = FLAGS
                .iter()
                .find(|(_, t)| t == target)
                .map_or("", |(name, _)| *name);
            match target {
                Target::CoreRegistry => config.artifacts.core.registry = value.clone(),
                Target::ExternalUrl => config.http.external_url = value.clone(),
                Target::ListenAddr => config.http.http_listen_addr = value.clone(),
                Target::SchematicRepository => {
                    let insecure = config.artifacts.schematic.insecure;
                    config.artifacts.schematic = repository(flag, value, insecure)?;
                }
                Target::InstallerInternal => {
                    let insecure = config.artifacts.installer.internal.insecure;
                    config.artifacts.installer.internal = repository(flag, value, insecure)?;
                }
                Target::InstallerExternal => {
                    config.artifacts.installer.external = repository(flag, value, false)?;
                }
                Target::CacheRepository => {
                    let insecure = config.cache.oci.insecure;
                    config.cache.oci = repository(flag, value, insecure)?;
                }
                Target::CacheSigningKey => config.cache.signing_key_path = value.into(),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn upstream_flags_without_a_subcommand_serve() {
        let (rest, flags) = extract(args(
            "image-factory -image-registry 127.0.0.1:5000 -external-url=http://f.example/ \
             -schematic-service-repository 127.0.0.1:5000/image-factory/schematic \
             -insecure-schematic-service-repository \
             -installer-internal-repository 127.0.0.1:5000/siderolabs \
             -cache-repository 127.0.0.1:5000/image-factory/cache \
             -cache-signing-key-path /keys/cache.key --config extra.yaml",
        ))
        .unwrap();
        assert_eq!(rest, args("image-factory serve --config extra.yaml"));
        let mut config = Config::default();
        flags.apply(&mut config).unwrap();
        assert_eq!(config.artifacts.core.registry, "127.0.0.1:5000");
        assert_eq!(config.http.external_url, "http://f.example/");
        assert_eq!(config.artifacts.schematic.path(), "image-factory/schematic");
        assert!(config.artifacts.schematic.insecure);
        assert_eq!(config.artifacts.installer.internal.path(), "siderolabs");
        assert_eq!(config.cache.oci.registry, "127.0.0.1:5000");
        assert_eq!(config.cache.oci.path(), "image-factory/cache");
        assert_eq!(
            config.cache.signing_key_path,
            std::path::PathBuf::from("/keys/cache.key")
        );
    }

    #[test]
    fn subcommands_keep_their_arguments_and_bad_values_are_named() {
        let (rest, flags) =
            extract(args("image-factory serve --listen :9 -http-port :8081")).unwrap();
        assert_eq!(rest, args("image-factory serve --listen :9"));
        assert!(!flags.is_empty());
        let (rest, flags) = extract(args("image-factory schematic id -")).unwrap();
        assert_eq!(rest, args("image-factory schematic id -"));
        assert!(flags.is_empty());
        assert!(extract(args("image-factory -external-url")).is_err());
        let (_, flags) = extract(args("image-factory -cache-repository nohost")).unwrap();
        let error = flags.apply(&mut Config::default()).unwrap_err();
        assert!(
            error.0.contains("-cache-repository") && error.0.contains("nohost"),
            "{error}"
        );
        let (_, flags) = extract(args("image-factory -insecure-cache-repository=maybe")).unwrap();
        assert!(flags.apply(&mut Config::default()).is_err());
    }
}
