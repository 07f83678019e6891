//! airlock-packager: turns a training run into a release bundle (strict safetensors,
//! stripping, leak checks, signing). Its code arrives with the packager issue; the crate
//! exists now so the workspace has the shape DESIGN.md describes.
#![forbid(unsafe_code)]
