//! The stages, each an `impl Pipeline` in its own module.

mod gate;
mod package;
mod publish;
mod train;
