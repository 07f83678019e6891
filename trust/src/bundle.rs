//! A bundle's closed set of files, read once.
//!
//! A bundle holds exactly the signed top-level files and `approvals/<key id>.dsse.json`
//! decision files. `read_closed_set` walks the directory without following anything
//! (symlinks, subdirectories, FIFOs and devices are refused wherever they are), refuses every
//! name outside that set, and reads each file once. [`BundleFiles`] keeps the exact bytes,
//! so that every later check, the approvals, `publish` and `serve` use the bytes that were
//! verified and never the disk again. The model is kept too unless the caller verified with
//! `ModelBytes::DigestOnly` (it only reports or signs digests): then it is streamed through
//! its digests and absent from [`BundleFiles`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

/// Bundle file names.
pub const MODEL_FILE: &str = "model.safetensors";
/// Model card.
pub const MODEL_CARD_FILE: &str = "model-card.json";
/// Leak report.
pub const LEAK_REPORT_FILE: &str = "leak-report.json";
/// Release statement (the DSSE payload, for reading).
pub const STATEMENT_FILE: &str = "statement.json";
/// DSSE envelope of the statement.
pub const STATEMENT_DSSE_FILE: &str = "statement.dsse.json";
/// DSSE envelope of the SLSA provenance.
pub const PROVENANCE_DSSE_FILE: &str = "provenance.dsse.json";
/// Officer decisions.
pub const APPROVALS_DIR: &str = "approvals";
/// Optional: the evidence that the release was published on record (the `start` entry's
/// inclusion proof and the signed checkpoint), written by `airlock pull`. Not signed by the
/// builder and never published: it is checked on its own, against the publisher keys.
pub const TRANSPARENCY_FILE: &str = "transparency.json";
/// The only `__metadata__` entries a released model may carry.
pub const MODEL_METADATA: [(&str, &str); 1] = [("format", "pt")];
/// Shard size for per-shard digests.
pub const SHARD_SIZE: u64 = 16 * 1024 * 1024;

/// The signed top-level files of a bundle, in the order they are read.
pub const TOP_LEVEL_FILES: [&str; 6] = [
    STATEMENT_DSSE_FILE,
    STATEMENT_FILE,
    PROVENANCE_DSSE_FILE,
    MODEL_CARD_FILE,
    LEAK_REPORT_FILE,
    MODEL_FILE,
];

/// Suffix of a decision file's name after its 64-hex key id.
const DECISION_SUFFIX: &str = ".dsse.json";

/// The key id a decision file is named after: `approvals/<64 lowercase hex>.dsse.json`
/// (or the bare file name `<64 lowercase hex>.dsse.json`).
pub fn decision_key_id(name: &str) -> Option<&str> {
    let file = name
        .strip_prefix(APPROVALS_DIR)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(name);
    let id = file.strip_suffix(DECISION_SUFFIX)?;
    (id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(id)
}

/// Whether `name` (bundle-relative, `/`-separated) is in a bundle's closed set of names:
/// a signed top-level file or `approvals/<key id>.dsse.json`.
pub fn is_closed_set_name(name: &str) -> bool {
    TOP_LEVEL_FILES.contains(&name)
        || (name.starts_with(&format!("{APPROVALS_DIR}/")) && decision_key_id(name).is_some())
}

/// The files of a bundle as `verify` read them: bundle-relative name (`model.safetensors`,
/// `approvals/<key id>.dsse.json`, ...) → the exact bytes that were digested, parsed and
/// verified. Cloning is cheap (the bytes are shared).
#[derive(Clone, Default)]
pub struct BundleFiles {
    files: BTreeMap<String, Arc<Vec<u8>>>,
}

impl std::fmt::Debug for BundleFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.files.iter().map(|(k, v)| (k, v.len())))
            .finish()
    }
}

impl BundleFiles {
    /// The bytes of `name`, as verified.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(|b| b.as_slice())
    }

    /// The bytes of `name`, shared (no copy), for a caller that keeps them.
    pub fn get_shared(&self, name: &str) -> Option<Arc<Vec<u8>>> {
        self.files.get(name).cloned()
    }

    /// Every file, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Whether `name` was read.
    pub fn contains(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// No files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The decision files, `approvals/<key id>.dsse.json`, in name order.
    pub fn decisions(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.iter()
            .filter(|(n, _)| n.starts_with(APPROVALS_DIR) && n.contains('/'))
    }

    pub(crate) fn insert(&mut self, name: &str, bytes: Vec<u8>) {
        self.files.insert(name.to_owned(), Arc::new(bytes));
    }
}

fn kind(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else if ft.is_file() {
        "a file"
    } else {
        "a special file"
    }
}

/// What [`walk`] found: the closed-set names present, and every refused entry.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// Closed-set names present as regular files.
    pub present: Vec<String>,
    /// Entries outside the closed set, each with why.
    pub refused: Vec<String>,
}

