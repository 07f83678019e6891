#![doc = include_str!("../README.md")]

pub mod evaluate;
mod package;
mod reproduce;
mod rmia;

pub use package::{PackageError, PackageOptions, PackageSummary, package};
