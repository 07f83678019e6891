#![doc = include_str!("../README.md")]

pub mod evaluate;
mod package;

pub use package::{PackageError, PackageOptions, PackageSummary, package};
