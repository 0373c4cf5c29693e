//! The pages' data: what the release offers for the choices so far (versions, platforms,
//! boards, architectures, extensions, bootloaders, Secure Boot, each from the service the
//! API uses), the live schematic preview, and the result page's links.

use super::choices::{Choices, STEPS, Target};
use super::links::{self, Link, SECURE_BOOT_PLATFORMS};
use crate::service::Factory;
use crate::version::TalosVersion;
use askama::Template;

/// One option of a select or radio group.
#[derive(Debug, Clone)]
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
    pub unavailable: Option<String>,
}

fn opt(value: &str, label: &str, selected: bool) -> Opt {
    Opt {
        value: value.into(),
        label: label.into(),
        selected,
        unavailable: None,
    }
}

#[derive(Debug, Clone)]
pub struct ExtensionOpt {
    pub name: String,
    pub description: String,
    pub search: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "ui/wizard.html")]
struct WizardPage {
    step: usize,
    last_step: usize,
    target_value: &'static str,
    targets: Vec<Opt>,
    versions: Vec<Opt>,
    platform_legend: &'static str,
    platforms: Vec<Opt>,
    boards: Vec<Opt>,
    boards_unavailable: String,
    archs: Vec<Opt>,
    secureboot: bool,
    secureboot_unavailable: Option<String>,
    extensions: Vec<ExtensionOpt>,
    cmdline: String,
    bootloaders: Vec<Opt>,
    overlay_options: String,
    embedded_config_offered: bool,
    embedded_config: String,
    problem: Option<String>,
    id: String,
    yaml: String,
}

#[derive(Template)]
#[template(path = "ui/wizard_form.html")]
struct WizardForm<'a> {
    page: &'a WizardPage,
}

impl std::ops::Deref for WizardForm<'_> {
    type Target = WizardPage;
    fn deref(&self) -> &WizardPage {
        self.page
    }
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

#[derive(Template)]
#[template(path = "ui/result.html")]
struct ResultPage {
    id: String,
    yaml: String,
    version: String,
    summary: String,
    links: Vec<Link>,
    installer: String,
    edit: String,
    /// What to do with the downloads, for this target.
    first_boot: &'static str,
    /// Commands that use the schematic directly.
    commands: Vec<String>,
    /// The talosctl binaries of the version, when the factory offers them.
    talosctl: Option<String>,
}

pub fn error(title: &str, message: &str) -> Result<String, askama::Error> {
    ErrorPage { title, message }.render()
}

#[derive(Debug)]
pub enum PageError {
    UnknownVersion(String),
    Unavailable(String),
}

#[derive(Debug)]
pub enum ResultError {
    UnknownSchematic,
    UnknownVersion,
}

/// The overlay image of the chosen board, from the version's catalog.
pub async fn overlay_image(factory: &Factory, choices: &Choices) -> Option<String> {
    if choices.target != Target::Sbc {
        return None;
    }
    let overlays = factory.overlays(&choices.version).await.ok()?;
    overlays
        .iter()
        .find(|overlay| overlay.name == choices.board)
        .map(|overlay| overlay.image.clone())
}

