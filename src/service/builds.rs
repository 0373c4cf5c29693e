//! Single-flight builds: a cache miss runs one build per key however many requests wait for
//! it, bounded by `build.maxConcurrency` and detached from the requests (a client that goes
//! away does not cancel the build); the build tees its bytes into the asset cache, and
//! waiters can follow the entry while it is written. With a shared tier (`cache.oci`), a
//! local miss looks there first and streams a verified entry into the local cache instead of
//! building; what this replica builds is published there once it is whole.

use super::delivery::{BuildState, Delivery, GrowingAsset, SharedError};
use super::plan::Plan;
use super::{Factory, ServiceError};
use crate::config::Config;
use crate::error::Classify;
use crate::format::{Compression, SparseImage};
use crate::source::FileTree;
use crate::store::StoreError;
use crate::store::cache::{AssetCache, CachedAsset, load_or_create_key};
use crate::store::repository::Repository;
use crate::store::shared_cache::{SharedCache, SharedEntry};
use sha2::Digest as _;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Mutex, Semaphore, watch};
use tracing::Instrument;

/// Single-flight bookkeeping, the build slots and the cache.
#[derive(Debug)]
pub struct Builds {
    pub cache: AssetCache,
    /// The shared tier, when `cache.oci` names a registry.
    pub shared: Option<Arc<SharedCache>>,
    /// Shared entries whose bytes did not match their signed digest: built here instead.
    unusable_shared: std::sync::Mutex<HashSet<String>>,
    fetched: AtomicU64,
    inflight: std::sync::Mutex<HashMap<String, watch::Receiver<BuildState>>>,
    slots: Arc<Semaphore>,
    started: AtomicU64,
    /// Flattened imagers of recent versions (see `inputs.rs`).
    pub(super) imagers: Mutex<Vec<(String, Arc<FileTree>)>>,
    /// Registry installer builds run one at a time (see `registry.rs`).
    pub(super) registry_builds: Mutex<()>,
    /// Publishing installers to the internal repository, one at a time.
    pub(super) registry_publishing: Mutex<()>,
}

/// What a build makes: small assets whole, images as extents to encode into the cache.
pub(super) enum Built {
    Bytes(Vec<u8>),
    Image(SparseImage, Compression),
}

impl Builds {
    pub fn open(config: &Config) -> Result<Builds, StoreError> {
        let key_path = if config.cache.signing_key_path.as_os_str().is_empty() {
            config.storage.dir.join("cache-signing-key.pem")
        } else {
            config.cache.signing_key_path.clone()
        };
        let key = load_or_create_key(&key_path)?;
        let shared = Repository::from_config(&config.cache.oci)
            .map(|repository| Arc::new(SharedCache::new(repository, key.clone())));
        Ok(Builds {
            cache: AssetCache::open(&config.storage.dir.join("assets"), key)?
                .with_limit(config.cache.local.max_bytes),
            shared,
            unusable_shared: std::sync::Mutex::new(HashSet::new()),
            fetched: AtomicU64::new(0),
            inflight: std::sync::Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(config.build.max_concurrency.max(1) as usize)),
            started: AtomicU64::new(0),
            imagers: Mutex::new(Vec::new()),
            registry_builds: Mutex::new(()),
            registry_publishing: Mutex::new(()),
        })
    }

    /// Builds started since start-up (cache misses that ran the engine).
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Local misses served from the shared tier since start-up.
    pub fn fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }
}

impl Factory {
    /// The asset of `plan`, from the cache or built once for all concurrent callers.
    pub async fn asset(&self, plan: Plan) -> Result<CachedAsset, ServiceError> {
        match self.inflight_or_cached(plan).await? {
            Ok(asset) => Ok(asset),
            Err(growing) => growing.finish().await,
        }
    }

    /// Like [`Factory::asset`], but hands out a build as soon as its first bytes are
    /// written, so a response can stream it while it is made.
    pub async fn deliver(&self, plan: Plan) -> Result<Delivery, ServiceError> {
        match self.inflight_or_cached(plan).await? {
            Ok(asset) => Ok(Delivery::Ready(asset)),
            Err(growing) => growing.started().await,
        }
    }

