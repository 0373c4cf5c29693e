//! Talos versions: parsed strictly where users and the configuration write them, tolerantly
//! (as upstream does) where registries tag them, written back as `v` tags, and the thresholds
//! where Talos's layout changes.

use semver::Version;

/// A version that is not semver (with or without its `v`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Talos version {text:?}: {reason}")]
pub struct VersionError {
    pub text: String,
    /// semver's explanation (its error type is neither `Clone` nor `Eq`).
    pub reason: String,
}

/// The Talos version an asset is built for, with the quirk thresholds it crosses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TalosVersion {
    pub version: Version,
}

impl TalosVersion {
    pub fn new(version: Version) -> TalosVersion {
        TalosVersion { version }
    }

    /// A version a user or the configuration wrote (`v` optional), parsed strictly.
    pub fn parse(text: &str) -> Result<TalosVersion, VersionError> {
        parse_strict(text).map(TalosVersion::new)
    }

    /// `v` + semver, as in URLs and image tags.
    pub fn tag(&self) -> String {
        tag_of(&self.version)
    }

    /// Thresholds compare only major.minor.patch (pre-releases count as the release).
    pub fn at_least(&self, major: u64, minor: u64, patch: u64) -> bool {
        let v = &self.version;
        (v.major, v.minor, v.patch) >= (major, minor, patch)
    }

    /// Extension squashfs and cpio use zstd from 1.8 (xz before).
    pub fn uses_zstd(&self) -> bool {
        self.at_least(1, 8, 0)
    }

    /// usr-merged paths (`/usr/lib/modules`, `/usr/lib/firmware`) from 1.10.
    pub fn usr_merged(&self) -> bool {
        self.at_least(1, 10, 0)
    }

    pub fn modules_dir(&self) -> &'static str {
        if self.usr_merged() {
            "usr/lib/modules"
        } else {
            "lib/modules"
        }
    }

    pub fn firmware_dir(&self) -> &'static str {
        if self.usr_merged() {
            "usr/lib/firmware"
        } else {
            "lib/firmware"
        }
    }
}

/// Talos versions as the factory writes them: `v` + semver.
pub fn tag_of(version: &Version) -> String {
    format!("v{version}")
}

/// Parses a tag leniently, as upstream does: leading `v` dropped, `1.5` padded to `1.5.0`,
/// leading zeros stripped.
pub fn parse_tolerant(tag: &str) -> Option<Version> {
    let text = tag.strip_prefix('v').unwrap_or(tag);
    let split = text.find(['-', '+']).unwrap_or(text.len());
    let (core, rest) = text.split_at(split);
    let mut numbers: Vec<String> = Vec::new();
    for part in core.split('.') {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let trimmed = part.trim_start_matches('0');
        numbers.push(if trimmed.is_empty() {
            "0".into()
        } else {
            trimmed.into()
        });
    }
    if numbers.len() > 3 {
        return None;
    }
    while numbers.len() < 3 {
        numbers.push("0".into());
    }
    Version::parse(&format!("{}{rest}", numbers.join("."))).ok()
}

/// A user-supplied version (`v` optional), parsed strictly.
pub fn parse_strict(text: &str) -> Result<Version, VersionError> {
    let bare = text.strip_prefix('v').unwrap_or(text);
    Version::parse(bare).map_err(|error| VersionError {
        text: text.to_string(),
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn tolerant_parsing() {
        assert_eq!(parse_tolerant("v1.5"), Some(v("1.5.0")));
        assert_eq!(parse_tolerant("1.05.01"), Some(v("1.5.1")));
        assert_eq!(parse_tolerant("v1.13.0-beta.0"), Some(v("1.13.0-beta.0")));
        assert_eq!(parse_tolerant("latest"), None);
        assert_eq!(parse_tolerant("sha256-abc.sig"), None);
    }

    #[test]
    fn strict_parsing_names_the_text() {
        assert_eq!(TalosVersion::parse("v1.12.0").unwrap().tag(), "v1.12.0");
        assert_eq!(parse_strict("1.12.0").unwrap(), v("1.12.0"));
        let error = parse_strict("v1.12").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid Talos version \"v1.12\": "),
            "{error}"
        );
    }

    #[test]
    fn thresholds_ignore_pre_releases() {
        let beta = TalosVersion::parse("v1.10.0-beta.0").unwrap();
        assert!(beta.at_least(1, 10, 0));
        assert!(beta.usr_merged());
        assert_eq!(beta.modules_dir(), "usr/lib/modules");
        assert!(!TalosVersion::parse("1.7.4").unwrap().uses_zstd());
    }
}
