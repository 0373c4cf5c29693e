//! Authenticode signatures, as UEFI Secure Boot checks them: the PE image hash
//! ([`pe::authenticode_sha256`]) in an `SpcIndirectDataContent`, a PKCS#7 SignedData over it
//! (RSA PKCS#1 v1.5 with SHA-256, the signing certificate included), appended as a
//! `WIN_CERTIFICATE` that the security data directory points at.
//!
//! No signing time and no random input, so the same image and key give the same bytes.

use super::pe::{self, DIRECTORY_SECURITY, optional};
use crate::engine::EngineError;
use crate::sign::secureboot::Signer;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Encode, Reader, Sequence};
use sha2::{Digest, Sha256};
use x509_cert::attr::Attribute;
use x509_cert::spki::AlgorithmIdentifierOwned;

const SPC_INDIRECT_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.4");
const SPC_PE_IMAGE_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.15");
const SPC_SP_OPUS_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.12");
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// `SpcPeImageData` as every signing tool writes it: no flags, an empty `SpcLink` file name
/// (`<<<Obsolete>>>` is not needed by firmware).
const PE_IMAGE_DATA: &[u8] = &[
    0x30, 0x09, 0x03, 0x01, 0x00, 0xA0, 0x04, 0xA2, 0x02, 0x80, 0x00,
];

/// `WIN_CERT_REVISION_2_0` and `WIN_CERT_TYPE_PKCS_SIGNED_DATA`.
const WIN_CERT_REVISION: u16 = 0x0200;
const WIN_CERT_TYPE_PKCS_SIGNED_DATA: u16 = 0x0002;
const WIN_CERTIFICATE_HEADER: usize = 8;

#[derive(Sequence)]
struct TypeAndValue {
    value_type: ObjectIdentifier,
    value: Any,
}

#[derive(Sequence)]
struct DigestInfo {
    algorithm: AlgorithmIdentifierOwned,
    digest: OctetString,
}

#[derive(Sequence)]
struct SpcIndirectDataContent {
    data: TypeAndValue,
    message_digest: DigestInfo,
}

fn der_error(error: der::Error) -> EngineError {
    EngineError::Pe(format!("Authenticode encoding: {error}"))
}

fn algorithm(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: Some(Any::null()),
    }
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, EngineError> {
    let mut values = SetOfVec::new();
    values.insert(value).map_err(der_error)?;
    Ok(Attribute { oid, values })
}

