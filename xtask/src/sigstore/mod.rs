//! A small, deterministic Sigstore for tests and fixtures: a Fulcio root and intermediate
//! (P-384), a CT log and a Rekor log (P-256), all derived from a seed, the
//! `trusted_root.json` that trusts them, and keyless signatures in both of cosign's forms:
//! the classic simple-signing layer (certificate, chain and Rekor bundle annotations) and
//! the Sigstore bundle v0.3 with a DSSE envelope, a `dsse` entry, its signed entry timestamp,
//! inclusion proof and checkpoint. Wrong signatures are made on request, to test refusals.

mod certificate;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use certificate::{Draft, ECDSA_SHA384, pem};
use p256::ecdsa::signature::Signer;
use p256::pkcs8::EncodePublicKey;
use serde_json::json;
use sha2::{Digest, Sha256, Sha384};

/// The identity that signs Talos releases.
pub const RELEASE_IDENTITY: &str = "releasemgr-svc@talos-production.iam.gserviceaccount.com";
pub const RELEASE_ISSUER: &str = "https://accounts.google.com";
/// 2026-01-01T00:00:00Z: when fixture certificates are issued.
pub const ISSUED: u64 = 1_767_225_600;
const CA_START: u64 = 1_577_836_800; // 2020-01-01
const CA_END: u64 = 2_208_988_800; // 2040-01-01
const CHECKPOINT_ORIGIN: &str = "rekor.fixture.invalid";

/// How one keyless signature is made.
#[derive(Debug, Clone)]
pub struct SignOptions {
    pub identity: String,
    pub issuer: String,
    /// The certificate's validity: `[not_before, not_before + lifetime]`.
    pub not_before: u64,
    pub lifetime: u64,
    /// When Rekor says it logged the signature.
    pub integrated_time: u64,
    /// Spoil the SCT's signature.
    pub corrupt_sct: bool,
}

impl Default for SignOptions {
    fn default() -> Self {
        SignOptions {
            identity: RELEASE_IDENTITY.into(),
            issuer: RELEASE_ISSUER.into(),
            not_before: ISSUED,
            lifetime: 600,
            integrated_time: ISSUED + 30,
            corrupt_sct: false,
        }
    }
}

/// A classic keyless signature: the annotations of a cosign simple-signing layer.
#[derive(Debug, Clone)]
pub struct ClassicSignature {
    /// `dev.cosignproject.cosign/signature`: base64 DER.
    pub signature: String,
    /// `dev.sigstore.cosign/certificate`.
    pub certificate_pem: String,
    /// `dev.sigstore.cosign/chain`: intermediate then root.
    pub chain_pem: String,
    /// `dev.sigstore.cosign/bundle`.
    pub rekor_bundle: String,
}

/// One test Sigstore.
#[derive(Debug, Clone)]
pub struct Instance {
    seed: String,
    intermediate_key: p384::ecdsa::SigningKey,
    ct_key: p256::ecdsa::SigningKey,
    rekor_key: p256::ecdsa::SigningKey,
    root_der: Vec<u8>,
    intermediate_der: Vec<u8>,
}

const ROOT_NAME: &str = "CN=sigstore,O=sigstore.dev";
const INTERMEDIATE_NAME: &str = "CN=sigstore-intermediate,O=sigstore.dev";

fn p256_key(seed: &str, label: &str) -> p256::ecdsa::SigningKey {
    let bytes = Sha256::digest(format!("{seed}\0{label}"));
    p256::ecdsa::SigningKey::from_slice(&bytes).expect("a P-256 scalar")
}

fn p384_key(seed: &str, label: &str) -> p384::ecdsa::SigningKey {
    let bytes = Sha384::digest(format!("{seed}\0{label}"));
    p384::ecdsa::SigningKey::from_slice(&bytes).expect("a P-384 scalar")
}

fn p256_public(key: &p256::ecdsa::SigningKey) -> Vec<u8> {
    key.verifying_key()
        .to_public_key_der()
        .expect("encodable")
        .as_bytes()
        .to_vec()
}

