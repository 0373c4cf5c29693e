//! Rekor, the transparency log: an entry's signed entry timestamp (a signature over the
//! RFC 8785 canonical JSON of body, integrated time, log ID and index), its inclusion proof
//! (RFC 9162 §2.1.3.2) up to a signed checkpoint (a signed note), and what its body says
//! was signed (`hashedrekord` and `dsse` entries).

use super::SigstoreError;
use super::certificate::hex;
use super::trust_root::{LogKey, TrustRoot};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use der::DecodePem;
use der::Encode;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// One entry of the log, as a signature carries it.
#[derive(Debug, Clone)]
pub(super) struct LogEntry {
    /// The canonicalized body, base64 as the entry carries it (the SET signs this text).
    pub body_base64: String,
    pub body: Vec<u8>,
    pub integrated_time: u64,
    pub log_index: u64,
    pub log_id: Vec<u8>,
    pub signed_entry_timestamp: Option<Vec<u8>>,
    pub inclusion_proof: Option<InclusionProof>,
}

#[derive(Debug, Clone)]
pub(super) struct InclusionProof {
    pub log_index: u64,
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
    pub hashes: Vec<Vec<u8>>,
    pub checkpoint: String,
}

fn fail(reason: impl Into<String>) -> SigstoreError {
    SigstoreError::TransparencyLog(reason.into())
}

pub(super) fn decode_base64(text: &str, what: &str) -> Result<Vec<u8>, SigstoreError> {
    STANDARD
        .decode(text.trim())
        .map_err(|error| fail(format!("{what} is not base64: {error}")))
}

