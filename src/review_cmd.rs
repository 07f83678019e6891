//! `airlock review`: the compliance officer's page for one release. The work is
//! [`airlock_review::command`]'s (verify once, render from the verified bytes); this writes
//! the page and maps the errors to exit codes.

use std::path::PathBuf;

use airlock_review::command::{self, ReviewError};
use anyhow::Context;

/// Options of `airlock review`.
#[derive(Debug)]
pub struct ReviewOptions {
    pub bundle: PathBuf,
    pub trust: PathBuf,
    pub out: PathBuf,
    pub previous: Option<PathBuf>,
    pub threads: usize,
}

/// Render the page to `opts.out` and return the terminal summary.
pub fn review(opts: &ReviewOptions) -> anyhow::Result<String> {
    let rendered = command::review(&command::Options {
        bundle: opts.bundle.clone(),
        trust: opts.trust.clone(),
        previous: opts.previous.clone(),
        threads: opts.threads,
    })
    .map_err(|e| match e {
        // The typed causes the exit codes are told apart by.
        ReviewError::Trust(e) => anyhow::Error::new(e),
        ReviewError::NotABundle(_) => anyhow::Error::new(crate::exit::BadInputError(e.to_string())),
        e => anyhow::Error::new(e),
    })?;
    let dir = match opts.out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, rendered.html.as_bytes())?;
    tmp.persist(&opts.out)
        .with_context(|| format!("cannot write {}", opts.out.display()))?;
    Ok(rendered.text)
}
