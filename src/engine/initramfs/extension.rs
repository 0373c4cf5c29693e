//! System extensions: the manifest (`manifest.yaml` + `rootfs/`), Talos compatibility
//! ranges, checkout from a pulled image, and the virtual `schematic` and `embedded-config`
//! extensions.

use crate::engine::EngineError;
use crate::profile::TalosVersion;
use crate::source::{Entry, FileTree};
use crate::yaml::emit::{Emit, to_string};
use crate::yaml::node::{Node, NodeKind, read_first_document};
use semver::Version;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// An extension's `manifest.yaml` metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub author: String,
    pub description: String,
    /// `compatibility.talos.version`, a range such as `>= v1.9.0`.
    pub compatibility: Option<String>,
    pub extra_info: Option<String>,
}

/// An extension ready to be squashed: its manifest and its root file system.
#[derive(Debug, Clone, PartialEq)]
pub struct Extension {
    pub manifest: Manifest,
    /// Entries relative to the extension's `rootfs/`.
    pub rootfs: BTreeMap<String, Entry>,
    /// SELinux labels (`security.selinux`) by path relative to `rootfs/`.
    pub selinux: BTreeMap<String, String>,
}

fn s(text: &str) -> Emit {
    Emit::Str(text.to_string())
}

impl Manifest {
    /// The `metadata` mapping, keys in Talos's order (name, version, author, description,
    /// compatibility, extraInfo).
    pub fn metadata_emit(&self) -> Emit {
        let mut fields = vec![
            (s("name"), s(&self.name)),
            (s("version"), s(&self.version)),
            (s("author"), s(&self.author)),
            (s("description"), s(&self.description)),
        ];
        if let Some(range) = &self.compatibility {
            fields.push((
                s("compatibility"),
                Emit::Map(vec![(
                    s("talos"),
                    Emit::Map(vec![(s("version"), s(range))]),
                )]),
            ));
        }
        if let Some(extra) = &self.extra_info {
            fields.push((s("extraInfo"), s(extra)));
        }
        Emit::Map(fields)
    }

    /// The whole `manifest.yaml`.
    pub fn to_yaml(&self) -> String {
        to_string(&Emit::Map(vec![
            (s("version"), s("v1alpha1")),
            (s("metadata"), self.metadata_emit()),
        ]))
    }

    pub fn parse(image: &str, text: &[u8]) -> Result<Manifest, EngineError> {
        let invalid = |why: String| EngineError::InvalidExtension {
            extension: image.to_string(),
            reason: why,
        };
        let text =
            std::str::from_utf8(text).map_err(|_| invalid("manifest.yaml is not UTF-8".into()))?;
        let root = read_first_document(text)
            .map_err(|error| invalid(format!("manifest.yaml: {error}")))?
            .ok_or_else(|| invalid("manifest.yaml is empty".into()))?;
        let get = |node: &Node, key: &str| -> Option<Node> {
            match &node.kind {
                NodeKind::Mapping(entries) => entries
                    .iter()
                    .find(|(name, _)| name.scalar_text() == Some(key))
                    .map(|(_, value)| value.clone()),
                _ => None,
            }
        };
        let text_of = |node: Option<Node>| node.and_then(|n| n.scalar_text().map(str::to_string));
        let metadata = get(&root, "metadata")
            .ok_or_else(|| invalid("manifest.yaml has no metadata".into()))?;
        let name = text_of(get(&metadata, "name")).unwrap_or_default();
        if name.is_empty() {
            return Err(invalid("manifest.yaml has no metadata.name".into()));
        }
        let compatibility = get(&metadata, "compatibility")
            .and_then(|c| get(&c, "talos"))
            .and_then(|t| text_of(get(&t, "version")));
        Ok(Manifest {
            name,
            version: text_of(get(&metadata, "version")).unwrap_or_default(),
            author: text_of(get(&metadata, "author")).unwrap_or_default(),
            description: text_of(get(&metadata, "description")).unwrap_or_default(),
            compatibility,
            extra_info: text_of(get(&metadata, "extraInfo")),
        })
    }

