//! Sigstore bundles (`application/vnd.dev.sigstore.bundle*+json`, v0.1 to v0.3): the
//! verification material (certificate, Rekor entries) and the signed content, a DSSE
//! envelope (whose signature covers its pre-authentication encoding) or a message signature
//! over a digest; and the in-toto statement a DSSE envelope carries.

use super::SigstoreError;
use super::transparency::{InclusionProof, LogEntry, decode_base64};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// The in-toto payload type of a DSSE envelope.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A parsed bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The signing certificate's DER; `None` for a bundle signed with a plain key.
    pub(super) certificate: Option<Vec<u8>>,
    pub(super) entries: Vec<LogEntry>,
    pub(super) kind: String,
    pub(super) content: Content,
}

#[derive(Debug, Clone)]
pub(super) enum Content {
    Dsse {
        payload_type: String,
        payload: Vec<u8>,
        signature: Vec<u8>,
    },
    Message {
        algorithm: String,
        digest: Vec<u8>,
        signature: Vec<u8>,
    },
}

/// What a bundle's signature is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedContent {
    /// These bytes (a DSSE envelope's pre-authentication encoding).
    Message(Vec<u8>),
    /// A digest of content the bundle does not carry (`SHA2_256`, ...).
    Prehashed { algorithm: String, digest: Vec<u8> },
}

/// An in-toto statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub predicate_type: String,
    pub subjects: Vec<Subject>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Subject {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub digest: BTreeMap<String, String>,
}

fn malformed(reason: impl Into<String>) -> SigstoreError {
    SigstoreError::Bundle(reason.into())
}

impl Bundle {
    pub fn parse(bytes: &[u8]) -> Result<Bundle, SigstoreError> {
        let bundle: json::Bundle =
            serde_json::from_slice(bytes).map_err(|error| malformed(error.to_string()))?;
        if !bundle
            .media_type
            .starts_with("application/vnd.dev.sigstore.bundle")
        {
            return Err(malformed(format!(
                "media type {:?} is not a Sigstore bundle",
                bundle.media_type
            )));
        }
        let material = bundle.verification_material;
        let certificate = match (material.certificate, material.x509_certificate_chain) {
            (Some(certificate), _) => Some(certificate.raw_bytes),
            (None, Some(chain)) => chain
                .certificates
                .into_iter()
                .next()
                .map(|certificate| certificate.raw_bytes),
            (None, None) => None,
        }
        .map(|encoded| decode_base64(&encoded, "the bundle's certificate"))
        .transpose()?;
        let mut kind = String::new();
        let mut entries = Vec::new();
        for entry in material.tlog_entries {
            kind = format!("{} {}", entry.kind_version.kind, entry.kind_version.version);
            let inclusion_proof = entry
                .inclusion_proof
                .map(|proof| -> Result<InclusionProof, SigstoreError> {
                    Ok(InclusionProof {
                        log_index: proof.log_index,
                        tree_size: proof.tree_size,
                        root_hash: decode_base64(&proof.root_hash, "the proof's root hash")?,
                        hashes: proof
                            .hashes
                            .iter()
                            .map(|hash| decode_base64(hash, "a proof hash"))
                            .collect::<Result<_, _>>()?,
                        checkpoint: proof.checkpoint.envelope,
                    })
                })
                .transpose()?;
            entries.push(LogEntry {
                body: decode_base64(&entry.canonicalized_body, "the entry's body")?,
                body_base64: entry.canonicalized_body,
                integrated_time: entry.integrated_time,
                log_index: entry.log_index,
                log_id: decode_base64(&entry.log_id.key_id, "the entry's log ID")?,
                signed_entry_timestamp: entry
                    .inclusion_promise
                    .map(|promise| decode_base64(&promise.signed_entry_timestamp, "the SET"))
                    .transpose()?,
                inclusion_proof,
            });
        }
        let content = match (bundle.dsse_envelope, bundle.message_signature) {
            (Some(envelope), None) => {
                let [signature] = envelope.signatures.as_slice() else {
                    return Err(malformed(
                        "the DSSE envelope must carry exactly one signature",
                    ));
                };
                Content::Dsse {
                    payload: decode_base64(&envelope.payload, "the DSSE payload")?,
                    signature: decode_base64(&signature.sig, "the DSSE signature")?,
                    payload_type: envelope.payload_type,
                }
            }
            (None, Some(message)) => {
                let digest = message
                    .message_digest
                    .ok_or_else(|| malformed("the message signature has no digest"))?;
                Content::Message {
                    algorithm: digest.algorithm,
                    digest: decode_base64(&digest.digest, "the message digest")?,
                    signature: decode_base64(&message.signature, "the message signature")?,
                }
            }
            _ => {
                return Err(malformed(
                    "it must hold exactly one of dsseEnvelope and messageSignature",
                ));
            }
        };
        Ok(Bundle {
            certificate,
            entries,
            kind,
            content,
        })
    }

