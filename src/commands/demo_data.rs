//! `airlock demo-data`: synthetic data to train on, a card-transaction table or a folder of
//! scans.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cli::{DemoDataArgs, DemoKind};
use crate::exit;

/// Transactions written when `--rows` is not given.
const DEFAULT_TRANSACTIONS: usize = 50_000;
/// Where scans go when `--out` is not given.
const DEFAULT_SCANS_DIR: &str = "data/scans";

/// Write the data and say what it holds.
pub fn run(a: &DemoDataArgs) -> anyhow::Result<()> {
    match a.kind {
        DemoKind::Transactions => {
            let out = a.out.as_deref().ok_or_else(|| {
                exit::BadInputError(
                    "--out FILE.csv is required for --kind transactions (the CSV file to write)"
                        .into(),
                )
            })?;
            transactions(out, a.rows.unwrap_or(DEFAULT_TRANSACTIONS), a.seed)
        }
        DemoKind::Scans => {
            let out = a
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SCANS_DIR));
            scans(
                &out,
                a.rows.unwrap_or(airlock_model::demo::SCAN_ROWS),
                a.seed,
            )
        }
    }
}

fn transactions(out: &Path, rows: usize, seed: u64) -> anyhow::Result<()> {
    let s = airlock_model::demo::write_demo_csv(out, rows, seed)
        .with_context(|| format!("cannot write demo data to {}", out.display()))?;
    eprintln!(
        "wrote {} synthetic transactions ({} fraud, {:.1}%) to {}",
        s.rows,
        s.frauds,
        100.0 * s.frauds as f64 / s.rows.max(1) as f64,
        out.display()
    );
    Ok(())
}

fn scans(out: &Path, rows: usize, seed: u64) -> anyhow::Result<()> {
    let s = airlock_model::demo::write_scans(out, rows, seed)
        .with_context(|| format!("cannot write demo scans to {}", out.display()))?;
    let [clear, nodule, mass] = s.per_class;
    eprintln!(
        "wrote {} synthetic {}×{} grayscale scans ({clear} clear, {nodule} nodule, {mass} mass) and their manifest {}",
        s.rows,
        airlock_model::demo::SCAN_SIDE,
        airlock_model::demo::SCAN_SIDE,
        s.manifest.display()
    );
    Ok(())
}
