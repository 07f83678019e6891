//! `airlock man` (hidden): the man page, as roff on stdout, or with `--out-dir` a page per
//! command (airlock.1, airlock-run.1, airlock-audit-verify.1, ...). `make man` writes them
//! to `<target dir>/man/`.

use std::io::Write as _;

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::{Cli, ManArgs};

/// Print or write the pages.
pub fn run(a: &ManArgs) -> anyhow::Result<()> {
    if let Some(dir) = &a.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        clap_mangen::generate_to(Cli::command(), dir)
            .with_context(|| format!("cannot write the man pages to {}", dir.display()))?;
        eprintln!("wrote {}", dir.join("airlock.1").display());
        return Ok(());
    }
    // As generate_to() renders it: `airlock help` gets no page, so none is listed.
    let cmd = Cli::command().disable_help_subcommand(true);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    clap_mangen::Man::new(cmd).render(&mut out)?;
    out.flush()?;
    Ok(())
}
