//! Model registries: one layout, `blobs/sha256/<hex>` (content-addressed) and
//! `models/<name>/<version>/release.json` (the index, written last), over several backends.

use std::io::Write;

use airlock_schemas::{ErrorKind, IoError};
use airlock_trust::shards::stream_digest;
use std::path::{Path, PathBuf};

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The URI is not one airlock can publish to.
    #[error(
        "unsupported registry {uri:?}: expected file:///absolute/path, s3://bucket[/prefix] or oci://host[:port]/repository"
    )]
    Unsupported {
        /// What was given.
        uri: String,
    },
    /// AWS could not be set up.
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsSetupError),
    /// A request to a remote registry failed.
    #[error("registry: cannot {action} {key}: {message}")]
    Remote {
        /// What was being done.
        action: &'static str,
        /// The object.
        key: String,
        /// The service's answer.
        message: String,
    },
    /// File-system failure (its message starts `registry: `: see [`RegistryError::io`]).
    #[error(transparent)]
    Io(IoError),
    /// A name, version or key that could make a path outside the registry (or is not a
    /// name airlock writes) was refused before any request.
    #[error("registry: refused key {key:?}: {why}")]
    UnsafeKey {
        /// The key (or name) refused, escaped.
        key: String,
        /// Why.
        why: String,
    },
    /// The registry cannot do this (an OCI registry holds no named copies for SageMaker, a
    /// release read from a manifest is read-only...), or its settings are unusable.
    #[error("registry {uri}: {why}")]
    Unusable {
        /// The registry.
        uri: String,
        /// Why.
        why: String,
    },
    /// What the registry holds is not what airlock wrote: a manifest that is not a release's,
    /// a layer or referrer that differs from what the manifest and the signed statement say.
    /// Nothing of it is installed.
    #[error("{what}: {why}")]
    Untrusted {
        /// What was read.
        what: String,
        /// What is wrong with it.
        why: String,
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

impl RegistryError {
    /// A file-system failure of the registry: `action` on `path`.
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io(IoError::new(action, path, source).within("registry"))
    }

    /// What kind of failure this is (the CLI's exit code follows from it).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Unsupported { .. } | Self::UnsafeKey { .. } | Self::Unusable { .. } => {
                ErrorKind::BadInput
            }
            Self::Untrusted { .. } => ErrorKind::VerificationFailed,
            Self::Aws(e) => e.kind(),
            Self::Remote { .. } | Self::Corrupt { .. } => ErrorKind::Remote,
            Self::Io(e) => e.kind(),
        }
    }
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
    /// Ask the destination where it is. `allowed_accounts` are the account ids the residency
    /// policy allows: a backend that cannot name its account confirms one of them.
    fn location(&self, allowed_accounts: &[String]) -> Result<Location, RegistryError>;
    /// Whether `blobs/sha256/<sha256>` exists, `len` bytes long, with exactly that digest.
    fn has_blob(&self, sha256: &str, len: u64) -> Result<bool, RegistryError>;
    /// Store the file at `path` as blob `sha256`, then read it back and check it. Returns
    /// the bytes sent (less than the file when an interrupted upload was resumed).
    fn put_blob(&self, sha256: &str, path: &Path) -> Result<u64, RegistryError>;
    /// Store a small object (an index, an audit head) at `key`, atomically.
    fn put_object(&self, key: &str, bytes: &[u8]) -> Result<(), RegistryError>;
    /// Read a small object, `None` when absent.
    fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>, RegistryError>;
    /// Read an object of at most `max` bytes: `Some(Err(len))` when it is longer (a file
    /// registry reads no more than `max + 1` bytes of it).
    fn get_object_max(
        &self,
        key: &str,
        max: usize,
    ) -> Result<Option<Result<Vec<u8>, u64>>, RegistryError> {
        Ok(self.get_object(key)?.map(|b| {
            if b.len() > max {
                Err(b.len() as u64)
            } else {
                Ok(b)
            }
        }))
    }
    /// Keys under `prefix` (registry-relative), sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>, RegistryError>;
    /// Download blob `sha256` to `dest` (a new file). The caller checks the digest.
    fn get_blob(&self, sha256: &str, dest: &Path) -> Result<u64, RegistryError>;
    /// Make the blobs `files` (name → digest) also readable by name under `prefix` (what
    /// SageMaker mounts as the model directory), copying inside the store; returns the
    /// prefix's URI.
    fn named_copy(
        &self,
        prefix: &str,
        files: &std::collections::BTreeMap<String, String>,
    ) -> Result<String, RegistryError>;
    /// The `host[:port]` of an OCI registry, which the residency policy allows by name
    /// (`[oci] hosts`) before any request; `None` for other registries.
    fn oci_host(&self) -> Option<String> {
        None
    }
    /// The release `name` `version` as a read-only registry of its own, checked as a whole
    /// first (an OCI registry: its model manifest, layers and referrers, and the audit copy
    /// it carries); `None`: read it from this registry, key by key.
    fn release(
        &self,
        _name: &str,
        _version: &str,
    ) -> Result<Option<Box<dyn Registry + '_>>, RegistryError> {
        Ok(None)
    }
}

