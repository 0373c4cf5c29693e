//! How a built asset reaches a response: a finished cache entry read by range, or an entry
//! still being written, followed as its bytes become final. Callers see bytes and outcomes,
//! never the build's bookkeeping.

use super::ServiceError;
use crate::error::ErrorKind;
use crate::store::cache::CachedAsset;
use bytes::Bytes;
use futures_util::Stream;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;

/// How much a follower reads at a time.
const STREAM_CHUNK: u64 = 256 * 1024;

/// A build failure, shared with every waiter of the build.
#[derive(Debug, Clone)]
pub struct SharedError {
    pub kind: ErrorKind,
    pub message: String,
}

/// What waiters of a build see: the data file being written and its final bytes so far,
/// then the outcome.
#[derive(Debug, Clone, Default)]
pub(super) struct BuildState {
    pub partial: Option<(PathBuf, u64)>,
    pub outcome: Option<Result<CachedAsset, SharedError>>,
}

/// An asset ready in the cache, or one still being written that can be streamed.
#[derive(Debug)]
pub enum Delivery {
    Ready(CachedAsset),
    Growing(GrowingAsset),
}

/// A build in progress whose first bytes are written.
#[derive(Debug)]
pub struct GrowingAsset {
    receiver: watch::Receiver<BuildState>,
}

impl GrowingAsset {
    pub(super) fn new(receiver: watch::Receiver<BuildState>) -> GrowingAsset {
        GrowingAsset { receiver }
    }

    /// Waits for the build to end.
    pub async fn finish(mut self) -> Result<CachedAsset, ServiceError> {
        finished(&mut self.receiver).await
    }

    /// Waits until the build has written something (or ended).
    pub(super) async fn started(mut self) -> Result<Delivery, ServiceError> {
        self.receiver
            .wait_for(|state| state.outcome.is_some() || state.partial.is_some())
            .await
            .map_err(|_| ServiceError::BuildLost)?;
        let outcome = self.receiver.borrow().outcome.clone();
        match outcome {
            Some(Ok(asset)) => Ok(Delivery::Ready(asset)),
            Some(Err(error)) => Err(ServiceError::Build(error)),
            None => Ok(Delivery::Growing(self)),
        }
    }

    /// The asset's bytes as they become final; an error ends the stream early so a client
    /// sees a broken transfer rather than a short file.
    pub fn into_stream(self) -> impl Stream<Item = std::io::Result<Bytes>> {
        let follower = Follower {
            receiver: self.receiver,
            file: None,
            position: 0,
        };
        futures_util::stream::unfold(Some(follower), |state| async move {
            let mut follower = state?;
            match follower.next_chunk().await {
                Ok(Some(bytes)) => Some((Ok(bytes), Some(follower))),
                Ok(None) => None,
                Err(error) => Some((Err(error), None)),
            }
        })
    }
}

async fn finished(receiver: &mut watch::Receiver<BuildState>) -> Result<CachedAsset, ServiceError> {
    let outcome = receiver
        .wait_for(|state| state.outcome.is_some())
        .await
        .map_err(|_| ServiceError::BuildLost)?
        .outcome
        .clone();
    match outcome {
        Some(Ok(asset)) => Ok(asset),
        Some(Err(error)) => Err(ServiceError::Build(error)),
        None => Err(ServiceError::BuildLost),
    }
}

/// Where a streaming reader stands.
struct Follower {
    receiver: watch::Receiver<BuildState>,
    file: Option<tokio::fs::File>,
    position: u64,
}

impl Follower {
    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            let (partial, outcome) = {
                let state = self.receiver.borrow_and_update();
                (state.partial.clone(), state.outcome.clone())
            };
            let (available, done) = match &outcome {
                Some(Ok(asset)) => (asset.size, true),
                Some(Err(error)) => return Err(std::io::Error::other(error.message.clone())),
                None => (partial.as_ref().map_or(0, |(_, written)| *written), false),
            };
            if self.position < available {
                if self.file.is_none() {
                    // The data file moves into place when the build ends; either path works
                    // for a reader that opened it before.
                    let path = match (&outcome, &partial) {
                        (Some(Ok(asset)), _) => asset.path.clone(),
                        (_, Some((path, _))) => path.clone(),
                        _ => return Ok(None),
                    };
                    let opened = match tokio::fs::File::open(&path).await {
                        Ok(file) => file,
                        Err(_) => {
                            let finished = finished(&mut self.receiver)
                                .await
                                .map_err(|error| std::io::Error::other(error.to_string()))?;
                            tokio::fs::File::open(&finished.path).await?
                        }
                    };
                    self.file = Some(opened);
                }
                let want = (available - self.position).min(STREAM_CHUNK) as usize;
                let mut buffer = vec![0u8; want];
                let file = self
                    .file
                    .as_mut()
                    .ok_or_else(|| std::io::Error::other("no file"))?;
                file.seek(SeekFrom::Start(self.position)).await?;
                let mut filled = 0;
                while filled < want {
                    let rest = buffer.get_mut(filled..).unwrap_or_default();
                    let read = file.read(rest).await?;
                    if read == 0 {
                        // Past the file's end but inside the final length: a hole, zeros.
                        break;
                    }
                    filled += read;
                }
                self.position += want as u64;
                return Ok(Some(Bytes::from(buffer)));
            }
            if done {
                return Ok(None);
            }
            if self.receiver.changed().await.is_err() && self.receiver.borrow().outcome.is_none() {
                return Err(std::io::Error::other("the build ended without a result"));
            }
        }
    }
}

/// `length` bytes of a served file (a cache entry, a blob of the source layout) from
/// `start`, as a stream.
pub async fn read_range(
    path: &Path,
    start: u64,
    length: u64,
) -> Result<impl Stream<Item = std::io::Result<Bytes>> + use<>, ServiceError> {
    let unreadable = |source| ServiceError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(unreadable)?;
    file.seek(SeekFrom::Start(start))
        .await
        .map_err(unreadable)?;
    Ok(tokio_util::io::ReaderStream::with_capacity(
        file.take(length),
        STREAM_CHUNK as usize,
    ))
}

/// The whole of a small cached asset (a command line, a manifest, a checksum).
pub async fn read_all(asset: &CachedAsset) -> Result<Vec<u8>, ServiceError> {
    tokio::fs::read(&asset.path)
        .await
        .map_err(|source| ServiceError::Unreadable {
            path: asset.path.clone(),
            source,
        })
}
