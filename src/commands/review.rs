//! `airlock review`: the compliance officer's page, of a local bundle or of one fetched
//! (and verified) from a registry with its approvals inbox.

use std::path::PathBuf;

use crate::cli::ReviewArgs;
use crate::review_cmd;

/// Fetch the bundle when given a registry URI; write the page; print the summary.
pub fn run(a: ReviewArgs) -> anyhow::Result<()> {
    let bundle = if a.bundle.starts_with("file://") || a.bundle.starts_with("s3://") {
        let f = airlock_publisher::pull::fetch_for_review(
            &airlock_publisher::pull::ReviewFetchOptions {
                uri: a.bundle.clone(),
                trust: a.trust.clone(),
                out: a.bundle_out.clone(),
                threads: super::cores(),
                aws: a.aws.options(),
            },
        )?;
        for why in &f.skipped {
            eprintln!("  inbox: skipped {why}");
        }
        eprintln!(
            "fetched and verified {} {} ({} bytes, {} decisions from the approvals inbox) into {}",
            f.name,
            f.version,
            f.bytes,
            f.decisions,
            f.dir.display()
        );
        f.dir
    } else {
        PathBuf::from(&a.bundle)
    };
    let text = review_cmd::review(&review_cmd::ReviewOptions {
        bundle: bundle.clone(),
        trust: a.trust,
        out: a.out.clone(),
        previous: a.previous,
        threads: super::cores(),
    })?;
    print!("{text}");
    eprintln!("wrote {}", a.out.display());
    eprintln!("bundle: {} (approve or reject it there)", bundle.display());
    Ok(())
}
