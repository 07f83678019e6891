#![doc = include_str!("../README.md")]

pub mod health;
pub mod identifiers;
pub mod membership;
pub mod outgoing;
pub mod pii;
pub mod pixels;
pub mod records;

pub use identifiers::{identifier_index_for_bundle, run_pointer_path};
