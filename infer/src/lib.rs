#![doc = include_str!("../README.md")]

mod device;
mod inference;
mod module;

pub use device::{Backend, DeviceError, DeviceSpec};
pub use inference::{
    PredictError, Predictions, Scorer, answer_columns, predict_csv, predict_outputs, transform,
};
pub use module::{ConvLayer, InputNorm, Net, batch_norm, tensor_to_vec, to_net, to_net_pair};