    /// A cache hit, or the build of `plan` (joined if one runs, started otherwise).
    async fn inflight_or_cached(
        &self,
        plan: Plan,
    ) -> Result<Result<CachedAsset, GrowingAsset>, ServiceError> {
        let builds = self.builds.clone();
        let key = plan.key.clone();
        if let Some(hit) = tokio::task::spawn_blocking(move || builds.cache.get(&key)).await? {
            let labels = asset_labels(&plan);
            self.metrics
                .assets_delivered_cached
                .get_or_create(&labels)
                .inc();
            self.metrics
                .assets_cached_bytes
                .get_or_create(&labels)
                .inc_by(hit.size);
            return Ok(Ok(hit));
        }
        let mut inflight = self
            .builds
            .inflight
            .lock()
            .map_err(|_| ServiceError::BuildTablePoisoned)?;
        if let Some(receiver) = inflight.get(&plan.key) {
            return Ok(Err(GrowingAsset::new(receiver.clone())));
        }
        let (sender, receiver) = watch::channel(BuildState::default());
        inflight.insert(plan.key.clone(), receiver.clone());
        let factory = self.clone();
        let sender = Arc::new(sender);
        // The build logs under the request that started it, so its lines carry that ID.
        let span = tracing::Span::current();
        tokio::spawn(
            async move {
                let key = plan.key.clone();
                let outcome = factory.run_build(plan, sender.clone()).await;
                if let Ok(mut inflight) = factory.builds.inflight.lock() {
                    inflight.remove(&key);
                }
                sender.send_modify(|state| state.outcome = Some(outcome));
            }
            .instrument(span),
        );
        Ok(Err(GrowingAsset::new(receiver)))
    }

