//! Configuration: one struct, filled from defaults, then `IF_*` environment variables, then
//! YAML/JSON files (later files win), then command-line flags.
//!
//! Keys follow upstream's configuration where the concept is the same (`http.httpListenAddr`,
//! `http.externalURL`, ...) and are matched case-insensitively. An environment variable
//! `IF_HTTP_EXTERNALURL` names the key `http.externalURL` (prefix dropped, `_` → `.`).
//! Unknown keys are errors, so a typo never silently falls back to a default.

mod deploy;

pub use deploy::{
    InstallerRegistries, LocalCacheConfig, RegistryFrontendConfig, RepositoryConfig,
    SchematicCacheConfig,
};

use crate::version::parse_strict;
use crate::yaml::node::{Node, NodeKind, read_first_document};
use crate::yaml::resolve::{Resolved, resolve_plain};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "IF_";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    pub http: HttpConfig,
    pub storage: StorageConfig,
    pub artifacts: ArtifactsConfig,
    pub container_signature: ContainerSignatureConfig,
    pub build: BuildConfig,
    pub cache: CacheConfig,
    pub secure_boot: SecureBootConfig,
    pub registry: RegistryFrontendConfig,
    pub metrics: MetricsConfig,
}

/// The Prometheus listener (upstream's `metrics.addr`, whose `:2122` default is off here
/// unless configured).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricsConfig {
    /// `host:port` or `:port` of `GET /metrics`; empty: no metrics listener.
    pub addr: String,
}