/// Open the registry at `uri`. `aws` is loaded only for `s3://` URIs. An `oci://` registry
/// sends no request until it is used.
pub fn open(
    uri: &str,
    aws: impl FnOnce() -> Result<crate::aws::Aws, crate::aws::AwsSetupError>,
) -> Result<Box<dyn Registry>, RegistryError> {
    if let Some(path) = uri.strip_prefix("file://")
        && path.starts_with('/')
    {
        return Ok(Box::new(FileRegistry {
            root: PathBuf::from(path),
        }));
    }
    if let Some((bucket, prefix)) = crate::s3::parse_uri(uri) {
        return Ok(Box::new(crate::s3::S3Registry::new(aws()?, bucket, prefix)));
    }
    if let Some(at) = crate::oci::parse_uri(uri) {
        return Ok(Box::new(crate::oci::OciRegistry::new(at)?));
    }
    Err(RegistryError::Unsupported {
        uri: uri.to_owned(),
    })
}

/// The largest release index read from a registry (an index lists a bundle's few files:
/// a larger object is refused unread, so a registry writer cannot exhaust memory).
pub const MAX_INDEX_BYTES: usize = 1 << 20;

/// The object key of a blob.
pub fn blob_key(sha256: &str) -> String {
    format!("blobs/sha256/{sha256}")
}

/// The object key of a release index. The name must be a model name
/// (`[a-z0-9][a-z0-9-]{0,63}`) and the version SemVer 2.0, so neither can make a path
/// that leaves `models/<name>/`.
pub fn index_key(name: &str, version: &str) -> Result<String, RegistryError> {
    let unsafe_key = |why: String| RegistryError::UnsafeKey {
        key: format!("models/{name}/{version}"),
        why,
    };
    airlock_schemas::grammar::model_name(name).map_err(unsafe_key)?;
    airlock_schemas::grammar::version(version).map_err(unsafe_key)?;
    let key = format!("models/{name}/{version}/release.json");
    check_key(&key)?;
    Ok(key)
}

/// Longest registry key accepted.
const MAX_KEY_LEN: usize = 1024;

