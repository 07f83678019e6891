//! airlock-publisher: pushes signed, approved bundles to registries (file, S3) and
//! SageMaker under a residency policy, with an audit log. Its code arrives with the
//! publisher issue; the crate exists now so the workspace has the shape DESIGN.md describes.
#![forbid(unsafe_code)]