/// Secure Boot signing (upstream's `secureBoot` keys; the file provider).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SecureBootConfig {
    /// Load the keys below at start-up; a missing or unusable one stops the start.
    pub enabled: bool,
    pub file: SecureBootFiles,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SecureBootFiles {
    /// RSA key (PKCS#1 or PKCS#8 PEM) that signs systemd-boot and UKIs.
    pub signing_key_path: PathBuf,
    /// Its X.509 certificate (PEM), served at `/secureboot/signing-cert.pem`.
    pub signing_cert_path: PathBuf,
    /// RSA key (PEM) that signs the UKI's PCR policy.
    pub pcr_key_path: PathBuf,
    /// Pre-built Secure Boot enrollment databases (`EFI_VARIABLE_AUTHENTICATION_2` writes),
    /// used instead of the ones generated from the signing certificate: all three or none.
    pub pk_auth_path: PathBuf,
    pub kek_auth_path: PathBuf,
    pub db_auth_path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheConfig {
    /// ECDSA P-256 key (PEM) that signs asset cache entries; empty: a key kept in the state
    /// directory, created on first start. Replicas sharing `cache.oci` need the same key.
    pub signing_key_path: PathBuf,
    /// The shared second tier: an OCI repository (empty registry: none).
    pub oci: RepositoryConfig,
    /// The in-memory cache in front of the schematic store.
    pub schematic: SchematicCacheConfig,
    /// The first tier, on local disk.
    pub local: LocalCacheConfig,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            signing_key_path: PathBuf::new(),
            oci: deploy::default_cache_repository(),
            schematic: SchematicCacheConfig::default(),
            local: LocalCacheConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ArtifactsConfig {
    pub core: CoreArtifacts,
    /// Read every source image from this OCI image layout (images named by full reference,
    /// e.g. `ghcr.io/siderolabs/imager:v1.12.0`) instead of the registry: the air-gapped mode.
    pub oci_layout: PathBuf,
    /// How long the Talos version list is kept (Go duration: `15m`, `1h30m`).
    pub talos_version_recheck_interval: String,
    /// Schematics in a registry, shared by replicas (empty registry: the state directory).
    pub schematic: RepositoryConfig,
    /// Installer images pushed to and pulled from registries (empty: served from the cache).
    pub installer: InstallerRegistries,
}

/// Where the Talos release images come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CoreArtifacts {
    pub registry: String,
    /// Path prefix inside the registry (a mirror's namespace).
    pub namespace: String,
    /// Reach the registry over plain HTTP.
    pub insecure: bool,
    pub components: Components,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Components {
    pub installer_base: String,
    pub installer: String,
    pub imager: String,
    pub extension_manifest: String,
    pub overlay_manifest: String,
    pub talosctl: String,
}

/// How source images are checked (upstream's `containerSignature.*`): by public key, keyless
/// (a Sigstore certificate whose identity matches), or both; any one set that passes is
/// enough.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerSignatureConfig {
    /// PEM file with one or more public keys (ECDSA P-256/P-384, RSA, Ed25519); empty: no
    /// key check.
    pub public_key_file: PathBuf,
    /// The hash the key signatures are made with: sha224, sha256, sha384 or sha512.
    pub public_key_hash_algo: String,
    /// Keyless: the certificate's identity (email or URI) must match; empty: no keyless check.
    pub subject_reg_exp: String,
    /// Keyless: the OIDC issuer the certificate names, exactly...
    pub issuer: String,
    /// ...or matching this expression, which wins when set.
    pub issuer_reg_exp: String,
    /// Keyless: a Sigstore `trusted_root.json` to trust instead of the embedded public-good
    /// one.
    pub trusted_root_file: PathBuf,
    /// Switch verification off (never implied by a missing key).
    pub disabled: bool,
}

/// The identities that sign Talos releases.
pub const DEFAULT_SUBJECT_REG_EXP: &str =
    r"(@siderolabs\.com$|^releasemgr-svc@talos-production\.iam\.gserviceaccount\.com$)";

impl Default for ContainerSignatureConfig {
    fn default() -> Self {
        ContainerSignatureConfig {
            public_key_file: PathBuf::new(),
            public_key_hash_algo: "sha256".into(),
            subject_reg_exp: DEFAULT_SUBJECT_REG_EXP.into(),
            issuer: "https://accounts.google.com".into(),
            issuer_reg_exp: String::new(),
            trusted_root_file: PathBuf::new(),
            disabled: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct BuildConfig {
    /// Oldest Talos version offered.
    pub min_talos_version: String,
    /// Versions hidden from the list (semver, no `v`).
    pub broken_talos_versions: Vec<String>,
    /// Builds that may run at once; more wait their turn.
    pub max_concurrency: u64,
    /// Run overlay installers even where the kernel has no Landlock to confine them.
    pub allow_unconfined_overlays: bool,
    /// How long an overlay installer may run (Go duration).
    pub overlay_installer_timeout: String,
    /// Bytes an overlay installer may write into the image and its tree, all told.
    pub overlay_installer_max_write: u64,
}

impl Default for ArtifactsConfig {
    fn default() -> Self {
        ArtifactsConfig {
            core: CoreArtifacts::default(),
            oci_layout: PathBuf::new(),
            talos_version_recheck_interval: "15m".into(),
            schematic: deploy::default_schematic_repository(),
            installer: InstallerRegistries::default(),
        }
    }
}

impl Default for CoreArtifacts {
    fn default() -> Self {
        CoreArtifacts {
            registry: "ghcr.io".into(),
            namespace: String::new(),
            insecure: false,
            components: Components::default(),
        }
    }
}

impl Default for Components {
    fn default() -> Self {
        Components {
            installer_base: "siderolabs/installer-base".into(),
            installer: "siderolabs/installer".into(),
            imager: "siderolabs/imager".into(),
            extension_manifest: "siderolabs/extensions".into(),
            overlay_manifest: "siderolabs/overlays".into(),
            talosctl: "siderolabs/talosctl-all".into(),
        }
    }
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig {
            min_talos_version: "1.2.0".into(),
            broken_talos_versions: Vec::new(),
            max_concurrency: 6,
            allow_unconfined_overlays: false,
            overlay_installer_timeout: "2m".into(),
            overlay_installer_max_write: 512 << 20,
        }
    }
}

impl ArtifactsConfig {
    /// `talosVersionRecheckInterval` as a duration.
    pub fn recheck_interval(&self) -> Result<std::time::Duration, ConfigError> {
        parse_go_duration(&self.talos_version_recheck_interval).map_err(|error| {
            ConfigError(format!(
                "artifacts.talosVersionRecheckInterval: {}",
                error.0
            ))
        })
    }
}

impl BuildConfig {
    /// `minTalosVersion` as a version.
    pub fn min_version(&self) -> Result<semver::Version, ConfigError> {
        parse_strict(&self.min_talos_version)
            .map_err(|error| ConfigError(format!("build.minTalosVersion: {error}")))
    }

    /// `overlayInstallerTimeout` as a duration.
    pub fn overlay_timeout(&self) -> Result<std::time::Duration, ConfigError> {
        parse_go_duration(&self.overlay_installer_timeout)
            .map_err(|error| ConfigError(format!("build.overlayInstallerTimeout: {}", error.0)))
    }

    /// `brokenTalosVersions` as versions.
    pub fn broken_versions(&self) -> Result<Vec<semver::Version>, ConfigError> {
        self.broken_talos_versions
            .iter()
            .map(|text| {
                parse_strict(text)
                    .map_err(|error| ConfigError(format!("build.brokenTalosVersions: {error}")))
            })
            .collect()
    }
}

/// Parses a Go duration (`1h30m`, `5m0s`, `30s`, `250ms`).
pub fn parse_go_duration(text: &str) -> Result<std::time::Duration, ConfigError> {
    let invalid = || {
        ConfigError(format!(
            "invalid duration {text:?} (expected e.g. 15m, 1h30m, 30s)"
        ))
    };
    if text == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(invalid()),
        };
        total += number * seconds;
        rest = &rest[unit_end..];
    }
    // A duration past what `Duration` holds (Go's limit is lower still) is a typo to report,
    // not a reason to panic at start-up.
    std::time::Duration::try_from_secs_f64(total)
        .map_err(|_| ConfigError(format!("invalid duration {text:?}: out of range")))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpConfig {
    /// Listen address, `host:port` or Go's `:port` (all interfaces).
    pub http_listen_addr: String,
    /// The URL users reach the factory at; used in links and extension metadata.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// Base of URLs in iPXE scripts; empty means `externalURL`.
    #[serde(rename = "externalPXEURL")]
    pub external_pxe_url: String,
    /// CORS origins.
    pub allowed_origins: Vec<String>,
    /// Largest accepted request body (schematic uploads); larger bodies get 413.
    pub max_request_body_bytes: u64,
    /// PEM certificate chain; with `keyFile`, the listener speaks HTTPS (TLS 1.2 and 1.3),
    /// re-reading both files when they change.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `certFile`.
    pub key_file: String,
    /// How long a client may take to send a request's headers, and how long an idle
    /// keep-alive connection stays open (Go duration).
    pub read_header_timeout: String,
    /// Open connections served at once; past it a new connection gets a 503 and is closed.
    pub max_connections: usize,
}

impl HttpConfig {
    /// `readHeaderTimeout` as a duration.
    pub fn header_timeout(&self) -> Result<std::time::Duration, ConfigError> {
        parse_go_duration(&self.read_header_timeout)
            .map_err(|error| ConfigError(format!("http.readHeaderTimeout: {}", error.0)))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct StorageConfig {
    /// State directory of the embedded storage (schematics, asset cache).
    pub dir: PathBuf,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            http_listen_addr: ":8080".into(),
            external_url: "https://localhost/".into(),
            external_pxe_url: String::new(),
            allowed_origins: vec!["*".into()],
            max_request_body_bytes: 1 << 20,
            cert_file: String::new(),
            key_file: String::new(),
            read_header_timeout: "30s".into(),
            max_connections: 4096,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: PathBuf::from("var"),
        }
    }
}

/// A configuration that cannot be loaded; the message names the source and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// Every key with its default, for `serve --help`.
pub fn describe_keys() -> String {
    let mut lines = Vec::new();
    let defaults = serde_json::to_value(Config::default()).unwrap_or(Value::Null);
    fn walk(prefix: &str, value: &Value, lines: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&path, value, lines);
                }
            }
            other => {
                let env = format!("{ENV_PREFIX}{}", prefix.replace('.', "_").to_uppercase());
                lines.push(format!("  {prefix:<28} {env:<32} default {other}"));
            }
        }
    }
    walk("", &defaults, &mut lines);
    lines.join("\n")
}

