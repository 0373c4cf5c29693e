//! Secure Boot key enrollment databases: the `PK.auth`, `KEK.auth` and `db.auth` that
//! systemd-boot writes into the firmware's variables from `loader/keys/auto/`. Each is an
//! `EFI_SIGNATURE_LIST` database holding the factory's signing certificate (KEK and db,
//! optionally, the Microsoft certificates as well), wrapped as a time-based authenticated
//! write (`EFI_VARIABLE_AUTHENTICATION_2`) signed by the signing key itself: PK and KEK are
//! self-signed, so the firmware in setup mode takes all three.
//!
//! The EFI_TIME is SOURCE_DATE_EPOCH and RSA PKCS#1 v1.5 is deterministic, so the same key,
//! certificate and choice give the same bytes.

use crate::calendar::UtcTime;
use crate::engine::{EngineError, SOURCE_DATE_EPOCH};
use crate::sign::pkcs7::{self, Content, ID_DATA};
use crate::sign::prebuilt::{
    EFI_CERT_TYPE_PKCS7, EFI_TIME_LEN, SIGNATURE_LIST_HEADER_LEN, WIN_CERT_REVISION,
    WIN_CERT_TYPE_EFI_GUID, WIN_CERTIFICATE_UEFI_GUID_LEN,
};
use crate::sign::secureboot::{SecureBootKeyError, SecureBootKeys, Signer};
use der::{DecodePem, Encode};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

/// The three variables' authenticated writes, ready to be files on the ESP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentDatabases {
    pub pk: Vec<u8>,
    pub kek: Vec<u8>,
    pub db: Vec<u8>,
}

/// A GUID by its fields, as EFI headers write them; [`Guid::efi_bytes`] is how it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Guid {
    data1: u32,
    data2: u16,
    data3: u16,
    data4: [u8; 8],
}

impl Guid {
    /// From the 16 bytes of an RFC 4122 UUID (its text order, all fields big-endian).
    fn from_rfc4122(bytes: [u8; 16]) -> Guid {
        let mut data4 = [0; 8];
        data4.copy_from_slice(&bytes[8..]);
        Guid {
            data1: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            data2: u16::from_be_bytes([bytes[4], bytes[5]]),
            data3: u16::from_be_bytes([bytes[6], bytes[7]]),
            data4,
        }
    }

    /// The EFI in-memory form: the first three fields little-endian.
    fn efi_bytes(&self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..4].copy_from_slice(&self.data1.to_le_bytes());
        out[4..6].copy_from_slice(&self.data2.to_le_bytes());
        out[6..8].copy_from_slice(&self.data3.to_le_bytes());
        out[8..].copy_from_slice(&self.data4);
        out
    }
}

/// `EFI_CERT_X509_GUID`: each signature is one DER certificate.
const EFI_CERT_X509: Guid = Guid {
    data1: 0xa5c0_59a1,
    data2: 0x94e4,
    data3: 0x4aa7,
    data4: [0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72],
};
/// `EFI_GLOBAL_VARIABLE`: the vendor of PK and KEK.
const EFI_GLOBAL_VARIABLE: Guid = Guid {
    data1: 0x8be4_df61,
    data2: 0x93ca,
    data3: 0x11d2,
    data4: [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c],
};
/// `EFI_IMAGE_SECURITY_DATABASE_GUID`: the vendor of db.
const EFI_IMAGE_SECURITY_DATABASE: Guid = Guid {
    data1: 0xd719_b2cb,
    data2: 0x3d3a,
    data3: 0x4596,
    data4: [0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f],
};
/// The owner Microsoft's own databases give its certificates.
const MICROSOFT_OWNER: Guid = Guid {
    data1: 0x77fa_9abd,
    data2: 0x0359,
    data3: 0x4d32,
    data4: [0xbd, 0x60, 0x28, 0xf4, 0xe7, 0x8f, 0x78, 0x4b],
};
/// RFC 4122's X.500 name space, the owner GUID's name space.
const NAMESPACE_X500: [u8; 16] = [
    0x6b, 0xa7, 0xb8, 0x14, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
];

/// NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS | TIME_BASED_AUTHENTICATED_WRITE_ACCESS.
const ATTRIBUTES: u32 = 0x27;

/// Microsoft's KEK CAs (2011 and the 2023 successor), in the order KEK lists them.
const MICROSOFT_KEK: [&[u8]; 2] = [
    include_bytes!("certs/ms-kek-2011.der"),
    include_bytes!("certs/ms-kek-2023.der"),
];
/// Microsoft's third-party UEFI CAs (shim, drivers, option ROMs); not the Windows PCA.
const MICROSOFT_DB: [&[u8]; 3] = [
    include_bytes!("certs/ms-uefi-2011.der"),
    include_bytes!("certs/ms-uefi-2023.der"),
    include_bytes!("certs/ms-uefi-rom-2023.der"),
];

/// The owner GUID of the factory's certificate: a version-4-marked name-based UUID over
/// SHA-256 of the X.500 name space and the certificate's PEM text, as upstream derives it,
/// so the same certificate text has the same owner in both factories' databases.
fn owner_guid(certificate_pem: &str) -> Guid {
    let mut hash = Sha256::new();
    hash.update(NAMESPACE_X500);
    hash.update(certificate_pem.as_bytes());
    let digest = hash.finalize();
    let mut bytes = [0; 16];
    for (slot, byte) in bytes.iter_mut().zip(digest.iter()) {
        *slot = *byte;
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Guid::from_rfc4122(bytes)
}

/// EFI_TIME of a Unix instant: the date and time, every other field zero (EDK2 refuses a
/// time-based write with a nanosecond, time zone or daylight value).
fn efi_time(unix: u32) -> [u8; EFI_TIME_LEN] {
    let time = UtcTime::from_unix(i64::from(unix));
    // A u32 Unix time ends in 2106, so the year always fits.
    let year = u16::try_from(time.year).unwrap_or(u16::MAX);
    let mut out = [0; EFI_TIME_LEN];
    out[..2].copy_from_slice(&year.to_le_bytes());
    // Calendar fields are below 60 by construction.
    for (slot, field) in
        out.iter_mut()
            .skip(2)
            .zip([time.month, time.day, time.hour, time.minute, time.second])
    {
        *slot = field as u8;
    }
    out
}

fn too_large() -> EngineError {
    EngineError::SecureBootKey {
        what: "enrollment database",
        source: SecureBootKeyError::Certificate(
            "larger than an EFI signature list can hold".into(),
        ),
    }
}

fn put_u32(out: &mut Vec<u8>, value: usize) -> Result<(), EngineError> {
    let value = u32::try_from(value).map_err(|_| too_large())?;
    out.extend_from_slice(&value.to_le_bytes());
    Ok(())
}

/// One `EFI_SIGNATURE_DATA`: the owner and the certificate's DER.
type Signature<'a> = (Guid, &'a [u8]);

