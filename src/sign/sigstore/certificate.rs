//! The Fulcio certificate of a keyless signature: its chain to a CA of the trust root, its
//! embedded SCT (RFC 6962 §3.2, over the precertificate), its validity window and the
//! identity and OIDC issuer Fulcio wrote into it.

use super::SigstoreError;
use super::trust_root::{Authority, TrustRoot};
use crate::sign::{HashAlgorithm, VerifyingKey};
use der::asn1::{BitStringRef, ObjectIdentifier, OctetString, Utf8StringRef};
use der::{AnyRef, Decode, DecodePem, Encode, Sequence};
use sha2::Digest;
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};

const SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");
/// Fulcio's OIDC issuer: the DER UTF8String form, and the older raw-bytes form.
const ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
const ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
const CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");

/// A certificate split into its signed part and signature, the bytes kept as they are.
#[derive(Sequence)]
struct RawCertificate<'a> {
    tbs: AnyRef<'a>,
    algorithm: x509_cert::spki::AlgorithmIdentifierRef<'a>,
    signature: BitStringRef<'a>,
}

/// A `TBSCertificate` whose extensions can be edited, every other field kept as encoded:
/// the precertificate an SCT signs is the certificate without its SCT extension.
#[derive(Sequence)]
struct EditableTbs<'a> {
    #[asn1(context_specific = "0", optional = "true")]
    version: Option<u8>,
    serial_number: AnyRef<'a>,
    signature: AnyRef<'a>,
    issuer: AnyRef<'a>,
    validity: AnyRef<'a>,
    subject: AnyRef<'a>,
    subject_public_key_info: AnyRef<'a>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    issuer_unique_id: Option<BitStringRef<'a>>,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    subject_unique_id: Option<BitStringRef<'a>>,
    #[asn1(context_specific = "3", optional = "true")]
    extensions: Option<Vec<Extension>>,
}

/// The signing certificate of one signature.
#[derive(Debug)]
pub(super) struct Leaf {
    pub der: Vec<u8>,
    certificate: Certificate,
    pub key: VerifyingKey,
    pub not_before: u64,
    pub not_after: u64,
    /// The subject alternative name: an email address or a URI.
    pub identity: String,
    pub issuer: String,
}

