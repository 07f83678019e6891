//! `airlock predict`: score rows with a trained run.

use std::io::Write as _;

use crate::cli::PredictArgs;

/// The model's answers per input row, as CSV on stdout: the positive class's probability
/// (binary), one probability per class (multi-class), or the value (regression).
pub fn run(a: &PredictArgs) -> anyhow::Result<()> {
    let p = airlock_infer::predict_csv(&a.run, &a.input)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    writeln!(out, "{}", p.columns.join(","))?;
    for row in p.values.chunks(p.columns.len().max(1)) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:.6}")).collect();
        writeln!(out, "{}", cells.join(","))?;
    }
    out.flush()?;
    Ok(())
}
