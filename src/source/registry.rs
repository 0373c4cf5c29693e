//! Reading images from an OCI distribution registry (ghcr.io, a local mirror), anonymously
//! or with Docker-config credentials; plain HTTP only for registries configured insecure.

use super::SourceError;
use super::limits::{self, BlobSink, Expected};
use super::oci::{ACCEPTED_MANIFESTS, Descriptor, Digest};
use super::reference::ImageRef;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::collections::{BTreeMap, BTreeSet};

/// A registry client shared by all pulls.
pub struct Registry {
    client: Client,
    /// Manifests are read with a plain HTTP client, because `oci-client` reads a manifest
    /// response whole, however large: this one stops at [`limits::MAX_MANIFEST`].
    http: reqwest::Client,
    insecure: BTreeSet<String>,
    /// Bearer tokens by `registry/repository`, from `oci-client`'s authentication.
    tokens: tokio::sync::Mutex<BTreeMap<String, Option<String>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

impl Registry {
    /// `insecure` registries (host or host:port) are reached over plain HTTP.
    pub fn new(insecure: BTreeSet<String>) -> Registry {
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(insecure.iter().cloned().collect()),
            ..ClientConfig::default()
        };
        Registry {
            client: Client::new(config),
            http: reqwest::Client::new(),
            insecure,
            tokens: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    fn reference(image: &ImageRef) -> Reference {
        match (&image.digest, &image.tag) {
            (Some(digest), _) => Reference::with_digest(
                image.registry.clone(),
                image.repository.clone(),
                digest.to_string(),
            ),
            (None, tag) => Reference::with_tag(
                image.registry.clone(),
                image.repository.clone(),
                tag.clone().unwrap_or_else(|| "latest".into()),
            ),
        }
    }

    /// The manifest `image` names (by tag or digest) and the digest of its bytes, read no
    /// further than [`limits::MAX_MANIFEST`].
    pub async fn manifest(&self, image: &ImageRef) -> Result<(Vec<u8>, Digest), SourceError> {
        let mut response = self.get_manifest(image, false).await?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            // The cached token expired: authenticate again, once.
            response = self.get_manifest(image, true).await?;
        }
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(SourceError::NotFound(format!("{image} not found")));
        }
        if !status.is_success() {
            return Err(SourceError::Unavailable(format!(
                "pulling {image}: the registry answered {status}"
            )));
        }
        let too_large = || SourceError::TooLarge {
            image: image.to_string(),
            what: "the manifest".into(),
            limit: limits::MAX_MANIFEST,
        };
        if response
            .content_length()
            .is_some_and(|length| length > limits::MAX_MANIFEST)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| SourceError::Unavailable(format!("pulling {image}: {error}")))?
        {
            if (bytes.len() + chunk.len()) as u64 > limits::MAX_MANIFEST {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        let digest = Digest::of(&bytes);
        if let Some(expected) = &image.digest
            && *expected != digest
        {
            return Err(SourceError::DigestMismatch {
                what: format!("manifest of {image}"),
                expected: expected.clone(),
                actual: digest,
            });
        }
        Ok((bytes, digest))
    }

    /// `GET /v2/<repository>/manifests/<reference>`, with the repository's pull token.
    async fn get_manifest(
        &self,
        image: &ImageRef,
        fresh_token: bool,
    ) -> Result<reqwest::Response, SourceError> {
        let reference = Self::reference(image);
        let registry = reference.resolve_registry().to_string();
        let auth = credentials(&image.registry);
        let key = format!("{registry}/{}", reference.repository());
        let token = {
            let mut tokens = self.tokens.lock().await;
            match tokens.get(&key) {
                Some(token) if !fresh_token => token.clone(),
                _ => {
                    let token = self
                        .client
                        .auth(&reference, &auth, oci_client::RegistryOperation::Pull)
                        .await
                        .map_err(|error| classify(image, error))?;
                    tokens.insert(key, token.clone());
                    token
                }
            }
        };
        let scheme = if self.insecure.contains(&registry) {
            "http"
        } else {
            "https"
        };
        let target = reference
            .digest()
            .or(reference.tag())
            .unwrap_or("latest")
            .to_string();
        let url = format!(
            "{scheme}://{registry}/v2/{}/manifests/{target}",
            reference.repository()
        );
        let mut request = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, ACCEPTED_MANIFESTS.join(", "));
        request = match (token, &auth) {
            (Some(token), _) => request.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            (None, _) => request,
        };
        request.send().await.map_err(|error| {
            SourceError::Unavailable(format!("registry {registry} unreachable: {error}"))
        })
    }