    async fn run_build(
        &self,
        plan: Plan,
        state: Arc<watch::Sender<BuildState>>,
    ) -> Result<CachedAsset, SharedError> {
        let shared = |error: ServiceError| SharedError {
            kind: error.kind(),
            message: error.to_string(),
        };
        if let Some(asset) = self.fetch_shared(&plan.key, &state).await? {
            return Ok(asset);
        }
        let labels = asset_labels(&plan);
        let waiting = std::time::Instant::now();
        let _slot = self
            .builds
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| shared(ServiceError::BuildLost))?;
        self.metrics
            .concurrency_latency
            .get_or_create(&labels)
            .observe(waiting.elapsed().as_secs_f64());
        self.builds.started.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let key = plan.key.clone();
        let kind = plan.request.path.kind;
        tracing::info!(kind = kind.as_str(), "build started");
        let builds = self.builds.clone();
        let built = self.build(&plan).await.map_err(shared)?;
        let stored = tokio::task::spawn_blocking(move || match built {
            Built::Bytes(bytes) => builds.cache.put(&key, &bytes),
            Built::Image(image, compression) => {
                let progress = |path: &std::path::Path, written: u64| {
                    state.send_modify(|state| state.partial = Some((path.to_path_buf(), written)));
                };
                builds.cache.put_streaming(&key, &progress, |sink| {
                    crate::format::encode(&image, compression, sink)
                })
            }
        })
        .await
        .map_err(|error| shared(error.into()))?;
        let asset = stored.map_err(|error| {
            self.metrics
                .assets_cached_errors
                .get_or_create(&labels)
                .inc();
            shared(ServiceError::Store(error))
        })?;
        self.metrics.assets_built.get_or_create(&labels).inc();
        self.metrics
            .assets_built_bytes
            .get_or_create(&labels)
            .inc_by(asset.size);
        self.metrics
            .build_latency
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(
            kind = kind.as_str(),
            size = asset.size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "asset built"
        );
        if let Some(tier) = self.builds.shared.clone() {
            let (key, path) = (plan.key.clone(), asset.path.clone());
            // Detached: the first client already has its bytes; others find the entry
            // once it is whole.
            tokio::spawn(async move {
                match tier.publish(&key, &path).await {
                    Ok(entry) => tracing::info!(
                        key,
                        manifest = %entry.manifest,
                        repository = %tier.name(),
                        "asset published to the shared cache"
                    ),
                    Err(error) => {
                        tracing::warn!(key, %error, "publishing to the shared cache failed")
                    }
                }
            });
        }
        Ok(asset)
    }

    /// A local miss served from the shared tier: the verified entry streamed into the local
    /// cache (followers read it as it arrives). A tier that cannot be read is a miss; bytes
    /// that do not match the signed digest fail this request and mark the entry unusable,
    /// so the next request builds.
    async fn fetch_shared(
        &self,
        key: &str,
        state: &Arc<watch::Sender<BuildState>>,
    ) -> Result<Option<CachedAsset>, SharedError> {
        let Some(tier) = self.builds.shared.clone() else {
            return Ok(None);
        };
        if self
            .builds
            .unusable_shared
            .lock()
            .is_ok_and(|unusable| unusable.contains(key))
        {
            return Ok(None);
        }
        let entry = match tier.lookup(key).await {
            Ok(Some(entry)) => entry,
            Ok(None) => return Ok(None),
            Err(error) => {
                tracing::warn!(key, %error, "shared cache unreadable: building instead");
                return Ok(None);
            }
        };
        let stream = match tier.stream(&entry).await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(key, %error, "shared cache blob unreadable: building instead");
                return Ok(None);
            }
        };
        let builds = self.builds.clone();
        let runtime = tokio::runtime::Handle::current();
        let (owned_key, state) = (key.to_string(), state.clone());
        let fetched = tokio::task::spawn_blocking(move || {
            let progress = |path: &std::path::Path, written: u64| {
                state.send_modify(|state| state.partial = Some((path.to_path_buf(), written)));
            };
            builds.cache.put_streaming(&owned_key, &progress, |sink| {
                copy_checked(&runtime, stream, &entry, sink)
            })
        })
        .await
        .map_err(|error| SharedError {
            kind: crate::error::ErrorKind::Internal,
            message: error.to_string(),
        })?;
        match fetched {
            Ok(asset) => {
                self.builds.fetched.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    key,
                    size = asset.size,
                    "asset fetched from the shared cache"
                );
                Ok(Some(asset))
            }
            Err(error) => {
                if let Ok(mut unusable) = self.builds.unusable_shared.lock() {
                    unusable.insert(key.to_string());
                }
                tracing::warn!(key, %error, "shared cache entry unusable");
                Err(SharedError {
                    kind: crate::error::ErrorKind::Unavailable,
                    message: format!("the shared cache entry could not be read: {error}"),
                })
            }
        }
    }
}

/// The labels upstream's asset metrics carry.
fn asset_labels(plan: &Plan) -> crate::service::metrics::AssetLabels {
    crate::service::metrics::AssetLabels {
        talos_version: plan.request.version.tag(),
        output_kind: plan.request.path.kind.as_str().to_string(),
        arch: plan.request.path.arch.as_str().to_string(),
    }
}

/// Copies a shared entry's bytes into `sink`, failing unless they are exactly the signed
/// digest and size.
fn copy_checked(
    runtime: &tokio::runtime::Handle,
    stream: impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>>,
    entry: &SharedEntry,
    sink: &mut dyn crate::format::Sink,
) -> std::io::Result<()> {
    use futures_util::StreamExt;
    let mut stream = std::pin::pin!(stream);
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = runtime.block_on(stream.next()) {
        let chunk = chunk?;
        size += chunk.len() as u64;
        if size > entry.size {
            return Err(std::io::Error::other(
                "the blob is longer than its manifest says",
            ));
        }
        hasher.update(&chunk);
        sink.data(&chunk, false)?;
    }
    let digest = crate::hex::encode(&hasher.finalize());
    if size != entry.size || digest != entry.blob.hex() {
        return Err(std::io::Error::other(format!(
            "blob {} does not match its signed digest and size",
            entry.blob
        )));
    }
    Ok(())
}
