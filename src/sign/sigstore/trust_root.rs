//! Sigstore's `trusted_root.json`: the Fulcio CA chains, Rekor and CT log keys, each with
//! the window of time in which it may be trusted, read once and kept in memory.

use super::SigstoreError;
use crate::sign::VerifyingKey;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use der::Decode;
use sha2::Digest;
use x509_cert::Certificate;

/// Sigstore's public-good trust root (from PyPI's `sigstore` 4.5.1, which ships the TUF
/// repository's `trusted_root.json`; see the README).
const PUBLIC_GOOD: &[u8] = include_bytes!("public_good_trusted_root.json");

/// What a keyless signature is checked against.
#[derive(Debug, Clone)]
pub struct TrustRoot {
    pub(super) authorities: Vec<Authority>,
    pub(super) tlogs: Vec<LogKey>,
    pub(super) ctlogs: Vec<LogKey>,
}

/// A Fulcio CA: its chain, issuing certificate first, and when it issued.
#[derive(Debug, Clone)]
pub(super) struct Authority {
    pub uri: String,
    pub chain: Vec<Certificate>,
    pub valid: Window,
}

/// A transparency or certificate-transparency log's key.
#[derive(Debug, Clone)]
pub(super) struct LogKey {
    pub url: String,
    pub key_id: Vec<u8>,
    pub key: VerifyingKey,
    /// The first 4 bytes of the SHA-256 of the key's DER: how checkpoint signatures name it.
    pub hint: [u8; 4],
    pub valid: Window,
}

/// `[start, end]` in Unix seconds; `end` `None` is open.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub start: u64,
    pub end: Option<u64>,
}

impl Window {
    pub fn contains(&self, time: u64) -> bool {
        time >= self.start && self.end.is_none_or(|end| time <= end)
    }
}