impl Config {
    /// Loads defaults, then `env` (name/value pairs, usually `std::env::vars()`), then the
    /// files in order.
    pub fn load(
        env: impl IntoIterator<Item = (String, String)>,
        files: &[PathBuf],
    ) -> Result<Config, ConfigError> {
        let mut tree = serde_json::to_value(Config::default())
            .map_err(|error| ConfigError(error.to_string()))?;
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        env.sort();
        for (name, raw) in env {
            let path: Vec<String> = name[ENV_PREFIX.len()..]
                .split('_')
                .map(str::to_lowercase)
                .collect();
            set_from_env(&mut tree, &path, &raw).map_err(|problem| {
                ConfigError(format!("environment variable {name}: {problem}"))
            })?;
        }
        for file in files {
            let overlay = read_file(file)?;
            merge(&mut tree, overlay, "")
                .map_err(|problem| ConfigError(format!("{}: {problem}", file.display())))?;
        }
        let config: Config =
            serde_json::from_value(tree).map_err(|error| ConfigError(error.to_string()))?;
        // Durations and versions are checked now, so a typo stops the start, not a request.
        config.artifacts.recheck_interval()?;
        config.build.min_version()?;
        config.build.broken_versions()?;
        config.build.overlay_timeout()?;
        config.cache.schematic.negative_ttl()?;
        Ok(config)
    }

