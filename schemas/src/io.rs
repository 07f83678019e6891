//! The one I/O error type of airlock's libraries: what was being done, to which path, and
//! why. Every library error that wraps an I/O failure holds one of these, so a message
//! always names its path.

use std::path::{Path, PathBuf};

/// An I/O failure on a named path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}", path.display())]
pub struct IoError {
    /// What was being done ("read", "create directory", ...).
    pub action: &'static str,
    /// On what.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

impl IoError {
    /// An error for `action` on `path`.
    pub fn new(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self {
            action,
            path: path.to_owned(),
            source,
        }
    }

    /// A closure for `map_err`: `fs::read(p).map_err(IoError::at("read", p))?`.
    pub fn at<'a>(
        action: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |source| Self::new(action, path, source)
    }
}
