//! Sync-back: a job's model artifact (`model.tar.gz`, as SageMaker writes it) comes back
//! on-prem only as a verified run. The archive is unpacked strictly (regular files with the
//! names a run has, bounded sizes, nothing else); its files must give the digest the job
//! recorded; the job's own account (`burst.json`) must name the job, the hyperparameters
//! sent and the approved export; and the run must read as one (record grammar, pipeline
//! digest, L0: the checkpoint holds exactly the declared tensors, finite).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use airlock_model::{CHECKPOINT_FILE, Checkpoint, Description, Run, read_run};
use airlock_schemas::IoError;

use crate::container::{JOB_FILE, JobReport, digest_files, run_digest};
use crate::{BurstError, VerifiedExport};

/// The files a run archive may hold.
pub(crate) const RUN_FILES: [&str; 7] = [
    "training-record.json",
    "preprocess.json",
    "checkpoint.safetensors",
    "pipeline.toml",
    "train.log",
    "dp-secret",
    JOB_FILE,
];
/// Largest unpacked run (all files together).
const MAX_UNPACKED: u64 = 8 << 30;

/// What a job was asked to do, to hold its artifact against.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The job's name.
    pub job_name: &'a str,
    /// Its ARN.
    pub job_arn: &'a str,
    /// The hyperparameters sent.
    pub hyperparameters: &'a BTreeMap<String, String>,
    /// Hosts asked for.
    pub hosts: u32,
    /// The digest the job recorded of its model directory.
    pub run_sha256: &'a str,
    /// The approved export it trained on.
    pub export: &'a VerifiedExport,
}

/// A verified artifact, unpacked.
#[derive(Debug)]
pub struct Synced {
    /// Where it was unpacked.
    pub dir: PathBuf,
    /// The job's own account.
    pub report: JobReport,
    /// The run.
    pub run: Run,
    /// The last epoch's validation loss (what a sweep compares).
    pub validation_loss: f64,
}

fn refused(why: impl Into<String>) -> BurstError {
    BurstError::Refused(format!("sync-back: {}", why.into()))
}

/// Unpack `archive` (gzip-compressed tar) into the empty folder `dest`: regular files named
/// as a run's files at the top level, each once; anything else refuses it.
pub fn unpack(archive: &[u8], dest: &Path) -> Result<(), BurstError> {
    let gz = flate2::read::GzDecoder::new(archive);
    let mut tar = tar::Archive::new(gz.take(MAX_UNPACKED + 1));
    let mut total = 0u64;
    let entries = tar
        .entries()
        .map_err(|e| refused(format!("the artifact is not a tar.gz archive ({e})")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| refused(format!("the artifact's archive is damaged ({e})")))?;
        let path = entry
            .path()
            .map_err(|_| refused("an archive entry's name is not UTF-8"))?
            .into_owned();
        let name = path
            .to_str()
            .map(|p| p.trim_start_matches("./"))
            .unwrap_or_default()
            .to_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() && name.is_empty() {
            continue;
        }
        if !kind.is_file() || !RUN_FILES.contains(&name.as_str()) {
            return Err(refused(format!(
                "the artifact holds {name:?}, which is not a run's file ({})",
                RUN_FILES.join(", ")
            )));
        }
        let out = dest.join(&name);
        if out.exists() {
            return Err(refused(format!("the artifact holds {name:?} twice")));
        }
        total = total.saturating_add(entry.size());
        if total > MAX_UNPACKED {
            return Err(refused(format!(
                "the artifact unpacks to over {MAX_UNPACKED} bytes"
            )));
        }
        let mut file = std::fs::File::create_new(&out).map_err(IoError::at("write", &out))?;
        std::io::copy(&mut entry, &mut file).map_err(IoError::at("write", &out))?;
    }
    Ok(())
}

