//! Single-flight builds: a cache miss runs one build per key however many requests wait for
//! it, bounded by `build.maxConcurrency` and detached from the requests (a client that goes
//! away does not cancel the build); the build tees its bytes into the asset cache, and
//! waiters can follow the entry while it is written.

use super::delivery::{BuildState, Delivery, GrowingAsset, SharedError};
use super::plan::Plan;
use super::{Factory, ServiceError};
use crate::config::Config;
use crate::error::Classify;
use crate::format::{Compression, SparseImage};
use crate::source::FileTree;
use crate::store::StoreError;
use crate::store::cache::{AssetCache, CachedAsset, load_or_create_key};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Mutex, Semaphore, watch};

/// Single-flight bookkeeping, the build slots and the cache.
#[derive(Debug)]
pub struct Builds {
    pub cache: AssetCache,
    inflight: std::sync::Mutex<HashMap<String, watch::Receiver<BuildState>>>,
    slots: Arc<Semaphore>,
    started: AtomicU64,
    /// Flattened imagers of recent versions (see `inputs.rs`).
    pub(super) imagers: Mutex<Vec<(String, Arc<FileTree>)>>,
    /// Registry installer builds run one at a time (see `registry.rs`).
    pub(super) registry_builds: Mutex<()>,
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
        Ok(Builds {
            cache: AssetCache::open(&config.storage.dir.join("assets"), key)?,
            inflight: std::sync::Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(config.build.max_concurrency.max(1) as usize)),
            started: AtomicU64::new(0),
            imagers: Mutex::new(Vec::new()),
            registry_builds: Mutex::new(()),
        })
    }

    /// Builds started since start-up (cache misses that ran the engine).
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
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
        tokio::spawn(async move {
            let key = plan.key.clone();
            let outcome = factory.run_build(plan, sender.clone()).await;
            if let Ok(mut inflight) = factory.builds.inflight.lock() {
                inflight.remove(&key);
            }
            sender.send_modify(|state| state.outcome = Some(outcome));
        });
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
        let _slot = self
            .builds
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| shared(ServiceError::BuildLost))?;
        self.builds.started.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let key = plan.key.clone();
        let kind = plan.request.path.kind;
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
        let asset = stored.map_err(|error| shared(ServiceError::Store(error)))?;
        tracing::info!(
            kind = kind.as_str(),
            size = asset.size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "asset built"
        );
        Ok(asset)
    }
}
