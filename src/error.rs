//! Error kinds shared by the library, and the HTTP status each maps to.

/// What kind of failure an error is, independent of where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request or document was wrong: 400.
    InvalidInput,
    /// The named thing does not exist: 404.
    NotFound,
    /// Something we depend on is unreachable: 503.
    Unavailable,
    /// The state directory's file system is full: 507, until space is freed.
    InsufficientStorage,
    /// Everything else: 500.
    Internal,
}

impl ErrorKind {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidInput => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::Unavailable => 503,
            ErrorKind::InsufficientStorage => 507,
            ErrorKind::Internal => 500,
        }
    }
}

/// Implemented by every library error so that frontends can map it without matching on it.
pub trait Classify {
    fn kind(&self) -> ErrorKind;
}