fn p384_public(key: &p384::ecdsa::SigningKey) -> Vec<u8> {
    key.verifying_key()
        .to_public_key_der()
        .expect("encodable")
        .as_bytes()
        .to_vec()
}

fn p256_sign(key: &p256::ecdsa::SigningKey, message: &[u8]) -> Vec<u8> {
    let signature: p256::ecdsa::Signature = key.sign(message);
    signature.to_der().as_bytes().to_vec()
}

fn p384_sign(key: &p384::ecdsa::SigningKey, message: &[u8]) -> Vec<u8> {
    let signature: p384::ecdsa::Signature = key.sign(message);
    signature.to_der().as_bytes().to_vec()
}

fn serial(seed: &str, label: &str) -> [u8; 16] {
    let digest = Sha256::digest(format!("{seed}\0serial\0{label}"));
    let mut serial = [0u8; 16];
    serial.copy_from_slice(&digest[..16]);
    serial
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn rfc3339(seconds: u64) -> String {
    der::DateTime::from_unix_duration(std::time::Duration::from_secs(seconds))
        .expect("a representable time")
        .to_string()
}

/// An RFC 6962 tree node.
fn node(left: &[u8], right: &[u8]) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update([1u8]);
    hash.update(left);
    hash.update(right);
    hash.finalize().to_vec()
}

/// What the log wrote for one entry.
struct Logged {
    body: String,
    log_index: u64,
    set: String,
}

impl Instance {
    pub fn new(seed: &str) -> Instance {
        let root_key = p384_key(seed, "fulcio root");
        let intermediate_key = p384_key(seed, "fulcio intermediate");
        let root_der = Draft {
            serial: serial(seed, "root"),
            issuer: ROOT_NAME.into(),
            subject: ROOT_NAME.into(),
            not_before: CA_START,
            not_after: CA_END,
            public_key_der: p384_public(&root_key),
            extensions: certificate::ca_extensions(
                &p384_public(&root_key),
                &p384_public(&root_key),
            ),
        }
        .issue(ECDSA_SHA384, |tbs| p384_sign(&root_key, tbs));
        let intermediate_der = Draft {
            serial: serial(seed, "intermediate"),
            issuer: ROOT_NAME.into(),
            subject: INTERMEDIATE_NAME.into(),
            not_before: CA_START,
            not_after: CA_END,
            public_key_der: p384_public(&intermediate_key),
            extensions: certificate::ca_extensions(
                &p384_public(&intermediate_key),
                &p384_public(&root_key),
            ),
        }
        .issue(ECDSA_SHA384, |tbs| p384_sign(&root_key, tbs));
        Instance {
            seed: seed.into(),
            ct_key: p256_key(seed, "ct log"),
            rekor_key: p256_key(seed, "rekor"),
            intermediate_key,
            root_der,
            intermediate_der,
        }
    }

    fn log_id(key: &p256::ecdsa::SigningKey) -> Vec<u8> {
        Sha256::digest(p256_public(key)).to_vec()
    }

