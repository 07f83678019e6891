//! `airlock completions SHELL`: a completion script for the shell, on stdout.

use std::io::Write as _;

use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionsArgs};

/// Print the script.
pub fn run(a: &CompletionsArgs) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    clap_complete::generate(a.shell, &mut Cli::command(), "airlock", &mut out);
    out.flush()?;
    Ok(())
}
