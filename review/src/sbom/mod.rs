//! `airlock sbom`: a CycloneDX 1.6 ML-BOM of a verified release.
//!
//! [`write_bom`] verifies the bundle once against the trust policy (the checks of
//! `airlock verify`: closed set, builder signatures, every digest, the leak verdict) and
//! refuses one that does not verify; the BOM is then made from the bytes that
//! verification read, like the review page ([`crate::command`]), so a file swapped on disk
//! afterwards is never described. The mapping is [`mapping`]'s, the JSON types
//! [`cyclonedx`]'s. Nothing in it depends on the clock but the officers' decisions, which
//! are judged now (an expired approval no longer counts): the BOM's timestamp is the
//! release's build time from its signed provenance, and its serial number comes from the
//! statement's digest, so the same release gives the same bytes.

use std::path::{Path, PathBuf};

use airlock_trust::approvals;
use airlock_trust::shards::sha256_hex;
use airlock_trust::{
    Check, LEAK_REPORT_FILE, MODEL_CARD_FILE, Trust, TrustError, verify_bundle_streamed,
};
use time::OffsetDateTime;

use crate::command::{ReviewError, builder, file_digests, held, provenance};

pub mod cyclonedx;
pub mod mapping;

#[cfg(test)]
mod tests;

pub use mapping::{Release, bom};

/// What `airlock sbom` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The trust policy to verify it against.
    pub trust: PathBuf,
    /// Threads for the model's shard digests.
    pub threads: usize,
}

/// Why no BOM was written.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// The trust policy (or a key it names) could not be loaded.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The bundle path is not a directory.
    #[error("{} is not a bundle directory", .0.display())]
    NotABundle(PathBuf),
    /// The bundle does not verify: the checks, the failed ones among them.
    #[error("{} does not verify", bundle.display())]
    DoesNotVerify {
        /// The bundle.
        bundle: PathBuf,
        /// Every check, in order.
        checks: Vec<Check>,
    },
    /// A verified document could not be read as its type (it cannot happen to a bundle
    /// that verified; kept so that it fails rather than panics).
    #[error(transparent)]
    Document(#[from] ReviewError),
}

/// Verify `opts.bundle` and return its BOM as pretty JSON with a final newline.
pub fn write_bom(opts: &Options) -> Result<Vec<u8>, SbomError> {
    let trust = Trust::load(&opts.trust)?;
    if !opts.bundle.is_dir() {
        return Err(SbomError::NotABundle(opts.bundle.clone()));
    }
    let v = verify_bundle_streamed(&opts.bundle, &trust, opts.threads, false);
    if !v.ok() {
        return Err(SbomError::DoesNotVerify {
            bundle: opts.bundle.clone(),
            checks: v.checks,
        });
    }
    let Some(statement) = v.statement.as_ref() else {
        return Err(SbomError::DoesNotVerify {
            bundle: opts.bundle.clone(),
            checks: v.checks.clone(),
        });
    };
    let now = OffsetDateTime::now_utc();
    let dir: &Path = &opts.bundle;
    let card = parse(&v.files, dir, MODEL_CARD_FILE)?;
    let report = parse(&v.files, dir, LEAK_REPORT_FILE)?;
    let prov = provenance(&v.files, Some((&trust, now)));
    let approvals = approvals::evaluate(&trust, &v, now);
    let release = Release {
        statement,
        statement_sha256: sha256_hex(&v.statement_bytes),
        card: &card,
        report: &report,
        provenance: prov.as_ref(),
        files: file_digests(&v),
        decisions: v
            .files
            .decisions()
            .map(|(name, bytes)| (name.to_owned(), sha256_hex(bytes)))
            .collect(),
        builder: builder(&v, &trust),
        approvals: &approvals,
        tool_version: env!("CARGO_PKG_VERSION"),
    };
    Ok(airlock_trust::pretty(&bom(&release)))
}

/// The document `name` from the verified bytes.
fn parse<T: serde::de::DeserializeOwned>(
    files: &airlock_trust::BundleFiles,
    dir: &Path,
    name: &str,
) -> Result<T, ReviewError> {
    airlock_schemas::strict_json::from_slice(held(files, dir, name)?).map_err(|source| {
        ReviewError::Invalid {
            path: dir.join(name),
            source,
        }
    })
}
