//! `airlock train`: train a pipeline's model into a run directory.

use crate::cli::TrainArgs;

/// Train; print the run directory.
pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let summary = airlock_trainer::train_pipeline(&airlock_trainer::TrainOptions {
        pipeline: a.pipeline,
        out: a.out,
        device: a.device,
        cpu_backend: None,
        progress: super::progress(a.no_progress),
    })?;
    eprintln!(
        "holdout ROC AUC {:.4}, accuracy {:.4}",
        summary.record.holdout.roc_auc, summary.record.holdout.accuracy
    );
    println!("{}", summary.run_dir.display());
    Ok(())
}
