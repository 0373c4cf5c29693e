//! Schematics: the model, strict parsing, the canonical go-yaml-compatible form, and the
//! content-addressed ID (lowercase hex SHA-256 of the canonical bytes).
//!
//! Pure: no I/O. The canonical form must match upstream byte for byte, since the ID is what
//! nodes, `talosctl`, Terraform and Omni use to name images.

mod decode;
mod model;
mod value;

pub use decode::DecodeError;
pub use model::{
    Bootloader, Customization, DiskImageCustomization, MetaValue, Overlay, Schematic,
    SecureBootCustomization, SystemExtensions,
};
pub use value::Value;

use crate::error::{Classify, ErrorKind};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// The ID of the schematic with no customisation at all.
pub const VANILLA_ID: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";

/// Why a schematic document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchematicError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("yaml: input is not valid UTF-8 (invalid byte at offset {0})")]
    NotUtf8(usize),
    #[error("owner field is only supported in Enterprise edition")]
    OwnerNotSupported,
}

impl Classify for SchematicError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

impl Schematic {
    /// Parses a YAML or JSON document strictly, as upstream does: unknown fields, duplicate
    /// keys and values of the wrong type are refused; only the first document is read.
    pub fn parse(bytes: &[u8]) -> Result<Schematic, SchematicError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|error| SchematicError::NotUtf8(error.valid_up_to()))?;
        Ok(decode::decode(text)?)
    }

    /// A user's document as this edition accepts it: parsed, then validated. Every way in
    /// (`POST /schematics`, `build --schematic FILE`, `schematic id|canonical`) goes through
    /// here, so none gives an ID to a schematic that upstream's community edition refuses.
    pub fn parse_valid(bytes: &[u8]) -> Result<Schematic, SchematicError> {
        let schematic = Schematic::parse(bytes)?;
        schematic.validate()?;
        Ok(schematic)
    }

    /// Reads back canonical text that this factory wrote (a stored schematic). go-yaml's
    /// indentation indicators are not the real offsets inside sequence items, so the text
    /// goes through [`crate::yaml::readback::strict_form`] first; a document that a user sent
    /// is read with [`Schematic::parse`], as upstream reads it.
    pub fn from_canonical(canonical: &str) -> Result<Schematic, SchematicError> {
        let strict = crate::yaml::readback::strict_form(canonical);
        Ok(decode::decode(&strict)?)
    }

    /// Checks what parsing alone does not: fields that this edition does not support.
    pub fn validate(&self) -> Result<(), SchematicError> {
        if !self.owner.is_empty() {
            return Err(SchematicError::OwnerNotSupported);
        }
        Ok(())
    }

    /// The canonical YAML text; the ID is the SHA-256 of these bytes.
    pub fn canonical(&self) -> String {
        crate::yaml::emit::to_string(&self.to_emit())
    }

    pub fn id(&self) -> SchematicId {
        SchematicId::of_canonical(self.canonical().as_bytes())
    }
}

/// A schematic ID: 32 bytes, written as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchematicId([u8; 32]);

impl SchematicId {
    pub fn of_canonical(canonical: &[u8]) -> SchematicId {
        SchematicId(Sha256::digest(canonical).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The text is not exactly 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schematic ID {0:?}: expected 64 lowercase hex characters")]
pub struct InvalidSchematicId(pub String);

impl FromStr for SchematicId {
    type Err = InvalidSchematicId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidSchematicId(text.to_string());
        if text.len() != 64 {
            return Err(invalid());
        }
        let mut bytes = [0u8; 32];
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let &[high, low] = pair else {
                return Err(invalid());
            };
            *byte = (nibble(high).ok_or_else(invalid)? << 4) | nibble(low).ok_or_else(invalid)?;
        }
        Ok(SchematicId(bytes))
    }
}

impl fmt::Display for SchematicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SchematicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SchematicId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id: SchematicId = VANILLA_ID.parse().unwrap();
        assert_eq!(id.to_string(), VANILLA_ID);
        assert!("ABCD".parse::<SchematicId>().is_err());
        assert!(VANILLA_ID.to_uppercase().parse::<SchematicId>().is_err());
        assert!(
            format!("{}g", &VANILLA_ID[..63])
                .parse::<SchematicId>()
                .is_err()
        );
    }

    #[test]
    fn an_owner_is_invalid_input_in_this_edition() {
        let error = Schematic::parse_valid(b"owner: alice\ncustomization: {}\n").unwrap_err();
        assert_eq!(error, SchematicError::OwnerNotSupported);
        assert_eq!(
            error.to_string(),
            "owner field is only supported in Enterprise edition"
        );
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        // Parsing alone keeps the field, so the Enterprise IDs stay computable.
        let schematic = Schematic::parse(b"owner: alice\ncustomization: {}\n").unwrap();
        assert_eq!(schematic.owner, "alice");
        assert!(Schematic::parse_valid(b"{}").is_ok());
    }

    #[test]
    fn vanilla() {
        let schematic = Schematic::parse(b"{}").unwrap();
        assert_eq!(schematic.canonical(), "customization: {}\n");
        assert_eq!(schematic.id().to_string(), VANILLA_ID);
    }
}
