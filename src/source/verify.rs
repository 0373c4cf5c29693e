//! Checking the signatures of source images, offline, the way upstream's cosign checks do:
//! one or more check sets (public keys, keyless Sigstore identities), any one of which must
//! accept the image. For each image digest the Sigstore bundles attached as OCI referrers are
//! tried first, then the classic `sha256-<hex>.sig` tag, whose simple-signing layers carry a
//! key signature, or a keyless one with its certificate, chain and Rekor bundle.

use super::oci::{Descriptor, Digest, ManifestKind};
use super::reference::ImageRef;
use super::{Source, SourceError};
use crate::config::ContainerSignatureConfig;
use crate::sign::sigstore::{
    Bundle, ClassicKeyless, IssuerMatch, KeylessPolicy, SignedContent, TrustRoot,
};
use crate::sign::{
    HashAlgorithm, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, SimpleSigning, VerifyingKey,
    decode_signature,
};
use std::sync::Arc;

/// Artifact type (and layer media type) of a Sigstore bundle attached as a referrer.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The in-toto predicate of `cosign sign` in the bundle format.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// Layer annotations of a classic keyless signature.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
pub const REKOR_BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

/// How source images are checked.
#[derive(Debug, Clone)]
pub enum Verifier {
    /// Every image must pass one of these.
    Checks(Vec<Check>),
    /// Explicitly switched off in the configuration.
    Disabled,
}

/// One set of conditions a signature may meet.
#[derive(Clone)]
pub enum Check {
    /// Signed by one of these keys (no transparency log, as upstream's key mode).
    Keys(Vec<VerifyingKey>),
    /// Signed keyless by an identity the policy accepts, proven by the trust root.
    Keyless(Arc<KeylessPolicy>),
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::Keys(keys) => write!(f, "Keys({})", keys.len()),
            Check::Keyless(policy) => write!(f, "Keyless({})", policy.subject.as_str()),
        }
    }
}

impl Check {
    fn kind(&self) -> CheckKind {
        match self {
            Check::Keys(_) => CheckKind::PublicKey,
            Check::Keyless(_) => CheckKind::Keyless,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Check::Keys(_) => "public key",
            Check::Keyless(_) => "keyless",
        }
    }
}

/// How an image passed: which form of signature satisfied which check set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    Disabled,
    /// A Sigstore bundle attached as a referrer.
    Bundle(CheckKind),
    /// A layer of the classic `sha256-<hex>.sig` tag.
    Classic(CheckKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    PublicKey,
    Keyless,
}

/// A simple-signing layer of a `.sig` manifest, read and checked to name the image.
struct ClassicLayer {
    payload: Vec<u8>,
    signature: Vec<u8>,
    certificate: Option<String>,
    chain: Option<String>,
    rekor_bundle: Option<String>,
}

impl Verifier {
    /// The check sets `containerSignature.*` asks for (upstream's rules: a key set when
    /// `publicKeyFile` is set, a keyless set when `subjectRegExp` is not empty).
    pub fn from_config(config: &ContainerSignatureConfig) -> Result<Verifier, String> {
        if config.disabled {
            return Ok(Verifier::Disabled);
        }
        let mut checks = Vec::new();
        if !config.public_key_file.as_os_str().is_empty() {
            let hash = HashAlgorithm::parse(&config.public_key_hash_algo)
                .map_err(|error| format!("containerSignature.publicKeyHashAlgo: {error}"))?;
            checks.push(Check::Keys(read_public_keys(
                &config.public_key_file,
                hash,
            )?));
        }
        if !config.subject_reg_exp.is_empty() {
            checks.push(Check::Keyless(Arc::new(keyless_policy(config)?)));
        }
        if checks.is_empty() {
            return Err(
                "containerSignature names neither a publicKeyFile nor a subjectRegExp: \
                 nothing could verify source images (set containerSignature.disabled: true \
                 to switch verification off)"
                    .into(),
            );
        }
        Ok(Verifier::Checks(checks))
    }

    /// Only these keys (SHA-256), no keyless check.
    pub fn from_pem_file(path: &std::path::Path) -> Result<Verifier, String> {
        Ok(Verifier::Checks(vec![Check::Keys(read_public_keys(
            path,
            HashAlgorithm::Sha256,
        )?)]))
    }