impl Leaf {
    pub fn from_der(der: &[u8]) -> Result<Leaf, SigstoreError> {
        let bad = |reason: String| SigstoreError::Certificate(reason);
        let certificate =
            Certificate::from_der(der).map_err(|error| bad(format!("not X.509 DER: {error}")))?;
        let tbs = certificate.tbs_certificate();
        let spki = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|error| bad(error.to_string()))?;
        let key = VerifyingKey::from_spki_der(&spki, None)
            .map_err(|error| bad(format!("its key: {error}")))?;
        let validity = tbs.validity();
        let code_signing = tbs
            .get_extension::<ExtendedKeyUsage>()
            .ok()
            .flatten()
            .is_some_and(|(_, usage)| usage.0.contains(&CODE_SIGNING));
        if !code_signing {
            return Err(bad("it is not a code-signing certificate".into()));
        }
        Ok(Leaf {
            der: der.to_vec(),
            key,
            not_before: validity.not_before.to_unix_duration().as_secs(),
            not_after: validity.not_after.to_unix_duration().as_secs(),
            identity: identity(&certificate).unwrap_or_default(),
            issuer: oidc_issuer(&certificate).unwrap_or_default(),
            certificate,
        })
    }

    pub fn from_pem(pem: &str) -> Result<Leaf, SigstoreError> {
        let certificate = Certificate::from_pem(pem.trim().as_bytes()).map_err(|error| {
            SigstoreError::Certificate(format!("not a PEM certificate: {error}"))
        })?;
        let der = certificate
            .to_der()
            .map_err(|error| SigstoreError::Certificate(error.to_string()))?;
        Leaf::from_der(&der)
    }

    /// The trust root's CA that issued this certificate, valid when it was issued (the
    /// signing time lies in the certificate's ten minutes, checked against Rekor later).
    pub fn issuing_authority<'r>(
        &self,
        root: &'r TrustRoot,
    ) -> Result<&'r Authority, SigstoreError> {
        let mut reasons = Vec::new();
        for authority in &root.authorities {
            if !authority.valid.contains(self.not_before) {
                continue;
            }
            match chain_verifies(&self.der, &authority.chain) {
                Ok(()) => return Ok(authority),
                Err(reason) => reasons.push(format!("{}: {reason}", authority.uri)),
            }
        }
        if reasons.is_empty() {
            reasons.push("no CA of the trust root was valid then".into());
        }
        Err(SigstoreError::Fulcio {
            issued: self.not_before,
            reason: reasons.join("; "),
        })
    }

    /// At least one embedded SCT verifies against a CT log of the trust root that was valid
    /// at its timestamp.
    pub fn check_sct(&self, root: &TrustRoot, issuer: &Certificate) -> Result<(), SigstoreError> {
        let fail = |reason: String| SigstoreError::Sct(reason);
        let list = self
            .certificate
            .tbs_certificate()
            .extensions()
            .into_iter()
            .flatten()
            .find(|extension| extension.extn_id == SCT_LIST)
            .ok_or_else(|| fail("the certificate embeds no SCT".into()))?;
        let list = OctetString::from_der(list.extn_value.as_bytes())
            .map_err(|error| fail(format!("the SCT list: {error}")))?;
        let scts = parse_sct_list(list.as_bytes())
            .ok_or_else(|| fail("the SCT list is malformed".into()))?;
        let precertificate = self.precertificate().map_err(fail)?;
        let issuer_key = issuer
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|error| fail(error.to_string()))?;
        let issuer_key_hash = sha2::Sha256::digest(&issuer_key);
        let mut reasons = Vec::new();
        for sct in &scts {
            let Some(log) = root.ctlog(&sct.log_id) else {
                reasons.push(format!(
                    "its log {} is not in the trust root",
                    hex(&sct.log_id)
                ));
                continue;
            };
            if !log.valid.contains(sct.timestamp_ms / 1000) {
                reasons.push(format!("the CT log {} was not valid then", log.url));
                continue;
            }
            let mut signed = vec![0u8, 0u8];
            signed.extend_from_slice(&sct.timestamp_ms.to_be_bytes());
            signed.extend_from_slice(&1u16.to_be_bytes());
            signed.extend_from_slice(&issuer_key_hash);
            let length = u32::try_from(precertificate.len()).unwrap_or(u32::MAX);
            signed.extend_from_slice(&length.to_be_bytes()[1..]);
            signed.extend_from_slice(&precertificate);
            signed.extend_from_slice(
                &u16::try_from(sct.extensions.len())
                    .unwrap_or(0)
                    .to_be_bytes(),
            );
            signed.extend_from_slice(&sct.extensions);
            if log.key.verify(&signed, &sct.signature) {
                return Ok(());
            }
            reasons.push(format!("its signature by the CT log {} is wrong", log.url));
        }
        Err(fail(reasons.join("; ")))
    }

    fn precertificate(&self) -> Result<Vec<u8>, String> {
        let raw = RawCertificate::from_der(&self.der).map_err(|error| error.to_string())?;
        let tbs = raw.tbs.to_der().map_err(|error| error.to_string())?;
        let mut editable = EditableTbs::from_der(&tbs).map_err(|error| error.to_string())?;
        if let Some(extensions) = &mut editable.extensions {
            extensions.retain(|extension| extension.extn_id != SCT_LIST);
        }
        editable.to_der().map_err(|error| error.to_string())
    }
}

