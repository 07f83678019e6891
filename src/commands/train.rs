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
        hosts: None,
    })?;
    match &summary.record.holdout {
        airlock_schemas::Holdout::Binary(b) => {
            eprintln!(
                "holdout ROC AUC {:.4}, accuracy {:.4}",
                b.roc_auc, b.accuracy
            );
        }
        airlock_schemas::Holdout::Multiclass(m) => eprintln!(
            "holdout accuracy {:.4}, macro-F1 {:.4}",
            m.accuracy, m.macro_f1
        ),
        airlock_schemas::Holdout::Regression(r) => eprintln!(
            "holdout RMSE {:.4}, MAE {:.4}, R² {:.4}",
            r.rmse, r.mae, r.r2
        ),
    }
    println!("{}", summary.run_dir.display());
    Ok(())
}
