//! Reading a run directory as the later stages need it: once, strictly, and checked
//! against itself.

use std::path::{Path, PathBuf};

use airlock_schemas::{PipelineSpec, TrainingRecord, UriBase};
use sha2::{Digest, Sha256};

use crate::{
    CHECKPOINT_FILE, DP_SECRET_FILE, PIPELINE_SNAPSHOT_FILE, PREPROCESS_FILE, Preprocess,
    RECORD_FILE,
};

/// A run directory that is incomplete or inconsistent.
#[derive(Debug, thiserror::Error)]
#[error("cannot use run {}: {what}", dir.display())]
pub struct RunError {
    /// The run directory.
    pub dir: PathBuf,
    /// What is wrong.
    pub what: String,
}

impl RunError {
    /// What kind of failure this is: always [`airlock_schemas::ErrorKind::BadInput`] (the
    /// run directory given is incomplete or inconsistent).
    pub fn kind(&self) -> airlock_schemas::ErrorKind {
        airlock_schemas::ErrorKind::BadInput
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What the packager and the leak scans need from a run directory, read once and checked
/// for consistency (record against its grammar, pipeline snapshot against the record's
/// digest, record against the pipeline).
#[derive(Debug)]
pub struct Run {
    /// The training record.
    pub record: TrainingRecord,
    /// Its bytes, as read.
    pub record_bytes: Vec<u8>,
    /// The fitted preprocessing.
    pub pre: Preprocess,
    /// The checkpoint's bytes (empty unless asked for).
    pub checkpoint: Vec<u8>,
    /// The checkpoint's SHA-256 (hex), computed as it was read (empty unless asked for).
    pub checkpoint_sha256: String,
    /// The pipeline it was trained from.
    pub spec: PipelineSpec,
    /// The pipeline file's name (never its on-prem path).
    pub pipeline_name: String,
    /// The base of the predicate and build types to sign with (`[signing] uri_base`).
    pub uri_base: UriBase,
    /// A DP-SGD run's noise secret ([`DP_SECRET_FILE`]), checked against the record's
    /// digest of it.
    pub dp_secret: Option<[u8; 32]>,
}

/// The bytes of the file at `path` and their SHA-256 (hex), hashed on a second thread
/// chunk by chunk as they are read: a 3 GiB checkpoint is hashed by the time it is in
/// memory, and the digest is of exactly the bytes every check then reads.
pub fn read_hashed(path: &Path) -> std::io::Result<(Vec<u8>, String)> {
    use std::io::Read;
    const CHUNK: usize = 16 << 20;
    let mut file = std::fs::File::open(path)?;
    let len = usize::try_from(file.metadata()?.len())
        .map_err(|_| std::io::Error::other("the file is larger than memory can address"))?;
    let mut bytes = vec![0u8; len];
    let digest = std::thread::scope(|s| -> std::io::Result<String> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<&[u8]>(8);
        let hasher = s.spawn(move || {
            let mut h = Sha256::new();
            for chunk in rx {
                h.update(chunk);
            }
            hex::encode(h.finalize())
        });
        let mut rest: &mut [u8] = &mut bytes;
        while !rest.is_empty() {
            let n = rest.len().min(CHUNK);
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(n);
            file.read_exact(head)?;
            // The hasher is gone only if it panicked; the join below says so.
            let _ = tx.send(head);
            rest = tail;
        }
        drop(tx);
        hasher
            .join()
            .map_err(|_| std::io::Error::other("the hashing thread panicked"))
    })?;
    // A file that grew while it was read is not the file whose length was taken.
    if file.read(&mut [0u8; 1])? != 0 {
        return Err(std::io::Error::other("the file grew while it was read"));
    }
    Ok((bytes, digest))
}

/// Read the run directory `dir`; with `with_checkpoint`, its checkpoint's bytes too.
pub fn read_run(dir: &Path, with_checkpoint: bool) -> Result<Run, RunError> {
    let bad = |what: String| RunError {
        dir: dir.to_owned(),
        what,
    };
    let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| bad(format!("{name}: {e}")));
    let record_bytes = read(RECORD_FILE)?;
    let record: TrainingRecord = airlock_schemas::strict_json::from_slice(&record_bytes)
        .map_err(|e| bad(format!("{RECORD_FILE}: {e}")))?;
    // A run directory is an attacker input: every field that gets signed must match its
    // grammar (nothing free-form, nothing data-derived).
    record
        .validate()
        .map_err(|e| bad(format!("{RECORD_FILE} is refused: {e}")))?;
    let pre: Preprocess = airlock_schemas::strict_json::from_slice(&read(PREPROCESS_FILE)?)
        .map_err(|e| bad(format!("{PREPROCESS_FILE}: {e}")))?;
    let (checkpoint, checkpoint_sha256) = if with_checkpoint {
        let path = dir.join(CHECKPOINT_FILE);
        read_hashed(&path).map_err(|e| bad(format!("{CHECKPOINT_FILE}: {e}")))?
    } else {
        (Vec::new(), String::new())
    };
    let pipeline_path = PathBuf::from(&record.pipeline.path);
    // The run's own copy of the pipeline (a run written by an older airlock has none), so
    // editing the file's destinations or keys after training does not orphan the run.
    let snapshot = dir.join(PIPELINE_SNAPSHOT_FILE);
    let read_from = if snapshot.exists() {
        snapshot
    } else {
        pipeline_path.clone()
    };
    let pipeline_bytes = std::fs::read(&read_from).map_err(|e| {
        bad(format!(
            "the pipeline file {} it was trained from: {e}",
            read_from.display()
        ))
    })?;
    if sha256_hex(&pipeline_bytes) != record.pipeline.sha256 {
        return Err(bad(format!(
            "the pipeline file {} changed since training (its SHA-256 differs from the training record)",
            read_from.display()
        )));
    }
    let spec =
        PipelineSpec::from_toml_str(&String::from_utf8_lossy(&pipeline_bytes), &pipeline_path)
            .map_err(|e| bad(e.to_string()))?;
    let r = &record;
    let consistent = [
        ("model_name", r.model_name == spec.release.name),
        ("model_version", r.model_version == spec.release.version),
        (
            "hyperparameters.features",
            r.hyperparameters.features == spec.data.features,
        ),
        (
            "hyperparameters.label",
            r.hyperparameters.label == spec.data.label,
        ),
        (
            "evaluation",
            r.evaluation.as_ref().is_none_or(|e| {
                e.threshold == spec.evaluation.threshold
                    && e.bootstrap.resamples == spec.evaluation.bootstrap_resamples
                    && e.bootstrap.confidence == spec.evaluation.confidence
                    && e.calibration.bins.len() == spec.evaluation.calibration_bins as usize
                    && e.subgroups.len() == spec.data.subgroups.len()
                    && e.subgroups.iter().zip(&spec.data.subgroups).all(|(t, g)| {
                        t.column == g.column()
                            && t.min_group_rows == spec.evaluation.min_group_rows
                            && t.bands.as_ref() == g.bands()
                    })
            }),
        ),
    ];
    if let Some((field, _)) = consistent.iter().find(|(_, ok)| !ok) {
        return Err(bad(format!(
            "{RECORD_FILE}'s {field} is not the pipeline's it was trained from"
        )));
    }
    let dp_secret = dp_secret(dir, &spec, &record).map_err(bad)?;
    let pipeline_name = file_name(&pipeline_path);
    let uri_base = UriBase::new(spec.signing.as_ref().and_then(|s| s.uri_base.as_deref()))
        .map_err(|e| bad(format!("the pipeline's signing.uri_base: {e}")))?;
    Ok(Run {
        uri_base,
        record,
        record_bytes,
        pre,
        checkpoint,
        checkpoint_sha256,
        spec,
        pipeline_name,
        dp_secret,
    })
}

