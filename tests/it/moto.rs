//! The moto server the tests talk to: one per test, from the test kit (shared with
//! benches/publish.rs).

pub use airlock_testkit::moto::{Moto, REGION};
