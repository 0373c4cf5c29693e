//! Keyless (Sigstore) signatures verified offline: a Fulcio certificate that chains to a CA
//! of the trust root, carries a valid SCT and names the expected identity and OIDC issuer;
//! a Rekor entry whose signed timestamp or inclusion proof verifies, recording this very
//! signature at a time inside the certificate's validity; and the signature itself, by the
//! certificate's key. Nothing is fetched: the trust root is data (embedded or a file).

mod bundle;
mod certificate;
mod transparency;
mod trust_root;

pub use bundle::{
    Bundle, IN_TOTO_PAYLOAD_TYPE, SignedContent, Statement, Subject, pre_authentication_encoding,
};
pub use trust_root::TrustRoot;

use bundle::Content;
use certificate::Leaf;
use sha2::{Digest, Sha256};
use transparency::{LogEntry, check_dsse, check_hashedrekord};

/// Why a keyless signature was refused, by the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum SigstoreError {
    #[error("trusted root: {0}")]
    TrustRoot(String),
    #[error("bundle: {0}")]
    Bundle(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error(
        "the certificate does not chain to a Fulcio CA of the trust root valid when it was \
         issued ({}): {reason}", format_time(*.issued)
    )]
    Fulcio { issued: u64, reason: String },
    #[error("SCT does not verify: {0}")]
    Sct(String),
    #[error("transparency log: {0}")]
    TransparencyLog(String),
    #[error(
        "the Rekor integrated time {} lies outside the certificate's validity {} to {}",
        format_time(*.integrated), format_time(*.not_before), format_time(*.not_after)
    )]
    Validity {
        integrated: u64,
        not_before: u64,
        not_after: u64,
    },
    #[error("certificate identity {found:?} does not match {expected}")]
    Identity { found: String, expected: String },
    #[error("certificate issuer {found:?} does not match {expected}")]
    Issuer { found: String, expected: String },
    #[error("the signature does not verify with the certificate's key")]
    Signature,
}

fn format_time(seconds: u64) -> String {
    der::DateTime::from_unix_duration(std::time::Duration::from_secs(seconds))
        .map(|time| time.to_string())
        .unwrap_or_else(|_| format!("{seconds} s after the epoch"))
}

/// The OIDC issuer a certificate must name.
#[derive(Debug, Clone)]
pub enum IssuerMatch {
    Exact(String),
    Pattern(regex::Regex),
}

impl IssuerMatch {
    fn accepts(&self, issuer: &str) -> bool {
        match self {
            IssuerMatch::Exact(expected) => expected == issuer,
            IssuerMatch::Pattern(pattern) => pattern.is_match(issuer),
        }
    }

    fn describe(&self) -> String {
        match self {
            IssuerMatch::Exact(expected) => format!("{expected:?}"),
            IssuerMatch::Pattern(pattern) => format!("/{}/", pattern.as_str()),
        }
    }
}

/// Who may sign, and the roots that prove it.
#[derive(Debug, Clone)]
pub struct KeylessPolicy {
    pub trust_root: TrustRoot,
    /// Matched against the certificate's email or URI subject alternative name.
    pub subject: regex::Regex,
    pub issuer: IssuerMatch,
}

/// A classic cosign keyless signature: a simple-signing layer and its annotations.
#[derive(Debug, Clone, Copy)]
pub struct ClassicKeyless<'a> {
    pub payload: &'a [u8],
    pub signature: &'a [u8],
    pub certificate_pem: &'a str,
    /// The chain cosign stores beside the certificate; the trust root's own chain is what
    /// counts, so it is not needed.
    pub chain_pem: Option<&'a str>,
    /// The `dev.sigstore.cosign/bundle` annotation (Rekor's signed entry).
    pub rekor_bundle: Option<&'a [u8]>,
}

/// Who signed, as the verified certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerIdentity {
    pub subject: String,
    pub issuer: String,
    pub integrated_time: u64,
}