/// Fills the defaults the page shows (newest stable version, first platform, first board,
/// first architecture) and renders the wizard.
pub async fn wizard(
    factory: &Factory,
    choices: &mut Choices,
    fragment: bool,
) -> Result<Result<String, askama::Error>, PageError> {
    let tags = factory
        .versions(false)
        .await
        .map_err(|error| PageError::Unavailable(error.to_string()))?;
    let parsed: Vec<(String, TalosVersion)> = tags
        .iter()
        .rev()
        .filter_map(|tag| Some((tag.clone(), TalosVersion::parse(tag).ok()?)))
        .collect();
    if choices.version.is_empty() {
        choices.version = parsed
            .iter()
            .find(|(tag, _)| !tag.contains('-'))
            .or(parsed.first())
            .map(|(tag, _)| tag.clone())
            .unwrap_or_default();
    }
    let Some((_, version)) = parsed.iter().find(|(tag, _)| *tag == choices.version) else {
        return Err(PageError::UnknownVersion(choices.version.clone()));
    };
    let versions = parsed
        .iter()
        .map(|(tag, _)| {
            let label = if tag.contains('-') {
                format!("{tag} (pre-release)")
            } else {
                tag.clone()
            };
            opt(tag, &label, *tag == choices.version)
        })
        .collect();

    let overlays = factory.overlays(&choices.version).await.ok();
    let boards_unavailable = match &overlays {
        Some(list) if list.is_empty() => "This version's overlay catalog lists no boards.".into(),
        Some(_) => String::new(),
        None => "Talos boards need overlays, which this version does not have.".into(),
    };
    let targets = Target::ALL
        .iter()
        .map(|target| {
            let mut option = opt(target.as_str(), target.label(), *target == choices.target);
            if *target == Target::Sbc && !boards_unavailable.is_empty() {
                option.unavailable = Some(boards_unavailable.clone());
            }
            option
        })
        .collect();
    let platforms: Vec<&str> = crate::profile::PLATFORMS
        .iter()
        .filter(|platform| platform.disk_size != 0 && platform.name != "metal")
        .map(|platform| platform.name)
        .collect();
    if choices.target == Target::Cloud && !platforms.contains(&choices.platform.as_str()) {
        choices.platform = "aws".into();
    }
    let boards: Vec<Opt> = overlays
        .iter()
        .flat_map(|list| list.iter())
        .map(|overlay| {
            opt(
                &overlay.name,
                &format!("{} ({})", overlay.name, overlay.image),
                overlay.name == choices.board,
            )
        })
        .collect();
    if choices.target == Target::Sbc
        && !boards.iter().any(|board| board.value == choices.board)
        && let Some(first) = boards.first()
    {
        choices.board = first.value.clone();
    }
    let platform = match choices.target {
        Target::Cloud => choices.platform.clone(),
        _ => "metal".into(),
    };
    let arches = links::architectures(choices.target, &platform);
    if !arches.contains(&choices.arch.as_str())
        && let Some(first) = arches.first()
    {
        choices.arch = (*first).into();
    }
    let secureboot_unavailable = if factory.secure_boot.is_none() {
        Some("this factory has no Secure Boot signing keys (secureBoot.enabled)".to_string())
    } else if choices.target == Target::Sbc {
        Some("boards boot through their own firmware".into())
    } else if !SECURE_BOOT_PLATFORMS.contains(&platform.as_str()) {
        Some(format!(
            "the {platform} platform does not boot Secure Boot images"
        ))
    } else if !version.at_least(1, 5, 0) {
        Some("it needs Talos 1.5 or later".into())
    } else {
        None
    };
    if secureboot_unavailable.is_some() {
        choices.secureboot = false;
    }
    let extensions = match factory.extensions(&choices.version).await {
        Ok(list) => list
            .iter()
            .map(|extension| ExtensionOpt {
                search: format!("{} {}", extension.name, extension.description).to_lowercase(),
                selected: choices.extensions.contains(&extension.name),
                name: extension.name.clone(),
                description: extension.description.clone(),
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let mut bootloaders = vec![opt(
        "",
        "Default for the version",
        choices.bootloader.is_empty(),
    )];
    if version.at_least(1, 10, 0) {
        for (value, label) in [
            ("sd-boot", "systemd-boot (UEFI)"),
            ("grub", "GRUB"),
            ("dual-boot", "GRUB for BIOS and systemd-boot for UEFI"),
        ] {
            bootloaders.push(opt(value, label, choices.bootloader == value));
        }
    }
    let overlay_image = overlay_image(factory, choices).await;
    let (problem, id, yaml) = match choices.schematic(overlay_image.as_deref()) {
        Ok(schematic) => (None, schematic.id().to_string(), schematic.canonical()),
        Err(error) => (Some(error.to_string()), String::new(), String::new()),
    };
    let page = WizardPage {
        step: choices.step,
        last_step: STEPS.len() - 1,
        target_value: choices.target.as_str(),
        targets,
        versions,
        platform_legend: match choices.target {
            Target::Cloud => "Cloud platform",
            Target::Sbc => "Board",
            Target::Metal => "Platform",
        },
        platforms: platforms
            .iter()
            .map(|name| opt(name, name, *name == choices.platform))
            .collect(),
        boards,
        boards_unavailable,
        archs: arches
            .iter()
            .map(|arch| opt(arch, arch, *arch == choices.arch))
            .collect(),
        secureboot: choices.secureboot,
        secureboot_unavailable,
        extensions,
        cmdline: choices.cmdline.clone(),
        bootloaders,
        overlay_options: choices.overlay_options.clone(),
        embedded_config_offered: version.at_least(1, 12, 0),
        embedded_config: choices.embedded_config.clone(),
        problem,
        id,
        yaml,
    };
    Ok(if fragment {
        WizardForm { page: &page }.render()
    } else {
        page.render()
    })
}

/// The result page of a stored schematic.
pub async fn result(
    factory: &Factory,
    choices: &Choices,
) -> Result<Result<String, askama::Error>, ResultError> {
    let yaml = factory
        .schematic(&choices.schematic_id)
        .await
        .map_err(|_| ResultError::UnknownSchematic)?;
    let tags = factory
        .versions(false)
        .await
        .map_err(|_| ResultError::UnknownVersion)?;
    if !tags.contains(&choices.version) {
        return Err(ResultError::UnknownVersion);
    }
    let version = TalosVersion::parse(&choices.version).map_err(|_| ResultError::UnknownVersion)?;
    let http = &factory.config.http;
    let pxe = if http.external_pxe_url.is_empty() {
        &http.external_url
    } else {
        &http.external_pxe_url
    };
    let id = &choices.schematic_id;
    let mut found = links::links(choices, id, &version, &http.external_url, pxe);
    for link in &mut found {
        if let Some(asset) = &link.asset
            && let Ok(plan) = factory.resolve(id, &choices.version, asset).await
        {
            link.size = factory
                .builds
                .cache
                .get(&plan.key)
                .map(|entry| links::human_size(entry.size));
        }
    }
    let summary = match choices.target {
        Target::Cloud => format!("{} {}", choices.platform, choices.arch),
        Target::Sbc => format!("board {} (arm64)", choices.board),
        Target::Metal => format!("bare metal {}", choices.arch),
    };
    let summary = if choices.secureboot {
        format!("{summary}, Secure Boot")
    } else {
        summary
    };
    let mut edit = choices.clone();
    edit.step = STEPS.len() - 1;
    let tag = version.tag();
    let mut commands = Vec::new();
    if version.at_least(1, 12, 0) {
        commands.push(format!(
            "talosctl cluster create qemu --schematic-id={id} --talos-version={tag}"
        ));
    }
    if choices.target == Target::Metal {
        commands.push(format!(
            "docker run --rm --network host ghcr.io/siderolabs/booter:v0.3.0 \
             --talos-version={tag} --schematic-id={id}"
        ));
    }
    let base = http.external_url.trim_end_matches('/');
    Ok(ResultPage {
        first_boot: match choices.target {
            Target::Metal => {
                "Boot the ISO (or PXE), or write the disk image to the node's disk, then apply \
                 a machine configuration with talosctl."
            }
            Target::Cloud => {
                "Upload the disk image to your cloud as an image, start a server from it, then \
                 apply a machine configuration with talosctl."
            }
            Target::Sbc => {
                "Write the disk image to the board's SD card or eMMC, power it on, then apply \
                 a machine configuration with talosctl."
            }
        },
        commands,
        talosctl: version
            .at_least(1, 11, 0)
            .then(|| format!("{base}/talosctl/{tag}")),
        installer: links::installer_reference(choices, id, &version, &http.external_url),
        id: id.clone(),
        yaml,
        version: choices.version.clone(),
        summary,
        links: found,
        edit: format!("/?{}", edit.to_query()),
    }
    .render())
}
