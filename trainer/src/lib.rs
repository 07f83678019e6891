#![doc = include_str!("../README.md")]

mod adam;
mod dp;
mod error;
mod hosts;
mod parallel;
mod run;
mod training;

pub use adam::{AdamSettings, TrainBackend, TrainerAdam, adam_step};
pub use dp::{AUDIT_GUESS_FRACTIONS, CANARY_SCALE, Canaries, DpSgd, audit};
pub use error::TrainError;
pub use hosts::{HostGroup, MAX_HOSTS};
pub use run::{
    BurstRun, FederatedRun, RunSummary, SiteTraining, TrainOptions, TrainingSetup, checkpoint_of,
    fit_with, privacy_guarantee, site_round, site_statistics, train_pipeline, training_setup,
    training_setup_with, write_burst_run, write_federated_run,
};
pub use training::{FitInput, FitOutput, Progress, fit};
