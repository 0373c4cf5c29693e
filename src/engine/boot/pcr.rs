//! PCR 11 policy signatures of signed UKIs (imager.md §7.3): the value PCR 11 will hold once
//! systemd-stub has measured a boot profile's sections and the boot has reached
//! `enter-machined`, the TPM2 PolicyPCR digest of that value, and its signature by the PCR
//! key, for the SHA-256, SHA-384 and SHA-512 banks, as the `.pcrsig` JSON systemd reads.
//!
//! A disk sealed to this policy unlocks on any UKI the same key signed a policy for, so a
//! rebuilt image with another command line still unlocks the disk it is installed on.

use crate::engine::EngineError;
use base64::Engine as _;
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// The order systemd-stub measures sections in, whatever their order in the file.
pub const MEASURED_ORDER: &[&str] = &[
    ".linux", ".osrel", ".cmdline", ".initrd", ".ucode", ".splash", ".dtb", ".uname", ".sbat",
    ".pcrpkey", ".profile", ".dtbauto", ".hwids",
];

/// The boot phases systemd extends PCR 11 with up to the one the policy is for.
const PHASES: &[&str] = &["enter-initrd", "leave-initrd", "enter-machined"];

/// TPM_CC_PolicyPCR.
const POLICY_PCR: u32 = 0x0000_017F;
const PCR: u8 = 11;

/// A PCR bank: its name in the JSON, its TPM algorithm id and its hash.
#[derive(Debug, Clone, Copy)]
enum Bank {
    Sha256,
    Sha384,
    Sha512,
}

impl Bank {
    const ALL: [Bank; 3] = [Bank::Sha256, Bank::Sha384, Bank::Sha512];

    fn name(self) -> &'static str {
        match self {
            Bank::Sha256 => "sha256",
            Bank::Sha384 => "sha384",
            Bank::Sha512 => "sha512",
        }
    }

    fn algorithm_id(self) -> u16 {
        match self {
            Bank::Sha256 => 0x000B,
            Bank::Sha384 => 0x000C,
            Bank::Sha512 => 0x000D,
        }
    }

    fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        fn all<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut hasher = D::new();
            for part in parts {
                hasher.update(part);
            }
            hasher.finalize().to_vec()
        }
        match self {
            Bank::Sha256 => all::<Sha256>(parts),
            Bank::Sha384 => all::<Sha384>(parts),
            Bank::Sha512 => all::<Sha512>(parts),
        }
    }

    fn sign(self, key: &RsaPrivateKey, digest: &[u8]) -> Result<Vec<u8>, rsa::Error> {
        let scheme = match self {
            Bank::Sha256 => Pkcs1v15Sign::new::<Sha256>(),
            Bank::Sha384 => Pkcs1v15Sign::new::<Sha384>(),
            Bank::Sha512 => Pkcs1v15Sign::new::<Sha512>(),
        };
        key.sign(scheme, digest)
    }
}

fn pcr_error(reason: impl std::fmt::Display) -> EngineError {
    EngineError::BrokenFile {
        what: "PCR policy signature",
        reason: reason.to_string(),
    }
}

/// `.pcrpkey`: the PCR key's public half as a PEM `PUBLIC KEY`.
pub fn public_key_pem(key: &RsaPrivateKey) -> Result<String, EngineError> {
    RsaPublicKey::from(key)
        .to_public_key_pem(LineEnding::LF)
        .map_err(pcr_error)
}

/// PCR 11 of `bank` after systemd-stub measured `sections` (name, content; only the names of
/// [`MEASURED_ORDER`] count, each once) and the boot reached `enter-machined`.
fn predicted_pcr(bank: Bank, sections: &[(&str, &[u8])]) -> Vec<u8> {
    let mut pcr = vec![0u8; bank.hash(&[]).len()];
    let mut extend = |data: &[u8]| {
        let measured = bank.hash(&[data]);
        pcr = bank.hash(&[&pcr, &measured]);
    };
    for name in MEASURED_ORDER {
        if let Some((_, content)) = sections.iter().find(|(section, _)| section == name) {
            let mut tagged = name.as_bytes().to_vec();
            tagged.push(0);
            extend(&tagged);
            extend(content);
        }
    }
    for phase in PHASES {
        extend(phase.as_bytes());
    }
    pcr
}