impl TrustRoot {
    /// Reads a `trusted_root.json` (media type `application/vnd.dev.sigstore.trustedroot
    /// +json;version=0.1`). Keys of kinds this factory does not check are skipped; a root
    /// without any usable CA, Rekor key or CT key is refused.
    pub fn from_json(bytes: &[u8]) -> Result<TrustRoot, SigstoreError> {
        let bad = |reason: String| SigstoreError::TrustRoot(reason);
        let document: json::TrustedRoot =
            serde_json::from_slice(bytes).map_err(|error| bad(error.to_string()))?;
        if !document
            .media_type
            .starts_with("application/vnd.dev.sigstore.trustedroot")
        {
            return Err(bad(format!(
                "media type {:?} is not a Sigstore trusted root",
                document.media_type
            )));
        }
        let mut authorities = Vec::new();
        for authority in &document.certificate_authorities {
            let chain = authority
                .cert_chain
                .certificates
                .iter()
                .map(|certificate| {
                    Certificate::from_der(&decode_base64(&certificate.raw_bytes)?).map_err(
                        |error| bad(format!("certificate of the CA {}: {error}", authority.uri)),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            if chain.is_empty() {
                return Err(bad(format!("the CA {} has no certificate", authority.uri)));
            }
            authorities.push(Authority {
                uri: authority.uri.clone(),
                chain,
                valid: authority.valid_for.window()?,
            });
        }
        let tlogs = logs(&document.tlogs)?;
        let ctlogs = logs(&document.ctlogs)?;
        for (what, empty) in [
            ("certificate authority", authorities.is_empty()),
            ("transparency log (tlogs)", tlogs.is_empty()),
            ("certificate transparency log (ctlogs)", ctlogs.is_empty()),
        ] {
            if empty {
                return Err(bad(format!("it names no usable {what}")));
            }
        }
        Ok(TrustRoot {
            authorities,
            tlogs,
            ctlogs,
        })
    }

    /// The embedded public-good root. A unit test pins that it parses; the error is still
    /// returned rather than panicked on, so a bad embedded file fails configuration loading.
    pub fn public_good() -> Result<TrustRoot, SigstoreError> {
        TrustRoot::from_json(PUBLIC_GOOD)
    }

    pub(super) fn tlog(&self, key_id: &[u8]) -> Option<&LogKey> {
        self.tlogs.iter().find(|log| log.key_id == key_id)
    }

    pub(super) fn ctlog(&self, key_id: &[u8]) -> Option<&LogKey> {
        self.ctlogs.iter().find(|log| log.key_id == key_id)
    }
}

fn logs(entries: &[json::Log]) -> Result<Vec<LogKey>, SigstoreError> {
    let mut logs = Vec::new();
    for entry in entries {
        let hash = match entry.public_key.key_details.as_str() {
            "PKIX_ECDSA_P256_SHA_256"
            | "PKIX_RSA_PKCS1V15_2048_SHA256"
            | "PKIX_RSA_PKCS1V15_3072_SHA256"
            | "PKIX_RSA_PKCS1V15_4096_SHA256" => crate::sign::HashAlgorithm::Sha256,
            "PKIX_ECDSA_P384_SHA_384" => crate::sign::HashAlgorithm::Sha384,
            "PKIX_ED25519" => crate::sign::HashAlgorithm::Sha512,
            // Key kinds without a verifier here (Rekor v2's Ed25519ph, ...) are not used.
            _ => continue,
        };
        let der = decode_base64(&entry.public_key.raw_bytes)?;
        let key = VerifyingKey::from_spki_der(&der, Some(hash)).map_err(|error| {
            SigstoreError::TrustRoot(format!("key of the log {}: {error}", entry.base_url))
        })?;
        let digest: [u8; 32] = sha2::Sha256::digest(&der).into();
        logs.push(LogKey {
            url: entry.base_url.clone(),
            key_id: decode_base64(&entry.log_id.key_id)?,
            key,
            hint: [digest[0], digest[1], digest[2], digest[3]],
            valid: entry.public_key.valid_for.window()?,
        });
    }
    Ok(logs)
}

fn decode_base64(text: &str) -> Result<Vec<u8>, SigstoreError> {
    STANDARD
        .decode(text.trim())
        .map_err(|error| SigstoreError::TrustRoot(format!("base64 {text:?}: {error}")))
}

/// Seconds since the Unix epoch of an RFC 3339 UTC time (`2021-03-07T03:20:29.000Z`).
pub(super) fn parse_rfc3339(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if bytes.len() < 20
        || bytes.get(4) != Some(&b'-')
        || bytes.get(7) != Some(&b'-')
        || bytes.get(10) != Some(&b'T')
    {
        return None;
    }
    let rest = text.get(19..)?;
    let rest = match rest.strip_prefix('.') {
        Some(fraction) => fraction.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => rest,
    };
    if rest != "Z" {
        return None;
    }
    let time = der::DateTime::new(
        u16::try_from(number(0..4)?).ok()?,
        u8::try_from(number(5..7)?).ok()?,
        u8::try_from(number(8..10)?).ok()?,
        u8::try_from(number(11..13)?).ok()?,
        u8::try_from(number(14..16)?).ok()?,
        u8::try_from(number(17..19)?).ok()?,
    )
    .ok()?;
    Some(time.unix_duration().as_secs())
}

mod json {
    //! The parts of the trusted root's JSON (protobuf-JSON, camelCase) this factory reads.

    use super::{SigstoreError, Window, parse_rfc3339};
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TrustedRoot {
        pub media_type: String,
        #[serde(default)]
        pub tlogs: Vec<Log>,
        #[serde(default)]
        pub ctlogs: Vec<Log>,
        #[serde(default)]
        pub certificate_authorities: Vec<CertificateAuthority>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Log {
        #[serde(default)]
        pub base_url: String,
        pub public_key: PublicKey,
        pub log_id: LogId,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PublicKey {
        pub raw_bytes: String,
        pub key_details: String,
        pub valid_for: ValidFor,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct LogId {
        pub key_id: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CertificateAuthority {
        #[serde(default)]
        pub uri: String,
        pub cert_chain: CertChain,
        pub valid_for: ValidFor,
    }

    #[derive(Deserialize)]
    pub struct CertChain {
        pub certificates: Vec<RawBytes>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct RawBytes {
        pub raw_bytes: String,
    }

    #[derive(Deserialize)]
    pub struct ValidFor {
        pub start: String,
        pub end: Option<String>,
    }

    impl ValidFor {
        pub fn window(&self) -> Result<Window, SigstoreError> {
            let parse = |text: &str| {
                parse_rfc3339(text)
                    .ok_or_else(|| SigstoreError::TrustRoot(format!("time {text:?}")))
            };
            Ok(Window {
                start: parse(&self.start)?,
                end: self.end.as_deref().map(parse).transpose()?,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_good_root_has_fulcio_rekor_and_ct() {
        let root = TrustRoot::public_good().unwrap();
        assert_eq!(root.authorities.len(), 2);
        assert!(root.authorities[1].valid.end.is_none());
        assert_eq!(root.authorities[1].chain.len(), 2);
        let rekor = root
            .tlogs
            .iter()
            .find(|log| log.url == "https://rekor.sigstore.dev")
            .unwrap();
        assert_eq!(rekor.valid.start, 1610452407);
        assert_eq!(root.ctlogs.len(), 2);
        assert_eq!(root.ctlogs[0].valid.end, Some(1667260799));
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2022-10-31T23:59:59.999Z"), Some(1667260799));
        assert_eq!(parse_rfc3339("2022-10-31T23:59:59+01:00"), None);
        assert_eq!(parse_rfc3339("2022-13-31T23:59:59Z"), None);
        // A character that straddles the end of the seconds is refused, not sliced through.
        assert_eq!(parse_rfc3339("2022-10-31T23:59:5\u{e9}Z"), None);
    }

    #[test]
    fn a_root_without_logs_is_refused() {
        let error = TrustRoot::from_json(
            br#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("certificate authority"),
            "{error}"
        );
        assert!(TrustRoot::from_json(b"{}").is_err());
    }
}