    /// Checks that `digest` (the manifest `image` resolved to) is signed.
    pub async fn verify(
        &self,
        source: &Source,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<(), SourceError> {
        self.check(source, image, digest).await.map(drop)
    }

    /// [`Verifier::verify`], telling which signature passed.
    pub async fn check(
        &self,
        source: &Source,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Verified, SourceError> {
        let Verifier::Checks(checks) = self else {
            return Ok(Verified::Disabled);
        };
        let failure = |reasons: Vec<String>| SourceError::Signature {
            image: format!("{}@{digest}", image.name()),
            reason: reasons.join("; "),
        };
        let mut reasons = Vec::new();
        let bundles = attached_bundles(source, image, digest, &mut reasons).await?;
        for check in checks {
            for bundle in &bundles {
                match verify_bundle(check, bundle, digest) {
                    Ok(()) => return Ok(Verified::Bundle(check.kind())),
                    Err(reason) => reasons.push(format!("bundle ({}): {reason}", check.name())),
                }
            }
        }
        let layers = classic_layers(source, image, digest, &mut reasons).await?;
        for check in checks {
            let mut tried = false;
            for layer in &layers {
                let outcome = match check {
                    Check::Keys(keys) => {
                        tried = true;
                        if keys
                            .iter()
                            .any(|key| key.verify(&layer.payload, &layer.signature))
                        {
                            Ok(())
                        } else {
                            Err("the signature does not match any configured public key".into())
                        }
                    }
                    Check::Keyless(policy) => {
                        let Some(certificate) = &layer.certificate else {
                            continue;
                        };
                        tried = true;
                        policy
                            .verify_classic(&ClassicKeyless {
                                payload: &layer.payload,
                                signature: &layer.signature,
                                certificate_pem: certificate,
                                chain_pem: layer.chain.as_deref(),
                                rekor_bundle: layer.rekor_bundle.as_deref().map(str::as_bytes),
                            })
                            .map(drop)
                            .map_err(|error| error.to_string())
                    }
                };
                match outcome {
                    Ok(()) => return Ok(Verified::Classic(check.kind())),
                    Err(reason) => reasons.push(format!(
                        "sha256-{}.sig ({}): {reason}",
                        digest.hex(),
                        check.name()
                    )),
                }
            }
            if !tried && !layers.is_empty() {
                reasons.push(format!(
                    "sha256-{}.sig ({}): no signature layer carries a certificate",
                    digest.hex(),
                    check.name()
                ));
            }
        }
        if reasons.is_empty() {
            reasons.push(format!(
                "no signature: no Sigstore bundle among the referrers of {digest} and no \
                 sha256-{}.sig tag",
                digest.hex()
            ));
        }
        Err(failure(reasons))
    }
}

fn keyless_policy(config: &ContainerSignatureConfig) -> Result<KeylessPolicy, String> {
    let subject = regex::Regex::new(&config.subject_reg_exp).map_err(|error| {
        format!(
            "containerSignature.subjectRegExp {:?}: {error}",
            config.subject_reg_exp
        )
    })?;
    let issuer = if config.issuer_reg_exp.trim().is_empty() {
        IssuerMatch::Exact(config.issuer.clone())
    } else {
        IssuerMatch::Pattern(regex::Regex::new(&config.issuer_reg_exp).map_err(|error| {
            format!(
                "containerSignature.issuerRegExp {:?}: {error}",
                config.issuer_reg_exp
            )
        })?)
    };
    let trust_root = if config.trusted_root_file.as_os_str().is_empty() {
        TrustRoot::public_good()
            .map_err(|error| format!("the embedded public-good trust root: {error}"))?
    } else {
        let path = &config.trusted_root_file;
        let bytes = std::fs::read(path).map_err(|error| {
            format!(
                "containerSignature.trustedRootFile {}: {error}",
                path.display()
            )
        })?;
        TrustRoot::from_json(&bytes).map_err(|error| {
            format!(
                "containerSignature.trustedRootFile {}: {error}",
                path.display()
            )
        })?
    };
    Ok(KeylessPolicy {
        trust_root,
        subject,
        issuer,
    })
}

/// Every public key of a PEM file (one or more `PUBLIC KEY` blocks).
fn read_public_keys(
    path: &std::path::Path,
    hash: HashAlgorithm,
) -> Result<Vec<VerifyingKey>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read public key file {}: {error}", path.display()))?;
    let mut keys = Vec::new();
    let mut block = String::new();
    for line in text.lines() {
        block.push_str(line);
        block.push('\n');
        if line.starts_with("-----END ") {
            keys.push(
                VerifyingKey::from_pem_with_hash(&block, hash)
                    .map_err(|error| format!("{}: {error}", path.display()))?,
            );
            block.clear();
        }
    }
    if keys.is_empty() {
        return Err(format!("{} holds no PEM public key", path.display()));
    }
    Ok(keys)
}

/// A bundle must be cosign's image signature statement about exactly this digest, and its
/// signature must satisfy the check.
fn verify_bundle(check: &Check, bundle: &Bundle, digest: &Digest) -> Result<(), String> {
    let statement = bundle.statement().map_err(|error| error.to_string())?;
    if statement.predicate_type != COSIGN_SIGN_PREDICATE {
        return Err(format!(
            "the statement's predicate is {:?}, not {COSIGN_SIGN_PREDICATE:?}",
            statement.predicate_type
        ));
    }
    let names_digest = statement.subjects.iter().any(|subject| {
        subject
            .digest
            .get("sha256")
            .is_some_and(|hex| hex.eq_ignore_ascii_case(digest.hex()))
    });
    if !names_digest {
        return Err(format!("the statement's subject is not {digest}"));
    }
    match check {
        Check::Keys(keys) => {
            let content = bundle.signed_content();
            if keys
                .iter()
                .any(|key| key_accepts(key, &content, bundle.signature()))
            {
                Ok(())
            } else {
                Err("the signature does not match any configured public key".into())
            }
        }
        Check::Keyless(policy) => policy
            .verify_bundle(bundle)
            .map(drop)
            .map_err(|error| error.to_string()),
    }
}

fn key_accepts(key: &VerifyingKey, content: &SignedContent, signature: &[u8]) -> bool {
    match content {
        SignedContent::Message(message) => key.verify(message, signature),
        SignedContent::Prehashed { digest, .. } => key.verify_prehashed(digest, signature),
    }
}

/// The Sigstore bundles attached to `digest`. A referrers lookup that fails for another
/// reason than an unreachable registry is a reason, not an end: the classic tag may still
/// hold a signature.
async fn attached_bundles(
    source: &Source,
    image: &ImageRef,
    digest: &Digest,
    reasons: &mut Vec<String>,
) -> Result<Vec<Bundle>, SourceError> {
    let referrers = match source.referrers(image, digest).await {
        Ok(referrers) => referrers,
        Err(SourceError::NotFound(_)) => return Ok(Vec::new()),
        Err(error @ SourceError::Unavailable(_)) => return Err(error),
        Err(error) => {
            reasons.push(format!("referrers: {error}"));
            return Ok(Vec::new());
        }
    };
    let mut bundles = Vec::new();
    for referrer in referrers.iter().filter(|referrer| is_bundle(referrer)) {
        match read_bundle(source, image, referrer).await {
            Ok(bundle) => bundles.push(bundle),
            Err(SourceError::Unavailable(message)) => {
                return Err(SourceError::Unavailable(message));
            }
            Err(error) => reasons.push(format!("bundle {}: {error}", referrer.digest)),
        }
    }
    Ok(bundles)
}

fn is_bundle(referrer: &Descriptor) -> bool {
    referrer.artifact_type.as_deref() == Some(BUNDLE_MEDIA_TYPE)
}

async fn read_bundle(
    source: &Source,
    image: &ImageRef,
    referrer: &Descriptor,
) -> Result<Bundle, SourceError> {
    let (bytes, _) = source
        .manifest(&image.with_digest(referrer.digest.clone()))
        .await?;
    let ManifestKind::Image(manifest) =
        ManifestKind::parse(&bytes).map_err(SourceError::Invalid)?
    else {
        return Err(SourceError::Invalid("the referrer is an index".into()));
    };
    let layer = manifest
        .layers
        .iter()
        .find(|layer| layer.media_type == BUNDLE_MEDIA_TYPE)
        .ok_or_else(|| SourceError::Invalid("the referrer has no bundle layer".into()))?;
    let json = source.blob_of(image, layer).await?;
    Bundle::parse(&json).map_err(|error| SourceError::Invalid(error.to_string()))
}

/// The simple-signing layers of `digest`'s `.sig` manifest that name `digest`.
async fn classic_layers(
    source: &Source,
    image: &ImageRef,
    digest: &Digest,
    reasons: &mut Vec<String>,
) -> Result<Vec<ClassicLayer>, SourceError> {
    let signature_ref = ImageRef {
        tag: Some(format!("sha256-{}.sig", digest.hex())),
        digest: None,
        ..image.clone()
    };
    let bytes = match source.manifest(&signature_ref).await {
        Ok((bytes, _)) => bytes,
        Err(SourceError::NotFound(_)) => return Ok(Vec::new()),
        Err(other) => return Err(other),
    };
    let manifest = match ManifestKind::parse(&bytes) {
        Ok(ManifestKind::Image(manifest)) => manifest,
        Ok(ManifestKind::Index(_)) => {
            reasons.push(format!(
                "{signature_ref}: the signature manifest is an index"
            ));
            return Ok(Vec::new());
        }
        Err(error) => {
            reasons.push(format!("{signature_ref}: {error}"));
            return Ok(Vec::new());
        }
    };
    let mut layers = Vec::new();
    for layer in &manifest.layers {
        if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
            continue;
        }
        let Some(signature) = layer
            .annotations
            .get(SIGNATURE_ANNOTATION)
            .and_then(|text| decode_signature(text))
        else {
            reasons.push("a signature layer has no readable signature annotation".into());
            continue;
        };
        let payload = source.blob_of(image, layer).await?;
        match SimpleSigning::parse(&payload) {
            Ok(parsed) if parsed.critical.image.docker_manifest_digest == digest.as_str() => {}
            Ok(parsed) => {
                reasons.push(format!(
                    "payload is for {}, not {digest}",
                    parsed.critical.image.docker_manifest_digest
                ));
                continue;
            }
            Err(error) => {
                reasons.push(error.to_string());
                continue;
            }
        }
        let annotation = |name: &str| layer.annotations.get(name).cloned();
        layers.push(ClassicLayer {
            payload,
            signature,
            certificate: annotation(CERTIFICATE_ANNOTATION),
            chain: annotation(CHAIN_ANNOTATION),
            rekor_bundle: annotation(REKOR_BUNDLE_ANNOTATION),
        });
    }
    if layers.is_empty() && reasons.is_empty() {
        reasons.push(format!("{signature_ref} has no simple-signing layer"));
    }
    Ok(layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ContainerSignatureConfig {
        ContainerSignatureConfig::default()
    }

    #[test]
    fn defaults_are_upstreams_keyless_check() {
        let Verifier::Checks(checks) = Verifier::from_config(&config()).unwrap() else {
            panic!("verification on by default");
        };
        assert_eq!(checks.len(), 1);
        let Check::Keyless(policy) = &checks[0] else {
            panic!("keyless by default");
        };
        assert!(
            policy
                .subject
                .is_match("releasemgr-svc@talos-production.iam.gserviceaccount.com")
        );
        assert!(policy.subject.is_match("someone@siderolabs.com"));
        assert!(!policy.subject.is_match("someone@siderolabs.com.evil"));
        assert!(
            matches!(&policy.issuer, IssuerMatch::Exact(issuer) if issuer == "https://accounts.google.com")
        );
    }

    #[test]
    fn both_sets_when_a_key_is_configured() {
        let mut config = config();
        config.public_key_file =
            concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/keys/cosign.pub").into();
        config.issuer_reg_exp = "^https://accounts\\.google\\.com$".into();
        let Verifier::Checks(checks) = Verifier::from_config(&config).unwrap() else {
            panic!("verification on");
        };
        assert!(matches!(checks[0], Check::Keys(ref keys) if keys.len() == 1));
        assert!(
            matches!(&checks[1], Check::Keyless(policy) if matches!(policy.issuer, IssuerMatch::Pattern(_)))
        );
        config.subject_reg_exp.clear();
        let Verifier::Checks(checks) = Verifier::from_config(&config).unwrap() else {
            panic!("verification on");
        };
        assert_eq!(
            checks.len(),
            1,
            "an empty subjectRegExp drops the keyless set"
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let mut bad = config();
        bad.subject_reg_exp = "(".into();
        let error = Verifier::from_config(&bad).unwrap_err();
        assert!(
            error.contains("containerSignature.subjectRegExp \"(\""),
            "{error}"
        );

        let mut bad = config();
        bad.trusted_root_file = "/nonexistent/trusted_root.json".into();
        let error = Verifier::from_config(&bad).unwrap_err();
        assert!(
            error.contains("trustedRootFile /nonexistent/trusted_root.json"),
            "{error}"
        );

        let mut bad = config();
        bad.public_key_file =
            concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/keys/cosign.pub").into();
        bad.public_key_hash_algo = "md5".into();
        let error = Verifier::from_config(&bad).unwrap_err();
        assert!(error.contains("publicKeyHashAlgo"), "{error}");

        let mut nothing = config();
        nothing.subject_reg_exp.clear();
        let error = Verifier::from_config(&nothing).unwrap_err();
        assert!(
            error.contains("neither a publicKeyFile nor a subjectRegExp"),
            "{error}"
        );

        let mut off = nothing;
        off.disabled = true;
        assert!(matches!(
            Verifier::from_config(&off).unwrap(),
            Verifier::Disabled
        ));
    }
}
