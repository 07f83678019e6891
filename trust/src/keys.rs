//! ed25519 keys on disk: PKCS#8 PEM private keys (mode 0600) and SPKI PEM public keys.
//! Key material is never printed: `Debug` shows the key id only.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use airlock_schemas::{ErrorKind, IoError};

/// Why a key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// File-system failure.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A private key file that others can read is refused.
    #[error(
        "private key {} is readable by group or others (mode {mode:o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A trust policy or public key that others may rewrite is refused: whoever can write
    /// it decides whose signatures count.
    #[error(
        "{what} {} is writable by group or others (mode {mode:o}); run `chmod go-w {}`",
        path.display(),
        path.display()
    )]
    Writable {
        /// `trust policy` or `public key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The folder holding a trust policy or public key is writable by others, who could
    /// replace the file.
    #[error(
        "the folder {} holding {what} {} is writable by group or others (mode {mode:o}); run `chmod go-w {}`",
        dir.display(),
        path.display(),
        dir.display()
    )]
    WritableFolder {
        /// `trust policy` or `public key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its folder.
        dir: PathBuf,
        /// The folder's permission bits.
        mode: u32,
    },
    /// The file is not a PEM ed25519 key of the expected kind.
    #[error("{} is not an ed25519 {kind} key in PEM form ({reason})", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// `private (PKCS#8)` or `public (SPKI)`.
        kind: &'static str,
        /// The decoder's reason (never key bytes).
        reason: String,
    },
    /// keygen never overwrites a key.
    #[error("{} already exists; keygen never overwrites a key", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The system's random number generator failed.
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(String),
}

impl KeyError {
    /// What kind of failure this is: always [`ErrorKind::BadInput`]. A key file that
    /// cannot be read or written, has the wrong mode or is malformed is the operator's to
    /// fix (exit code 3 for every key failure, the random number generator's included).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Io(_)
            | Self::TooOpen { .. }
            | Self::Writable { .. }
            | Self::WritableFolder { .. }
            | Self::Malformed { .. }
            | Self::Exists { .. }
            | Self::Random(_) => ErrorKind::BadInput,
        }
    }
}

/// Hex SHA-256 of the public key's SPKI DER encoding.
pub fn key_id(key: &VerifyingKey) -> String {
    let der = key
        .to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        // SPKI encoding of a 32-byte ed25519 key cannot fail; fall back to the raw key.
        .unwrap_or_else(|_| key.as_bytes().to_vec());
    hex::encode(Sha256::digest(der))
}

/// A private signing key loaded from disk.
pub struct Signer {
    key: SigningKey,
    id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Key id of the public half.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// Load a PKCS#8 PEM private key, refusing files readable by group or others.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        check_private_mode(path)?;
        let pem = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|source| KeyError::Io(IoError::new("read private key", path, source)))?,
        );
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyError::Malformed {
            path: path.to_owned(),
            kind: "private (PKCS#8)",
            reason: e.to_string(),
        })?;
        let id = key_id(&key.verifying_key());
        Ok(Self { key, id })
    }
}

#[cfg(unix)]
fn check_private_mode(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|source| KeyError::Io(IoError::new("read private key", path, source)))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Refuse a trust policy or public key file (`what`), or the folder holding it, that group
/// or others may write to. Only write bits are refused: `0644` files in `0755` folders are
/// fine.
#[cfg(unix)]
pub fn check_not_writable_by_others(path: &Path, what: &'static str) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode_of = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o7777)
            .map_err(|source| KeyError::Io(IoError::new("read the permissions of", p, source)))
    };
    let mode = mode_of(path)?;
    if mode & 0o022 != 0 {
        return Err(KeyError::Writable {
            what,
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    let parent = |p: &Path| {
        p.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned()
    };
    // The folder of the path as given (where a symlink could be swapped) and, when the path
    // is a link, the folder of the file it resolves to (where the file could be replaced).
    let mut dirs = vec![parent(path)];
    let linked = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if linked {
        let real = std::fs::canonicalize(path)
            .map_err(|source| KeyError::Io(IoError::new("resolve", path, source)))?;
        dirs.push(parent(&real));
    }
    for dir in dirs {
        let dir_mode = mode_of(&dir)?;
        if dir_mode & 0o022 != 0 {
            return Err(KeyError::WritableFolder {
                what,
                path: path.to_owned(),
                dir,
                mode: dir_mode & 0o777,
            });
        }
    }
    Ok(())
}

/// See the unix version: other systems have no such bits to check.
#[cfg(not(unix))]
pub fn check_not_writable_by_others(_path: &Path, _what: &'static str) -> Result<(), KeyError> {
    Ok(())
}

/// Clear the group and other write bits of `path` (a file or folder airlock made for a
/// trust policy and its keys, whatever the umask was).
#[cfg(unix)]
pub fn drop_group_other_write(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o022 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o022))?;
    }
    Ok(())
}

