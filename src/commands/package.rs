//! `airlock package`: strip, leak-check and sign a run into a release bundle.

use crate::cli::PackageArgs;

/// Package; print the bundle directory.
pub fn run(a: PackageArgs) -> anyhow::Result<()> {
    let summary = airlock_packager::package(&airlock_packager::PackageOptions {
        run_dir: a.run,
        key: a.key,
        out: a.out,
        threads: a.threads.unwrap_or_else(super::cores),
        progress: Some(|secs, what| tracing::info!("[{secs:6.1} s] {what}")),
    })?;
    for l in &summary.report.layers {
        eprintln!("  {} {:<22} pass", l.id, l.name);
    }
    eprintln!("model.safetensors sha256 {}", summary.model_sha256);
    println!("{}", summary.bundle.display());
    Ok(())
}
