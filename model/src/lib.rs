#![doc = include_str!("../README.md")]

mod checkpoint;
mod data;
pub mod demo;
mod evaluation;
mod images;
mod metrics;
mod params;
mod preprocess;
mod run;
mod rundir;

pub use checkpoint::{AdamMoments, CHECKPOINT_FILE, Checkpoint, CheckpointError};
pub use data::{
    DataError, GroupColumn, GroupValues, LabelColumn, Table, label_expectation, label_value,
    load_table, load_table_with_groups,
};
pub use evaluation::{SubgroupInput, check_subgroups, evaluate};
pub use images::{
    ImageError, ImageTable, MAX_IMAGE_FILE_BYTES, MAX_IMAGE_NAME_BYTES, MAX_IMAGES,
    MAX_PIXEL_BYTES, decode_image, load_images,
};
pub use metrics::{accuracy, log_loss, roc_auc, roc_curve};
pub use params::{DenseLayer, MlpParams};
pub use preprocess::{FeatureStats, PREPROCESS_FILE, Preprocess};
pub use run::{LOG_FILE, PIPELINE_SNAPSHOT_FILE, RECORD_FILE, rng, split_rows};
pub use rundir::{Run, RunError, file_name, read_run};
