//! The kept job's model as an on-prem run: the on-prem pipeline with the job's
//! hyperparameters, the full on-prem data (splits, holdout metrics and evaluation come from
//! it, and `airlock package` leak-checks against it), the job's standardization and
//! weights, and a record naming the burst, the export and every job.

use std::path::{Path, PathBuf};

use airlock_model::{CHECKPOINT_FILE, Checkpoint, Description, read_run};
use airlock_schemas::{BurstJob, BurstRecord, IoError, PipelineSpec};

use crate::container::apply_hyperparameters;
use crate::{BurstError, BurstSummary, JobOutcome};

fn job(o: &JobOutcome) -> BurstJob {
    let outcome = o.outcome.split(':').next().unwrap_or("failed").to_owned();
    BurstJob {
        name: o.name.clone(),
        arn: o.arn.clone(),
        hyperparameters: o.hyperparameters.clone(),
        hosts: o.instance_count,
        outcome,
        artifact_sha256: o.artifact_sha256.clone(),
        validation_loss: o.validation_loss,
    }
}

/// Write the run of `summary`'s kept job at `out`, for the on-prem `pipeline`.
pub fn write_run(
    pipeline: &Path,
    summary: &BurstSummary,
    out: &Path,
    progress: bool,
) -> Result<PathBuf, BurstError> {
    let invalid = |message: String| BurstError::Invalid {
        path: pipeline.to_owned(),
        message,
    };
    let chosen = summary
        .jobs
        .iter()
        .find(|j| j.name == summary.chosen)
        .ok_or_else(|| BurstError::Failed("the kept job is not among the jobs".to_owned()))?;
    // The artifact verified at sync-back; its files must still give the digest its job
    // recorded (held in memory since), or someone changed them in between.
    let now = crate::container::run_digest(&crate::container::digest_files(&summary.artifact)?);
    if chosen.artifact_sha256.as_deref() != Some(now.as_str()) {
        return Err(BurstError::Refused(format!(
            "the kept job's verified artifact changed on disk since it was verified ({})",
            summary.artifact.display()
        )));
    }
    let cloud = read_run(&summary.artifact, true).map_err(|e| BurstError::Failed(e.to_string()))?;
    let h = &cloud.record.hyperparameters;
    let description = Description::new(&h.model, &h.task, h.features.len()).map_err(invalid)?;
    let ckpt = Checkpoint::read(&summary.artifact.join(CHECKPOINT_FILE), &description)
        .map_err(|e| BurstError::Failed(e.to_string()))?;
    let mut spec = PipelineSpec::load(pipeline).map_err(|e| invalid(e.to_string()))?;
    apply_hyperparameters(&mut spec, &chosen.hyperparameters).map_err(invalid)?;
    // Trained in the cloud on the export: not replayable here (the packager records it).
    spec.leak.reproduce = false;
    let dir = pipeline.parent().unwrap_or(Path::new("."));
    let data = std::path::absolute(dir.join(&spec.data.source))
        .map_err(IoError::at("resolve", &spec.data.source))?;
    let record = BurstRecord {
        burst: summary.id.clone(),
        export_statement_sha256: summary.export_statement_sha256.clone(),
        export_data_sha256: summary.export_data_sha256.clone(),
        job: job(chosen),
        selection: summary.selection.clone(),
        jobs: summary.jobs.iter().map(job).collect(),
    };
    record.validate().map_err(BurstError::Failed)?;
    // Beside the original, so its relative paths mean the same; the run keeps a copy.
    let stem = pipeline
        .file_stem()
        .map_or_else(|| "pipeline".into(), |s| s.to_string_lossy());
    let staged = dir.join(format!("{stem}.{}.toml", summary.id));
    let text = toml::to_string(&spec).map_err(|e| BurstError::Failed(e.to_string()))?;
    std::fs::File::create_new(&staged)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .map_err(IoError::at("write", &staged))?;
    let run = airlock_trainer::write_burst_run(
        &airlock_trainer::TrainOptions {
            pipeline: staged.clone(),
            out: Some(out.to_owned()),
            device: None,
            cpu_backend: None,
            progress,
            hosts: None,
        },
        airlock_trainer::BurstRun {
            data,
            preprocess: cloud.pre,
            params: ckpt.params,
            epochs: cloud.record.epochs,
            record,
        },
    )
    .map_err(|e| BurstError::Failed(format!("writing the on-prem run: {e}")));
    let _ = std::fs::remove_file(&staged);
    Ok(run?.run_dir)
}