/// List `dir` without following anything, sorting entries into closed-set files and refused
/// entries.
pub(crate) fn walk(dir: &Path) -> Result<Walk, String> {
    let mut w = Walk::default();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        let ft = e
            .file_type()
            .map_err(|err| format!("{}: {err}", e.path().display()))?;
        let Some(name) = e.file_name().to_str().map(str::to_owned) else {
            w.refused
                .push(format!("{:?} (a name that is not UTF-8)", e.file_name()));
            continue;
        };
        if TOP_LEVEL_FILES.contains(&name.as_str()) || name == TRANSPARENCY_FILE {
            if ft.is_file() {
                w.present.push(name);
            } else {
                w.refused.push(format!("{name} ({}, not a file)", kind(ft)));
            }
        } else if name == APPROVALS_DIR {
            if !ft.is_dir() {
                w.refused
                    .push(format!("{name} ({}, not a directory)", kind(ft)));
                continue;
            }
            let sub = e.path();
            let inner = std::fs::read_dir(&sub).map_err(|e| format!("{}: {e}", sub.display()))?;
            for a in inner {
                let a = a.map_err(|e| format!("{}: {e}", sub.display()))?;
                let aft = a
                    .file_type()
                    .map_err(|err| format!("{}: {err}", a.path().display()))?;
                let aname = a.file_name().to_string_lossy().into_owned();
                let rel = format!("{APPROVALS_DIR}/{aname}");
                let named = a
                    .file_name()
                    .to_str()
                    .is_some_and(|n| decision_key_id(n).is_some());
                if !named {
                    w.refused.push(format!(
                        "{rel:?} ({}; only {APPROVALS_DIR}/<key id>.dsse.json decision files belong here)",
                        kind(aft)
                    ));
                } else if !aft.is_file() {
                    w.refused.push(format!("{rel} ({}, not a file)", kind(aft)));
                } else {
                    w.present.push(rel);
                }
            }
        } else {
            w.refused.push(format!("{name:?} ({})", kind(ft)));
        }
    }
    w.present.sort();
    w.refused.sort();
    Ok(w)
}

/// Open `path` for reading only if it is (still) the regular file the walk saw: no symlink
/// is followed, no FIFO blocks the open, and a file swapped after the walk is refused.
pub(crate) fn open_regular(path: &Path) -> Result<File, String> {
    let before = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !before.file_type().is_file() {
        return Err(format!(
            "{} is {}, not a file",
            path.display(),
            kind(before.file_type())
        ));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let after = f
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !after.file_type().is_file() || after.dev() != before.dev() || after.ino() != before.ino() {
        return Err(format!(
            "{} was replaced while it was being read",
            path.display()
        ));
    }
    Ok(f)
}

/// Read the whole regular file at `path` (see [`open_regular`]).
pub(crate) fn read_regular(path: &Path) -> Result<Vec<u8>, String> {
    let mut f = open_regular(path)?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(out)
}

/// Read every closed-set file of `dir` except the model; returns the files read, the names
/// refused by the walk (empty when the tree is exactly the closed set) and the names of
/// the top-level files that are missing.
pub(crate) fn read_closed_set(
    dir: &Path,
) -> Result<(BundleFiles, Walk, Vec<&'static str>), String> {
    let w = walk(dir)?;
    let missing: Vec<&'static str> = TOP_LEVEL_FILES
        .iter()
        .copied()
        .filter(|t| !w.present.iter().any(|p| p == t))
        .collect();
    let mut files = BundleFiles::default();
    for name in &w.present {
        if name == MODEL_FILE {
            continue;
        }
        let bytes = read_regular(&dir.join(name))?;
        files.insert(name, bytes);
    }
    Ok((files, w, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_names_are_64_lowercase_hex_and_the_suffix() {
        let id = "0123456789abcdef".repeat(4);
        assert_eq!(
            decision_key_id(&format!("{id}.dsse.json")),
            Some(id.as_str())
        );
        assert_eq!(
            decision_key_id(&format!("approvals/{id}.dsse.json")),
            Some(id.as_str())
        );
        assert!(is_closed_set_name(&format!("approvals/{id}.dsse.json")));
        for bad in [
            format!("{}.dsse.json", id.to_uppercase()),
            format!("{}.dsse.json", &id[1..]),
            format!("{id}0.dsse.json"),
            format!("{id}.json"),
            format!("approvals/x/{id}.dsse.json"),
            "approvals/transactions.csv".to_owned(),
            "../model.safetensors".to_owned(),
            "approvals".to_owned(),
        ] {
            assert!(!is_closed_set_name(&bad), "{bad}");
        }
        for top in TOP_LEVEL_FILES {
            assert!(is_closed_set_name(top));
        }
    }

    #[test]
    fn open_regular_refuses_symlinks_and_fifos() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real");
        std::fs::write(&real, b"bytes").expect("write");
        assert_eq!(read_regular(&real).expect("a file"), b"bytes");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let err = read_regular(&link).expect_err("a symlink");
        assert!(err.contains("a symbolic link"), "{err}");
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .expect("mkfifo")
                .success()
        );
        let err = read_regular(&fifo).expect_err("a FIFO");
        assert!(err.contains("a FIFO"), "{err}");
    }
}