/// `leaf` is signed by `chain[0]`, each CA certificate by the next.
fn chain_verifies(leaf: &[u8], chain: &[Certificate]) -> Result<(), String> {
    let mut child = leaf.to_vec();
    for (depth, issuer) in chain.iter().enumerate() {
        signed_by(&child, issuer).map_err(|reason| {
            if depth == 0 {
                format!("the certificate is not signed by it ({reason})")
            } else {
                format!("its chain does not verify at depth {depth} ({reason})")
            }
        })?;
        child = issuer.to_der().map_err(|error| error.to_string())?;
    }
    Ok(())
}

fn signed_by(certificate_der: &[u8], issuer: &Certificate) -> Result<(), String> {
    let raw = RawCertificate::from_der(certificate_der).map_err(|error| error.to_string())?;
    let hash = match raw.algorithm.oid.to_string().as_str() {
        "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.11" => HashAlgorithm::Sha256,
        "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => HashAlgorithm::Sha384,
        "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" | "1.3.101.112" => HashAlgorithm::Sha512,
        other => return Err(format!("unsupported signature algorithm {other}")),
    };
    let spki = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|error| error.to_string())?;
    let key = VerifyingKey::from_spki_der(&spki, Some(hash)).map_err(|error| error.to_string())?;
    let tbs = raw.tbs.to_der().map_err(|error| error.to_string())?;
    let signature = raw
        .signature
        .as_bytes()
        .ok_or_else(|| "the signature has unused bits".to_string())?;
    if key.verify(&tbs, signature) {
        Ok(())
    } else {
        Err("bad signature".into())
    }
}

fn identity(certificate: &Certificate) -> Option<String> {
    let (_, names) = certificate
        .tbs_certificate()
        .get_extension::<SubjectAltName>()
        .ok()??;
    names.0.iter().find_map(|name| match name {
        GeneralName::Rfc822Name(email) => Some(email.to_string()),
        GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
        _ => None,
    })
}

fn oidc_issuer(certificate: &Certificate) -> Option<String> {
    let extensions = certificate.tbs_certificate().extensions()?;
    let find = |oid: ObjectIdentifier| {
        extensions
            .iter()
            .find(|extension| extension.extn_id == oid)
            .map(|extension| extension.extn_value.as_bytes())
    };
    if let Some(value) = find(ISSUER_V2) {
        return Utf8StringRef::from_der(value)
            .ok()
            .map(|text| text.as_str().to_string());
    }
    find(ISSUER_V1).and_then(|value| String::from_utf8(value.to_vec()).ok())
}

struct Sct {
    log_id: Vec<u8>,
    timestamp_ms: u64,
    extensions: Vec<u8>,
    signature: Vec<u8>,
}

/// RFC 6962 §3.3's `SignedCertificateTimestampList` (TLS encoding).
fn parse_sct_list(bytes: &[u8]) -> Option<Vec<Sct>> {
    let mut list = Tls(bytes);
    let mut entries = Tls(list.vector(2)?);
    if !list.0.is_empty() {
        return None;
    }
    let mut scts = Vec::new();
    while !entries.0.is_empty() {
        let mut sct = Tls(entries.vector(2)?);
        if sct.take(1)? != [0] {
            continue;
        }
        let log_id = sct.take(32)?.to_vec();
        let timestamp_ms = u64::from_be_bytes(sct.take(8)?.try_into().ok()?);
        let extensions = sct.vector(2)?.to_vec();
        let _algorithms = sct.take(2)?;
        let signature = sct.vector(2)?.to_vec();
        scts.push(Sct {
            log_id,
            timestamp_ms,
            extensions,
            signature,
        });
    }
    Some(scts)
}

/// A cursor over TLS-encoded bytes.
struct Tls<'a>(&'a [u8]);

impl<'a> Tls<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if self.0.len() < count {
            return None;
        }
        let (head, tail) = self.0.split_at(count);
        self.0 = tail;
        Some(head)
    }

    /// A vector with a `width`-byte big-endian length prefix.
    fn vector(&mut self, width: usize) -> Option<&'a [u8]> {
        let length = self
            .take(width)?
            .iter()
            .fold(0usize, |length, byte| (length << 8) | usize::from(*byte));
        self.take(length)
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
