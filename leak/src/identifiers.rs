//! The identifiers of the run a bundle was packaged from: what everything that leaves
//! with the bundle is scanned against.

use std::path::{Path, PathBuf};

use airlock_model::{RECORD_FILE, RunError, read_run};
use sha2::{Digest, Sha256};

use crate::outgoing::IdentifierIndex;
use crate::pii::PiiScanner;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// File beside a bundle (never inside it) naming the run it was packaged from, so that
/// `airlock publish` can scan what leaves against that run's training data:
/// `BUNDLE_DIR.run.json`.
pub fn run_pointer_path(bundle: &Path) -> PathBuf {
    let name = bundle
        .file_name()
        .map_or_else(|| "bundle".into(), |n| n.to_string_lossy().into_owned());
    bundle.with_file_name(format!("{name}.run.json"))
}

/// The L2 identifier index of the training data of the run a bundle was packaged from,
/// for scanning everything that leaves with it ([`IdentifierIndex::scan_document`]).
///
/// The run is `run_dir`, or else the one named by [`run_pointer_path`] beside the bundle.
/// It must be the run the signed statement names: its `training-record.json` must have the
/// SHA-256 `record_sha256` (from the verified statement), its pipeline snapshot and its
/// training data the digests the record holds. Anything else fails: the caller refuses.
/// Its L1 is configured by the run's pipeline (`[leak] mrn_patterns`).
pub fn identifier_index_for_bundle(
    bundle: &Path,
    run_dir: Option<&Path>,
    record_sha256: &str,
) -> Result<IdentifierIndex, RunError> {
    let run_dir = match run_dir {
        Some(d) => d.to_owned(),
        None => {
            let pointer = run_pointer_path(bundle);
            let bytes = std::fs::read(&pointer).map_err(|e| RunError {
                dir: bundle.to_owned(),
                what: format!(
                    "cannot find the run it was packaged from ({}: {e}); pass --run RUN_DIR",
                    pointer.display()
                ),
            })?;
            let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| RunError {
                dir: bundle.to_owned(),
                what: format!("{} is not a run pointer: {e}", pointer.display()),
            })?;
            PathBuf::from(
                v.get("run_dir")
                    .and_then(|d| d.as_str())
                    .ok_or_else(|| RunError {
                        dir: bundle.to_owned(),
                        what: format!("{} names no run_dir", pointer.display()),
                    })?,
            )
        }
    };
    let run = read_run(&run_dir, false)?;
    let bad = |what: String| RunError {
        dir: run_dir.clone(),
        what,
    };
    if sha256_hex(&run.record_bytes) != record_sha256 {
        return Err(bad(format!(
            "its {RECORD_FILE} is not the one the bundle's signed statement names: not the run \
             {} was packaged from",
            bundle.display()
        )));
    }
    let path = airlock_model::check_recorded_files(&run.record.dataset.files).map_err(bad)?;
    let data =
        airlock_model::load_dataset(&run.spec, &path, false).map_err(|e| bad(e.to_string()))?;
    airlock_model::check_same_files(&run.record.dataset.files, &data.files).map_err(bad)?;
    let ids = &run.spec.data.identifiers;
    let values = data.identifier_values;
    // L1 as the run's pipeline configured it (its site MRN patterns).
    let pii = PiiScanner::new(&run.spec.leak.mrn_patterns).map_err(bad)?;
    Ok(IdentifierIndex::build(ids, &values)
        .map_err(bad)?
        .with_pii(pii))
}
