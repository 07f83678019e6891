#![doc = include_str!("../README.md")]

mod adam;
mod error;
mod parallel;
mod run;
mod training;

pub use adam::{AdamSettings, TrainBackend, TrainerAdam, adam_step};
pub use error::TrainError;
pub use run::{RunSummary, TrainOptions, train_pipeline};
pub use training::{FitInput, FitOutput, Progress, fit};