/// See the unix version.
#[cfg(not(unix))]
pub fn drop_group_other_write(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
fn check_private_mode(_path: &Path) -> Result<(), KeyError> {
    Ok(())
}

/// Load an SPKI PEM public key (what `openssl pkey -pubin` reads).
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let pem = std::fs::read_to_string(path)
        .map_err(|source| KeyError::Io(IoError::new("read public key", path, source)))?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|e| KeyError::Malformed {
        path: path.to_owned(),
        kind: "public (SPKI)",
        reason: e.to_string(),
    })
}

/// Paths written by [`generate`].
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// `PREFIX.key`, PKCS#8 PEM, mode 0600.
    pub private_key: PathBuf,
    /// `PREFIX.pub`, SPKI PEM.
    pub public_key: PathBuf,
    /// Key id of the pair.
    pub key_id: String,
}

/// Generate an ed25519 key pair and write `PREFIX.key` (0600, created exclusively) and
/// `PREFIX.pub`. Neither file may exist already.
pub fn generate(prefix: &Path) -> Result<GeneratedKey, KeyError> {
    let private_key = PathBuf::from(format!("{}.key", prefix.display()));
    let public_key = PathBuf::from(format!("{}.pub", prefix.display()));
    for p in [&private_key, &public_key] {
        if p.exists() {
            return Err(KeyError::Exists { path: p.clone() });
        }
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Malformed {
            path: private_key.clone(),
            kind: "private (PKCS#8)",
            reason: e.to_string(),
        })?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Malformed {
            path: public_key.clone(),
            kind: "public (SPKI)",
            reason: e.to_string(),
        })?;
    if let Some(dir) = private_key.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        // Not writable by group or others whatever the umask: a folder holding a public key
        // that others may write is refused by the trust policy loader.
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o755);
        builder
            .create(dir)
            .map_err(|source| KeyError::Io(IoError::new("create directory", dir, source)))?;
    }
    write_new(&private_key, pem.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public_key, public_pem.as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&private_key);
        return Err(e);
    }
    Ok(GeneratedKey {
        private_key,
        public_key,
        key_id: key_id(&key.verifying_key()),
    })
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // The mode is set at creation, so the key is never readable by others, even briefly.
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let io = |source| KeyError::Io(IoError::new("write", path, source));
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists {
                path: path.to_owned(),
            }
        } else {
            io(e)
        }
    })?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_and_sign() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = generate(&dir.path().join("k")).expect("generate");
        let s = Signer::load(&g.private_key).expect("load private");
        let v = load_public_key(&g.public_key).expect("load public");
        assert_eq!(s.key_id(), g.key_id);
        assert_eq!(key_id(&v), g.key_id);
        let sig = ed25519_dalek::Signature::from_bytes(&s.sign(b"m"));
        assert!(v.verify_strict(b"m", &sig).is_ok());
        assert!(!format!("{s:?}").contains("PRIVATE"));
        assert!(matches!(
            generate(&dir.path().join("k")),
            Err(KeyError::Exists { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn readable_private_key_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let g = generate(&dir.path().join("k")).expect("generate");
        let mode = std::fs::metadata(&g.private_key)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(&g.private_key, std::fs::Permissions::from_mode(0o640))
            .expect("chmod");
        assert!(matches!(
            Signer::load(&g.private_key),
            Err(KeyError::TooOpen { mode: 0o640, .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn trust_files_and_folders_writable_by_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys");
        let g = generate(&keys.join("k")).expect("generate");
        let chmod = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
        };
        chmod(dir.path(), 0o700);
        check_not_writable_by_others(&g.public_key, "public key").expect("0644 in 0755");
        for m in [0o664, 0o646, 0o622] {
            chmod(&g.public_key, m);
            let err = check_not_writable_by_others(&g.public_key, "public key")
                .expect_err("writable file");
            assert!(matches!(err, KeyError::Writable { .. }), "{err}");
            assert!(
                err.to_string()
                    .contains(&g.public_key.display().to_string())
            );
        }
        chmod(&g.public_key, 0o644);
        chmod(&keys, 0o775);
        let err =
            check_not_writable_by_others(&g.public_key, "public key").expect_err("writable folder");
        assert!(
            matches!(&err, KeyError::WritableFolder { dir, .. } if *dir == keys),
            "{err}"
        );
        drop_group_other_write(&keys).expect("restrict");
        assert_eq!(
            std::fs::metadata(&keys).expect("meta").permissions().mode() & 0o777,
            0o755
        );
        check_not_writable_by_others(&g.public_key, "public key").expect("restricted again");
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_public_key_in_a_writable_folder_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tmp");
        let shared = d.path().join("shared");
        let safe = d.path().join("safe");
        for dir in [&shared, &safe] {
            std::fs::create_dir(dir).expect("mkdir");
        }
        let g = generate(&shared.join("k")).expect("keygen");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let link = safe.join("k.pub");
        std::os::unix::fs::symlink(&g.public_key, &link).expect("ln");
        let err = check_not_writable_by_others(&link, "public key")
            .expect_err("the linked file's folder is writable by others");
        assert!(matches!(err, KeyError::WritableFolder { .. }), "{err}");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        check_not_writable_by_others(&link, "public key").expect("both folders restricted");
    }
}
