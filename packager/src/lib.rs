#![doc = include_str!("../README.md")]

pub mod fold;
mod package;

pub use package::{PackageError, PackageOptions, PackageSummary, package};
