//! Image references: `registry/repository[:tag][@digest]`.

use super::oci::Digest;
use std::fmt;

/// A parsed image reference. The registry is always explicit (`ghcr.io`, `127.0.0.1:5000`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<ImageRef, String> {
        let invalid = |why: &str| format!("invalid image reference {text:?}: {why}");
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(Digest::parse(digest).map_err(|e| invalid(&e))?)),
            None => (text, None),
        };
        let (registry, path) = rest
            .split_once('/')
            .filter(|(first, _)| first.contains(['.', ':']) || *first == "localhost")
            .ok_or_else(|| invalid("the registry host is missing"))?;
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag.to_string())),
            _ => (path, None),
        };
        let valid_repository = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
            });
        if !valid_repository {
            return Err(invalid("the repository must be lowercase path components"));
        }
        if let Some(tag) = &tag {
            let valid_tag = tag.len() <= 128
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !valid_tag {
                return Err(invalid("malformed tag"));
            }
        }
        if tag.is_none() && digest.is_none() {
            return Err(invalid("a tag or digest is required"));
        }
        Ok(ImageRef {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    pub fn with_tag(registry: &str, repository: &str, tag: &str) -> ImageRef {
        ImageRef {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// `registry/repository`, the name signatures are made for.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag or digest part used to address the manifest.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => "latest".into(),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags_digests_and_ports() {
        let reference = ImageRef::parse("ghcr.io/siderolabs/imager:v1.12.0").unwrap();
        assert_eq!(reference.registry, "ghcr.io");
        assert_eq!(reference.repository, "siderolabs/imager");
        assert_eq!(reference.tag.as_deref(), Some("v1.12.0"));
        let digest = format!("sha256:{}", "a".repeat(64));
        let reference = ImageRef::parse(&format!(
            "127.0.0.1:5000/siderolabs/amd-ucode:20230804@{digest}"
        ))
        .unwrap();
        assert_eq!(reference.registry, "127.0.0.1:5000");
        assert_eq!(reference.reference(), digest);
        assert_eq!(
            reference.to_string(),
            format!("127.0.0.1:5000/siderolabs/amd-ucode:20230804@{digest}")
        );
        assert!(ImageRef::parse("siderolabs/imager:v1").is_err());
        assert!(ImageRef::parse("ghcr.io/Siderolabs/imager:v1").is_err());
        assert!(ImageRef::parse("ghcr.io/siderolabs/imager").is_err());
    }
}
