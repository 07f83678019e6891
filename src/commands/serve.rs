//! `airlock serve`: the SageMaker container contract over a verified bundle.

use crate::cli::ServeArgs;
use crate::serve;

/// Serve until stopped.
pub fn run(a: ServeArgs) -> anyhow::Result<()> {
    serve::serve(&serve::ServeOptions {
        model_dir: a.model_dir,
        trust: a.trust,
        listen: std::net::SocketAddr::new(a.bind, a.port),
        threads: super::cores(),
        device: a.device,
        limits: serve::Limits {
            header_timeout: a.header_timeout,
            body_timeout: a.body_timeout,
            max_connections: a.max_connections as usize,
        },
    })
}