    /// A blob of `image`'s repository, refused as soon as it outgrows `expected` and checked
    /// against its digest as it streams.
    pub async fn blob(
        &self,
        image: &ImageRef,
        digest: &Digest,
        expected: Expected,
    ) -> Result<Vec<u8>, SourceError> {
        use futures_util::StreamExt;
        let name = image.to_string();
        limits::check_declared(&name, digest, expected.ceiling())?;
        self.authenticate(image, oci_client::RegistryOperation::Pull)
            .await?;
        let layer = oci_client::manifest::OciDescriptor {
            digest: digest.to_string(),
            size: i64::try_from(expected.ceiling()).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let mut sized = self
            .client
            .pull_blob_stream(&Self::reference(image), &layer)
            .await
            .map_err(|error| classify(image, error))?;
        let mut sink = BlobSink::new(&name, "blob", digest, expected);
        sink.announce(sized.content_length)?;
        while let Some(chunk) = sized.stream.next().await {
            match chunk {
                Ok(chunk) => sink.push(&chunk)?,
                // `oci-client` checks the digest too, at the end of the stream: report the
                // mismatch (or short blob) as ours, which names the image and both digests.
                Err(error) if error.to_string().to_lowercase().contains("digest") => {
                    return sink.finish().and(Err(SourceError::Unavailable(format!(
                        "pulling blob {digest} of {image}: {error}"
                    ))));
                }
                Err(error) => {
                    return Err(SourceError::Unavailable(format!(
                        "pulling blob {digest} of {image}: {error}"
                    )));
                }
            }
        }
        sink.finish()
    }

    /// The referrers of `digest` (the API first, then the tag schema, as `oci-client` does).
    pub async fn referrers(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Vec<Descriptor>, SourceError> {
        let auth = credentials(&image.registry);
        let subject = image.with_digest(digest.clone());
        self.client
            .store_auth_if_needed(&image.registry, &auth)
            .await;
        let index = self
            .client
            .pull_referrers(&Self::reference(&subject), None)
            .await
            .map_err(|error| classify(&subject, error))?;
        // Re-read through our own types, which check every digest.
        let json = serde_json::to_vec(&index.manifests)
            .map_err(|error| SourceError::Invalid(format!("referrers of {subject}: {error}")))?;
        serde_json::from_slice(&json)
            .map_err(|error| SourceError::Invalid(format!("referrers of {subject}: {error}")))
    }

    /// Whether `image`'s repository holds the blob `digest`.
    pub async fn has_blob(&self, image: &ImageRef, digest: &Digest) -> Result<bool, SourceError> {
        self.authenticate(image, oci_client::RegistryOperation::Pull)
            .await?;
        self.client
            .blob_exists(&Self::reference(image), digest.as_str())
            .await
            .map_err(|error| classify(image, error))
    }

    /// Whether `image` (by digest) is a manifest the registry holds.
    pub async fn has_manifest(&self, image: &ImageRef) -> Result<bool, SourceError> {
        let auth = credentials(&image.registry);
        match self
            .client
            .fetch_manifest_digest(&Self::reference(image), &auth)
            .await
        {
            Ok(_) => Ok(true),
            Err(error) => match classify(image, error) {
                SourceError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Uploads a blob into `image`'s repository.
    pub async fn push_blob(
        &self,
        image: &ImageRef,
        digest: &Digest,
        bytes: Vec<u8>,
    ) -> Result<(), SourceError> {
        self.authenticate(image, oci_client::RegistryOperation::Push)
            .await?;
        self.client
            .push_blob(&Self::reference(image), bytes, digest.as_str())
            .await
            .map(drop)
            .map_err(|error| classify(image, error))
    }

    /// Stores a manifest under `image`'s tag or digest, byte for byte.
    pub async fn push_manifest(
        &self,
        image: &ImageRef,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<(), SourceError> {
        self.authenticate(image, oci_client::RegistryOperation::Push)
            .await?;
        let content_type = axum::http::HeaderValue::from_str(media_type)
            .map_err(|error| SourceError::Invalid(format!("media type {media_type:?}: {error}")))?;
        self.client
            .push_manifest_raw(&Self::reference(image), bytes, content_type)
            .await
            .map(drop)
            .map_err(|error| classify(image, error))
    }

    async fn authenticate(
        &self,
        image: &ImageRef,
        operation: oci_client::RegistryOperation,
    ) -> Result<(), SourceError> {
        let auth = credentials(&image.registry);
        self.client
            .auth(&Self::reference(image), &auth, operation)
            .await
            .map(drop)
            .map_err(|error| classify(image, error))
    }

    /// The digest of the manifest `image` names, or `None` when the registry has none.
    pub async fn manifest_digest(&self, image: &ImageRef) -> Result<Option<Digest>, SourceError> {
        let auth = credentials(&image.registry);
        match self
            .client
            .fetch_manifest_digest(&Self::reference(image), &auth)
            .await
        {
            Ok(digest) => Digest::parse(&digest)
                .map(Some)
                .map_err(SourceError::Invalid),
            Err(error) => match classify(image, error) {
                SourceError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Uploads the bytes of `stream` as a blob of `image`'s repository in chunks; the
    /// registry commits it only once the last chunk and its digest arrived, so an upload
    /// cut short leaves nothing behind. Returns the digest and size.
    pub async fn push_blob_stream(
        &self,
        image: &ImageRef,
        stream: impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    ) -> Result<(Digest, u64), SourceError> {
        use futures_util::StreamExt;
        self.authenticate(image, oci_client::RegistryOperation::Push)
            .await?;
        let stream = stream.map(|chunk| {
            chunk.map_err(|error| OciDistributionError::GenericError(Some(error.to_string())))
        });
        let pushed = self
            .client
            .push_blob_stream_chunked(&Self::reference(image), stream)
            .await
            .map_err(|error| classify(image, error))?;
        let digest = Digest::parse(&pushed.blob_digest).map_err(SourceError::Invalid)?;
        Ok((digest, pushed.size))
    }

    /// The bytes of blob `digest` (of `size` bytes) as they arrive; the caller checks them
    /// against the digest.
    pub async fn blob_stream(
        &self,
        image: &ImageRef,
        digest: &Digest,
        size: u64,
    ) -> Result<
        impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + use<>,
        SourceError,
    > {
        use futures_util::StreamExt;
        self.authenticate(image, oci_client::RegistryOperation::Pull)
            .await?;
        let layer = oci_client::manifest::OciDescriptor {
            digest: digest.to_string(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let sized = self
            .client
            .pull_blob_stream(&Self::reference(image), &layer)
            .await
            .map_err(|error| classify(image, error))?;
        Ok(sized
            .stream
            .map(|chunk| chunk.map_err(std::io::Error::other)))
    }

    /// All tags of `image`'s repository.
    pub async fn tags(&self, image: &ImageRef) -> Result<Vec<String>, SourceError> {
        let auth = credentials(&image.registry);
        let mut tags = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let page = self
                .client
                .list_tags(&Self::reference(image), &auth, Some(1000), last.as_deref())
                .await
                .map_err(|error| classify(image, error))?;
            let done = page.tags.len() < 1000;
            last = page.tags.last().cloned();
            tags.extend(page.tags);
            if done || last.is_none() {
                return Ok(tags);
            }
        }
    }
}

fn classify(image: &ImageRef, error: OciDistributionError) -> SourceError {
    let text = error.to_string();
    match &error {
        OciDistributionError::ImageManifestNotFoundError(_) => {
            SourceError::NotFound(format!("{image} not found"))
        }
        OciDistributionError::ServerError { code: 404, .. } => {
            SourceError::NotFound(format!("{image} not found: {text}"))
        }
        OciDistributionError::RequestError(_) => {
            SourceError::Unavailable(format!("registry {} unreachable: {text}", image.registry))
        }
        _ if text.contains("404")
            || ["not found", "manifest unknown", "blob unknown"]
                .iter()
                .any(|phrase| text.to_lowercase().contains(phrase)) =>
        {
            SourceError::NotFound(format!("{image} not found: {text}"))
        }
        _ => SourceError::Unavailable(format!("pulling {image}: {text}")),
    }
}

fn credentials(registry: &str) -> RegistryAuth {
    super::credentials::for_registry(registry)
}
