//! What a completed stage is remembered by, and where: `.airlock/stages/` under the work
//! directory, locked for the whole run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airlock_trust::APPROVALS_DIR;
use airlock_trust::shards::{sha256_hex, stream_digest};
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::Stage;

/// The run's state, under the work directory.
pub const STATE_DIR: &str = ".airlock";

/// What a completed stage is remembered by.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StageRecord {
    pub stage: String,
    pub inputs_sha256: String,
    pub inputs: serde_json::Value,
    /// The run directory, bundle, registry index or endpoint it produced.
    pub output: String,
    /// SHA-256 standing for the output's content (empty where it lives in the cloud).
    pub output_sha256: String,
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    pub finished_at: String,
}

/// `.airlock/` of a work directory, locked for the whole run.
#[derive(Debug)]
pub(crate) struct State {
    dir: PathBuf,
    _lock: std::fs::File,
}

impl State {
    /// Create and lock `.airlock/` under `workdir`: one `airlock run` at a time.
    pub fn open(workdir: &Path) -> anyhow::Result<Self> {
        let dir = workdir.join(STATE_DIR);
        std::fs::create_dir_all(dir.join("stages"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let lock_path = dir.join("lock");
        let lock = std::fs::File::create(&lock_path)
            .with_context(|| format!("cannot create {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another `airlock run` is using {} (it holds {})",
                workdir.display(),
                lock_path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()));
            }
        }
        Ok(Self { dir, _lock: lock })
    }

    fn path(&self, stage: Stage, digest: &str) -> PathBuf {
        self.dir
            .join("stages")
            .join(format!("{}-{digest}.json", stage.name()))
    }

    /// The record of `stage` completed with inputs `digest`, if any.
    pub fn get(&self, stage: Stage, digest: &str) -> Option<StageRecord> {
        let bytes = std::fs::read(self.path(stage, digest)).ok()?;
        let r: StageRecord = serde_json::from_slice(&bytes).ok()?;
        (r.stage == stage.name() && r.inputs_sha256 == digest).then_some(r)
    }

    /// Record `stage` as complete, atomically.
    pub fn put(&self, stage: Stage, r: &StageRecord) -> anyhow::Result<()> {
        let path = self.path(stage, &r.inputs_sha256);
        let dir = self.dir.join("stages");
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        use std::io::Write as _;
        tmp.write_all(&serde_json::to_vec_pretty(r)?)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

/// The digest of a stage's inputs.
pub(crate) fn digest_json(v: &serde_json::Value) -> String {
    sha256_hex(&serde_json::to_vec(v).unwrap_or_default())
}

/// Now, to the second, as RFC 3339.
pub(crate) fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// One digest over the named files of `dir`.
pub(crate) fn dir_digest(dir: &Path, files: &[&str]) -> std::io::Result<String> {
    let mut h = Sha256::new();
    for f in files {
        h.update(f.as_bytes());
        h.update(b"\0");
        h.update(stream_digest(&dir.join(f))?.as_bytes());
        h.update(b"\n");
    }
    Ok(hex::encode(h.finalize()))
}

/// The approval files of a bundle, by name and digest.
pub(crate) fn approval_digests(bundle: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let dir = bundle.join(APPROVALS_DIR);
    let mut out = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries {
            let e = e.with_context(|| format!("cannot read {}", dir.display()))?;
            if e.path().is_file() {
                let sha = stream_digest(&e.path())
                    .with_context(|| format!("cannot read {}", e.path().display()))?;
                out.insert(e.file_name().to_string_lossy().into_owned(), sha);
            }
        }
    }
    Ok(out)
}
