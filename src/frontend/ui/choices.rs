//! What a user chose in the wizard, read from a query string or form (repeated
//! `extensions` fields included), turned into the schematic those choices mean. Pure: no
//! I/O, so the page, the preview and the tests agree on one schematic per set of choices.

use crate::schematic::{Bootloader, Schematic, SchematicError};

/// Where the node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    #[default]
    Metal,
    Cloud,
    Sbc,
}

impl Target {
    pub const ALL: [Target; 3] = [Target::Metal, Target::Cloud, Target::Sbc];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::Metal => "metal",
            Target::Cloud => "cloud",
            Target::Sbc => "sbc",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Target::Metal => "Bare metal",
            Target::Cloud => "Cloud server",
            Target::Sbc => "Single-board computer",
        }
    }

    fn parse(text: &str) -> Option<Target> {
        Target::ALL
            .into_iter()
            .find(|target| target.as_str() == text)
    }
}

/// The wizard's steps, in order.
pub const STEPS: [&str; 6] = [
    "Hardware",
    "Talos version",
    "Platform",
    "Architecture",
    "System extensions",
    "Customization",
];

/// Every field of the wizard; absent fields take the defaults the page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Choices {
    /// How many steps are done (0 to `STEPS.len()`); the review follows the last.
    pub step: usize,
    pub target: Target,
    pub version: String,
    pub platform: String,
    pub board: String,
    pub arch: String,
    pub secureboot: bool,
    pub extensions: Vec<String>,
    pub cmdline: String,
    pub bootloader: String,
    pub overlay_options: String,
    /// A machine configuration embedded in the image (Talos 1.12 and later).
    pub embedded_config: String,
    /// Set when the page was opened from a stored schematic.
    pub schematic_id: String,
}

impl Choices {
    /// Reads `application/x-www-form-urlencoded` text (a query string or a form body).
    pub fn parse(encoded: &str) -> Choices {
        let mut choices = Choices::default();
        for (name, value) in form_urlencoded::parse(encoded.as_bytes()) {
            let value = value.into_owned();
            match name.as_ref() {
                "step" => choices.step = value.parse().unwrap_or(0).min(STEPS.len()),
                "target" => choices.target = Target::parse(&value).unwrap_or_default(),
                "version" => choices.version = value,
                "platform" => choices.platform = value,
                "board" => choices.board = value,
                "arch" => choices.arch = value,
                "secureboot" => choices.secureboot = matches!(value.as_str(), "on" | "true" | "1"),
                "extensions" if !value.is_empty() && !choices.extensions.contains(&value) => {
                    choices.extensions.push(value);
                }
                "cmdline" => choices.cmdline = value,
                "bootloader" => choices.bootloader = value,
                "overlay-options" => choices.overlay_options = value,
                "embedded-config" => choices.embedded_config = value,
                "schematic-id" => choices.schematic_id = value,
                _ => {}
            }
        }
        choices.extensions.sort();
        choices
    }

    /// The choices as a query string (what the page's URL says, so it can be shared).
    pub fn to_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("step", &self.step.to_string());
        query.append_pair("target", self.target.as_str());
        for (name, value) in [
            ("version", &self.version),
            ("platform", &self.platform),
            ("board", &self.board),
            ("arch", &self.arch),
            ("cmdline", &self.cmdline),
            ("bootloader", &self.bootloader),
            ("overlay-options", &self.overlay_options),
            ("embedded-config", &self.embedded_config),
        ] {
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        if self.secureboot {
            query.append_pair("secureboot", "on");
        }
        for extension in &self.extensions {
            query.append_pair("extensions", extension);
        }
        query.finish()
    }

    /// The kernel arguments, split on whitespace.
    pub fn kernel_args(&self) -> Vec<String> {
        self.cmdline.split_whitespace().map(String::from).collect()
    }

    /// The schematic these choices mean; `overlay_image` is the board's overlay image
    /// from the catalog (SBC only).
    pub fn schematic(&self, overlay_image: Option<&str>) -> Result<Schematic, SchematicError> {
        let mut schematic = Schematic::default();
        let customization = &mut schematic.customization;
        customization.extra_kernel_args = self.kernel_args();
        customization.system_extensions.official_extensions = self.extensions.clone();
        customization.bootloader = Bootloader::parse(&self.bootloader).unwrap_or_default();
        customization.embedded_machine_configuration = self.embedded_config.clone();
        if let (Target::Sbc, Some(image)) = (self.target, overlay_image) {
            schematic.overlay.image = image.to_string();
            schematic.overlay.name = self.board.clone();
            if !self.overlay_options.trim().is_empty() {
                let indented: String = self
                    .overlay_options
                    .lines()
                    .map(|line| format!("    {line}\n"))
                    .collect();
                let document = format!("overlay:\n  options:\n{indented}");
                schematic.overlay.options = Schematic::parse(document.as_bytes())?.overlay.options;
            }
        }
        // The canonical text goes through the same checks as an uploaded schematic.
        Schematic::parse_valid(schematic.canonical().as_bytes())
    }

