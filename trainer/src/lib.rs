#![doc = include_str!("../README.md")]

mod checkpoint;
mod data;
pub mod demo;
mod device;
mod error;
mod inference;
mod metrics;
mod model;
mod preprocess;
mod run;
mod training;

pub use checkpoint::{AdamMoments, CHECKPOINT_FILE, Checkpoint, CheckpointError};
pub use data::{DataError, Table, load_table};
pub use device::{Backend, DeviceError, DeviceSpec};
pub use error::TrainError;
pub use inference::{PredictError, Scorer, predict_csv};
pub use metrics::{accuracy, log_loss, roc_auc, roc_curve};
pub use model::{DenseLayer, MlpParams};
pub use preprocess::{FeatureStats, PREPROCESS_FILE, Preprocess};
pub use run::{
    LOG_FILE, PIPELINE_SNAPSHOT_FILE, RECORD_FILE, RunSummary, TrainOptions, split_rows,
    train_pipeline,
};
pub use training::{FitInput, FitOutput, Progress, fit};
