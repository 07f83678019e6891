//! `airlock review`: the compliance officer's page.

use crate::cli::ReviewArgs;
use crate::review_cmd;

/// Write the page; print the summary.
pub fn run(a: ReviewArgs) -> anyhow::Result<()> {
    let text = review_cmd::review(&review_cmd::ReviewOptions {
        bundle: a.bundle,
        trust: a.trust,
        out: a.out.clone(),
        previous: a.previous,
        threads: super::cores(),
    })?;
    print!("{text}");
    eprintln!("wrote {}", a.out.display());
    Ok(())
}
