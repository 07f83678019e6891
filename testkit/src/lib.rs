#![doc = include_str!("../README.md")]
//!
//! Every helper here panics (with a message) when its setup fails: it is meant for tests.

mod kit;
#[cfg(feature = "moto")]
pub mod moto;
mod python;

pub use kit::{FRAUD_FEATURES, Kit, KitBuilder, REASON};
pub use python::{test_python, venv_python};