impl LogEntry {
    /// Cosign's `dev.sigstore.cosign/bundle` annotation.
    pub fn from_cosign_bundle(json: &[u8]) -> Result<LogEntry, SigstoreError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct RekorBundle {
            signed_entry_timestamp: String,
            payload: Payload,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload {
            body: String,
            integrated_time: u64,
            log_index: u64,
            #[serde(rename = "logID")]
            log_id: String,
        }
        let bundle: RekorBundle = serde_json::from_slice(json)
            .map_err(|error| fail(format!("the Rekor bundle annotation: {error}")))?;
        let log_id = (0..bundle.payload.log_id.len())
            .step_by(2)
            .map(|at| {
                bundle
                    .payload
                    .log_id
                    .get(at..at + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| fail("the Rekor bundle's logID is not hex"))?;
        Ok(LogEntry {
            body: decode_base64(&bundle.payload.body, "the Rekor body")?,
            body_base64: bundle.payload.body,
            integrated_time: bundle.payload.integrated_time,
            log_index: bundle.payload.log_index,
            log_id,
            signed_entry_timestamp: Some(decode_base64(
                &bundle.signed_entry_timestamp,
                "the signed entry timestamp",
            )?),
            inclusion_proof: None,
        })
    }

    /// Checks the entry against the trust root's Rekor keys: the log must be known and
    /// valid at the integrated time, and the signed entry timestamp and the inclusion proof
    /// (whichever the entry carries, at least one) must verify.
    pub fn verify(&self, root: &TrustRoot) -> Result<(), SigstoreError> {
        let log = root.tlog(&self.log_id).ok_or_else(|| {
            fail(format!(
                "the entry's log {} is not a Rekor log of the trust root",
                hex(&self.log_id)
            ))
        })?;
        if !log.valid.contains(self.integrated_time) {
            return Err(fail(format!(
                "the Rekor key of {} was not valid at the integrated time {}",
                log.url, self.integrated_time
            )));
        }
        if self.signed_entry_timestamp.is_none() && self.inclusion_proof.is_none() {
            return Err(fail(
                "the entry has neither a signed entry timestamp nor an inclusion proof",
            ));
        }
        if let Some(set) = &self.signed_entry_timestamp {
            // RFC 8785: keys sorted, no whitespace; the values need no escaping beyond JSON's.
            let canonical = format!(
                "{{\"body\":{},\"integratedTime\":{},\"logID\":\"{}\",\"logIndex\":{}}}",
                serde_json::Value::from(self.body_base64.as_str()),
                self.integrated_time,
                hex(&self.log_id),
                self.log_index
            );
            if !log.key.verify(canonical.as_bytes(), set) {
                return Err(fail(format!(
                    "the signed entry timestamp does not verify with the Rekor key of {}",
                    log.url
                )));
            }
        }
        if let Some(proof) = &self.inclusion_proof {
            proof.verify(&self.body, log)?;
        }
        Ok(())
    }
}

impl InclusionProof {
    fn verify(&self, body: &[u8], log: &LogKey) -> Result<(), SigstoreError> {
        let mut leaf = Sha256::new();
        leaf.update([0u8]);
        leaf.update(body);
        let leaf: [u8; 32] = leaf.finalize().into();
        let root = root_from_proof(leaf, self.log_index, self.tree_size, &self.hashes)
            .ok_or_else(|| fail("the inclusion proof is malformed for its index and tree size"))?;
        if root.as_slice() != self.root_hash.as_slice() {
            return Err(fail("the inclusion proof does not lead to its root hash"));
        }
        let (size, checkpoint_root) = verify_checkpoint(&self.checkpoint, log)?;
        if size != self.tree_size || checkpoint_root != self.root_hash {
            return Err(fail(
                "the checkpoint is for another tree than the inclusion proof",
            ));
        }
        Ok(())
    }
}

fn node(left: &[u8], right: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update([1u8]);
    hash.update(left);
    hash.update(right);
    hash.finalize().into()
}

/// RFC 9162 §2.1.3.2: the root a leaf's audit path leads to.
fn root_from_proof(leaf: [u8; 32], index: u64, size: u64, path: &[Vec<u8>]) -> Option<[u8; 32]> {
    if index >= size {
        return None;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut hash = leaf;
    for sibling in path {
        if sibling.len() != 32 || sn == 0 {
            return None;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            hash = node(sibling, &hash);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            hash = node(&hash, sibling);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    (sn == 0).then_some(hash)
}

/// A signed note (`origin\nsize\nroot\n\n— name <base64(key hint ‖ signature)>\n`): checks
/// that a signature line by `log` verifies, and returns the tree size and root hash.
fn verify_checkpoint(note: &str, log: &LogKey) -> Result<(u64, Vec<u8>), SigstoreError> {
    let split = note
        .find("\n\n")
        .ok_or_else(|| fail("the checkpoint is not a signed note"))?;
    let (text, signatures) = (&note[..=split], &note[split + 2..]);
    let mut lines = text.lines();
    let _origin = lines.next();
    let size = lines
        .next()
        .and_then(|line| line.parse::<u64>().ok())
        .ok_or_else(|| fail("the checkpoint has no tree size"))?;
    let root = lines
        .next()
        .map(|line| decode_base64(line, "the checkpoint's root hash"))
        .transpose()?
        .ok_or_else(|| fail("the checkpoint has no root hash"))?;
    let signed = signatures.lines().any(|line| {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            return false;
        };
        let Some((_, encoded)) = rest.rsplit_once(' ') else {
            return false;
        };
        let Ok(bytes) = STANDARD.decode(encoded) else {
            return false;
        };
        match bytes.split_first_chunk::<4>() {
            Some((hint, signature)) if !signature.is_empty() && *hint == log.hint => {
                log.key.verify(text.as_bytes(), signature)
            }
            _ => false,
        }
    });
    if !signed {
        return Err(fail(format!(
            "the checkpoint carries no valid signature by the Rekor key of {}",
            log.url
        )));
    }
    Ok((size, root))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    api_version: String,
    kind: String,
    spec: serde_json::Value,
}

fn parse_body(body: &[u8], kind: &str) -> Result<serde_json::Value, SigstoreError> {
    let body: Body =
        serde_json::from_slice(body).map_err(|error| fail(format!("the entry's body: {error}")))?;
    if body.kind != kind || body.api_version != "0.0.1" {
        return Err(fail(format!(
            "the entry is a {} {} entry, not {kind} 0.0.1",
            body.kind, body.api_version
        )));
    }
    Ok(body.spec)
}

fn text<'a>(value: &'a serde_json::Value, path: &[&str]) -> Result<&'a str, SigstoreError> {
    path.iter()
        .try_fold(value, |value, key| value.get(key))
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| fail(format!("the entry's body has no {}", path.join("."))))
}

/// The body names `certificate`, in PEM and base64, as `cosign` and Fulcio clients write it.
fn names_certificate(encoded: &str, certificate: &[u8]) -> bool {
    STANDARD
        .decode(encoded)
        .ok()
        .and_then(|pem| x509_cert::Certificate::from_pem(&pem).ok())
        .and_then(|parsed| parsed.to_der().ok())
        .is_some_and(|der| der == certificate)
}

/// A `hashedrekord` entry records this SHA-256 digest, signature and certificate.
pub(super) fn check_hashedrekord(
    body: &[u8],
    sha256: &[u8],
    signature: &[u8],
    certificate: &[u8],
) -> Result<(), SigstoreError> {
    let spec = parse_body(body, "hashedrekord")?;
    let algorithm = text(&spec, &["data", "hash", "algorithm"])?;
    let value = text(&spec, &["data", "hash", "value"])?;
    if algorithm != "sha256" || !value.eq_ignore_ascii_case(&hex(sha256)) {
        return Err(fail(format!(
            "the entry records the {algorithm} digest {value}, not the signed content's {}",
            hex(sha256)
        )));
    }
    if decode_base64(
        text(&spec, &["signature", "content"])?,
        "the entry's signature",
    )? != signature
    {
        return Err(fail("the entry records another signature"));
    }
    if !names_certificate(
        text(&spec, &["signature", "publicKey", "content"])?,
        certificate,
    ) {
        return Err(fail("the entry records another certificate"));
    }
    Ok(())
}

/// A `dsse` entry records this envelope payload, its one signature and certificate.
pub(super) fn check_dsse(
    body: &[u8],
    payload: &[u8],
    signature: &[u8],
    certificate: &[u8],
) -> Result<(), SigstoreError> {
    let spec = parse_body(body, "dsse")?;
    let algorithm = text(&spec, &["payloadHash", "algorithm"])?;
    let value = text(&spec, &["payloadHash", "value"])?;
    let expected = hex(&Sha256::digest(payload));
    if algorithm != "sha256" || !value.eq_ignore_ascii_case(&expected) {
        return Err(fail(format!(
            "the entry records the payload digest {value}, not the envelope's {expected}"
        )));
    }
    let signatures = spec
        .get("signatures")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| fail("the entry's body has no signatures"))?;
    let [recorded] = signatures.as_slice() else {
        return Err(fail("the entry records more than one signature"));
    };
    if decode_base64(text(recorded, &["signature"])?, "the entry's signature")? != signature {
        return Err(fail("the entry records another signature"));
    }
    if !names_certificate(text(recorded, &["verifier"])?, certificate) {
        return Err(fail("the entry records another certificate"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(byte: u8) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update([0u8, byte]);
        hash.finalize().into()
    }

    /// The RFC 9162 tree hash of leaves `[0, n)`.
    fn tree(leaves: &[[u8; 32]]) -> [u8; 32] {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let split = leaves.len().next_power_of_two() / 2;
        node(&tree(&leaves[..split]), &tree(&leaves[split..]))
    }

    fn path(leaves: &[[u8; 32]], index: usize) -> Vec<Vec<u8>> {
        if leaves.len() == 1 {
            return Vec::new();
        }
        let split = leaves.len().next_power_of_two() / 2;
        if index < split {
            let mut path = path(&leaves[..split], index);
            path.push(tree(&leaves[split..]).to_vec());
            path
        } else {
            let mut path = path(&leaves[split..], index - split);
            path.push(tree(&leaves[..split]).to_vec());
            path
        }
    }

    #[test]
    fn audit_paths_lead_to_the_root_of_every_tree_shape() {
        for size in 1..=13u8 {
            let leaves: Vec<_> = (0..size).map(leaf).collect();
            let root = tree(&leaves);
            for index in 0..usize::from(size) {
                let proof = path(&leaves, index);
                let found = root_from_proof(leaves[index], index as u64, u64::from(size), &proof);
                assert_eq!(found, Some(root), "size {size}, index {index}");
                let other = (index + 1) % usize::from(size);
                if other != index {
                    assert_ne!(
                        root_from_proof(leaves[other], index as u64, u64::from(size), &proof),
                        Some(root)
                    );
                }
            }
        }
        assert_eq!(root_from_proof(leaf(0), 3, 3, &[]), None);
    }
}
