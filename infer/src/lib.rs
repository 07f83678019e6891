#![doc = include_str!("../README.md")]

mod device;
mod inference;
mod module;

pub use device::{Backend, DeviceError, DeviceSpec};
pub use inference::{PredictError, Scorer, predict_csv, predict_logits};
pub use module::{Mlp, tensor_to_vec, to_module, weight_to_host};
