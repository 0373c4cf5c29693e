//! PKCS#7 SignedData as UEFI firmware reads it: one signer (RSA PKCS#1 v1.5 over SHA-256,
//! identified by issuer and serial number), its certificate included, signed attributes that
//! carry the content type and the content's SHA-256. Authenticode signatures over PE images
//! and the authenticated writes of Secure Boot variables are both made here, so the two
//! cannot drift apart in how a signer, its algorithms or its attributes are written.
//!
//! No signing time and no random input: the same content and key give the same bytes.

use super::secureboot::{SecureBootKeyError, Signer};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::CmsVersion;
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::Encode;
use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use sha2::{Digest, Sha256};
use x509_cert::attr::Attribute;
use x509_cert::spki::AlgorithmIdentifierOwned;

pub const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
pub const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
pub const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
pub const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
pub const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
pub const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Pkcs7Error {
    /// A structure could not be DER-encoded (a value out of range: a bug or an absurd input).
    #[error("encoding: {0}")]
    Encoding(String),
    /// The signer refused or failed.
    #[error("signature: {0}")]
    Sign(#[from] SecureBootKeyError),
}

impl From<der::Error> for Pkcs7Error {
    fn from(error: der::Error) -> Pkcs7Error {
        Pkcs7Error::Encoding(error.to_string())
    }
}

/// What is signed: the content type named in the signed attributes and the SignedData, the
/// SHA-256 the `messageDigest` attribute carries, and the content itself when it travels
/// inside the SignedData (`None`: detached).
#[derive(Debug)]
pub struct Content {
    pub content_type: ObjectIdentifier,
    pub digest: [u8; 32],
    pub encapsulated: Option<Any>,
}

/// An `AlgorithmIdentifier` with NULL parameters, as Windows and firmware write SHA-256 and
/// rsaEncryption (EDK2 finds the SHA-256 OID at a fixed offset, which assumes this form).
pub fn algorithm(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: Some(Any::null()),
    }
}

/// A signed attribute with one value.
pub fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, Pkcs7Error> {
    let mut values = SetOfVec::new();
    values.insert(value)?;
    Ok(Attribute { oid, values })
}

/// The SignedData over `content`: signed attributes `contentType`, `messageDigest` and
/// `extra`, signed by `signer`, whose certificate is the one certificate included.
pub fn signed_data(
    content: Content,
    extra: Vec<Attribute>,
    signer: &dyn Signer,
) -> Result<SignedData, Pkcs7Error> {
    let mut signed_attrs = SetOfVec::new();
    let digest = OctetString::new(content.digest.to_vec())?;
    signed_attrs.insert(attribute(
        CONTENT_TYPE,
        Any::encode_from(&content.content_type)?,
    )?)?;
    signed_attrs.insert(attribute(MESSAGE_DIGEST, Any::encode_from(&digest)?)?)?;
    for attr in extra {
        signed_attrs.insert(attr)?;
    }
    // With signed attributes, the signature covers their DER as a SET (RFC 5652 §5.4), not
    // the [0] IMPLICIT form they are written in.
    let attrs_digest: [u8; 32] = Sha256::digest(signed_attrs.to_der()?).into();
    let signature = signer.sign_sha256(&attrs_digest)?;

    let certificate = signer.certificate().clone();
    let tbs = certificate.tbs_certificate();
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        }),
        digest_alg: algorithm(SHA256),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: algorithm(RSA_ENCRYPTION),
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let mut digest_algorithms = SetOfVec::new();
    digest_algorithms.insert(algorithm(SHA256))?;
    let mut certificates = SetOfVec::new();
    certificates.insert(CertificateChoices::Certificate(certificate))?;
    let mut signer_infos = SetOfVec::new();
    signer_infos.insert(signer_info)?;
    Ok(SignedData {
        // Version 1: PKCS#7 as Authenticode and EDK2 expect it, also for id-data content.
        version: CmsVersion::V1,
        digest_algorithms,
        // PKCS#7, not CMS: encapsulated content is the value itself, not an OCTET STRING
        // holding it.
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: content.content_type,
            econtent: content.encapsulated,
        },
        certificates: Some(CertificateSet(certificates)),
        crls: None,
        signer_infos: SignerInfos(signer_infos),
    })
}
