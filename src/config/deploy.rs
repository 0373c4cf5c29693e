//! The configuration of a deployment on shared registries (upstream's keys): where schematics,
//! the asset cache and installer images live, the local cache tier's bound, and how the
//! registry frontend hands out installers. An empty `registry` keeps the embedded store.

use super::{ConfigError, parse_go_duration};
use serde::{Deserialize, Serialize};

/// One OCI repository: `<registry>/<namespace>/<repository>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RepositoryConfig {
    /// Host (and port) of the registry; empty: not configured.
    pub registry: String,
    pub namespace: String,
    pub repository: String,
    /// Reach the registry over plain HTTP (loopback registries always are).
    pub insecure: bool,
}

impl RepositoryConfig {
    fn new(namespace: &str, repository: &str) -> RepositoryConfig {
        RepositoryConfig {
            registry: String::new(),
            namespace: namespace.into(),
            repository: repository.into(),
            insecure: false,
        }
    }

    pub fn is_configured(&self) -> bool {
        !self.registry.is_empty()
    }

    /// The repository path inside the registry: the non-empty parts joined by `/`.
    pub fn path(&self) -> String {
        [self.namespace.as_str(), self.repository.as_str()]
            .iter()
            .flat_map(|part| part.split('/'))
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Upstream's reading of a repository option `a/b/c`: the first segment is the registry
    /// when it looks like a host (has `.` or `:`, or is `localhost`), the last one the
    /// repository, the rest the namespace.
    pub fn parse(text: &str) -> Result<RepositoryConfig, ConfigError> {
        let text = text.trim().trim_end_matches('/');
        let mut segments: Vec<&str> = text.split('/').collect();
        if text.is_empty() || segments.iter().any(|segment| segment.is_empty()) {
            return Err(ConfigError(format!(
                "invalid repository {text:?}: expected registry/namespace/repository"
            )));
        }
        let names_registry = match segments.split_first() {
            Some((first, rest)) => {
                !rest.is_empty()
                    && (first.contains('.') || first.contains(':') || *first == "localhost")
            }
            None => false,
        };
        if !names_registry {
            return Err(ConfigError(format!(
                "invalid repository {text:?}: the first segment must name a registry host"
            )));
        }
        let registry = segments.remove(0).to_string();
        let repository = segments.pop().unwrap_or_default().to_string();
        Ok(RepositoryConfig {
            registry,
            namespace: segments.join("/"),
            repository,
            insecure: false,
        })
    }
}

/// `artifacts.schematic`: the registry store of schematics.
pub fn default_schematic_repository() -> RepositoryConfig {
    RepositoryConfig::new("siderolabs/image-factory", "schematics")
}

/// `cache.oci`: the shared asset cache.
pub fn default_cache_repository() -> RepositoryConfig {
    RepositoryConfig::new("siderolabs/image-factory", "cache")
}

/// `artifacts.installer`: where built installer images are pushed and pulled from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct InstallerRegistries {
    /// Push target (the factory needs push access).
    pub internal: RepositoryConfig,
    /// Where clients are redirected (public read-only); empty: the internal one, proxied.
    pub external: RepositoryConfig,
}

impl Default for InstallerRegistries {
    fn default() -> Self {
        InstallerRegistries {
            internal: RepositoryConfig::new("siderolabs", ""),
            external: RepositoryConfig::new("", ""),
        }
    }
}

/// `cache.schematic`: the in-memory cache in front of the schematic store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SchematicCacheConfig {
    /// Schematics kept in memory (least recently used evicted).
    pub capacity: u64,
    /// How long "not found" is remembered (Go duration).
    #[serde(rename = "negativeTTL")]
    pub negative_ttl: String,
}

impl Default for SchematicCacheConfig {
    fn default() -> Self {
        SchematicCacheConfig {
            capacity: 100_000,
            negative_ttl: "30s".into(),
        }
    }
}

impl SchematicCacheConfig {
    pub fn negative_ttl(&self) -> Result<std::time::Duration, ConfigError> {
        parse_go_duration(&self.negative_ttl)
            .map_err(|error| ConfigError(format!("cache.schematic.negativeTTL: {}", error.0)))
    }
}

/// `cache.local`: the asset cache on this machine's disk, the first tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalCacheConfig {
    /// Disk space the entries may take (allocated bytes); least recently used go first.
    pub max_bytes: u64,
}

impl Default for LocalCacheConfig {
    fn default() -> Self {
        LocalCacheConfig {
            max_bytes: 16 << 30,
        }
    }
}

/// `registry`: the OCI registry frontend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistryFrontendConfig {
    /// Relay installer pulls through the factory instead of redirecting to the external
    /// repository (for registries that need the factory's network path).
    pub proxy: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_options_split_like_upstream() {
        let parsed =
            RepositoryConfig::parse("registry.example:5000/image-factory/schematic").unwrap();
        assert_eq!(parsed.registry, "registry.example:5000");
        assert_eq!(parsed.namespace, "image-factory");
        assert_eq!(parsed.repository, "schematic");
        assert_eq!(parsed.path(), "image-factory/schematic");
        let two = RepositoryConfig::parse("127.0.0.1:5000/siderolabs").unwrap();
        assert_eq!(
            (two.namespace.as_str(), two.repository.as_str()),
            ("", "siderolabs")
        );
        assert_eq!(two.path(), "siderolabs");
        let deep = RepositoryConfig::parse("ghcr.io/a/b/c").unwrap();
        assert_eq!(
            (deep.namespace.as_str(), deep.path().as_str()),
            ("a/b", "a/b/c")
        );
        for bad in ["", "noregistry/repo", "ghcr.io//x", "ghcr.io"] {
            assert!(RepositoryConfig::parse(bad).is_err(), "{bad:?}");
        }
    }
}
