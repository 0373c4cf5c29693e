//! systemd-boot's part of an ESP beside its binary and the UKI: `loader/loader.conf`, and on
//! Secure Boot media the key enrollment files systemd-boot writes into a firmware in setup
//! mode (`loader/keys/auto/{PK,KEK,db}.auth`) and the signing certificate for manual
//! enrollment (`EFI/keys/uki-signing-cert.der`, ISO only).

use bytes::Bytes;

/// `loader/loader.conf` before any Secure Boot line.
const LOADER_CONF: &str = "# systemd-boot configuration\n\ntimeout 10\n";

/// systemd-boot's `secure-boot-enroll` modes (schematic `customization.secureboot.enrollKeys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EnrollKeys {
    /// Enroll in setup mode where it cannot brick the machine (virtual machines).
    #[default]
    IfSafe,
    /// Offer enrollment as a menu entry.
    Manual,
    /// Enroll in setup mode, wherever.
    Force,
    /// Never enroll.
    Off,
}

impl EnrollKeys {
    /// Upstream's names, any case; empty means the default.
    pub fn parse(text: &str) -> Option<EnrollKeys> {
        Some(match text.to_ascii_lowercase().as_str() {
            "" | "if-safe" => EnrollKeys::IfSafe,
            "manual" => EnrollKeys::Manual,
            "force" => EnrollKeys::Force,
            "off" => EnrollKeys::Off,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EnrollKeys::IfSafe => "if-safe",
            EnrollKeys::Manual => "manual",
            EnrollKeys::Force => "force",
            EnrollKeys::Off => "off",
        }
    }
}

/// `loader/loader.conf`, with a `secure-boot-enroll` line when `enroll` is given.
pub fn loader_conf(enroll: Option<EnrollKeys>) -> String {
    match enroll {
        Some(mode) => format!("{LOADER_CONF}\nsecure-boot-enroll {}\n", mode.as_str()),
        None => LOADER_CONF.to_string(),
    }
}

/// What a Secure Boot ESP carries for enrolling the factory's keys.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub mode: EnrollKeys,
    /// The signing certificate, DER.
    pub certificate_der: Bytes,
    /// `EFI_VARIABLE_AUTHENTICATION_2` writes of the three variables.
    pub pk: Bytes,
    pub kek: Bytes,
    pub db: Bytes,
}

impl Enrollment {
    /// `loader/keys/auto/*.auth`, which systemd-boot enrolls db, KEK, then PK from.
    pub fn key_files(&self) -> Vec<(String, Bytes)> {
        [("PK", &self.pk), ("KEK", &self.kek), ("db", &self.db)]
            .into_iter()
            .map(|(name, bytes)| (format!("loader/keys/auto/{name}.auth"), bytes.clone()))
            .collect()
    }

    /// `EFI/keys/uki-signing-cert.der`, for enrolling by hand in a firmware menu.
    pub fn certificate_file(&self) -> (String, Bytes) {
        (
            "EFI/keys/uki-signing-cert.der".into(),
            self.certificate_der.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_in_any_case_and_default_to_if_safe() {
        assert_eq!(EnrollKeys::parse(""), Some(EnrollKeys::IfSafe));
        assert_eq!(EnrollKeys::parse("FORCE"), Some(EnrollKeys::Force));
        assert_eq!(EnrollKeys::parse("Manual"), Some(EnrollKeys::Manual));
        assert_eq!(EnrollKeys::parse("off"), Some(EnrollKeys::Off));
        assert_eq!(EnrollKeys::parse("always"), None);
    }

    #[test]
    fn loader_conf_is_systemd_boots() {
        assert_eq!(
            loader_conf(Some(EnrollKeys::Off)),
            "# systemd-boot configuration\n\ntimeout 10\n\nsecure-boot-enroll off\n"
        );
        assert_eq!(
            loader_conf(None),
            "# systemd-boot configuration\n\ntimeout 10\n"
        );
    }
}