    /// Choices that reproduce a stored schematic (the page opened with `?schematic-id=`).
    pub fn from_schematic(schematic: &Schematic, id: &str) -> Choices {
        let customization = &schematic.customization;
        let sbc = !schematic.overlay.name.is_empty();
        let options = if schematic.overlay.options.is_empty() {
            String::new()
        } else {
            let mut overlay = Schematic::default();
            overlay.overlay.options = schematic.overlay.options.clone();
            overlay.overlay.image = "x".into();
            overlay.overlay.name = "x".into();
            // The options block of the canonical text, unindented.
            overlay
                .canonical()
                .lines()
                .skip_while(|line| !line.starts_with("    options:"))
                .skip(1)
                .map_while(|line| line.strip_prefix("        "))
                .map(|line| format!("{line}\n"))
                .collect()
        };
        Choices {
            step: STEPS.len(),
            target: if sbc { Target::Sbc } else { Target::Metal },
            board: schematic.overlay.name.clone(),
            extensions: customization.system_extensions.official_extensions.clone(),
            cmdline: customization.extra_kernel_args.join(" "),
            bootloader: match customization.bootloader {
                Bootloader::None => String::new(),
                other => other.as_str().to_string(),
            },
            overlay_options: options,
            embedded_config: customization.embedded_machine_configuration.clone(),
            schematic_id: id.to_string(),
            ..Choices::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_round_trips_and_extensions_repeat() {
        let choices = Choices::parse(
            "step=5&target=metal&version=v1.12.0&arch=amd64&extensions=siderolabs%2Fgvisor\
             &extensions=siderolabs%2Famd-ucode&cmdline=a%3D1+b&secureboot=on\
             &embedded-config=machine%3A+%7B%7D%0A",
        );
        assert_eq!(choices.step, 5);
        assert_eq!(
            choices.extensions,
            ["siderolabs/amd-ucode", "siderolabs/gvisor"]
        );
        assert!(choices.secureboot);
        assert_eq!(choices.kernel_args(), ["a=1", "b"]);
        assert_eq!(choices.embedded_config, "machine: {}\n");
        let schematic = choices.schematic(None).unwrap();
        assert_eq!(
            schematic.customization.embedded_machine_configuration,
            "machine: {}\n"
        );
        let reopened = Choices::from_schematic(&schematic, "id");
        assert_eq!(reopened.embedded_config, choices.embedded_config);
        assert_eq!(Choices::parse(&choices.to_query()), choices);
    }

    #[test]
    fn the_schematic_is_what_post_schematics_would_store() {
        let choices =
            Choices::parse("target=metal&extensions=siderolabs%2Fgvisor&cmdline=console%3DttyS0");
        let schematic = choices.schematic(None).unwrap();
        let uploaded = Schematic::parse_valid(
            b"customization:\n  extraKernelArgs: [console=ttyS0]\n  systemExtensions:\n    \
              officialExtensions: [siderolabs/gvisor]\n",
        )
        .unwrap();
        assert_eq!(schematic.id(), uploaded.id());
    }

    #[test]
    fn board_options_come_back_from_a_stored_schematic() {
        let choices = Choices::parse(
            "target=sbc&board=rpi_generic&overlay-options=configTxtAppend%3A+dtoverlay%3Dx%0A",
        );
        let schematic = choices
            .schematic(Some("siderolabs/sbc-raspberrypi"))
            .unwrap();
        assert_eq!(schematic.overlay.image, "siderolabs/sbc-raspberrypi");
        let id = schematic.id().to_string();
        let reopened = Choices::from_schematic(&schematic, &id);
        assert_eq!(reopened.target, Target::Sbc);
        let again = reopened
            .schematic(Some("siderolabs/sbc-raspberrypi"))
            .unwrap();
        assert_eq!(again.id().to_string(), id);
        let broken = Choices::parse("target=sbc&board=b&overlay-options=%3A+%5B");
        assert!(broken.schematic(Some("siderolabs/x")).is_err());
    }
}
