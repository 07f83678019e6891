#![doc = include_str!("../README.md")]

pub mod audit;
pub mod aws;
pub mod inbox;
pub mod oci;
pub mod outgoing;
pub mod publish;
pub mod pull;
pub mod registry;
pub mod s3;
pub mod sagemaker;
pub mod witness;