/// Check a registry-relative key (or, with a trailing `/`, a prefix): `/`-separated
/// segments of `[A-Za-z0-9._+-]`, none empty, none starting with `.` (so no `.` or `..`),
/// no leading `/`, no `\`, `%`, NUL or other bytes. Every backend checks every key it is
/// given, so no name or version can make a path or object key outside the registry root.
pub fn check_key(key: &str) -> Result<(), RegistryError> {
    let refuse = |why: &str| {
        Err(RegistryError::UnsafeKey {
            key: key.escape_debug().to_string(),
            why: why.to_owned(),
        })
    };
    if key.len() > MAX_KEY_LEN {
        return refuse("longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return refuse("absolute");
    }
    let body = key.strip_suffix('/').unwrap_or(key);
    if body.is_empty() {
        return if key.is_empty() {
            Ok(())
        } else {
            refuse("empty segment")
        };
    }
    for seg in body.split('/') {
        if seg.is_empty() {
            return refuse("empty segment");
        }
        if seg.starts_with('.') {
            return refuse("a segment starts with '.' ('.', '..' or hidden)");
        }
        if let Some(b) = seg
            .bytes()
            .find(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+')))
        {
            return refuse(&format!(
                "byte 0x{b:02x} is not allowed (only letters, digits and . _ - + in segments)"
            ));
        }
    }
    Ok(())
}

/// A registry in a local directory (the embedded default).
#[derive(Debug, Clone)]
pub struct FileRegistry {
    root: PathBuf,
}

impl FileRegistry {
    /// The file of `key`, which must pass [`check_key`]: always under the root.
    fn path(&self, key: &str) -> Result<PathBuf, RegistryError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    fn write_atomically(
        &self,
        key: &str,
        fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    ) -> Result<PathBuf, RegistryError> {
        let dest = self.path(key)?;
        let dir = dest.parent().unwrap_or(&self.root).to_owned();
        let io = |action: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| RegistryError::io(action, &path, source)
        };
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let mut tmp =
            tempfile::NamedTempFile::new_in(&dir).map_err(io("create a file in", &dir))?;
        fill(tmp.as_file_mut()).map_err(io("write", &dest))?;
        tmp.as_file().sync_all().map_err(io("sync", &dest))?;
        let (_, tmp_path) = tmp
            .keep()
            .map_err(|e| RegistryError::io("write", &dest, e.error))?;
        Ok(tmp_path)
    }
}

impl Registry for FileRegistry {
    fn uri(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn location(&self, _allowed_accounts: &[String]) -> Result<Location, RegistryError> {
        Ok(Location {
            region: "local".into(),
            account: None,
        })
    }

    fn has_blob(&self, sha256: &str, _len: u64) -> Result<bool, RegistryError> {
        let p = self.path(&blob_key(sha256))?;
        match stream_digest(&p) {
            Ok(got) => Ok(got == sha256),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(RegistryError::io("read", &p, source)),
        }
    }

    fn put_blob(&self, sha256: &str, path: &Path) -> Result<u64, RegistryError> {
        let key = blob_key(sha256);
        let tmp = self.write_atomically(&key, |f| {
            let mut src = std::fs::File::open(path)?;
            std::io::copy(&mut src, f)?;
            Ok(())
        })?;
        // Read back what landed before it gets its content-addressed name.
        let got =
            stream_digest(&tmp).map_err(|source| RegistryError::io("read back", &tmp, source))?;
        if got != sha256 {
            let _ = std::fs::remove_file(&tmp);
            return Err(RegistryError::Corrupt {
                sha256: sha256.to_owned(),
                got,
            });
        }
        let dest = self.path(&key)?;
        std::fs::rename(&tmp, &dest).map_err(|source| RegistryError::io("store", &dest, source))?;
        Ok(std::fs::metadata(&dest).map_or(0, |m| m.len()))
    }

    fn put_object(&self, key: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let tmp = self.write_atomically(key, |f| f.write_all(bytes))?;
        let dest = self.path(key)?;
        std::fs::rename(&tmp, &dest).map_err(|source| RegistryError::io("store", &dest, source))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, RegistryError> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
            for e in std::fs::read_dir(dir)? {
                let e = e?;
                let p = e.path();
                if e.file_type()?.is_dir() {
                    walk(root, &p, out)?;
                } else if let Ok(rel) = p.strip_prefix(root) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
            Ok(())
        }
        let dir = self.path(prefix)?;
        let mut out = Vec::new();
        match walk(&self.root, &dir, &mut out) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(RegistryError::io("list", &dir, source));
            }
        }
        out.sort();
        Ok(out)
    }

    fn get_blob(&self, sha256: &str, dest: &Path) -> Result<u64, RegistryError> {
        let src = self.path(&blob_key(sha256))?;
        std::fs::copy(&src, dest).map_err(|source| RegistryError::io("read", &src, source))
    }

    fn named_copy(
        &self,
        prefix: &str,
        files: &std::collections::BTreeMap<String, String>,
    ) -> Result<String, RegistryError> {
        for (name, sha) in files {
            let dest = self.path(&format!("{prefix}{name}"))?;
            let src = self.path(&blob_key(sha))?;
            let tmp = self.write_atomically(&format!("{prefix}{name}"), |f| {
                std::io::copy(&mut std::fs::File::open(&src)?, f).map(|_| ())
            })?;
            std::fs::rename(&tmp, &dest)
                .map_err(|source| RegistryError::io("store", &dest, source))?;
        }
        Ok(format!("{}/{prefix}", self.uri()))
    }

    fn get_object_max(
        &self,
        key: &str,
        max: usize,
    ) -> Result<Option<Result<Vec<u8>, u64>>, RegistryError> {
        use std::io::Read as _;
        let p = self.path(key)?;
        // A plain file only (not a link, not a FIFO), read no further than max + 1 bytes.
        let meta = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(RegistryError::io("read", &p, source)),
        };
        if !meta.is_file() {
            return Err(RegistryError::UnsafeKey {
                key: key.escape_debug().to_string(),
                why: "not a plain file".into(),
            });
        }
        if meta.len() > max as u64 {
            return Ok(Some(Err(meta.len())));
        }
        // Opened without following a link and without blocking on a FIFO, then checked
        // again through the handle: a file swapped after the look above is refused too.
        let f = {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&p)
                .map_err(|source| RegistryError::io("read", &p, source))?
        };
        if !f
            .metadata()
            .map_err(|source| RegistryError::io("read", &p, source))?
            .is_file()
        {
            return Err(RegistryError::UnsafeKey {
                key: key.escape_debug().to_string(),
                why: "not a plain file".into(),
            });
        }
        let mut bytes = Vec::new();
        f.take(max as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| RegistryError::io("read", &p, source))?;
        if bytes.len() > max {
            return Ok(Some(Err(bytes.len() as u64)));
        }
        Ok(Some(Ok(bytes)))
    }

    fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let p = self.path(key)?;
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(RegistryError::io("read", &p, source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry's file-system failure names the registry, the action and the path, and
    /// keeps the I/O error as its cause (the CLI prints the chain).
    #[test]
    fn registry_io_errors_say_registry_and_keep_their_cause() {
        let e = RegistryError::io(
            "store",
            Path::new("/r/blobs/x"),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(e.to_string(), "registry: cannot store /r/blobs/x");
        let cause = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(
            cause,
            Some(std::io::Error::from(std::io::ErrorKind::PermissionDenied).to_string())
        );
        assert_eq!(e.kind(), ErrorKind::Io);
    }

    /// Publish calls a registry URI it cannot use bad input (exit 3), pull the
    /// environment's failure (exit 1), as they always did.
    #[test]
    fn an_unsupported_registry_is_bad_input_to_publish_and_remote_to_pull() {
        let unsupported = || RegistryError::Unsupported {
            uri: "ftp://x".into(),
        };
        assert_eq!(unsupported().kind(), ErrorKind::BadInput);
        assert_eq!(
            crate::publish::PublishError::from(unsupported()).kind(),
            ErrorKind::BadInput
        );
        assert_eq!(
            crate::pull::PullError::from(unsupported()).kind(),
            ErrorKind::Remote
        );
        let corrupt = RegistryError::Corrupt {
            sha256: "a".into(),
            got: "b".into(),
        };
        assert_eq!(
            crate::publish::PublishError::from(corrupt).kind(),
            ErrorKind::Remote
        );
    }

    /// Names and keys that would leave the registry root, or that airlock never writes.
    const TRAVERSALS: [&str; 14] = [
        "models/../../etc/release.json",
        "../outside",
        "models/./x",
        "/etc/passwd",
        "models//x",
        "models/x\\..\\..\\y",
        "models/%2e%2e/%2fetc",
        "models/x%2fy",
        "models/x\0y",
        "models/.hidden/x",
        "models/x y",
        "blobs/sha256/../../../x",
        "",
        "/",
    ];

    #[test]
    fn keys_that_leave_the_root_are_refused() {
        for k in TRAVERSALS {
            if k.is_empty() {
                continue; // the empty prefix lists the whole registry
            }
            assert!(
                matches!(check_key(k), Err(RegistryError::UnsafeKey { .. })),
                "{k:?}"
            );
        }
        for k in [
            "models/fraud-detector/1.0.0/release.json",
            "models/fraud-detector/1.0.0-rc.1+build.5/release.json",
            "blobs/sha256/0123abcd",
            "models/fraud-detector/",
            "audit/residency-audit.log.head.dsse.json",
            "",
        ] {
            check_key(k).unwrap_or_else(|e| panic!("{k:?}: {e}"));
        }
    }

    #[test]
    fn index_keys_need_a_model_name_and_a_semver_version() {
        assert_eq!(
            index_key("fraud-detector", "1.2.0").ok().as_deref(),
            Some("models/fraud-detector/1.2.0/release.json")
        );
        for (name, version) in [
            ("..", "1.0.0"),
            ("fraud", ".."),
            ("fraud", "../../x"),
            ("fraud", "v1.0.0"),
            ("fraud", "1.0.0/../../x"),
            ("fraud", "1.0.0%2f.."),
            ("a/b", "1.0.0"),
            ("fraud", "1.0"),
            ("", "1.0.0"),
            ("fraud", "1.0.0\0"),
        ] {
            assert!(
                matches!(
                    index_key(name, version),
                    Err(RegistryError::UnsafeKey { .. })
                ),
                "{name:?} {version:?}"
            );
        }
    }

    #[test]
    fn file_registry_refuses_paths_outside_its_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("registry");
        let reg = open(&format!("file://{}", root.display()), || {
            Err(crate::aws::AwsSetupError::NoRegion)
        })
        .expect("file registry");
        std::fs::write(dir.path().join("secret"), b"outside").expect("write");
        for k in TRAVERSALS.iter().filter(|k| !k.is_empty()) {
            assert!(
                matches!(
                    reg.put_object(k, b"x"),
                    Err(RegistryError::UnsafeKey { .. })
                ),
                "put {k:?}"
            );
            assert!(
                matches!(reg.get_object(k), Err(RegistryError::UnsafeKey { .. })),
                "get {k:?}"
            );
        }
        assert!(matches!(
            reg.get_object("../secret"),
            Err(RegistryError::UnsafeKey { .. })
        ));
        assert!(matches!(
            reg.get_blob("../../secret", &dir.path().join("copy")),
            Err(RegistryError::UnsafeKey { .. })
        ));
        assert!(!dir.path().join("copy").exists());
        assert!(matches!(
            reg.list("models/../../"),
            Err(RegistryError::UnsafeKey { .. })
        ));
        let files =
            std::collections::BTreeMap::from([("../../escaped".to_owned(), "ab".repeat(32))]);
        assert!(matches!(
            reg.named_copy("models/x/1.0.0/bundle/", &files),
            Err(RegistryError::UnsafeKey { .. })
        ));
        // Nothing was written anywhere.
        assert!(!root.exists());
        assert!(!dir.path().join("escaped").exists());
    }

    #[test]
    fn s3_registry_refuses_keys_and_prefixes_outside_its_root_before_any_request() {
        // An endpoint nothing listens on: a request would fail with a Remote error, so an
        // UnsafeKey error shows that none was made.
        let aws = crate::aws::Aws::load(crate::aws::AwsOptions {
            endpoint_url: Some("http://127.0.0.1:9".into()),
            region: Some("eu-west-1".into()),
            static_credentials: Some(("test".into(), "test".into())),
            ..Default::default()
        })
        .expect("aws config");
        let reg = crate::s3::S3Registry::new(aws, "bucket".into(), "prefix".into());
        for k in TRAVERSALS.iter().filter(|k| !k.is_empty()) {
            assert!(
                matches!(reg.key(k), Err(RegistryError::UnsafeKey { .. })),
                "key {k:?}"
            );
            assert!(
                matches!(
                    reg.put_object(k, b"x"),
                    Err(RegistryError::UnsafeKey { .. })
                ),
                "put {k:?}"
            );
            assert!(
                matches!(reg.get_object(k), Err(RegistryError::UnsafeKey { .. })),
                "get {k:?}"
            );
        }
        assert_eq!(
            reg.key("models/m/1.0.0/release.json").ok().as_deref(),
            Some("prefix/models/m/1.0.0/release.json")
        );
        for uri in [
            "s3://bucket/../x",
            "s3://bucket/a/../b",
            "s3://bucket/a//b",
            "s3://bucket/a%2f..",
            "s3://bucket/a\\b",
        ] {
            assert!(crate::s3::parse_uri(uri).is_none(), "{uri}");
        }
        assert_eq!(
            crate::s3::parse_uri("s3://bucket/prod/fraud/"),
            Some(("bucket".into(), "prod/fraud".into()))
        );
    }
}