    /// The listen address as a socket address; Go's `:8080` means every interface.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        parse_listen_addr(&self.http.http_listen_addr)
    }
}

pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, ConfigError> {
    let full = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text.to_string()
    };
    full.parse().map_err(|_| {
        ConfigError(format!(
            "invalid listen address {text:?}: expected host:port or :port"
        ))
    })
}

fn read_file(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError(format!("cannot read {}: {error}", path.display())))?;
    let node = read_first_document(&text)
        .map_err(|error| ConfigError(format!("{}: {error}", path.display())))?;
    match node {
        None => Ok(Value::Object(Map::new())),
        Some(node) => {
            to_json(&node).map_err(|problem| ConfigError(format!("{}: {problem}", path.display())))
        }
    }
}

fn to_json(node: &Node) -> Result<Value, String> {
    Ok(match &node.kind {
        NodeKind::Scalar { text, plain } => {
            if !plain || node.tag.as_deref() == Some("!!str") {
                return Ok(Value::String(text.clone()));
            }
            match resolve_plain(text) {
                Resolved::Null => Value::Null,
                Resolved::Bool(value) => Value::Bool(value),
                Resolved::Int(value) => Value::from(value),
                Resolved::Uint(value) => Value::from(value),
                Resolved::Float(value) => Value::from(value),
                Resolved::Timestamp | Resolved::Str => Value::String(text.clone()),
            }
        }
        NodeKind::Sequence(items) => {
            Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?)
        }
        NodeKind::Mapping(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                let Some(key_text) = key.scalar_text() else {
                    return Err(format!("line {}: keys must be scalars", key.line));
                };
                map.insert(key_text.to_string(), to_json(value)?);
            }
            Value::Object(map)
        }
    })
}

fn find_key<'a>(map: &'a mut Map<String, Value>, wanted: &str) -> Option<&'a mut Value> {
    let key = map
        .keys()
        .find(|key| key.eq_ignore_ascii_case(wanted))?
        .clone();
    map.get_mut(&key)
}

fn known_keys(map: &Map<String, Value>) -> String {
    map.keys().cloned().collect::<Vec<_>>().join(", ")
}

fn merge(tree: &mut Value, overlay: Value, prefix: &str) -> Result<(), String> {
    let (Value::Object(target), Value::Object(source)) = (&mut *tree, &overlay) else {
        *tree = overlay;
        return Ok(());
    };
    for (key, value) in source.clone() {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let known = known_keys(target);
        let Some(slot) = find_key(target, &key) else {
            return Err(format!("unknown key {path:?} (known here: {known})"));
        };
        if slot.is_object() && !value.is_object() {
            return Err(format!("key {path:?} must be a mapping"));
        }
        merge(slot, value, &path)?;
    }
    Ok(())
}

