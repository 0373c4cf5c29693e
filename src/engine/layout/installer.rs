//! Installer images (imager.md §8): the release's installer base with one more layer holding
//! the boot artifacts, written as the `docker save` tarball the imager produces.

use crate::calendar::UtcTime;
use crate::engine::EngineError;
use crate::format::tar::{self, Member};
use crate::format::{self, Compression, SparseImage, WriteSink};
use crate::profile::{Arch, TalosVersion};
use bytes::Bytes;
use serde_json::json;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// One layer of the installer base, as stored (compressed) and as its config lists it.
#[derive(Debug, Clone)]
pub struct BaseLayer {
    pub blob: Bytes,
    pub media_type: String,
    /// `sha256:<hex>` of the uncompressed layer.
    pub diff_id: String,
}

/// Everything an installer image is made of.
#[derive(Debug, Clone)]
pub struct InstallerInputs {
    pub arch: Arch,
    /// The base installer's reference, the tarball's `RepoTags` entry.
    pub reference: String,
    /// The base image's config document.
    pub base_config: serde_json::Value,
    pub base_layers: Vec<BaseLayer>,
    /// `(path, bytes)` of the artifacts layer, e.g. `usr/install/amd64/vmlinuz.efi`.
    pub artifacts: Vec<(String, Bytes)>,
    /// `(path, bytes, mode)` of the overlay layer (none without an overlay):
    /// `overlay/artifacts/**`, `overlay/installers/default`, `overlay/extra-options`.
    pub overlay: Vec<(String, Bytes, u32)>,
    /// The config's `created` time (Unix seconds).
    pub created: i64,
}

/// What boots the installed system.
#[derive(Debug, Clone)]
pub enum BootArtifacts {
    /// systemd-boot and the UKI (from Talos 1.10, and every Secure Boot installer).
    Uki {
        sd_boot: Bytes,
        uki: Bytes,
        signed: bool,
    },
    /// The kernel and the initramfs (GRUB installers before 1.10).
    Kernel { kernel: Bytes, initramfs: Bytes },
}

/// The files of the artifacts layer. A signed UKI before Talos 1.10 keeps the imager's
/// `.signed` name, which those installers look for.
pub fn artifacts(arch: Arch, version: &TalosVersion, boot: BootArtifacts) -> Vec<(String, Bytes)> {
    let dir = format!("usr/install/{arch}");
    match boot {
        BootArtifacts::Uki {
            sd_boot,
            uki,
            signed,
        } => {
            let uki_name = if signed && !version.at_least(1, 10, 0) {
                "vmlinuz.efi.signed"
            } else {
                "vmlinuz.efi"
            };
            vec![
                (format!("{dir}/systemd-boot.efi"), sd_boot),
                (format!("{dir}/{uki_name}"), uki),
            ]
        }
        BootArtifacts::Kernel { kernel, initramfs } => vec![
            (format!("{dir}/initramfs.xz"), initramfs),
            (format!("{dir}/vmlinuz"), kernel),
        ],
    }
}

fn sha256(bytes: &[u8]) -> String {
    crate::hex::sha256_digest(bytes)
}