/// The PKCS#7 SignedData (in its ContentInfo) that signs `digest`, an image's Authenticode hash.
pub fn signature(digest: &[u8; 32], signer: &dyn Signer) -> Result<Vec<u8>, EngineError> {
    let content = SpcIndirectDataContent {
        data: TypeAndValue {
            value_type: SPC_PE_IMAGE_DATA,
            value: Any::from_der(PE_IMAGE_DATA).map_err(der_error)?,
        },
        message_digest: DigestInfo {
            algorithm: algorithm(SHA256),
            digest: OctetString::new(digest.to_vec()).map_err(der_error)?,
        },
    };
    let content_der = content.to_der().map_err(der_error)?;
    // Authenticode's quirk: the message digest covers the content's value, not its tag and
    // length.
    let mut reader = der::SliceReader::new(&content_der).map_err(der_error)?;
    der::Header::decode(&mut reader).map_err(der_error)?;
    let header_len = usize::try_from(reader.position())
        .map_err(|_| EngineError::Pe("Authenticode header length".into()))?;
    let content_digest = Sha256::digest(&content_der[header_len..]);

    let mut signed_attrs = SetOfVec::new();
    for attr in [
        attribute(
            CONTENT_TYPE,
            Any::encode_from(&SPC_INDIRECT_DATA).map_err(der_error)?,
        )?,
        // An empty SpcSpOpusInfo, as sbsign and signtool write it.
        attribute(
            SPC_SP_OPUS_INFO,
            Any::from_der(&[0x30, 0x00]).map_err(der_error)?,
        )?,
        attribute(
            MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(content_digest.to_vec()).map_err(der_error)?)
                .map_err(der_error)?,
        )?,
    ] {
        signed_attrs.insert(attr).map_err(der_error)?;
    }
    let attrs_digest: [u8; 32] = Sha256::digest(signed_attrs.to_der().map_err(der_error)?).into();
    let signature = signer
        .sign_sha256(&attrs_digest)
        .map_err(|error| EngineError::Pe(format!("Authenticode signature: {error}")))?;

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
        signature: OctetString::new(signature).map_err(der_error)?,
        unsigned_attrs: None,
    };
    let mut digest_algorithms = SetOfVec::new();
    digest_algorithms
        .insert(algorithm(SHA256))
        .map_err(der_error)?;
    let mut certificates = SetOfVec::new();
    certificates
        .insert(CertificateChoices::Certificate(certificate))
        .map_err(der_error)?;
    let mut signer_infos = SetOfVec::new();
    signer_infos.insert(signer_info).map_err(der_error)?;
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms,
        // PKCS#7, not CMS: the content is the SpcIndirectDataContent itself, not an OCTET
        // STRING holding it.
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: SPC_INDIRECT_DATA,
            econtent: Some(Any::from_der(&content_der).map_err(der_error)?),
        },
        certificates: Some(CertificateSet(certificates)),
        crls: None,
        signer_infos: SignerInfos(signer_infos),
    };
    ContentInfo {
        content_type: SIGNED_DATA,
        content: Any::encode_from(&signed_data).map_err(der_error)?,
    }
    .to_der()
    .map_err(der_error)
}

/// `image` signed: padded to 8 bytes, the signature appended as a `WIN_CERTIFICATE`, the
/// security directory pointing at it. An image that is signed already is refused.
pub fn sign(image: &[u8], signer: &dyn Signer) -> Result<Vec<u8>, EngineError> {
    let parsed = pe::Image::parse(image).map_err(|error| EngineError::Pe(error.to_string()))?;
    let directory = parsed.optional + optional::DATA_DIRECTORIES + 8 * DIRECTORY_SECURITY;
    let directories = parsed
        .optional_u32(optional::NUMBER_OF_RVA_AND_SIZES)
        .map_err(|error| EngineError::Pe(error.to_string()))? as usize;
    if directories <= DIRECTORY_SECURITY
        || parsed.optional_size < optional::DATA_DIRECTORIES + 8 * (DIRECTORY_SECURITY + 1)
    {
        return Err(EngineError::Pe(
            "the image has no security data directory".into(),
        ));
    }
    if pe::u32_at(image, directory + 4).map_err(|error| EngineError::Pe(error.to_string()))? != 0 {
        return Err(EngineError::Pe("the image is signed already".into()));
    }
    let mut out = image.to_vec();
    out.resize(out.len().next_multiple_of(8), 0);
    let digest =
        pe::authenticode_sha256(&out).map_err(|error| EngineError::Pe(error.to_string()))?;
    let signature = signature(&digest, signer)?;
    let table_size = (WIN_CERTIFICATE_HEADER + signature.len()).next_multiple_of(8);
    let at = out.len();
    let too_large = || EngineError::Pe("the signed image is larger than 4 GiB".into());
    let at_u32 = u32::try_from(at).map_err(|_| too_large())?;
    let size_u32 = u32::try_from(table_size).map_err(|_| too_large())?;
    out.extend_from_slice(&size_u32.to_le_bytes());
    out.extend_from_slice(&WIN_CERT_REVISION.to_le_bytes());
    out.extend_from_slice(&WIN_CERT_TYPE_PKCS_SIGNED_DATA.to_le_bytes());
    out.extend_from_slice(&signature);
    out.resize(at + table_size, 0);
    pe::put_u32(&mut out, directory, at_u32);
    pe::put_u32(&mut out, directory + 4, size_u32);
    Ok(out)
}