/// A DP-SGD run's noise secret (none without `[privacy]`); the record must have a privacy
/// claim exactly when the pipeline has `[privacy]`.
fn dp_secret(
    dir: &Path,
    spec: &PipelineSpec,
    record: &TrainingRecord,
) -> Result<Option<[u8; 32]>, String> {
    match (&spec.privacy, &record.privacy) {
        (None, None) => Ok(None),
        (Some(_), Some(p)) => read_dp_secret(dir, &p.noise_secret_sha256).map(Some),
        _ => Err(format!(
            "{RECORD_FILE}'s privacy is not the pipeline's [privacy] it was trained from"
        )),
    }
}

/// The run's DP noise secret: 64 lowercase hex digits whose SHA-256 is `sha256`.
fn read_dp_secret(dir: &Path, sha256: &str) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(dir.join(DP_SECRET_FILE))
        .map_err(|e| format!("{DP_SECRET_FILE}: {e}"))?;
    let text = text.trim_end_matches('\n');
    let mut secret = [0u8; 32];
    if text.len() != 64
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        || hex::decode_to_slice(text, &mut secret).is_err()
    {
        return Err(format!("{DP_SECRET_FILE} is not 64 lowercase hex digits"));
    }
    if sha256_hex(&secret) != sha256 {
        return Err(format!(
            "{DP_SECRET_FILE} is not the secret the training record names"
        ));
    }
    Ok(secret)
}

/// The last component of `p` (what is recorded of a path: never the on-prem folders).
pub fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::{read_hashed, sha256_hex};

    #[test]
    fn a_file_read_while_hashed_is_its_bytes_and_their_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let chunk = 16 << 20;
        for len in [0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk + 12_345] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &bytes).expect("write");
            let (read, digest) = read_hashed(&path).expect("read");
            assert!(read == bytes, "{len} bytes");
            assert_eq!(digest, sha256_hex(&bytes), "{len} bytes");
        }
        assert!(read_hashed(&dir.path().join("missing")).is_err());
    }
}
