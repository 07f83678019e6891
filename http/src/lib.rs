#![doc = include_str!("../README.md")]

pub mod listen;
pub mod stall;