impl KeylessPolicy {
    pub fn verify_classic(&self, signed: &ClassicKeyless) -> Result<SignerIdentity, SigstoreError> {
        let leaf = Leaf::from_pem(signed.certificate_pem)?;
        self.check_certificate(&leaf)?;
        if !leaf.key.verify(signed.payload, signed.signature) {
            return Err(SigstoreError::Signature);
        }
        let rekor = signed.rekor_bundle.ok_or_else(|| {
            SigstoreError::TransparencyLog(
                "the signature carries no Rekor bundle, which offline verification needs".into(),
            )
        })?;
        let entry = LogEntry::from_cosign_bundle(rekor)?;
        entry.verify(&self.trust_root)?;
        check_hashedrekord(
            &entry.body,
            &Sha256::digest(signed.payload),
            signed.signature,
            &leaf.der,
        )?;
        self.accept(&leaf, entry.integrated_time)
    }

    pub fn verify_bundle(&self, bundle: &Bundle) -> Result<SignerIdentity, SigstoreError> {
        let der = bundle.certificate.as_deref().ok_or_else(|| {
            SigstoreError::Certificate(
                "the bundle names a public key, not a Fulcio certificate".into(),
            )
        })?;
        let leaf = Leaf::from_der(der)?;
        self.check_certificate(&leaf)?;
        let signature_verifies = match &bundle.content {
            Content::Dsse {
                payload_type,
                payload,
                signature,
            } => leaf.key.verify(
                &pre_authentication_encoding(payload_type, payload),
                signature,
            ),
            Content::Message {
                algorithm,
                digest,
                signature,
            } => algorithm == "SHA2_256" && leaf.key.verify_prehashed(digest, signature),
        };
        if !signature_verifies {
            return Err(SigstoreError::Signature);
        }
        let entry = bundle.entries.first().ok_or_else(|| {
            SigstoreError::TransparencyLog("the bundle has no Rekor entry".into())
        })?;
        entry.verify(&self.trust_root)?;
        match &bundle.content {
            Content::Dsse {
                payload, signature, ..
            } => check_dsse(&entry.body, payload, signature, &leaf.der)?,
            Content::Message {
                digest, signature, ..
            } => check_hashedrekord(&entry.body, digest, signature, &leaf.der)?,
        }
        if !bundle.kind.is_empty() && !bundle.kind.ends_with("0.0.1") {
            return Err(SigstoreError::TransparencyLog(format!(
                "entries of kind {} are not checked here",
                bundle.kind
            )));
        }
        self.accept(&leaf, entry.integrated_time)
    }

    /// Fulcio issued the certificate and a CT log saw it.
    fn check_certificate(&self, leaf: &Leaf) -> Result<(), SigstoreError> {
        let authority = leaf.issuing_authority(&self.trust_root)?;
        let issuer = authority.chain.first().ok_or_else(|| {
            SigstoreError::TrustRoot(format!(
                "the certificate authority {} has no certificate",
                authority.uri
            ))
        })?;
        leaf.check_sct(&self.trust_root, issuer)
    }

    /// The signature was logged while the certificate was valid, for the expected signer.
    fn accept(&self, leaf: &Leaf, integrated_time: u64) -> Result<SignerIdentity, SigstoreError> {
        if integrated_time < leaf.not_before || integrated_time > leaf.not_after {
            return Err(SigstoreError::Validity {
                integrated: integrated_time,
                not_before: leaf.not_before,
                not_after: leaf.not_after,
            });
        }
        if !self.subject.is_match(&leaf.identity) {
            return Err(SigstoreError::Identity {
                found: leaf.identity.clone(),
                expected: format!("/{}/", self.subject.as_str()),
            });
        }
        if !self.issuer.accepts(&leaf.issuer) {
            return Err(SigstoreError::Issuer {
                found: leaf.issuer.clone(),
                expected: self.issuer.describe(),
            });
        }
        Ok(SignerIdentity {
            subject: leaf.identity.clone(),
            issuer: leaf.issuer.clone(),
            integrated_time,
        })
    }
}
