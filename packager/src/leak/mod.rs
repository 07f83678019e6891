//! Leak checks L0–L3 (see DESIGN.md): is anything in the artifact derived from the data
//! beyond the weights? L0 (structure) lives with the packaging code that rebuilds the model.

pub mod membership;
pub mod outgoing;
pub mod pii;
pub mod records;