    /// The `trusted_root.json` trusting this instance's Fulcio, Rekor and CT log.
    pub fn trusted_root_json(&self) -> Vec<u8> {
        let log = |url: &str, key: &p256::ecdsa::SigningKey| {
            json!({
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": STANDARD.encode(p256_public(key)),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": rfc3339(CA_START)},
                },
                "logId": {"keyId": STANDARD.encode(Self::log_id(key))},
            })
        };
        let root = json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log("https://rekor.fixture.invalid", &self.rekor_key)],
            "certificateAuthorities": [{
                "subject": {"organization": "sigstore.dev", "commonName": "sigstore"},
                "uri": "https://fulcio.fixture.invalid",
                "certChain": {"certificates": [
                    {"rawBytes": STANDARD.encode(&self.intermediate_der)},
                    {"rawBytes": STANDARD.encode(&self.root_der)},
                ]},
                "validFor": {"start": rfc3339(CA_START)},
            }],
            "ctlogs": [log("https://ctfe.fixture.invalid", &self.ct_key)],
            "timestampAuthorities": [],
        });
        let mut bytes = serde_json::to_vec_pretty(&root).expect("serialisable");
        bytes.push(b'\n');
        bytes
    }

    /// A leaf certificate for `options` (its key derived from `label`), with an SCT.
    fn leaf(&self, options: &SignOptions, label: &str) -> (p256::ecdsa::SigningKey, Vec<u8>) {
        let key = p256_key(&self.seed, &format!("leaf\0{label}"));
        let mut draft = Draft {
            serial: serial(&self.seed, label),
            issuer: INTERMEDIATE_NAME.into(),
            subject: String::new(),
            not_before: options.not_before,
            not_after: options.not_before + options.lifetime,
            public_key_der: p256_public(&key),
            extensions: certificate::leaf_extensions(
                &options.identity,
                &options.issuer,
                &p256_public(&key),
                &p384_public(&self.intermediate_key),
            ),
        };
        let precertificate = draft.tbs_der(ECDSA_SHA384);
        let timestamp_ms = (options.not_before + 1) * 1000;
        let issuer_key_hash = Sha256::digest(p384_public(&self.intermediate_key));
        let mut signed = vec![0u8, 0u8];
        signed.extend_from_slice(&timestamp_ms.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes());
        signed.extend_from_slice(&issuer_key_hash);
        let length = u32::try_from(precertificate.len()).expect("a small certificate");
        signed.extend_from_slice(&length.to_be_bytes()[1..]);
        signed.extend_from_slice(&precertificate);
        signed.extend_from_slice(&0u16.to_be_bytes());
        let mut signature = p256_sign(&self.ct_key, &signed);
        if options.corrupt_sct {
            signature[12] ^= 0x01;
        }
        let mut sct = vec![0u8];
        sct.extend_from_slice(&Self::log_id(&self.ct_key));
        sct.extend_from_slice(&timestamp_ms.to_be_bytes());
        sct.extend_from_slice(&0u16.to_be_bytes());
        sct.extend_from_slice(&[4, 3]); // SHA-256, ECDSA
        sct.extend_from_slice(&u16::try_from(signature.len()).expect("short").to_be_bytes());
        sct.extend_from_slice(&signature);
        draft.extensions.push(certificate::sct_extension(&sct));
        let der = draft.issue(ECDSA_SHA384, |tbs| p384_sign(&self.intermediate_key, tbs));
        (key, der)
    }

    fn chain_pem(&self) -> String {
        pem(&self.intermediate_der) + &pem(&self.root_der)
    }

    /// Logs `body` at `options.integrated_time`: its index and signed entry timestamp.
    fn log(&self, body: &serde_json::Value, options: &SignOptions) -> Logged {
        let body = STANDARD.encode(serde_json::to_vec(body).expect("serialisable"));
        let log_index = u64::from(Sha256::digest(body.as_bytes())[0]) + 1000;
        let canonical = format!(
            "{{\"body\":\"{body}\",\"integratedTime\":{},\"logID\":\"{}\",\"logIndex\":{log_index}}}",
            options.integrated_time,
            hex(&Self::log_id(&self.rekor_key))
        );
        Logged {
            set: STANDARD.encode(p256_sign(&self.rekor_key, canonical.as_bytes())),
            body,
            log_index,
        }
    }

    /// `cosign sign` of a simple-signing payload, keyless, the classic way.
    pub fn sign_classic(&self, payload: &[u8], options: &SignOptions) -> ClassicSignature {
        let label = hex(&Sha256::digest(payload));
        let (key, certificate) = self.leaf(options, &label);
        let signature = p256_sign(&key, payload);
        let certificate_pem = pem(&certificate);
        let body = json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": label}},
                "signature": {
                    "content": STANDARD.encode(&signature),
                    "publicKey": {"content": STANDARD.encode(&certificate_pem)},
                },
            },
        });
        let logged = self.log(&body, options);
        let rekor_bundle = json!({
            "SignedEntryTimestamp": logged.set,
            "Payload": {
                "body": logged.body,
                "integratedTime": options.integrated_time,
                "logIndex": logged.log_index,
                "logID": hex(&Self::log_id(&self.rekor_key)),
            },
        });
        ClassicSignature {
            signature: STANDARD.encode(&signature),
            certificate_pem,
            chain_pem: self.chain_pem(),
            rekor_bundle: rekor_bundle.to_string(),
        }
    }

    /// `cosign sign --new-bundle-format`: a bundle whose DSSE envelope carries the in-toto
    /// statement that `repository@digest` was signed.
    pub fn sign_image_bundle(
        &self,
        repository: &str,
        digest: &str,
        options: &SignOptions,
    ) -> Vec<u8> {
        let hex_digest = digest.trim_start_matches("sha256:");
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": repository, "digest": {"sha256": hex_digest}}],
            "predicateType": "https://sigstore.dev/cosign/sign/v1",
            "predicate": {},
        });
        let payload = serde_json::to_vec(&statement).expect("serialisable");
        let payload_type = "application/vnd.in-toto+json";
        let (key, certificate) = self.leaf(options, &format!("bundle\0{repository}@{digest}"));
        let mut pae = format!(
            "DSSEv1 {} {payload_type} {} ",
            payload_type.len(),
            payload.len()
        )
        .into_bytes();
        pae.extend_from_slice(&payload);
        let signature = p256_sign(&key, &pae);
        let envelope = json!({
            "payload": STANDARD.encode(&payload),
            "payloadType": payload_type,
            "signatures": [{"sig": STANDARD.encode(&signature), "keyid": ""}],
        });
        let body = json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {
                    "algorithm": "sha256",
                    "value": hex(&Sha256::digest(serde_json::to_vec(&envelope).expect("serialisable"))),
                },
                "payloadHash": {"algorithm": "sha256", "value": hex(&Sha256::digest(&payload))},
                "signatures": [{
                    "signature": STANDARD.encode(&signature),
                    "verifier": STANDARD.encode(pem(&certificate)),
                }],
            },
        });
        let logged = self.log(&body, options);
        // A two-leaf tree: a neighbour entry, then this one.
        let mut leaf = Sha256::new();
        leaf.update([0u8]);
        leaf.update(STANDARD.decode(&logged.body).expect("base64"));
        let leaf = leaf.finalize().to_vec();
        let neighbour = Sha256::digest([0u8]).to_vec();
        let root = node(&neighbour, &leaf);
        let note = format!("{CHECKPOINT_ORIGIN} - 1\n2\n{}\n", STANDARD.encode(&root));
        let rekor_public = p256_public(&self.rekor_key);
        let mut signed_note = Sha256::digest(&rekor_public)[..4].to_vec();
        signed_note.extend_from_slice(&p256_sign(&self.rekor_key, note.as_bytes()));
        let checkpoint = format!(
            "{note}\n\u{2014} {CHECKPOINT_ORIGIN} {}\n",
            STANDARD.encode(&signed_note)
        );
        let bundle = json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": STANDARD.encode(&certificate)},
                "tlogEntries": [{
                    "logIndex": logged.log_index.to_string(),
                    "logId": {"keyId": STANDARD.encode(Self::log_id(&self.rekor_key))},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": options.integrated_time.to_string(),
                    "inclusionPromise": {"signedEntryTimestamp": logged.set},
                    "inclusionProof": {
                        "logIndex": "1",
                        "rootHash": STANDARD.encode(&root),
                        "treeSize": "2",
                        "hashes": [STANDARD.encode(&neighbour)],
                        "checkpoint": {"envelope": checkpoint},
                    },
                    "canonicalizedBody": logged.body,
                }],
            },
            "dsseEnvelope": envelope,
        });
        serde_json::to_vec(&bundle).expect("serialisable")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sigstore() {
        let one = Instance::new("seed");
        assert_eq!(
            one.trusted_root_json(),
            Instance::new("seed").trusted_root_json()
        );
        assert_ne!(
            one.trusted_root_json(),
            Instance::new("other").trusted_root_json()
        );
        let options = SignOptions::default();
        assert_eq!(
            one.sign_classic(b"payload", &options).rekor_bundle,
            Instance::new("seed")
                .sign_classic(b"payload", &options)
                .rekor_bundle
        );
    }
}