/// The TPM2 PolicyPCR digest for PCR 11 of `bank` holding `pcr`: always a SHA-256 session,
/// over the SHA-256 of the PCR value whatever the bank.
fn policy_digest(bank: Bank, pcr: &[u8]) -> [u8; 32] {
    let mut selection = Vec::with_capacity(10);
    selection.extend_from_slice(&1u32.to_be_bytes());
    selection.extend_from_slice(&bank.algorithm_id().to_be_bytes());
    // sizeofSelect 3, then the bitmap: PCR 11 is bit 3 of the second byte.
    selection.extend_from_slice(&[3, 0, 1 << (PCR % 8), 0]);
    let mut hasher = Sha256::new();
    hasher.update([0u8; 32]);
    hasher.update(POLICY_PCR.to_be_bytes());
    hasher.update(&selection);
    hasher.update(Sha256::digest(pcr));
    hasher.finalize().into()
}

/// The `.pcrsig` JSON of one boot profile whose measured sections are `sections`.
pub fn signature_json(
    sections: &[(&str, &[u8])],
    key: &RsaPrivateKey,
) -> Result<String, EngineError> {
    let public = RsaPublicKey::from(key).to_pkcs1_der().map_err(pcr_error)?;
    let fingerprint = crate::hex::encode(&Sha256::digest(public.as_bytes()));
    let mut banks = serde_json::Map::new();
    for bank in Bank::ALL {
        let policy = policy_digest(bank, &predicted_pcr(bank, sections));
        let signature = bank.sign(key, &bank.hash(&[&policy])).map_err(pcr_error)?;
        banks.insert(
            bank.name().into(),
            serde_json::json!([{
                "pcrs": [PCR],
                "pkfp": fingerprint,
                "pol": crate::hex::encode(&policy),
                "sig": base64::engine::general_purpose::STANDARD.encode(signature),
            }]),
        );
    }
    serde_json::to_string(&banks).map_err(pcr_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_measured_in_systemds_order_not_the_files() {
        let forward = [(".osrel", &b"a"[..]), (".linux", &b"b"[..])];
        let backward = [(".linux", &b"b"[..]), (".osrel", &b"a"[..])];
        assert_eq!(
            predicted_pcr(Bank::Sha256, &forward),
            predicted_pcr(Bank::Sha256, &backward)
        );
        let other = [(".linux", &b"b"[..]), (".osrel", &b"c"[..])];
        assert_ne!(
            predicted_pcr(Bank::Sha256, &forward),
            predicted_pcr(Bank::Sha256, &other)
        );
        // Sections systemd-stub does not measure change nothing.
        let with_text = [
            (".linux", &b"b"[..]),
            (".osrel", &b"a"[..]),
            (".text", &b"x"[..]),
        ];
        assert_eq!(
            predicted_pcr(Bank::Sha256, &forward),
            predicted_pcr(Bank::Sha256, &with_text)
        );
    }

    #[test]
    fn an_empty_boot_extends_only_the_phases() {
        let mut pcr = [0u8; 32].to_vec();
        for phase in PHASES {
            let measured = Sha256::digest(phase.as_bytes());
            pcr = Sha256::digest([&pcr[..], &measured[..]].concat()).to_vec();
        }
        assert_eq!(predicted_pcr(Bank::Sha256, &[]), pcr);
        assert_eq!(predicted_pcr(Bank::Sha512, &[]).len(), 64);
    }

    #[test]
    fn the_policy_selects_pcr_11_of_the_bank() {
        let pcr = [7u8; 48];
        let mut expected = Sha256::new();
        expected.update([0u8; 32]);
        expected.update([0x00, 0x00, 0x01, 0x7F]);
        expected.update([0, 0, 0, 1, 0x00, 0x0C, 3, 0x00, 0x08, 0x00]);
        expected.update(Sha256::digest(pcr));
        assert_eq!(
            policy_digest(Bank::Sha384, &pcr),
            <[u8; 32]>::from(expected.finalize())
        );
    }
}
