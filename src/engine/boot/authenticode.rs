//! Authenticode signatures, as UEFI Secure Boot checks them: the PE image hash
//! ([`pe::authenticode_sha256`]) in an `SpcIndirectDataContent`, a PKCS#7 SignedData over it
//! (RSA PKCS#1 v1.5 with SHA-256, the signing certificate included), appended as a
//! `WIN_CERTIFICATE` that the security data directory points at.
//!
//! No signing time and no random input, so the same image and key give the same bytes.

use super::pe::{self, DIRECTORY_SECURITY, optional};
use crate::engine::EngineError;
use crate::sign::pkcs7::{self, Content, Pkcs7Error, SHA256, SIGNED_DATA, algorithm};
use crate::sign::secureboot::Signer;
use cms::content_info::ContentInfo;
use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Reader, Sequence};
use sha2::{Digest, Sha256};
use x509_cert::spki::AlgorithmIdentifierOwned;

const SPC_INDIRECT_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.4");
const SPC_PE_IMAGE_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.15");
const SPC_SP_OPUS_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.12");

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

fn pkcs7_error(error: Pkcs7Error) -> EngineError {
    match error {
        Pkcs7Error::Encoding(reason) => EngineError::Pe(format!("Authenticode encoding: {reason}")),
        Pkcs7Error::Sign(reason) => EngineError::Pe(format!("Authenticode signature: {reason}")),
    }
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
    let content_value = content_der
        .get(header_len..)
        .ok_or_else(|| EngineError::Pe("Authenticode header length".into()))?;
    let content_digest: [u8; 32] = Sha256::digest(content_value).into();

    // An empty SpcSpOpusInfo, as sbsign and signtool write it.
    let opus_info = pkcs7::attribute(
        SPC_SP_OPUS_INFO,
        Any::from_der(&[0x30, 0x00]).map_err(der_error)?,
    )
    .map_err(pkcs7_error)?;
    let signed_data = pkcs7::signed_data(
        Content {
            content_type: SPC_INDIRECT_DATA,
            digest: content_digest,
            encapsulated: Some(Any::from_der(&content_der).map_err(der_error)?),
        },
        vec![opus_info],
        signer,
    )
    .map_err(pkcs7_error)?;
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
