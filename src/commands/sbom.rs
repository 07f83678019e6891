//! `airlock sbom`: the release's CycloneDX 1.6 ML-BOM. The work is
//! [`airlock_review::sbom`]'s (verify once, map from the verified bytes); this prints the
//! failed checks, writes the BOM and maps the errors to exit codes.

use std::io::Write as _;
use std::path::PathBuf;

use airlock_review::sbom::{self, SbomError};
use anyhow::Context as _;

use crate::cli::SbomArgs;
use crate::exit;

/// Verify the bundle, then write its BOM to `--out` (atomically) or standard output.
pub fn run(a: &SbomArgs) -> anyhow::Result<()> {
    let bom = sbom::write_bom(&sbom::Options {
        bundle: a.bundle.clone(),
        trust: a.trust.clone(),
        threads: super::cores(),
    })
    .map_err(|e| match e {
        SbomError::Trust(e) => anyhow::Error::new(e),
        SbomError::NotABundle(_) => anyhow::Error::new(exit::BadInputError(e.to_string())),
        SbomError::DoesNotVerify { bundle, checks } => {
            for c in checks.iter().filter(|c| !c.ok) {
                eprintln!("  FAIL {}: {}", c.name, c.detail);
            }
            exit::VerificationFailed(bundle.display().to_string()).into()
        }
        // A verified document that does not read as its type: not what was verified.
        SbomError::Document(e) => {
            exit::VerificationFailed(format!("{}: {e}", a.bundle.display())).into()
        }
    })?;
    let Some(out) = &a.out else {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&bom)?;
        return Ok(stdout.flush()?);
    };
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(&bom)?;
    tmp.as_file().sync_all()?;
    tmp.persist(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
