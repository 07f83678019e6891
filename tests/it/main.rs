//! End-to-end tests of the `airlock` binary. One test binary, a module per topic.

mod approve;
mod audit;
mod burst;
mod cli;
mod data_parallel;
mod families;
mod federate;
mod helpers;
mod kit;
mod leak_health;
mod moto;
mod oci;
mod officers;
mod package;
mod pipeline_run;
mod privacy;
mod publish;
mod publish_s3;
mod pull;
mod release_e2e;
mod route;
mod sbom;
mod serve;
mod train;
mod transparency;
mod trust_boundary;