    /// Whether the range admits `version` (compared as major.minor.patch).
    pub fn compatible_with(&self, version: &TalosVersion) -> Result<bool, String> {
        match &self.compatibility {
            None => Ok(true),
            Some(range) => range_matches(range, &version.version),
        }
    }
}

/// A Talos compatibility range: comparators joined by spaces (all must hold) and
/// alternatives joined by `||`; a `v` before a version is ignored.
pub fn range_matches(range: &str, version: &Version) -> Result<bool, String> {
    let version = Version::new(version.major, version.minor, version.patch);
    let mut any = false;
    for alternative in range.split("||") {
        let tokens: Vec<&str> = alternative.split_whitespace().collect();
        if tokens.is_empty() {
            return Err(format!("empty alternative in range {range:?}"));
        }
        let mut all = true;
        let mut tokens = tokens.into_iter();
        while let Some(token) = tokens.next() {
            let split = token
                .find(|c: char| c.is_ascii_digit() || c == 'v')
                .unwrap_or(token.len());
            let (operator, mut operand) = token.split_at(split);
            if operand.is_empty() {
                operand = tokens.next().ok_or_else(|| {
                    format!("operator {operator:?} without a version in {range:?}")
                })?;
            }
            let operand = operand.strip_prefix('v').unwrap_or(operand);
            let bound = Version::parse(operand)
                .map_err(|error| format!("bad version {operand:?} in range {range:?}: {error}"))?;
            let holds = match operator {
                ">=" => version >= bound,
                ">" => version > bound,
                "<=" => version <= bound,
                "<" => version < bound,
                "" | "=" | "==" => version == bound,
                "!=" | "!" => version != bound,
                other => return Err(format!("unknown operator {other:?} in range {range:?}")),
            };
            all &= holds;
        }
        any |= all;
    }
    Ok(any)
}

/// Checks out a pulled extension image: exactly `manifest.yaml` and `rootfs/` at the top.
pub fn checkout(image: &str, tree: &FileTree) -> Result<Extension, EngineError> {
    let invalid = |why: String| EngineError::InvalidExtension {
        extension: image.to_string(),
        reason: why,
    };
    for path in tree.entries().keys() {
        let top = path.split('/').next().unwrap_or(path);
        if top != "manifest.yaml" && top != "rootfs" {
            return Err(invalid(format!(
                "unexpected top-level entry {top:?} (an extension holds manifest.yaml and rootfs/ only)"
            )));
        }
    }
    let manifest = tree
        .file("manifest.yaml")
        .ok_or_else(|| invalid("manifest.yaml is missing".into()))?;
    let manifest = Manifest::parse(image, manifest)?;
    let mut rootfs = BTreeMap::new();
    let mut selinux = BTreeMap::new();
    for (path, entry) in tree.under("rootfs") {
        let relative = path["rootfs/".len()..].to_string();
        // Directories are made owner-accessible, as Talos's extractor does.
        let entry = match entry {
            Entry::Dir { mode } => Entry::Dir { mode: mode | 0o700 },
            other => other.clone(),
        };
        if let Some(label) = tree
            .xattrs(path)
            .and_then(|xattrs| xattrs.get("security.selinux"))
        {
            selinux.insert(
                relative.clone(),
                String::from_utf8_lossy(label)
                    .trim_end_matches('\0')
                    .to_string(),
            );
        }
        rootfs.insert(relative, entry);
    }
    Ok(Extension {
        manifest,
        rootfs,
        selinux,
    })
}

fn dirs(rootfs: &mut BTreeMap<String, Entry>, path: &str) {
    let mut prefix = String::new();
    for component in path.split('/') {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(component);
        rootfs.insert(prefix.clone(), Entry::Dir { mode: 0o755 });
    }
}

