//! Folding the standardization into the first layer, so that no data statistics ship.
//!
//! With `x' = (x − μ) / σ`, the first layer computes `W·x' + b = W'·x + b'` where
//! `W' = W·diag(1/σ)` and `b' = b − W'·μ`. The folded model takes raw features.

use airlock_model::{MlpParams, Preprocess};

/// Why folding is impossible.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FoldError {
    /// The statistics do not fit the first layer.
    #[error("preprocess.json has {stats} features but the first layer takes {inputs} inputs")]
    Width {
        /// Features in the statistics.
        stats: usize,
        /// Inputs of the first layer.
        inputs: usize,
    },
    /// A standard deviation is zero, negative or not finite.
    #[error("preprocess.json: feature {index} has an unusable standard deviation")]
    BadStd {
        /// 0-based feature index.
        index: usize,
    },
}

impl FoldError {
    /// What kind of failure this is: always [`airlock_schemas::ErrorKind::BadInput`] (the
    /// run's statistics do not fit its model).
    pub fn kind(&self) -> airlock_schemas::ErrorKind {
        match self {
            Self::Width { .. } | Self::BadStd { .. } => airlock_schemas::ErrorKind::BadInput,
        }
    }
}

/// Return `params` with `pre` folded into layer 0 (computed in f64, stored as f32).
pub fn fold(params: &MlpParams, pre: &Preprocess) -> Result<MlpParams, FoldError> {
    let mut out = params.clone();
    let Some(first) = out.layers.first_mut() else {
        return Ok(out);
    };
    if pre.features.len() != first.d_in {
        return Err(FoldError::Width {
            stats: pre.features.len(),
            inputs: first.d_in,
        });
    }
    if let Some(index) = pre
        .features
        .iter()
        .position(|f| !(f.std.is_finite() && f.std > 0.0 && f.mean.is_finite()))
    {
        return Err(FoldError::BadStd { index });
    }
    for o in 0..first.d_out {
        let row = &mut first.weight[o * first.d_in..(o + 1) * first.d_in];
        let mut shift = 0.0f64;
        for (w, f) in row.iter_mut().zip(&pre.features) {
            let folded = f64::from(*w) / f.std;
            shift += folded * f.mean;
            *w = folded as f32;
        }
        first.bias[o] = (f64::from(first.bias[o]) - shift) as f32;
    }
    Ok(out)
}
