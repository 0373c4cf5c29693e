//! X.509 for the test Sigstore: a self-signed root, an intermediate, and short-lived leaf
//! certificates with Fulcio's extensions and an embedded SCT, all DER built from the
//! fields up (the certificate an SCT signs is the leaf without its SCT extension).

use der::asn1::{
    BitString, Ia5String, ObjectIdentifier, OctetString, Uint, UtcTime, Utf8StringRef,
};
use der::{Decode, Encode, Sequence};
use std::str::FromStr;
use std::time::Duration;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
use x509_cert::name::Name;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::Time;

pub const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
pub const SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const AUTHORITY_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
const ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
const CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");

#[derive(Sequence)]
struct Validity {
    not_before: Time,
    not_after: Time,
}

#[derive(Sequence)]
struct TbsCertificate {
    #[asn1(context_specific = "0", optional = "true")]
    version: Option<u8>,
    serial_number: Uint,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    validity: Validity,
    subject: Name,
    subject_public_key_info: SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "3", optional = "true")]
    extensions: Option<Vec<Extension>>,
}

#[derive(Sequence)]
struct Certificate {
    tbs_certificate: TbsCertificate,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

/// What a certificate says; `issue` turns it into DER.
pub struct Draft {
    pub serial: [u8; 16],
    pub issuer: String,
    pub subject: String,
    pub not_before: u64,
    pub not_after: u64,
    pub public_key_der: Vec<u8>,
    pub extensions: Vec<Extension>,
}

fn time(seconds: u64) -> Time {
    Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(seconds)).expect("a UTCTime"))
}

fn name(text: &str) -> Name {
    if text.is_empty() {
        Name::default()
    } else {
        Name::from_str(text).expect("a distinguished name")
    }
}

impl Draft {
    fn tbs(&self, algorithm: ObjectIdentifier) -> TbsCertificate {
        let mut serial = self.serial;
        serial[0] &= 0x7f;
        TbsCertificate {
            version: Some(2),
            serial_number: Uint::new(&serial).expect("a serial"),
            signature: AlgorithmIdentifierOwned {
                oid: algorithm,
                parameters: None,
            },
            issuer: name(&self.issuer),
            validity: Validity {
                not_before: time(self.not_before),
                not_after: time(self.not_after),
            },
            subject: name(&self.subject),
            subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(&self.public_key_der)
                .expect("a SubjectPublicKeyInfo"),
            extensions: Some(self.extensions.clone()),
        }
    }

    /// The DER of the to-be-signed part, as the issuer with `algorithm` would sign it.
    pub fn tbs_der(&self, algorithm: ObjectIdentifier) -> Vec<u8> {
        self.tbs(algorithm).to_der().expect("encodable")
    }

    /// The certificate, `sign` signing the TBS DER with `algorithm` (a DER ECDSA signature).
    pub fn issue(&self, algorithm: ObjectIdentifier, sign: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
        let tbs = self.tbs(algorithm);
        let signature = sign(&tbs.to_der().expect("encodable"));
        Certificate {
            tbs_certificate: tbs,
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: algorithm,
                parameters: None,
            },
            signature: BitString::from_bytes(&signature).expect("a bit string"),
        }
        .to_der()
        .expect("encodable")
    }
}

fn extension(oid: ObjectIdentifier, critical: bool, value: Vec<u8>) -> Extension {
    Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value).expect("an octet string"),
    }
}

/// The key identifier of a public key (its DER's SHA-256, cut to SHA-1's 20 bytes).
pub fn key_id(public_key_der: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(public_key_der)[..20].to_vec()
}

/// Subject and authority key identifiers, which strict X.509 path builders require.
fn key_ids(subject_key: &[u8], issuer_key: &[u8]) -> Vec<Extension> {
    let subject = OctetString::new(key_id(subject_key)).expect("an octet string");
    let mut authority = vec![0x30, 0x16, 0x80, 0x14];
    authority.extend_from_slice(&key_id(issuer_key));
    vec![
        extension(SUBJECT_KEY_ID, false, subject.to_der().expect("encodable")),
        extension(AUTHORITY_KEY_ID, false, authority),
    ]
}

/// A CA's extensions: basic constraints (CA), key usage (certificate and CRL signing), key
/// identifiers.
pub fn ca_extensions(subject_key: &[u8], issuer_key: &[u8]) -> Vec<Extension> {
    let mut extensions = vec![
        extension(BASIC_CONSTRAINTS, true, vec![0x30, 0x03, 0x01, 0x01, 0xff]),
        extension(KEY_USAGE, true, vec![0x03, 0x02, 0x01, 0x06]),
    ];
    extensions.extend(key_ids(subject_key, issuer_key));
    extensions
}

/// Fulcio's leaf extensions: digital signature, code signing, key identifiers, the identity
/// as an email or URI subject alternative name, the OIDC issuer in both encodings.
pub fn leaf_extensions(
    identity: &str,
    issuer: &str,
    subject_key: &[u8],
    issuer_key: &[u8],
) -> Vec<Extension> {
    let ia5 = Ia5String::new(identity).expect("an IA5 identity");
    let name = if identity.contains("://") {
        GeneralName::UniformResourceIdentifier(ia5)
    } else {
        GeneralName::Rfc822Name(ia5)
    };
    let mut extensions = vec![
        extension(KEY_USAGE, true, vec![0x03, 0x02, 0x07, 0x80]),
        extension(
            EXTENDED_KEY_USAGE,
            false,
            ExtendedKeyUsage(vec![CODE_SIGNING])
                .to_der()
                .expect("encodable"),
        ),
        extension(
            SUBJECT_ALT_NAME,
            true,
            SubjectAltName(vec![name]).to_der().expect("encodable"),
        ),
        extension(ISSUER_V1, false, issuer.as_bytes().to_vec()),
        extension(
            ISSUER_V2,
            false,
            Utf8StringRef::new(issuer)
                .expect("a UTF-8 issuer")
                .to_der()
                .expect("encodable"),
        ),
    ];
    extensions.extend(key_ids(subject_key, issuer_key));
    extensions
}

/// The SCT list extension holding one TLS-encoded SCT.
pub fn sct_extension(sct: &[u8]) -> Extension {
    let mut list = (u16::try_from(sct.len() + 2).expect("a short SCT"))
        .to_be_bytes()
        .to_vec();
    list.extend_from_slice(&(u16::try_from(sct.len()).expect("a short SCT")).to_be_bytes());
    list.extend_from_slice(sct);
    extension(
        SCT_LIST,
        false,
        OctetString::new(list)
            .expect("an octet string")
            .to_der()
            .expect("encodable"),
    )
}

pub fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
