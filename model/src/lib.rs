#![doc = include_str!("../README.md")]

mod checkpoint;
mod data;
mod dataset;
pub mod demo;
mod description;
mod evaluation;
mod images;
mod metrics;
mod params;
mod parquet;
mod preprocess;
pub mod privacy;
pub mod privacy_audit;
mod run;
mod rundir;

pub use self::parquet::load_parquet;
pub use checkpoint::{AdamMoments, CHECKPOINT_FILE, Checkpoint, CheckpointError};
pub use data::{
    DataError, GroupColumn, GroupValues, LabelColumn, Table, label_expectation, label_value,
    load_table, load_table_with_groups,
};
pub use dataset::{
    Dataset, Images, check_recorded_files, check_same_files, csv_identifier_values, load_dataset,
};
pub use description::{
    BATCH_NORM_EPSILON, Description, FoldError, Folded, InputKind, Params, Role, TensorDecl,
};
pub use evaluation::{SubgroupInput, check_subgroups, evaluate};
pub use images::{
    ImageError, ImageTable, MAX_IMAGE_FILE_BYTES, MAX_IMAGE_NAME_BYTES, MAX_IMAGES,
    MAX_PIXEL_BYTES, decode_image, load_images,
};
pub use metrics::{
    accuracy, argmax_rows, log_loss, multiclass_metrics, regression_metrics, roc_auc, roc_curve,
    row_losses, task_accuracy, task_loss,
};
pub use params::{DenseLayer, MlpParams};
pub use preprocess::{FeatureStats, PREPROCESS_FILE, Preprocess};
pub use run::{DP_SECRET_FILE, LOG_FILE, PIPELINE_SNAPSHOT_FILE, RECORD_FILE, rng, split_rows};
pub use rundir::{Run, RunError, file_name, read_run};
