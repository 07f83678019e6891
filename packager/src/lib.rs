#![doc = include_str!("../README.md")]

pub mod evaluate;
mod package;
mod reproduce;
mod rmia;
mod update;

pub use package::{PackageError, PackageOptions, PackageSummary, package};
pub use update::{STATISTICS_FILE, UPDATE_FILE, UpdateCheck, check_update, statistics_decls};
