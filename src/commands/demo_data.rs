//! `airlock demo-data`: a synthetic card-transaction table to train on.

use anyhow::Context as _;

use crate::cli::DemoDataArgs;

/// Write the table and say what it holds.
pub fn run(a: &DemoDataArgs) -> anyhow::Result<()> {
    let s = airlock_model::demo::write_demo_csv(&a.out, a.rows, a.seed)
        .with_context(|| format!("cannot write demo data to {}", a.out.display()))?;
    eprintln!(
        "wrote {} synthetic transactions ({} fraud, {:.1}%) to {}",
        s.rows,
        s.frauds,
        100.0 * s.frauds as f64 / s.rows.max(1) as f64,
        a.out.display()
    );
    Ok(())
}
