//! The one I/O error type of airlock's libraries: what was being done, to which path, and
//! why. Every library error that wraps an I/O failure holds one of these, so a message
//! always names its path.

use std::path::{Path, PathBuf};

use crate::ErrorKind;

/// An I/O failure on a named path.
#[derive(Debug, thiserror::Error)]
#[error("{}cannot {action} {}", within.map_or_else(String::new, |w| format!("{w}: ")), path.display())]
pub struct IoError {
    /// What was being done ("read", "create directory", ...).
    pub action: &'static str,
    /// On what.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
    /// Where, when the message says so first ("registry: cannot read ...").
    within: Option<&'static str>,
}

impl IoError {
    /// An error for `action` on `path`.
    pub fn new(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self {
            action,
            path: path.to_owned(),
            source,
            within: None,
        }
    }

    /// A closure for `map_err`: `fs::read(p).map_err(IoError::at("read", p))?`.
    pub fn at<'a>(
        action: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |source| Self::new(action, path, source)
    }

    /// The same error, its message prefixed by where it happened: `registry: cannot ...`.
    pub fn within(self, within: &'static str) -> Self {
        Self {
            within: Some(within),
            ..self
        }
    }

    /// Always [`ErrorKind::Io`].
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Io
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_action_and_the_path_and_where() {
        let e = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let p = Path::new("/x/y");
        assert_eq!(IoError::new("read", p, e()).to_string(), "cannot read /x/y");
        assert_eq!(
            IoError::new("read", p, e()).within("registry").to_string(),
            "registry: cannot read /x/y"
        );
        let source =
            std::error::Error::source(&IoError::at("write", p)(e())).map(ToString::to_string);
        assert_eq!(source, Some(e().to_string()));
    }
}