/// The virtual `schematic` extension (an empty file named by the ID; the canonical YAML as
/// `extraInfo` from Talos 1.7).
pub fn schematic_extension(
    id: &str,
    canonical: &str,
    external_url: &str,
    version: &TalosVersion,
) -> Extension {
    let mut rootfs = BTreeMap::new();
    dirs(&mut rootfs, "usr/local/share/schematic");
    rootfs.insert(
        format!("usr/local/share/schematic/{id}"),
        Entry::File {
            data: Vec::new(),
            mode: 0o644,
        },
    );
    Extension {
        manifest: Manifest {
            name: "schematic".into(),
            version: id.to_string(),
            author: format!("Image Factory ({external_url})"),
            description:
                "Virtual extension which specifies the schematic of the image built with schematic."
                    .into(),
            compatibility: Some(">= 1.0.0".into()),
            extra_info: version.at_least(1, 7, 0).then(|| canonical.to_string()),
        },
        rootfs,
        selinux: BTreeMap::new(),
    }
}

/// The virtual `embedded-config` extension (Talos ≥ 1.12): the machine configuration at
/// `/usr/local/etc/talos/config.yaml`.
pub fn embedded_config_extension(config: &str) -> Extension {
    let mut rootfs = BTreeMap::new();
    dirs(&mut rootfs, "usr/local/etc/talos");
    rootfs.insert(
        "usr/local/etc/talos/config.yaml".into(),
        Entry::File {
            data: config.as_bytes().to_vec(),
            mode: 0o400,
        },
    );
    let mut selinux = BTreeMap::new();
    selinux.insert(
        "usr/local/etc/talos/config.yaml".into(),
        "system_u:object_r:system_state_t:s0".into(),
    );
    let digest = Sha256::digest(config.as_bytes());
    Extension {
        manifest: Manifest {
            name: "embedded-config".into(),
            version: digest.iter().map(|b| format!("{b:02x}")).collect(),
            author: "Imager".into(),
            description: "Virtual extension which embeds the machine configuration.".into(),
            compatibility: Some(">= 1.0.0".into()),
            extra_info: None,
        },
        rootfs,
        selinux,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> TalosVersion {
        TalosVersion::new(Version::parse(text).unwrap())
    }

    #[test]
    fn schematic_manifest_matches_upstream_bytes() {
        let canonical = "customization: {}\n";
        let id = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
        let extension = schematic_extension(
            id,
            canonical,
            "https://factory.talos.dev/",
            &version("1.11.0"),
        );
        assert_eq!(
            extension.manifest.to_yaml(),
            "version: v1alpha1\nmetadata:\n    name: schematic\n    version: 376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba\n    author: Image Factory (https://factory.talos.dev/)\n    description: Virtual extension which specifies the schematic of the image built with schematic.\n    compatibility:\n        talos:\n            version: '>= 1.0.0'\n    extraInfo: |\n        customization: {}\n"
        );
        let old = schematic_extension(
            id,
            canonical,
            "https://factory.talos.dev/",
            &version("1.6.0"),
        );
        assert!(old.manifest.extra_info.is_none());
        assert!(
            extension
                .rootfs
                .contains_key(&format!("usr/local/share/schematic/{id}"))
        );
    }

    #[test]
    fn ranges() {
        let v = |text: &str| Version::parse(text).unwrap();
        assert!(range_matches(">= v1.9.0", &v("1.9.6")).unwrap());
        assert!(!range_matches(">= v1.10.0", &v("1.9.6")).unwrap());
        assert!(range_matches(">= 1.10.0", &v("1.13.0-beta.0")).unwrap());
        assert!(range_matches(">=1.5.0 <1.6.0", &v("1.5.3")).unwrap());
        assert!(!range_matches(">=1.5.0 <1.6.0", &v("1.6.0")).unwrap());
        assert!(range_matches("<1.0.0 || >=1.9.0", &v("1.9.0")).unwrap());
        assert!(range_matches("~1.0", &v("1.0.0")).is_err());
    }

    #[test]
    fn manifests_round_trip() {
        let manifest = Manifest {
            name: "gvisor".into(),
            version: "20250505.0".into(),
            author: "Sidero Labs".into(),
            description: "multi\nline\n".into(),
            compatibility: Some(">= v1.9.0".into()),
            extra_info: None,
        };
        assert_eq!(
            Manifest::parse("x", manifest.to_yaml().as_bytes()).unwrap(),
            manifest
        );
    }
}
