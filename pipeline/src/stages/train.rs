//! The train stage: a run directory under runs/, named by the digest of what shapes the
//! model (the pipeline less its destinations and keys, and the data).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use airlock_trust::shards::stream_digest;
use anyhow::Context as _;
use serde_json::json;

use crate::pipeline::Pipeline;
use crate::runner::Runner;
use crate::state::{StageRecord, digest_json, dir_digest};
use crate::workdir::move_aside;
use crate::{RunError, Stage};

/// Files of a run directory whose digest stands for the train stage's output.
const RUN_FILES: [&str; 4] = [
    airlock_model::CHECKPOINT_FILE,
    airlock_model::PREPROCESS_FILE,
    airlock_model::RECORD_FILE,
    airlock_model::PIPELINE_SNAPSHOT_FILE,
];

impl Pipeline<'_> {
    /// Train, unless a run with the same inputs is recorded and still intact.
    pub fn train(&self, r: &mut Runner<'_>) -> anyhow::Result<StageRecord> {
        let inputs = self.train_inputs()?;
        let digest = digest_json(&inputs);
        let run_dir = self
            .under("runs")
            .join(format!("{}-{}", self.name, &digest[..12]));
        r.begin(Stage::Train);
        let check = |rec: &StageRecord| {
            dir_digest(Path::new(&rec.output), &RUN_FILES).is_ok_and(|d| d == rec.output_sha256)
        };
        if let Some(rec) = r.reusable(Stage::Train, &digest, check) {
            r.skipped(Stage::Train, &rec);
            return Ok(rec);
        }
        r.needs_earlier(Stage::Train)?;
        let training = &self.spec.training;
        tracing::info!(
            "== train ({} epochs on {})",
            training.epochs,
            training.device_list().join(" + ")
        );
        let t = Instant::now();
        move_aside(&run_dir)?;
        let summary = airlock_trainer::train_pipeline(&airlock_trainer::TrainOptions {
            pipeline: self.opts.pipeline.clone(),
            out: Some(run_dir.clone()),
            device: None,
            cpu_backend: None,
            progress: self.opts.progress,
            hosts: None,
        })?;
        let headline = holdout_headline(&summary.record.holdout);
        tracing::info!("  holdout {headline}");
        let out_sha = dir_digest(&run_dir, &RUN_FILES)
            .with_context(|| format!("cannot read {}", run_dir.display()))?;
        r.ran(
            Stage::Train,
            t,
            format!("{} (holdout {headline})", run_dir.display()),
        );
        r.record(
            Stage::Train,
            &digest,
            inputs,
            run_dir.display().to_string(),
            out_sha,
            BTreeMap::from([("holdout".into(), headline)]),
        )
    }

    /// Everything that shapes the model (destinations and keys do not), and the data's
    /// digest. A DEMO writes its synthetic data first when there is none.
    fn train_inputs(&self) -> anyhow::Result<serde_json::Value> {
        let spec = &self.spec;
        let data = spec.data_source(&self.opts.pipeline);
        if self.demo && !data.exists() {
            if spec.data.format == airlock_schemas::DataFormat::Images {
                let dir = data.parent().unwrap_or(Path::new("."));
                let s = airlock_model::demo::write_scans(dir, airlock_model::demo::SCAN_ROWS, 7)?;
                tracing::info!(
                    "DEMO: wrote {} synthetic scans and their manifest to {}",
                    s.rows,
                    s.manifest.display()
                );
            } else {
                let s = airlock_model::demo::write_demo_csv(&data, 50_000, 7)?;
                tracing::info!(
                    "DEMO: wrote {} synthetic transactions to {}",
                    s.rows,
                    data.display()
                );
            }
        }
        let data_sha = stream_digest(&data).map_err(|e| {
            RunError::BadInput(format!(
                "cannot read the pipeline's data source {}: {e}",
                data.display()
            ))
        })?;
        let mut shaping = serde_json::to_value(spec)?;
        if let Some(o) = shaping.as_object_mut() {
            for k in ["signing", "publish", "deploy"] {
                o.remove(k);
            }
        }
        // The workspace's version, which the airlock binary shares.
        Ok(json!({
            "airlock": env!("CARGO_PKG_VERSION"),
            "pipeline": shaping,
            "data_sha256": data_sha,
        }))
    }
}

/// The holdout's headline figure, per task.
fn holdout_headline(h: &airlock_schemas::Holdout) -> String {
    match h {
        airlock_schemas::Holdout::Binary(b) => format!("ROC AUC {:.4}", b.roc_auc),
        airlock_schemas::Holdout::Multiclass(m) => {
            format!("accuracy {:.4}, macro-F1 {:.4}", m.accuracy, m.macro_f1)
        }
        airlock_schemas::Holdout::Regression(r) => format!("RMSE {:.4}, R² {:.4}", r.rmse, r.r2),
    }
}
