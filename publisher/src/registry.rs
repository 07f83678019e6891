//! Model registries: one layout, `blobs/sha256/<hex>` (content-addressed) and
//! `models/<name>/<version>/release.json` (the index, written last), over several backends.

use std::io::Write;

use airlock_packager::shards::stream_digest;
use std::path::{Path, PathBuf};

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The URI is not one airlock can publish to.
    #[error(
        "unsupported registry {uri:?}: expected file:///absolute/path (s3:// registries are not available in this build yet)"
    )]
    Unsupported {
        /// What was given.
        uri: String,
    },
    /// File-system failure.
    #[error("registry: cannot {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// What was stored is not what was sent.
    #[error(
        "registry: blob {sha256} reads back with another digest ({got}); the upload was corrupted"
    )]
    Corrupt {
        /// Expected digest.
        sha256: String,
        /// What it read back as.
        got: String,
    },
}

/// Where a destination says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Region (`local` for storage on the premises).
    pub region: String,
    /// Account id, where the destination has one.
    pub account: Option<String>,
}

/// A registry backend.
pub trait Registry {
    /// The registry's URI.
    fn uri(&self) -> String;
    /// Ask the destination where it is.
    fn location(&self) -> Result<Location, RegistryError>;
    /// Whether `blobs/sha256/<sha256>` exists with exactly that digest.
    fn has_blob(&self, sha256: &str) -> Result<bool, RegistryError>;
    /// Store the file at `path` as blob `sha256`, then read it back and check it.
    fn put_blob(&self, sha256: &str, path: &Path) -> Result<(), RegistryError>;
    /// Store a small object (an index, an audit head) at `key`, atomically.
    fn put_object(&self, key: &str, bytes: &[u8]) -> Result<(), RegistryError>;
    /// Read a small object, `None` when absent.
    fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>, RegistryError>;
}

/// Open the registry at `uri`.
pub fn open(uri: &str) -> Result<Box<dyn Registry>, RegistryError> {
    match uri.strip_prefix("file://") {
        Some(path) if path.starts_with('/') => Ok(Box::new(FileRegistry {
            root: PathBuf::from(path),
        })),
        _ => Err(RegistryError::Unsupported {
            uri: uri.to_owned(),
        }),
    }
}

/// The object key of a blob.
pub fn blob_key(sha256: &str) -> String {
    format!("blobs/sha256/{sha256}")
}

/// The object key of a release index.
pub fn index_key(name: &str, version: &str) -> String {
    format!("models/{name}/{version}/release.json")
}

/// A registry in a local directory (the embedded default).
#[derive(Debug, Clone)]
pub struct FileRegistry {
    root: PathBuf,
}

impl FileRegistry {
    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn write_atomically(
        &self,
        key: &str,
        fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    ) -> Result<PathBuf, RegistryError> {
        let dest = self.path(key);
        let dir = dest.parent().unwrap_or(&self.root).to_owned();
        let io = |action: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| RegistryError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let mut tmp =
            tempfile::NamedTempFile::new_in(&dir).map_err(io("create a file in", &dir))?;
        fill(tmp.as_file_mut()).map_err(io("write", &dest))?;
        tmp.as_file().sync_all().map_err(io("sync", &dest))?;
        let (_, tmp_path) = tmp.keep().map_err(|e| RegistryError::Io {
            action: "write",
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(tmp_path)
    }
}

impl Registry for FileRegistry {
    fn uri(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn location(&self) -> Result<Location, RegistryError> {
        Ok(Location {
            region: "local".into(),
            account: None,
        })
    }

    fn has_blob(&self, sha256: &str) -> Result<bool, RegistryError> {
        let p = self.path(&blob_key(sha256));
        match stream_digest(&p) {
            Ok(got) => Ok(got == sha256),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(RegistryError::Io {
                action: "read",
                path: p,
                source,
            }),
        }
    }

    fn put_blob(&self, sha256: &str, path: &Path) -> Result<(), RegistryError> {
        let key = blob_key(sha256);
        let tmp = self.write_atomically(&key, |f| {
            let mut src = std::fs::File::open(path)?;
            std::io::copy(&mut src, f)?;
            Ok(())
        })?;
        // Read back what landed before it gets its content-addressed name.
        let got = stream_digest(&tmp).map_err(|source| RegistryError::Io {
            action: "read back",
            path: tmp.clone(),
            source,
        })?;
        if got != sha256 {
            let _ = std::fs::remove_file(&tmp);
            return Err(RegistryError::Corrupt {
                sha256: sha256.to_owned(),
                got,
            });
        }
        let dest = self.path(&key);
        std::fs::rename(&tmp, &dest).map_err(|source| RegistryError::Io {
            action: "store",
            path: dest,
            source,
        })
    }

    fn put_object(&self, key: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let tmp = self.write_atomically(key, |f| f.write_all(bytes))?;
        let dest = self.path(key);
        std::fs::rename(&tmp, &dest).map_err(|source| RegistryError::Io {
            action: "store",
            path: dest,
            source,
        })
    }

    fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let p = self.path(key);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(RegistryError::Io {
                action: "read",
                path: p,
                source,
            }),
        }
    }
}