/// An X.509 signature database: one `EFI_SIGNATURE_LIST` per certificate size (a list's
/// signatures all have its one size), lists in the order their first certificate comes, a
/// certificate that is there already with the same owner left out.
fn signature_database(certificates: &[Signature<'_>]) -> Result<Vec<u8>, EngineError> {
    let mut lists: Vec<(usize, Vec<Signature<'_>>)> = Vec::new();
    for &(owner, der) in certificates {
        match lists.iter_mut().find(|(size, _)| *size == der.len()) {
            Some((_, entries)) if entries.contains(&(owner, der)) => {}
            Some((_, entries)) => entries.push((owner, der)),
            None => lists.push((der.len(), vec![(owner, der)])),
        }
    }
    let mut out = Vec::new();
    for (size, entries) in lists {
        let signature_size = 16 + size;
        out.extend_from_slice(&EFI_CERT_X509.efi_bytes());
        put_u32(
            &mut out,
            SIGNATURE_LIST_HEADER_LEN + signature_size * entries.len(),
        )?;
        put_u32(&mut out, 0)?;
        put_u32(&mut out, signature_size)?;
        for (owner, der) in entries {
            out.extend_from_slice(&owner.efi_bytes());
            out.extend_from_slice(der);
        }
    }
    Ok(out)
}

/// What the firmware hashes to check a time-based write of `name`: the name in UTF-16LE
/// without its terminator, the vendor GUID, the attributes, the EFI_TIME and the data.
fn signed_bytes(name: &str, vendor: Guid, time: &[u8; EFI_TIME_LEN], data: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
    out.extend_from_slice(&vendor.efi_bytes());
    out.extend_from_slice(&ATTRIBUTES.to_le_bytes());
    out.extend_from_slice(time);
    out.extend_from_slice(data);
    out
}

/// Whether EDK2's time-based write check takes `signed_data`: a SEQUENCE with a two-byte
/// length, version 1, then the digestAlgorithms SET whose first OID value (offset 13) is
/// SHA-256. EDK2 looks at these fixed offsets rather than parsing the DER.
fn edk2_accepts(signed_data: &[u8]) -> bool {
    const SHA256_OID_VALUE: [u8; 9] = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    signed_data.starts_with(&[0x30, 0x82]) && signed_data.get(13..22) == Some(&SHA256_OID_VALUE)
}

/// The `EFI_VARIABLE_AUTHENTICATION_2` write of `data` to `name`, signed by `signer`.
fn authenticated_write(
    name: &str,
    vendor: Guid,
    time: &[u8; EFI_TIME_LEN],
    data: &[u8],
    signer: &dyn Signer,
) -> Result<Vec<u8>, EngineError> {
    let what = "enrollment database signature";
    let signing = |source| EngineError::Signing { what, source };
    let digest: [u8; 32] = Sha256::digest(signed_bytes(name, vendor, time, data)).into();
    // Detached: the firmware hashes the variable itself; the SignedData says only id-data.
    let content = Content {
        content_type: ID_DATA,
        digest,
        encapsulated: None,
    };
    let signed_data = pkcs7::signed_data(content, Vec::new(), signer)
        .map_err(signing)?
        .to_der()
        .map_err(|error| signing(error.into()))?;
    if !edk2_accepts(&signed_data) {
        return Err(signing(pkcs7::Pkcs7Error::Encoding(
            "the SignedData does not start as EDK2 requires".into(),
        )));
    }
    let mut out = Vec::with_capacity(
        EFI_TIME_LEN + WIN_CERTIFICATE_UEFI_GUID_LEN + signed_data.len() + data.len(),
    );
    out.extend_from_slice(time);
    put_u32(&mut out, WIN_CERTIFICATE_UEFI_GUID_LEN + signed_data.len())?;
    out.extend_from_slice(&WIN_CERT_REVISION.to_le_bytes());
    out.extend_from_slice(&WIN_CERT_TYPE_EFI_GUID.to_le_bytes());
    out.extend_from_slice(&EFI_CERT_TYPE_PKCS7);
    out.extend_from_slice(&signed_data);
    out.extend_from_slice(data);
    Ok(out)
}

/// PK, KEK and db for `certificate_pem` (the signer's certificate, as PEM text: the owner
/// GUID is derived from the text), each signed by `signer`; with `include_well_known`, KEK
/// and db trust Microsoft's certificates as well.
pub fn generate(
    signer: &dyn Signer,
    certificate_pem: &str,
    include_well_known: bool,
) -> Result<EnrollmentDatabases, EngineError> {
    let key_error = |source| EngineError::SecureBootKey {
        what: "enrollment database certificate",
        source,
    };
    let certificate_der = Certificate::from_pem(certificate_pem)
        .and_then(|certificate| certificate.to_der())
        .map_err(|error| key_error(SecureBootKeyError::Certificate(error.to_string())))?;
    let signer_der = signer
        .certificate()
        .to_der()
        .map_err(|error| key_error(SecureBootKeyError::Certificate(error.to_string())))?;
    // Databases that trust one certificate but are signed by another key lock the machine
    // out once PK is enrolled.
    if certificate_der != signer_der {
        return Err(key_error(SecureBootKeyError::Mismatch));
    }
    let own = (owner_guid(certificate_pem), certificate_der.as_slice());
    let mut kek = vec![own];
    let mut db = vec![own];
    if include_well_known {
        kek.extend(MICROSOFT_KEK.iter().map(|der| (MICROSOFT_OWNER, *der)));
        db.extend(MICROSOFT_DB.iter().map(|der| (MICROSOFT_OWNER, *der)));
    }
    let time = efi_time(SOURCE_DATE_EPOCH);
    let write = |name, vendor, certificates: &[Signature<'_>]| {
        authenticated_write(
            name,
            vendor,
            &time,
            &signature_database(certificates)?,
            signer,
        )
    };
    Ok(EnrollmentDatabases {
        pk: write("PK", EFI_GLOBAL_VARIABLE, &[own])?,
        kek: write("KEK", EFI_GLOBAL_VARIABLE, &kek)?,
        db: write("db", EFI_IMAGE_SECURITY_DATABASE, &db)?,
    })
}

/// The databases a factory with `keys` enrolls: the operator's pre-built ones if configured
/// (then `include_well_known` is theirs to have decided), else generated from the signer.
pub fn databases(
    keys: &SecureBootKeys,
    include_well_known: bool,
) -> Result<EnrollmentDatabases, EngineError> {
    match &keys.prebuilt {
        Some(prebuilt) => Ok(EnrollmentDatabases {
            pk: prebuilt.pk.clone(),
            kek: prebuilt.kek.clone(),
            db: prebuilt.db.clone(),
        }),
        None => generate(
            keys.signer.as_ref(),
            &keys.certificate_pem,
            include_well_known,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::pkcs7::MESSAGE_DIGEST;
    use crate::sign::prebuilt::{PrebuiltDatabases, check_authenticated_write};
    use cms::signed_data::SignedData;
    use der::Decode;
    use der::asn1::OctetString;
    use std::sync::Arc;

    /// A signer whose "signature" is the digest repeated: enough for layout and digest
    /// checks (the real RSA signatures are checked with openssl in assets-tests).
    struct EchoSigner(Certificate);

    impl Signer for EchoSigner {
        fn sign_sha256(&self, digest: &[u8; 32]) -> Result<Vec<u8>, SecureBootKeyError> {
            Ok(digest.repeat(8))
        }

        fn certificate(&self) -> &Certificate {
            &self.0
        }
    }

    /// Microsoft's KEK CA as the "signing" certificate: a real certificate the tests need not
    /// generate.
    fn signer() -> (EchoSigner, String) {
        let certificate = Certificate::from_der(MICROSOFT_KEK[0]).unwrap();
        let pem = der::EncodePem::to_pem(&certificate, der::pem::LineEnding::LF).unwrap();
        (EchoSigner(certificate), pem)
    }

    /// A committed throw-away RSA key, so no test waits for key generation.
    fn pcr_key() -> rsa::RsaPrivateKey {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        rsa::RsaPrivateKey::from_pkcs1_pem(include_str!("../../../fixtures/keys/rsa-test.key"))
            .unwrap()
    }

    fn u32_at(bytes: &[u8], at: usize) -> usize {
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
    }

    /// The (signature size, entry count) of each list of a signature database.
    fn lists(mut data: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        while !data.is_empty() {
            assert_eq!(data[..16], EFI_CERT_X509.efi_bytes());
            let (size, header, signature) = (u32_at(data, 16), u32_at(data, 20), u32_at(data, 24));
            assert_eq!(header, 0);
            out.push((signature, (size - 28) / signature));
            data = &data[size..];
        }
        out
    }

    #[test]
    fn guids_are_written_in_efi_byte_order() {
        assert_eq!(
            EFI_CERT_X509.efi_bytes(),
            [
                0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a, 0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b,
                0xf0, 0x72
            ]
        );
        assert_eq!(
            crate::hex::encode(&EFI_CERT_TYPE_PKCS7),
            "9dd2af4adf68ee498aa9347d375665a7"
        );
    }

    #[test]
    fn the_owner_guid_is_a_sha256_name_based_uuid() {
        // By hand: SHA-256(6ba7b8149dad11d180b400c04fd430c8 ‖ "talos") =
        // d29e40e6 98fb 8416 ec82 e708d0378b93…, version nibble 4 and RFC variant set:
        // d29e40e6-98fb-4416-ac82-e708d0378b93.
        let guid = owner_guid("talos");
        assert_eq!(
            (guid.data1, guid.data2, guid.data3),
            (0xd29e_40e6, 0x98fb, 0x4416)
        );
        assert_eq!(
            crate::hex::encode(&guid.efi_bytes()),
            "e6409ed2fb981644ac82e708d0378b93"
        );
    }

    #[test]
    fn the_time_is_source_date_epoch_with_zero_extras() {
        // 1559424892 = 2019-06-01 21:34:52 UTC.
        assert_eq!(
            efi_time(SOURCE_DATE_EPOCH),
            [0xe3, 0x07, 6, 1, 21, 34, 52, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(efi_time(u32::MAX)[..2], 2106u16.to_le_bytes());
    }

    #[test]
    fn a_write_is_time_win_certificate_signed_data_then_the_list() {
        let (signer, pem) = signer();
        let databases = generate(&signer, &pem, false).unwrap();
        let cert = MICROSOFT_KEK[0];
        for (name, vendor, auth) in [
            ("PK", EFI_GLOBAL_VARIABLE, &databases.pk),
            ("KEK", EFI_GLOBAL_VARIABLE, &databases.kek),
            ("db", EFI_IMAGE_SECURITY_DATABASE, &databases.db),
        ] {
            check_authenticated_write(auth).unwrap();
            let time = efi_time(SOURCE_DATE_EPOCH);
            assert_eq!(auth[..16], time, "{name}");
            let length = u32_at(auth, 16);
            assert_eq!(auth[20..22], [0x00, 0x02], "{name}: revision 0x0200");
            assert_eq!(auth[22..24], [0xf1, 0x0e], "{name}: WIN_CERT_TYPE_EFI_GUID");
            assert_eq!(auth[24..40], EFI_CERT_TYPE_PKCS7, "{name}");
            let signed_data = &auth[40..16 + length];
            assert!(edk2_accepts(signed_data), "{name}");
            assert_eq!(signed_data[..2], [0x30, 0x82]);
            assert_eq!(
                usize::from(u16::from_be_bytes([signed_data[2], signed_data[3]])) + 4,
                signed_data.len(),
                "{name}: the SignedData is exactly what dwLength says"
            );

            let esl = &auth[16 + length..];
            assert_eq!(esl.len(), 28 + 16 + cert.len(), "{name}");
            assert_eq!(u32_at(esl, 16), esl.len());
            assert_eq!(u32_at(esl, 24), 16 + cert.len());
            assert_eq!(esl[28..44], owner_guid(&pem).efi_bytes());
            assert_eq!(&esl[44..], cert);

            // The signature is over the variable as the firmware hashes it.
            let parsed = SignedData::from_der(signed_data).unwrap();
            assert_eq!(parsed.encap_content_info.econtent_type, ID_DATA);
            assert!(parsed.encap_content_info.econtent.is_none(), "detached");
            let info = parsed.signer_infos.0.get(0).unwrap();
            let attrs = info.signed_attrs.as_ref().unwrap();
            let digest = attrs.iter().find(|a| a.oid == MESSAGE_DIGEST).unwrap();
            let digest: OctetString = digest.values.get(0).unwrap().decode_as().unwrap();
            let expected = Sha256::digest(signed_bytes(name, vendor, &time, esl));
            assert_eq!(digest.as_bytes(), expected.as_slice(), "{name}");
        }
    }

    #[test]
    fn well_known_certificates_get_a_list_each_and_generation_is_deterministic() {
        let (signer, pem) = signer();
        let plain = generate(&signer, &pem, false).unwrap();
        let known = generate(&signer, &pem, true).unwrap();
        assert_eq!(known, generate(&signer, &pem, true).unwrap());
        assert_eq!(
            plain.pk, known.pk,
            "PK never has the Microsoft certificates"
        );
        let data = |auth: &[u8]| auth[16 + u32_at(auth, 16)..].to_vec();
        let size = |der: &[u8]| 16 + der.len();
        // Our certificate is Microsoft's KEK 2011 here: under two owners it is two entries
        // of one list (same size), and KEK 2023 is a list of its own.
        assert_eq!(
            lists(&data(&known.kek)),
            vec![(size(MICROSOFT_KEK[0]), 2), (size(MICROSOFT_KEK[1]), 1)]
        );
        let mut db = vec![(size(MICROSOFT_KEK[0]), 1)];
        db.extend(MICROSOFT_DB.iter().map(|der| (size(der), 1)));
        assert_eq!(lists(&data(&known.db)), db);
        check_authenticated_write(&known.kek).unwrap();
        check_authenticated_write(&known.db).unwrap();
    }

    #[test]
    fn certificates_of_one_size_share_a_list() {
        let a = [1u8; 40];
        let b = [2u8; 40];
        let c = [3u8; 50];
        let owner = owner_guid("x");
        let data = signature_database(&[
            (owner, &a),
            (MICROSOFT_OWNER, &c),
            (MICROSOFT_OWNER, &b),
            (owner, &a),
        ])
        .unwrap();
        assert_eq!(lists(&data), vec![(56, 2), (66, 1)]);
        assert_eq!(data.len(), 28 + 2 * 56 + 28 + 66);
        assert_eq!(&data[28 + 56 + 16..28 + 2 * 56], &b);
    }

    #[test]
    fn edk2_offsets_are_checked() {
        let (signer, pem) = signer();
        let pk = generate(&signer, &pem, false).unwrap().pk;
        let signed_data = &pk[40..16 + u32_at(&pk, 16)];
        // version 1, SET { SEQUENCE { OID sha256, NULL } }
        assert_eq!(
            signed_data[4..13],
            [0x02, 0x01, 0x01, 0x31, 0x0f, 0x30, 0x0d, 0x06, 0x09]
        );
        let mut other = signed_data.to_vec();
        other[21] = 0x02; // SHA-384
        assert!(!edk2_accepts(&other));
        assert!(!edk2_accepts(&signed_data[..20]));
    }

    #[test]
    fn a_certificate_that_is_not_the_signers_is_refused() {
        let (signer, _) = signer();
        let other = Certificate::from_der(MICROSOFT_DB[0]).unwrap();
        let other = der::EncodePem::to_pem(&other, der::pem::LineEnding::LF).unwrap();
        assert!(matches!(
            generate(&signer, &other, false),
            Err(EngineError::SecureBootKey {
                source: SecureBootKeyError::Mismatch,
                ..
            })
        ));
        assert!(matches!(
            generate(&signer, "not a certificate", false),
            Err(EngineError::SecureBootKey {
                source: SecureBootKeyError::Certificate(_),
                ..
            })
        ));
    }

    #[test]
    fn prebuilt_databases_win() {
        let (signer, pem) = signer();
        let generated = generate(&signer, &pem, false).unwrap();
        let keys = |prebuilt| SecureBootKeys {
            signer: Arc::new(EchoSigner(signer.0.clone())),
            certificate_pem: pem.clone(),
            pcr_key: pcr_key(),
            prebuilt,
        };
        assert_eq!(databases(&keys(None), false).unwrap(), generated);
        let prebuilt = PrebuiltDatabases {
            pk: vec![1],
            kek: vec![2],
            db: vec![3],
        };
        let chosen = databases(&keys(Some(prebuilt)), true).unwrap();
        assert_eq!(
            (chosen.pk, chosen.kek, chosen.db),
            (vec![1], vec![2], vec![3])
        );
    }
}
