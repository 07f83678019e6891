//! `airlock pull`: download and install a verified release.

use crate::cli::PullArgs;

/// Pull; print the install directory.
pub fn run(a: PullArgs) -> anyhow::Result<()> {
    let s = airlock_publisher::pull::pull(&airlock_publisher::pull::PullOptions {
        uri: a.uri,
        trust: a.trust,
        out: a.out.clone(),
        allow_downgrade: a.allow_downgrade,
        threads: super::cores(),
        aws: a.aws.options(),
    })?;
    eprintln!(
        "verified and installed {} {} ({} bytes, {} approvals) in {}",
        s.name,
        s.version,
        s.bytes,
        s.approvals,
        a.out.display()
    );
    println!("{}", a.out.display());
    Ok(())
}