/// Verify the unpacked artifact in `dir` against what the job was asked to do.
pub fn verify_artifact(dir: &Path, e: &Expected<'_>) -> Result<Synced, BurstError> {
    let files = digest_files(dir)?;
    let got = run_digest(&files);
    if got != e.run_sha256 {
        return Err(refused(format!(
            "the artifact is not what job {} wrote (its files give SHA-256 {got}; the job recorded {})",
            e.job_name, e.run_sha256
        )));
    }
    let path = dir.join(JOB_FILE);
    let report: JobReport = airlock_schemas::strict_json::from_slice(
        &std::fs::read(&path).map_err(|_| refused(format!("the artifact has no {JOB_FILE}")))?,
    )
    .map_err(|err| refused(format!("{JOB_FILE}: {err}")))?;
    // Without its own pipeline, a run would be read against a path its record names.
    if !files.contains_key(airlock_model::PIPELINE_SNAPSHOT_FILE) {
        return Err(refused("the artifact holds no pipeline.toml"));
    }
    let mut others = files.clone();
    others.remove(JOB_FILE);
    let export_statement = crate::sha256_hex(&e.export.statement_file);
    let checks = [
        (report.job_name == e.job_name, "names another job"),
        (report.job_arn == e.job_arn, "names another job ARN"),
        (
            &report.hyperparameters == e.hyperparameters,
            "names other hyperparameters than the ones sent",
        ),
        (
            report.hosts == e.hosts,
            "was trained on another number of hosts",
        ),
        (
            report.export_statement_file_sha256 == export_statement,
            "names another export statement",
        ),
        (
            report.export_data_sha256 == e.export.data_sha256,
            "was trained on other data than the approved export",
        ),
        (
            report.export_pipeline_sha256 == e.export.pipeline_sha256,
            "was trained with another pipeline than the approved export's",
        ),
        (report.files == others, "lists other files than it holds"),
    ];
    if let Some((_, why)) = checks.iter().find(|(ok, _)| !ok) {
        return Err(refused(format!("the job's {JOB_FILE} {why}")));
    }
    let run = read_run(dir, true).map_err(|err| refused(err.to_string()))?;
    let data = &run.record.dataset.files;
    if data.len() != 1 || data[0].sha256 != e.export.data_sha256 {
        return Err(refused(
            "the run's record names other training data than the approved export",
        ));
    }
    check_l0(&run, dir).map_err(|why| refused(format!("L0: {why}")))?;
    let validation_loss = run
        .record
        .epochs
        .last()
        .map(|m| m.validation_loss)
        .filter(|l| l.is_finite())
        .ok_or_else(|| refused("the run records no finite validation loss"))?;
    Ok(Synced {
        dir: dir.to_owned(),
        report,
        run,
        validation_loss,
    })
}

/// L0 on the run's checkpoint: the tensors its model description declares for training
/// (and their Adam moments), in their shapes, nothing else, every value finite.
fn check_l0(run: &Run, dir: &Path) -> Result<(), String> {
    let h = &run.record.hyperparameters;
    let description = Description::new(&h.model, &h.task, h.features.len())?;
    let ckpt =
        Checkpoint::read(&dir.join(CHECKPOINT_FILE), &description).map_err(|e| e.to_string())?;
    if ckpt
        .params
        .tensors
        .iter()
        .any(|(_, v)| v.iter().any(|x| !x.is_finite()))
    {
        return Err("a weight is not finite".to_owned());
    }
    let st = safetensors::SafeTensors::deserialize(&run.checkpoint).map_err(|e| e.to_string())?;
    let declared: Vec<String> = description
        .trained()
        .into_iter()
        .flat_map(|d| {
            [
                format!("optimizer.{}.exp_avg", d.name),
                format!("optimizer.{}.exp_avg_sq", d.name),
                d.name,
            ]
        })
        .collect();
    if let Some(extra) = st
        .names()
        .into_iter()
        .find(|n| !declared.iter().any(|d| d == n))
    {
        return Err(format!(
            "{CHECKPOINT_FILE} holds {extra:?}, which the model does not declare"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar.gz of `entries` (name, type, bytes), written header by header so that names
    /// tar::Builder would refuse (`..`) can be made.
    fn archive(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (name, kind, bytes) in entries {
            let mut h = tar::Header::new_gnu();
            let raw = h.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_entry_type(*kind);
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                h.set_link_name("/etc/passwd").expect("link");
            }
            h.set_cksum();
            b.append(&h, *bytes).expect("append");
        }
        b.into_inner().expect("tar").finish().expect("gz")
    }

    fn refused(entries: &[(&str, tar::EntryType, &[u8])]) -> String {
        let dir = tempfile::tempdir().expect("tmp");
        let e = unpack(&archive(entries), dir.path()).expect_err("refused");
        e.to_string()
    }

    #[test]
    fn a_run_archive_unpacks_and_anything_else_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let ok = archive(&[
            ("train.log", tar::EntryType::Regular, b"log"),
            ("./preprocess.json", tar::EntryType::Regular, b"{}"),
        ]);
        unpack(&ok, dir.path()).expect("a run's files");
        assert!(dir.path().join("preprocess.json").exists());

        let file = tar::EntryType::Regular;
        assert!(refused(&[("evil.sh", file, b"x")]).contains("not a run's file"));
        assert!(refused(&[("../train.log", file, b"x")]).contains("not a run's file"));
        assert!(refused(&[("sub/train.log", file, b"x")]).contains("not a run's file"));
        assert!(
            refused(&[("train.log", tar::EntryType::Symlink, b"")]).contains("not a run's file")
        );
        assert!(refused(&[("train.log", file, b"a"), ("train.log", file, b"b")]).contains("twice"));
        let dir = tempfile::tempdir().expect("tmp");
        assert!(unpack(b"not a gzip stream", dir.path()).is_err());
    }

    #[test]
    fn the_run_digest_covers_names_and_contents() {
        let mut files = BTreeMap::new();
        files.insert("a".to_owned(), "1".repeat(64));
        let d = run_digest(&files);
        files.insert("b".to_owned(), "2".repeat(64));
        assert_ne!(d, run_digest(&files));
    }
}