    /// The in-toto statement of a DSSE bundle.
    pub fn statement(&self) -> Result<Statement, SigstoreError> {
        let Content::Dsse {
            payload_type,
            payload,
            ..
        } = &self.content
        else {
            return Err(malformed(
                "it holds a message signature, not an in-toto statement",
            ));
        };
        if payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(malformed(format!(
                "its DSSE payload is {payload_type:?}, not an in-toto statement"
            )));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct InToto {
            #[serde(rename = "_type")]
            kind: String,
            #[serde(default)]
            subject: Vec<Subject>,
            predicate_type: String,
        }
        let statement: InToto = serde_json::from_slice(payload)
            .map_err(|error| malformed(format!("its in-toto statement: {error}")))?;
        if !statement.kind.starts_with("https://in-toto.io/Statement/") {
            return Err(malformed(format!(
                "its statement type is {:?}",
                statement.kind
            )));
        }
        Ok(Statement {
            predicate_type: statement.predicate_type,
            subjects: statement.subject,
        })
    }

    pub fn signed_content(&self) -> SignedContent {
        match &self.content {
            Content::Dsse {
                payload_type,
                payload,
                ..
            } => SignedContent::Message(pre_authentication_encoding(payload_type, payload)),
            Content::Message {
                algorithm, digest, ..
            } => SignedContent::Prehashed {
                algorithm: algorithm.clone(),
                digest: digest.clone(),
            },
        }
    }

    pub fn signature(&self) -> &[u8] {
        match &self.content {
            Content::Dsse { signature, .. } | Content::Message { signature, .. } => signature,
        }
    }
}

/// DSSE's PAE: `DSSEv1 <len(type)> <type> <len(body)> <body>`.
pub fn pre_authentication_encoding(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut encoded = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    encoded.extend_from_slice(payload);
    encoded
}

/// Protobuf-JSON writes 64-bit integers as strings; accept both.
fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Number(u64),
        Text(String),
    }
    match Int::deserialize(deserializer)? {
        Int::Number(number) => Ok(number),
        Int::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

mod json {
    //! The bundle's protobuf-JSON (camelCase) as far as verification reads it.

    use super::int64;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Bundle {
        pub media_type: String,
        pub verification_material: Material,
        pub dsse_envelope: Option<Envelope>,
        pub message_signature: Option<MessageSignature>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Material {
        pub certificate: Option<RawBytes>,
        pub x509_certificate_chain: Option<Chain>,
        #[serde(default)]
        pub tlog_entries: Vec<TlogEntry>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct RawBytes {
        pub raw_bytes: String,
    }

    #[derive(Deserialize)]
    pub struct Chain {
        pub certificates: Vec<RawBytes>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TlogEntry {
        #[serde(deserialize_with = "int64")]
        pub log_index: u64,
        pub log_id: KeyId,
        pub kind_version: KindVersion,
        #[serde(deserialize_with = "int64")]
        pub integrated_time: u64,
        pub inclusion_promise: Option<Promise>,
        pub inclusion_proof: Option<Proof>,
        pub canonicalized_body: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct KeyId {
        pub key_id: String,
    }

    #[derive(Deserialize)]
    pub struct KindVersion {
        pub kind: String,
        pub version: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Promise {
        pub signed_entry_timestamp: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Proof {
        #[serde(deserialize_with = "int64")]
        pub log_index: u64,
        pub root_hash: String,
        #[serde(deserialize_with = "int64")]
        pub tree_size: u64,
        #[serde(default)]
        pub hashes: Vec<String>,
        pub checkpoint: Checkpoint,
    }

    #[derive(Deserialize)]
    pub struct Checkpoint {
        pub envelope: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Envelope {
        pub payload: String,
        pub payload_type: String,
        pub signatures: Vec<EnvelopeSignature>,
    }

    #[derive(Deserialize)]
    pub struct EnvelopeSignature {
        pub sig: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct MessageSignature {
        pub message_digest: Option<Digest>,
        pub signature: String,
    }

    #[derive(Deserialize)]
    pub struct Digest {
        pub algorithm: String,
        pub digest: String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_dsse_v1() {
        assert_eq!(
            pre_authentication_encoding("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn malformed_bundles_say_what_is_wrong() {
        let error =
            Bundle::parse(br#"{"mediaType":"text/plain","verificationMaterial":{}}"#).unwrap_err();
        assert!(
            error.to_string().contains("not a Sigstore bundle"),
            "{error}"
        );
        let error = Bundle::parse(
            br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{}}"#,
        )
        .unwrap_err();
        assert!(error.to_string().contains("exactly one of"), "{error}");
    }
}