fn rfc3339(seconds: i64) -> String {
    let t = UtcTime::from_unix(seconds);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// The artifacts layer: entries sorted by path, mode 0, owned by root, time 0 (as the
/// imager writes it); returns (gzip blob, diff id).
pub fn artifacts_layer(files: &[(String, Bytes)]) -> Result<(Vec<u8>, String), EngineError> {
    let files: Vec<(String, Bytes, u32)> = files
        .iter()
        .map(|(name, bytes)| (name.clone(), bytes.clone(), 0))
        .collect();
    layer(&files)
}

/// A layer of files: entries sorted by path, owned by root, time 0; returns (gzip blob,
/// diff id).
fn layer(files: &[(String, Bytes, u32)]) -> Result<(Vec<u8>, String), EngineError> {
    let mut sorted = files.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let members = sorted
        .into_iter()
        .map(|(name, bytes, mode)| {
            let mut content = SparseImage::new(bytes.len() as u64);
            content.put_packed(0, bytes)?;
            Ok(Member {
                name,
                mode,
                content,
                sparse: false,
            })
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    let archive = tar::archive(members, 0)?;
    let mut plain = Vec::with_capacity(archive.size() as usize);
    format::encode(&archive, Compression::None, &mut WriteSink(&mut plain))
        .map_err(EngineError::io("artifacts layer"))?;
    let diff_id = sha256(&plain);
    let mut compressed = Vec::new();
    format::encode(&archive, Compression::Gzip, &mut WriteSink(&mut compressed))
        .map_err(EngineError::io("artifacts layer"))?;
    Ok((compressed, diff_id))
}

/// The image as its parts: config, manifest and layer blobs by digest.
#[derive(Debug, Clone)]
pub struct InstallerImage {
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    /// `(digest, blob)` in layer order.
    pub layers: Vec<(String, Bytes)>,
}

/// Builds the image: the base layers (only the first of an old two-layer full installer),
/// then the artifacts layer, then the overlay layer if there is one.
pub fn image(inputs: &InstallerInputs) -> Result<InstallerImage, EngineError> {
    let base = match inputs.base_layers.as_slice() {
        [first, _] => std::slice::from_ref(first),
        all => all,
    };
    let (artifacts, artifacts_diff_id) = artifacts_layer(&inputs.artifacts)?;
    let overlay = if inputs.overlay.is_empty() {
        None
    } else {
        Some(layer(&inputs.overlay)?)
    };
    let mut diff_ids: Vec<String> = base.iter().map(|layer| layer.diff_id.clone()).collect();
    diff_ids.push(artifacts_diff_id);
    if let Some((_, diff_id)) = &overlay {
        diff_ids.push(diff_id.clone());
    }
    let config = json!({
        "architecture": inputs.arch.as_str(),
        "created": rfc3339(inputs.created),
        "os": "linux",
        "config": inputs.base_config.get("config").cloned().unwrap_or_else(|| json!({})),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).map_err(EngineError::json("installer config"))?;
    let mut layers: Vec<(String, Bytes, String)> = base
        .iter()
        .map(|layer| {
            (
                sha256(&layer.blob),
                layer.blob.clone(),
                layer.media_type.clone(),
            )
        })
        .collect();
    let artifacts = Bytes::from(artifacts);
    layers.push((sha256(&artifacts), artifacts, OCI_LAYER_GZIP.into()));
    if let Some((blob, _)) = overlay {
        let blob = Bytes::from(blob);
        layers.push((sha256(&blob), blob, OCI_LAYER_GZIP.into()));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": config.len(), "digest": sha256(&config)},
        "layers": layers
            .iter()
            .map(|(digest, blob, media_type)| json!({
                "mediaType": media_type,
                "size": blob.len(),
                "digest": digest,
            }))
            .collect::<Vec<_>>(),
    });
    let manifest =
        serde_json::to_vec(&manifest).map_err(EngineError::json("installer manifest"))?;
    Ok(InstallerImage {
        config,
        manifest,
        layers: layers
            .into_iter()
            .map(|(digest, blob, _)| (digest, blob))
            .collect(),
    })
}

/// The `docker save` tarball of the image: the config named by its digest, each layer as
/// `<hex>.tar.gz`, then `manifest.json` with the base reference as its tag.
pub fn tarball(inputs: &InstallerInputs) -> Result<SparseImage, EngineError> {
    let image = image(inputs)?;
    let config_name = sha256(&image.config);
    let layer_names: Vec<String> = image
        .layers
        .iter()
        .map(|(digest, _)| format!("{}.tar.gz", digest.trim_start_matches("sha256:")))
        .collect();
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": [inputs.reference],
        "Layers": layer_names,
    }]);
    let manifest =
        serde_json::to_vec(&manifest).map_err(EngineError::json("installer manifest"))?;
    let member = |name: String, bytes: Bytes, packed: bool| -> Result<Member, EngineError> {
        let mut content = SparseImage::new(bytes.len() as u64);
        if packed {
            content.put_packed(0, bytes)?;
        } else {
            content.put(0, bytes)?;
        }
        Ok(Member {
            name,
            mode: 0o644,
            content,
            sparse: false,
        })
    };
    let mut members = vec![member(config_name, Bytes::from(image.config), false)?];
    for (name, (_, blob)) in layer_names.into_iter().zip(image.layers) {
        members.push(member(name, blob, true)?);
    }
    members.push(member(
        "manifest.json".into(),
        Bytes::from(manifest),
        false,
    )?);
    Ok(tar::archive(members, 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_follow_the_boot_and_the_version() {
        let v = |minor| TalosVersion::new(semver::Version::new(1, minor, 0));
        let uki = |signed| BootArtifacts::Uki {
            sd_boot: Bytes::new(),
            uki: Bytes::new(),
            signed,
        };
        let names = |minor, boot| {
            artifacts(Arch::Arm64, &v(minor), boot)
                .into_iter()
                .map(|(name, _)| name)
                .collect::<Vec<_>>()
        };
        let uki_names = [
            "usr/install/arm64/systemd-boot.efi",
            "usr/install/arm64/vmlinuz.efi",
        ];
        assert_eq!(names(12, uki(false)), uki_names);
        assert_eq!(names(12, uki(true)), uki_names);
        assert_eq!(
            names(9, uki(true)),
            [
                "usr/install/arm64/systemd-boot.efi",
                "usr/install/arm64/vmlinuz.efi.signed"
            ]
        );
        let kernel = BootArtifacts::Kernel {
            kernel: Bytes::new(),
            initramfs: Bytes::new(),
        };
        assert_eq!(
            names(9, kernel),
            [
                "usr/install/arm64/initramfs.xz",
                "usr/install/arm64/vmlinuz"
            ]
        );
    }

    #[test]
    fn old_full_installers_keep_their_first_layer() {
        let layer = |n: u8| BaseLayer {
            blob: Bytes::from(vec![n; 10]),
            media_type: OCI_LAYER_GZIP.into(),
            diff_id: format!("sha256:{}", "0".repeat(63) + &n.to_string()),
        };
        let inputs = InstallerInputs {
            arch: Arch::Amd64,
            reference: "ghcr.io/siderolabs/installer:v1.9.6".into(),
            base_config: json!({"config": {"Entrypoint": ["/bin/installer"]}}),
            base_layers: vec![layer(1), layer(2)],
            artifacts: vec![("usr/install/amd64/vmlinuz".into(), Bytes::from_static(b"k"))],
            overlay: Vec::new(),
            created: 0,
        };
        let image = image(&inputs).unwrap();
        assert_eq!(image.layers.len(), 2);
        let config: serde_json::Value = serde_json::from_slice(&image.config).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        assert_eq!(config["config"]["Entrypoint"][0], "/bin/installer");
        assert_eq!(config["created"], "1970-01-01T00:00:00Z");
        assert_eq!(config["architecture"], "amd64");
    }
}