fn set_from_env(tree: &mut Value, path: &[String], raw: &str) -> Result<(), String> {
    let mut slot = tree;
    for (depth, segment) in path.iter().enumerate() {
        let Value::Object(map) = slot else {
            let parent: Vec<&str> = path.iter().take(depth).map(String::as_str).collect();
            return Err(format!("{} is not a mapping", parent.join(".")));
        };
        let known = known_keys(map);
        slot = find_key(map, segment)
            .ok_or_else(|| format!("unknown key {:?} (known here: {known})", path.join(".")))?;
    }
    *slot = if raw.starts_with(['[', '{']) {
        serde_json::from_str(raw).map_err(|error| format!("invalid JSON value: {error}"))?
    } else {
        match slot {
            Value::Number(_) => raw
                .parse::<u64>()
                .map(Value::from)
                .map_err(|_| format!("expected a number, got {raw:?}"))?,
            Value::Bool(_) => raw
                .parse::<bool>()
                .map(Value::Bool)
                .map_err(|_| format!("expected true or false, got {raw:?}"))?,
            Value::Array(_) => Value::Array(
                raw.split(',')
                    .map(|item| Value::String(item.trim().to_string()))
                    .collect(),
            ),
            _ => Value::String(raw.to_string()),
        }
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_env_then_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(
            &file,
            "http:\n  externalurl: https://factory.example/\n  maxRequestBodyBytes: 2048\n",
        )
        .unwrap();
        let config = Config::load(
            env(&[
                ("IF_HTTP_EXTERNALURL", "https://env.example/"),
                ("IF_HTTP_HTTPLISTENADDR", "127.0.0.1:9000"),
                ("IF_STORAGE_DIR", "/tmp/state"),
                ("IF_HTTP_ALLOWEDORIGINS", "[\"https://a\", \"https://b\"]"),
                ("PATH", "/bin"),
            ]),
            std::slice::from_ref(&file),
        )
        .unwrap();
        assert_eq!(config.http.external_url, "https://factory.example/");
        assert_eq!(config.http.http_listen_addr, "127.0.0.1:9000");
        assert_eq!(config.http.max_request_body_bytes, 2048);
        assert_eq!(config.storage.dir, PathBuf::from("/tmp/state"));
        assert_eq!(config.http.allowed_origins, ["https://a", "https://b"]);
    }

    #[test]
    fn prebuilt_enrollment_databases_are_file_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(
            &file,
            "secureBoot:\n  file:\n    pkAuthPath: /keys/PK.auth\n    \
             KEKAUTHPATH: /keys/KEK.auth\n",
        )
        .unwrap();
        let config = Config::load(
            env(&[("IF_SECUREBOOT_FILE_DBAUTHPATH", "/keys/db.auth")]),
            std::slice::from_ref(&file),
        )
        .unwrap();
        let files = &config.secure_boot.file;
        assert_eq!(files.pk_auth_path, PathBuf::from("/keys/PK.auth"));
        assert_eq!(files.kek_auth_path, PathBuf::from("/keys/KEK.auth"));
        assert_eq!(files.db_auth_path, PathBuf::from("/keys/db.auth"));
    }

    #[test]
    fn unknown_keys_are_errors_that_name_them() {
        let error = Config::load(env(&[("IF_HTTP_LISTEN", "x")]), &[]).unwrap_err();
        assert!(error.to_string().contains("IF_HTTP_LISTEN"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, "http:\n  listen: x\n").unwrap();
        let error = Config::load(Vec::new(), &[file]).unwrap_err();
        assert!(error.to_string().contains("\"http.listen\""), "{error}");
    }

    #[test]
    fn durations_and_versions_are_checked_at_load() {
        let load = |name: &str, value: &str| {
            Config::load([(name.to_string(), value.to_string())], &[]).unwrap_err()
        };
        let error = load("IF_BUILD_MINTALOSVERSION", "one.two");
        assert!(error.0.contains("build.minTalosVersion"), "{error}");
        let error = load("IF_ARTIFACTS_TALOSVERSIONRECHECKINTERVAL", "soon");
        assert!(error.0.contains("talosVersionRecheckInterval"), "{error}");
        let loaded = Config::load([], &[]).unwrap();
        assert_eq!(loaded.build.min_version().unwrap().to_string(), "1.2.0");
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_go_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_go_duration("5m0s").unwrap().as_secs(), 300);
        assert_eq!(parse_go_duration("250ms").unwrap().as_millis(), 250);
        assert!(parse_go_duration("5 minutes").is_err());
        assert!(parse_go_duration("").is_err());
        // Found by the config fuzz target: a number of hours past `Duration` panicked.
        assert!(parse_go_duration("1111111111111111111111h").is_err());
        assert!(parse_go_duration("1e400s").is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_addr(":8080").unwrap(),
            "0.0.0.0:8080".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert!(parse_listen_addr("nonsense").is_err());
    }
}
