//! `airlock predict`: score rows with a trained run.

use std::io::Write as _;

use crate::cli::PredictArgs;

/// One probability per input row, as CSV on stdout.
pub fn run(a: &PredictArgs) -> anyhow::Result<()> {
    let probs = airlock_infer::predict_csv(&a.run, &a.input)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    writeln!(out, "probability")?;
    for p in probs {
        writeln!(out, "{p:.6}")?;
    }
    out.flush()?;
    Ok(())
}
